#!/usr/bin/env bash
# Many hosts, one set of apps (`kiln serve --cluster-redis`), against a local redis-server and
# docker-registry:
#   - deploy propagation: `PUT /v1/apps/hello?reference=…` on host A, until hosts B and C serve the
#     new version (each deploy is a new revision); median of DEPLOYS;
#   - throughput: `wrk` on host A alone, then on A, B and C at once (three wrk processes, their
#     requests/s added), same connections in total, same 2 cores. Target (issue #13): three hosts
#     within 15% of one (nothing shared sits on the request path).
# Environment: DEPLOYS=5; DURATION=10 (s); CONNS=24; KILN_BIN=PATH (default: the release build);
# SKIP_BUILD=1.
set -euo pipefail

ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
DEPLOYS=${DEPLOYS:-5}
DURATION=${DURATION:-10}
CONNS=${CONNS:-24}
TARGET_DIR=${CARGO_TARGET_DIR:-$ROOT/target}
KILN_BIN=${KILN_BIN:-$TARGET_DIR/release/kiln}

log() { printf '>> %s\n' "$*" >&2; }
die() { printf 'bench/cluster: %s\n' "$*" >&2; exit 1; }
for tool in wrk redis-server docker-registry curl python3; do
    command -v "$tool" >/dev/null || die "$tool is not installed (apt-get install wrk redis-server docker-registry)"
done
WORK=$(mktemp -d "${TMPDIR:-/tmp}/kiln-cluster-bench.XXXXXX")
PIDS=()
# shellcheck source=bench/lib.sh
source "$ROOT/bench/lib.sh"
if [[ ${SKIP_BUILD:-0} != 1 ]]; then
    (cd "$ROOT" && cargo build --release -p kiln)
    (cd "$ROOT/examples" && env -u CARGO_TARGET_DIR cargo build --target wasm32-wasip2 --release -p hello)
fi
now_us() { local t=${EPOCHREALTIME/[.,]/}; echo "$t"; }
wait_http() { for _ in $(seq 600); do curl -sf -o /dev/null "$1" && return 0; sleep 0.05; done; die "$1 did not answer"; }

REDIS_PORT=$(free_port)
redis-server --port "$REDIS_PORT" --bind 127.0.0.1 --save "" --appendonly no >"$WORK/redis.log" 2>&1 &
PIDS+=("$!")
REG_PORT=$(free_port)
printf 'version: 0.1\nlog:\n  level: error\nstorage:\n  filesystem:\n    rootdirectory: %s\nhttp:\n  addr: 127.0.0.1:%s\n' "$WORK/registry" "$REG_PORT" >"$WORK/registry.yml"
docker-registry serve "$WORK/registry.yml" >"$WORK/registry.log" 2>&1 &
PIDS+=("$!")
wait_http "http://127.0.0.1:$REG_PORT/v2/"
REF=127.0.0.1:$REG_PORT/bench/hello:v1
KILN_CACHE_DIR=$WORK/cache "$KILN_BIN" registry push "$REF" -f "$ROOT/examples/hello" --insecure >&2

declare -A PORT ADMIN
for host in a b c; do
    PORT[$host]=$(free_port)
    ADMIN[$host]=$(free_port)
    KILN_CACHE_DIR=$WORK/cache "$KILN_BIN" serve -q --data-dir "$WORK/data-$host" --listen "127.0.0.1:${PORT[$host]}" \
        --admin-listen "127.0.0.1:${ADMIN[$host]}" --cluster-redis "redis://127.0.0.1:$REDIS_PORT" >"$WORK/$host.log" 2>&1 &
    PIDS+=("$!")
    wait_http "http://127.0.0.1:${ADMIN[$host]}/healthz"
done
TOKEN=$(cat "$WORK/data-a/admin-token")
version_on() {
    curl -sf -H "Authorization: Bearer $(cat "$WORK/data-$1/admin-token")" "http://127.0.0.1:${ADMIN[$1]}/v1/apps/hello" |
        python3 -c 'import json, sys; print(json.load(sys.stdin)["version"])' 2>/dev/null || echo 0
}

samples=()
for ((i = 1; i <= DEPLOYS; i++)); do
    t0=$(now_us)
    curl -sf -o /dev/null -X PUT -H "Authorization: Bearer $TOKEN" "http://127.0.0.1:${ADMIN[a]}/v1/apps/hello?reference=$REF&insecure=true" ||
        die "deploy $i failed: $(tail -5 "$WORK/a.log")"
    until [[ $(version_on b) == "$i" && $(version_on c) == "$i" ]]; do :; done
    samples+=($(($(now_us) - t0)))
done
PROPAGATION=$(median "${samples[@]}")
log "deploy on A until B and C serve it: median $PROPAGATION µs (samples: ${samples[*]})"

rps() { awk '/Requests\/sec/ { print $2 }' "$1"; }
for host in a b c; do wrk -t1 -c4 -d2s -H "Host: hello.localhost" "http://127.0.0.1:${PORT[$host]}/" >/dev/null; done # warm-up
wrk -t1 -c"$CONNS" -d"${DURATION}s" -H "Host: hello.localhost" "http://127.0.0.1:${PORT[a]}/" >"$WORK/one.txt"
ONE=$(rps "$WORK/one.txt")
WRKS=()
for host in a b c; do
    wrk -t1 -c$((CONNS / 3)) -d"${DURATION}s" -H "Host: hello.localhost" "http://127.0.0.1:${PORT[$host]}/" >"$WORK/three-$host.txt" &
    WRKS+=("$!")
done
for pid in "${WRKS[@]}"; do wait "$pid"; done
THREE=$(awk -v a="$(rps "$WORK/three-a.txt")" -v b="$(rps "$WORK/three-b.txt")" -v c="$(rps "$WORK/three-c.txt")" 'BEGIN { printf "%.0f", a + b + c }')
commit=$(git -C "$ROOT" rev-parse --short HEAD 2>/dev/null || echo unknown)
awk -v p="$PROPAGATION" -v one="$ONE" -v three="$THREE" -v commit="$commit" -v d="$DURATION" -v c="$CONNS" 'BEGIN {
    printf "Three kiln serve hosts sharing Redis (commit %s; hello app; wrk %d s, %d connections in all; 2 cores)\n\n", commit, d, c
    printf "| measure | value | target |\n|---|---|---|\n"
    printf "| deploy on one host → served by the other two (median) | %.0f ms | ≤ 1 s |\n", p / 1000
    printf "| requests/s, one host | %.0f | |\n", one
    printf "| requests/s, three hosts at once | %.0f | |\n", three
    printf "| **three / one** | **%.2f×** | ≥ 0.85× |\n", three / one
}'
