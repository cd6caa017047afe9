//! SQLite through spin-sdk: `spin_sdk::sqlite` (`fermyon:spin/sqlite@2.0.0`, the default) or, with
//! `v=3`, `spin_sdk::sqlite3` (`spin:sqlite/sqlite@3.0.0`).
//!
//! `?db=<label, default "default">&sql=<statement>&p=<param>&p=…[&v=3][&meta=1]`. Each `p` is
//! `i:<integer>`, `r:<real>`, `t:<text>`, `b:<hex bytes>` or `n` (null), in order.
//! `sql` may repeat: the statements run in order on one connection, each with all the `p`s (so use
//! parameters with a single statement), and the last one's result is shown.
//!
//! 200 body: `columns: <c1>, <c2>` then one line per row, values as `Integer(1)`, `Real(1.5)`,
//! `Text("x")`, `Blob(0a0b)`, `Null`, joined by `, `. With `v=3&meta=1`, two more lines:
//! `changes: <n>` and `last-insert-rowid: <n>`.
//! Errors: 500 `error: <Debug without the type>`: `error: AccessDenied`, `error: NoSuchDatabase`,
//! `error: Io("…")`; 400 for a malformed parameter.

use spin_common::{all, error, from_hex, ok, param, params, status, to_hex};
use spin_sdk::http::{Request, Response};
use spin_sdk::http_component;

/// One parameter, in a version-neutral form.
enum P {
    I(i64),
    R(f64),
    T(String),
    B(Vec<u8>),
    N,
}

fn parse(p: &str) -> Option<P> {
    if p == "n" {
        return Some(P::N);
    }
    let (kind, rest) = p.split_once(':')?;
    Some(match kind {
        "i" => P::I(rest.parse().ok()?),
        "r" => P::R(rest.parse().ok()?),
        "t" => P::T(rest.to_string()),
        "b" => P::B(from_hex(rest)?),
        _ => return None,
    })
}

macro_rules! run {
    ($module:ident, $label:expr, $sqls:expr, $ps:expr, $meta:expr, $v3:expr) => {{
        use spin_sdk::$module::{Connection, Value};
        let conn = match Connection::open($label) {
            Ok(c) => c,
            Err(e) => return error(&e),
        };
        let values: Vec<Value> = $ps
            .iter()
            .map(|p| match p {
                P::I(i) => Value::Integer(*i),
                P::R(r) => Value::Real(*r),
                P::T(t) => Value::Text(t.clone()),
                P::B(b) => Value::Blob(b.clone()),
                P::N => Value::Null,
            })
            .collect();
        let mut last = None;
        for sql in $sqls {
            match conn.execute(sql, &values) {
                Ok(result) => last = Some(result),
                Err(e) => return error(&e),
            }
        }
        let Some(result) = last else { return status(400, "missing sql") };
        let mut lines = vec![format!("columns: {}", result.columns.join(", "))];
        for row in &result.rows {
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
        if $meta {
            $v3(&conn, &mut lines);
        }
        ok(lines.join("\n"))
    }};
}

#[http_component]
fn handle(req: Request) -> Response {
    let params = params(&req);
    let label = param(&params, "db").unwrap_or_else(|| "default".into());
    let sqls = all(&params, "sql");
    if sqls.is_empty() {
        return status(400, "missing sql");
    }
    let mut ps = Vec::new();
    for p in all(&params, "p") {
        match parse(&p) {
            Some(p) => ps.push(p),
            None => return status(400, format!("bad parameter {p:?}")),
        }
    }
    let meta = param(&params, "meta").as_deref() == Some("1");
    if param(&params, "v").as_deref() == Some("3") {
        run!(sqlite3, &label, &sqls, ps, meta, |conn: &spin_sdk::sqlite3::Connection, lines: &mut Vec<String>| {
            lines.push(format!("changes: {}", conn.changes()));
            lines.push(format!("last-insert-rowid: {}", conn.last_insert_rowid()));
        })
    } else {
        run!(sqlite, &label, &sqls, ps, meta, |_conn: &spin_sdk::sqlite::Connection, _lines: &mut Vec<String>| {})
    }
}
