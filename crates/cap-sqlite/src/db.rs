//! The SQLite side: where each database label lives, a small pool of connections per database,
//! running one guest statement, and running `--sqlite` statement batches.
//!
//! Everything here is blocking; the capability calls it from `spawn_blocking`.

use anyhow::{Context, Result, bail};
use kiln_runtime_config::{RuntimeConfig, SqliteDatabaseConfig};
use rusqlite::fallible_iterator::FallibleIterator;
use rusqlite::hooks::{AuthAction, AuthContext, Authorization};
use rusqlite::limits::Limit;
use rusqlite::types::{Value as SqlValue, ValueRef};
use rusqlite::{ErrorCode, OpenFlags};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};

/// The label every app has.
pub const DEFAULT_LABEL: &str = "default";
/// The file of the `default` database in the app's state directory (Spin's name).
pub const DEFAULT_DATABASE_FILE: &str = "sqlite_db.db";
/// Largest query result (bytes of values) a guest gets, as Spin's `MAX_HOST_BUFFERED_BYTES`.
pub(crate) const MAX_RESULT_BYTES: usize = 128 << 20;
/// Idle connections kept per database.
const MAX_IDLE_CONNECTIONS: usize = 8;

/// A value as the guest sees it (the same variants in every interface version).
#[derive(Clone, Debug, PartialEq)]
pub(crate) enum Value {
    Integer(i64),
    Real(f64),
    Text(String),
    Blob(Vec<u8>),
    Null,
}

impl Value {
    fn size(&self) -> usize {
        std::mem::size_of::<Value>()
            + match self {
                Value::Text(t) => t.len(),
                Value::Blob(b) => b.len(),
                _ => 0,
            }
    }
}

#[derive(Debug, Default, PartialEq)]
pub(crate) struct QueryResult {
    pub columns: Vec<String>,
    pub rows: Vec<Vec<Value>>,
}

/// The interface's error variants, version-neutral.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum DbError {
    NoSuchDatabase,
    AccessDenied,
    InvalidConnection,
    DatabaseFull,
    Io(String),
}

impl From<rusqlite::Error> for DbError {
    fn from(e: rusqlite::Error) -> DbError {
        match &e {
            rusqlite::Error::SqliteFailure(f, _) if f.code == ErrorCode::DiskFull => {
                DbError::DatabaseFull
            }
            _ => DbError::Io(e.to_string()),
        }
    }
}

/// Where database `label` lives: the runtime config's `path` (relative to the runtime config
/// file's directory), else — for `default`, and for configured labels without a path —
/// a file in the state directory. `None`: the label is neither `default` nor configured.
pub fn database_path(
    label: &str,
    state_dir: &Path,
    runtime_config: &RuntimeConfig,
) -> Option<PathBuf> {
    match runtime_config.sqlite_databases.get(label) {
        Some(SqliteDatabaseConfig::Embedded { path: Some(path) }) => {
            let base = runtime_config.path.as_deref().and_then(Path::parent);
            Some(match base {
                Some(base) if path.is_relative() => base.join(path),
                _ => path.clone(),
            })
        }
        Some(SqliteDatabaseConfig::Embedded { path: None }) if label != DEFAULT_LABEL => {
            Some(state_dir.join(format!("sqlite_db_{label}.db")))
        }
        _ if label == DEFAULT_LABEL => Some(state_dir.join(DEFAULT_DATABASE_FILE)),
        _ => None,
    }
}

/// One database of an app: its file and its idle connections.
pub(crate) struct Database {
    label: String,
    path: PathBuf,
    idle: Mutex<Vec<rusqlite::Connection>>,
}

impl Database {
    pub(crate) fn new(label: String, path: PathBuf) -> Database {
        Database {
            label,
            path,
            idle: Mutex::new(Vec::new()),
        }
    }

    pub(crate) fn path(&self) -> &Path {
        &self.path
    }

    /// An idle connection, if there is one (no I/O).
    pub(crate) fn checkout_idle(self: &Arc<Self>) -> Option<Connection> {
        let conn = self.idle.lock().ok()?.pop()?;
        Some(Connection::new(self.clone(), conn))
    }

    /// Opens a new connection (blocking: creates the directory and the file if needed).
    pub(crate) fn connect(self: &Arc<Self>) -> Result<Connection, DbError> {
        let conn = open_file(&self.path)
            .map_err(|e| DbError::Io(format!("cannot open database `{}`: {e:#}", self.label)))?;
        Ok(Connection::new(self.clone(), conn))
    }

    fn give_back(&self, conn: rusqlite::Connection) {
        if let Ok(mut idle) = self.idle.lock()
            && idle.len() < MAX_IDLE_CONNECTIONS
        {
            idle.push(conn);
        }
    }
}

