//! The Redis operations, version-neutral: commands, response mapping, error mapping, deadlines.

use crate::RedisTimeouts;
use redis::Value;
use redis::aio::MultiplexedConnection;
use std::time::Duration;

/// Largest response a guest gets (as Spin's `MAX_HOST_BUFFERED_BYTES`).
const MAX_RESULT_BYTES: usize = 128 << 20;

/// The interfaces' error variants.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum RedisError {
    InvalidAddress,
    TooManyConnections,
    TypeError,
    Other(String),
}

/// `execute`'s argument.
pub(crate) enum Param {
    Int(i64),
    Binary(Vec<u8>),
}

/// `execute`'s result values.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum RedisResult {
    Nil,
    Status(String),
    Int(i64),
    Binary(Vec<u8>),
}

impl From<redis::RedisError> for RedisError {
    fn from(e: redis::RedisError) -> RedisError {
        if e.code() == Some("WRONGTYPE") {
            return RedisError::TypeError;
        }
        if e.is_timeout() {
            return RedisError::Other(format!("Redis did not answer in time: {e}"));
        }
        RedisError::Other(e.to_string())
    }
}

fn server_error(e: &redis::ServerError) -> RedisError {
    if e.code() == "WRONGTYPE" {
        return RedisError::TypeError;
    }
    RedisError::Other(e.to_string())
}

/// Runs `fut` with a deadline; past it, `other("…timed out…")`.
pub(crate) async fn with_deadline<T>(
    limit: Duration,
    fut: impl Future<Output = Result<T, RedisError>>,
) -> Result<T, RedisError> {
    match tokio::time::timeout(limit, fut).await {
        Ok(result) => result,
        Err(_) => Err(RedisError::Other(format!(
            "the Redis call timed out after {} ms",
            limit.as_millis()
        ))),
    }
}

static TLS_PROVIDER: std::sync::Once = std::sync::Once::new();

/// Connects to `address` (already allowed): a URL the client rejects is `invalid-address`.
pub(crate) async fn connect(
    address: &str,
    timeouts: RedisTimeouts,
) -> Result<MultiplexedConnection, RedisError> {
    let client = redis::Client::open(address).map_err(|_| RedisError::InvalidAddress)?;
    if address
        .trim_start()
        .to_ascii_lowercase()
        .starts_with("rediss")
    {
        // rustls needs a process-wide crypto provider; install ring's unless one is set already.
        TLS_PROVIDER.call_once(|| {
            if rustls::crypto::CryptoProvider::get_default().is_none() {
                let _ = rustls::crypto::ring::default_provider().install_default();
            }
        });
    }
    let config = redis::AsyncConnectionConfig::new()
        .set_connection_timeout(Some(timeouts.connect))
        .set_response_timeout(Some(timeouts.call));
    let connecting = async {
        client
            .get_multiplexed_async_connection_with_config(&config)
            .await
            .map_err(|e| RedisError::Other(format!("cannot connect to Redis: {e}")))
    };
    // The client's own timeout covers each step; this bounds the whole handshake.
    with_deadline(timeouts.connect + timeouts.call, connecting).await
}

async fn query(conn: &mut MultiplexedConnection, cmd: &redis::Cmd) -> Result<Value, RedisError> {
    match cmd.query_async::<Value>(conn).await? {
        Value::ServerError(e) => Err(server_error(&e)),
        value => Ok(value),
    }
}

fn unexpected(what: &str, value: &Value) -> RedisError {
    RedisError::Other(format!("unexpected Redis response to {what}: {value:?}"))
}

fn count(what: &str, value: Value) -> Result<u32, RedisError> {
    match value {
        Value::Int(n) => u32::try_from(n).map_err(|_| unexpected(what, &Value::Int(n))),
        other => Err(unexpected(what, &other)),
    }
}

pub(crate) async fn publish(
    conn: &mut MultiplexedConnection,
    channel: &str,
    payload: &[u8],
) -> Result<(), RedisError> {
    query(conn, redis::cmd("PUBLISH").arg(channel).arg(payload))
        .await
        .map(|_| ())
}

pub(crate) async fn get(
    conn: &mut MultiplexedConnection,
    key: &str,
) -> Result<Option<Vec<u8>>, RedisError> {
    match query(conn, redis::cmd("GET").arg(key)).await? {
        Value::Nil => Ok(None),
        Value::BulkString(b) => Ok(Some(b)),
        Value::SimpleString(s) => Ok(Some(s.into_bytes())),
        Value::Okay => Ok(Some(b"OK".to_vec())),
        Value::Int(i) => Ok(Some(i.to_string().into_bytes())),
        _ => Err(RedisError::TypeError),
    }
}

pub(crate) async fn set(
    conn: &mut MultiplexedConnection,
    key: &str,
    value: &[u8],
) -> Result<(), RedisError> {
    query(conn, redis::cmd("SET").arg(key).arg(value))
        .await
        .map(|_| ())
}

