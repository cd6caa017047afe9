//! Outbound PostgreSQL through spin-sdk 5: `spin_sdk::pg` (`fermyon:spin/postgres@2.0.0`),
//! `spin_sdk::pg3` (`spin:postgres/postgres@3.0.0`) and `spin_sdk::pg4`
//! (`spin:postgres/postgres@4.0.0`), chosen by `v=2|3|4` (default 4).
//!
//! `?v=…&addr=<postgres://…>&op=<op>…`:
//! - `open` → `opened`
//! - `execute&sql=…&p=…` → the number of rows affected
//! - `query&sql=…&p=…` → `columns: name:Type, …` then one line per row, its values' `Debug`
//!   joined by ` | `
//! - `roundtrip` → creates a table with a column of every type the version carries, inserts a row
//!   of values through parameters and a row of NULLs, and answers as `query` does for both rows
//!
//! Parameters `p`: `bool:true`, `i8:1`, `i16:1`, `i32:1`, `i64:1`, `f32:1.5`, `f64:1.5`, `s:text`,
//! `b:<hex>`, `u32:1` (2.0.0 only), `uuid:…`, `dec:1.5` (4.0.0 only) or `null`.
//!
//! Errors: 500 `error: <Debug without the type>`, e.g. `error: ConnectionFailed("…")`,
//! `error: QueryFailed(…)`, `error: BadParameter("…")`.

use spin_common::{all, error, from_hex, ok, param, params, status};
use spin_sdk::http::{Request, Response};
use spin_sdk::http_component;

#[http_component]
fn handle(req: Request) -> Response {
    let params = params(&req);
    let Some(addr) = param(&params, "addr") else { return status(400, "missing addr") };
    let op = param(&params, "op").unwrap_or_default();
    let sql = param(&params, "sql").unwrap_or_default();
    let args = all(&params, "p");
    match param(&params, "v").as_deref() {
        Some("2") => v2::run(&addr, &op, &sql, &args),
        Some("3") => v3::run(&addr, &op, &sql, &args),
        _ => v4::run(&addr, &op, &sql, &args),
    }
}

/// `kind:value` → (kind, value); `null` has no value.
fn split(arg: &str) -> (&str, &str) {
    arg.split_once(':').unwrap_or((arg, ""))
}

/// The rows as text: the header line, then a line per row.
fn show<C: std::fmt::Debug, V: std::fmt::Debug>(columns: &[(String, C)], rows: &[Vec<V>]) -> String {
    let header: Vec<String> = columns.iter().map(|(name, ty)| format!("{name}:{ty:?}")).collect();
    let mut lines = vec![format!("columns: {}", header.join(", "))];
    for row in rows {
        let values: Vec<String> = row.iter().map(|v| format!("{v:?}")).collect();
        lines.push(values.join(" | "));
    }
    lines.join("\n")
}

macro_rules! ops {
    ($module:path, $convert:ident, $roundtrip:ident) => {
        pub fn run(addr: &str, op: &str, sql: &str, args: &[String]) -> Response {
            use $module as pg;
            let conn = match pg::Connection::open(addr) {
                Ok(c) => c,
                Err(e) => return error(&e),
            };
            let params: Vec<pg::ParameterValue> = match args.iter().map(|a| $convert(a)).collect() {
                Some(p) => p,
                None => return status(400, "bad parameter"),
            };
            let result = match op {
                "open" => return ok("opened"),
                "execute" => conn.execute(sql, &params).map(|n| n.to_string()),
                "query" => conn.query(sql, &params).map(|r| {
                    let columns: Vec<_> = r.columns.iter().map(|c| (c.name.clone(), c.data_type.clone())).collect();
                    show(&columns, &r.rows)
                }),
                "roundtrip" => $roundtrip(&conn).and_then(|()| {
                    conn.query("SELECT * FROM roundtrip ORDER BY id", &[]).map(|r| {
                        let columns: Vec<_> = r.columns.iter().map(|c| (c.name.clone(), c.data_type.clone())).collect();
                        show(&columns, &r.rows)
                    })
                }),
                other => return status(400, format!("unknown op {other:?}")),
            };
            match result {
                Ok(text) => ok(text),
                Err(e) => error(&e),
            }
        }
    };
}

