//! `POST /api/session` (optional JSON body `{"seconds": 5}`, 1–120, default 30): starts a game. Stores
//! `fw:game:<id>` = `{"seed", "start_ms", "seconds", "token"}` in the `default` store and answers 201
//! `{"game", "seed", "seconds", "start_ms", "foods", "token"}` (the token is the player's proof that
//! the game is theirs when they submit it to the leaderboard). The sequence of requested foods derives from
//! the seed (`finicky_shared::food_at`), so `tally` can check every click.

use finicky_shared::{DEFAULT_SECONDS, FOODS, Game, MAX_SECONDS, MIN_SECONDS, game_key, now_ms};
use serde_json::{Value, json};
use spin_sdk::http::{IntoResponse, Method, Request, Response};
use spin_sdk::http_component;
use spin_sdk::key_value::Store;
use std::hash::{BuildHasher, Hasher};

fn reply(status: u16, body: Value) -> Response {
    Response::builder().status(status).header("content-type", "application/json").header("cache-control", "no-store").body(body.to_string()).build()
}

fn error(status: u16, message: impl Into<String>) -> Response {
    reply(status, json!({ "error": message.into() }))
}

/// 64 random bits: std's `RandomState` is keyed from the host's `wasi:random` on wasm32-wasip2.
fn random_u64(salt: u64) -> u64 {
    let mut hasher = std::collections::hash_map::RandomState::new().build_hasher();
    hasher.write_u64(salt);
    hasher.write_u64(now_ms());
    hasher.finish()
}

/// The game length the body asks for, or the default for an empty body.
fn seconds(body: &[u8]) -> Result<u32, String> {
    if body.iter().all(u8::is_ascii_whitespace) {
        return Ok(DEFAULT_SECONDS);
    }
    let value: Value = serde_json::from_slice(body).map_err(|e| format!("bad body: {e} (send {{\"seconds\": 30}} or nothing)"))?;
    match value.get("seconds") {
        None | Some(Value::Null) => Ok(DEFAULT_SECONDS),
        Some(v) => match v.as_u64() {
            Some(s) if (u64::from(MIN_SECONDS)..=u64::from(MAX_SECONDS)).contains(&s) => Ok(s as u32),
            _ => Err(format!("bad `seconds` {v}: a whole number from {MIN_SECONDS} to {MAX_SECONDS}")),
        },
    }
}

#[http_component]
fn handle(req: Request) -> impl IntoResponse {
    if *req.method() != Method::Post {
        return error(405, "POST /api/session to start a game");
    }
    let seconds = match seconds(req.body()) {
        Ok(s) => s,
        Err(e) => return error(400, e),
    };
    let id = format!("{:016x}", random_u64(1));
    let game = Game { seed: random_u64(2) as u32, start_ms: now_ms(), seconds, token: format!("{:016x}", random_u64(3)) };
    let record = match serde_json::to_vec(&game) {
        Ok(r) => r,
        Err(e) => return error(500, e.to_string()),
    };
    let stored = Store::open_default().and_then(|store| store.set(&game_key(&id), &record));
    if let Err(e) = stored {
        return error(503, format!("key-value: {e}"));
    }
    reply(201, json!({ "game": id, "seed": game.seed, "seconds": seconds, "start_ms": game.start_ms, "foods": FOODS, "token": game.token }))
}
