//! What Spin 3 serves, through plain `wit-bindgen`: `wasi:keyvalue/{store,atomics,batch}@0.2.0-draft2`
//! (with compare-and-swap) and `wasi:config/store@0.2.0-draft-2024-09-27`. Exports
//! `wasi:http/incoming-handler` through the `wasi` crate.
//!
//! `?op=<op>&store=<identifier, default "default">&key=<key>…`:
//! - `open` → `opened`
//! - `get` → the value (raw bytes) or 404 `none`; `set&value=v` (or `size=N` bytes of `x`) → `ok`
//! - `delete` → `ok`; `exists` → `true` / `false`
//! - `list-keys` → every key (following the cursor), sorted, one a line
//! - `increment&delta=N` (signed) → the new value
//! - `get-many&keys=a,b` → one line per key: `a=<value>` or `a: none`
//! - `set-many&kv=a:1,b:2` → `ok`; `delete-many&keys=a,b` → `ok`
//! - `cas&value=v[&expect=old]`: `cas.new`, `current` (answered as `current: <value>` or
//!   `current: none`; if `expect` is given and differs, 409 `unexpected current: …` without
//!   swapping), then `swap` → `swapped`, or 409 `cas-failed`
//! - `cas-race&value=v&interloper=w`: `cas.new`, `current`, then another write of `interloper`
//!   through the bucket before `swap(value)` → 409 `cas-failed` (a real CAS), or 200 `swapped`
//! - `config-get&key=k` → the value or 404 `none`; `config-get-all` → `k=v` lines, sorted
//!
//! Errors: 500 `error: <Debug without the type>`: `error: AccessDenied`, `error: NoSuchStore`,
//! `error: Other("…")`, `error: Upstream("…")`, `error: Io("…")`. 400 for a bad request.

mod bindings {
    wit_bindgen::generate!({ world: "guest", path: "wit", generate_all });
}

use guest_common::{path_with_query, query_param, text};
use wasi::http::types::{IncomingRequest, ResponseOutparam};
use bindings::wasi::config;
use bindings::wasi::keyvalue::{atomics, batch, store};

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

fn list(q: &str, name: &str) -> Vec<String> {
    match query_param(q, name) {
        Some(v) if !v.is_empty() => v.split(',').map(str::to_string).collect(),
        _ => Vec::new(),
    }
}

enum Reply {
    Ok(Vec<u8>),
    Status(u16, String),
}

fn ok(s: impl Into<Vec<u8>>) -> Reply {
    Reply::Ok(s.into())
}

fn show(v: &Option<Vec<u8>>) -> String {
    match v {
        Some(v) => String::from_utf8_lossy(v).into_owned(),
        None => "none".into(),
    }
}

fn swap(cas: atomics::Cas, value: &[u8], lines: &mut Vec<String>) -> Result<Reply, String> {
    match atomics::swap(cas, value) {
        Ok(()) => {
            lines.push("swapped".into());
            Ok(ok(lines.join("\n")))
        }
        Err(atomics::CasError::CasFailed(_)) => {
            lines.push("cas-failed".into());
            Ok(Reply::Status(409, lines.join("\n")))
        }
        Err(atomics::CasError::StoreError(e)) => Err(variant(&e)),
    }
}

