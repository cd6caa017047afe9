//! The embedded backend: one SQLite file per store, in Spin's table layout
//! (`spin_key_value(store, key, value)`, the label in `store`), so a file Spin wrote can be served
//! with `path = "…"`.
//!
//! Durability: WAL journal with `synchronous = FULL`, so a write is on disk before the guest's call
//! returns and survives `kill -9` (and power loss). Every statement runs on the store's own thread
//! (SQLite calls block), fed through a channel; the async side only waits for the reply. Increment
//! and compare-and-swap run inside one `BEGIN IMMEDIATE` transaction, which takes SQLite's write
//! lock before reading, so they are atomic even against other connections or processes using the
//! same file.

use crate::store::{self, Error, KeyPage, PAGE_SIZE, Result, Store};
use anyhow::Context as _;
use async_trait::async_trait;
use kiln_app::BackendFaults;
use rusqlite::{Connection, OptionalExtension, TransactionBehavior, params};
use std::panic::AssertUnwindSafe;
use std::path::{Path, PathBuf};
use std::sync::mpsc;
use std::time::Duration;

type Job = Box<dyn FnOnce(&mut Connection) + Send>;

/// How long a statement waits for another connection's write lock before failing.
const BUSY_TIMEOUT: Duration = Duration::from_secs(10);

pub struct EmbeddedStore {
    label: String,
    path: PathBuf,
    jobs: mpsc::Sender<Job>,
    faults: BackendFaults,
}

impl EmbeddedStore {
    /// Opens (creating if needed) the file at `path` and serves `label`'s rows in it.
    pub fn open(path: &Path, label: &str) -> anyhow::Result<EmbeddedStore> {
        if let Some(dir) = path.parent() {
            std::fs::create_dir_all(dir)
                .with_context(|| format!("cannot create directory {}", dir.display()))?;
        }
        let mut conn = open_connection(path).with_context(|| {
            format!(
                "cannot open key-value store `{label}` at {}",
                path.display()
            )
        })?;
        let (jobs, receiver) = mpsc::channel::<Job>();
        std::thread::Builder::new()
            .name(format!("kiln-kv-{label}"))
            .spawn(move || {
                // Runs until every sender (every handle to this store) is gone.
                while let Ok(job) = receiver.recv() {
                    // A job reports its own result; a panic inside one must not stop the store.
                    let _ = std::panic::catch_unwind(AssertUnwindSafe(|| job(&mut conn)));
                }
            })
            .context("cannot start the key-value store thread")?;
        Ok(EmbeddedStore {
            label: label.to_string(),
            path: path.to_path_buf(),
            jobs,
            faults: BackendFaults::default(),
        })
    }

    /// Reports the store's failures (I/O, a full disk) to `faults`.
    pub fn with_faults(mut self, faults: BackendFaults) -> EmbeddedStore {
        self.faults = faults;
        self
    }

    /// Runs `f` on the store's thread and waits for its result.
    async fn run<T: Send + 'static>(
        &self,
        f: impl FnOnce(&mut Connection, &str) -> rusqlite::Result<T> + Send + 'static,
    ) -> Result<T> {
        self.run_checked(move |conn, label| f(conn, label).map_err(sql_error))
            .await
    }

    async fn run_checked<T: Send + 'static>(
        &self,
        f: impl FnOnce(&mut Connection, &str) -> Result<T> + Send + 'static,
    ) -> Result<T> {
        let (reply, result) = tokio::sync::oneshot::channel();
        let label = self.label.clone();
        let job: Job = Box::new(move |conn| {
            let _ = reply.send(f(conn, &label));
        });
        let stopped = || Error::Unavailable(format!("key-value store `{}` has stopped", self.label));
        self.jobs.send(job).map_err(|_| stopped())?;
        let result = result.await.map_err(|_| stopped())?;
        if let Err(Error::Unavailable(_)) = &result {
            self.faults.report("embedded");
        }
        result
    }
}

fn open_connection(path: &Path) -> anyhow::Result<Connection> {
    let conn = Connection::open(path)?;
    conn.busy_timeout(BUSY_TIMEOUT)?;
    let mode: String =
        conn.pragma_update_and_check(None, "journal_mode", "WAL", |row| row.get(0))?;
    if !mode.eq_ignore_ascii_case("wal") {
        anyhow::bail!("the file does not support WAL journaling (journal mode is {mode})");
    }
    conn.pragma_update(None, "synchronous", "FULL")?;
    conn.execute(
        "CREATE TABLE IF NOT EXISTS spin_key_value (
            store TEXT NOT NULL,
            key   TEXT NOT NULL,
            value BLOB NOT NULL,
            PRIMARY KEY (store, key)
        )",
        [],
    )?;
    Ok(conn)
}

fn sql_error(e: rusqlite::Error) -> Error {
    tracing::warn!(error = %e, "key-value store error");
    Error::Unavailable(format!("key-value store error: {e}"))
}

const GET: &str = "SELECT value FROM spin_key_value WHERE store = ?1 AND key = ?2";
const SET: &str = "INSERT INTO spin_key_value (store, key, value) VALUES (?1, ?2, ?3)
                   ON CONFLICT (store, key) DO UPDATE SET value = excluded.value";
