//! Spin 4's `async func` interfaces, through plain `wit-bindgen` (async imports driven by
//! `wit_bindgen::block_on` from a `wasi:http@0.2.4` handler exported through the `wasi` crate):
//! `spin:variables/variables@3.0.0` and `spin:redis/redis@3.0.0`.
//!
//! - `?name=<variable>` → the value, or 500 `error: <variant>` (`Undefined("…")`, `InvalidName("…")`)
//! - `?addr=<redis://…>&op=<op>…`: `open`, `set&key&value`, `get&key` (404 `none`), `incr&key`,
//!   `del&keys=a,b`, `sadd&key&values=a,b`, `srem&key&values=a`, `smembers&key` (sorted lines),
//!   `publish&channel&value`, `execute&cmd=CMD&a=…` (`i:<n>` is an int64): as the `spin_redis`
//!   guest answers them; errors 500 `error: <variant>` (`InvalidAddress`, …).

mod bindings {
    wit_bindgen::generate!({ world: "guest", path: "wit", generate_all });
}

use bindings::spin::redis::redis::{Connection, RedisParameter, RedisResult};
use bindings::spin::variables::variables;
use guest_common::{path_with_query, query_param, text};
use wasi::http::types::{IncomingRequest, ResponseOutparam};

struct Guest;
wasi::http::proxy::export!(Guest);

fn variant<E: std::fmt::Debug>(e: &E) -> String {
    let s = format!("{e:?}");
    match s.split_once("::") {
        Some((prefix, rest)) if !prefix.contains(['(', '"', ' ']) => rest.to_string(),
        _ => s,
    }
}

fn list(q: &str, name: &str) -> Vec<String> {
    match query_param(q, name) {
        Some(v) if !v.is_empty() => v.split(',').map(str::to_string).collect(),
        _ => Vec::new(),
    }
}

/// All values of a repeated query parameter, percent-decoded.
fn all(q: &str, name: &str) -> Vec<String> {
    let Some((_, query)) = q.split_once('?') else { return Vec::new() };
    query
        .split('&')
        .filter_map(|pair| {
            let (k, v) = pair.split_once('=').unwrap_or((pair, ""));
            (guest_common::percent_decode(k) == name).then(|| guest_common::percent_decode(v))
        })
        .collect()
}

async fn redis(q: String) -> (u16, String) {
    let addr = query_param(&q, "addr").unwrap_or_default();
    let op = query_param(&q, "op").unwrap_or_default();
    let key = query_param(&q, "key").unwrap_or_default();
    let value = query_param(&q, "value").unwrap_or_default();
    let conn = match Connection::open(addr).await {
        Ok(c) => c,
        Err(e) => return (500, format!("error: {}", variant(&e))),
    };
    let result = match op.as_str() {
        "open" => Ok("opened".to_string()),
        "set" => conn.set(key, value.into_bytes()).await.map(|()| "ok".to_string()),
        "get" => match conn.get(key).await {
            Ok(Some(v)) => Ok(String::from_utf8_lossy(&v).into_owned()),
            Ok(None) => return (404, "none".into()),
            Err(e) => Err(e),
        },
        "incr" => conn.incr(key).await.map(|n| n.to_string()),
        "del" => conn.del(list(&q, "keys")).await.map(|n| n.to_string()),
        "sadd" => conn.sadd(key, list(&q, "values")).await.map(|n| n.to_string()),
        "srem" => conn.srem(key, list(&q, "values")).await.map(|n| n.to_string()),
        "smembers" => conn.smembers(key).await.map(|mut m| {
            m.sort();
            m.join("\n")
        }),
        "publish" => conn
            .publish(query_param(&q, "channel").unwrap_or_default(), value.into_bytes())
            .await
            .map(|()| "ok".to_string()),
        "execute" => {
            let args: Vec<RedisParameter> = all(&q, "a")
                .into_iter()
                .map(|a| match a.strip_prefix("i:").and_then(|n| n.parse::<i64>().ok()) {
                    Some(n) => RedisParameter::Int64(n),
                    None => RedisParameter::Binary(a.into_bytes()),
                })
                .collect();
            conn.execute(query_param(&q, "cmd").unwrap_or_default(), args).await.map(|results| {
                results
                    .iter()
                    .map(|r| match r {
                        RedisResult::Nil => "Nil".to_string(),
                        RedisResult::Status(s) => format!("Status({s:?})"),
                        RedisResult::Int64(n) => format!("Int64({n})"),
                        RedisResult::Binary(b) => format!("Binary({:?})", String::from_utf8_lossy(b)),
                    })
                    .collect::<Vec<_>>()
                    .join("\n")
            })
        }
        other => return (400, format!("unknown op {other:?}")),
    };
    match result {
        Ok(body) => (200, body),
        Err(e) => (500, format!("error: {}", variant(&e))),
    }
}

impl wasi::exports::http::incoming_handler::Guest for Guest {
    fn handle(req: IncomingRequest, out: ResponseOutparam) {
        let q = path_with_query(&req);
        let (status, body) = if let Some(name) = query_param(&q, "name") {
            match wit_bindgen::block_on(async move { variables::get(name).await }) {
                Ok(value) => (200, value),
                Err(e) => (500, format!("error: {}", variant(&e))),
            }
        } else if query_param(&q, "addr").is_some() {
            wit_bindgen::block_on(redis(q))
        } else {
            (400, "missing name or addr".to_string())
        };
        text(out, status, body);
    }
}
