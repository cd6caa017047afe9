//! Postgres values ↔ `spin:postgres@4.0.0`'s types, the richest version: the older versions convert
//! to and from these (see `convert.rs`).
//!
//! Parameters become typed `ToSql` values, so the server's inferred parameter type is checked
//! against what the guest sent (a mismatch is an error value, never a trap). Columns are read by
//! their Postgres type; a type the WIT cannot carry is `unsupported` with its raw bytes.

use crate::v4::{DbDataType, DbValue, Interval, ParameterValue, RangeBoundKind};
use bytes::{BufMut, BytesMut};
use chrono::{DateTime, Datelike, NaiveDate, NaiveDateTime, NaiveTime, Timelike, Utc};
use postgres_protocol::types as protocol;
use rust_decimal::Decimal;
use std::error::Error;
use std::str::FromStr;
use tokio_postgres::Row;
use tokio_postgres::types::{FromSql, IsNull, ToSql, Type, to_sql_checked};

type BoxError = Box<dyn Error + Sync + Send>;

/// A parameter ready to bind.
pub(crate) type SqlParam = Box<dyn ToSql + Send + Sync>;

/// The column's type as the WIT names it.
pub(crate) fn data_type(ty: &Type) -> DbDataType {
    match *ty {
        Type::BOOL => DbDataType::Boolean,
        Type::CHAR => DbDataType::Int8,
        Type::INT2 => DbDataType::Int16,
        Type::INT4 => DbDataType::Int32,
        Type::INT8 => DbDataType::Int64,
        Type::FLOAT4 => DbDataType::Floating32,
        Type::FLOAT8 => DbDataType::Floating64,
        Type::TEXT | Type::VARCHAR | Type::BPCHAR | Type::NAME => DbDataType::Str,
        Type::BYTEA => DbDataType::Binary,
        Type::DATE => DbDataType::Date,
        Type::TIME => DbDataType::Time,
        Type::TIMESTAMP | Type::TIMESTAMPTZ => DbDataType::Datetime,
        Type::UUID => DbDataType::Uuid,
        Type::JSONB | Type::JSON => DbDataType::Jsonb,
        Type::NUMERIC => DbDataType::Decimal,
        Type::INT4_RANGE => DbDataType::RangeInt32,
        Type::INT8_RANGE => DbDataType::RangeInt64,
        Type::NUM_RANGE => DbDataType::RangeDecimal,
        Type::INT4_ARRAY => DbDataType::ArrayInt32,
        Type::INT8_ARRAY => DbDataType::ArrayInt64,
        Type::NUMERIC_ARRAY => DbDataType::ArrayDecimal,
        Type::TEXT_ARRAY | Type::VARCHAR_ARRAY | Type::BPCHAR_ARRAY => DbDataType::ArrayStr,
        Type::INTERVAL => DbDataType::Interval,
        _ => DbDataType::Other(ty.name().to_string()),
    }
}

/// Column `index` of `row`; a value that cannot be read as its type is an error naming the column.
pub(crate) fn column_value(row: &Row, index: usize) -> Result<DbValue, String> {
    let column = &row.columns()[index];
    read(row, index, column.type_()).map_err(|e| {
        format!(
            "cannot read column `{}` ({}): {e}",
            column.name(),
            column.type_().name()
        )
    })
}

fn get<'a, T: FromSql<'a>>(
    row: &'a Row,
    index: usize,
    wrap: impl FnOnce(T) -> Result<DbValue, BoxError>,
) -> Result<DbValue, BoxError> {
    match row.try_get::<_, Option<T>>(index)? {
        Some(v) => wrap(v),
        None => Ok(DbValue::DbNull),
    }
}

