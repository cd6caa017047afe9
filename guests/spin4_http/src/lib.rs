//! A Spin 4 HTTP app as users write it with spin-sdk 7 (`#[spin_sdk::http_service]`, an `async fn`):
//! exports `wasi:http/handler@0.3.0` (WASI 0.3, P3) and imports Spin's async interfaces
//! `spin:key-value/key-value@3.0.0`, `spin:variables/variables@3.0.0`, `spin:sqlite/sqlite@3.1.0`,
//! `spin:redis/redis@3.0.0`, and `wasi:http/client@0.3.0` for outbound requests.
//!
//! It routes on the last segment of the request path (`/kv` and `/app/kv` both mean `kv`). Query
//! parameters are percent-decoded (`+` is a space); `p` / `a` / `sql` may repeat.
//!
//! - `/kv?op=<op>&store=<label, default "default">&key=<key>&value=<value>` — as the `spin_kv`
//!   guest, through `spin_sdk::key_value` (`spin:key-value@3.0.0`):
//!   `open` → `opened`; `set` → `ok` (the value is `value`, or `size=N` bytes of `x`, or the
//!   request body if neither); `get` → the value (raw bytes), or 404 `none`; `delete` → `ok`;
//!   `exists` → `true` / `false`; `keys` → the store's keys (read from the `get-keys` stream, then
//!   its result future checked), sorted, one a line.
//!   Errors: 500 `error: <Debug of spin_sdk::key_value::Error without the type>`
//!   (`error: AccessDenied`, `error: NoSuchStore`, `error: StoreTableFull`, `error: Other("…")`);
//!   400 `unknown op "…"` / `bad size`.
//! - `/variables?name=<name>` → the value, or 500 `error: <variant>` (`Undefined("…")`,
//!   `InvalidName("…")`, `Provider("…")`, `Other("…")`); 400 `missing name`.
//! - `/redis?addr=<redis://…>&op=<op>…` — as the `spin3_p3` / `spin_redis` guests, through
//!   `spin_sdk::redis` (`spin:redis@3.0.0`): `open` → `opened`; `set&key&value` → `ok`; `get&key` →
//!   the value, or 404 `none`; `incr&key` → the new value; `del&keys=a,b` → how many were deleted;
//!   `sadd&key&values=a,b` / `srem&key&values=a` → how many were added / removed; `smembers&key` →
//!   the members, sorted, one a line; `publish&channel&value` → `ok`; `execute&cmd=CMD&a=<arg>&a=…`
//!   (an arg `i:<n>` is an int64, anything else binary) → one line per result: `Nil`,
//!   `Status("OK")`, `Int64(1)`, `Binary("…")` (lossy UTF-8). Errors: 500 `error: <variant>`
//!   (`InvalidAddress`, `TooManyConnections`, `TypeError`, `Other("…")`); 400 `missing addr`,
//!   `unknown op "…"`.
//! - `/sqlite?db=<label, default "default">&sql=<statement>&p=<param>&p=…[&meta=1]` — as the
//!   `spin_sqlite` guest with `v=3` (a `v` parameter is accepted and ignored), through
//!   `spin_sdk::sqlite` (`spin:sqlite@3.1.0`: `open-async`, `execute-async` whose rows arrive as a
//!   stream and whose outcome is a future). Each `p` is `i:<integer>`, `r:<real>`, `t:<text>`,
//!   `b:<hex bytes>` or `n` (null). `sql` may repeat: the statements run in order on one
//!   connection, each with all the `p`s, each read to its end, and the last one's result is shown.
//!   200 body: `columns: <c1>, <c2>` then one line per row, values as `Integer(1)`, `Real(1.5)`,
//!   `Text("x")`, `Blob(0a0b)`, `Null`, joined by `, `; with `meta=1` two more lines,
//!   `changes: <n>` and `last-insert-rowid: <n>` (`changes-async` / `last-insert-rowid-async`).
//!   Errors (from `open`, `execute` or the result future): 500 `error: <variant>`
//!   (`AccessDenied`, `NoSuchDatabase`, `Io("…")`); 400 `missing sql` / `bad parameter "…"`.
//! - `/echo` → 200, the request body streamed back frame by frame as it arrives (the SDK's
//!   `IncomingBody` handed over as the response body; request trailers become response
//!   trailers); response headers `x-method` (the request method) and, when the request has them,
//!   `x-path-info` / `x-full-url` / `x-matched-route` (copies of `spin-path-info` /
//!   `spin-full-url` / `spin-matched-route`).
//! - `/outbound?url=<url>` → a GET through `spin_sdk::http::get` (`wasi:http/client@0.3.0`
//!   `send`): 200 `<upstream status>\n<upstream body>`, or 502 `error: <Debug of the ErrorCode
//!   without the type>` when sending (or reading the body) fails, e.g. `error: HttpRequestDenied`;
//!   400 `missing url`.
//! - `/stdout` → prints `spin4 stdout line` (Rust `println!`, i.e. std's `wasi:cli/stdout@0.2`)
//!   and answers `ok`.
//! - `/trap` → panics (the instance traps); `/hang` → loops forever (for the deadline).
//! - anything else → 404 `unknown path`.

