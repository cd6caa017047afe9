//! `POST /api/morsel` with `{"game": "<id>", "click": 3, "index": 2, "food": "fish"}`: checks the
//! shape of the click, stamps the time it arrived, and publishes it as a morsel event on
//! `fw.morsel.<game>` (`wasi:messaging` `producer.send`). Answers 202 at once: whether the click
//! scores is for `tally` to decide, asynchronously.

mod bindings {
    wit_bindgen::generate!({ world: "morsel", path: "wit", generate_all });
}

use bindings::wasi::messaging::producer;
use bindings::wasi::messaging::types::{Client, Message};
use finicky_shared::{Morsel, SUBJECT_PREFIX, check_food, check_game_id, now_ms};
use serde::Deserialize;
use serde_json::{Value, json};
use spin_sdk::http::{IntoResponse, Method, Request, Response};
use spin_sdk::http_component;

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct Click {
    game: String,
    click: u32,
    index: u32,
    food: String,
}

fn reply(status: u16, body: Value) -> Response {
    Response::builder().status(status).header("content-type", "application/json").header("cache-control", "no-store").body(body.to_string()).build()
}

fn error(status: u16, message: impl Into<String>) -> Response {
    reply(status, json!({ "error": message.into() }))
}

#[http_component]
fn handle(req: Request) -> impl IntoResponse {
    if *req.method() != Method::Post {
        return error(405, "POST a click: {\"game\", \"click\", \"index\", \"food\"}");
    }
    let click: Click = match serde_json::from_slice(req.body()) {
        Ok(c) => c,
        Err(e) => return error(400, format!("bad click: {e}")),
    };
    if let Err(e) = check_game_id(&click.game).and_then(|()| check_food(&click.food)) {
        return error(400, format!("bad click: {e}"));
    }
    let subject = format!("{SUBJECT_PREFIX}{}", click.game);
    let event = Morsel { game: click.game, click: click.click, index: click.index, food: click.food, at_ms: now_ms() };
    let bytes = match serde_json::to_vec(&event) {
        Ok(b) => b,
        Err(e) => return error(500, e.to_string()),
    };
    let message = Message::new(&bytes);
    let _ = message.set_content_type("application/json");
    match Client::connect("finicky-whiskers").and_then(|client| producer::send(&client, &subject, message)) {
        Ok(()) => reply(202, json!({ "published": subject, "click": event.click })),
        Err(e) => error(503, format!("could not publish the morsel: {e:?}")),
    }
}
