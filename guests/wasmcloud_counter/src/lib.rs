//! A wasmCloud-style counter (wasmCloud's `http-keyvalue-counter`, plus link names): exports
//! `wasi:http/incoming-handler` through the `wasi` crate, and uses wasmCloud's interfaces through
//! plain `wit-bindgen`.
//!
//! `?<params>`:
//! - `link=<name>&bus=1|2`: first `wasmcloud:bus/lattice@<bus>.0.0.set-link-name(name,
//!   [wasi:keyvalue/store, wasi:keyvalue/atomics])` (bus 2 also `wasmcloud:messaging/consumer`
//!   when `link_messaging=1`); a 2.0.0 error → 409 `link error: <e>`.
//! - `publish=<subject>&payload=<p>` → `wasmcloud:messaging/consumer.publish` → `published`.
//! - `request=<subject>&payload=<p>&timeout_ms=<n>` → `consumer.request` → the reply's body.
//! - `config=<key>` → `wasi:config/runtime.get` → the value, or 404 `none`.
//! - otherwise: opens `bucket` (default `""`), increments `key` (default `counter`), logs
//!   `<key> = <n>` at info with context `counter` through `wasi:logging`, answers `<n>`.
//! - `log=<level>&msg=<text>`: also logs `<text>` at that level, context `test`.
//!
//! Errors: 500 `error: <Debug without the type>` (`error: AccessDenied`) or the WIT's string.

mod bindings {
    wit_bindgen::generate!({ world: "guest", path: "wit", generate_all });
}

use bindings::wasi::config::runtime;
use bindings::wasi::keyvalue::{atomics, store};
use bindings::wasi::logging::logging::{self, Level};
use bindings::wasmcloud::bus1_0_0::lattice as lattice1;
use bindings::wasmcloud::bus2_0_0::lattice as lattice2;
use bindings::wasmcloud::messaging::{consumer, types::BrokerMessage};
use guest_common::{path_with_query, query_param, text};
use wasi::http::types::{IncomingRequest, ResponseOutparam};

struct Guest;
wasi::http::proxy::export!(Guest);

/// `Debug` without the leading `Type::`.
fn variant<E: std::fmt::Debug>(e: &E) -> String {
    let s = format!("{e:?}");
    match s.split_once("::") {
        Some((prefix, rest)) if !prefix.contains(['(', '"', ' ']) => rest.to_string(),
        _ => s,
    }
}

fn level(name: &str) -> Option<Level> {
    Some(match name {
        "trace" => Level::Trace,
        "debug" => Level::Debug,
        "info" => Level::Info,
        "warn" => Level::Warn,
        "error" => Level::Error,
        "critical" => Level::Critical,
        _ => return None,
    })
}

/// `set-link-name` at bus version `bus`; `Err` only from 2.0.0.
fn set_link(q: &str, name: &str) -> Result<(), String> {
    let messaging = query_param(q, "link_messaging").as_deref() == Some("1");
    match query_param(q, "bus").as_deref() {
        Some("1") => {
            let targets = vec![
                lattice1::CallTargetInterface::new("wasi", "keyvalue", "store"),
                lattice1::CallTargetInterface::new("wasi", "keyvalue", "atomics"),
            ];
            lattice1::set_link_name(name, targets);
            Ok(())
        }
        _ => {
            let mut targets = vec![
                lattice2::CallTargetInterface::new("wasi", "keyvalue", "store"),
                lattice2::CallTargetInterface::new("wasi", "keyvalue", "atomics"),
            ];
            if messaging {
                targets.push(lattice2::CallTargetInterface::new("wasmcloud", "messaging", "consumer"));
            }
            lattice2::set_link_name(name, targets)
        }
    }
}

fn messaging(q: &str) -> Option<(u16, String)> {
    let payload = query_param(q, "payload").unwrap_or_default().into_bytes();
    if let Some(subject) = query_param(q, "publish") {
        let msg = BrokerMessage { subject, body: payload, reply_to: None };
        return Some(match consumer::publish(&msg) {
            Ok(()) => (200, "published".into()),
            Err(e) => (500, format!("error: {e}")),
        });
    }
    let subject = query_param(q, "request")?;
    let timeout = query_param(q, "timeout_ms").and_then(|t| t.parse().ok()).unwrap_or(5000);
    Some(match consumer::request(&subject, &payload, timeout) {
        Ok(reply) => (200, String::from_utf8_lossy(&reply.body).into_owned()),
        Err(e) => (500, format!("error: {e}")),
    })
}

fn run(q: &str) -> (u16, String) {
    if let Some(name) = query_param(q, "link")
        && let Err(e) = set_link(q, &name)
    {
        return (409, format!("link error: {e}"));
    }
    if let Some(reply) = messaging(q) {
        return reply;
    }
    if let Some(key) = query_param(q, "config") {
        return match runtime::get(&key) {
            Ok(Some(v)) => (200, v),
            Ok(None) => (404, "none".into()),
            Err(e) => (500, format!("error: {}", variant(&e))),
        };
    }
    if let (Some(l), Some(msg)) = (query_param(q, "log").as_deref().and_then(level), query_param(q, "msg")) {
        logging::log(l, "test", &msg);
    }
    let identifier = query_param(q, "bucket").unwrap_or_default();
    let key = query_param(q, "key").unwrap_or_else(|| "counter".into());
    let bucket = match store::open(&identifier) {
        Ok(b) => b,
        Err(e) => return (500, format!("error: {}", variant(&e))),
    };
    match atomics::increment(&bucket, &key, 1) {
        Ok(n) => {
            logging::log(Level::Info, "counter", &format!("{key} = {n}"));
            (200, n.to_string())
        }
        Err(e) => (500, format!("error: {}", variant(&e))),
    }
}

impl wasi::exports::http::incoming_handler::Guest for Guest {
    fn handle(req: IncomingRequest, out: ResponseOutparam) {
        let (status, body) = run(&path_with_query(&req));
        text(out, status, body);
    }
}
