//! A `wasmcloud:messaging@0.2.0` handler: exports `handler.handle-message`, records every message
//! in the store it opens as `""` (`wasi:keyvalue@0.2.0-draft`), logs through `wasi:logging`.
//!
//! For a message with body `P` on subject `S` it logs `got S: P` (info, context `wasmcloud_msg`),
//! increments `count`, sets `last` = P and `subject:P` = S, then, by body:
//! - `fail` → `err("wasmcloud_msg was told to fail")` (no reply);
//! - `forward:<subject>:<text>` → `consumer.publish(<subject>, <text>)`;
//! - `request:<subject>:<text>` → `consumer.request(<subject>, <text>, 2000 ms)`, sets
//!   `reply:P` = the reply's body or `error: <e>`;
//!
//! and if the message has a `reply-to`, publishes P upper-cased there (sets `replied:P` = `1`).
//! Last, increments `ok`.

mod bindings {
    wit_bindgen::generate!({ world: "guest", path: "wit", generate_all });
}

use bindings::exports::wasmcloud::messaging::handler::Guest;
use bindings::wasi::keyvalue::{atomics, store};
use bindings::wasi::logging::logging::{Level, log};
use bindings::wasmcloud::messaging::consumer;
use bindings::wasmcloud::messaging::types::BrokerMessage;

struct Handler;

fn kv<T, E: std::fmt::Debug>(what: &str, r: Result<T, E>) -> Result<T, String> {
    r.map_err(|e| format!("wasmcloud_msg: {what}: {e:?}"))
}

fn publish(subject: &str, body: &[u8]) -> Result<(), String> {
    consumer::publish(&BrokerMessage { subject: subject.to_string(), body: body.to_vec(), reply_to: None })
}

impl Guest for Handler {
    fn handle_message(msg: BrokerMessage) -> Result<(), String> {
        let text = String::from_utf8_lossy(&msg.body).into_owned();
        log(Level::Info, "wasmcloud_msg", &format!("got {}: {text}", msg.subject));
        let bucket = kv("open", store::open(""))?;
        kv("count", atomics::increment(&bucket, "count", 1))?;
        kv("last", bucket.set("last", &msg.body))?;
        kv("subject", bucket.set(&format!("subject:{text}"), msg.subject.as_bytes()))?;
        if text == "fail" {
            log(Level::Error, "wasmcloud_msg", "told to fail");
            return Err("wasmcloud_msg was told to fail".into());
        }
        if let Some(rest) = text.strip_prefix("forward:") {
            let (subject, body) = rest.split_once(':').unwrap_or((rest, ""));
            publish(subject, body.as_bytes())?;
        }
        if let Some(rest) = text.strip_prefix("request:") {
            let (subject, body) = rest.split_once(':').unwrap_or((rest, ""));
            let reply = match consumer::request(subject, body.as_bytes(), 2000) {
                Ok(reply) => String::from_utf8_lossy(&reply.body).into_owned(),
                Err(e) => format!("error: {e}"),
            };
            kv("reply", bucket.set(&format!("reply:{text}"), reply.as_bytes()))?;
        }
        if let Some(reply_to) = &msg.reply_to {
            publish(reply_to, text.to_uppercase().as_bytes())?;
            kv("replied", bucket.set(&format!("replied:{text}"), b"1"))?;
        }
        kv("ok", atomics::increment(&bucket, "ok", 1))?;
        Ok(())
    }
}

bindings::export!(Handler with_types_in bindings);