fn read(row: &Row, i: usize, ty: &Type) -> Result<DbValue, BoxError> {
    match *ty {
        Type::BOOL => get(row, i, |v| Ok(DbValue::Boolean(v))),
        Type::CHAR => get(row, i, |v| Ok(DbValue::Int8(v))),
        Type::INT2 => get(row, i, |v| Ok(DbValue::Int16(v))),
        Type::INT4 => get(row, i, |v| Ok(DbValue::Int32(v))),
        Type::INT8 => get(row, i, |v| Ok(DbValue::Int64(v))),
        Type::FLOAT4 => get(row, i, |v| Ok(DbValue::Floating32(v))),
        Type::FLOAT8 => get(row, i, |v| Ok(DbValue::Floating64(v))),
        Type::TEXT | Type::VARCHAR | Type::BPCHAR | Type::NAME => {
            get(row, i, |v| Ok(DbValue::Str(v)))
        }
        Type::BYTEA => get(row, i, |v| Ok(DbValue::Binary(v))),
        Type::DATE => get(row, i, |d: NaiveDate| Ok(DbValue::Date(date_tuple(d)?))),
        Type::TIME => get(row, i, |t: NaiveTime| Ok(DbValue::Time(time_tuple(t)?))),
        Type::TIMESTAMP => get(row, i, |t: NaiveDateTime| datetime(t)),
        Type::TIMESTAMPTZ => get(row, i, |t: DateTime<Utc>| datetime(t.naive_utc())),
        Type::UUID => get(row, i, |u: uuid::Uuid| Ok(DbValue::Uuid(u.to_string()))),
        Type::JSONB | Type::JSON => get(row, i, |j: serde_json::Value| {
            Ok(DbValue::Jsonb(serde_json::to_vec(&j)?))
        }),
        Type::NUMERIC => get(row, i, |d: Decimal| Ok(DbValue::Decimal(d.to_string()))),
        Type::INT4_RANGE => get(row, i, |r: PgRange<i32>| Ok(DbValue::RangeInt32(r.bounds()))),
        Type::INT8_RANGE => get(row, i, |r: PgRange<i64>| Ok(DbValue::RangeInt64(r.bounds()))),
        Type::NUM_RANGE => get(row, i, |r: PgRange<Decimal>| {
            let (lo, hi) = r.bounds();
            let text = |b: Option<(Decimal, RangeBoundKind)>| b.map(|(d, k)| (d.to_string(), k));
            Ok(DbValue::RangeDecimal((text(lo), text(hi))))
        }),
        Type::INT4_ARRAY => get(row, i, |v| Ok(DbValue::ArrayInt32(v))),
        Type::INT8_ARRAY => get(row, i, |v| Ok(DbValue::ArrayInt64(v))),
        Type::NUMERIC_ARRAY => get(row, i, |v: Vec<Option<Decimal>>| {
            Ok(DbValue::ArrayDecimal(
                v.into_iter().map(|d| d.map(|d| d.to_string())).collect(),
            ))
        }),
        Type::TEXT_ARRAY | Type::VARCHAR_ARRAY | Type::BPCHAR_ARRAY => {
            get(row, i, |v| Ok(DbValue::ArrayStr(v)))
        }
        Type::INTERVAL => get(row, i, |v: PgInterval| Ok(DbValue::Interval(v.0))),
        _ => get(row, i, |v: Raw| Ok(DbValue::Unsupported(v.0))),
    }
}

fn small<T: TryFrom<u32>>(n: u32) -> Result<T, BoxError> {
    T::try_from(n).map_err(|_| "date/time field out of range".into())
}

fn date_tuple(d: NaiveDate) -> Result<(i32, u8, u8), BoxError> {
    Ok((d.year(), small(d.month())?, small(d.day())?))
}

fn time_tuple(t: NaiveTime) -> Result<(u8, u8, u8, u32), BoxError> {
    Ok((
        small(t.hour())?,
        small(t.minute())?,
        small(t.second())?,
        t.nanosecond(),
    ))
}

fn datetime(t: NaiveDateTime) -> Result<DbValue, BoxError> {
    let (y, mo, d) = date_tuple(t.date())?;
    let (h, mi, s, ns) = time_tuple(t.time())?;
    Ok(DbValue::Datetime((y, mo, d, h, mi, s, ns)))
}

/// The guest's parameters, typed; a value that is not what it claims (a bad date, uuid, decimal
/// or JSON) is an error message for `bad-parameter`.
pub(crate) fn params(values: Vec<ParameterValue>) -> Result<Vec<SqlParam>, String> {
    values
        .into_iter()
        .enumerate()
        .map(|(i, v)| param(v).map_err(|e| format!("parameter ${}: {e}", i + 1)))
        .collect()
}

