//! MySQL work, version-neutral: addresses and grants, the app's pools (one per address),
//! statements, and values ↔ the interfaces' `db-value` / `parameter-value`.

use kiln_outbound::{AllowedHosts, OutboundUrl};
use mysql_async::consts::{ColumnFlags, ColumnType};
use mysql_async::prelude::Queryable;
use mysql_async::{Column, Conn, Opts, Params, Pool, PoolConstraints, PoolOpts, Row, Value};
use std::collections::HashMap;
use std::sync::Mutex;
use std::time::Duration;

/// Connections one app keeps per address, at most (in use or idle).
const MAX_POOL_SIZE: usize = 32;

/// MySQL's character set number for binary strings (`BINARY`, `VARBINARY`, `BLOB`).
const BINARY_CHARSET: u16 = 63;

/// The interfaces' error variants (2.0.0's `rdbms-types` and 3.0.0's have the same shape).
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum DbError {
    ConnectionFailed(String),
    BadParameter(String),
    QueryFailed(String),
    ValueConversionFailed(String),
    Other(String),
}

/// A parameter, as every version's `parameter-value` has it.
pub(crate) enum Param {
    Bool(bool),
    Int(i64),
    UInt(u64),
    F32(f32),
    F64(f64),
    Str(String),
    Binary(Vec<u8>),
    Null,
}

/// A value, as every version's `db-value` has it.
#[derive(Debug, Clone, PartialEq)]
pub(crate) enum DbValue {
    Int8(i8),
    Int16(i16),
    Int32(i32),
    Int64(i64),
    UInt8(u8),
    UInt16(u16),
    UInt32(u32),
    UInt64(u64),
    F32(f32),
    F64(f64),
    Str(String),
    Binary(Vec<u8>),
    Null,
    Unsupported,
}

/// A column's type, as every version's `db-data-type` has it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum DataType {
    Int8,
    Int16,
    Int32,
    Int64,
    UInt8,
    UInt16,
    UInt32,
    UInt64,
    F32,
    F64,
    Str,
    Binary,
    Other,
}

pub(crate) struct RowSet {
    pub(crate) columns: Vec<(String, DataType)>,
    pub(crate) rows: Vec<Vec<DbValue>>,
}

/// Whether the guest may connect to `address`: a `mysql://` URL the component's
/// `allowed_outbound_hosts` allows (port 3306 when left out).
pub(crate) fn check_address(allowed: &AllowedHosts, address: &str) -> Result<Opts, DbError> {
    let opts = Opts::from_url(address)
        .map_err(|e| DbError::ConnectionFailed(format!("invalid MySQL address: {e}")))?;
    let allowed = OutboundUrl::parse_with_default_scheme(address, "mysql")
        .is_ok_and(|url| allowed.allows(&url));
    if !allowed {
        return Err(DbError::ConnectionFailed(format!(
            "address {address} is not permitted: add `mysql://host:port` to the component's \
             allowed_outbound_hosts"
        )));
    }
    Ok(opts)
}

/// An app's pools, by address. A connection the guest drops goes back to its pool, where the
/// driver resets it (`COM_RESET_CONNECTION`: open transactions rolled back, session state
/// cleared) before anyone else gets it.
pub(crate) struct Pools {
    pools: Mutex<HashMap<String, Pool>>,
    connect_timeout: Duration,
}

impl Pools {
    pub(crate) fn new(connect_timeout: Duration) -> Pools {
        Pools {
            pools: Mutex::default(),
            connect_timeout,
        }
    }

    pub(crate) async fn connect(&self, address: &str, opts: Opts) -> Result<Conn, DbError> {
        let pool = self.pool(address, opts);
        match tokio::time::timeout(self.connect_timeout, pool.get_conn()).await {
            Ok(Ok(conn)) => Ok(conn),
            Ok(Err(e)) => Err(DbError::ConnectionFailed(format!(
                "cannot connect to MySQL: {e}"
            ))),
            Err(_) => Err(DbError::ConnectionFailed(format!(
                "MySQL did not accept a connection within {} ms",
                self.connect_timeout.as_millis()
            ))),
        }
    }

    fn pool(&self, address: &str, opts: Opts) -> Pool {
        let mut pools = self.pools.lock().unwrap_or_else(|p| p.into_inner());
        pools
            .entry(address.to_string())
            .or_insert_with(|| {
                let constraints =
                    PoolConstraints::new(0, MAX_POOL_SIZE).unwrap_or_default();
                let pool_opts = PoolOpts::default()
                    .with_constraints(constraints)
                    .with_reset_connection(true);
                let opts = mysql_async::OptsBuilder::from_opts(opts).pool_opts(pool_opts);
                Pool::new(opts)
            })
            .clone()
    }
}

fn query_failed(e: mysql_async::Error) -> DbError {
    match e {
        mysql_async::Error::Driver(e @ mysql_async::DriverError::StmtParamsMismatch { .. }) => {
            DbError::BadParameter(e.to_string())
        }
        e => DbError::QueryFailed(e.to_string()),
    }
}

fn params(params: Vec<Param>) -> Params {
    if params.is_empty() {
        return Params::Empty;
    }
    Params::Positional(
        params
            .into_iter()
            .map(|p| match p {
                Param::Bool(b) => Value::Int(i64::from(b)),
                Param::Int(i) => Value::Int(i),
                Param::UInt(u) => Value::UInt(u),
                Param::F32(f) => Value::Float(f),
                Param::F64(f) => Value::Double(f),
                Param::Str(s) => Value::Bytes(s.into_bytes()),
                Param::Binary(b) => Value::Bytes(b),
                Param::Null => Value::NULL,
            })
            .collect(),
    )
}

