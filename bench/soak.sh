#!/usr/bin/env bash
# The soak test (crates/cli/tests/soak.rs) for 30 minutes: a mixed load on one `kiln serve`
# (HTTP, key-value, events, deploys and removes) with the host's RSS, open file descriptors and
# threads sampled every 10 s, then a plot of the samples (bench/results/soak.png) and the CSV beside it.
#
# Knobs: SOAK_SECS=1800 SAMPLE_SECS=10. Needs matplotlib (installed into the toolchains virtualenv
# /var/tmp/kiln-toolchains/venv when missing).
set -euo pipefail

ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
SOAK_SECS=${SOAK_SECS:-1800}
SAMPLE_SECS=${SAMPLE_SECS:-10}
OUT=$ROOT/bench/results
VENV=/var/tmp/kiln-toolchains/venv
mkdir -p "$OUT"

[[ -x $VENV/bin/python ]] || python3 -m venv "$VENV"
"$VENV/bin/python" -c 'import matplotlib' 2>/dev/null || "$VENV/bin/pip" install -q matplotlib

cd "$ROOT"
KILN_SOAK_SECS=$SOAK_SECS KILN_SOAK_SAMPLE_SECS=$SAMPLE_SECS KILN_SOAK_CSV=$OUT/soak.csv \
    cargo test -p kiln --test soak -- --nocapture 2>&1 | grep -E '^soak:|test result|panicked'

"$VENV/bin/python" - "$OUT/soak.csv" "$OUT/soak.png" <<'PY'
import csv, sys
import matplotlib
matplotlib.use("Agg")
import matplotlib.pyplot as plt
rows = list(csv.DictReader(open(sys.argv[1])))
t = [float(r["seconds"]) / 60 for r in rows]
fig, axes = plt.subplots(3, 1, figsize=(8, 7), sharex=True)
for ax, key, label in zip(axes, ["rss_kib", "fds", "threads"], ["RSS (MiB)", "open fds", "threads"]):
    values = [int(r[key]) / (1024 if key == "rss_kib" else 1) for r in rows]
    ax.plot(t, values)
    ax.set_ylabel(label)
    ax.set_ylim(bottom=0)
    ax.grid(True, alpha=0.3)
axes[-1].set_xlabel("minutes")
fig.suptitle("kiln serve under a mixed load (bench/soak.sh)")
fig.tight_layout()
fig.savefig(sys.argv[2], dpi=80)
print(f"plot: {sys.argv[2]}")
PY
