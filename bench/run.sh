#!/usr/bin/env bash
# Kiln's benchmark: Kiln serving examples/hello against a native hyper server (bench/native-hello)
# giving the same response, measured in one run with the method of shared/notes/baselines.md:
#
#   - server pinned to core 0 (`taskset -c 0`), `taskset -c 1 wrk -t1 -c32 -d10s --latency`,
#     a fresh server process per run, 2 s warm-up, runs alternating native, kiln, native, kiln, ...;
#   - per server, medians over the runs of: requests/s, p50, p99, server CPU per request
#     ((utime+stime of the server's process tree over the measured run) / requests completed),
#     peak RSS (VmHWM);
#   - process start to first 200 response: native, kiln with a cold compile cache (a fresh
#     KILN_CACHE_DIR every launch) and kiln with a warm one (median of STARTS launches each, not
#     pinned).
#
# Prints a table and writes it to bench/results/latest.md. Only the kiln/native ratios mean much: the
# machine is shared and noisy.
#
# Environment knobs:
#   DURATION=10   seconds per measured run       RUNS=3      runs per server
#   WARMUP=2      seconds of warm-up per run      CONNS=32    wrk connections
#   STARTS=5      launches per start-up figure    SERVERS="native kiln"  (e.g. SERVERS=native)
#   SKIP_BUILD=1  use the binaries already built  CARGO_TARGET_DIR  where the host binaries are
#
# Key-value kinds (SERVERS="kiln kv-get-embedded kv-set-embedded kv-get-redis kv-set-redis", or
# bench/kv.sh): Kiln serving the spin_kv test guest (spin-sdk, fermyon:spin/key-value@2.0.0), every
# request one GET or one SET of a 100-byte value on the `default` store, embedded or on a Redis
# server this script starts (pinned with wrk, so its CPU is not counted as Kiln's). They are compared
# with `kiln` (hello) from the same run.
#
# WASI 0.3 and the engine's floor (SERVERS="native kiln kiln-p3"):
#   - `kiln-p3`: Kiln serving guests/hello_p3 (wasip3 0.7.1, wasi:http/handler@0.3.0, the same answer
#     and headers as examples/hello) under `kiln up`, measured exactly as `kiln`;
#   - with `kiln` (`kiln-p3`), every run also measures the engine's floor in process for the 0.2
#     hello (the 0.3 hello): bench/engine-floor pinned to the server core, FLOOR_ITERATIONS
#     iterations x FLOOR_ROUNDS rounds, thread CPU time per request (fresh store, instantiate,
#     request, handle + whole body, store drop);
#   - the same engine-floor run (`--trigger`) also measures Kiln's request path in process: the
#     guest as a one-route app under `kiln up`'s host, requests handed straight to its HTTP trigger
#     (routing, Spin's headers, Kiln's store, the instance's task, the floor; no HTTP, no socket),
#     in blocks taking turns with the floor, so Kiln's own work = trigger − floor is measured
#     directly rather than left over;
#   - the report splits kiln's CPU/request into native + floor (0.2) + Kiln's own (and the rest,
#     kiln − native − floor − Kiln's own in process: hyper and the kernel at Kiln's request rate),
#     and gives kiln-p3 / kiln (the 0.3/0.2 ratio) with the 0.3 floor.
#   FLOOR_ITERATIONS=20000  FLOOR_ROUNDS=3  (per run; the figures are medians over all rounds)
#
# Native at Kiln's request rate (SERVERS="native native-busy kiln"): `native-busy` is native-hello
# computing for the engine's floor (measured once before the runs, or BUSY_US) before each answer,
# registers only. It runs at about Kiln's request rate, where each request's syscalls and client
# wake-ups cost more than at native's own rate (fewer events per epoll_wait, more sleeping peers),
# and the report then gives Kiln's own work at the same rate: kiln − floor − (native-busy − busy).
set -euo pipefail

ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
DURATION=${DURATION:-10}
RUNS=${RUNS:-3}
WARMUP=${WARMUP:-2}
CONNS=${CONNS:-32}
STARTS=${STARTS:-5}
SERVERS=${SERVERS:-native kiln}
SKIP_BUILD=${SKIP_BUILD:-0}
FLOOR_ITERATIONS=${FLOOR_ITERATIONS:-20000}
FLOOR_ROUNDS=${FLOOR_ROUNDS:-3}
TARGET_DIR=${CARGO_TARGET_DIR:-$ROOT/target}
case $TARGET_DIR in /*) ;; *) TARGET_DIR=$ROOT/$TARGET_DIR ;; esac
RESULTS_DIR=$ROOT/bench/results
HELLO_DIR=$ROOT/examples/hello
HELLO_WASM=$ROOT/examples/target/wasm32-wasip2/release/hello.wasm
NATIVE_BIN=$TARGET_DIR/release/native-hello
KILN_BIN=$TARGET_DIR/release/kiln
FLOOR_BIN=$TARGET_DIR/release/engine-floor
HELLO_P3_WASM=$ROOT/guests/target/wasm32-wasip2/release/hello_p3.wasm
KV_WASM=$ROOT/guests/target/wasm32-wasip2/release/spin_kv.wasm
KV_VALUE=$(printf 'v%.0s' $(seq 100))

want() { [[ " $SERVERS " == *" $1 "* ]]; }
log() { printf '>> %s\n' "$*" >&2; }
die() { printf 'bench: %s\n' "$*" >&2; exit 1; }

for tool in wrk curl python3; do
    command -v "$tool" >/dev/null || die "$tool is not installed"
done

# Pinning needs two cores; without them, run unpinned (and say so).
if [[ $(nproc) -ge 2 ]] && command -v taskset >/dev/null; then
    PIN_SERVER=(taskset -c 0)
    PIN_LOAD=(taskset -c 1)
    PINNING="server on core 0, wrk on core 1"
else
    PIN_SERVER=()
    PIN_LOAD=()
    PINNING="not pinned (fewer than 2 cores or no taskset)"
fi
CLK_TCK=$(getconf CLK_TCK)

WORK=$(mktemp -d "${TMPDIR:-/tmp}/kiln-bench.XXXXXX")
PIDS=()

# shellcheck source=bench/lib.sh
source "$ROOT/bench/lib.sh"

# ---------------------------------------------------------------------------------------------------
# Build

if [[ $SKIP_BUILD != 1 ]]; then
    packages=()
    { want native || want native-busy; } && packages+=(-p native-hello)
    { want kiln || want kiln-p3; } && packages+=(-p kiln -p engine-floor)
    if [[ ${#packages[@]} -gt 0 ]]; then
        log "cargo build --release ${packages[*]}"
        (cd "$ROOT" && cargo build --release "${packages[@]}")
    fi
    if want kiln; then
        log "building examples/hello (wasm32-wasip2, release)"
        # The manifest's source is relative to examples/hello: build into examples/target.
        (cd "$HELLO_DIR" && env -u CARGO_TARGET_DIR -u CARGO_BUILD_TARGET -u RUSTFLAGS \
            cargo build --target wasm32-wasip2 --release)
    fi
    if want kiln-p3; then
        log "building guests/hello_p3 (wasm32-wasip2, release)"
        (cd "$ROOT/guests" && env -u CARGO_TARGET_DIR -u CARGO_BUILD_TARGET -u RUSTFLAGS \
            cargo build --target wasm32-wasip2 --release -p hello_p3)
    fi
fi
kv_kinds() { local k; for k in $SERVERS; do [[ $k == kv-* ]] && echo "$k"; done; }
if [[ -n $(kv_kinds) ]]; then
    [[ -x $KILN_BIN ]] || die "$KILN_BIN not found"
    [[ -f $KV_WASM ]] || die "$KV_WASM not found (build the guests: cargo test -p kiln --test e2e --no-run)"
fi
{ want native || want native-busy; } && { [[ -x $NATIVE_BIN ]] || die "$NATIVE_BIN not found (build it, or unset SKIP_BUILD)"; }
want native-busy && { [[ -x $FLOOR_BIN && -f $HELLO_WASM ]] || [[ -n ${BUSY_US:-} ]] || die "native-busy needs BUSY_US or engine-floor and the hello guest"; }
if want kiln; then
    [[ -x $KILN_BIN ]] || die "$KILN_BIN not found (build it, or run with SERVERS=native)"
    [[ -f $HELLO_WASM ]] || die "$HELLO_WASM not found"
fi
if want kiln-p3; then
    [[ -x $KILN_BIN ]] || die "$KILN_BIN not found"
    [[ -f $HELLO_P3_WASM ]] || die "$HELLO_P3_WASM not found (cd guests && cargo build --release --target wasm32-wasip2 -p hello_p3)"
fi
if want kiln || want kiln-p3; then
    [[ -x $FLOOR_BIN ]] || die "$FLOOR_BIN not found (cargo build --release -p engine-floor, or unset SKIP_BUILD)"
fi

# ---------------------------------------------------------------------------------------------------
# Helpers

# probe PORT: 0 if the health endpoint answers 200 (native answers 200 on any path). Bash builtins only (no fork), so it can poll tightly.
probe() {
    local line
    { exec 3<>"/dev/tcp/127.0.0.1/$1"; } 2>/dev/null || return 1
    printf 'GET /.well-known/spin/health HTTP/1.1\r\nHost: 127.0.0.1:%s\r\nConnection: close\r\n\r\n' "$1" >&3 2>/dev/null || {
        exec 3>&-
        return 1
    }
    IFS= read -r -t 10 line <&3 || line=
    exec 3>&-
    [[ $line == "HTTP/1."?" 200"* ]]
}

now_us() { local t=${EPOCHREALTIME/[.,]/}; echo "$t"; }

# start_server KIND PORT CACHE_DIR PIN(0|1): starts a server in the background; sets SERVER_PID.
start_server() {
    local kind=$1 port=$2 cache=$3 pin=$4 logf="$WORK/$1-$2.log"
    local pin_cmd=()
    [[ $pin == 1 ]] && pin_cmd=("${PIN_SERVER[@]}")
    case $kind in
        native)
            "${pin_cmd[@]}" "$NATIVE_BIN" --listen "127.0.0.1:$port" >"$logf" 2>&1 &
            ;;
        native-busy)
            "${pin_cmd[@]}" "$NATIVE_BIN" --listen "127.0.0.1:$port" --busy-ns "$BUSY_NS" >"$logf" 2>&1 &
            ;;
        kiln)
            KILN_CACHE_DIR=$cache "${pin_cmd[@]}" "$KILN_BIN" up -f "$HELLO_DIR" \
                --listen "127.0.0.1:$port" --quiet >"$logf" 2>&1 &
            ;;
        kiln-p3)
            local app=$WORK/p3-app-$port
            mkdir -p "$app"
            printf 'spin_manifest_version = 2\n[application]\nname = "hello-p3"\n[[trigger.http]]\nroute = "/..."\ncomponent = "hello"\n[component.hello]\nsource = "%s"\n' \
                "$HELLO_P3_WASM" >"$app/kiln.toml"
            KILN_CACHE_DIR=$cache "${pin_cmd[@]}" "$KILN_BIN" up -f "$app" \
                --listen "127.0.0.1:$port" --quiet >"$logf" 2>&1 &
            ;;
        kv-*)
            local app=$WORK/kv-app-$port
            mkdir -p "$app"
            printf 'spin_manifest_version = 2\n[application]\nname = "kv-bench"\n[[trigger.http]]\nroute = "/..."\ncomponent = "kv"\n[component.kv]\nsource = "%s"\nkey_value_stores = ["default"]\n' \
                "$KV_WASM" >"$app/kiln.toml"
            local rc=()
            if [[ $kind == *-redis ]]; then
                printf '[key_value_store.default]\ntype = "redis"\nurl = "redis://127.0.0.1:%s"\n' "$REDIS_PORT" >"$app/rc.toml"
                rc=(--runtime-config-file "$app/rc.toml")
            fi
            KILN_CACHE_DIR=$cache "${pin_cmd[@]}" "$KILN_BIN" up -f "$app" "${rc[@]}" \
                --listen "127.0.0.1:$port" --quiet >"$logf" 2>&1 &
            ;;
    esac
    SERVER_PID=$!
    PIDS+=("$SERVER_PID")
    SERVER_LOG=$logf
}

# wait_ready PORT PID: polls until `GET /` answers 200 (60 s at most).
wait_ready() {
    local port=$1 pid=$2 deadline=$(($(now_us) + 60000000))
    until probe "$port"; do
        if ! kill -0 "$pid" 2>/dev/null; then
            echo "--- server log ($SERVER_LOG) ---" >&2
            tail -n 30 "$SERVER_LOG" >&2 || true
            die "server (pid $pid) exited before answering 200 on port $port"
        fi
        if (($(now_us) > deadline)); then
            tail -n 30 "$SERVER_LOG" >&2 || true
            die "server (pid $pid) did not answer 200 on port $port within 60 s"
        fi
    done
}

# wrk's done() hook: exact counts and percentiles in µs on one line.
cat >"$WORK/report.lua" <<'EOF'
done = function(summary, latency, requests)
  local e = summary.errors
  io.write(string.format("KILNBENCH requests=%d duration_us=%d p50_us=%d p99_us=%d non2xx=%d socket_errors=%d\n",
    summary.requests, summary.duration, latency:percentile(50), latency:percentile(99),
    e.status, e.connect + e.read + e.write + e.timeout))
end
EOF

declare -A RPS P50 P99 CPU RSS ERRS
RAW_ROWS=()

# load_run KIND RUN: one measured run against a fresh, pinned server.
load_run() {
    local kind=$1 run=$2 port cache="" out line
    port=$(free_port)
    if [[ $kind == kiln || $kind == kiln-p3 ]]; then
        cache=$WARM_CACHE
    fi
    [[ $kind == kv-* ]] && cache=$WARM_CACHE
    start_server "$kind" "$port" "$cache" 1
    local pid=$SERVER_PID
    wait_ready "$port" "$pid"
    local url
    url=$(kind_url "$kind" "$port")
    run_wrk /dev/null -d"${WARMUP}s" "$url"

    local t0 t1
    t0=$(cpu_ticks "$pid")
    run_wrk "$WORK/wrk.out" -d"${DURATION}s" --latency -s "$WORK/report.lua" "$url"
    t1=$(cpu_ticks "$pid")
    out=$(cat "$WORK/wrk.out")
    local rss
    rss=$(peak_rss_kib "$pid")
    kill -0 "$pid" 2>/dev/null || die "$kind server died during the run (log: $(tail -n 5 "$SERVER_LOG"))"
    stop_pid "$pid"

    line=$(grep '^KILNBENCH ' <<<"$out") || die "no wrk report in: $out"
    local requests duration_us p50 p99 non2xx sockerr
    requests=$(sed -E 's/.*requests=([0-9]+).*/\1/' <<<"$line")
    duration_us=$(sed -E 's/.*duration_us=([0-9]+).*/\1/' <<<"$line")
    p50=$(sed -E 's/.*p50_us=([0-9]+).*/\1/' <<<"$line")
    p99=$(sed -E 's/.*p99_us=([0-9]+).*/\1/' <<<"$line")
    non2xx=$(sed -E 's/.*non2xx=([0-9]+).*/\1/' <<<"$line")
    sockerr=$(sed -E 's/.*socket_errors=([0-9]+).*/\1/' <<<"$line")
    ((requests > 0)) || die "$kind: wrk completed no request"

    local rps cpu_us
    rps=$(awk -v n="$requests" -v d="$duration_us" 'BEGIN { printf "%.0f", n / (d / 1e6) }')
    cpu_us=$(awk -v t=$((t1 - t0)) -v hz="$CLK_TCK" -v n="$requests" 'BEGIN { printf "%.2f", t / hz * 1e6 / n }')

    RPS[$kind]+="$rps "
    P50[$kind]+="$p50 "
    P99[$kind]+="$p99 "
    CPU[$kind]+="$cpu_us "
    RSS[$kind]+="$rss "
    ERRS[$kind]=$((${ERRS[$kind]:-0} + non2xx + sockerr))
    RAW_ROWS+=("| $run | $kind | $rps | $(us_to_ms "$p50") | $(us_to_ms "$p99") | $cpu_us µs | $(kib_to_mb "$rss") | $requests | $non2xx / $sockerr |")
    log "run $run $kind: $rps req/s, p50 $(us_to_ms "$p50"), p99 $(us_to_ms "$p99"), $cpu_us µs CPU/request, peak RSS $(kib_to_mb "$rss")"
}

