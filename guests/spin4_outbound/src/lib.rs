//! Spin 4's outbound interfaces as users call them with spin-sdk 7 (`async`, WASI 0.3 handler):
//! `spin:mqtt/mqtt@3.0.0` and `spin:mysql/mysql@3.0.0`. It routes on the last segment of the
//! request path.
//!
//! - `/mqtt?addr=<mqtt://host:port?client_id=…>&user&pass&keep=<secs, default 30>&op=<op>…`, as
//!   the `spin_mqtt` guest: `open` → `opened`; `publish&topic&value&qos=<0|1|2>` → `ok`.
//!   Errors: 500 `error: <variant>` (`InvalidAddress`, `ConnectionFailed("…")`, `Other("…")`).
//! - `/mysql?addr=<mysql://…>&op=<op>&sql=…&p=…`, as the `spin_mysql` guest: `open` → `opened`;
//!   `execute` (repeatable `sql`) → `ok`; `query` → `columns: name:Type, …` then a line per row
//!   (read from the row stream, then its result future checked), values' `Debug` joined by ` | `.
//!   Parameters `p`: `i32:1`, `i64:1`, `u32:1`, `f64:1.5`, `s:text`, `b:<hex>`, `bool:true` or
//!   `null`. Errors: 500 `error: <variant>` (`ConnectionFailed("…")`, `QueryFailed("…")`, …).
//! - anything else → 404 `unknown path`.

// spin-sdk 7 under the workspace key `spin-sdk-7`; its macros expand to `::spin_sdk::…` paths.
extern crate spin_sdk_7 as spin_sdk;

use bytes::Bytes;
use spin_sdk::http::{FullBody, IntoResponse, Request};
use spin_sdk::wasip3::http::types::{ErrorCode, Response};

type Answer = Result<Response, ErrorCode>;

#[spin_sdk::http_service]
async fn handle(req: Request) -> Answer {
    let q = Query::parse(req.uri().query().unwrap_or(""));
    let path = req.uri().path().to_string();
    match path.rsplit('/').next().unwrap_or("") {
        "mqtt" => mqtt(q).await,
        "mysql" => mysql(q).await,
        _ => text(404, "unknown path"),
    }
}

async fn mqtt(q: Query) -> Answer {
    use spin_sdk::mqtt::{Connection, Qos};
    let Some(addr) = q.get("addr") else { return text(400, "missing addr") };
    let keep = q.get("keep").and_then(|k| k.parse().ok()).unwrap_or(30);
    let user = q.get("user").unwrap_or_default();
    let pass = q.get("pass").unwrap_or_default();
    let conn = match Connection::open(&addr, &user, &pass, keep).await {
        Ok(c) => c,
        Err(e) => return error(&e),
    };
    match q.get("op").unwrap_or_default().as_str() {
        "open" => text(200, "opened"),
        "publish" => {
            let qos = match q.get("qos").unwrap_or_default().as_str() {
                "0" => Qos::AtMostOnce,
                "1" => Qos::AtLeastOnce,
                "2" => Qos::ExactlyOnce,
                other => return text(400, format!("bad qos {other:?}")),
            };
            let topic = q.get("topic").unwrap_or_default();
            let value = q.get("value").unwrap_or_default().into_bytes();
            match conn.publish(&topic, value, qos).await {
                Ok(()) => text(200, "ok"),
                Err(e) => error(&e),
            }
        }
        other => text(400, format!("unknown op {other:?}")),
    }
}

/// 500 `error: <variant>` of the interface's error inside the SDK's.
fn mysql_error(e: &spin_sdk::mysql::Error) -> Answer {
    match e {
        spin_sdk::mysql::Error::MysqlError(e) => error(e),
        other => error(other),
    }
}

async fn mysql(q: Query) -> Answer {
    use spin_sdk::mysql::{Connection, ParameterValue as P};
    let Some(addr) = q.get("addr") else { return text(400, "missing addr") };
    let conn = match Connection::open(addr).await {
        Ok(c) => c,
        Err(e) => return mysql_error(&e),
    };
    let mut args = Vec::new();
    for arg in q.all("p") {
        let (kind, v) = arg.split_once(':').unwrap_or((arg.as_str(), ""));
        let value = match kind {
            "bool" => v.parse().ok().map(P::Boolean),
            "i32" => v.parse().ok().map(P::Int32),
            "i64" => v.parse().ok().map(P::Int64),
            "u32" => v.parse().ok().map(P::Uint32),
            "f64" => v.parse().ok().map(P::Floating64),
            "s" => Some(P::Str(v.to_string())),
            "b" => from_hex(v).map(P::Binary),
            "null" => Some(P::DbNull),
            _ => None,
        };
        match value {
            Some(value) => args.push(value),
            None => return text(400, "bad parameter"),
        }
    }
    let statements = q.all("sql");
    match q.get("op").unwrap_or_default().as_str() {
        "open" => text(200, "opened"),
        "execute" => {
            for sql in statements {
                if let Err(e) = conn.execute(sql, args.clone()).await {
                    return mysql_error(&e);
                }
            }
            text(200, "ok")
        }
        "query" => {
            let sql = statements.into_iter().next().unwrap_or_default();
            let result = match conn.query(sql, args).await {
                Ok(result) => result,
                Err(e) => return mysql_error(&e),
            };
            let header: Vec<String> = result.columns().iter().map(|c| format!("{}:{:?}", c.name, c.data_type)).collect();
            let mut lines = vec![format!("columns: {}", header.join(", "))];
            let (_, mut rows, done) = result.into_inner();
            while let Some(row) = rows.next().await {
                let values: Vec<String> = row.iter().map(|v| format!("{v:?}")).collect();
                lines.push(values.join(" | "));
            }
            match done.await {
                Ok(()) => text(200, lines.join("\n")),
                Err(e) => error(&e),
            }
        }
        other => text(400, format!("unknown op {other:?}")),
    }
}

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

fn from_hex(s: &str) -> Option<Vec<u8>> {
    if s.len() % 2 != 0 {
        return None;
    }
    (0..s.len()).step_by(2).map(|i| Some(hex(s.as_bytes()[i])? * 16 + hex(s.as_bytes()[i + 1])?)).collect()
}