mod v2 {
    use super::*;
    use spin_sdk::pg::{Connection, ParameterValue as P, PgError as Error};

    fn convert(arg: &str) -> Option<P> {
        let (kind, v) = split(arg);
        Some(match kind {
            "bool" => P::Boolean(v.parse().ok()?),
            "i8" => P::Int8(v.parse().ok()?),
            "i16" => P::Int16(v.parse().ok()?),
            "i32" => P::Int32(v.parse().ok()?),
            "i64" => P::Int64(v.parse().ok()?),
            "u32" => P::Uint32(v.parse().ok()?),
            "f32" => P::Floating32(v.parse().ok()?),
            "f64" => P::Floating64(v.parse().ok()?),
            "s" => P::Str(v.to_string()),
            "b" => P::Binary(from_hex(v)?),
            "null" => P::DbNull,
            _ => return None,
        })
    }

    fn roundtrip(conn: &Connection) -> Result<(), Error> {
        conn.execute("DROP TABLE IF EXISTS roundtrip", &[])?;
        conn.execute(
            "CREATE TABLE roundtrip (id serial PRIMARY KEY, b bool, c \"char\", i2 int2, i4 int4, i8 int8, \
             f4 float4, f8 float8, t text, vc varchar(10), bp char(3), by bytea, d date)",
            &[],
        )?;
        let insert = "INSERT INTO roundtrip (b, c, i2, i4, i8, f4, f8, t, vc, bp, by, d) \
                      VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12)";
        let values = [
            P::Boolean(true),
            P::Int8(-7),
            P::Int16(i16::MIN),
            P::Int32(i32::MAX),
            P::Int64(i64::MIN),
            P::Floating32(1.5),
            P::Floating64(-2.25e100),
            P::Str("héllo ✓".into()),
            P::Str("short".into()),
            P::Str("ab".into()),
            P::Binary(vec![0, 1, 255]),
            P::DbNull,
        ];
        conn.execute(insert, &values)?;
        conn.execute(insert, &[P::DbNull, P::DbNull, P::DbNull, P::DbNull, P::DbNull, P::DbNull, P::DbNull, P::DbNull, P::DbNull, P::DbNull, P::DbNull, P::DbNull])?;
        conn.execute("UPDATE roundtrip SET d = '2024-02-29' WHERE id = 1", &[])?;
        Ok(())
    }

    ops!(spin_sdk::pg, convert, roundtrip);
}

mod v3 {
    use super::*;
    use spin_sdk::pg3::{Connection, ParameterValue as P, PgError as Error};

    fn convert(arg: &str) -> Option<P> {
        let (kind, v) = split(arg);
        Some(match kind {
            "bool" => P::Boolean(v.parse().ok()?),
            "i8" => P::Int8(v.parse().ok()?),
            "i16" => P::Int16(v.parse().ok()?),
            "i32" => P::Int32(v.parse().ok()?),
            "i64" => P::Int64(v.parse().ok()?),
            "f32" => P::Floating32(v.parse().ok()?),
            "f64" => P::Floating64(v.parse().ok()?),
            "s" => P::Str(v.to_string()),
            "b" => P::Binary(from_hex(v)?),
            "null" => P::DbNull,
            _ => return None,
        })
    }

