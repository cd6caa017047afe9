//! The one trait every key-value backend implements, the errors they return, and the limits every
//! guest call is checked against before it reaches a backend.

use async_trait::async_trait;
use std::collections::HashSet;
use std::fmt;
use std::sync::Arc;

/// The longest key a guest may use, in bytes (Spin's documented limit).
pub const MAX_KEY_BYTES: usize = 256;
/// The largest value a guest may store, in bytes (1 MiB).
pub const MAX_VALUE_BYTES: usize = 1024 * 1024;
/// How many keys one `list-keys` page holds at most.
pub(crate) const PAGE_SIZE: usize = 1000;

/// A key-value error, mapped onto each interface's own error variant.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Error {
    /// Too many stores open in one instance.
    StoreTableFull,
    /// The label is granted but no backend serves it.
    NoSuchStore,
    /// The component was not granted the label.
    AccessDenied,
    /// The backend failed (SQLite I/O, a full disk, a Redis that does not answer). The guest sees it
    /// as `Other`; the host also counts it as a backend fault (`kiln_backend_errors_total`).
    Unavailable(String),
    /// Anything else, with a message for the guest (limits, a counter that is not a number).
    Other(String),
}

impl fmt::Display for Error {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Error::StoreTableFull => f.write_str("too many key-value stores are open"),
            Error::NoSuchStore => f.write_str("no such key-value store"),
            Error::AccessDenied => f.write_str("access to the key-value store was denied"),
            Error::Unavailable(message) | Error::Other(message) => f.write_str(message),
        }
    }
}

impl std::error::Error for Error {}

pub type Result<T> = std::result::Result<T, Error>;

/// One page of keys; `cursor` (opaque to the guest) fetches the next page, `None` means no more.
#[derive(Debug, Default, PartialEq, Eq)]
pub struct KeyPage {
    pub keys: Vec<String>,
    pub cursor: Option<u64>,
}

/// A key-value backend. Keys and values reaching it are already within the limits.
///
/// `increment` keeps the counter as a decimal integer (`b"42"`), the same on every backend (Redis's
/// `INCRBY` format), so a guest reading a counter with `get` sees the same bytes wherever it runs.
#[async_trait]
pub trait Store: Send + Sync {
    /// A one-line description for logs ("SQLite file /x/default.db"); never contains secrets.
    fn describe(&self) -> String;
    async fn get(&self, key: String) -> Result<Option<Vec<u8>>>;
    async fn set(&self, key: String, value: Vec<u8>) -> Result<()>;
    async fn delete(&self, key: String) -> Result<()>;
    async fn exists(&self, key: String) -> Result<bool>;
    /// One page of keys, starting at `cursor` (`None`: the beginning).
    async fn list_keys(&self, cursor: Option<u64>) -> Result<KeyPage>;
    /// Adds `delta` to the integer at `key` (absent: 0) atomically, returning the new value.
    async fn increment(&self, key: String, delta: i64) -> Result<i64>;
    /// Atomically: if the value at `key` is `expected` (`None`: the key is absent), sets it to
    /// `value` and returns `true`; otherwise changes nothing and returns `false`.
    async fn compare_and_swap(
        &self,
        key: String,
        expected: Option<Vec<u8>>,
        value: Vec<u8>,
    ) -> Result<bool>;
    /// The values of `keys`, in the same order (`None` for an absent key).
    async fn get_many(&self, keys: Vec<String>) -> Result<Vec<Option<Vec<u8>>>>;
    async fn set_many(&self, entries: Vec<(String, Vec<u8>)>) -> Result<()>;
    async fn delete_many(&self, keys: Vec<String>) -> Result<()>;

    /// Every key, all pages gathered (no duplicates).
    async fn get_keys(&self) -> Result<Vec<String>> {
        let mut keys = Vec::new();
        let mut seen = HashSet::new();
        let mut cursor = None;
        loop {
            let page = self.list_keys(cursor).await?;
            for key in page.keys {
                if seen.insert(key.clone()) {
                    keys.push(key);
                }
            }
            match page.cursor {
                Some(next) => cursor = Some(next),
                None => return Ok(keys),
            }
        }
    }
}

pub(crate) fn check_key(key: &str) -> Result<()> {
    if key.len() > MAX_KEY_BYTES {
        return Err(Error::Other(format!(
            "key too long: {} bytes, the limit is {MAX_KEY_BYTES}",
            key.len()
        )));
    }
    Ok(())
}

pub(crate) fn check_value(value: &[u8]) -> Result<()> {
    if value.len() > MAX_VALUE_BYTES {
        return Err(Error::Other(format!(
            "value too large: {} bytes, the limit is {MAX_VALUE_BYTES} (1 MiB)",
            value.len()
        )));
    }
    Ok(())
}

