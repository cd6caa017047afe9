#!/usr/bin/env bash
# NATS benchmark: messages/s through Kiln's NATS trigger against a native async-nats subscriber
# (bench/native-nats) in the same run, core NATS and JetStream.
#
#   - a fresh nats-server (-js, store in a temp dir) per script run, pinned with the load to core 1;
#   - the subscriber under test pinned to core 0, a fresh process per run; runs alternate
#     native, kiln, native, kiln, ...;
#   - core:      `native-nats request` publishes COUNT messages of SIZE bytes on bench.core, each with
#                its own reply subject, at most WINDOW unanswered; the subscriber answers each (native:
#                publishes an empty reply; kiln: the `msg_bench` guest calls request-reply.reply).
#                msgs/s = answers / (first publish → last answer).
#   - jetstream: stream BENCH over bench.js (purged per run); the subscriber is a durable pull
#                consumer acking each message after handling it (kiln: `durable = ...` trigger running
#                `msg_bench`). `native-nats js-publish` publishes JS_COUNT messages (stream acks awaited,
#                WINDOW in flight) while `native-nats js-wait` polls the consumer's ack floor;
#                msgs/s = JS_COUNT / (start → all acked).
#   - serve-core / serve-js: the same app deployed into `kiln serve` (over the admin API, with
#                `max_concurrency=1000` as `kiln up` has by default) instead of run by `kiln up`.
#   - CPU µs/message: utime+stime of the subscriber's process tree over the measured run ÷ messages.
#
# Prints a table and writes it to bench/results/nats-latest.md. Compare ratios from one run only.
#
# Environment knobs:
#   COUNT=200000  core messages per run      JS_COUNT=50000  JetStream messages per run
#   SIZE=128      payload bytes              WINDOW=1000     outstanding requests / acks
#   RUNS=3        runs per kind              KINDS="native-core kiln-core native-js kiln-js"
#                 (add serve-core serve-js for platform mode)
#   SKIP_BUILD=1  use the binaries already built   CARGO_TARGET_DIR  where the host binaries are
set -euo pipefail

ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
COUNT=${COUNT:-200000}
JS_COUNT=${JS_COUNT:-50000}
SIZE=${SIZE:-128}
WINDOW=${WINDOW:-1000}
RUNS=${RUNS:-3}
KINDS=${KINDS:-native-core kiln-core native-js kiln-js}
SKIP_BUILD=${SKIP_BUILD:-0}
TARGET_DIR=${CARGO_TARGET_DIR:-$ROOT/target}
case $TARGET_DIR in /*) ;; *) TARGET_DIR=$ROOT/$TARGET_DIR ;; esac
NATIVE_BIN=$TARGET_DIR/release/native-nats
KILN_BIN=$TARGET_DIR/release/kiln
BENCH_WASM=$ROOT/guests/target/wasm32-wasip2/release/msg_bench.wasm
RESULTS_DIR=$ROOT/bench/results

want() { [[ " $KINDS " == *" $1 "* ]]; }
wants_kiln() { [[ " $KINDS " == *" kiln-"* || " $KINDS " == *" serve-"* ]]; }
log() { printf '>> %s\n' "$*" >&2; }
die() { printf 'bench/nats: %s\n' "$*" >&2; exit 1; }

for tool in python3 nats-server; do
    command -v "$tool" >/dev/null || die "$tool is not installed (nats-server: apt-get install nats-server)"
done

if [[ $(nproc) -ge 2 ]] && command -v taskset >/dev/null; then
    PIN_SUB=(taskset -c 0)
    PIN_LOAD=(taskset -c 1)
    PINNING="subscriber on core 0, nats-server and publisher on core 1"
else
    PIN_SUB=()
    PIN_LOAD=()
    PINNING="not pinned (fewer than 2 cores or no taskset)"
fi
CLK_TCK=$(getconf CLK_TCK)

WORK=$(mktemp -d "${TMPDIR:-/tmp}/kiln-nats-bench.XXXXXX")
PIDS=()
# shellcheck source=bench/lib.sh
source "$ROOT/bench/lib.sh"

# ---------------------------------------------------------------------------------------------------
# Build

if [[ $SKIP_BUILD != 1 ]]; then
    packages=(-p native-nats)
    wants_kiln && packages+=(-p kiln)
    log "cargo build --release ${packages[*]}"
    (cd "$ROOT" && cargo build --release "${packages[@]}")
    if wants_kiln; then
        log "building the msg_bench guest (wasm32-wasip2, release)"
        (cd "$ROOT/guests" && env -u CARGO_TARGET_DIR -u CARGO_BUILD_TARGET -u RUSTFLAGS \
            cargo build --target wasm32-wasip2 --release -p msg_bench)
    fi
fi
[[ -x $NATIVE_BIN ]] || die "$NATIVE_BIN not found (build it, or unset SKIP_BUILD)"
if wants_kiln; then
    [[ -x $KILN_BIN ]] || die "$KILN_BIN not found"
    [[ -f $BENCH_WASM ]] || die "$BENCH_WASM not found"
fi

# ---------------------------------------------------------------------------------------------------
# Helpers

# field NAME LINE: the value of NAME=... in a NATSBENCH line.
field() { sed -E "s/.*[ ]$1=([0-9]+).*/\1/" <<<"$2"; }

