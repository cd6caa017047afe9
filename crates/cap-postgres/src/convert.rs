//! The older interfaces' types ↔ 4.0.0's, which the capability works in. Values an older WIT
//! cannot carry read as `unsupported` (their column type as `other`), as in Spin.

use crate::host_v42::v42;
use crate::{v2_types as v2, v3, v4};

fn query_error_text(e: v4::QueryError) -> String {
    match e {
        v4::QueryError::Text(text) => text,
        v4::QueryError::DbError(db) => db.as_text,
    }
}

// ---- spin:postgres@3.0.0 ----

pub(crate) fn v3_error(e: v4::Error) -> v3::Error {
    match e {
        v4::Error::ConnectionFailed(s) => v3::Error::ConnectionFailed(s),
        v4::Error::BadParameter(s) => v3::Error::BadParameter(s),
        v4::Error::QueryFailed(q) => v3::Error::QueryFailed(query_error_text(q)),
        v4::Error::ValueConversionFailed(s) => v3::Error::ValueConversionFailed(s),
        v4::Error::Other(s) => v3::Error::Other(s),
    }
}

pub(crate) fn v3_param(p: v3::ParameterValue) -> v4::ParameterValue {
    use v3::ParameterValue as P;
    use v4::ParameterValue as Q;
    match p {
        P::Boolean(v) => Q::Boolean(v),
        P::Int8(v) => Q::Int8(v),
        P::Int16(v) => Q::Int16(v),
        P::Int32(v) => Q::Int32(v),
        P::Int64(v) => Q::Int64(v),
        P::Floating32(v) => Q::Floating32(v),
        P::Floating64(v) => Q::Floating64(v),
        P::Str(v) => Q::Str(v),
        P::Binary(v) => Q::Binary(v),
        P::Date(v) => Q::Date(v),
        P::Time(v) => Q::Time(v),
        P::Datetime(v) => Q::Datetime(v),
        P::Timestamp(v) => Q::Timestamp(v),
        P::DbNull => Q::DbNull,
    }
}

fn v3_data_type(t: v4::DbDataType) -> v3::DbDataType {
    use v3::DbDataType as T;
    use v4::DbDataType as U;
    match t {
        U::Boolean => T::Boolean,
        U::Int8 => T::Int8,
        U::Int16 => T::Int16,
        U::Int32 => T::Int32,
        U::Int64 => T::Int64,
        U::Floating32 => T::Floating32,
        U::Floating64 => T::Floating64,
        U::Str => T::Str,
        U::Binary => T::Binary,
        U::Date => T::Date,
        U::Time => T::Time,
        U::Datetime => T::Datetime,
        U::Timestamp => T::Timestamp,
        _ => T::Other,
    }
}

fn v3_value(v: v4::DbValue) -> v3::DbValue {
    use v3::DbValue as T;
    use v4::DbValue as U;
    match v {
        U::Boolean(v) => T::Boolean(v),
        U::Int8(v) => T::Int8(v),
        U::Int16(v) => T::Int16(v),
        U::Int32(v) => T::Int32(v),
        U::Int64(v) => T::Int64(v),
        U::Floating32(v) => T::Floating32(v),
        U::Floating64(v) => T::Floating64(v),
        U::Str(v) => T::Str(v),
        U::Binary(v) => T::Binary(v),
        U::Date(v) => T::Date(v),
        U::Time(v) => T::Time(v),
        U::Datetime(v) => T::Datetime(v),
        U::Timestamp(v) => T::Timestamp(v),
        U::DbNull => T::DbNull,
        _ => T::Unsupported,
    }
}

pub(crate) fn v3_row_set(r: v4::RowSet) -> v3::RowSet {
    v3::RowSet {
        columns: r
            .columns
            .into_iter()
            .map(|c| v3::Column {
                name: c.name,
                data_type: v3_data_type(c.data_type),
            })
            .collect(),
        rows: r
            .rows
            .into_iter()
            .map(|row| row.into_iter().map(v3_value).collect())
            .collect(),
    }
}

// ---- fermyon:spin/rdbms-types@2.0.0 ----

