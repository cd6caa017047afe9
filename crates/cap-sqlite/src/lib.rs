//! The SQLite capability: `fermyon:spin/sqlite@2.0.0` and `spin:sqlite/sqlite@3.0.0`.
//!
//! Grants come from each component's `sqlite_databases`. The `default` database always exists: an
//! embedded file `<state_dir>/sqlite_db.db` (Spin's name) unless the runtime config gives
//! `[sqlite_database.default] path`. Any other label needs a `[sqlite_database.<label>]` entry.
//! Opening a label the component was not granted → `access-denied` (whether or not it exists);
//! granted but not defined → `no-such-database`.
//!
//! Each `open` checks a connection out of a small per-database pool (a new one is opened when none
//! is idle); dropping the guest's connection returns it when it is clean. All SQLite work runs on
//! tokio's blocking pool, never on the executor.
//!
//! [`run_statements`] is the hook for `kiln up --sqlite "SQL"` / `--sqlite @file[:label]`.

mod db;
#[cfg(test)]
mod tests;

pub use db::{DEFAULT_DATABASE_FILE, DEFAULT_LABEL, database_path, run_statements};

use anyhow::Result;
use db::{Connection, Database, DbError, QueryResult, Value};
use kiln_app::{AppCapability, AppContext, Capability, ComponentContext};
use kiln_engine::{ComponentCapability, KilnState, LinkFn};
use kiln_runtime_config::RuntimeConfig;
use std::any::Any;
use std::collections::{HashMap, HashSet};
use std::path::Path;
use std::sync::Arc;
use wasmtime::component::{HasSelf, Linker, Resource, ResourceTable};

mod bindings {
    wasmtime::component::bindgen!({
        path: ["../../wit/spin@2.0.0", "../../wit/spin-sqlite@3.0.0"],
        inline: "
            package kiln:sqlite-host;
            world host {
                import fermyon:spin/sqlite@2.0.0;
                import spin:sqlite/sqlite@3.0.0;
            }
        ",
        imports: { default: async },
        with: {
            "fermyon:spin/sqlite.connection": crate::db::Connection,
            "spin:sqlite/sqlite.connection": crate::db::Connection,
        },
    });
}

use bindings::fermyon::spin::sqlite as v2;
use bindings::spin::sqlite::sqlite as v3;

/// Most connections one instance may hold open at once (Spin allows 256).
const MAX_CONNECTIONS_PER_INSTANCE: usize = 256;

/// The SQLite capability (see the crate docs).
pub struct Sqlite;

impl Capability for Sqlite {
    fn name(&self) -> &'static str {
        "sqlite"
    }

    fn link(&self) -> LinkFn {
        link
    }

    fn configure_app(&self, app: &AppContext<'_>) -> Result<Box<dyn AppCapability>> {
        let state = SqliteApp::new(app.state_dir, app.runtime_config);
        for component in app.manifest.components.values() {
            for label in &component.sqlite_databases {
                if !state.databases.contains_key(label) {
                    tracing::warn!(
                        component = %component.id,
                        "component `{}` is granted SQLite database `{label}`, which is neither \
                         `default` nor defined in the runtime config; opening it will fail with \
                         `no-such-database`",
                        component.id
                    );
                }
            }
        }
        Ok(Box::new(state))
    }
}

fn link(linker: &mut Linker<KilnState>) -> Result<()> {
    v2::add_to_linker::<KilnState, HasSelf<SqliteInstance>>(linker, |s| {
        s.capability::<SqliteInstance>()
    })?;
    v3::add_to_linker::<KilnState, HasSelf<SqliteInstance>>(linker, |s| {
        s.capability::<SqliteInstance>()
    })?;
    Ok(())
}

/// The capability configured for one app: its databases (label → file and pool).
pub struct SqliteApp {
    databases: Arc<HashMap<String, Arc<Database>>>,
}

impl SqliteApp {
    /// `default` plus every label the runtime config defines. Touches no file.
    pub fn new(state_dir: &Path, runtime_config: &RuntimeConfig) -> SqliteApp {
        let labels = std::iter::once(DEFAULT_LABEL.to_string())
            .chain(runtime_config.sqlite_databases.keys().cloned());
        let databases = labels
            .filter_map(|label| {
                let path = database_path(&label, state_dir, runtime_config)?;
                Some((label.clone(), Arc::new(Database::new(label, path))))
            })
            .collect();
        SqliteApp {
            databases: Arc::new(databases),
        }
    }