# load CMD...: the load generator on the load core; prints its NATSBENCH line.
load() {
    "${PIN_LOAD[@]}" "$NATIVE_BIN" "$@" --url "$NATS_URL" | grep '^NATSBENCH ' || die "no NATSBENCH line from: $*"
}

# ---------------------------------------------------------------------------------------------------
# nats-server

NATS_PORT=$(free_port)
NATS_URL=nats://127.0.0.1:$NATS_PORT
"${PIN_LOAD[@]}" nats-server -a 127.0.0.1 -p "$NATS_PORT" -js -sd "$WORK/nats" >"$WORK/nats.log" 2>&1 &
PIDS+=("$!")
for _ in $(seq 100); do
    { exec 4<>"/dev/tcp/127.0.0.1/$NATS_PORT"; } 2>/dev/null && { exec 4>&-; break; }
    sleep 0.05
done
log "nats-server $(nats-server --version 2>/dev/null | awk '{print $2}') on port $NATS_PORT ($PINNING)"
KILN_CACHE=$WORK/kiln-cache
mkdir -p "$KILN_CACHE"

# start_sub KIND RUN: starts the subscriber under test; sets SUB_PID once it is ready.
start_sub() {
    local kind=$1 run=$2 logf="$WORK/$1-$2.log"
    case $kind in
        native-core)
            "${PIN_SUB[@]}" "$NATIVE_BIN" serve --url "$NATS_URL" --subject bench.core >"$logf" 2>&1 &
            ;;
        native-js)
            "${PIN_SUB[@]}" "$NATIVE_BIN" serve-js --url "$NATS_URL" --stream BENCH --durable "native$run" >"$logf" 2>&1 &
            ;;
        kiln-core | kiln-js | serve-core | serve-js)
            local app=$WORK/app-$kind-$run trigger
            mkdir -p "$app"
            cp "$BENCH_WASM" "$app/bench.wasm"
            if [[ $kind == *-core ]]; then
                trigger='subject = "bench.core"'
            else
                trigger=$(printf 'subject = "bench.js"\ndurable = "%s%s"' "${kind%%-*}" "$run")
            fi
            printf 'spin_manifest_version = 2\n[application]\nname = "nats-bench"\n[application.trigger.nats]\nurl = "%s"\n[[trigger.nats]]\n%s\ncomponent = "bench"\n[component.bench]\nsource = "bench.wasm"\n' \
                "$NATS_URL" "$trigger" >"$app/kiln.toml"
            if [[ $kind == kiln-* ]]; then
                KILN_CACHE_DIR=$KILN_CACHE "${PIN_SUB[@]}" "$KILN_BIN" up -f "$app" --listen "127.0.0.1:$(free_port)" \
                    --quiet --state-dir "$app/.kiln" >"$logf" 2>&1 &
            else
                local admin_port
                admin_port=$(free_port)
                KILN_CACHE_DIR=$KILN_CACHE "${PIN_SUB[@]}" "$KILN_BIN" serve -q --data-dir "$app/data" \
                    --listen "127.0.0.1:$(free_port)" --admin-listen "127.0.0.1:$admin_port" >"$logf" 2>&1 &
                SUB_PID=$!
                PIDS+=("$SUB_PID")
                deploy_to_serve "$app" "$admin_port" "$logf"
                SUB_LOG=$logf
                wait_ready "$kind" "$run" "$logf"
                return 0
            fi
            ;;
    esac
    SUB_PID=$!
    PIDS+=("$SUB_PID")
    SUB_LOG=$logf
    wait_ready "$kind" "$run" "$logf"
}