fn run(q: &str) -> Result<Reply, String> {
    let op = query_param(q, "op").unwrap_or_default();
    let key = query_param(q, "key").unwrap_or_default();
    let e = |e: store::Error| variant(&e);
    match op.as_str() {
        "config-get" => {
            return match config::store::get(&key) {
                Ok(Some(v)) => Ok(ok(v)),
                Ok(None) => Ok(Reply::Status(404, "none".into())),
                Err(err) => Err(variant(&err)),
            };
        }
        "config-get-all" => {
            let mut all = config::store::get_all().map_err(|err| variant(&err))?;
            all.sort();
            let lines: Vec<String> = all.into_iter().map(|(k, v)| format!("{k}={v}")).collect();
            return Ok(ok(lines.join("\n")));
        }
        _ => {}
    }
    let identifier = query_param(q, "store").unwrap_or_else(|| "default".into());
    let bucket = store::open(&identifier).map_err(e)?;
    let value = || match (query_param(q, "value"), query_param(q, "size")) {
        (Some(v), _) => Ok(v.into_bytes()),
        (None, Some(n)) => Ok(vec![b'x'; n.parse::<usize>().map_err(|_| "bad size".to_string())?]),
        (None, None) => Ok::<_, String>(Vec::new()),
    };
    Ok(match op.as_str() {
        "open" => ok("opened"),
        "get" => match bucket.get(&key).map_err(e)? {
            Some(v) => ok(v),
            None => Reply::Status(404, "none".into()),
        },
        "set" => {
            bucket.set(&key, &value()?).map_err(e)?;
            ok("ok")
        }
        "delete" => {
            bucket.delete(&key).map_err(e)?;
            ok("ok")
        }
        "exists" => ok(bucket.exists(&key).map_err(e)?.to_string()),
        "list-keys" => {
            let mut keys = Vec::new();
            let mut cursor: Option<String> = None;
            loop {
                let page = bucket.list_keys(cursor.as_deref()).map_err(e)?;
                keys.extend(page.keys);
                match page.cursor {
                    Some(c) => cursor = Some(c),
                    None => break,
                }
            }
            keys.sort();
            ok(keys.join("\n"))
        }
        "increment" => {
            let delta = query_param(q, "delta").unwrap_or_else(|| "1".into());
            let delta: i64 = delta.parse().map_err(|_| "bad delta".to_string())?;
            ok(atomics::increment(&bucket, &key, delta).map_err(e)?.to_string())
        }
        "get-many" => {
            let keys = list(q, "keys");
            let got = batch::get_many(&bucket, &keys).map_err(e)?;
            let lines: Vec<String> = got
                .into_iter()
                .map(|(k, v)| match v {
                    Some(value) => format!("{k}={}", String::from_utf8_lossy(&value)),
                    None => format!("{k}: none"),
                })
                .collect();
            ok(lines.join("\n"))
        }
        "set-many" => {
            let pairs: Vec<(String, Vec<u8>)> = list(q, "kv")
                .into_iter()
                .map(|p| {
                    let (k, v) = p.split_once(':').unwrap_or((&p, ""));
                    (k.to_string(), v.as_bytes().to_vec())
                })
                .collect();
            batch::set_many(&bucket, &pairs).map_err(e)?;
            ok("ok")
        }
        "delete-many" => {
            batch::delete_many(&bucket, &list(q, "keys")).map_err(e)?;
            ok("ok")
        }
        "cas" => {
            let cas = atomics::Cas::new(&bucket, &key).map_err(e)?;
            let current = cas.current().map_err(e)?;
            let mut lines = vec![format!("current: {}", show(&current))];
            if let Some(expect) = query_param(q, "expect") {
                if current.as_deref() != Some(expect.as_bytes()) {
                    lines.push("unexpected current".into());
                    return Ok(Reply::Status(409, lines.join("\n")));
                }
            }
            return swap(cas, &value()?, &mut lines);
        }
        "cas-race" => {
            let cas = atomics::Cas::new(&bucket, &key).map_err(e)?;
            let current = cas.current().map_err(e)?;
            let mut lines = vec![format!("current: {}", show(&current))];
            let interloper = query_param(q, "interloper").unwrap_or_else(|| "interloper".into());
            bucket.set(&key, interloper.as_bytes()).map_err(e)?;
            return swap(cas, &value()?, &mut lines);
        }
        other => Reply::Status(400, format!("unknown op {other:?}")),
    })
}

impl wasi::exports::http::incoming_handler::Guest for Guest {
    fn handle(req: IncomingRequest, out: ResponseOutparam) {
        let q = path_with_query(&req);
        match run(&q) {
            Ok(Reply::Ok(body)) => text(out, 200, body),
            Ok(Reply::Status(code, body)) => text(out, code, body),
            Err(msg) => text(out, 500, format!("error: {msg}")),
        }
    }
}
