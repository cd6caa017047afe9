//! The Redis backend (`type = "redis"`, `url = "redis://host:port/db"`): keys are Redis string keys
//! in the URL's database, as Spin stores them.
//!
//! Connections come from a [`ConnectionManager`], which reconnects by itself; every call is bounded
//! by [`CALL_TIMEOUT`], so a dead Redis gives the guest a clear error in bounded time and calls
//! succeed again once Redis is back, without a restart. Redis I/O runs on a small runtime of its own
//! ([`RedisRuntime`]), not on the HTTP workers' per-thread runtimes.

use crate::store::{Error, KeyPage, PAGE_SIZE, Result, Store};
use anyhow::Context as _;
use async_trait::async_trait;
use kiln_app::BackendFaults;
use redis::aio::{ConnectionManager, ConnectionManagerConfig};
use std::future::Future;
use std::sync::Arc;
use std::time::Duration;

/// The longest a guest waits for one key-value call against Redis.
pub const CALL_TIMEOUT: Duration = Duration::from_secs(5);

/// Compare-and-swap as one server-side step. KEYS[1] = key; ARGV[1] = "1" if a value is expected
/// (ARGV[2]) or "0" if the key must be absent; ARGV[3] = the new value. Returns 1 if swapped.
const CAS_SCRIPT: &str = r"
local current = redis.call('GET', KEYS[1])
if ARGV[1] == '1' then
  if current == false or current ~= ARGV[2] then return 0 end
else
  if current ~= false then return 0 end
end
redis.call('SET', KEYS[1], ARGV[3])
return 1
";

/// A multi-threaded tokio runtime (one worker) that carries every Redis connection of an app.
/// Dropped without blocking, so an app can be unloaded from async code.
pub struct RedisRuntime(Option<tokio::runtime::Runtime>);

impl RedisRuntime {
    pub fn new() -> anyhow::Result<Arc<RedisRuntime>> {
        let runtime = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(1)
            .thread_name("kiln-kv-redis")
            .enable_all()
            .build()
            .context("cannot start the Redis runtime")?;
        Ok(Arc::new(RedisRuntime(Some(runtime))))
    }

    fn handle(&self) -> &tokio::runtime::Handle {
        // Only `Drop` takes the runtime out.
        self.0
            .as_ref()
            .map(|rt| rt.handle())
            .expect("the Redis runtime is present until dropped")
    }
}

impl Drop for RedisRuntime {
    fn drop(&mut self) {
        if let Some(runtime) = self.0.take() {
            runtime.shutdown_background();
        }
    }
}

pub struct RedisStore {
    /// The URL without its password, for messages.
    shown: String,
    connection: ConnectionManager,
    cas: Arc<redis::Script>,
    runtime: Arc<RedisRuntime>,
    faults: BackendFaults,
}

impl RedisStore {
    /// Checks `url` and prepares a connection; nothing is sent to Redis until the first call.
    pub fn new(url: &str, runtime: Arc<RedisRuntime>) -> anyhow::Result<RedisStore> {
        let shown = redact(url);
        let client =
            redis::Client::open(url).with_context(|| format!("invalid Redis URL `{shown}`"))?;
        let config = ConnectionManagerConfig::new()
            .set_connection_timeout(Some(Duration::from_secs(2)))
            .set_response_timeout(Some(CALL_TIMEOUT))
            .set_number_of_retries(1)
            .set_max_delay(Duration::from_millis(500));
        let connection = {
            let _in_runtime = runtime.handle().enter();
            ConnectionManager::new_lazy_with_config(client, config)
                .with_context(|| format!("cannot set up a connection to Redis at {shown}"))?
        };
        Ok(RedisStore {
            shown,
            connection,
            cas: Arc::new(redis::Script::new(CAS_SCRIPT)),
            runtime,
            faults: BackendFaults::default(),
        })
    }

    /// Runs one Redis exchange on the Redis runtime, bounded by [`CALL_TIMEOUT`].
    async fn call<T, F, Fut>(&self, what: &'static str, f: F) -> Result<T>
    where
        T: Send + 'static,
        F: FnOnce(ConnectionManager) -> Fut,
        Fut: Future<Output = redis::RedisResult<T>> + Send + 'static,
    {
        let exchange = f(self.connection.clone());
        let task = self
            .runtime
            .handle()
            .spawn(tokio::time::timeout(CALL_TIMEOUT, exchange));
        let result = match task.await {
            Ok(Ok(Ok(value))) => Ok(value),
            // Redis answered with an error about the data (`WRONGTYPE`, not an integer): the
            // guest's business, not a fault of the backend.
            Ok(Ok(Err(e))) if !is_backend_fault(&e) => {
                Err(Error::Other(format!("Redis key-value store ({}): {what} failed: {e}", self.shown)))
            }
            Ok(Ok(Err(e))) => {
                tracing::warn!(redis = %self.shown, error = %e, "key-value {what} failed");
                Err(Error::Unavailable(format!(
                    "Redis key-value store ({}): {what} failed: {e}",
                    self.shown
                )))
            }
            Ok(Err(_elapsed)) => {
                tracing::warn!(redis = %self.shown, "key-value {what}: Redis did not answer in time");
                Err(Error::Unavailable(format!(
                    "Redis key-value store ({}) did not answer within {} s",
                    self.shown,
                    CALL_TIMEOUT.as_secs()
                )))
            }
            Err(join) => Err(Error::Unavailable(format!(
                "Redis key-value store ({}): {join}",
                self.shown
            ))),
        };
        if let Err(Error::Unavailable(_)) = &result {
            self.faults.report("redis");
        }
        result
    }

    /// Reports the store's failures (Redis unreachable or silent) to `faults`.
    pub fn with_faults(mut self, faults: BackendFaults) -> RedisStore {
        self.faults = faults;
        self
    }
}

/// Whether `e` says Redis could not serve the call (unreachable, silent, loading, read-only, refusing
/// our credentials), rather than refusing the call's data.
fn is_backend_fault(e: &redis::RedisError) -> bool {
    use redis::{ErrorKind, ServerErrorKind};
    e.is_io_error()
        || e.is_connection_refusal()
        || e.is_connection_dropped()
        || e.is_timeout()
        || matches!(
            e.kind(),
            ErrorKind::AuthenticationFailed
                | ErrorKind::Server(ServerErrorKind::BusyLoading | ServerErrorKind::MasterDown | ServerErrorKind::ReadOnly | ServerErrorKind::ClusterDown | ServerErrorKind::TryAgain | ServerErrorKind::NoPerm)
        )
}

/// `redis://user:secret@host/0` → `redis://user:***@host/0`.
fn redact(url: &str) -> String {
    let Some((scheme, rest)) = url.split_once("://") else {
        return url.to_string();
    };
    let (authority, path) = match rest.find('/') {
        Some(i) => rest.split_at(i),
        None => (rest, ""),
    };
    match authority.rsplit_once('@') {
        Some((userinfo, host)) => {
            let user = userinfo.split_once(':').map(|(u, _)| u).unwrap_or("");
            format!("{scheme}://{user}:***@{host}{path}")
        }
        None => url.to_string(),
    }
}

#[async_trait]
impl Store for RedisStore {
    fn describe(&self) -> String {
        format!("Redis at {}", self.shown)
    }