# floor_run LABEL RUN ARGS...: bench/engine-floor pinned to the server core; keeps every round's
# figures (µs per iteration: total and phases) for the medians.
declare -A FLOOR_TOTAL FLOOR_STORE FLOOR_INST FLOOR_REQ FLOOR_HANDLE FLOOR_DROP FLOOR_OWN FLOOR_TRIGGER
FLOOR_ROWS=()
floor_run() {
    local label=$1 run=$2 out line
    shift 2
    # Library backtraces off, as `kiln` does for itself (crates/cli/src/main.rs): with RUST_BACKTRACE
    # set, wasmtime captures one per error, and a WASI 0.3 store drop makes one.
    out=$(RUST_LIB_BACKTRACE=${RUST_LIB_BACKTRACE:-0} "${PIN_SERVER[@]}" "$FLOOR_BIN" --iterations "$FLOOR_ITERATIONS" --rounds "$FLOOR_ROUNDS" "$@" 2>"$WORK/floor.err") ||
        die "engine-floor $* failed: $(tail -n 5 "$WORK/floor.err")"
    line=$(grep '^FLOOR ' <<<"$out") || die "no FLOOR line from engine-floor: $out"
    # Every round's figures, from the per-round lines on stderr.
    local r total store inst req handle drop
    while IFS= read -r r; do
        total=$(sed -E 's/.*total ([0-9.]+).*/\1/' <<<"$r")
        store=$(sed -E 's/.*store ([0-9.]+).*/\1/' <<<"$r")
        inst=$(sed -E 's/.*instantiate ([0-9.]+).*/\1/' <<<"$r")
        req=$(sed -E 's/.*request ([0-9.]+).*/\1/' <<<"$r")
        handle=$(sed -E 's/.*handle_body ([0-9.]+).*/\1/' <<<"$r")
        drop=$(sed -E 's/.*drop ([0-9.]+).*/\1/' <<<"$r")
        FLOOR_TOTAL[$label]+="$total "; FLOOR_STORE[$label]+="$store "; FLOOR_INST[$label]+="$inst "
        FLOOR_REQ[$label]+="$req "; FLOOR_HANDLE[$label]+="$handle "; FLOOR_DROP[$label]+="$drop "
    done < <(grep '^round ' "$WORK/floor.err")
    # With --trigger: Kiln's request path in process and its own part (medians of the blocks).
    if [[ $line == *" own_us="* ]]; then
        FLOOR_OWN[$label]+="$(sed -E 's/.* own_us=([0-9.-]+).*/\1/' <<<"$line") "
        FLOOR_TRIGGER[$label]+="$(sed -E 's/.* trigger_us=([0-9.]+).*/\1/' <<<"$line") "
    fi
    FLOOR_ROWS+=("| $run | floor $label | ${line#FLOOR } |")
    log "run $run floor $label: ${line#FLOOR }"
}

