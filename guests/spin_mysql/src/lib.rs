//! Outbound MySQL through `spin_sdk::mysql` (`fermyon:spin/mysql@2.0.0`).
//!
//! `?addr=<mysql://…>&op=<op>…`:
//! - `open` → `opened`
//! - `execute&sql=…&p=…` (repeatable `sql`: run in order on one connection) → `ok`
//! - `query&sql=…&p=…` → `columns: name:Type, …` then one line per row, its values' `Debug`
//!   joined by ` | `
//!
//! Parameters `p`: `bool:true`, `i8:1` … `i64:1`, `u8:1` … `u64:1`, `f32:1.5`, `f64:1.5`, `s:text`,
//! `b:<hex>` or `null`.
//!
//! Errors: 500 `error: <Debug without the type>`, e.g. `error: ConnectionFailed("…")`,
//! `error: QueryFailed("…")`.

use spin_common::{all, error, from_hex, ok, param, params, status};
use spin_sdk::http::{Request, Response};
use spin_sdk::http_component;
use spin_sdk::mysql::{Connection, ParameterValue as P};

fn convert(arg: &str) -> Option<P> {
    let (kind, v) = arg.split_once(':').unwrap_or((arg, ""));
    Some(match kind {
        "bool" => P::Boolean(v.parse().ok()?),
        "i8" => P::Int8(v.parse().ok()?),
        "i16" => P::Int16(v.parse().ok()?),
        "i32" => P::Int32(v.parse().ok()?),
        "i64" => P::Int64(v.parse().ok()?),
        "u8" => P::Uint8(v.parse().ok()?),
        "u16" => P::Uint16(v.parse().ok()?),
        "u32" => P::Uint32(v.parse().ok()?),
        "u64" => P::Uint64(v.parse().ok()?),
        "f32" => P::Floating32(v.parse().ok()?),
        "f64" => P::Floating64(v.parse().ok()?),
        "s" => P::Str(v.to_string()),
        "b" => P::Binary(from_hex(v)?),
        "null" => P::DbNull,
        _ => return None,
    })
}

#[http_component]
fn handle(req: Request) -> Response {
    let params = params(&req);
    let Some(addr) = param(&params, "addr") else { return status(400, "missing addr") };
    let conn = match Connection::open(&addr) {
        Ok(c) => c,
        Err(e) => return error(&e),
    };
    let args: Vec<P> = match all(&params, "p").iter().map(|a| convert(a)).collect() {
        Some(p) => p,
        None => return status(400, "bad parameter"),
    };
    let statements = all(&params, "sql");
    match param(&params, "op").as_deref() {
        Some("open") => ok("opened"),
        Some("execute") => {
            for sql in &statements {
                if let Err(e) = conn.execute(sql, &args) {
                    return error(&e);
                }
            }
            ok("ok")
        }
        Some("query") => match conn.query(statements.first().map(String::as_str).unwrap_or_default(), &args) {
            Ok(rows) => {
                let header: Vec<String> = rows.columns.iter().map(|c| format!("{}:{:?}", c.name, c.data_type)).collect();
                let mut lines = vec![format!("columns: {}", header.join(", "))];
                for row in &rows.rows {
                    let values: Vec<String> = row.iter().map(|v| format!("{v:?}")).collect();
                    lines.push(values.join(" | "));
                }
                ok(lines.join("\n"))
            }
            Err(e) => error(&e),
        },
        other => status(400, format!("unknown op {other:?}")),
    }
}