pub(crate) fn v2_error(e: v4::Error) -> v2::Error {
    match e {
        v4::Error::ConnectionFailed(s) => v2::Error::ConnectionFailed(s),
        v4::Error::BadParameter(s) => v2::Error::BadParameter(s),
        v4::Error::QueryFailed(q) => v2::Error::QueryFailed(query_error_text(q)),
        v4::Error::ValueConversionFailed(s) => v2::Error::ValueConversionFailed(s),
        v4::Error::Other(s) => v2::Error::Other(s),
    }
}

/// 2.0.0's parameters; Postgres has no unsigned integers, so those are `bad-parameter`.
pub(crate) fn v2_params(params: Vec<v2::ParameterValue>) -> Result<Vec<v4::ParameterValue>, v4::Error> {
    use v2::ParameterValue as P;
    use v4::ParameterValue as Q;
    params
        .into_iter()
        .enumerate()
        .map(|(i, p)| {
            Ok(match p {
                P::Boolean(v) => Q::Boolean(v),
                P::Int8(v) => Q::Int8(v),
                P::Int16(v) => Q::Int16(v),
                P::Int32(v) => Q::Int32(v),
                P::Int64(v) => Q::Int64(v),
                P::Floating32(v) => Q::Floating32(v),
                P::Floating64(v) => Q::Floating64(v),
                P::Str(v) => Q::Str(v),
                P::Binary(v) => Q::Binary(v),
                P::DbNull => Q::DbNull,
                P::Uint8(_) | P::Uint16(_) | P::Uint32(_) | P::Uint64(_) => {
                    return Err(v4::Error::BadParameter(format!(
                        "parameter ${}: Postgres has no unsigned integer types; pass a signed one",
                        i + 1
                    )));
                }
            })
        })
        .collect()
}

fn v2_data_type(t: v4::DbDataType) -> v2::DbDataType {
    use v2::DbDataType as T;
    use v4::DbDataType as U;
    match t {
        U::Boolean => T::Boolean,
        U::Int8 => T::Int8,
        U::Int16 => T::Int16,
        U::Int32 => T::Int32,
        U::Int64 => T::Int64,
        U::Floating32 => T::Floating32,
        U::Floating64 => T::Floating64,
        U::Str => T::Str,
        U::Binary => T::Binary,
        _ => T::Other,
    }
}

fn v2_value(v: v4::DbValue) -> v2::DbValue {
    use v2::DbValue as T;
    use v4::DbValue as U;
    match v {
        U::Boolean(v) => T::Boolean(v),
        U::Int8(v) => T::Int8(v),
        U::Int16(v) => T::Int16(v),
        U::Int32(v) => T::Int32(v),
        U::Int64(v) => T::Int64(v),
        U::Floating32(v) => T::Floating32(v),
        U::Floating64(v) => T::Floating64(v),
        U::Str(v) => T::Str(v),
        U::Binary(v) => T::Binary(v),
        U::DbNull => T::DbNull,
        _ => T::Unsupported,
    }
}

pub(crate) fn v2_row_set(r: v4::RowSet) -> v2::RowSet {
    v2::RowSet {
        columns: r
            .columns
            .into_iter()
            .map(|c| v2::Column {
                name: c.name,
                data_type: v2_data_type(c.data_type),
            })
            .collect(),
        rows: r
            .rows
            .into_iter()
            .map(|row| row.into_iter().map(v2_value).collect())
            .collect(),
    }
}

// ---- spin:postgres@4.2.0 ----
//
// 4.2.0's types have 4.0.0's shapes, but bindgen makes them distinct Rust types (only resources can
// be shared between bindings), so values cross over variant by variant.

/// Maps a value of one interface's variant to the same-named variant of the other's: `same` cases
/// carry their payload as it is, `bounds` cases a range (whose bound kinds need mapping), `units`
/// carry nothing.
macro_rules! same_variants {
    ($value:expr, $from:ident => $to:ident, same: [$($same:ident),*], bounds: [$($bounds:ident),*], units: [$($unit:ident),*] $(, $extra:pat => $mapped:expr)*) => {
        match $value {
            $($from::$same(v) => $to::$same(v),)*
            $($from::$bounds((lower, upper)) => $to::$bounds((bound(lower), bound(upper))),)*
            $($from::$unit => $to::$unit,)*
            $($extra => $mapped,)*
        }
    };
}

