#!/usr/bin/env bash
# Finicky Whiskers benchmark: morsel events/s through Kiln, end to end, with many games at once.
#
#   - kiln up runs examples/finicky-whiskers (pinned to core 0; the load generator, and nats-server
#     and redis-server for the other backends, on core 1);
#   - a load generator (Python standard library, embedded below) starts PLAYERS games at once (each
#     over its own keep-alive connection) and clicks as fast as the answers come for DURATION seconds:
#     POST /api/morsel with the food the game's seed requests (every WRONG_EVERY-th click a wrong one);
#   - each click travels HTTP in → `morsel` publishes an event → `tally` (NATS trigger) checks it and
#     counts it in the game's tally (one key-value record, compare-and-swap). A click is done when it is counted as processed in key-value:
#     after the load, the generator polls every game's /api/score until `processed` equals the clicks
#     the server accepted (202);
#   - events/s = clicks processed ÷ (first click → last processed); also HTTP clicks accepted/s (the
#     rate `morsel` answered during the load) and Kiln's RSS (VmRSS of its process tree) sampled every
#     200 ms from start of load to the last processed event: peak and median;
#   - then every game is submitted to the leaderboard at once, and the top 10 is checked.
#
# Prints a table and writes it to bench/results/finicky-latest.md.
#
# Environment knobs:
#   PLAYERS=64       games played at once         DURATION=10  seconds of clicking
#   WRONG_EVERY=10   every Nth click is wrong (0: never)
#   BACKEND=embedded in-process bus + embedded key-value; `nats-redis`: NATS (JetStream) + Redis;
#                    `redis`: events and key-value both in one Redis (appendonly, fsync every second)
#   SKIP_BUILD=1     use the binaries already built  CARGO_TARGET_DIR  where the host binaries are
#   KILN_BIN=...     the kiln binary (default: $CARGO_TARGET_DIR/release/kiln); a debug binary works
#                    for a quick check, e.g.
#                    SKIP_BUILD=1 KILN_BIN=target/debug/kiln PLAYERS=8 DURATION=3 bench/finicky.sh
set -euo pipefail

ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
PLAYERS=${PLAYERS:-64}
DURATION=${DURATION:-10}
WRONG_EVERY=${WRONG_EVERY:-10}
BACKEND=${BACKEND:-embedded}
SKIP_BUILD=${SKIP_BUILD:-0}
TARGET_DIR=${CARGO_TARGET_DIR:-$ROOT/target}
case $TARGET_DIR in /*) ;; *) TARGET_DIR=$ROOT/$TARGET_DIR ;; esac
KILN_BIN=${KILN_BIN:-$TARGET_DIR/release/kiln}
case $KILN_BIN in /*) ;; *) KILN_BIN=$ROOT/$KILN_BIN ;; esac
APP=$ROOT/examples/finicky-whiskers
WASM_DIR=$ROOT/examples/target/wasm32-wasip2/release
COMPONENTS=(files_example finicky_session finicky_morsel finicky_tally finicky_scoreboard finicky_leaderboard)
RESULTS_DIR=$ROOT/bench/results

log() { printf '>> %s\n' "$*" >&2; }
die() { printf 'bench/finicky: %s\n' "$*" >&2; exit 1; }

[[ $BACKEND == embedded || $BACKEND == nats-redis || $BACKEND == redis ]] || die "BACKEND must be embedded, nats-redis or redis, not $BACKEND"
command -v python3 >/dev/null || die "python3 is not installed"
if [[ $BACKEND != embedded ]]; then
    for tool in nats-server redis-server; do
        command -v "$tool" >/dev/null || die "$tool is not installed (apt-get install nats-server redis-server)"
    done
fi

if [[ $(nproc) -ge 2 ]] && command -v taskset >/dev/null; then
    PIN_KILN=(taskset -c 0)
    PIN_LOAD=(taskset -c 1)
    PINNING="kiln on core 0, load generator (and servers) on core 1"
else
    PIN_KILN=()
    PIN_LOAD=()
    PINNING="not pinned (fewer than 2 cores or no taskset)"
fi

WORK=$(mktemp -d "${TMPDIR:-/tmp}/kiln-finicky-bench.XXXXXX")
PIDS=()
# shellcheck source=bench/lib.sh
source "$ROOT/bench/lib.sh"

# ---------------------------------------------------------------------------------------------------
# Build

if [[ $SKIP_BUILD != 1 ]]; then
    log "cargo build --release -p kiln"
    (cd "$ROOT" && cargo build --release -p kiln)
    log "building the Finicky Whiskers components (wasm32-wasip2, release)"
    packages=()
    for c in "${COMPONENTS[@]}"; do packages+=(-p "$c"); done
    (cd "$ROOT/examples" && env -u CARGO_TARGET_DIR -u CARGO_BUILD_TARGET -u RUSTFLAGS \
        cargo build --target wasm32-wasip2 --release "${packages[@]}")
fi
[[ -x $KILN_BIN ]] || die "$KILN_BIN not found (build it, unset SKIP_BUILD, or set KILN_BIN)"
for c in "${COMPONENTS[@]}"; do
    [[ -f $WASM_DIR/$c.wasm ]] || die "$WASM_DIR/$c.wasm not found (build the examples, or unset SKIP_BUILD)"
done

# ---------------------------------------------------------------------------------------------------
# Servers

wait_port() {
    local port=$1 i
    for ((i = 0; i < 200; i++)); do
        { exec 4<>"/dev/tcp/127.0.0.1/$port"; } 2>/dev/null && { exec 4>&-; return 0; }
        sleep 0.05
    done
    die "nothing listens on port $port"
}

KILN_ARGS=()
if [[ $BACKEND == nats-redis ]]; then
    NATS_PORT=$(free_port)
    REDIS_PORT=$(free_port)
    "${PIN_LOAD[@]}" nats-server -a 127.0.0.1 -p "$NATS_PORT" -js -sd "$WORK/nats" >"$WORK/nats.log" 2>&1 &
    PIDS+=("$!")
    "${PIN_LOAD[@]}" redis-server --port "$REDIS_PORT" --bind 127.0.0.1 --save "" --appendonly no >"$WORK/redis.log" 2>&1 &
    PIDS+=("$!")
    wait_port "$NATS_PORT"
    wait_port "$REDIS_PORT"
    sed -e "s#nats://127.0.0.1:4222#nats://127.0.0.1:$NATS_PORT#" -e "s#redis://127.0.0.1:6379#redis://127.0.0.1:$REDIS_PORT#" \
        "$APP/runtime-config.toml" >"$WORK/runtime-config.toml"
    KILN_ARGS+=(--runtime-config-file "$WORK/runtime-config.toml")
    log "nats-server on port $NATS_PORT, redis-server on port $REDIS_PORT"
elif [[ $BACKEND == redis ]]; then
    REDIS_PORT=$(free_port)
    mkdir -p "$WORK/redis"
    "${PIN_LOAD[@]}" redis-server --port "$REDIS_PORT" --bind 127.0.0.1 --save "" --appendonly yes --dir "$WORK/redis" >"$WORK/redis.log" 2>&1 &
    PIDS+=("$!")
    wait_port "$REDIS_PORT"
    sed -e "s#redis://127.0.0.1:6379#redis://127.0.0.1:$REDIS_PORT#" "$APP/runtime-config-redis.toml" >"$WORK/runtime-config.toml"
    KILN_ARGS+=(--runtime-config-file "$WORK/runtime-config.toml")
    log "redis-server on port $REDIS_PORT (events and key-value)"
fi

KILN_PORT=$(free_port)
KILN_CACHE_DIR=$WORK/kiln-cache "${PIN_KILN[@]}" "$KILN_BIN" up -f "$APP" --listen "127.0.0.1:$KILN_PORT" --quiet \
    --state-dir "$WORK/state" "${KILN_ARGS[@]}" >"$WORK/kiln.log" 2>&1 &
KILN_PID=$!
PIDS+=("$KILN_PID")
for ((i = 0; ; i++)); do
    [[ $(curl -s -o /dev/null -w '%{http_code}' "http://127.0.0.1:$KILN_PORT/.well-known/spin/health" || true) == 200 ]] && break
    kill -0 "$KILN_PID" 2>/dev/null || { tail -n 30 "$WORK/kiln.log" >&2; die "kiln exited before serving"; }
    ((i < 1200)) || { tail -n 30 "$WORK/kiln.log" >&2; die "kiln did not serve within 120 s"; }
    sleep 0.1
done
log "kiln ($KILN_BIN) serving examples/finicky-whiskers on port $KILN_PORT, backend $BACKEND ($PINNING)"

# ---------------------------------------------------------------------------------------------------
# Load

cat >"$WORK/load.py" <<'PY'
"""Plays PLAYERS Finicky Whiskers games at once against Kiln and measures morsel events/s."""
import http.client, json, os, statistics, sys, threading, time

port = int(os.environ["KILN_PORT"]); players = int(os.environ["PLAYERS"])
duration = float(os.environ["DURATION"]); wrong_every = int(os.environ["WRONG_EVERY"])
kiln_pid = int(os.environ["KILN_PID"])
FOODS = ["chicken", "fish", "beef", "veg"]

def food_at(seed, index):  # finicky_shared::food_at
    m = 0xFFFFFFFF
    x = (seed ^ (index * 0x9E3779B9)) & m
    x ^= x >> 16; x = (x * 0x7FEB352D) & m
    x ^= x >> 15; x = (x * 0x846CA68B) & m
    x ^= x >> 16
    return FOODS[x % 4]

def call(conn, method, path, body=None):
    data = None if body is None else json.dumps(body)
    conn.request(method, path, body=data, headers={"content-type": "application/json"} if data else {})
    response = conn.getresponse()
    return response.status, json.loads(response.read() or b"null")

def tree(pid):
    pids = [pid]
    try:
        for task in os.listdir(f"/proc/{pid}/task"):
            with open(f"/proc/{pid}/task/{task}/children") as f:
                for child in f.read().split():
                    pids += tree(int(child))
    except OSError:
        pass
    return pids

def rss_kib():
    total = 0
    for p in tree(kiln_pid):
        try:
            with open(f"/proc/{p}/status") as f:
                total += next((int(l.split()[1]) for l in f if l.startswith("VmRSS:")), 0)
        except OSError:
            pass
    return total

samples, sampling = [], threading.Event()
def sampler():
    while not sampling.is_set():
        samples.append(rss_kib()); time.sleep(0.2)

rss_before = rss_kib()
games = []  # per player: dict(game, seed, accepted, refused, correct_sent)
setup = http.client.HTTPConnection("127.0.0.1", port, timeout=60)
for _ in range(players):
    status, body = call(setup, "POST", "/api/session", {"seconds": int(duration) + 10})
    if status != 201:
        sys.exit(f"POST /api/session: {status} {body}")
    games.append({"game": body["game"], "token": body["token"], "seed": body["seed"], "accepted": 0, "refused": 0, "correct_sent": 0, "wrong_sent": 0})

start_barrier = threading.Barrier(players + 1)
def play(g):
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=60)
    index = click = 0
    start_barrier.wait()
    deadline = time.monotonic() + duration
    while time.monotonic() < deadline:
        wrong = wrong_every > 0 and click % wrong_every == wrong_every - 1
        want = food_at(g["seed"], index)
        food = FOODS[(FOODS.index(want) + 1) % 4] if wrong else want
        status, _ = call(conn, "POST", "/api/morsel", {"game": g["game"], "click": click, "index": index, "food": food})
        click += 1
        if status == 202:
            g["accepted"] += 1
            if wrong: g["wrong_sent"] += 1
            else: g["correct_sent"] += 1; index += 1
        else:
            g["refused"] += 1
    conn.close()

threads = [threading.Thread(target=play, args=(g,)) for g in games]
for t in threads: t.start()
threading.Thread(target=sampler, daemon=True).start()
start_barrier.wait()
t0 = time.monotonic()
for t in threads: t.join()
t_load = time.monotonic() - t0
accepted = sum(g["accepted"] for g in games)

# Wait for every accepted click to be counted in key-value.
pending = {g["game"]: g for g in games}
scores = {}
poll = http.client.HTTPConnection("127.0.0.1", port, timeout=60)
give_up = time.monotonic() + 300
while pending and time.monotonic() < give_up:
    for gid in list(pending):
        status, body = call(poll, "GET", f"/api/score?game={gid}")
        if status == 200:
            scores[gid] = body
            if body["processed"] >= pending[gid]["accepted"]:
                del pending[gid]
    if pending: time.sleep(0.05)
t_done = time.monotonic() - t0
sampling.set()
processed = sum(s["processed"] for s in scores.values())
correct = sum(s["correct"] for s in scores.values()); wrong = sum(s["wrong"] for s in scores.values())
late = sum(s["late"] for s in scores.values())
ok = not pending and all(scores[g["game"]]["correct"] == g["correct_sent"] and scores[g["game"]]["wrong"] == g["wrong_sent"] for g in games)

# Everyone submits at once; the top 10 must hold the ten best.
results = [None] * players
def submit(i, g):
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=60)
    results[i] = call(conn, "POST", "/api/leaderboard", {"game": g["game"], "token": g["token"], "name": f"player {i}", "clicks": g["accepted"]})
submitters = [threading.Thread(target=submit, args=(i, g)) for i, g in enumerate(games)]
# Games last duration + 10 s: wait for them to end before submitting.
time.sleep(max(0.0, t0 + duration + 10.5 - time.monotonic()))
for t in submitters: t.start()
for t in submitters: t.join()
submitted = sum(1 for r in results if r and r[0] == 200)
_, board = call(poll, "GET", "/api/leaderboard")
best = sorted((g["correct_sent"] for g in games), reverse=True)[:10]
board_ok = sorted((e["score"] for e in board["top"]), reverse=True) == best

print(json.dumps({
    "players": players, "duration_s": duration, "load_s": round(t_load, 3), "done_s": round(t_done, 3),
    "accepted": accepted, "refused": sum(g["refused"] for g in games), "processed": processed,
    "correct": correct, "wrong": wrong, "late": late, "unfinished_games": len(pending),
    "events_per_s": round(processed / t_done, 1) if t_done > 0 else 0,
    "http_per_s": round(accepted / t_load, 1) if t_load > 0 else 0,
    "rss_before_mib": round(rss_before / 1024, 1),
    "rss_peak_mib": round(max(samples, default=0) / 1024, 1),
    "rss_median_mib": round(statistics.median(samples) / 1024, 1) if samples else 0,
    "rss_samples": len(samples), "counts_ok": ok, "submitted": submitted, "leaderboard_ok": board_ok,
}))
PY

log "$PLAYERS games at once, $DURATION s of clicking (every ${WRONG_EVERY}th click wrong)"
RESULT=$(KILN_PORT=$KILN_PORT KILN_PID=$KILN_PID PLAYERS=$PLAYERS DURATION=$DURATION WRONG_EVERY=$WRONG_EVERY \
    "${PIN_LOAD[@]}" python3 "$WORK/load.py") || { tail -n 30 "$WORK/kiln.log" >&2; die "the load generator failed"; }
kill -0 "$KILN_PID" 2>/dev/null || { tail -n 30 "$WORK/kiln.log" >&2; die "kiln died during the run"; }
PEAK_HWM_MIB=$(awk -v k="$(peak_rss_kib "$KILN_PID")" 'BEGIN { printf "%.1f", k / 1024 }')
get() { python3 -c 'import json, sys; print(json.loads(sys.argv[1])[sys.argv[2]])' "$RESULT" "$1"; }

commit=$(git -C "$ROOT" rev-parse --short HEAD 2>/dev/null || echo unknown)
[[ -n $(git -C "$ROOT" status --porcelain 2>/dev/null | head -n 1) ]] && commit+=" (dirty)"
build=release
[[ $KILN_BIN == */debug/* ]] && build="debug (not a benchmark)"
REPORT=$WORK/finicky-latest.md
{
    echo "# Kiln Finicky Whiskers benchmark ($BACKEND)"
    echo
    echo "- date: $(date -u '+%Y-%m-%d %H:%M UTC'); commit $commit; $(uname -sr); $(nproc) cores; $PINNING"
    echo "- kiln: $KILN_BIN ($build); $PLAYERS games at once, $DURATION s of clicks as fast as answered, every ${WRONG_EVERY}th wrong"
    echo "- a click: HTTP POST /api/morsel → wasi:messaging event → tally (NATS trigger) → key-value atomics;" \
        "done when counted as processed in key-value"
    echo
    echo "| measure | value |"
    echo "|---|---|"
    echo "| morsel events/s, end to end (processed ÷ first click → last processed) | $(get events_per_s) |"
    echo "| clicks accepted/s over HTTP (202 from morsel, during the load) | $(get http_per_s) |"
    echo "| clicks accepted / processed / refused | $(get accepted) / $(get processed) / $(get refused) |"
    echo "| correct / wrong / late (server's counts) | $(get correct) / $(get wrong) / $(get late) |"
    echo "| load time / until last processed | $(get load_s) s / $(get done_s) s |"
    echo "| kiln RSS before load | $(get rss_before_mib) MiB |"
    echo "| kiln RSS during load: median / peak ($(get rss_samples) samples, 200 ms) | $(get rss_median_mib) / $(get rss_peak_mib) MiB |"
    echo "| kiln peak RSS over its life (VmHWM) | $PEAK_HWM_MIB MiB |"
    echo "| server counts match the clicks sent; games unfinished | $(get counts_ok); $(get unfinished_games) |"
    echo "| leaderboard: submissions accepted; top 10 correct | $(get submitted)/$PLAYERS; $(get leaderboard_ok) |"
} >"$REPORT"
mkdir -p "$RESULTS_DIR"
cp "$REPORT" "$RESULTS_DIR/finicky-latest.md"
echo
cat "$REPORT"
echo
log "written to bench/results/finicky-latest.md"
[[ $(get counts_ok) == True && $(get leaderboard_ok) == True ]] || die "the server's counts do not match the clicks sent (see above)"
