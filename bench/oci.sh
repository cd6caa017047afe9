#!/usr/bin/env bash
# Start-up from a registry: the time from launching `kiln up --from REF` to the first 200 of the hello
# app pushed to a local registry (Debian's docker-registry on loopback), next to `kiln up` of the same
# app from its directory, in the same run:
#   - directory: `kiln up -f examples/hello` (compile cache warm);
#   - registry, warm: the app already in the registry cache (compile cache warm);
#   - registry, cold: the registry cache emptied before each launch, so the manifest and every
#     blob are pulled and the app is materialized (compile cache warm: the artifact is keyed by the
#     Wasm's hash, so only the pull is measured).
# Median of STARTS launches each, not pinned. Targets (issue #12): warm within 1.5x of the directory
# start; cold within 100 ms more.
#
# Environment: STARTS=7; KILN_BIN=PATH (default: the release build); SKIP_BUILD=1.
set -euo pipefail

ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
STARTS=${STARTS:-7}
TARGET_DIR=${CARGO_TARGET_DIR:-$ROOT/target}
KILN_BIN=${KILN_BIN:-$TARGET_DIR/release/kiln}
HELLO_DIR=$ROOT/examples/hello

log() { printf '>> %s\n' "$*" >&2; }
die() { printf 'bench/oci: %s\n' "$*" >&2; exit 1; }
command -v docker-registry >/dev/null || die "docker-registry is not installed (apt-get install docker-registry)"
WORK=$(mktemp -d "${TMPDIR:-/tmp}/kiln-oci-bench.XXXXXX")
PIDS=()
# shellcheck source=bench/lib.sh
source "$ROOT/bench/lib.sh"

if [[ ${SKIP_BUILD:-0} != 1 ]]; then
    (cd "$ROOT" && cargo build --release -p kiln)
    (cd "$ROOT/examples" && env -u CARGO_TARGET_DIR cargo build --target wasm32-wasip2 --release -p hello)
fi
[[ -x $KILN_BIN ]] || die "$KILN_BIN not found"

REG_PORT=$(free_port)
cat >"$WORK/registry.yml" <<YAML
version: 0.1
log:
  level: error
storage:
  filesystem:
    rootdirectory: $WORK/registry
http:
  addr: 127.0.0.1:$REG_PORT
YAML
docker-registry serve "$WORK/registry.yml" >"$WORK/registry.log" 2>&1 &
PIDS+=("$!")
for _ in $(seq 100); do
    curl -sf "http://127.0.0.1:$REG_PORT/v2/" >/dev/null && break
    sleep 0.05
done
REF=127.0.0.1:$REG_PORT/bench/hello:v1
CACHE=$WORK/cache
KILN_CACHE_DIR=$CACHE "$KILN_BIN" registry push "$REF" -f "$HELLO_DIR" --insecure >&2

now_us() { local t=${EPOCHREALTIME/[.,]/}; echo "$t"; }

# launch FROM: µs from launch to the first 200 on GET /.
launch() {
    local port t0 t1 pid
    port=$(free_port)
    t0=$(now_us)
    KILN_CACHE_DIR=$CACHE "$KILN_BIN" up -q -f "$1" --insecure --listen "127.0.0.1:$port" --state-dir "$WORK/state" >"$WORK/up.log" 2>&1 &
    pid=$!
    PIDS+=("$pid")
    until [[ $(curl -s -o /dev/null -w '%{http_code}' "http://127.0.0.1:$port/" 2>/dev/null) == 200 ]]; do
        kill -0 "$pid" 2>/dev/null || { cat "$WORK/up.log" >&2; die "kiln up -f $1 exited"; }
    done
    t1=$(now_us)
    stop_pid "$pid"
    echo $((t1 - t0))
}

launch "$HELLO_DIR" >/dev/null # fills the compile cache
declare -A MEDIAN
for kind in directory warm cold; do
    samples=()
    for ((i = 0; i < STARTS; i++)); do
        case $kind in
            directory) samples+=("$(launch "$HELLO_DIR")") ;;
            warm) samples+=("$(launch "$REF")") ;;
            cold) rm -rf "$CACHE/registry"; samples+=("$(launch "$REF")") ;;
        esac
    done
    MEDIAN[$kind]=$(median "${samples[@]}")
    log "$kind: median ${MEDIAN[$kind]} µs (samples: ${samples[*]})"
done
commit=$(git -C "$ROOT" rev-parse --short HEAD 2>/dev/null || echo unknown)
awk -v d="${MEDIAN[directory]}" -v w="${MEDIAN[warm]}" -v c="${MEDIAN[cold]}" -v n="$STARTS" -v commit="$commit" 'BEGIN {
    printf "Start-up to the first 200 of examples/hello, commit %s, median of %d launches (compile cache warm)\n\n", commit, n
    printf "| kiln up … | start → first 200 | vs directory |\n|---|---|---|\n"
    printf "| -f examples/hello (directory) | %.1f ms | 1× |\n", d / 1000
    printf "| --from REF, registry cache warm | %.1f ms | %.2f× |\n", w / 1000, w / d
    printf "| --from REF, registry cache cold (pull + materialize) | %.1f ms | +%.1f ms |\n", c / 1000, (c - d) / 1000
}'