# kind_url KIND PORT: what the load asks for. A GET of a key-value store reads a key set first.
kind_url() {
    local kind=$1 port=$2 base="http://127.0.0.1:$2"
    case $kind in
        kv-get-*)
            probe_path "$port" "/?op=set&key=bench&value=$KV_VALUE"
            echo "$base/?op=get&key=bench" ;;
        kv-set-*) echo "$base/?op=set&key=bench&value=$KV_VALUE" ;;
        *) echo "$base/" ;;
    esac
}

# probe_path PORT PATH: one request, must answer 200.
probe_path() {
    local line
    exec 3<>"/dev/tcp/127.0.0.1/$1" || die "cannot connect to port $1"
    printf 'GET %s HTTP/1.1\r\nHost: 127.0.0.1\r\nConnection: close\r\n\r\n' "$2" >&3
    IFS= read -r -t 10 line <&3 || line=
    exec 3>&-
    [[ $line == "HTTP/1."?" 200"* ]] || die "GET $2 answered: $line"
}

# run_wrk OUTFILE ARGS...: wrk on the load core, in the background so that a signal reaches the
# EXIT trap (which stops it) at once.
run_wrk() {
    local outf=$1
    shift
    "${PIN_LOAD[@]}" wrk -t1 -c"$CONNS" "$@" >"$outf" &
    local w=$!
    PIDS+=("$w")
    wait "$w" || die "wrk failed: $(cat "$outf" 2>/dev/null)"
    local kept=() p
    for p in "${PIDS[@]}"; do [[ $p == "$w" ]] || kept+=("$p"); done
    PIDS=("${kept[@]}")
}

