#!/usr/bin/env bash
# Density benchmark for platform mode: one `kiln serve` hosting N copies of examples/hello, each
# deployed under its own name over the admin API.
#
#   - deploy: N sequential `PUT /v1/apps/appI` of the same archive (curl, bearer token, one
#     connection per 100): the total time, per app, and the median / p95 of one deploy (time_total);
#   - host RSS (VmRSS of the kiln process) right after the last deploy, once the idle timeout has
#     unloaded every app (`GET /v1/apps` shows no `loaded` app), and after the cold requests below;
#   - cold first request: `GET /` with `Host: appI.localhost` to COLD distinct idle apps spread over
#     the N, one at a time (curl's time_total, which includes connecting over loopback); each is
#     followed at once by a second, warm request to the same app, for comparison.
#
# Targets (issue): idle RSS < 1 GiB with 1000 apps; cold first request median <= 5 ms.
# Prints a table and writes it to bench/results/density-latest.md (ignored by git). Not pinned: the
# machine is shared, so the latencies are noisy; the RSS figures are not.
#
# Environment knobs:
#   N=1000          apps deployed               COLD=100      idle apps sampled (cold, then warm)
#   IDLE_TIMEOUT=5  kiln serve --idle-timeout, seconds
#   SKIP_BUILD=1    use the binaries already built   CARGO_TARGET_DIR  where the host binary is
#   KILN_BIN=PATH   run this kiln instead (e.g. SKIP_BUILD=1 KILN_BIN=target/debug/kiln for a quick check)
set -euo pipefail

ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
N=${N:-1000}
COLD=${COLD:-100}
IDLE_TIMEOUT=${IDLE_TIMEOUT:-5}
SKIP_BUILD=${SKIP_BUILD:-0}
TARGET_DIR=${CARGO_TARGET_DIR:-$ROOT/target}
case $TARGET_DIR in /*) ;; *) TARGET_DIR=$ROOT/$TARGET_DIR ;; esac
KILN_BIN=${KILN_BIN:-$TARGET_DIR/release/kiln}
HELLO_DIR=$ROOT/examples/hello
HELLO_WASM=$ROOT/examples/target/wasm32-wasip2/release/hello.wasm
RESULTS_DIR=$ROOT/bench/results

log() { printf '>> %s\n' "$*" >&2; }
die() { printf 'bench/density: %s\n' "$*" >&2; exit 1; }

for tool in curl python3 tar gzip; do
    command -v "$tool" >/dev/null || die "$tool is not installed"
done
[[ $N =~ ^[1-9][0-9]*$ ]] || die "N must be a positive integer (got '$N')"
[[ $COLD =~ ^[1-9][0-9]*$ ]] || die "COLD must be a positive integer (got '$COLD')"
((COLD <= N)) || COLD=$N

WORK=$(mktemp -d "${TMPDIR:-/tmp}/kiln-density.XXXXXX")
PIDS=()
# shellcheck source=bench/lib.sh
source "$ROOT/bench/lib.sh"

now_us() { local t=${EPOCHREALTIME/[.,]/}; echo "$t"; }
us_to_ms() { awk -v u="$1" 'BEGIN { printf "%.2f ms", u / 1000 }'; }
kib_to_mib() { awk -v k="$1" 'BEGIN { printf "%.1f MiB", k / 1024 }'; }
rss_kib() { awk '/^VmRSS:/ {print $2}' /proc/"$1"/status; }
# percentile P VALUES...: nearest rank.
percentile() {
    local p=$1
    shift
    printf '%s\n' "$@" | sort -g | awk -v p="$p" '{ a[NR] = $1 } END {
        if (NR == 0) { print "nan"; exit }
        r = int(p / 100 * NR + 0.999999); if (r < 1) r = 1; print a[r] }'
}
# seconds (curl's time_total) to µs
s_to_us() { awk -v s="$1" 'BEGIN { printf "%.0f", s * 1e6 }'; }

# ---------------------------------------------------------------------------------------------------
# Build

if [[ $SKIP_BUILD != 1 ]]; then
    log "cargo build --release -p kiln"
    (cd "$ROOT" && cargo build --release -p kiln)
    if [[ ! -f $HELLO_WASM ]]; then
        log "building examples/hello (wasm32-wasip2, release)"
        (cd "$HELLO_DIR" && env -u CARGO_TARGET_DIR -u CARGO_BUILD_TARGET -u RUSTFLAGS \
            cargo build --target wasm32-wasip2 --release)
    fi
fi
[[ -x $KILN_BIN ]] || die "$KILN_BIN not found (build it, or unset SKIP_BUILD)"
[[ -f $HELLO_WASM ]] || die "$HELLO_WASM not found (cd examples/hello && cargo build --target wasm32-wasip2 --release)"

# The archive `kiln deploy` would upload: the manifest at the root, the component beside it.
mkdir -p "$WORK/app"
cp "$HELLO_WASM" "$WORK/app/hello.wasm"
cat >"$WORK/app/kiln.toml" <<'EOF'
spin_manifest_version = 2
[application]
name = "hello"
[[trigger.http]]
route = "/..."
component = "hello"
[component.hello]
source = "hello.wasm"
EOF
tar -C "$WORK/app" -cf - kiln.toml hello.wasm | gzip -c >"$WORK/app.tar.gz"

# ---------------------------------------------------------------------------------------------------
# Start

PORT=$(free_port)
ADMIN_PORT=$(free_port)
DATA=$WORK/data
SERVE_CMD=("$KILN_BIN" serve -q --data-dir "$DATA" --listen "127.0.0.1:$PORT"
    --admin-listen "127.0.0.1:$ADMIN_PORT" --idle-timeout "${IDLE_TIMEOUT}s")
KILN_CACHE_DIR=$WORK/cache "${SERVE_CMD[@]}" >"$WORK/serve.log" 2>&1 &
KILN_PID=$!
PIDS+=("$KILN_PID")
ADMIN=http://127.0.0.1:$ADMIN_PORT
for ((i = 0; ; i++)); do
    [[ $(curl -s -o /dev/null -w '%{http_code}' "$ADMIN/healthz" || true) == 200 ]] && break
    kill -0 "$KILN_PID" 2>/dev/null || { cat "$WORK/serve.log" >&2; die "kiln serve exited"; }
    ((i < 600)) || { cat "$WORK/serve.log" >&2; die "kiln serve did not answer within 60 s"; }
    sleep 0.1
done
# The token goes to curl in a header file, never on a command line.
printf 'Authorization: Bearer %s\n' "$(cat "$DATA/admin-token")" >"$WORK/auth"
chmod 600 "$WORK/auth"
RSS_START=$(rss_kib "$KILN_PID")
log "kiln serve (pid $KILN_PID) on 127.0.0.1:$PORT, admin 127.0.0.1:$ADMIN_PORT, RSS $(kib_to_mib "$RSS_START")"

# loaded_count: how many apps `GET /v1/apps` shows as loaded.
loaded_count() {
    curl -sf -H @"$WORK/auth" "$ADMIN/v1/apps" |
        python3 -c 'import json, sys; print(sum(a["status"] == "loaded" for a in json.load(sys.stdin)["apps"]))'
}

# ---------------------------------------------------------------------------------------------------
# Deploy N apps

log "deploying $N apps ($(stat -c %s "$WORK/app.tar.gz")-byte archive, $(stat -c %s "$HELLO_WASM")-byte component)"
# One curl per batch of BATCH deploys (one connection, kept alive), so that the figures are the
# server's, not curl's start-up: a config file of transfers separated by `next`.
BATCH=100
mkdir -p "$WORK/deploy"
DEPLOY_TIMES=()
t0=$(now_us)
for ((first = 1; first <= N; first += BATCH)); do
    last=$((first + BATCH - 1 < N ? first + BATCH - 1 : N))
    for ((i = first; i <= last; i++)); do
        ((i > first)) && echo next
        printf 'url = "%s/v1/apps/app%d"\nrequest = "PUT"\nheader = "@%s"\n' "$ADMIN" "$i" "$WORK/auth"
        printf 'header = "Content-Type: application/gzip"\ndata-binary = "@%s"\n' "$WORK/app.tar.gz"
        printf 'output = "%s"\nwrite-out = "app%d %%{http_code} %%{time_total}\\n"\n' "$WORK/deploy/app$i" "$i"
    done >"$WORK/deploy.curl"
    curl -sS -K "$WORK/deploy.curl" >>"$WORK/deploy.times" || die "deploying app$first…app$last: curl failed"
    failed=$(awk '$2 != 201 { print $1, $2; exit }' "$WORK/deploy.times")
    [[ -z $failed ]] || die "deploy ${failed% *}: HTTP ${failed#* }: $(cat "$WORK/deploy/${failed% *}")"
    log "  $last deployed, RSS $(kib_to_mib "$(rss_kib "$KILN_PID")")"
done
t1=$(now_us)
mapfile -t DEPLOY_TIMES < <(awk '{ printf "%.0f\n", $3 * 1e6 }' "$WORK/deploy.times")
((${#DEPLOY_TIMES[@]} == N)) || die "curl reported ${#DEPLOY_TIMES[@]} deploys, expected $N"
DEPLOY_TOTAL_US=$((t1 - t0))
RSS_DEPLOYED=$(rss_kib "$KILN_PID")
count=$(curl -sf -H @"$WORK/auth" "$ADMIN/v1/apps" | python3 -c 'import json, sys; print(len(json.load(sys.stdin)["apps"]))')
[[ $count == "$N" ]] || die "GET /v1/apps lists $count apps, expected $N"
log "deployed $N apps in $(us_to_ms "$DEPLOY_TOTAL_US"), RSS $(kib_to_mib "$RSS_DEPLOYED")"

# ---------------------------------------------------------------------------------------------------
# Idle: every app unloaded

log "waiting for the idle timeout (${IDLE_TIMEOUT} s) to unload every app"
deadline=$(($(now_us) + (IDLE_TIMEOUT + 60) * 1000000))
sleep "$IDLE_TIMEOUT"
until [[ $(loaded_count) == 0 ]]; do
    (($(now_us) < deadline)) || die "apps still loaded $((IDLE_TIMEOUT + 60)) s after the last deploy"
    sleep 0.5
done
sleep 1
RSS_IDLE=$(rss_kib "$KILN_PID")
log "all idle, RSS $(kib_to_mib "$RSS_IDLE")"

# ---------------------------------------------------------------------------------------------------
# Cold first requests, each followed by a warm one

COLD_TIMES=()
WARM_TIMES=()
step=$((N / COLD))
for ((k = 0; k < COLD; k++)); do
    app=app$((1 + k * step))
    for kind in cold warm; do
        out=$(curl -sS -o "$WORK/get.out" -w '%{http_code} %{time_total}' -H "Host: $app.localhost" \
            "http://127.0.0.1:$PORT/") || die "GET $app: curl failed"
        [[ ${out%% *} == 200 ]] || die "GET $app ($kind): HTTP ${out%% *}: $(cat "$WORK/get.out")"
        if [[ $kind == cold ]]; then COLD_TIMES+=("$(s_to_us "${out#* }")"); else WARM_TIMES+=("$(s_to_us "${out#* }")"); fi
    done
done
RSS_AFTER_COLD=$(rss_kib "$KILN_PID")
LOADED_AFTER_COLD=$(loaded_count)
PEAK_KIB=$(awk '/^VmHWM:/ {print $2}' /proc/"$KILN_PID"/status)
DATA_SIZE=$(du -sh "$DATA" | cut -f1)
kill -0 "$KILN_PID" 2>/dev/null || die "kiln serve died"
stop_pid "$KILN_PID"

# ---------------------------------------------------------------------------------------------------
# Report

verdict() { if awk -v a="$1" -v b="$2" 'BEGIN { exit !(a <= b) }'; then echo "yes"; else echo "**no**"; fi; }
commit=$(git -C "$ROOT" rev-parse --short HEAD 2>/dev/null || echo unknown)
[[ -n $(git -C "$ROOT" status --porcelain 2>/dev/null | head -n 1) ]] && commit+=" (dirty)"
cold_med=$(median "${COLD_TIMES[@]}")
cold_p95=$(percentile 95 "${COLD_TIMES[@]}")
warm_med=$(median "${WARM_TIMES[@]}")
warm_p95=$(percentile 95 "${WARM_TIMES[@]}")
REPORT=$WORK/density-latest.md
{
    echo "# Kiln density benchmark: $N apps on one \`kiln serve\`"
    echo
    echo "- date: $(date -u '+%Y-%m-%d %H:%M UTC'); commit $commit; $(uname -sr); $(nproc) cores; not pinned"
    echo "- command: \`N=$N COLD=$COLD IDLE_TIMEOUT=$IDLE_TIMEOUT bench/density.sh\`"
    echo "- server: \`kiln serve -q --data-dir <tmp> --idle-timeout ${IDLE_TIMEOUT}s\` (${KILN_BIN#"$ROOT"/});" \
        "app: examples/hello ($(stat -c %s "$HELLO_WASM") bytes), deployed as app1 … app$N"
    echo "- latencies: curl's time_total for \`GET /\` with \`Host: appI.localhost\`, one at a time," \
        "$COLD distinct idle apps; warm = the same app's next request"
    echo
    echo "| measure | value | target |"
    echo "|---|---|---|"
    echo "| deploy all $N apps | $(awk -v u="$DEPLOY_TOTAL_US" 'BEGIN { printf "%.1f s", u / 1e6 }') | |"
    echo "| deploy, per app (total ÷ N) | $(us_to_ms $((DEPLOY_TOTAL_US / N))) | |"
    echo "| one deploy, median / p95 | $(us_to_ms "$(median "${DEPLOY_TIMES[@]}")") / $(us_to_ms "$(percentile 95 "${DEPLOY_TIMES[@]}")") | |"
    echo "| host RSS at start (no apps) | $(kib_to_mib "$RSS_START") | |"
    echo "| host RSS right after deploying $N | $(kib_to_mib "$RSS_DEPLOYED") | |"
    echo "| host RSS idle ($N apps, none loaded) | $(kib_to_mib "$RSS_IDLE") | < 1024 MiB: $(verdict "$RSS_IDLE" $((1024 * 1024))) |"
    echo "| host RSS after $COLD cold requests ($LOADED_AFTER_COLD loaded) | $(kib_to_mib "$RSS_AFTER_COLD") | |"
    echo "| host peak RSS (VmHWM) | $(kib_to_mib "$PEAK_KIB") | |"
    echo "| cold first request, median | $(us_to_ms "$cold_med") | ≤ 5 ms: $(verdict "$cold_med" 5000) |"
    echo "| cold first request, p95 | $(us_to_ms "$cold_p95") | |"
    echo "| warm request, median / p95 | $(us_to_ms "$warm_med") / $(us_to_ms "$warm_p95") | |"
    echo "| data directory | $DATA_SIZE | |"
} >"$REPORT"

mkdir -p "$RESULTS_DIR"
cp "$REPORT" "$RESULTS_DIR/density-latest.md"
echo
cat "$REPORT"
echo
log "written to bench/results/density-latest.md"