    /// The prepared state of a component granted `labels`.
    pub fn component_state<S: AsRef<str>>(&self, labels: &[S]) -> Arc<SqliteComponent> {
        Arc::new(SqliteComponent {
            allowed: Arc::new(labels.iter().map(|l| l.as_ref().to_string()).collect()),
            databases: self.databases.clone(),
        })
    }

    /// Where database `label` lives, if it exists.
    pub fn database_file(&self, label: &str) -> Option<&Path> {
        self.databases.get(label).map(|db| db.path())
    }
}

impl AppCapability for SqliteApp {
    fn component(&self, component: &ComponentContext<'_>) -> Result<Arc<dyn ComponentCapability>> {
        Ok(self.component_state(&component.component.sqlite_databases))
    }
}

/// One component's grants.
pub struct SqliteComponent {
    allowed: Arc<HashSet<String>>,
    databases: Arc<HashMap<String, Arc<Database>>>,
}

impl SqliteComponent {
    pub fn instance(&self) -> SqliteInstance {
        SqliteInstance {
            allowed: self.allowed.clone(),
            databases: self.databases.clone(),
            table: ResourceTable::new(),
            open: 0,
        }
    }
}

impl ComponentCapability for SqliteComponent {
    fn instance_state(&self) -> Box<dyn Any + Send> {
        Box::new(self.instance())
    }
}

/// One instance's SQLite state: its grants and its open connections.
pub struct SqliteInstance {
    allowed: Arc<HashSet<String>>,
    databases: Arc<HashMap<String, Arc<Database>>>,
    table: ResourceTable,
    open: usize,
}

impl SqliteInstance {
    async fn open(&mut self, label: String) -> Result<Resource<Connection>, DbError> {
        if !self.allowed.contains(&label) {
            return Err(DbError::AccessDenied);
        }
        let db = self
            .databases
            .get(&label)
            .ok_or(DbError::NoSuchDatabase)?
            .clone();
        if self.open >= MAX_CONNECTIONS_PER_INSTANCE {
            return Err(DbError::Io(format!(
                "too many connections opened (at most {MAX_CONNECTIONS_PER_INSTANCE} per instance)"
            )));
        }
        let conn = match db.checkout_idle() {
            Some(conn) => conn,
            None => blocking(move || db.connect()).await?,
        };
        let resource = self
            .table
            .push(conn)
            .map_err(|e| DbError::Io(format!("cannot store the connection: {e}")))?;
        self.open += 1;
        Ok(resource)
    }

    async fn execute(
        &mut self,
        conn: &Resource<Connection>,
        sql: String,
        params: Vec<Value>,
    ) -> Result<QueryResult, DbError> {
        let shared = self
            .table
            .get_mut(conn)
            .map_err(|_| DbError::InvalidConnection)?
            .shared()?;
        blocking(move || db::execute(&shared, &sql, params, db::MAX_RESULT_BYTES)).await
    }

    fn connection(&self, conn: &Resource<Connection>) -> Option<&Connection> {
        self.table.get(conn).ok()
    }

    fn close(&mut self, conn: Resource<Connection>) {
        if self.table.delete(conn).is_ok() {
            self.open = self.open.saturating_sub(1);
        }
    }
}

async fn blocking<T: Send + 'static>(
    f: impl FnOnce() -> Result<T, DbError> + Send + 'static,
) -> Result<T, DbError> {
    tokio::task::spawn_blocking(f)
        .await
        .unwrap_or_else(|e| Err(DbError::Io(format!("SQLite task failed: {e}"))))
}

// ---- fermyon:spin/sqlite@2.0.0 ----

impl v2::Host for SqliteInstance {}

impl v2::HostConnection for SqliteInstance {
    async fn open(&mut self, database: String) -> Result<Resource<Connection>, v2::Error> {
        SqliteInstance::open(self, database).await.map_err(v2_error)
    }