# deploy_to_serve APP_DIR ADMIN_PORT LOG: waits for the host's admin API, then deploys the app.
deploy_to_serve() {
    local app=$1 admin=http://127.0.0.1:$2 logf=$3 i
    for ((i = 0; ; i++)); do
        [[ $(curl -s -o /dev/null -w '%{http_code}' "$admin/healthz" || true) == 200 ]] && break
        ((i < 600)) || { tail -n 30 "$logf" >&2; die "kiln serve did not start"; }
        sleep 0.1
    done
    tar -C "$app" -czf "$app.tar.gz" kiln.toml bench.wasm
    printf 'Authorization: Bearer %s\n' "$(cat "$app/data/admin-token")" >"$app.auth"
    local status
    status=$(curl -sS -o "$app.deploy" -w '%{http_code}' -X PUT -H @"$app.auth" --data-binary @"$app.tar.gz" \
        "$admin/v1/apps/bench?max_concurrency=1000") || die "deploy: curl failed"
    [[ $status == 201 ]] || die "deploy: HTTP $status: $(cat "$app.deploy")"
}

# wait_ready KIND RUN LOG: native prints `ready`; kiln answers requests (core) or has made its
# consumer (JetStream).
wait_ready() {
    local kind=$1 run=$2 logf=$3 i
    for ((i = 0; i < 600; i++)); do
        kill -0 "$SUB_PID" 2>/dev/null || { tail -n 30 "$logf" >&2; die "$kind exited before it was ready"; }
        case $kind in
            native-*) grep -q '^ready' "$logf" && return 0 ;;
            kiln-core | serve-core)
                local out
                out=$("$NATIVE_BIN" request --url "$NATS_URL" --subject bench.core --count 1 --timeout 1 2>/dev/null || true)
                [[ $out == *"answered=1"* ]] && return 0
                ;;
            kiln-js | serve-js)
                local out
                out=$("$NATIVE_BIN" js-wait --url "$NATS_URL" --stream BENCH --durable "${kind%%-*}$run" --count 0 --timeout 1 2>/dev/null || true)
                [[ $out == *"found=1"* ]] && return 0
                ;;
        esac
        sleep 0.1
    done
    tail -n 30 "$logf" >&2
    die "$kind was not ready within 60 s"
}

declare -A RATE CPU DONE
RAW_ROWS=()

measure() {
    local kind=$1 run=$2 line t0 t1 done_n elapsed
    if [[ $kind == *-js ]]; then
        "$NATIVE_BIN" stream --url "$NATS_URL" --stream BENCH --subject bench.js >/dev/null || die "cannot create stream BENCH"
    fi
    start_sub "$kind" "$run"
    local pid=$SUB_PID
    if [[ $kind == *-core ]]; then
        load request --subject bench.core --count 2000 --size "$SIZE" --window "$WINDOW" >/dev/null  # warm-up
        t0=$(cpu_ticks "$pid")
        line=$(load request --subject bench.core --count "$COUNT" --size "$SIZE" --window "$WINDOW")
        t1=$(cpu_ticks "$pid")
        done_n=$(field answered "$line")
        elapsed=$(field elapsed_us "$line")
        [[ $done_n == "$COUNT" ]] || log "$kind run $run: only $done_n of $COUNT answered"
    else
        local durable=native$run
        [[ $kind == kiln-js || $kind == serve-js ]] && durable=${kind%%-*}$run
        t0=$(cpu_ticks "$pid")
        "${PIN_LOAD[@]}" "$NATIVE_BIN" js-wait --url "$NATS_URL" --stream BENCH --durable "$durable" --count "$JS_COUNT" --timeout 300 >"$WORK/wait.out" &
        local waiter=$!
        PIDS+=("$waiter")
        load js-publish --subject bench.js --count "$JS_COUNT" --size "$SIZE" --window "$WINDOW" >/dev/null
        wait "$waiter" || die "js-wait failed"
        t1=$(cpu_ticks "$pid")
        line=$(grep '^NATSBENCH ' "$WORK/wait.out") || die "no js-wait report"
        done_n=$(field acked "$line")
        elapsed=$(field elapsed_us "$line")
        [[ $done_n -ge $JS_COUNT ]] || log "$kind run $run: only $done_n of $JS_COUNT acked"
    fi
    kill -0 "$pid" 2>/dev/null || die "$kind died during the run: $(tail -n 5 "$SUB_LOG")"
    stop_pid "$pid"
    ((done_n > 0)) || die "$kind: nothing handled"
    local rate cpu_us
    rate=$(awk -v n="$done_n" -v d="$elapsed" 'BEGIN { printf "%.0f", n / (d / 1e6) }')
    cpu_us=$(awk -v t=$((t1 - t0)) -v hz="$CLK_TCK" -v n="$done_n" 'BEGIN { printf "%.2f", t / hz * 1e6 / n }')
    RATE[$kind]+="$rate "
    CPU[$kind]+="$cpu_us "
    DONE[$kind]+="$done_n "
    RAW_ROWS+=("| $run | $kind | $rate | $cpu_us µs | $done_n |")
    log "run $run $kind: $rate msgs/s, $cpu_us µs CPU/message, $done_n handled"
}