fn param(value: ParameterValue) -> Result<SqlParam, String> {
    Ok(match value {
        ParameterValue::Boolean(v) => Box::new(v),
        ParameterValue::Int8(v) => Box::new(v),
        ParameterValue::Int16(v) => Box::new(v),
        ParameterValue::Int32(v) => Box::new(v),
        ParameterValue::Int64(v) => Box::new(v),
        ParameterValue::Floating32(v) => Box::new(v),
        ParameterValue::Floating64(v) => Box::new(v),
        ParameterValue::Str(v) => Box::new(v),
        ParameterValue::Binary(v) => Box::new(v),
        ParameterValue::Date((y, m, d)) => Box::new(
            NaiveDate::from_ymd_opt(y, m.into(), d.into())
                .ok_or_else(|| format!("{y:04}-{m:02}-{d:02} is not a date"))?,
        ),
        ParameterValue::Time((h, m, s, ns)) => Box::new(naive_time(h, m, s, ns)?),
        ParameterValue::Datetime((y, mo, d, h, mi, s, ns)) => {
            let date = NaiveDate::from_ymd_opt(y, mo.into(), d.into())
                .ok_or_else(|| format!("{y:04}-{mo:02}-{d:02} is not a date"))?;
            Box::new(Timestamp(date.and_time(naive_time(h, mi, s, ns)?)))
        }
        ParameterValue::Timestamp(secs) => Box::new(Timestamp(
            DateTime::<Utc>::from_timestamp(secs, 0)
                .ok_or_else(|| format!("{secs} is out of the timestamp range"))?
                .naive_utc(),
        )),
        ParameterValue::Uuid(v) => Box::new(
            uuid::Uuid::parse_str(&v).map_err(|e| format!("{v:?} is not a UUID: {e}"))?,
        ),
        ParameterValue::Jsonb(v) => Box::new(
            serde_json::from_slice::<serde_json::Value>(&v)
                .map_err(|e| format!("not JSON: {e}"))?,
        ),
        ParameterValue::Decimal(v) => Box::new(decimal(&v)?),
        ParameterValue::RangeInt32((lo, hi)) => Box::new(PgRange { lower: lo, upper: hi }),
        ParameterValue::RangeInt64((lo, hi)) => Box::new(PgRange { lower: lo, upper: hi }),
        ParameterValue::RangeDecimal((lo, hi)) => {
            let parse = |b: Option<(String, RangeBoundKind)>| {
                b.map(|(v, k)| decimal(&v).map(|d| (d, k))).transpose()
            };
            Box::new(PgRange {
                lower: parse(lo)?,
                upper: parse(hi)?,
            })
        }
        ParameterValue::ArrayInt32(v) => Box::new(v),
        ParameterValue::ArrayInt64(v) => Box::new(v),
        ParameterValue::ArrayDecimal(v) => Box::new(
            v.iter()
                .map(|d| d.as_deref().map(decimal).transpose())
                .collect::<Result<Vec<_>, _>>()?,
        ),
        ParameterValue::ArrayStr(v) => Box::new(v),
        ParameterValue::Interval(v) => Box::new(PgInterval(v)),
        ParameterValue::DbNull => Box::new(Null),
    })
}

fn naive_time(h: u8, m: u8, s: u8, ns: u32) -> Result<NaiveTime, String> {
    NaiveTime::from_hms_nano_opt(h.into(), m.into(), s.into(), ns)
        .ok_or_else(|| format!("{h:02}:{m:02}:{s:02}.{ns:09} is not a time"))
}

fn decimal(text: &str) -> Result<Decimal, String> {
    Decimal::from_str(text)
        .or_else(|_| Decimal::from_scientific(text))
        .map_err(|e| format!("{text:?} is not a decimal number Kiln can carry: {e}"))
}

/// NULL of whatever type the server expects.
#[derive(Debug)]
struct Null;

impl ToSql for Null {
    fn to_sql(&self, _: &Type, _: &mut BytesMut) -> Result<IsNull, BoxError> {
        Ok(IsNull::Yes)
    }
    fn accepts(_: &Type) -> bool {
        true
    }
    to_sql_checked!();
}

/// A date-time for a `timestamp` or a `timestamptz` column (UTC): both are microseconds since
/// 2000-01-01 on the wire.
#[derive(Debug)]
struct Timestamp(NaiveDateTime);

impl ToSql for Timestamp {
    fn to_sql(&self, _: &Type, out: &mut BytesMut) -> Result<IsNull, BoxError> {
        self.0.to_sql(&Type::TIMESTAMP, out)
    }
    fn accepts(ty: &Type) -> bool {
        matches!(*ty, Type::TIMESTAMP | Type::TIMESTAMPTZ)
    }
    to_sql_checked!();
}

/// Any column's raw bytes, for the types the WIT cannot carry.
struct Raw(Vec<u8>);

impl<'a> FromSql<'a> for Raw {
    fn from_sql(_: &Type, raw: &'a [u8]) -> Result<Raw, BoxError> {
        Ok(Raw(raw.to_vec()))
    }
    fn accepts(_: &Type) -> bool {
        true
    }
}

/// `interval`: microseconds, days and months, as on the wire.
#[derive(Debug)]
struct PgInterval(Interval);

impl ToSql for PgInterval {
    fn to_sql(&self, _: &Type, out: &mut BytesMut) -> Result<IsNull, BoxError> {
        out.put_i64(self.0.micros);
        out.put_i32(self.0.days);
        out.put_i32(self.0.months);
        Ok(IsNull::No)
    }
    fn accepts(ty: &Type) -> bool {
        *ty == Type::INTERVAL
    }
    to_sql_checked!();
}

