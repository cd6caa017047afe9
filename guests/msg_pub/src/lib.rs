//! An HTTP component (`wasi:http/incoming-handler` through the `wasi` crate) that publishes through
//! `wasi:messaging@0.2.0-draft` (`producer.send`, `request-reply.request`).
//!
//! - `?subject=S&payload=P` → `producer.send(client, S, message(P))` → 200 `sent`. Without `payload`
//!   the request body is the payload. `&count=N` sends N messages, the payload of message i being
//!   `P-i` (i from 0) → 200 `sent N`.
//! - `?request=S&payload=P` → `request-reply.request(client, S, message(P), options)` → 200 with
//!   the replies' payloads, one a line. Options only when given: `&timeout_ms=T`, `&expect=N`
//!   (expected replies).
//! - Either may add `&content_type=C` (`set-content-type`) and `&meta=k:v,k2:v2` (`add-metadata`).
//! - `&connect=NAME` picks the client name (default `default`).
//!
//! Errors: 500 `error: <Debug of the wasi:messaging error>`, e.g. `error: Timeout`,
//! `error: Other("no responders for x")`, `error: PermissionDenied("…")`,
//! `error: Connection("…")`. 400 `bad request: …`.

mod bindings {
    wit_bindgen::generate!({ world: "guest", path: "wit", generate_all });
}

use bindings::wasi::messaging::request_reply::{self, RequestOptions};
use bindings::wasi::messaging::types::{Client, Error, Message};
use bindings::wasi::messaging::producer;
use guest_common::{path_with_query, query_param, read_all, text};
use wasi::http::types::{IncomingRequest, ResponseOutparam};

struct Guest;
wasi::http::proxy::export!(Guest);

enum Failure {
    Bad(String),
    Messaging(Error),
}

impl From<Error> for Failure {
    fn from(e: Error) -> Self {
        Failure::Messaging(e)
    }
}

fn message(q: &str, payload: &[u8]) -> Result<Message, Failure> {
    let message = Message::new(payload);
    if let Some(ct) = query_param(q, "content_type") {
        message.set_content_type(&ct).map_err(|()| Failure::Bad("content type not supported".into()))?;
    }
    if let Some(meta) = query_param(q, "meta") {
        for pair in meta.split(',').filter(|p| !p.is_empty()) {
            let (k, v) = pair.split_once(':').unwrap_or((pair, ""));
            message.add_metadata(k, v).map_err(|e| Failure::Bad(format!("metadata {k}: {e:?}")))?;
        }
    }
    Ok(message)
}

fn run(q: &str, body: Vec<u8>) -> Result<String, Failure> {
    let payload = query_param(q, "payload").map(String::into_bytes).unwrap_or(body);
    let name = query_param(q, "connect").unwrap_or_else(|| "default".into());
    if let Some(subject) = query_param(q, "request") {
        let client = Client::connect(&name)?;
        let options = match (query_param(q, "timeout_ms"), query_param(q, "expect")) {
            (None, None) => None,
            (timeout, expect) => {
                let options = RequestOptions::new();
                if let Some(t) = timeout {
                    options.set_timeout_ms(t.parse().map_err(|_| Failure::Bad("timeout_ms".into()))?);
                }
                if let Some(n) = expect {
                    options.set_expected_replies(n.parse().map_err(|_| Failure::Bad("expect".into()))?);
                }
                Some(options)
            }
        };
        let request = message(q, &payload)?;
        let replies = request_reply::request(&client, &subject, &request, options)?;
        let lines: Vec<String> = replies.iter().map(|m| String::from_utf8_lossy(&m.data()).into_owned()).collect();
        return Ok(lines.join("\n"));
    }
    if let Some(subject) = query_param(q, "subject") {
        let client = Client::connect(&name)?;
        return match query_param(q, "count") {
            None => {
                producer::send(&client, &subject, message(q, &payload)?)?;
                Ok("sent".into())
            }
            Some(n) => {
                let n: usize = n.parse().map_err(|_| Failure::Bad("count".into()))?;
                let prefix = String::from_utf8_lossy(&payload).into_owned();
                for i in 0..n {
                    producer::send(&client, &subject, message(q, format!("{prefix}-{i}").as_bytes())?)?;
                }
                Ok(format!("sent {n}"))
            }
        };
    }
    Err(Failure::Bad("give subject= or request=".into()))
}

/// `Debug` without the leading `Error::`.
fn variant<E: std::fmt::Debug>(e: &E) -> String {
    let s = format!("{e:?}");
    match s.split_once("::") {
        Some((prefix, rest)) if !prefix.contains(['(', '"', ' ']) => rest.to_string(),
        _ => s,
    }
}

impl wasi::exports::http::incoming_handler::Guest for Guest {
    fn handle(req: IncomingRequest, out: ResponseOutparam) {
        let q = path_with_query(&req);
        let body = match req.consume().map_err(|()| "no body".to_string()).and_then(read_all) {
            Ok(body) => body,
            Err(e) => return text(out, 400, format!("bad request: {e}")),
        };
        match run(&q, body) {
            Ok(reply) => text(out, 200, reply),
            Err(Failure::Bad(msg)) => text(out, 400, format!("bad request: {msg}")),
            Err(Failure::Messaging(e)) => text(out, 500, format!("error: {}", variant(&e))),
        }
    }
}
