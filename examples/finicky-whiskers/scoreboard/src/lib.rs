//! `GET /api/score?game=<id>` → `{"game", "score", "correct", "wrong", "late", "duplicate",
//! "processed", "seconds", "start_ms", "ended"}`: a game's counters as `tally` has left them so far
//! (morsel events are counted asynchronously, so `processed` catches up with the clicks a moment
//! later). 400 without a valid id, 404 for a game that was never started.

use finicky_shared::{Game, SHARDS, Tally, check_game_id, game_key, now_ms, query_param, tally_key};
use serde_json::{Value, json};
use spin_sdk::http::{IntoResponse, Method, Request, Response};
use spin_sdk::http_component;
use spin_sdk::key_value::Store;

fn reply(status: u16, body: Value) -> Response {
    Response::builder().status(status).header("content-type", "application/json").header("cache-control", "no-store").body(body.to_string()).build()
}

fn error(status: u16, message: impl Into<String>) -> Response {
    reply(status, json!({ "error": message.into() }))
}

fn score(store: &Store, id: &str, game: &Game) -> Result<Value, String> {
    let mut shards = Vec::new();
    for shard in 0..SHARDS {
        let record = store.get(&tally_key(id, shard)).map_err(|e| format!("key-value: {e}"))?;
        shards.push(Tally::parse(record.as_deref())?);
    }
    let tally = Tally::sum(shards);
    Ok(json!({
        "game": id,
        "score": tally.correct,
        "correct": tally.correct,
        "wrong": tally.wrong,
        "late": tally.late,
        "duplicate": tally.duplicate,
        "processed": tally.processed,
        "seconds": game.seconds,
        "start_ms": game.start_ms,
        "ended": now_ms() >= game.end_ms(),
    }))
}

#[http_component]
fn handle(req: Request) -> impl IntoResponse {
    if *req.method() != Method::Get {
        return error(405, "GET /api/score?game=<id>");
    }
    let Some(id) = query_param(req.query(), "game") else {
        return error(400, "missing `game`: GET /api/score?game=<id>");
    };
    if let Err(e) = check_game_id(id) {
        return error(400, e);
    }
    let store = match Store::open_default() {
        Ok(s) => s,
        Err(e) => return error(503, format!("key-value: {e}")),
    };
    let game = match store.get(&game_key(id)) {
        Ok(Some(bytes)) => match Game::parse(&bytes) {
            Ok(g) => g,
            Err(e) => return error(500, e),
        },
        Ok(None) => return error(404, format!("no game {id}")),
        Err(e) => return error(503, format!("key-value: {e}")),
    };
    match score(&store, id, &game) {
        Ok(body) => reply(200, body),
        Err(e) => error(503, e),
    }
}