us_to_ms() { awk -v u="$1" 'BEGIN { printf "%.2f ms", u / 1000 }'; }
kib_to_mb() { awk -v k="$1" 'BEGIN { printf "%.1f MB", k / 1024 }'; }

# start_time KIND MODE: sets START_US to the µs from launch to the first 200, unpinned.
# MODE: cold | warm | - . (Runs in this shell, not in $(...), so the EXIT trap covers its server.)
start_time() {
    local kind=$1 mode=$2 port cache="" t0 t1
    port=$(free_port)
    case $mode in
        cold) cache=$(mktemp -d "$WORK/cold-cache.XXXXXX") ;;  # fresh: nothing compiled yet
        warm) cache=$WARM_CACHE ;;
    esac
    t0=$(now_us)
    start_server "$kind" "$port" "$cache" 0
    wait_ready "$port" "$SERVER_PID"
    t1=$(now_us)
    stop_pid "$SERVER_PID"
    if [[ $mode == cold ]]; then rm -rf "$cache"; fi
    START_US=$((t1 - t0))
}

# ---------------------------------------------------------------------------------------------------
# Measure

WARM_CACHE=$WORK/warm-cache
mkdir -p "$WARM_CACHE"
if want kiln; then
    # Fill the compile cache once, so the load runs and the warm start-ups all find it.
    log "priming kiln's compile cache"
    start_time kiln warm