    fn roundtrip(conn: &Connection) -> Result<(), Error> {
        conn.execute("DROP TABLE IF EXISTS roundtrip", &[])?;
        conn.execute(
            "CREATE TABLE roundtrip (id serial PRIMARY KEY, b bool, i2 int2, i4 int4, i8 int8, f4 float4, \
             f8 float8, t text, by bytea, d date, tm time, ts timestamp, tstz timestamptz, epoch timestamptz, u uuid)",
            &[],
        )?;
        let insert = "INSERT INTO roundtrip (b, i2, i4, i8, f4, f8, t, by, d, tm, ts, tstz, epoch) \
                      VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13)";
        let values = [
            P::Boolean(false),
            P::Int16(i16::MAX),
            P::Int32(i32::MIN),
            P::Int64(i64::MAX),
            P::Floating32(-0.5),
            P::Floating64(3.125),
            P::Str("text".into()),
            P::Binary(vec![0xde, 0xad]),
            P::Date((2024, 2, 29)),
            P::Time((23, 59, 58, 123_456_000)),
            P::Datetime((1999, 12, 31, 23, 59, 59, 999_999_000)),
            P::Datetime((2038, 1, 19, 3, 14, 8, 0)),
            P::Timestamp(1_700_000_000),
        ];
        conn.execute(insert, &values)?;
        let nulls: Vec<P> = (0..13).map(|_| P::DbNull).collect();
        conn.execute(insert, &nulls)?;
        conn.execute("UPDATE roundtrip SET u = '00000000-0000-0000-0000-000000000001' WHERE id = 1", &[])?;
        Ok(())
    }

    ops!(spin_sdk::pg3, convert, roundtrip);
}

mod v4 {
    use super::*;
    use spin_sdk::pg4::{Connection, Interval, ParameterValue as P, PgError as Error, RangeBoundKind as K};

    fn convert(arg: &str) -> Option<P> {
        let (kind, v) = split(arg);
        Some(match kind {
            "bool" => P::Boolean(v.parse().ok()?),
            "i8" => P::Int8(v.parse().ok()?),
            "i16" => P::Int16(v.parse().ok()?),
            "i32" => P::Int32(v.parse().ok()?),
            "i64" => P::Int64(v.parse().ok()?),
            "f32" => P::Floating32(v.parse().ok()?),
            "f64" => P::Floating64(v.parse().ok()?),
            "s" => P::Str(v.to_string()),
            "b" => P::Binary(from_hex(v)?),
            "uuid" => P::Uuid(v.to_string()),
            "dec" => P::Decimal(v.to_string()),
            "json" => P::Jsonb(v.as_bytes().to_vec()),
            "date" => {
                let mut parts = v.split('-').map(|n| n.parse::<i32>().ok());
                let (y, m, d) = (parts.next()??, parts.next()??, parts.next()??);
                P::Date((y, u8::try_from(m).ok()?, u8::try_from(d).ok()?))
            }
            "range32" => {
                let (lo, hi) = v.split_once(',')?;
                P::RangeInt32((Some((lo.parse().ok()?, K::Inclusive)), Some((hi.parse().ok()?, K::Inclusive))))
            }
            "null" => P::DbNull,
            _ => return None,
        })
    }

    fn roundtrip(conn: &Connection) -> Result<(), Error> {
        conn.execute("DROP TABLE IF EXISTS roundtrip", &[])?;
        conn.execute(
            "CREATE TABLE roundtrip (id serial PRIMARY KEY, b bool, c \"char\", i2 int2, i4 int4, i8 int8, \
             f4 float4, f8 float8, t text, vc varchar(10), by bytea, d date, tm time, ts timestamp, \
             tstz timestamptz, epoch timestamptz, u uuid, j jsonb, n numeric, r4 int4range, r8 int8range, \
             rn numrange, a4 int4[], a8 int8[], an numeric[], at text[], iv interval, other inet)",
            &[],
        )?;
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
        conn.execute(insert, &values)?;
        let nulls: Vec<P> = (0..values.len()).map(|_| P::DbNull).collect();
        conn.execute(insert, &nulls)?;
        conn.execute("UPDATE roundtrip SET other = '10.1.2.3' WHERE id = 1", &[])?;
        Ok(())
    }

    ops!(spin_sdk::pg4, convert, roundtrip);
}
