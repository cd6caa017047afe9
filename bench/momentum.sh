#!/usr/bin/env bash
# `kiln run` against `wasmtime run` on the same file: examples/momentum's component computing the
# momentum of a CSV read on stdin, start to exit, both with their compile caches warm.
#
# Method: build momentum.wasm once; run each tool once to fill its cache and check that both print
# the same bytes; then $RUNS runs of each, alternating (the machine's noise hits both alike), timed
# from spawn to exit by a Python driver; report the medians and their ratio. Two inputs: $ROWS rows
# (start-up dominates) and $BIG_ROWS rows (the work dominates).
#
# Needs: a release build of kiln in $CARGO_TARGET_DIR (or target/) or KILN_BIN=path, rustup's
# wasm32-wasip2 target, and wasmtime 48 (the LTS Kiln is built on) as WASMTIME=path, on PATH, or in
# /var/tmp/kiln-toolchains/wasmtime-48/bin (install: cargo install wasmtime-cli --version 48.0.8
# --locked --root /var/tmp/kiln-toolchains/wasmtime-48). Knobs: RUNS=30 ROWS=10 BIG_ROWS=200000
# SKIP_BUILD=1.
set -euo pipefail

ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
RUNS=${RUNS:-30}
ROWS=${ROWS:-10}
BIG_ROWS=${BIG_ROWS:-200000}
TARGET_DIR=${CARGO_TARGET_DIR:-$ROOT/target}
KILN_BIN=${KILN_BIN:-$TARGET_DIR/release/kiln}

log() { printf '>> %s\n' "$*" >&2; }
die() { printf 'bench/momentum: %s\n' "$*" >&2; exit 1; }

WORK=$(mktemp -d "${TMPDIR:-/tmp}/kiln-momentum-bench.XXXXXX")
PIDS=()
# shellcheck source=bench/lib.sh
source "$ROOT/bench/lib.sh"

WASMTIME=${WASMTIME:-$(command -v wasmtime || echo /var/tmp/kiln-toolchains/wasmtime-48/bin/wasmtime)}
[[ -x $WASMTIME ]] || die "wasmtime is not installed: cargo install wasmtime-cli --version 48.0.8 --locked --root /var/tmp/kiln-toolchains/wasmtime-48"
if [[ ${SKIP_BUILD:-0} != 1 ]]; then
    log "cargo build --release -p kiln"
    (cd "$ROOT" && cargo build --release -p kiln)
fi
[[ -x $KILN_BIN ]] || die "no kiln binary at $KILN_BIN"
log "building examples/momentum"
(cd "$ROOT/examples" && env -u CARGO_TARGET_DIR cargo build --quiet --target wasm32-wasip2 --release -p momentum)
WASM=$ROOT/examples/target/wasm32-wasip2/release/momentum.wasm

python3 - "$KILN_BIN" "$WASMTIME" "$WASM" "$WORK" "$RUNS" "$ROWS" "$BIG_ROWS" <<'PY'
import os, statistics, subprocess, sys, time
kiln, wasmtime, wasm, work, runs, rows, big_rows = sys.argv[1:4] + [sys.argv[4]] + [int(a) for a in sys.argv[5:]]
env = dict(os.environ, KILN_CACHE_DIR=os.path.join(work, "kiln-cache"))
# wasmtime's cache goes to its default place unless told; give it its own, as kiln's.
with open(os.path.join(work, "wasmtime-cache.toml"), "w") as f:
    f.write(f'[cache]\ndirectory = "{os.path.join(work, "wasmtime-cache")}"\n')
tools = {
    "kiln run": [kiln, "run", wasm],
    # -S http: the component also exports a wasi:http handler, so it imports wasi:http's types.
    "wasmtime run": [wasmtime, "run", "-S", "http", "-C", "cache=y", "-C", f"cache-config={os.path.join(work, 'wasmtime-cache.toml')}", wasm],
}
print(f"kiln: {subprocess.run([kiln, '--version'], capture_output=True, text=True).stdout.strip()}; "
      f"{subprocess.run([wasmtime, '--version'], capture_output=True, text=True).stdout.strip()}; {runs} runs each")
for n in (rows, big_rows):
    path = os.path.join(work, f"in-{n}.csv")
    with open(path, "w") as f:
        f.write("mass,velocity\n")
        for i in range(n):
            f.write(f"{1 + i % 97},{(i % 31) - 15}.5\n")
    outputs = {}
    for name, cmd in tools.items():  # warm the caches and compare outputs
        with open(path, "rb") as stdin:
            done = subprocess.run(cmd, stdin=stdin, capture_output=True, env=env)
        if done.returncode != 0:
            sys.exit(f"{name} failed ({done.returncode}): {done.stderr.decode(errors='replace')}")
        outputs[name] = done.stdout
    if len(set(outputs.values())) != 1:
        sys.exit("kiln run and wasmtime run printed different bytes")
    times = {name: [] for name in tools}
    for _ in range(runs):
        for name, cmd in tools.items():
            with open(path, "rb") as stdin:
                started = time.perf_counter()
                subprocess.run(cmd, stdin=stdin, stdout=subprocess.DEVNULL, env=env, check=True)
                times[name].append(time.perf_counter() - started)
    med = {name: statistics.median(t) * 1000 for name, t in times.items()}
    print(f"{n} rows ({os.path.getsize(path)} bytes): kiln run {med['kiln run']:.2f} ms, "
          f"wasmtime run {med['wasmtime run']:.2f} ms, ratio {med['kiln run'] / med['wasmtime run']:.2f}x")
PY
