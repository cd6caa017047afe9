//! Spin 4's outbound interfaces as users call them with spin-sdk 7 (`async`, WASI 0.3 handler):
//! `spin:mqtt/mqtt@3.0.0`, `spin:mysql/mysql@3.0.0` and `spin:postgres/postgres@4.2.0`. It routes on
//! the last segment of the request path.
//!
//! - `/mqtt?addr=<mqtt://host:port?client_id=…>&user&pass&keep=<secs, default 30>&op=<op>…`, as
//!   the `spin_mqtt` guest: `open` → `opened`; `publish&topic&value&qos=<0|1|2>` → `ok`.
//!   Errors: 500 `error: <variant>` (`InvalidAddress`, `ConnectionFailed("…")`, `Other("…")`).
//! - `/mysql?addr=<mysql://…>&op=<op>&sql=…&p=…`, as the `spin_mysql` guest: `open` → `opened`;
//!   `execute` (repeatable `sql`) → `ok`; `query` → `columns: name:Type, …` then a line per row
//!   (read from the row stream, then its result future checked), values' `Debug` joined by ` | `.
//!   Parameters `p`: `i32:1`, `i64:1`, `u32:1`, `f64:1.5`, `s:text`, `b:<hex>`, `bool:true` or
//!   `null`. Errors: 500 `error: <variant>` (`ConnectionFailed("…")`, `QueryFailed("…")`, …).
//! - `/pg?addr=<postgres://…>&op=<op>&sql=…&p=…`, as the `spin_pg` guest's 4.0.0 (`open`,
//!   `execute` (repeatable `sql`; answers the last count), `query`, `roundtrip`: the same table of
//!   every type), all through 4.2.0's `async` functions, and `ca&ca=<PEM>`: opens through a
//!   `connection-builder` with that CA root → `opened`. Parameters `p` as `spin_pg`'s v4.
//!   Errors: 500 `error: <variant>` of the interface's error.
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
        "pg" => pg::run(q).await,
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

mod pg {
    use super::*;
    use spin_sdk::pg::{Certificate, Connection, Error, Interval, OpenOptions, ParameterValue as P, QueryResult, RangeBoundKind as K};

    /// 500 `error: <variant>` of the interface's error inside the SDK's.
    fn pg_error(e: &Error) -> Answer {
        match e {
            Error::PgError(e) => error(e),
            other => error(other),
        }
    }

    fn convert(arg: &str) -> Option<P> {
        let (kind, v) = arg.split_once(':').unwrap_or((arg, ""));
        Some(match kind {
            "bool" => P::Boolean(v.parse().ok()?),
            "i16" => P::Int16(v.parse().ok()?),
            "i32" => P::Int32(v.parse().ok()?),
            "i64" => P::Int64(v.parse().ok()?),
            "f64" => P::Floating64(v.parse().ok()?),
            "s" => P::Str(v.to_string()),
            "b" => P::Binary(from_hex(v)?),
            "uuid" => P::Uuid(v.to_string()),
            "dec" => P::Decimal(v.to_string()),
            "json" => P::Jsonb(v.as_bytes().to_vec()),
            "null" => P::DbNull,
            _ => return None,
        })
    }

    pub async fn run(q: Query) -> Answer {
        let Some(addr) = q.get("addr") else { return text(400, "missing addr") };
        let op = q.get("op").unwrap_or_default();
        let opened = if op == "ca" {
            let ca_root = Some(Certificate::Text(q.get("ca").unwrap_or_default()));
            Connection::open_with_options(&addr, OpenOptions { ca_root }).await
        } else {
            Connection::open(addr).await
        };
        let conn = match opened {
            Ok(c) => c,
            Err(e) => return pg_error(&e),
        };
        let Some(args) = q.all("p").iter().map(|a| convert(a)).collect::<Option<Vec<P>>>() else {
            return text(400, "bad parameter");
        };
        let statements = q.all("sql");
        match op.as_str() {
            "open" | "ca" => text(200, "opened"),
            "execute" => {
                let mut count = 0;
                for sql in statements {
                    match conn.execute(sql, args.clone()).await {
                        Ok(n) => count = n,
                        Err(e) => return pg_error(&e),
                    }
                }
                text(200, count.to_string())
            }
            "query" => {
                let sql = statements.into_iter().next().unwrap_or_default();
                show(conn.query(sql, args).await).await
            }
            "roundtrip" => match roundtrip(&conn).await {
                Ok(()) => show(conn.query("SELECT * FROM roundtrip ORDER BY id", Vec::<P>::new()).await).await,
                Err(e) => pg_error(&e),
            },
            other => text(400, format!("unknown op {other:?}")),
        }
    }