/// Runs a statement that returns rows. Without parameters it goes as text (any statement works);
/// with them, as a prepared statement.
pub(crate) async fn query(conn: &mut Conn, statement: &str, args: Vec<Param>) -> Result<RowSet, DbError> {
    let (columns, rows): (Vec<Column>, Vec<Row>) = if args.is_empty() {
        let mut result = conn.query_iter(statement).await.map_err(query_failed)?;
        let columns = result.columns().map(|c| c.to_vec()).unwrap_or_default();
        (columns, result.collect().await.map_err(query_failed)?)
    } else {
        let mut result = conn.exec_iter(statement, params(args)).await.map_err(query_failed)?;
        let columns = result.columns().map(|c| c.to_vec()).unwrap_or_default();
        (columns, result.collect().await.map_err(query_failed)?)
    };
    let rows = rows
        .into_iter()
        .map(|row| {
            // `unwrap_raw`, not `unwrap`: a value already taken out of the row is an error, not a panic.
            row.unwrap_raw()
                .into_iter()
                .zip(&columns)
                .map(|(value, column)| match value {
                    Some(value) => db_value(column, value),
                    None => Err(DbError::ValueConversionFailed(format!("column `{}` has no value", column.name_str()))),
                })
                .collect::<Result<Vec<_>, _>>()
        })
        .collect::<Result<Vec<_>, _>>()?;
    let columns = columns
        .iter()
        .map(|c| (c.name_str().into_owned(), data_type(c)))
        .collect();
    Ok(RowSet { columns, rows })
}

/// Runs a statement for its effect.
pub(crate) async fn execute(conn: &mut Conn, statement: &str, args: Vec<Param>) -> Result<(), DbError> {
    if args.is_empty() {
        conn.query_drop(statement).await.map_err(query_failed)
    } else {
        conn.exec_drop(statement, params(args)).await.map_err(query_failed)
    }
}

fn is_text(column: &Column) -> bool {
    column.character_set() != BINARY_CHARSET
}

fn data_type(column: &Column) -> DataType {
    let unsigned = column.flags().contains(ColumnFlags::UNSIGNED_FLAG);
    let signed = |s, u| if unsigned { u } else { s };
    match column.column_type() {
        ColumnType::MYSQL_TYPE_TINY => signed(DataType::Int8, DataType::UInt8),
        ColumnType::MYSQL_TYPE_SHORT | ColumnType::MYSQL_TYPE_YEAR => {
            signed(DataType::Int16, DataType::UInt16)
        }
        ColumnType::MYSQL_TYPE_INT24 | ColumnType::MYSQL_TYPE_LONG => {
            signed(DataType::Int32, DataType::UInt32)
        }
        ColumnType::MYSQL_TYPE_LONGLONG => signed(DataType::Int64, DataType::UInt64),
        ColumnType::MYSQL_TYPE_FLOAT => DataType::F32,
        ColumnType::MYSQL_TYPE_DOUBLE => DataType::F64,
        ColumnType::MYSQL_TYPE_VARCHAR
        | ColumnType::MYSQL_TYPE_VAR_STRING
        | ColumnType::MYSQL_TYPE_STRING
        | ColumnType::MYSQL_TYPE_TINY_BLOB
        | ColumnType::MYSQL_TYPE_MEDIUM_BLOB
        | ColumnType::MYSQL_TYPE_LONG_BLOB
        | ColumnType::MYSQL_TYPE_BLOB => {
            if is_text(column) {
                DataType::Str
            } else {
                DataType::Binary
            }
        }
        // Exact decimals, JSON, ENUM and SET come as their text.
        ColumnType::MYSQL_TYPE_DECIMAL
        | ColumnType::MYSQL_TYPE_NEWDECIMAL
        | ColumnType::MYSQL_TYPE_JSON
        | ColumnType::MYSQL_TYPE_ENUM
        | ColumnType::MYSQL_TYPE_SET => DataType::Str,
        ColumnType::MYSQL_TYPE_BIT => DataType::Binary,
        _ => DataType::Other,
    }
}

fn convert<T: mysql_async::prelude::FromValue>(
    column: &Column,
    value: Value,
    wrap: impl FnOnce(T) -> DbValue,
) -> Result<DbValue, DbError> {
    mysql_async::from_value_opt::<T>(value).map(wrap).map_err(|e| {
        DbError::ValueConversionFailed(format!(
            "cannot read column `{}`: {e}",
            column.name_str()
        ))
    })
}

fn db_value(column: &Column, value: Value) -> Result<DbValue, DbError> {
    if value == Value::NULL {
        return Ok(DbValue::Null);
    }
    match data_type(column) {
        DataType::Int8 => convert(column, value, DbValue::Int8),
        DataType::Int16 => convert(column, value, DbValue::Int16),
        DataType::Int32 => convert(column, value, DbValue::Int32),
        DataType::Int64 => convert(column, value, DbValue::Int64),
        DataType::UInt8 => convert(column, value, DbValue::UInt8),
        DataType::UInt16 => convert(column, value, DbValue::UInt16),
        DataType::UInt32 => convert(column, value, DbValue::UInt32),
        DataType::UInt64 => convert(column, value, DbValue::UInt64),
        DataType::F32 => convert(column, value, DbValue::F32),
        DataType::F64 => convert(column, value, DbValue::F64),
        DataType::Str => convert(column, value, DbValue::Str),
        DataType::Binary => convert(column, value, DbValue::Binary),
        DataType::Other => Ok(DbValue::Unsupported),
    }
}