// spin-sdk 7 under the workspace key `spin-sdk-7`; its macros expand to `::spin_sdk::…` paths.
extern crate spin_sdk_7 as spin_sdk;

use bytes::Bytes;
use spin_sdk::http::body::IncomingBodyExt;
use spin_sdk::http::{FullBody, IntoResponse, Request};
use spin_sdk::key_value::Store;
use spin_sdk::redis::{Connection as Redis, RedisParameter, RedisResult};
use spin_sdk::sqlite::{Connection as Sqlite, Value};
use spin_sdk::wasip3::http::types::{ErrorCode, Response};

type Answer = Result<Response, ErrorCode>;

#[spin_sdk::http_service]
async fn handle(req: Request) -> Answer {
    let q = Query::parse(req.uri().query().unwrap_or(""));
    let path = req.uri().path().to_string();
    match path.rsplit('/').next().unwrap_or("") {
        "kv" => kv(q, req).await,
        "variables" => variables(q).await,
        "redis" => redis(q).await,
        "sqlite" => sqlite(q).await,
        "echo" => echo(req),
        "outbound" => outbound(q).await,
        "stdout" => {
            println!("spin4 stdout line");
            text(200, "ok")
        }
        "trap" => panic!("spin4 was told to trap"),
        "hang" => {
            let mut n: u64 = 0;
            loop {
                n = std::hint::black_box(n.wrapping_add(1));
            }
        }
        _ => text(404, "unknown path"),
    }
}

async fn kv(q: Query, req: Request) -> Answer {
    let op = q.get("op").unwrap_or_default();
    let label = q.get("store").unwrap_or_else(|| "default".into());
    let key = q.get("key").unwrap_or_default();
    let store = match Store::open(&label).await {
        Ok(store) => store,
        Err(e) => return error(&e),
    };
    let result = match op.as_str() {
        "open" => Ok(text(200, "opened")),
        "set" => {
            let value = match (q.get("value"), q.get("size")) {
                (Some(v), _) => v.into_bytes(),
                (None, Some(n)) => match n.parse::<usize>() {
                    Ok(n) => vec![b'x'; n],
                    Err(_) => return text(400, "bad size"),
                },
                (None, None) => match req.into_body().bytes().await {
                    Ok(body) => body.to_vec(),
                    Err(e) => return error(&e),
                },
            };
            store.set(&key, &value).await.map(|()| text(200, "ok"))
        }
        "get" => store.get(&key).await.map(|v| match v {
            Some(v) => text(200, v),
            None => text(404, "none"),
        }),
        "delete" => store.delete(&key).await.map(|()| text(200, "ok")),
        "exists" => store.exists(&key).await.map(|e| text(200, e.to_string())),
        "keys" => store.get_keys().await.collect().await.map(|mut keys| {
            keys.sort();
            text(200, keys.join("\n"))
        }),
        other => return text(400, format!("unknown op {other:?}")),
    };
    result.unwrap_or_else(|e| error(&e))
}

async fn variables(q: Query) -> Answer {
    let Some(name) = q.get("name") else { return text(400, "missing name") };
    match spin_sdk::variables::get(&name).await {
        Ok(value) => text(200, value),
        Err(e) => error(&e),
    }
}

