#!/usr/bin/env bash
# PostgreSQL benchmark: one query by primary key per request, through Kiln against a native hyper +
# tokio-postgres + deadpool handler (bench/native-pg) doing the same query, in one run. Kiln serves
# GUEST=pg_bench (the default: `spin:postgres@4.0.0` through wit-bindgen, doing what the native
# handler does — parse `id`, open a pooled connection, run `SELECT name FROM items WHERE id = $1`,
# answer the name) or GUEST=spin_pg (the spin-sdk 5 test guest: a generic query string, every value
# formatted with Debug).
#
# Method (as bench/run.sh): the server pinned to core 0, `wrk -t1 -c$CONNS` and PostgreSQL pinned to
# core 1 (so the database's CPU is not counted as the server's), a fresh server per run, warm-up,
# runs alternating native, kiln; medians of req/s, p50, p99 and server CPU per request
# ((utime+stime of the server's process tree over the run) / requests completed).
#
# Needs: wrk, Debian's postgresql (run as the `postgres` user when this runs as root), a release
# build of kiln and native-pg in $CARGO_TARGET_DIR (or target/), and the guests built
# (cargo test -p kiln --test e2e --no-run). Knobs: DURATION=10 RUNS=3 WARMUP=2 CONNS=32
# ROWS=10000 SKIP_BUILD=1.
set -euo pipefail

ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
DURATION=${DURATION:-10}
RUNS=${RUNS:-3}
WARMUP=${WARMUP:-2}
CONNS=${CONNS:-32}
ROWS=${ROWS:-10000}
SKIP_BUILD=${SKIP_BUILD:-0}
TARGET_DIR=${CARGO_TARGET_DIR:-$ROOT/target}
# PROFILE=debug measures a dev build (whose dependencies, wasmtime included, are optimised too).
PROFILE=${PROFILE:-release}
KILN_BIN=$TARGET_DIR/$PROFILE/kiln
NATIVE_BIN=$TARGET_DIR/$PROFILE/native-pg
GUEST=${GUEST:-pg_bench}
PG_WASM=$ROOT/guests/target/wasm32-wasip2/release/$GUEST.wasm
CLK_TCK=$(getconf CLK_TCK)

log() { printf '>> %s\n' "$*" >&2; }
die() { printf 'bench: %s\n' "$*" >&2; exit 1; }
[[ $GUEST == pg_bench || $GUEST == spin_pg ]] || die "GUEST must be pg_bench or spin_pg"

WORK=$(mktemp -d "${TMPDIR:-/tmp}/kiln-pg-bench.XXXXXX")
chmod 755 "$WORK"
PIDS=()
# shellcheck source=bench/lib.sh
source "$ROOT/bench/lib.sh"

command -v wrk >/dev/null || die "wrk is not installed"
PG_BIN=$(compgen -G '/usr/lib/postgresql/*/bin' | sort -V | tail -n 1)
[[ -x $PG_BIN/postgres ]] || die "PostgreSQL is not installed (apt-get install postgresql)"
if [[ $SKIP_BUILD != 1 ]]; then
    profile_flag=(--release)
    [[ $PROFILE == debug ]] && profile_flag=()
    log "cargo build ${profile_flag[*]} -p kiln -p native-pg"
    (cd "$ROOT" && cargo build "${profile_flag[@]}" -p kiln -p native-pg)
fi
[[ -x $KILN_BIN && -x $NATIVE_BIN ]] || die "build kiln and native-pg ($PROFILE) first"
[[ -f $PG_WASM ]] || die "$PG_WASM not found (cargo test -p kiln --test e2e --no-run builds the guests)"

# PostgreSQL refuses root: run it as `postgres` when we are root.
as_pg=()
if [[ $(id -u) == 0 ]]; then
    chown postgres "$WORK"
    as_pg=(setpriv --reuid postgres --regid postgres --init-groups --)
fi
PG_PORT=$(free_port)
"${as_pg[@]}" "$PG_BIN/initdb" -U postgres --auth=trust --no-sync -D "$WORK/pgdata" >"$WORK/initdb.log" 2>&1 ||
    die "initdb failed: $(cat "$WORK/initdb.log")"
taskset -c 1 "${as_pg[@]}" "$PG_BIN/postgres" -D "$WORK/pgdata" -p "$PG_PORT" -k "$WORK" \
    -c listen_addresses=127.0.0.1 -c fsync=off -c max_connections=200 >"$WORK/postgres.log" 2>&1 &
PIDS+=("$!")
PSQL=(psql -h 127.0.0.1 -p "$PG_PORT" -U postgres -d postgres -qAt -v ON_ERROR_STOP=1)
for _ in $(seq 100); do "${PSQL[@]}" -c 'select 1' >/dev/null 2>&1 && break; sleep 0.1; done
"${PSQL[@]}" -c "CREATE TABLE items (id int PRIMARY KEY, name text NOT NULL);
    INSERT INTO items SELECT n, 'item ' || n FROM generate_series(1, $ROWS) n; ANALYZE items;"
DB=postgres://postgres@127.0.0.1:$PG_PORT/postgres
log "postgres on port $PG_PORT (core 1), $ROWS rows"

