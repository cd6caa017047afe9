#!/usr/bin/env bash
# The three hello templates side by side under `kiln up`: `http-rust`, `http-python` and `http-js`,
# each created with `kiln new`, built with `kiln build`, and served with its key-value miss route
# (`GET /kv/nothing` → 404: routing, a store open and a get, no write).
#
# Per template, with the method of bench/run.sh (kiln pinned to core 0, `wrk -t1 -c$CONNS` on core 1,
# a warm-up, then a measured run; CPU per request = utime+stime of kiln over the run ÷ requests):
#   - CPU per request, and its ratio to the Rust template's;
#   - idle memory: kiln's RSS once the app is ready and has answered one request;
#   - start to first 200: the first start after the build (compiling the component into an empty
#     cache), then the median of $STARTS starts with the cache warm.
#
# Needs: wrk, a release build of kiln in $CARGO_TARGET_DIR (or target/), rustup's wasm32-wasip2
# target, componentize-py on PATH (Python) and npm (JavaScript). Knobs: DURATION=10 WARMUP=2
# CONNS=8 STARTS=3 SKIP_BUILD=1 TEMPLATES="http-rust http-python http-js" NEW_BIN=path/to/kiln.
set -euo pipefail

ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
DURATION=${DURATION:-10}
WARMUP=${WARMUP:-2}
CONNS=${CONNS:-8}
STARTS=${STARTS:-3}
TEMPLATES=${TEMPLATES:-"http-rust http-python http-js"}
TARGET_DIR=${CARGO_TARGET_DIR:-$ROOT/target}
KILN_BIN=$TARGET_DIR/release/kiln
# The binary that runs `kiln new` and `kiln build` (its templates); the release one by default.
NEW_BIN=${NEW_BIN:-$KILN_BIN}
CLK_TCK=$(getconf CLK_TCK)

log() { printf '>> %s\n' "$*" >&2; }
die() { printf 'bench/templates: %s\n' "$*" >&2; exit 1; }

WORK=$(mktemp -d "${TMPDIR:-/tmp}/kiln-templates-bench.XXXXXX")
PIDS=()
# shellcheck source=bench/lib.sh
source "$ROOT/bench/lib.sh"

command -v wrk >/dev/null || die "wrk is not installed"
if [[ ${SKIP_BUILD:-0} != 1 ]]; then
    log "cargo build --release -p kiln"
    (cd "$ROOT" && cargo build --release -p kiln)
fi
[[ -x $KILN_BIN ]] || die "$KILN_BIN not found (cargo build --release -p kiln)"

now_us() { local t=${EPOCHREALTIME/[.,]/}; echo "$t"; }

# serve APP_DIR PORT CACHE: starts kiln (SERVER_PID) and sets START_US to the microseconds from
# launch to the first answer.
serve() {
    local dir=$1 port=$2 cache=$3 t0
    t0=$(now_us)
    KILN_CACHE_DIR=$cache taskset -c 0 "$KILN_BIN" up -f "$dir" --listen "127.0.0.1:$port" --quiet >>"$WORK/kiln.log" 2>&1 &
    SERVER_PID=$!
    PIDS+=("$SERVER_PID")
    until [[ $(curl -s -o /dev/null -w '%{http_code}' "http://127.0.0.1:$port/kv/nothing" 2>/dev/null) == 404 ]]; do
        kill -0 "$SERVER_PID" 2>/dev/null || die "kiln exited: $(tail -n 5 "$WORK/kiln.log")"
        (($(now_us) - t0 < 300000000)) || die "no answer within 300 s"
        sleep 0.005
    done
    START_US=$(($(now_us) - t0))
}

rss_kib() { awk '/^VmRSS/ { print $2 }' "/proc/$1/status"; }

declare -A CPU RSS COLD WARM
for template in $TEMPLATES; do
    name=hello-${template#http-}
    dir=$WORK/$name
    "$NEW_BIN" new "$template" "$name" --dir "$dir" >/dev/null
    log "$template: kiln build"
    (cd "$dir" && env -u CARGO_TARGET_DIR "$NEW_BIN" build >"$WORK/build-$name.log" 2>&1) || die "$template did not build: $(tail -n 20 "$WORK/build-$name.log")"
    cache=$WORK/cache-$name
    port=$(free_port)
    serve "$dir" "$port" "$cache"
    COLD[$template]=$START_US
    stop_pid "$SERVER_PID"
    starts=()
    for ((i = 0; i < STARTS; i++)); do
        port=$(free_port)
        serve "$dir" "$port" "$cache"
        starts+=("$START_US")
        stop_pid "$SERVER_PID"
    done
    WARM[$template]=$(median "${starts[@]}")
    port=$(free_port)
    serve "$dir" "$port" "$cache"
    RSS[$template]=$(rss_kib "$SERVER_PID")
    url="http://127.0.0.1:$port/kv/nothing"
    taskset -c 1 wrk -t1 -c"$CONNS" -d"${WARMUP}s" "$url" >/dev/null
    t0=$(cpu_ticks "$SERVER_PID")
    requests=$(taskset -c 1 wrk -t1 -c"$CONNS" -d"${DURATION}s" "$url" | awk '/requests in/ { print $1 }')
    t1=$(cpu_ticks "$SERVER_PID")
    stop_pid "$SERVER_PID"
    [[ $requests -gt 0 ]] || die "$template served no request"
    CPU[$template]=$(awk -v t=$((t1 - t0)) -v hz="$CLK_TCK" -v n="$requests" 'BEGIN { printf "%.1f", t / hz * 1e6 / n }')
    log "$template: ${CPU[$template]} µs/request, idle RSS ${RSS[$template]} KiB, first start ${COLD[$template]} µs, warm ${WARM[$template]} µs"
done

base=${CPU[http-rust]:-}
echo
echo "The hello templates under \`kiln up\` ($(date -u '+%Y-%m-%d'), $(git -C "$ROOT" rev-parse --short HEAD), release build, wrk -c$CONNS ${DURATION}s on GET /kv/nothing):"
echo
echo "| template | CPU/request | vs Rust | idle RSS | first start (compiling) | start → first 200, cache warm |"
echo "|---|---|---|---|---|---|"
for template in $TEMPLATES; do
    ratio=$([[ -n $base ]] && awk -v c="${CPU[$template]}" -v b="$base" 'BEGIN { printf "%.0f×", c / b }' || echo "—")
    printf '| %s | %s µs | %s | %.1f MB | %.0f ms | %.0f ms |\n' "$template" "${CPU[$template]}" "$ratio" \
        "$(awk -v k="${RSS[$template]}" 'BEGIN { print k / 1024 }')" \
        "$(awk -v u="${COLD[$template]}" 'BEGIN { print u / 1000 }')" "$(awk -v u="${WARM[$template]}" 'BEGIN { print u / 1000 }')"
done