/// The `same:` list of both values and parameters.
macro_rules! value_variants {
    ($value:expr, $from:ident => $to:ident $(, $extra:pat => $mapped:expr)*) => {
        same_variants!($value, $from => $to,
            same: [Boolean, Int8, Int16, Int32, Int64, Floating32, Floating64, Str, Binary, Date, Time, Datetime, Timestamp, Uuid, Jsonb, Decimal, ArrayInt32, ArrayInt64, ArrayDecimal, ArrayStr],
            bounds: [RangeInt32, RangeInt64, RangeDecimal],
            units: [DbNull]
            $(, $extra => $mapped)*)
    };
}

trait BoundKind<T> {
    fn kind(self) -> T;
}

impl BoundKind<v42::RangeBoundKind> for v4::RangeBoundKind {
    fn kind(self) -> v42::RangeBoundKind {
        match self {
            v4::RangeBoundKind::Inclusive => v42::RangeBoundKind::Inclusive,
            v4::RangeBoundKind::Exclusive => v42::RangeBoundKind::Exclusive,
        }
    }
}

impl BoundKind<v4::RangeBoundKind> for v42::RangeBoundKind {
    fn kind(self) -> v4::RangeBoundKind {
        match self {
            v42::RangeBoundKind::Inclusive => v4::RangeBoundKind::Inclusive,
            v42::RangeBoundKind::Exclusive => v4::RangeBoundKind::Exclusive,
        }
    }
}

fn bound<V, K: BoundKind<L>, L>(b: Option<(V, K)>) -> Option<(V, L)> {
    b.map(|(value, kind)| (value, kind.kind()))
}

pub(crate) fn v42_param(p: v42::ParameterValue) -> v4::ParameterValue {
    use v4::ParameterValue as Q;
    use v42::ParameterValue as P;
    value_variants!(p, P => Q,
        P::Interval(i) => Q::Interval(v4::Interval { micros: i.micros, days: i.days, months: i.months }))
}

pub(crate) fn v42_params(params: Vec<v42::ParameterValue>) -> Vec<v4::ParameterValue> {
    params.into_iter().map(v42_param).collect()
}

fn v42_value(v: v4::DbValue) -> v42::DbValue {
    use v4::DbValue as U;
    use v42::DbValue as T;
    value_variants!(v, U => T,
        U::Interval(i) => T::Interval(v42::Interval { micros: i.micros, days: i.days, months: i.months }),
        U::Unsupported(raw) => T::Unsupported(raw))
}

pub(crate) fn v42_row(row: Vec<v4::DbValue>) -> Vec<v42::DbValue> {
    row.into_iter().map(v42_value).collect()
}

fn v42_data_type(t: v4::DbDataType) -> v42::DbDataType {
    use v4::DbDataType as U;
    use v42::DbDataType as T;
    same_variants!(t, U => T,
        same: [Other],
        bounds: [],
        units: [Boolean, Int8, Int16, Int32, Int64, Floating32, Floating64, Str, Binary, Date, Time, Datetime, Timestamp, Uuid, Jsonb, Decimal, RangeInt32, RangeInt64, RangeDecimal, ArrayInt32, ArrayInt64, ArrayDecimal, ArrayStr, Interval])
}

pub(crate) fn v42_columns(columns: Vec<v4::Column>) -> Vec<v42::Column> {
    columns.into_iter().map(|c| v42::Column { name: c.name, data_type: v42_data_type(c.data_type) }).collect()
}

pub(crate) fn v42_row_set(r: v4::RowSet) -> v42::RowSet {
    v42::RowSet { columns: v42_columns(r.columns), rows: r.rows.into_iter().map(v42_row).collect() }
}

pub(crate) fn v42_error(e: v4::Error) -> v42::Error {
    use v4::Error as U;
    use v42::Error as T;
    same_variants!(e, U => T,
        same: [ConnectionFailed, BadParameter, ValueConversionFailed, Other],
        bounds: [],
        units: [],
        U::QueryFailed(v4::QueryError::Text(text)) => T::QueryFailed(v42::QueryError::Text(text)),
        U::QueryFailed(v4::QueryError::DbError(db)) => T::QueryFailed(v42::QueryError::DbError(v42::DbError {
            as_text: db.as_text,
            severity: db.severity,
            code: db.code,
            message: db.message,
            detail: db.detail,
            extras: db.extras,
        })))
}
