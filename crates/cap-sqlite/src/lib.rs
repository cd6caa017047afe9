//! The SQLite capability: `fermyon:spin/sqlite@2.0.0`, `spin:sqlite/sqlite@3.0.0` and, when the
//! engine has component-model concurrency, `spin:sqlite/sqlite@3.1.0` (Spin 4, spin-sdk 7: 3.0.0 plus
//! `async func` variants, `execute-async` streaming its rows). 3.1.0 is a superset, so with
//! concurrency it alone serves 3.0.x guests too (wasmtime links imports semver-compatibly).
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

/// `spin:sqlite/sqlite@3.1.0`.
mod bindings_v31 {
    wasmtime::component::bindgen!({
        path: ["../../wit/spin-sqlite@3.1.0"],
        inline: "
            package kiln:sqlite-host-v31;
            world host { import spin:sqlite/sqlite@3.1.0; }
        ",
        imports: { default: async | trappable },
        with: { "spin:sqlite/sqlite.connection": crate::db::Connection },
    });
}

/// The conversions between one interface version's types and [`db`]'s: every version has the same
/// `value`, `row-result`, `query-result` and `error` shapes.
macro_rules! conversions {
    ($v:ident, $from:ident, $to:ident, $error:ident, $result:ident) => {
        fn $from(v: $v::Value) -> Value {
            match v {
                $v::Value::Integer(i) => Value::Integer(i),
                $v::Value::Real(r) => Value::Real(r),
                $v::Value::Text(t) => Value::Text(t),
                $v::Value::Blob(b) => Value::Blob(b),
                $v::Value::Null => Value::Null,
            }
        }

        fn $to(v: Value) -> $v::Value {
            match v {
                Value::Integer(i) => $v::Value::Integer(i),
                Value::Real(r) => $v::Value::Real(r),
                Value::Text(t) => $v::Value::Text(t),
                Value::Blob(b) => $v::Value::Blob(b),
                Value::Null => $v::Value::Null,
            }
        }

        fn $error(e: DbError) -> $v::Error {
            match e {
                DbError::NoSuchDatabase => $v::Error::NoSuchDatabase,
                DbError::AccessDenied => $v::Error::AccessDenied,
                DbError::InvalidConnection => $v::Error::InvalidConnection,
                DbError::DatabaseFull => $v::Error::DatabaseFull,
                DbError::Io(s) => $v::Error::Io(s),
            }
        }

        fn $result(result: QueryResult) -> $v::QueryResult {
            $v::QueryResult {
                columns: result.columns,
                rows: result.rows.into_iter().map(|row| $v::RowResult { values: row.into_iter().map($to).collect() }).collect(),
            }
        }
    };
}

mod host_v31;

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
        let state = SqliteApp::new(app.state_dir, app.runtime_config).with_faults(kiln_app::BackendFaults::new(app, "sqlite"));
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
    if linker.engine().get_concurrency_support() {
        host_v31::link(linker)?;
    } else {
        v3::add_to_linker::<KilnState, HasSelf<SqliteInstance>>(linker, |s| {
            s.capability::<SqliteInstance>()
        })?;
    }
    Ok(())
}