fi
if want kiln-p3; then
    log "priming kiln's compile cache (hello_p3)"
    start_time kiln-p3 warm
fi

if [[ -n $(kv_kinds | grep redis || true) ]]; then
    command -v redis-server >/dev/null || die "redis-server is not installed (apt-get install redis-server)"
    REDIS_PORT=$(free_port)
    "${PIN_LOAD[@]}" redis-server --port "$REDIS_PORT" --bind 127.0.0.1 --save "" --appendonly no \
        >"$WORK/redis.log" 2>&1 &
    PIDS+=("$!")
    for _ in $(seq 100); do
        { exec 4<>"/dev/tcp/127.0.0.1/$REDIS_PORT"; } 2>/dev/null && { exec 4>&-; break; }
        sleep 0.05
    done
    log "redis-server on port $REDIS_PORT ($PINNING)"
fi

if want native-busy; then
    if [[ -z ${BUSY_US:-} ]]; then
        BUSY_US=$("${PIN_SERVER[@]}" "$FLOOR_BIN" --iterations "$FLOOR_ITERATIONS" --rounds 1 --guest "$HELLO_WASM" 2>/dev/null |
            sed -nE 's/^FLOOR .*floor_us=([0-9.]+).*/\1/p')
        [[ -n $BUSY_US ]] || die "engine-floor gave no floor for native-busy"
    fi
    BUSY_NS=$(awk -v u="$BUSY_US" 'BEGIN { printf "%.0f", u * 1000 }')
    log "native-busy computes ${BUSY_US} µs (the engine's floor) per request"
