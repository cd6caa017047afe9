//! A `wasi:messaging@0.2.0-draft` subscriber: exports `incoming-handler.handle(message)` and
//! records each message in the `default` key-value store (`wasi:keyvalue@0.2.0-draft2`).
//!
//! For every message (payload `P`, as UTF-8, lossy) it first
//! - prints `msg_sub got <topic>: <P>` (topic `-` if none),
//! - increments `count` and `seen:<P>` (so `seen:<P>` counts deliveries, redeliveries included),
//! - sets `last` = P, `last_topic` = topic, `topic:<P>` = topic,
//!   `meta:<P>` = the metadata as `k=v` joined by `;` in the host's order (`-` if none),
//!   `ct:<P>` = the content type (`-` if none),
//!
//! then, by payload:
//! - `fail` → returns `Err(other("msg_sub was told to fail"))` (every delivery);
//! - `fail-once:<x>` → fails on its first delivery only (`seen:` was 1), succeeds after;
//! - `hang` → loops forever (for the deadline);
//! - `sleep:<ms>` → sleeps that long, then sets `slept:<P>` = `done`;
//! - `publish:<subject>:<text>` → publishes `<text>` to `<subject>` through `producer.send`;
//! - anything else: nothing more.
//!
//! On success, if the message has a reply subject (metadata `reply-to`), it replies with the payload
//! upper-cased through `request-reply.reply`, and sets `replied:<P>` = `1`. Then increments `ok`.

mod bindings {
    wit_bindgen::generate!({ world: "guest", path: "wit", generate_all });
}

use bindings::exports::wasi::messaging::incoming_handler::Guest;
use bindings::wasi::keyvalue::{atomics, store};
use bindings::wasi::messaging::types::{Client, Error, Message};
use bindings::wasi::messaging::{producer, request_reply};

struct Sub;

fn kv<T, E: std::fmt::Debug>(what: &str, r: Result<T, E>) -> Result<T, Error> {
    r.map_err(|e| Error::Other(format!("msg_sub: {what}: {e:?}")))
}

impl Guest for Sub {
    fn handle(message: Message) -> Result<(), Error> {
        let data = message.data();
        let text = String::from_utf8_lossy(&data).into_owned();
        let topic = message.topic().unwrap_or_else(|| "-".into());
        let metadata = message.metadata().unwrap_or_default();
        println!("msg_sub got {topic}: {text}");

        let bucket = kv("open", store::open("default"))?;
        kv("count", atomics::increment(&bucket, "count", 1))?;
        let seen = kv("seen", atomics::increment(&bucket, &format!("seen:{text}"), 1))?;
        kv("last", bucket.set("last", &data))?;
        kv("last_topic", bucket.set("last_topic", topic.as_bytes()))?;
        kv("topic", bucket.set(&format!("topic:{text}"), topic.as_bytes()))?;
        let meta = if metadata.is_empty() {
            "-".to_string()
        } else {
            metadata.iter().map(|(k, v)| format!("{k}={v}")).collect::<Vec<_>>().join(";")
        };
        kv("meta", bucket.set(&format!("meta:{text}"), meta.as_bytes()))?;
        let content_type = message.content_type().unwrap_or_else(|| "-".into());
        kv("ct", bucket.set(&format!("ct:{text}"), content_type.as_bytes()))?;

        if text == "fail" || (text.starts_with("fail-once:") && seen == 1) {
            return Err(Error::Other("msg_sub was told to fail".into()));
        }
        if text == "hang" {
            let mut n: u64 = 0;
            loop {
                n = std::hint::black_box(n.wrapping_add(1));
            }
        }
        if let Some(ms) = text.strip_prefix("sleep:").and_then(|ms| ms.parse::<u64>().ok()) {
            std::thread::sleep(std::time::Duration::from_millis(ms));
            kv("slept", bucket.set(&format!("slept:{text}"), b"done"))?;
        }
        if let Some(rest) = text.strip_prefix("publish:") {
            let (subject, body) = rest.split_once(':').unwrap_or((rest, ""));
            let client = Client::connect("default")?;
            producer::send(&client, subject, Message::new(body.as_bytes()))?;
        }
        if metadata.iter().any(|(k, _)| k == "reply-to") {
            request_reply::reply(&message, Message::new(text.to_uppercase().as_bytes()))?;
            kv("replied", bucket.set(&format!("replied:{text}"), b"1"))?;
        }
        kv("ok", atomics::increment(&bucket, "ok", 1))?;
        Ok(())
    }
}

bindings::export!(Sub with_types_in bindings);