log "core: $COUNT requests of $SIZE B, window $WINDOW; JetStream: $JS_COUNT messages; $RUNS runs per kind"
for ((run = 1; run <= RUNS; run++)); do
    for kind in $KINDS; do
        measure "$kind" "$run"
    done
done

# ---------------------------------------------------------------------------------------------------
# Report

declare -A M_RATE M_CPU
row() {
    local kind=$1 label=$2
    # shellcheck disable=SC2086
    M_RATE[$kind]=$(median ${RATE[$kind]})
    # shellcheck disable=SC2086
    M_CPU[$kind]=$(median ${CPU[$kind]})
    printf '| %s | %s | %s µs |\n' "$label" "$(awk -v x="${M_RATE[$kind]}" 'BEGIN { printf "%.0f", x }')" \
        "$(awk -v x="${M_CPU[$kind]}" 'BEGIN { printf "%.1f", x }')"
}
ratio() { awk -v k="$1" -v n="$2" 'BEGIN { printf "%.3f", k / n }'; }

commit=$(git -C "$ROOT" rev-parse --short HEAD 2>/dev/null || echo unknown)
[[ -n $(git -C "$ROOT" status --porcelain 2>/dev/null | head -n 1) ]] && commit+=" (dirty)"
REPORT=$WORK/nats-latest.md
{
    echo "# Kiln NATS benchmark: $KINDS"
    echo
    echo "- date: $(date -u '+%Y-%m-%d %H:%M UTC'); commit $commit; $(uname -sr); $(nproc) cores; $PINNING"
    echo "- core: $COUNT request messages of $SIZE B, each answered (window $WINDOW); JetStream: $JS_COUNT messages," \
        "durable pull consumer, ack per message; $RUNS runs per kind, alternating; medians"
    echo "- CPU/message: utime+stime of the subscriber's process tree over the measured run ÷ messages (CLK_TCK $CLK_TCK)"
    echo
    echo "| subscriber | msgs/s | CPU/message |"
    echo "|---|---|---|"
    want native-core && row native-core "native async-nats, core (1 thread)"
    want kiln-core && row kiln-core "kiln NATS trigger, core (msg_bench)"
    want native-js && row native-js "native async-nats, JetStream (1 thread)"
    want kiln-js && row kiln-js "kiln NATS trigger, JetStream (msg_bench)"
    want serve-core && row serve-core "kiln serve, NATS trigger, core (msg_bench)"
    want serve-js && row serve-js "kiln serve, NATS trigger, JetStream (msg_bench)"
    echo
    echo "| kiln / native | msgs/s | CPU/message |"
    echo "|---|---|---|"
    if want native-core && want kiln-core; then
        printf '| core | %s× | %s× |\n' "$(ratio "${M_RATE[kiln-core]}" "${M_RATE[native-core]}")" "$(ratio "${M_CPU[kiln-core]}" "${M_CPU[native-core]}")"
    fi
    if want native-js && want kiln-js; then
        printf '| JetStream | %s× | %s× |\n' "$(ratio "${M_RATE[kiln-js]}" "${M_RATE[native-js]}")" "$(ratio "${M_CPU[kiln-js]}" "${M_CPU[native-js]}")"
    fi
    if want kiln-core && want serve-core; then
        echo
        printf '| kiln serve / kiln up, core | %s× msgs/s | %s× CPU/message |\n|---|---|---|\n' "$(ratio "${M_RATE[serve-core]}" "${M_RATE[kiln-core]}")" "$(ratio "${M_CPU[serve-core]}" "${M_CPU[kiln-core]}")"
    fi
    if want kiln-js && want serve-js; then
        echo
        printf '| kiln serve / kiln up, JetStream | %s× msgs/s | %s× CPU/message |\n|---|---|---|\n' "$(ratio "${M_RATE[serve-js]}" "${M_RATE[kiln-js]}")" "$(ratio "${M_CPU[serve-js]}" "${M_CPU[kiln-js]}")"
    fi
    echo
    echo "<details><summary>every run</summary>"
    echo
    echo "| run | kind | msgs/s | CPU/message | handled |"
    echo "|---|---|---|---|---|"
    printf '%s\n' "${RAW_ROWS[@]}"
    echo
    echo "</details>"
} >"$REPORT"
mkdir -p "$RESULTS_DIR"
cp "$REPORT" "$RESULTS_DIR/nats-latest.md"
echo
cat "$REPORT"
echo
log "written to bench/results/nats-latest.md"