fi

log "load: wrk -t1 -c$CONNS -d${DURATION}s after ${WARMUP}s warm-up, $RUNS runs per server, $PINNING"
for ((run = 1; run <= RUNS; run++)); do
    for kind in $SERVERS; do
        load_run "$kind" "$run"
    done
    if want kiln; then floor_run 0.2 "$run" --guest "$HELLO_WASM" --trigger; fi
    if want kiln-p3; then floor_run 0.3 "$run" --guest "$HELLO_P3_WASM" --p3 --trigger; fi
done

declare -A START_MED
start_series() { # label kind mode
    local label=$1 kind=$2 mode=$3 i samples=()
    for ((i = 0; i < STARTS; i++)); do
        start_time "$kind" "$mode"
        samples+=("$START_US")
    done
    START_MED[$label]=$(median "${samples[@]}")
    log "start to first 200, $label: median $(us_to_ms "${START_MED[$label]}") (samples µs: ${samples[*]})"
}
want native && start_series native native -
if want kiln; then
    start_series "kiln, cold cache" kiln cold
    start_series "kiln, warm cache" kiln warm
fi

# ---------------------------------------------------------------------------------------------------
# Report

declare -A M_RPS M_CPU M_FLOOR M_OWN
row() {
    local kind=$1 label=$2 rps p50 p99 cpu rss
    # shellcheck disable=SC2086 # word splitting of the space-separated samples is intended
    {
        rps=$(median ${RPS[$kind]}); p50=$(median ${P50[$kind]}); p99=$(median ${P99[$kind]})
        cpu=$(median ${CPU[$kind]}); rss=$(median ${RSS[$kind]})
    }
    M_RPS[$kind]=$rps
    M_CPU[$kind]=$cpu
    printf '| %s | %s | %s | %s | %s µs | %s | %s |\n' "$label" \
        "$(awk -v x="$rps" 'BEGIN { printf "%.0f", x }')" "$(us_to_ms "$p50")" "$(us_to_ms "$p99")" \
        "$(awk -v x="$cpu" 'BEGIN { printf "%.1f", x }')" "$(kib_to_mb "$rss")" "${ERRS[$kind]:-0}"
}

commit=$(git -C "$ROOT" rev-parse --short HEAD 2>/dev/null || echo unknown)
[[ -n $(git -C "$ROOT" status --porcelain 2>/dev/null | head -n 1) ]] && commit+=" (dirty)"

