#!/usr/bin/env bash
# A request that chains through a second component in process, against the same two calls made by
# the client, server CPU per request measured as bench/run.sh does (kiln pinned to core 0, wrk on
# core 1, utime+stime of the server's process tree over the measured run / requests completed;
# medians over RUNS runs, a fresh kiln per run).
#
# One app, two ways to chain:
#   - composed: `mw` (guests/http_middleware_p2) with `echo` (guests/echo_request) composed in as a
#     dependency (`[component.mw.dependencies]`): `GET /mw/x` with `x-token: letmein` runs the
#     middleware, which hands the request to echo, in one instance.
#     The client's two calls: `GET /mw/x` without the token (the middleware answers 401 itself) and
#     `GET /echo/x` (echo alone).
#   - internal: `chain` (guests/chain) fetching `http://echo.spin.internal/x` (service chaining:
#     a second instance, in process, no socket): `GET /chain/x?target=echo&path=/x`.
#     The client's two calls: `GET /chain/x` (chain answers 400 `missing target` itself) and
#     `GET /echo/x`.
# Target: chained < the sum of the two calls.
#
# Environment: DURATION=10 RUNS=3 WARMUP=2 CONNS=32 SKIP_BUILD=1 CARGO_TARGET_DIR (as bench/run.sh).
set -euo pipefail

ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
DURATION=${DURATION:-10}
RUNS=${RUNS:-3}
WARMUP=${WARMUP:-2}
CONNS=${CONNS:-32}
SKIP_BUILD=${SKIP_BUILD:-0}
TARGET_DIR=${CARGO_TARGET_DIR:-$ROOT/target}
case $TARGET_DIR in /*) ;; *) TARGET_DIR=$ROOT/$TARGET_DIR ;; esac
KILN_BIN=$TARGET_DIR/release/kiln
GUESTS=$ROOT/guests/target/wasm32-wasip2/release

log() { printf '>> %s\n' "$*" >&2; }
die() { printf 'bench: %s\n' "$*" >&2; exit 1; }
for tool in wrk curl python3; do command -v "$tool" >/dev/null || die "$tool is not installed"; done
if [[ $(nproc) -ge 2 ]] && command -v taskset >/dev/null; then
    PIN_SERVER=(taskset -c 0); PIN_LOAD=(taskset -c 1)
else
    PIN_SERVER=(); PIN_LOAD=()
fi
CLK_TCK=$(getconf CLK_TCK)
WORK=$(mktemp -d "${TMPDIR:-/tmp}/kiln-chain.XXXXXX")
PIDS=()
# shellcheck source=bench/lib.sh
source "$ROOT/bench/lib.sh"

if [[ $SKIP_BUILD != 1 ]]; then
    log "cargo build --release -p kiln"
    (cd "$ROOT" && cargo build --release -p kiln)
    log "building the guests (wasm32-wasip2, release)"
    (cd "$ROOT/guests" && env -u CARGO_TARGET_DIR -u CARGO_BUILD_TARGET -u RUSTFLAGS \
        cargo build --target wasm32-wasip2 --release -p http_middleware_p2 -p echo_request -p chain)
fi
[[ -x $KILN_BIN ]] || die "$KILN_BIN not found"
for g in http_middleware_p2 echo_request chain; do [[ -f $GUESTS/$g.wasm ]] || die "$GUESTS/$g.wasm not found"; done

cat >"$WORK/kiln.toml" <<TOML
spin_manifest_version = 2
[application]
name = "chain-bench"
[[trigger.http]]
route = "/mw/..."
component = "mw"
[[trigger.http]]
route = "/echo/..."
component = "echo"
[[trigger.http]]
route = "/chain/..."
component = "chain"
[component.echo]
source = "$GUESTS/echo_request.wasm"
[component.mw]
source = "$GUESTS/http_middleware_p2.wasm"
[component.mw.dependencies]
"wasi:http/incoming-handler" = { component = "echo" }
[component.chain]
source = "$GUESTS/chain.wasm"
allowed_outbound_hosts = ["http://echo.spin.internal"]
TOML
cat >"$WORK/report.lua" <<'LUA'
done = function(summary, latency, requests)
  io.write(string.format("KILNBENCH requests=%d non2xx=%d\n", summary.requests, summary.errors.status))
end
LUA
cat >"$WORK/token.lua" <<'LUA'
wrk.headers["x-token"] = "letmein"
done = function(summary, latency, requests)
  io.write(string.format("KILNBENCH requests=%d non2xx=%d\n", summary.requests, summary.errors.status))
end
LUA

# measure PID SCRIPT PATH EXPECT_ERRORS(0|1): prints CPU µs per request.
measure() {
    local pid=$1 script=$2 path=$3 errors_ok=$4 t0 t1 line requests non2xx
    "${PIN_LOAD[@]}" wrk -t1 -c"$CONNS" -d"${WARMUP}s" -s "$script" "http://127.0.0.1:$PORT$path" >/dev/null
    t0=$(cpu_ticks "$pid")
    line=$("${PIN_LOAD[@]}" wrk -t1 -c"$CONNS" -d"${DURATION}s" -s "$script" "http://127.0.0.1:$PORT$path" | grep '^KILNBENCH ')
    t1=$(cpu_ticks "$pid")
    requests=$(sed -E 's/.*requests=([0-9]+).*/\1/' <<<"$line")
    non2xx=$(sed -E 's/.*non2xx=([0-9]+).*/\1/' <<<"$line")
    ((requests > 0)) || die "$path: no request completed"
    if [[ $errors_ok == 0 && $non2xx != 0 ]]; then die "$path: $non2xx non-2xx responses"; fi
    if [[ $errors_ok == 1 && $non2xx != "$requests" ]]; then die "$path: expected the component's own error answer"; fi
    awk -v t=$((t1 - t0)) -v hz="$CLK_TCK" -v n="$requests" 'BEGIN { printf "%.2f", t / hz * 1e6 / n }'
}