/// The capability configured for one app: its databases (label → file and pool).
pub struct SqliteApp {
    databases: Arc<HashMap<String, Arc<Database>>>,
    faults: kiln_app::BackendFaults,
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
            faults: kiln_app::BackendFaults::default(),
        }
    }

    /// Reports database files that cannot be opened or are full to `faults`.
    pub fn with_faults(mut self, faults: kiln_app::BackendFaults) -> SqliteApp {
        self.faults = faults;
        self
    }

    /// The prepared state of a component granted `labels`.
    pub fn component_state<S: AsRef<str>>(&self, labels: &[S]) -> Arc<SqliteComponent> {
        Arc::new(SqliteComponent {
            allowed: Arc::new(labels.iter().map(|l| l.as_ref().to_string()).collect()),
            databases: self.databases.clone(),
            faults: self.faults.clone(),
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
    faults: kiln_app::BackendFaults,
}

impl SqliteComponent {
    pub fn instance(&self) -> SqliteInstance {
        SqliteInstance {
            allowed: self.allowed.clone(),
            databases: self.databases.clone(),
            table: ResourceTable::new(),
            open: 0,
            faults: self.faults.clone(),
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
    faults: kiln_app::BackendFaults,
}

impl SqliteInstance {
    async fn open(&mut self, label: String) -> Result<Resource<Connection>, DbError> {
        let db = self.database_to_open(&label)?;
        // A database file that cannot be opened is the host's fault, not the guest's.
        let conn = connect(db).await.inspect_err(|_| self.faults.report("embedded"))?;
        self.push(conn)
    }

    /// The database `label` names, if this instance may open one more connection to it.
    fn database_to_open(&self, label: &str) -> Result<Arc<Database>, DbError> {
        if !self.allowed.contains(label) {
            return Err(DbError::AccessDenied);
        }
        let db = self.databases.get(label).ok_or(DbError::NoSuchDatabase)?.clone();
        if self.open >= MAX_CONNECTIONS_PER_INSTANCE {
            return Err(DbError::Io(format!(
                "too many connections opened (at most {MAX_CONNECTIONS_PER_INSTANCE} per instance)"
            )));
        }
        Ok(db)
    }

    fn push(&mut self, conn: Connection) -> Result<Resource<Connection>, DbError> {
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
        let shared = self.shared(conn)?;
        let result = execute(shared, sql, params).await;
        if let Err(DbError::DatabaseFull) = &result {
            self.faults.report("embedded");
        }
        result
    }

    /// The SQLite connection behind `conn`, to use off the instance (on the blocking pool).
    fn shared(&mut self, conn: &Resource<Connection>) -> Result<db::SharedConnection, DbError> {
        self.table.get_mut(conn).map_err(|_| DbError::InvalidConnection)?.shared()
    }

    /// The rowid of `conn`'s most recent INSERT; 0 without one (or for a connection not open).
    fn last_insert_rowid(&self, conn: &Resource<Connection>) -> i64 {
        self.table.get(conn).map_or(0, Connection::last_insert_rowid)
    }

    /// Rows changed by `conn`'s most recent statement; 0 for a connection not open.
    fn changes(&self, conn: &Resource<Connection>) -> u64 {
        self.table.get(conn).map_or(0, Connection::changes)
    }

    fn close(&mut self, conn: Resource<Connection>) {
        if self.table.delete(conn).is_ok() {
            self.open = self.open.saturating_sub(1);
        }
    }
}

/// An idle pooled connection to `db`, else a new one.
async fn connect(db: Arc<Database>) -> Result<Connection, DbError> {
    match db.checkout_idle() {
        Some(conn) => Ok(conn),
        None => blocking(move || db.connect()).await,
    }
}

async fn execute(shared: db::SharedConnection, sql: String, params: Vec<Value>) -> Result<QueryResult, DbError> {
    blocking(move || db::execute(&shared, &sql, params, db::MAX_RESULT_BYTES)).await
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
        result.map(v2_result).map_err(v2_error)
    }

    async fn drop(&mut self, conn: Resource<Connection>) -> wasmtime::Result<()> {
        self.close(conn);
        Ok(())
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
        result.map(v3_result).map_err(v3_error)
    }

    async fn last_insert_rowid(&mut self, conn: Resource<Connection>) -> i64 {
        SqliteInstance::last_insert_rowid(self, &conn)
    }

    async fn changes(&mut self, conn: Resource<Connection>) -> u64 {
        SqliteInstance::changes(self, &conn)
    }

    async fn drop(&mut self, conn: Resource<Connection>) -> wasmtime::Result<()> {
        self.close(conn);
        Ok(())
    }
}

conversions!(v2, from_v2, to_v2, v2_error, v2_result);
conversions!(v3, from_v3, to_v3, v3_error, v3_result);