    async fn execute(
        &mut self,
        conn: Resource<Connection>,
        statement: String,
        parameters: Vec<v2::Value>,
    ) -> Result<v2::QueryResult, v2::Error> {
        let params = parameters.into_iter().map(from_v2).collect();
        let result = SqliteInstance::execute(self, &conn, statement, params).await;
        let result = result.map_err(v2_error)?;
        Ok(v2::QueryResult {
            columns: result.columns,
            rows: result
                .rows
                .into_iter()
                .map(|row| v2::RowResult {
                    values: row.into_iter().map(to_v2).collect(),
                })
                .collect(),
        })
    }

    async fn drop(&mut self, conn: Resource<Connection>) -> wasmtime::Result<()> {
        self.close(conn);
        Ok(())
    }
}

fn v2_error(e: DbError) -> v2::Error {
    match e {
        DbError::NoSuchDatabase => v2::Error::NoSuchDatabase,
        DbError::AccessDenied => v2::Error::AccessDenied,
        DbError::InvalidConnection => v2::Error::InvalidConnection,
        DbError::DatabaseFull => v2::Error::DatabaseFull,
        DbError::Io(s) => v2::Error::Io(s),
    }
}

fn from_v2(v: v2::Value) -> Value {
    match v {
        v2::Value::Integer(i) => Value::Integer(i),
        v2::Value::Real(r) => Value::Real(r),
        v2::Value::Text(t) => Value::Text(t),
        v2::Value::Blob(b) => Value::Blob(b),
        v2::Value::Null => Value::Null,
    }
}

fn to_v2(v: Value) -> v2::Value {
    match v {
        Value::Integer(i) => v2::Value::Integer(i),
        Value::Real(r) => v2::Value::Real(r),
        Value::Text(t) => v2::Value::Text(t),
        Value::Blob(b) => v2::Value::Blob(b),
        Value::Null => v2::Value::Null,
    }
}

// ---- spin:sqlite/sqlite@3.0.0 ----

impl v3::Host for SqliteInstance {}

impl v3::HostConnection for SqliteInstance {
    async fn open(&mut self, database: String) -> Result<Resource<Connection>, v3::Error> {
        SqliteInstance::open(self, database).await.map_err(v3_error)
    }

    async fn execute(
        &mut self,
        conn: Resource<Connection>,
        statement: String,
        parameters: Vec<v3::Value>,
    ) -> Result<v3::QueryResult, v3::Error> {
        let params = parameters.into_iter().map(from_v3).collect();
        let result = SqliteInstance::execute(self, &conn, statement, params).await;
        let result = result.map_err(v3_error)?;
        Ok(v3::QueryResult {
            columns: result.columns,
            rows: result
                .rows
                .into_iter()
                .map(|row| v3::RowResult {
                    values: row.into_iter().map(to_v3).collect(),
                })
                .collect(),
        })
    }

    async fn last_insert_rowid(&mut self, conn: Resource<Connection>) -> i64 {
        self.connection(&conn)
            .map_or(0, Connection::last_insert_rowid)
    }

    async fn changes(&mut self, conn: Resource<Connection>) -> u64 {
        self.connection(&conn).map_or(0, Connection::changes)
    }

    async fn drop(&mut self, conn: Resource<Connection>) -> wasmtime::Result<()> {
        self.close(conn);
        Ok(())
    }
}

fn v3_error(e: DbError) -> v3::Error {
    match e {
        DbError::NoSuchDatabase => v3::Error::NoSuchDatabase,
        DbError::AccessDenied => v3::Error::AccessDenied,
        DbError::InvalidConnection => v3::Error::InvalidConnection,
        DbError::DatabaseFull => v3::Error::DatabaseFull,
        DbError::Io(s) => v3::Error::Io(s),
    }
}

fn from_v3(v: v3::Value) -> Value {
    match v {
        v3::Value::Integer(i) => Value::Integer(i),
        v3::Value::Real(r) => Value::Real(r),
        v3::Value::Text(t) => Value::Text(t),
        v3::Value::Blob(b) => Value::Blob(b),
        v3::Value::Null => Value::Null,
    }
}

fn to_v3(v: Value) -> v3::Value {
    match v {
        Value::Integer(i) => v3::Value::Integer(i),
        Value::Real(r) => v3::Value::Real(r),
        Value::Text(t) => v3::Value::Text(t),
        Value::Blob(b) => v3::Value::Blob(b),
        Value::Null => v3::Value::Null,
    }
}