/// Opens (creating if needed) a database file with Kiln's settings: WAL (readers never wait for
/// the writer), a busy timeout, no `ATTACH` (a guest must not reach other files), and an authorizer
/// that marks the connection as carrying session state (PRAGMAs, temp objects) so it is not reused.
fn open_file(path: &Path) -> Result<rusqlite::Connection> {
    if let Some(parent) = path.parent()
        && !parent.as_os_str().is_empty()
    {
        std::fs::create_dir_all(parent)
            .with_context(|| format!("cannot create directory {}", parent.display()))?;
    }
    let flags = OpenFlags::SQLITE_OPEN_READ_WRITE
        | OpenFlags::SQLITE_OPEN_CREATE
        | OpenFlags::SQLITE_OPEN_NO_MUTEX;
    let conn = rusqlite::Connection::open_with_flags(path, flags)
        .with_context(|| format!("cannot open {}", path.display()))?;
    conn.busy_timeout(std::time::Duration::from_secs(5))?;
    // `journal_mode` answers with a row, so it cannot go through `execute`.
    let _mode: String = conn.query_row("PRAGMA journal_mode = WAL", [], |row| row.get(0))?;
    conn.set_limit(Limit::SQLITE_LIMIT_ATTACHED, 0)?;
    Ok(conn)
}

/// A connection checked out of its database's pool by one guest `open`. Dropping it returns the
/// SQLite connection to the pool when it is clean: no open transaction and no session state.
/// A SQLite connection that blocking tasks can take turns with.
pub(crate) type SharedConnection = Arc<Mutex<rusqlite::Connection>>;

pub struct Connection {
    db: Arc<Database>,
    conn: Option<Arc<Mutex<rusqlite::Connection>>>,
    /// Set by the authorizer when a statement changes per-connection state.
    tainted: Arc<AtomicBool>,
    /// Whether this handle ran a statement: `changes`/`last-insert-rowid` are 0 before that, not
    /// whatever the connection's previous user left behind.
    used: bool,
}

