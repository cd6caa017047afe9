#!/usr/bin/env bash
# Event density for platform mode: host RSS of one `kiln serve` with N idle event apps (each a NATS
# trigger on the host's in-process bus, `guests/msg_sub`), against another `kiln serve` with N idle
# HTTP apps (`examples/hello`), measured in the same run. Idle means the idle timeout has unloaded
# every app: an event app then keeps only its subscription.
#
# Target (issue #11): event apps' idle RSS < 1.5x the HTTP apps'.
#
# Environment: N=1000 apps; IDLE_TIMEOUT=2 (seconds); KILN_BIN=PATH (default: the release build);
# SKIP_BUILD=1 to use what is built.
set -euo pipefail

ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
N=${N:-1000}
IDLE_TIMEOUT=${IDLE_TIMEOUT:-2}
TARGET_DIR=${CARGO_TARGET_DIR:-$ROOT/target}
KILN_BIN=${KILN_BIN:-$TARGET_DIR/release/kiln}
HELLO_WASM=$ROOT/examples/target/wasm32-wasip2/release/hello.wasm
SUB_WASM=$ROOT/guests/target/wasm32-wasip2/release/msg_sub.wasm

log() { printf '>> %s\n' "$*" >&2; }
die() { printf 'bench/event-density: %s\n' "$*" >&2; exit 1; }
WORK=$(mktemp -d "${TMPDIR:-/tmp}/kiln-event-density.XXXXXX")
PIDS=()
# shellcheck source=bench/lib.sh
source "$ROOT/bench/lib.sh"

if [[ ${SKIP_BUILD:-0} != 1 ]]; then
    (cd "$ROOT" && cargo build --release -p kiln)
    (cd "$ROOT/examples" && env -u CARGO_TARGET_DIR cargo build --target wasm32-wasip2 --release -p hello)
    (cd "$ROOT/guests" && env -u CARGO_TARGET_DIR cargo build --target wasm32-wasip2 --release -p msg_sub)
fi
for file in "$KILN_BIN" "$HELLO_WASM" "$SUB_WASM"; do [[ -f $file ]] || die "$file not found"; done

# archive NAME TRIGGER WASM: an app archive as `kiln deploy` uploads it.
archive() {
    mkdir -p "$WORK/$1"
    cp "$3" "$WORK/$1/app.wasm"
    printf 'spin_manifest_version = 2\n[application]\nname = "%s"\n%s\ncomponent = "app"\n[component.app]\nsource = "app.wasm"\nkey_value_stores = ["default"]\n' "$1" "$2" >"$WORK/$1/kiln.toml"
    tar -C "$WORK/$1" -cf - kiln.toml app.wasm | gzip -c >"$WORK/$1.tar.gz"
}
archive http $'[[trigger.http]]\nroute = "/..."' "$HELLO_WASM"
archive events $'[[trigger.nats]]\nsubject = "bench.idle"' "$SUB_WASM"

rss_kib() { awk '/^VmRSS:/ {print $2}' /proc/"$1"/status; }

# measure KIND: starts a host, deploys N copies of KIND's archive, waits until all are idle; prints
# "start_kib idle_kib".
measure() {
    local kind=$1 port admin data pid i first last
    port=$(free_port) admin=$(free_port) data=$WORK/data-$kind
    KILN_CACHE_DIR=$WORK/cache "$KILN_BIN" serve -q --data-dir "$data" --listen "127.0.0.1:$port" \
        --admin-listen "127.0.0.1:$admin" --idle-timeout "${IDLE_TIMEOUT}s" --max-concurrency 10 >"$WORK/$kind.log" 2>&1 &
    pid=$!
    PIDS+=("$pid")
    for ((i = 0; ; i++)); do
        [[ $(curl -s -o /dev/null -w '%{http_code}' "http://127.0.0.1:$admin/healthz" || true) == 200 ]] && break
        ((i < 600)) || { cat "$WORK/$kind.log" >&2; die "kiln serve did not start"; }
        sleep 0.1
    done
    printf 'Authorization: Bearer %s\n' "$(cat "$data/admin-token")" >"$WORK/auth-$kind"
    local start_kib
    start_kib=$(rss_kib "$pid")
    for ((first = 1; first <= N; first += 100)); do
        last=$((first + 99 < N ? first + 99 : N))
        for ((i = first; i <= last; i++)); do
            ((i > first)) && echo next
            printf 'url = "http://127.0.0.1:%s/v1/apps/%s%d"\nrequest = "PUT"\nheader = "@%s"\n' "$admin" "$kind" "$i" "$WORK/auth-$kind"
            printf 'data-binary = "@%s"\noutput = "/dev/null"\nwrite-out = "%%{http_code}\\n"\n' "$WORK/$kind.tar.gz"
        done >"$WORK/deploy.curl"
        curl -sS -K "$WORK/deploy.curl" | grep -qv '^201$' && die "a $kind deploy failed: $(tail -5 "$WORK/$kind.log")"
        log "  $kind: $last deployed"
    done
    sleep "$IDLE_TIMEOUT"
    until [[ $(curl -sf -H @"$WORK/auth-$kind" "http://127.0.0.1:$admin/v1/apps" |
        python3 -c 'import json, sys; print(sum(a["status"] == "loaded" for a in json.load(sys.stdin)["apps"]))') == 0 ]]; do
        sleep 0.5
    done
    sleep 1
    echo "$start_kib $(rss_kib "$pid")"
    stop_pid "$pid"
}

read -r http_start http_idle < <(measure http)
read -r events_start events_idle < <(measure events)
commit=$(git -C "$ROOT" rev-parse --short HEAD 2>/dev/null || echo unknown)
awk -v n="$N" -v hs="$http_start" -v hi="$http_idle" -v es="$events_start" -v ei="$events_idle" -v c="$commit" 'BEGIN {
    printf "Event density, commit %s, %d apps per host, all idle\n\n", c, n
    printf "| host | RSS at start | RSS with %d idle apps | per app |\n|---|---|---|---|\n", n
    printf "| HTTP apps (hello) | %.1f MiB | %.1f MiB | %.1f KiB |\n", hs / 1024, hi / 1024, (hi - hs) / n
    printf "| event apps (NATS trigger, msg_sub) | %.1f MiB | %.1f MiB | %.1f KiB |\n", es / 1024, ei / 1024, (ei - es) / n
    printf "| **event / HTTP** | | **%.2fx** | |\n", ei / hi
}'
