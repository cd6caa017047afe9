//! The top 10 across players, in `fw:leaderboard` of the `default` store (a JSON array, best first).
//!
//! - `GET /api/leaderboard` → `{"top": [{"game", "name", "score", "wrong", "at_ms"}, …]}`.
//! - `POST /api/leaderboard` with `{"game": "<id>", "token": "<token>", "name": "Tom", "clicks": 17}`
//!   submits a finished game; the token is the one `session` gave the player (403 without it). Morsel events are counted asynchronously, so the page says how many clicks it
//!   made and this waits (at most [`WAIT`]) until `tally` has processed that many before it reads the
//!   score; the answer says whether it got there (`complete`), and a game submitted again replaces
//!   its own entry (so the page may retry). The list is updated with compare-and-swap
//!   (`wasi:keyvalue/atomics` `cas` + `swap`, retried on a conflict), so concurrent submissions never
//!   lose each other's entries.

mod bindings {
    wit_bindgen::generate!({ world: "leaderboard", path: "wit", generate_all });
}

use bindings::wasi::keyvalue::atomics::{self, Cas, CasError};
use bindings::wasi::keyvalue::store::{self, Bucket};
use finicky_shared::{Entry, Game, LEADERBOARD_KEY, SHARDS, Tally, check_game_id, game_key, now_ms, tally_key};
use serde::Deserialize;
use serde_json::{Value, json};
use spin_sdk::http::{IntoResponse, Method, Request, Response};
use spin_sdk::http_component;
use std::time::{Duration, Instant};

/// How long a submission waits for morsel events still in flight.
const WAIT: Duration = Duration::from_secs(5);
const TOP: usize = 10;
const MAX_NAME_CHARS: usize = 24;
const MAX_CLICKS: u32 = 100_000;

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct Submission {
    game: String,
    token: String,
    name: String,
    clicks: u32,
}

fn reply(status: u16, body: Value) -> Response {
    Response::builder().status(status).header("content-type", "application/json").header("cache-control", "no-store").body(body.to_string()).build()
}

fn error(status: u16, message: impl Into<String>) -> Response {
    reply(status, json!({ "error": message.into() }))
}

fn kv<T>(r: Result<T, store::Error>) -> Result<T, String> {
    r.map_err(|e| format!("key-value: {e:?}"))
}

fn parse_list(bytes: Option<Vec<u8>>) -> Result<Vec<Entry>, String> {
    match bytes {
        None => Ok(Vec::new()),
        Some(b) => serde_json::from_slice(&b).map_err(|e| format!("corrupt leaderboard: {e}")),
    }
}

fn check_name(name: &str) -> Result<String, String> {
    let name = name.trim();
    if name.is_empty() {
        return Err("a name is required".into());
    }
    if name.chars().count() > MAX_NAME_CHARS {
        return Err(format!("the name is longer than {MAX_NAME_CHARS} characters"));
    }
    if name.chars().any(char::is_control) {
        return Err("the name has control characters".into());
    }
    Ok(name.to_string())
}

/// Inserts (or replaces) `entry` and keeps the best [`TOP`]; returns the new list and its rank. A
/// game submitted again keeps its first submission's time (its place among equal scores).
fn insert(mut list: Vec<Entry>, entry: &Entry) -> (Vec<Entry>, Option<usize>) {
    let mut entry = entry.clone();
    if let Some(earlier) = list.iter().find(|e| e.game == entry.game) {
        entry.at_ms = earlier.at_ms;
    }
    list.retain(|e| e.game != entry.game);
    list.push(entry.clone());
    list.sort_by(|a, b| b.score.cmp(&a.score).then(a.at_ms.cmp(&b.at_ms)).then(a.game.cmp(&b.game)));
    list.truncate(TOP);
    let rank = list.iter().position(|e| e.game == entry.game).map(|i| i + 1);
    (list, rank)
}

/// Read-modify-write of the list under compare-and-swap: a conflicting writer makes `swap` fail
/// with a fresh handle, and the update is redone on what that writer left.
fn record(bucket: &Bucket, entry: &Entry) -> Result<(Vec<Entry>, Option<usize>), String> {
    let mut cas = kv(Cas::new(bucket, LEADERBOARD_KEY))?;
    for _ in 0..200 {
        let (list, rank) = insert(parse_list(kv(cas.current())?)?, entry);
        let bytes = serde_json::to_vec(&list).map_err(|e| e.to_string())?;
        match atomics::swap(cas, &bytes) {
            Ok(()) => return Ok((list, rank)),
            Err(CasError::CasFailed(latest)) => cas = latest,
            Err(CasError::StoreError(e)) => return Err(format!("key-value: {e:?}")),
        }
    }
    Err("the leaderboard is too busy: try again".into())
}

fn submit(bucket: &Bucket, body: &[u8]) -> Result<Response, String> {
    let submission: Submission = match serde_json::from_slice(body) {
        Ok(s) => s,
        Err(e) => return Ok(error(400, format!("bad submission: {e} (send {{\"game\", \"token\", \"name\", \"clicks\"}})"))),
    };
    let name = match check_game_id(&submission.game).and_then(|()| check_name(&submission.name)) {
        Ok(name) => name,
        Err(e) => return Ok(error(400, format!("bad submission: {e}"))),
    };
    if submission.clicks > MAX_CLICKS {
        return Ok(error(400, format!("bad submission: more than {MAX_CLICKS} clicks")));
    }
    let id = &submission.game;
    let Some(game_record) = kv(bucket.get(&game_key(id)))? else {
        return Ok(error(404, format!("no game {id}")));
    };
    let game = Game::parse(&game_record)?;
    if submission.token != game.token {
        return Ok(error(403, format!("game {id} is not yours: send the token /api/session gave you")));
    }
    let now = now_ms();
    if now < game.end_ms() {
        return Ok(error(409, format!("game {id} is still running ({} ms left)", game.end_ms() - now)));
    }
    let tally = || -> Result<Tally, String> {
        let shards = (0..SHARDS).map(|shard| kv(bucket.get(&tally_key(id, shard))).and_then(|record| Tally::parse(record.as_deref())));
        Ok(Tally::sum(shards.collect::<Result<Vec<_>, _>>()?))
    };
    // Wait, bounded, for the clicks still in flight to be counted.
    let started = Instant::now();
    let mut counted = tally()?;
    while counted.processed < i64::from(submission.clicks) && started.elapsed() < WAIT {
        std::thread::sleep(Duration::from_millis(20));
        counted = tally()?;
    }
    let processed = counted.processed;
    let entry = Entry { game: id.clone(), name, score: counted.correct, wrong: counted.wrong, at_ms: now };
    let (top, rank) = record(bucket, &entry)?;
    Ok(reply(
        200,
        json!({
            "game": id, "name": entry.name, "score": entry.score, "wrong": entry.wrong,
            "clicks": submission.clicks, "processed": processed,
            "complete": processed >= i64::from(submission.clicks),
            "rank": rank, "top": top,
        }),
    ))
}

#[http_component]
fn handle(req: Request) -> impl IntoResponse {
    let bucket = match kv(store::open("default")) {
        Ok(b) => b,
        Err(e) => return error(503, e),
    };
    let result = match *req.method() {
        Method::Get => kv(bucket.get(LEADERBOARD_KEY)).and_then(parse_list).map(|top| reply(200, json!({ "top": top }))),
        Method::Post => submit(&bucket, req.body()),
        _ => Ok(error(405, "GET the top 10, or POST {\"game\", \"token\", \"name\", \"clicks\"}")),
    };
    result.unwrap_or_else(|e| error(503, e))
}