declare -A CPU
KINDS="composed mw-alone internal chain-alone echo-alone"
for run in $(seq "$RUNS"); do
    PORT=$(free_port)
    KILN_CACHE_DIR=$WORK/cache "${PIN_SERVER[@]}" "$KILN_BIN" up -f "$WORK/kiln.toml" --listen "127.0.0.1:$PORT" --quiet >"$WORK/kiln.log" 2>&1 &
    pid=$!
    PIDS+=("$pid")
    for _ in $(seq 600); do curl -fs "http://127.0.0.1:$PORT/.well-known/spin/health" >/dev/null && break; sleep 0.1; done
    curl -fs -H 'x-token: letmein' "http://127.0.0.1:$PORT/mw/x" | grep -q '"x-token"' || die "the composed request did not reach echo: $(cat "$WORK/kiln.log")"
    curl -fs "http://127.0.0.1:$PORT/chain/x?target=echo&path=/x" | grep -q 'upstream-status: 200' || die "service chaining failed: $(cat "$WORK/kiln.log")"
    CPU[composed]+=" $(measure "$pid" "$WORK/token.lua" /mw/x 0)"
    CPU[mw-alone]+=" $(measure "$pid" "$WORK/report.lua" /mw/x 1)"
    CPU[internal]+=" $(measure "$pid" "$WORK/report.lua" "/chain/x?target=echo&path=/x" 0)"
    CPU[chain-alone]+=" $(measure "$pid" "$WORK/report.lua" /chain/x 1)"
    CPU[echo-alone]+=" $(measure "$pid" "$WORK/report.lua" /echo/x 0)"
    stop_pid "$pid"
    log "run $run: $(for k in $KINDS; do printf '%s=%s ' "$k" "${CPU[$k]##* }"; done)"
done

m() { median ${CPU[$1]}; }
sum() { awk -v a="$(m "$1")" -v b="$(m "$2")" 'BEGIN { printf "%.2f", a + b }'; }
printf '\n| chaining | chained request, CPU µs | the two calls by the client, CPU µs | ratio |\n|---|---|---|---|\n'
for pair in "composed mw-alone" "internal chain-alone"; do
    read -r chained first <<<"$pair"
    two=$(sum "$first" echo-alone)
    printf '| %s | %s | %s (%s + echo %s) | %s |\n' "$chained" "$(m "$chained")" "$two" "$(m "$first")" "$(m echo-alone)" \
        "$(awk -v a="$(m "$chained")" -v b="$two" 'BEGIN { printf "%.2f", a / b }')"
done