    async fn get(&self, key: String) -> Result<Option<Vec<u8>>> {
        self.call("get", |mut c| async move {
            redis::cmd("GET")
                .arg(key)
                .query_async::<Option<Vec<u8>>>(&mut c)
                .await
        })
        .await
    }

    async fn set(&self, key: String, value: Vec<u8>) -> Result<()> {
        self.call("set", |mut c| async move {
            redis::cmd("SET")
                .arg(key)
                .arg(value)
                .query_async::<()>(&mut c)
                .await
        })
        .await
    }

    async fn delete(&self, key: String) -> Result<()> {
        self.call("delete", |mut c| async move {
            redis::cmd("DEL").arg(key).query_async::<()>(&mut c).await
        })
        .await
    }

    async fn exists(&self, key: String) -> Result<bool> {
        self.call("exists", |mut c| async move {
            redis::cmd("EXISTS")
                .arg(key)
                .query_async::<bool>(&mut c)
                .await
        })
        .await
    }

    /// `SCAN`: the cursor is Redis's own. A page may hold keys seen before (SCAN's guarantee);
    /// non-UTF-8 keys, which no guest can name, are left out.
    async fn list_keys(&self, cursor: Option<u64>) -> Result<KeyPage> {
        let mut cursor = cursor.unwrap_or(0);
        // SCAN may return empty pages before the end; skip a few of those in one call.
        for _ in 0..16 {
            let (next, raw) = self
                .call("list keys", move |mut c| async move {
                    redis::cmd("SCAN")
                        .arg(cursor)
                        .arg("COUNT")
                        .arg(PAGE_SIZE)
                        .query_async::<(u64, Vec<Vec<u8>>)>(&mut c)
                        .await
                })
                .await?;
            let keys: Vec<String> = raw
                .into_iter()
                .filter_map(|k| String::from_utf8(k).ok())
                .collect();
            let more = (next != 0).then_some(next);
            if !keys.is_empty() || more.is_none() {
                return Ok(KeyPage { keys, cursor: more });
            }
            cursor = next;
        }
        Ok(KeyPage {
            keys: Vec::new(),
            cursor: Some(cursor),
        })
    }

    async fn increment(&self, key: String, delta: i64) -> Result<i64> {
        let shown_key = key.clone();
        self.call("increment", |mut c| async move {
            redis::cmd("INCRBY")
                .arg(key)
                .arg(delta)
                .query_async::<i64>(&mut c)
                .await
        })
        .await
        .map_err(|e| match e {
            Error::Other(m) if m.contains("not an integer") || m.contains("overflow") => {
                Error::Other(format!("cannot increment `{shown_key}`: {m}"))
            }
            e => e,
        })
    }

    async fn compare_and_swap(
        &self,
        key: String,
        expected: Option<Vec<u8>>,
        value: Vec<u8>,
    ) -> Result<bool> {
        let script = self.cas.clone();
        self.call("compare-and-swap", |mut c| async move {
            let mut invocation = script.prepare_invoke();
            invocation.key(key);
            match expected {
                Some(old) => invocation.arg("1").arg(old),
                None => invocation.arg("0").arg(""),
            };
            invocation
                .arg(value)
                .invoke_async::<i64>(&mut c)
                .await
                .map(|swapped| swapped == 1)
        })
        .await
    }

    async fn get_many(&self, keys: Vec<String>) -> Result<Vec<Option<Vec<u8>>>> {
        self.call("get many", |mut c| async move {
            redis::cmd("MGET")
                .arg(keys)
                .query_async::<Vec<Option<Vec<u8>>>>(&mut c)
                .await
        })
        .await
    }

    async fn set_many(&self, entries: Vec<(String, Vec<u8>)>) -> Result<()> {
        self.call("set many", |mut c| async move {
            let mut command = redis::cmd("MSET");
            for (key, value) in entries {
                command.arg(key).arg(value);
            }
            command.query_async::<()>(&mut c).await
        })
        .await
    }

    async fn delete_many(&self, keys: Vec<String>) -> Result<()> {
        self.call("delete many", |mut c| async move {
            redis::cmd("DEL").arg(keys).query_async::<()>(&mut c).await
        })
        .await
    }
}