impl Connection {
    fn new(db: Arc<Database>, mut conn: rusqlite::Connection) -> Connection {
        let tainted = Arc::new(AtomicBool::new(false));
        let flag = tainted.clone();
        // A failure here only loses the pool's hygiene check; make it a tainted connection then.
        if conn
            .authorizer(Some(move |ctx: AuthContext<'_>| authorize(&flag, ctx)))
            .is_err()
        {
            tainted.store(true, Ordering::Relaxed);
        }
        Connection {
            db,
            conn: Some(Arc::new(Mutex::new(conn))),
            tainted,
            used: false,
        }
    }

    /// The shared SQLite connection, to move into a blocking task.
    pub(crate) fn shared(&mut self) -> Result<SharedConnection, DbError> {
        self.used = true;
        self.conn.clone().ok_or(DbError::InvalidConnection)
    }

    pub(crate) fn last_insert_rowid(&self) -> i64 {
        self.with_conn(|c| c.last_insert_rowid()).unwrap_or(0)
    }

    pub(crate) fn changes(&self) -> u64 {
        self.with_conn(|c| c.changes()).unwrap_or(0)
    }

    fn with_conn<T>(&self, f: impl FnOnce(&rusqlite::Connection) -> T) -> Option<T> {
        if !self.used {
            return None;
        }
        // `try_lock`: a statement still running on a cancelled task must not block the caller.
        let conn = self.conn.as_ref()?;
        let guard = conn.try_lock().ok()?;
        Some(f(&guard))
    }
}

impl Drop for Connection {
    fn drop(&mut self) {
        let Some(shared) = self.conn.take() else {
            return;
        };
        // Still shared: a blocking task (of a cancelled call) holds it; let it close there.
        let Ok(mutex) = Arc::try_unwrap(shared) else {
            return;
        };
        let Ok(conn) = mutex.into_inner() else { return };
        if self.tainted.load(Ordering::Relaxed) || !conn.is_autocommit() {
            return; // closing rolls back and drops the session state
        }
        // Its cached statements stay: they were all authorized as clean on this connection.
        self.db.give_back(conn);
    }
}

fn authorize(tainted: &AtomicBool, ctx: AuthContext<'_>) -> Authorization {
    match ctx.action {
        AuthAction::Attach { .. } | AuthAction::Detach { .. } => return Authorization::Deny,
        AuthAction::Pragma { .. }
        | AuthAction::CreateTempTable { .. }
        | AuthAction::CreateTempIndex { .. }
        | AuthAction::CreateTempTrigger { .. }
        | AuthAction::CreateTempView { .. }
        | AuthAction::CreateVtable { .. } => tainted.store(true, Ordering::Relaxed),
        _ => {}
    }
    Authorization::Allow
}

/// Runs one statement with positional parameters and collects its rows (blocking).
pub(crate) fn execute(
    conn: &Mutex<rusqlite::Connection>,
    sql: &str,
    params: Vec<Value>,
    max_bytes: usize,
) -> Result<QueryResult, DbError> {
    let conn = conn.lock().map_err(|_| DbError::InvalidConnection)?;
    let mut stmt = conn.prepare_cached(sql)?;
    let columns: Vec<String> = stmt.column_names().map(str::to_owned).collect();
    let expected = stmt.parameter_count();
    if params.len() != expected {
        return Err(DbError::Io(format!(
            "the statement has {expected} parameter(s) but {} value(s) were given",
            params.len()
        )));
    }
    let params = params.into_iter().map(|v| match v {
        Value::Integer(i) => SqlValue::Integer(i),
        Value::Real(r) => SqlValue::Real(r),
        Value::Text(t) => SqlValue::Text(t),
        Value::Blob(b) => SqlValue::Blob(b),
        Value::Null => SqlValue::Null,
    });
    let mut rows = stmt.query(rusqlite::params_from_iter(params))?;
    let mut result = QueryResult {
        columns,
        rows: Vec::new(),
    };
    let width = result.columns.len();
    let mut bytes = 0usize;
    while let Some(row) = rows.next()? {
        let mut values = Vec::with_capacity(width);
        for i in 0..width {
            let value = match row.get_ref(i)? {
                ValueRef::Null => Value::Null,
                ValueRef::Integer(i) => Value::Integer(i),
                ValueRef::Real(r) => Value::Real(r),
                // SQLite does not check that TEXT is UTF-8; never fail (or panic) on it.
                ValueRef::Text(t) => Value::Text(String::from_utf8_lossy(t).into_owned()),
                ValueRef::Blob(b) => Value::Blob(b.to_vec()),
            };
            bytes += value.size();
            values.push(value);
        }
        if bytes > max_bytes {
            return Err(DbError::Io(format!(
                "query result exceeds limit of {max_bytes} bytes"
            )));
        }
        result.rows.push(values);
    }
    Ok(result)
}

/// Runs every statement of `sql` in order, reading and discarding rows (so `SELECT`s are fine).
fn run_batch(conn: &rusqlite::Connection, sql: &str) -> rusqlite::Result<()> {
    let mut batch = rusqlite::Batch::new(conn, sql);
    while let Some(mut stmt) = batch.next()? {
        let mut rows = stmt.raw_query();
        while rows.next()?.is_some() {}
    }
    Ok(())
}

/// Runs the statements of one `kiln up --sqlite` value before the app serves, as Spin's `--sqlite`:
///
/// - `@path` runs the statements in file `path` against the `default` database;
/// - `@path:label` runs them against database `label` (`default` or configured in the runtime
///   config, else an error);
/// - anything else is SQL (one or more statements) run against the `default` database.
///
/// `state_dir` and `runtime_config` must be the ones the app is loaded with, so the statements
/// reach the files the guests use. Blocking; call it once per `--sqlite` value, in order.
pub fn run_statements(state_dir: &Path, runtime_config: &RuntimeConfig, sql: &str) -> Result<()> {
    let (label, statements, origin) = match sql.strip_prefix('@') {
        Some(spec) => {
            let (file, label) = parse_file_and_label(spec)?;
            let text = std::fs::read_to_string(file)
                .with_context(|| format!("cannot read SQL statements from `{file}`"))?;
            (label, text, format!("from `{file}` "))
        }
        None => (DEFAULT_LABEL, sql.to_string(), String::new()),
    };
    let Some(path) = database_path(label, state_dir, runtime_config) else {
        bail!(
            "`--sqlite @…:{label}`: there is no SQLite database `{label}`; only `default` exists \
             unless the runtime config defines `[sqlite_database.{label}]`"
        );
    };
    let conn =
        open_file(&path).with_context(|| format!("cannot open SQLite database `{label}`"))?;
    // The message carries SQLite's own (`near "X": syntax error`) and, for inline SQL, the SQL,
    // so it stands alone wherever the caller prints it.
    run_batch(&conn, &statements).map_err(|e| {
        if origin.is_empty() {
            anyhow::anyhow!("`--sqlite {sql}` failed against SQLite database `{label}`: {e}")
        } else {
            anyhow::anyhow!("SQL statements {origin}failed against SQLite database `{label}`: {e}")
        }
    })?;
    tracing::info!(database = label, file = %path.display(), "ran --sqlite statements {origin}");
    Ok(())
}

/// `file` or `file:label` (Spin's syntax), trimmed; empty parts are errors.
fn parse_file_and_label(spec: &str) -> Result<(&str, &str)> {
    let spec = spec.trim();
    if spec.is_empty() {
        bail!("`--sqlite @`: the file name is missing");
    }
    match spec.split_once(':') {
        Some((file, label)) => {
            let (file, label) = (file.trim(), label.trim());
            if file.is_empty() {
                bail!("`--sqlite @{spec}`: the file name is missing");
            }
            if label.is_empty() {
                bail!("`--sqlite @{spec}`: the database label after `:` is missing");
            }
            Ok((file, label))
        }
        None => Ok((spec, DEFAULT_LABEL)),
    }
}

#[cfg(test)]
pub(crate) fn parse_file_and_label_for_test(spec: &str) -> Result<(&str, &str)> {
    parse_file_and_label(spec)
}