/// Parses a counter as `increment` stores it.
pub(crate) fn parse_counter(key: &str, value: &[u8]) -> Result<i64> {
    std::str::from_utf8(value)
        .ok()
        .and_then(|s| s.parse::<i64>().ok())
        .ok_or_else(|| {
            Error::Other(format!(
                "cannot increment `{key}`: its value is not a decimal 64-bit integer"
            ))
        })
}

pub(crate) fn add_counter(key: &str, current: i64, delta: i64) -> Result<i64> {
    current.checked_add(delta).ok_or_else(|| {
        Error::Other(format!(
            "cannot increment `{key}` by {delta}: the result overflows a 64-bit integer"
        ))
    })
}

/// An open store as a guest holds it: the backend, with every argument checked against the limits
/// first. All interfaces go through this.
#[derive(Clone)]
pub struct Bucket {
    pub(crate) label: Arc<str>,
    pub(crate) store: Arc<dyn Store>,
}

impl Bucket {
    pub fn new(label: &str, store: Arc<dyn Store>) -> Self {
        Bucket {
            label: label.into(),
            store,
        }
    }

    pub fn label(&self) -> &str {
        &self.label
    }

    // Reads and deletes of a key over the limit answer "absent": such a key can never have been
    // written. Writes refuse it with a clear error.
    pub async fn get(&self, key: String) -> Result<Option<Vec<u8>>> {
        if check_key(&key).is_err() {
            return Ok(None);
        }
        self.store.get(key).await
    }

    pub async fn set(&self, key: String, value: Vec<u8>) -> Result<()> {
        check_key(&key)?;
        check_value(&value)?;
        self.store.set(key, value).await
    }

    pub async fn delete(&self, key: String) -> Result<()> {
        if check_key(&key).is_err() {
            return Ok(());
        }
        self.store.delete(key).await
    }

    pub async fn exists(&self, key: String) -> Result<bool> {
        if check_key(&key).is_err() {
            return Ok(false);
        }
        self.store.exists(key).await
    }

    pub async fn get_keys(&self) -> Result<Vec<String>> {
        self.store.get_keys().await
    }

    pub async fn list_keys(&self, cursor: Option<u64>) -> Result<KeyPage> {
        self.store.list_keys(cursor).await
    }

    pub async fn increment(&self, key: String, delta: i64) -> Result<i64> {
        check_key(&key)?;
        self.store.increment(key, delta).await
    }

    pub async fn compare_and_swap(
        &self,
        key: String,
        expected: Option<Vec<u8>>,
        value: Vec<u8>,
    ) -> Result<bool> {
        check_key(&key)?;
        check_value(&value)?;
        self.store.compare_and_swap(key, expected, value).await
    }

    pub async fn get_many(&self, keys: Vec<String>) -> Result<Vec<Option<Vec<u8>>>> {
        keys.iter().try_for_each(|k| check_key(k))?;
        if keys.is_empty() {
            return Ok(Vec::new());
        }
        self.store.get_many(keys).await
    }

    pub async fn set_many(&self, entries: Vec<(String, Vec<u8>)>) -> Result<()> {
        entries.iter().try_for_each(|(k, v)| {
            check_key(k)?;
            check_value(v)
        })?;
        if entries.is_empty() {
            return Ok(());
        }
        self.store.set_many(entries).await
    }

    pub async fn delete_many(&self, keys: Vec<String>) -> Result<()> {
        keys.iter().try_for_each(|k| check_key(k))?;
        if keys.is_empty() {
            return Ok(());
        }
        self.store.delete_many(keys).await
    }
}

/// A compare-and-swap in progress (`wasi:keyvalue/atomics.cas`): the value the guest last saw at
/// `key`, read when the handle was made and again at each `current`. `swap` succeeds only if the
/// store still holds exactly that value (or still lacks the key).
pub struct Cas {
    pub(crate) bucket: Bucket,
    pub(crate) key: String,
    pub(crate) observed: Option<Vec<u8>>,
}

impl Cas {
    pub async fn new(bucket: Bucket, key: String) -> Result<Cas> {
        let observed = bucket.get(key.clone()).await?;
        Ok(Cas {
            bucket,
            key,
            observed,
        })
    }

    pub async fn current(&mut self) -> Result<Option<Vec<u8>>> {
        self.observed = self.bucket.get(self.key.clone()).await?;
        Ok(self.observed.clone())
    }

    /// `Ok(None)`: swapped. `Ok(Some(cas))`: the value had changed; `cas` holds the latest one.
    pub async fn swap(self, value: Vec<u8>) -> Result<Option<Cas>> {
        let Cas {
            bucket,
            key,
            observed,
        } = self;
        if bucket
            .compare_and_swap(key.clone(), observed, value)
            .await?
        {
            Ok(None)
        } else {
            Ok(Some(Cas::new(bucket, key).await?))
        }
    }
}