    /// `columns: name:Type, …` then a line per row read from the stream, once its result is `ok`.
    async fn show(result: Result<QueryResult, Error>) -> Answer {
        let result = match result {
            Ok(result) => result,
            Err(e) => return pg_error(&e),
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

    /// The `spin_pg` guest's 4.0.0 table: a column of every type the interface carries, a row of
    /// values sent as parameters and a row of NULLs.
    async fn roundtrip(conn: &Connection) -> Result<(), Error> {
        conn.execute("DROP TABLE IF EXISTS roundtrip", Vec::<P>::new()).await?;
        conn.execute(
            "CREATE TABLE roundtrip (id serial PRIMARY KEY, b bool, c \"char\", i2 int2, i4 int4, i8 int8, \
             f4 float4, f8 float8, t text, vc varchar(10), by bytea, d date, tm time, ts timestamp, \
             tstz timestamptz, epoch timestamptz, u uuid, j jsonb, n numeric, r4 int4range, r8 int8range, \
             rn numrange, a4 int4[], a8 int8[], an numeric[], at text[], iv interval, other inet)",
            Vec::<P>::new(),
        )
        .await?;
        let insert = "INSERT INTO roundtrip (b, c, i2, i4, i8, f4, f8, t, vc, by, d, tm, ts, tstz, epoch, u, j, n, \
                      r4, r8, rn, a4, a8, an, at, iv) VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, \
                      $13, $14, $15, $16, $17, $18, $19, $20, $21, $22, $23, $24, $25, $26)";
        let values = vec![
            P::Boolean(true),
            P::Int8(65),
            P::Int16(-2),
            P::Int32(42),
            P::Int64(1 << 40),
            P::Floating32(0.25),
            P::Floating64(-1e-300),
            P::Str("✓ text".into()),
            P::Str("varchar".into()),
            P::Binary(vec![1, 2, 3]),
            P::Date((-44, 3, 15)),
            P::Time((0, 0, 0, 1000)),
            P::Datetime((2024, 2, 29, 12, 30, 45, 123_456_000)),
            P::Datetime((1970, 1, 1, 0, 0, 0, 0)),
            P::Timestamp(-86_400),
            P::Uuid("a0eebc99-9c0b-4ef8-bb6d-6bb9bd380a11".into()),
            P::Jsonb(br#"{"b": [1, 2.5, null], "a": "x"}"#.to_vec()),
            P::Decimal("-12345678901234567890.123456789".into()),
            P::RangeInt32((Some((1, K::Inclusive)), Some((10, K::Inclusive)))),
            P::RangeInt64((None, Some((-5, K::Exclusive)))),
            P::RangeDecimal((Some(("0.5".into(), K::Exclusive)), None)),
            P::ArrayInt32(vec![Some(1), None, Some(-3)]),
            P::ArrayInt64(vec![Some(i64::MAX)]),
            P::ArrayDecimal(vec![Some("1.10".into()), None]),
            P::ArrayStr(vec![Some("a".into()), None, Some("c d".into())]),
            P::Interval(Interval { micros: 3_723_000_004, days: -2, months: 14 }),
        ];
        let nulls: Vec<P> = (0..values.len()).map(|_| P::DbNull).collect();
        conn.execute(insert, values).await?;
        conn.execute(insert, nulls).await?;
        conn.execute("UPDATE roundtrip SET other = '10.1.2.3' WHERE id = 1", Vec::<P>::new()).await?;
        Ok(())
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