mkdir -p "$WORK/app"
cat >"$WORK/app/kiln.toml" <<TOML
spin_manifest_version = 2
[application]
name = "pg-bench"
[[trigger.http]]
route = "/..."
component = "pg"
[component.pg]
source = "$PG_WASM"
allowed_outbound_hosts = ["postgres://127.0.0.1:$PG_PORT"]
environment = { PG_ADDRESS = "$DB" }
TOML

ID=$((ROWS / 2))
kind_path() {
    case $1 in
        native) echo "/?id=$ID" ;;
        kiln) if [[ $GUEST == pg_bench ]]; then echo "/?id=$ID"; else echo "/?v=4&addr=$DB&op=query&sql=SELECT+name+FROM+items+WHERE+id+%3D+%241&p=i32:$ID"; fi ;;
    esac
}

start() { # KIND PORT
    case $1 in
        native) taskset -c 0 "$NATIVE_BIN" --listen "127.0.0.1:$2" --db "$DB" >"$WORK/$1.log" 2>&1 & ;;
        kiln) KILN_CACHE_DIR=$WORK/cache taskset -c 0 "$KILN_BIN" up -f "$WORK/app" --listen "127.0.0.1:$2" \
            --quiet >"$WORK/$1.log" 2>&1 & ;;
    esac
    SERVER_PID=$!
    PIDS+=("$SERVER_PID")
}

cat >"$WORK/report.lua" <<'LUA'
done = function(summary, latency, requests)
  local e = summary.errors
  io.write(string.format("KILNBENCH requests=%d duration_us=%d p50_us=%d p99_us=%d errors=%d\n",
    summary.requests, summary.duration, latency:percentile(50), latency:percentile(99),
    e.status + e.connect + e.read + e.write + e.timeout))
end
LUA

declare -A RPS P50 P99 CPU ERRS
run_one() { # KIND RUN
    local kind=$1 port url body t0 t1 line
    port=$(free_port)
    start "$kind" "$port"
    url="http://127.0.0.1:$port$(kind_path "$kind")"
    for _ in $(seq 300); do
        body=$(curl -sf "$url" 2>/dev/null) && break
        kill -0 "$SERVER_PID" 2>/dev/null || die "$kind exited: $(tail -n 5 "$WORK/$kind.log")"
        sleep 0.1
    done
    [[ $body == *"item $ID"* ]] || die "$kind answered: $body"
    taskset -c 1 wrk -t1 -c"$CONNS" -d"${WARMUP}s" "$url" >/dev/null
    t0=$(cpu_ticks "$SERVER_PID")
    taskset -c 1 wrk -t1 -c"$CONNS" -d"${DURATION}s" --latency -s "$WORK/report.lua" "$url" >"$WORK/wrk.out"
    t1=$(cpu_ticks "$SERVER_PID")
    stop_pid "$SERVER_PID"
    line=$(grep '^KILNBENCH ' "$WORK/wrk.out") || die "no wrk report: $(cat "$WORK/wrk.out")"
    eval "$(sed -E 's/KILNBENCH //; s/ /; /g' <<<"$line")"
    # shellcheck disable=SC2154 # requests, duration_us, p50_us, p99_us, errors come from the report line
    {
        RPS[$kind]+="$(awk -v n="$requests" -v d="$duration_us" 'BEGIN { printf "%.0f", n / (d / 1e6) }') "
        CPU[$kind]+="$(awk -v t=$((t1 - t0)) -v hz="$CLK_TCK" -v n="$requests" 'BEGIN { printf "%.2f", t / hz * 1e6 / n }') "
        P50[$kind]+="$p50_us "
        P99[$kind]+="$p99_us "
        ERRS[$kind]=$((${ERRS[$kind]:-0} + errors))
        log "run $2 $kind: $requests requests, $errors errors, CPU $(awk -v t=$((t1 - t0)) -v hz="$CLK_TCK" -v n="$requests" 'BEGIN { printf "%.2f", t / hz * 1e6 / n }') µs/request"
    }
}

for ((run = 1; run <= RUNS; run++)); do
    run_one native "$run"
    run_one kiln "$run"
done

row() { # KIND LABEL
    # shellcheck disable=SC2086 # the space-separated samples are meant to split
    printf '| %s | %.0f | %.2f ms | %.2f ms | %.1f µs | %s |\n' "$2" "$(median ${RPS[$1]})" \
        "$(awk -v u="$(median ${P50[$1]})" 'BEGIN { print u / 1000 }')" \
        "$(awk -v u="$(median ${P99[$1]})" 'BEGIN { print u / 1000 }')" "$(median ${CPU[$1]})" "${ERRS[$1]:-0}"
}
# shellcheck disable=SC2086
ratio=$(awk -v k="$(median ${CPU[kiln]})" -v n="$(median ${CPU[native]})" 'BEGIN { printf "%.2f", k / n }')
echo
echo "PostgreSQL, one row by primary key per request ($(date -u '+%Y-%m-%d'), $(git -C "$ROOT" rev-parse --short HEAD), $PROFILE build, $RUNS runs of ${DURATION}s, wrk -c$CONNS, medians):"
echo
echo "| server | req/s | p50 | p99 | CPU/request | errors |"
echo "|---|---|---|---|---|---|"
row native "native hyper + tokio-postgres + deadpool (1 thread, \`bench/native-pg\`)"
row kiln "Kiln, \`$GUEST\` guest (\`spin:postgres@4.0.0\`)"
echo "| **Kiln / native, CPU per request** | | | | **${ratio}×** | |"
