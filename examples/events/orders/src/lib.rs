//! `POST /orders` with a JSON order `{"id": "A-1", "amount_cents": 1250}`: checks it and publishes
//! it as an `orders.created` event through `wasi:messaging` (`producer.send`), then answers
//! 202 `{"published":"orders.created","id":"A-1"}`. It does not wait for anyone to process the
//! event: that is the projector's job.

mod bindings {
    wit_bindgen::generate!({ world: "orders", path: "wit", generate_all });
}

use bindings::wasi::messaging::producer;
use bindings::wasi::messaging::types::{Client, Message};
use serde::{Deserialize, Serialize};
use spin_sdk::http::{IntoResponse, Method, Request, Response};
use spin_sdk::http_component;

#[derive(Deserialize, Serialize)]
struct Order {
    id: String,
    amount_cents: u64,
}

const SUBJECT: &str = "orders.created";

fn json(status: u16, body: serde_json::Value) -> Response {
    Response::builder().status(status).header("content-type", "application/json").body(body.to_string()).build()
}

#[http_component]
fn handle(req: Request) -> impl IntoResponse {
    if *req.method() != Method::Post {
        return json(405, serde_json::json!({ "error": "POST an order" }));
    }
    let order: Order = match serde_json::from_slice(req.body()) {
        Ok(order) => order,
        Err(e) => return json(400, serde_json::json!({ "error": format!("bad order: {e}") })),
    };
    if order.id.is_empty() {
        return json(400, serde_json::json!({ "error": "bad order: empty id" }));
    }
    let event = match serde_json::to_vec(&order) {
        Ok(event) => event,
        Err(e) => return json(500, serde_json::json!({ "error": e.to_string() })),
    };
    let message = Message::new(&event);
    // Content type is metadata only; NATS carries it as a header.
    let _ = message.set_content_type("application/json");
    let sent = Client::connect("events").and_then(|client| producer::send(&client, SUBJECT, message));
    match sent {
        Ok(()) => json(202, serde_json::json!({ "published": SUBJECT, "id": order.id })),
        Err(e) => json(503, serde_json::json!({ "error": format!("could not publish: {e:?}") })),
    }
}