impl<'a> FromSql<'a> for PgInterval {
    fn from_sql(_: &Type, raw: &'a [u8]) -> Result<PgInterval, BoxError> {
        let bytes: [u8; 16] = raw.try_into().map_err(|_| "an interval is 16 bytes")?;
        let [micros, days_months] = [&bytes[..8], &bytes[8..]];
        let micros = i64::from_be_bytes(micros.try_into()?);
        let days = i32::from_be_bytes(days_months[..4].try_into()?);
        let months = i32::from_be_bytes(days_months[4..].try_into()?);
        Ok(PgInterval(Interval {
            micros,
            days,
            months,
        }))
    }
    fn accepts(ty: &Type) -> bool {
        *ty == Type::INTERVAL
    }
}

/// A range of `T` (`int4range`, `int8range`, `numrange`), written as the guest gave its bounds:
/// the server normalizes them. An empty range reads as two absent bounds, as in Spin.
#[derive(Debug)]
struct PgRange<T> {
    lower: Option<(T, RangeBoundKind)>,
    upper: Option<(T, RangeBoundKind)>,
}

/// The element type of the range types `T` fits.
trait RangeElement: Sized + std::fmt::Debug {
    const RANGE: Type;
    const ELEMENT: Type;
}

impl RangeElement for i32 {
    const RANGE: Type = Type::INT4_RANGE;
    const ELEMENT: Type = Type::INT4;
}

impl RangeElement for i64 {
    const RANGE: Type = Type::INT8_RANGE;
    const ELEMENT: Type = Type::INT8;
}

impl RangeElement for Decimal {
    const RANGE: Type = Type::NUM_RANGE;
    const ELEMENT: Type = Type::NUMERIC;
}

impl<T> PgRange<T> {
    #[allow(clippy::type_complexity)]
    fn bounds(self) -> (Option<(T, RangeBoundKind)>, Option<(T, RangeBoundKind)>) {
        (self.lower, self.upper)
    }
}

fn write_bound<T: ToSql + RangeElement>(
    bound: &Option<(T, RangeBoundKind)>,
    out: &mut BytesMut,
) -> Result<protocol::RangeBound<postgres_protocol::IsNull>, BoxError> {
    Ok(match bound {
        None => protocol::RangeBound::Unbounded,
        Some((v, kind)) => {
            let null = match v.to_sql(&T::ELEMENT, out)? {
                IsNull::Yes => postgres_protocol::IsNull::Yes,
                IsNull::No => postgres_protocol::IsNull::No,
            };
            match kind {
                RangeBoundKind::Inclusive => protocol::RangeBound::Inclusive(null),
                RangeBoundKind::Exclusive => protocol::RangeBound::Exclusive(null),
            }
        }
    })
}

impl<T: ToSql + RangeElement + Sync> ToSql for PgRange<T> {
    fn to_sql(&self, _: &Type, out: &mut BytesMut) -> Result<IsNull, BoxError> {
        protocol::range_to_sql(
            |out| write_bound(&self.lower, out),
            |out| write_bound(&self.upper, out),
            out,
        )?;
        Ok(IsNull::No)
    }
    fn accepts(ty: &Type) -> bool {
        *ty == T::RANGE
    }
    to_sql_checked!();
}

fn read_bound<'a, T: FromSql<'a> + RangeElement>(
    bound: protocol::RangeBound<Option<&'a [u8]>>,
) -> Result<Option<(T, RangeBoundKind)>, BoxError> {
    let (raw, kind) = match bound {
        protocol::RangeBound::Unbounded => return Ok(None),
        protocol::RangeBound::Inclusive(raw) => (raw, RangeBoundKind::Inclusive),
        protocol::RangeBound::Exclusive(raw) => (raw, RangeBoundKind::Exclusive),
    };
    let raw = raw.ok_or("a range bound is NULL")?;
    Ok(Some((T::from_sql(&T::ELEMENT, raw)?, kind)))
}

impl<'a, T: FromSql<'a> + RangeElement> FromSql<'a> for PgRange<T> {
    fn from_sql(_: &Type, raw: &'a [u8]) -> Result<PgRange<T>, BoxError> {
        match protocol::range_from_sql(raw)? {
            protocol::Range::Empty => Ok(PgRange {
                lower: None,
                upper: None,
            }),
            protocol::Range::Nonempty(lower, upper) => Ok(PgRange {
                lower: read_bound(lower)?,
                upper: read_bound(upper)?,
            }),
        }
    }
    fn accepts(ty: &Type) -> bool {
        *ty == T::RANGE
    }
}