const DELETE: &str = "DELETE FROM spin_key_value WHERE store = ?1 AND key = ?2";

fn get(conn: &Connection, label: &str, key: &str) -> rusqlite::Result<Option<Vec<u8>>> {
    conn.prepare_cached(GET)?
        .query_row(params![label, key], |row| row.get(0))
        .optional()
}

fn set(conn: &Connection, label: &str, key: &str, value: &[u8]) -> rusqlite::Result<()> {
    conn.prepare_cached(SET)?
        .execute(params![label, key, value])
        .map(drop)
}

#[async_trait]
impl Store for EmbeddedStore {
    fn describe(&self) -> String {
        format!("SQLite file {}", self.path.display())
    }

    async fn get(&self, key: String) -> Result<Option<Vec<u8>>> {
        self.run(move |conn, label| get(conn, label, &key)).await
    }

    async fn set(&self, key: String, value: Vec<u8>) -> Result<()> {
        self.run(move |conn, label| set(conn, label, &key, &value))
            .await
    }

    async fn delete(&self, key: String) -> Result<()> {
        self.run(move |conn, label| {
            conn.prepare_cached(DELETE)?
                .execute(params![label, key])
                .map(drop)
        })
        .await
    }

    async fn exists(&self, key: String) -> Result<bool> {
        self.run(move |conn, label| {
            conn.prepare_cached("SELECT 1 FROM spin_key_value WHERE store = ?1 AND key = ?2")?
                .exists(params![label, key])
        })
        .await
    }

    /// Pages follow the table's rowid: the cursor is the last rowid returned, so a page is an
    /// index seek however far into the store it starts.
    async fn list_keys(&self, cursor: Option<u64>) -> Result<KeyPage> {
        let after = match cursor {
            None => i64::MIN,
            Some(c) => i64::try_from(c).unwrap_or(i64::MAX),
        };
        self.run(move |conn, label| {
            let mut statement = conn.prepare_cached(
                "SELECT rowid, key FROM spin_key_value WHERE store = ?1 AND rowid > ?2
                 ORDER BY rowid LIMIT ?3",
            )?;
            let rows = statement
                .query_map(params![label, after, PAGE_SIZE as i64 + 1], |row| {
                    Ok((row.get::<_, i64>(0)?, row.get::<_, String>(1)?))
                })?
                .collect::<rusqlite::Result<Vec<_>>>()?;
            let more = rows.len() > PAGE_SIZE;
            let rows = &rows[..rows.len().min(PAGE_SIZE)];
            let cursor = match (more, rows.last()) {
                (true, Some((rowid, _))) => u64::try_from(*rowid).ok(),
                _ => None,
            };
            Ok(KeyPage {
                keys: rows.iter().map(|(_, k)| k.clone()).collect(),
                cursor,
            })
        })
        .await
    }

    async fn increment(&self, key: String, delta: i64) -> Result<i64> {
        self.run_checked(move |conn, label| {
            let tx = conn
                .transaction_with_behavior(TransactionBehavior::Immediate)
                .map_err(sql_error)?;
            let current = match get(&tx, label, &key).map_err(sql_error)? {
                Some(value) => store::parse_counter(&key, &value)?,
                None => 0,
            };
            let new = store::add_counter(&key, current, delta)?;
            set(&tx, label, &key, new.to_string().as_bytes()).map_err(sql_error)?;
            tx.commit().map_err(sql_error)?;
            Ok(new)
        })
        .await
    }

    async fn compare_and_swap(
        &self,
        key: String,
        expected: Option<Vec<u8>>,
        value: Vec<u8>,
    ) -> Result<bool> {
        self.run(move |conn, label| {
            let tx = conn.transaction_with_behavior(TransactionBehavior::Immediate)?;
            if get(&tx, label, &key)? != expected {
                // Dropping the transaction rolls it back.
                return Ok(false);
            }
            set(&tx, label, &key, &value)?;
            tx.commit()?;
            Ok(true)
        })
        .await
    }

    async fn get_many(&self, keys: Vec<String>) -> Result<Vec<Option<Vec<u8>>>> {
        self.run(move |conn, label| {
            // One read transaction: every value from the same snapshot.
            let tx = conn.transaction()?;
            let values = keys
                .iter()
                .map(|key| get(&tx, label, key))
                .collect::<rusqlite::Result<Vec<_>>>()?;
            tx.commit()?;
            Ok(values)
        })
        .await
    }

    async fn set_many(&self, entries: Vec<(String, Vec<u8>)>) -> Result<()> {
        self.run(move |conn, label| {
            // One transaction: one sync to disk for the whole batch, and all or nothing.
            let tx = conn.transaction_with_behavior(TransactionBehavior::Immediate)?;
            for (key, value) in &entries {
                set(&tx, label, key, value)?;
            }
            tx.commit()
        })
        .await
    }

    async fn delete_many(&self, keys: Vec<String>) -> Result<()> {
        self.run(move |conn, label| {
            let tx = conn.transaction_with_behavior(TransactionBehavior::Immediate)?;
            for key in &keys {
                tx.prepare_cached(DELETE)?.execute(params![label, key])?;
            }
            tx.commit()
        })
        .await
    }
}