pub(crate) async fn incr(conn: &mut MultiplexedConnection, key: &str) -> Result<i64, RedisError> {
    // The interface promises `type-error` for a value that is not an integer.
    let result = cmd_incr(conn, key).await;
    match result {
        Err(RedisError::Other(msg)) if msg.contains("not an integer") => Err(RedisError::TypeError),
        other => other,
    }
}

async fn cmd_incr(conn: &mut MultiplexedConnection, key: &str) -> Result<i64, RedisError> {
    match query(conn, redis::cmd("INCRBY").arg(key).arg(1)).await? {
        Value::Int(n) => Ok(n),
        other => Err(unexpected("INCRBY", &other)),
    }
}

pub(crate) async fn del(
    conn: &mut MultiplexedConnection,
    keys: &[String],
) -> Result<u32, RedisError> {
    count("DEL", query(conn, redis::cmd("DEL").arg(keys)).await?)
}

pub(crate) async fn sadd(
    conn: &mut MultiplexedConnection,
    key: &str,
    values: &[String],
) -> Result<u32, RedisError> {
    count(
        "SADD",
        query(conn, redis::cmd("SADD").arg(key).arg(values)).await?,
    )
}

pub(crate) async fn srem(
    conn: &mut MultiplexedConnection,
    key: &str,
    values: &[String],
) -> Result<u32, RedisError> {
    count(
        "SREM",
        query(conn, redis::cmd("SREM").arg(key).arg(values)).await?,
    )
}

pub(crate) async fn smembers(
    conn: &mut MultiplexedConnection,
    key: &str,
) -> Result<Vec<String>, RedisError> {
    let members = match query(conn, redis::cmd("SMEMBERS").arg(key)).await? {
        Value::Array(v) | Value::Set(v) => v,
        Value::Nil => Vec::new(),
        _ => return Err(RedisError::TypeError),
    };
    members
        .into_iter()
        .map(|m| match m {
            Value::BulkString(b) => String::from_utf8(b).map_err(|_| RedisError::TypeError),
            Value::SimpleString(s) => Ok(s),
            _ => Err(RedisError::TypeError),
        })
        .collect()
}

/// Any command; the response is flattened into a list as Spin does (nested arrays and sets are
/// spliced in order; `OK` is `status("OK")`; doubles and big numbers are their decimal text;
/// booleans are 0/1; maps, attributes, verbatim strings and pushes are errors).
pub(crate) async fn execute(
    conn: &mut MultiplexedConnection,
    command: &str,
    args: Vec<Param>,
) -> Result<Vec<RedisResult>, RedisError> {
    if command.trim().is_empty() {
        return Err(RedisError::Other("the command is empty".to_string()));
    }
    let mut cmd = redis::cmd(command);
    for arg in args {
        match arg {
            Param::Int(i) => cmd.arg(i),
            Param::Binary(b) => cmd.arg(b),
        };
    }
    let value = query(conn, &cmd).await?;
    let mut out = Vec::new();
    let mut bytes = 0usize;
    flatten(value, &mut out, &mut bytes)?;
    Ok(out)
}

fn flatten(value: Value, out: &mut Vec<RedisResult>, bytes: &mut usize) -> Result<(), RedisError> {
    let unsupported = |what: &str| {
        RedisError::Other(format!(
            "cannot convert the Redis response: {what} is not supported"
        ))
    };
    let item = match value {
        Value::Nil => RedisResult::Nil,
        Value::Int(i) => RedisResult::Int(i),
        Value::BulkString(b) => RedisResult::Binary(b),
        Value::SimpleString(s) => RedisResult::Status(s),
        Value::Okay => RedisResult::Status("OK".to_string()),
        Value::Double(d) => RedisResult::Binary(d.to_string().into_bytes()),
        Value::Boolean(b) => RedisResult::Int(i64::from(b)),
        // Without `num-bigint` the client keeps a big number as its decimal digits.
        Value::BigNumber(n) => RedisResult::Binary(n),
        Value::Array(items) | Value::Set(items) => {
            for item in items {
                flatten(item, out, bytes)?;
            }
            return Ok(());
        }
        Value::ServerError(e) => return Err(server_error(&e)),
        Value::Map(_) => return Err(unsupported("a map")),
        Value::Attribute { .. } => return Err(unsupported("an attribute")),
        Value::VerbatimString { .. } => return Err(unsupported("a verbatim string")),
        Value::Push { .. } => return Err(unsupported("a push message")),
        _ => return Err(unsupported("this response type")),
    };
    *bytes += std::mem::size_of::<RedisResult>()
        + match &item {
            RedisResult::Binary(b) => b.len(),
            RedisResult::Status(s) => s.len(),
            _ => 0,
        };
    if *bytes > MAX_RESULT_BYTES {
        return Err(RedisError::Other(format!(
            "query result exceeds limit of {MAX_RESULT_BYTES} bytes"
        )));
    }
    out.push(item);
    Ok(())
}