async fn redis(q: Query) -> Answer {
    let Some(addr) = q.get("addr") else { return text(400, "missing addr") };
    let op = q.get("op").unwrap_or_default();
    let key = q.get("key").unwrap_or_default();
    let value = q.get("value").unwrap_or_default();
    let conn = match Redis::open(&addr).await {
        Ok(c) => c,
        Err(e) => return error(&e),
    };
    let result = match op.as_str() {
        "open" => Ok("opened".to_string()),
        "set" => conn.set(&key, value.as_bytes()).await.map(|()| "ok".to_string()),
        "get" => match conn.get(&key).await {
            Ok(Some(v)) => Ok(String::from_utf8_lossy(&v).into_owned()),
            Ok(None) => return text(404, "none"),
            Err(e) => Err(e),
        },
        "incr" => conn.incr(&key).await.map(|n| n.to_string()),
        "del" => conn.del(q.list("keys")).await.map(|n| n.to_string()),
        "sadd" => conn.sadd(&key, q.list("values")).await.map(|n| n.to_string()),
        "srem" => conn.srem(&key, q.list("values")).await.map(|n| n.to_string()),
        "smembers" => conn.smembers(&key).await.map(|mut m| {
            m.sort();
            m.join("\n")
        }),
        "publish" => conn
            .publish(q.get("channel").unwrap_or_default(), value.as_bytes())
            .await
            .map(|()| "ok".to_string()),
        "execute" => {
            let args: Vec<RedisParameter> = q
                .all("a")
                .into_iter()
                .map(|a| match a.strip_prefix("i:").and_then(|n| n.parse::<i64>().ok()) {
                    Some(n) => RedisParameter::Int64(n),
                    None => RedisParameter::Binary(a.into_bytes()),
                })
                .collect();
            conn.execute(q.get("cmd").unwrap_or_default(), args).await.map(|results| {
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
        other => return text(400, format!("unknown op {other:?}")),
    };
    match result {
        Ok(body) => text(200, body),
        Err(e) => error(&e),
    }
}

fn sql_param(p: &str) -> Option<Value> {
    if p == "n" {
        return Some(Value::Null);
    }
    let (kind, rest) = p.split_once(':')?;
    Some(match kind {
        "i" => Value::Integer(rest.parse().ok()?),
        "r" => Value::Real(rest.parse().ok()?),
        "t" => Value::Text(rest.to_string()),
        "b" => Value::Blob(from_hex(rest)?),
        _ => return None,
    })
}

async fn sqlite(q: Query) -> Answer {
    let label = q.get("db").unwrap_or_else(|| "default".into());
    let sqls = q.all("sql");
    if sqls.is_empty() {
        return text(400, "missing sql");
    }
    let mut values = Vec::new();
    for p in q.all("p") {
        match sql_param(&p) {
            Some(v) => values.push(v),
            None => return text(400, format!("bad parameter {p:?}")),
        }
    }
    let meta = q.get("meta").as_deref() == Some("1");
    let conn = match Sqlite::open(&label).await {
        Ok(c) => c,
        Err(e) => return error(&e),
    };
    let mut last = None;
    for sql in &sqls {
        let result = match conn.execute(sql, values.iter().cloned()).await {
            Ok(r) => r,
            Err(e) => return error(&e),
        };
        let columns = result.columns().to_vec();
        match result.collect().await {
            Ok(rows) => last = Some((columns, rows)),
            Err(e) => return error(&e),
        }
    }
    let Some((columns, rows)) = last else { return text(400, "missing sql") };
    let mut lines = vec![format!("columns: {}", columns.join(", "))];
    for row in &rows {
        let cells: Vec<String> = row
            .values
            .iter()
            .map(|v| match v {
                Value::Integer(i) => format!("Integer({i})"),
                Value::Real(r) => format!("Real({r:?})"),
                Value::Text(t) => format!("Text({t:?})"),
                Value::Blob(b) => format!("Blob({})", to_hex(b)),
                Value::Null => "Null".to_string(),
            })
            .collect();
        lines.push(cells.join(", "));
    }
    if meta {
        lines.push(format!("changes: {}", conn.changes().await));
        lines.push(format!("last-insert-rowid: {}", conn.last_insert_rowid().await));
    }
    text(200, lines.join("\n"))
}

fn echo(req: Request) -> Answer {
    let mut resp = http::Response::builder().status(200).header("x-method", req.method().as_str());
    for (from, to) in [
        ("spin-path-info", "x-path-info"),
        ("spin-full-url", "x-full-url"),
        ("spin-matched-route", "x-matched-route"),
    ] {
        if let Some(v) = req.headers().get(from) {
            resp = resp.header(to, v.clone());
        }
    }
    // The request's `IncomingBody` is itself an `http_body::Body`: the SDK copies it frame by frame
    // into the response body's stream as the frames arrive, after the handler has returned.
    resp.body(req.into_body()).map_err(|e| ErrorCode::InternalError(Some(e.to_string())))?.into_response()
}

async fn outbound(q: Query) -> Answer {
    let Some(url) = q.get("url") else { return text(400, "missing url") };
    let resp = match spin_sdk::http::get(&url).await {
        Ok(resp) => resp,
        Err(e) => return text(502, format!("error: {}", variant(&e))),
    };
    let status = resp.status().as_u16();
    match resp.into_body().bytes().await {
        Ok(body) => {
            let mut out = format!("{status}\n").into_bytes();
            out.extend_from_slice(&body);
            text(200, out)
        }
        Err(e) => text(502, format!("error: {}", variant(&e))),
    }
}

/// `status` with a plain-text body.
fn text(status: u16, body: impl Into<Vec<u8>>) -> Answer {
    http::Response::builder()
        .status(status)
        .header("content-type", "text/plain; charset=utf-8")
        .body(FullBody::new(Bytes::from(body.into())))
        .map_err(|e| ErrorCode::InternalError(Some(e.to_string())))?
        .into_response()
}

/// 500 `error: <Variant>`.
fn error<E: std::fmt::Debug>(e: &E) -> Answer {
    text(500, format!("error: {}", variant(e)))
}

/// `Debug` of a wit-bindgen error without its type prefix: `Error::AccessDenied` → `AccessDenied`,
/// `ErrorCode::HttpRequestDenied` → `HttpRequestDenied`, `Error::Undefined("x")` → `Undefined("x")`.
fn variant<E: std::fmt::Debug>(e: &E) -> String {
    let s = format!("{e:?}");
    match s.split_once("::") {
        Some((prefix, rest)) if !prefix.contains(['(', '"', ' ']) => rest.to_string(),
        _ => s,
    }
}

/// The query string's parameters in order, percent-decoded (`+` is a space, as in forms).
struct Query(Vec<(String, String)>);

impl Query {
    fn parse(query: &str) -> Self {
        Query(
            query
                .split('&')
                .filter(|p| !p.is_empty())
                .map(|pair| {
                    let (k, v) = pair.split_once('=').unwrap_or((pair, ""));
                    (percent_decode(k), percent_decode(v))
                })
                .collect(),
        )
    }

    /// The first value of `name`.
    fn get(&self, name: &str) -> Option<String> {
        self.0.iter().find(|(k, _)| k == name).map(|(_, v)| v.clone())
    }

    /// Every value of `name`, in order.
    fn all(&self, name: &str) -> Vec<String> {
        self.0.iter().filter(|(k, _)| k == name).map(|(_, v)| v.clone()).collect()
    }

    /// A comma-separated list parameter (absent or empty → no items).
    fn list(&self, name: &str) -> Vec<String> {
        match self.get(name) {
            Some(v) if !v.is_empty() => v.split(',').map(str::to_string).collect(),
            _ => Vec::new(),
        }
    }
}

fn percent_decode(s: &str) -> String {
    let bytes = s.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        if bytes[i] == b'%' && i + 2 < bytes.len() {
            if let (Some(h), Some(l)) = (hex(bytes[i + 1]), hex(bytes[i + 2])) {
                out.push(h * 16 + l);
                i += 3;
                continue;
            }
        }
        out.push(if bytes[i] == b'+' { b' ' } else { bytes[i] });
        i += 1;
    }
    String::from_utf8_lossy(&out).into_owned()
}

fn hex(b: u8) -> Option<u8> {
    match b {
        b'0'..=b'9' => Some(b - b'0'),
        b'a'..=b'f' => Some(b - b'a' + 10),
        b'A'..=b'F' => Some(b - b'A' + 10),
        _ => None,
    }
}

fn to_hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

fn from_hex(s: &str) -> Option<Vec<u8>> {
    if s.len() % 2 != 0 {
        return None;
    }
    (0..s.len()).step_by(2).map(|i| Some(hex(s.as_bytes()[i])? * 16 + hex(s.as_bytes()[i + 1])?)).collect()
}