REPORT=$WORK/latest.md
{
    echo "# Kiln benchmark: $SERVERS"
    echo
    echo "- date: $(date -u '+%Y-%m-%d %H:%M UTC'); commit $commit; $(uname -sr); $(nproc) cores"
    echo "- load: \`wrk -t1 -c$CONNS -d${DURATION}s --latency\`, ${WARMUP} s warm-up, fresh server per run;" \
        "$RUNS runs per server, alternating; medians; $PINNING"
    echo "- CPU/request: utime+stime of the server's process tree over the measured run ÷ requests completed" \
        "(CLK_TCK $CLK_TCK)"
    if want kiln; then
        echo "- guest: examples/hello ($(stat -c %s "$HELLO_WASM") bytes), \`kiln up --quiet\`, warm compile cache"
    fi
    if want kiln-p3; then
        echo "- kiln-p3 guest: guests/hello_p3 ($(stat -c %s "$HELLO_P3_WASM") bytes, wasip3 0.7.1, wasi:http/handler@0.3.0), served the same way"
    fi
    if want kiln || want kiln-p3; then
        echo "- engine floor: bench/engine-floor on the server core, $FLOOR_ITERATIONS iterations × $FLOOR_ROUNDS rounds after every run's servers;" \
            "thread CPU time per request, medians of all rounds; load average at the end: $(cut -d' ' -f1-3 /proc/loadavg)"
    fi
    echo
    echo "| server | req/s | p50 | p99 | CPU/request | peak RSS | errors |"
    echo "|---|---|---|---|---|---|---|"
    want native && row native "native hyper (1 thread)"
    want native-busy && row native-busy "native hyper + ${BUSY_US} µs of compute per request"
    want kiln && row kiln "kiln (hello)"
    want kiln-p3 && row kiln-p3 "kiln-p3 (hello_p3, WASI 0.3)"
    for kind in $(kv_kinds); do
        row "$kind" "kiln, key-value ${kind#kv-}"
    done
    if [[ -n $(kv_kinds) ]] && want kiln; then
        echo
        echo "| vs kiln (hello), same run | req/s | CPU/request |"
        echo "|---|---|---|"
        for kind in $(kv_kinds); do
            printf '| %s | %s× | %s× |\n' "${kind#kv-}" \
                "$(awk -v k="${M_RPS[$kind]}" -v n="${M_RPS[kiln]}" 'BEGIN { printf "%.3f", k / n }')" \
                "$(awk -v k="${M_CPU[$kind]}" -v n="${M_CPU[kiln]}" 'BEGIN { printf "%.2f", k / n }')"
        done
    fi
    if want native && want kiln; then
        echo
        echo "| kiln / native | req/s | CPU/request |"
        echo "|---|---|---|"
        printf '| ratio | %s× | %s× |\n' \
            "$(awk -v k="${M_RPS[kiln]}" -v n="${M_RPS[native]}" 'BEGIN { printf "%.3f", k / n }')" \
            "$(awk -v k="${M_CPU[kiln]}" -v n="${M_CPU[native]}" 'BEGIN { printf "%.2f", k / n }')"
    fi
    if [[ -n ${FLOOR_TOTAL[*]:-} ]]; then
        echo
        echo "The engine's floor in process (µs of CPU per request, fresh instance each):"
        echo
        echo "| floor | total | store | instantiate | request | handle + body | drop |"
        echo "|---|---|---|---|---|---|---|"
        for label in 0.2 0.3; do
            [[ -n ${FLOOR_TOTAL[$label]:-} ]] || continue
            # shellcheck disable=SC2086
            M_FLOOR[$label]=$(median ${FLOOR_TOTAL[$label]})
            # shellcheck disable=SC2086
            printf '| WASI %s hello | %.2f | %.2f | %.2f | %.2f | %.2f | %.2f |\n' "$label" "${M_FLOOR[$label]}" \
                "$(median ${FLOOR_STORE[$label]})" "$(median ${FLOOR_INST[$label]})" "$(median ${FLOOR_REQ[$label]})" \
                "$(median ${FLOOR_HANDLE[$label]})" "$(median ${FLOOR_DROP[$label]})"
        done
    fi
    if [[ -n ${FLOOR_OWN[*]:-} ]]; then
        echo
        echo "Kiln's request path in process (\`engine-floor --trigger\`: the hello as a one-route app under"
        echo "\`kiln up\`'s host, each request handed to its HTTP trigger, in blocks taking turns with the floor;"
        echo "µs of CPU per request, medians):"
        echo
        echo "| guest | Kiln's trigger | Kiln's own = trigger − floor |"
        echo "|---|---|---|"
        for label in 0.2 0.3; do
            [[ -n ${FLOOR_OWN[$label]:-} ]] || continue
            # shellcheck disable=SC2086
            M_OWN[$label]=$(median ${FLOOR_OWN[$label]})
            # shellcheck disable=SC2086
            printf '| WASI %s hello | %.2f | **%.2f** |\n' "$label" "$(median ${FLOOR_TRIGGER[$label]})" "${M_OWN[$label]}"
        done
    fi
    if want native && want kiln && [[ -n ${M_FLOOR[0.2]:-} ]]; then
        echo
        echo "Where kiln's CPU goes, same run (µs per request):"
        echo
        echo "| figure | µs / ratio |"
        echo "|---|---|"
        awk -v n="${M_CPU[native]}" -v k="${M_CPU[kiln]}" -v f="${M_FLOOR[0.2]}" 'BEGIN {
            printf "| native CPU/request | %.1f |\n", n
            printf "| engine floor, WASI 0.2 hello | %.1f |\n", f
            printf "| Kiln'"'"'s own = kiln − native − floor | %.1f |\n", k - n - f
            printf "| kiln CPU/request | %.1f |\n", k
            printf "| kiln / native | %.2f× |\n", k / n
            printf "| (native + floor) / native: the fresh-instance floor | %.2f× |\n", (n + f) / n }'
        if [[ -n ${M_OWN[0.2]:-} ]]; then
            awk -v n="${M_CPU[native]}" -v k="${M_CPU[kiln]}" -v f="${M_FLOOR[0.2]}" -v o="${M_OWN[0.2]}" 'BEGIN {
                printf "| Kiln'"'"'s own, in process (trigger − floor, above) | %.1f |\n", o
                printf "| the rest over HTTP = kiln − native − floor − own in process | %.1f |\n", k - n - f - o }'
        fi
        if want native-busy; then
            awk -v n="${M_CPU[native]}" -v k="${M_CPU[kiln]}" -v f="${M_FLOOR[0.2]}" -v nb="${M_CPU[native-busy]}" -v b="$BUSY_US" 'BEGIN {
                printf "| native at about Kiln'"'"'s rate = native-busy − its compute | %.1f |\n", nb - b
                printf "| Kiln'"'"'s own at the same rate = kiln − floor − (native-busy − compute) | %.1f |\n", k - f - (nb - b) }'
        fi
        if want kiln-p3 && [[ -n ${M_FLOOR[0.3]:-} ]]; then
            awk -v n="${M_CPU[native]}" -v k="${M_CPU[kiln]}" -v p="${M_CPU[kiln-p3]}" -v f="${M_FLOOR[0.3]}" -v f2="${M_FLOOR[0.2]}" 'BEGIN {
                printf "| kiln-p3 CPU/request | %.1f |\n", p
                printf "| engine floor, WASI 0.3 hello | %.1f |\n", f
                printf "| Kiln'"'"'s own, 0.3 = kiln-p3 − native − floor 0.3 | %.1f |\n", p - n - f
                printf "| 0.3 / 0.2 over HTTP = kiln-p3 / kiln | %.2f× |\n", p / k
                printf "| 0.3 / 0.2 floor | %.2f× |\n", f / f2
                printf "| kiln-p3 / native | %.2f× |\n", p / n }'
        fi
    fi
    echo
    echo "Process start to first 200 on \`GET /\` (median of $STARTS launches, not pinned):"
    echo
    echo "| server | start → first 200 |"
    echo "|---|---|"
    for label in native "kiln, cold cache" "kiln, warm cache"; do
        [[ -n ${START_MED[$label]:-} ]] && printf '| %s | %s |\n' "$label" "$(us_to_ms "${START_MED[$label]}")"
    done
    echo
    echo "<details><summary>every run</summary>"
    echo
    echo "| run | server | req/s | p50 | p99 | CPU/request | peak RSS | requests | non-2xx / socket errors |"
    echo "|---|---|---|---|---|---|---|---|---|"
    printf '%s\n' "${RAW_ROWS[@]}"
    if [[ ${#FLOOR_ROWS[@]} -gt 0 ]]; then
        echo
        echo "| run | floor | engine-floor's summary (medians of the run's rounds) |"
        echo "|---|---|---|"
        printf '%s\n' "${FLOOR_ROWS[@]}"
    fi
    echo
    echo "</details>"
} >"$REPORT"

mkdir -p "$RESULTS_DIR"
cp "$REPORT" "$RESULTS_DIR/latest.md"
echo
cat "$REPORT"
echo
log "written to bench/results/latest.md"
