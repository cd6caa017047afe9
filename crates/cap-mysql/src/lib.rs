//! The outbound MySQL capability: `fermyon:spin/mysql@2.0.0` (spin-sdk 5's `mysql`) and
//! `spin:mysql/mysql@3.0.0` (Spin 4, spin-sdk 7: `async func`s, rows as a stream; linked only when
//! the engine has component-model concurrency).
//!
//! `open(address)` takes a `mysql://user:password@host:port/database` URL (mysql_async's options,
//! e.g. `?require_ssl=true` for TLS). It must be allowed by the component's
//! `allowed_outbound_hosts` as `mysql://host:port` (port 3306 when left out); anything else is
//! `connection-failed` saying so, before any connection is made.
//!
//! Connections come from a pool per app and address, and go back to it (reset by the driver) when
//! the guest drops them. Statements with parameters run as prepared statements, others as text.
//! Integer, floating, string and binary columns are read as the WIT's values (`TINYINT(1)` is an
//! `int8`, as in MySQL; `DECIMAL`, `JSON`, `ENUM` and `SET` as their text); dates, times and
//! other types are `unsupported`.

mod ops;
mod host_v3;
#[cfg(test)]
mod tests;

use anyhow::Result;
use kiln_app::{AppCapability, AppContext, Capability, ComponentContext};
use kiln_engine::{ComponentCapability, KilnState, LinkFn};
use kiln_outbound::AllowedHosts;
use ops::{DataType, DbError, DbValue, Param, Pools, RowSet};
use std::any::Any;
use std::sync::Arc;
use std::time::Duration;
use wasmtime::component::{HasSelf, Linker, Resource, ResourceTable};

mod bindings {
    wasmtime::component::bindgen!({
        path: ["../../wit/spin@2.0.0"],
        inline: "
            package kiln:mysql-host;
            world host {
                import fermyon:spin/mysql@2.0.0;
            }
        ",
        imports: { default: async },
        with: {
            "fermyon:spin/mysql.connection": crate::MysqlConnection,
        },
    });
}

mod bindings_v3 {
    wasmtime::component::bindgen!({
        path: ["../../wit/spin-mysql@3.0.0"],
        inline: "
            package kiln:mysql-host-v3;
            world host {
                import spin:mysql/mysql@3.0.0;
            }
        ",
        imports: { default: async | trappable },
        with: {
            "spin:mysql/mysql.connection": crate::MysqlConnection,
        },
    });
}

use bindings::fermyon::spin::mysql as v2;
use bindings::fermyon::spin::rdbms_types as v2_types;
use bindings_v3::spin::mysql::mysql as v3;

/// Most MySQL connections one instance may hold open at once.
pub const MAX_CONNECTIONS_PER_INSTANCE: usize = 16;

/// How long Kiln waits for a connection (a new one, or a free one from the pool).
const CONNECT_TIMEOUT: Duration = Duration::from_secs(5);

/// The outbound MySQL capability (see the crate docs).
pub struct OutboundMysql;

impl Capability for OutboundMysql {
    fn name(&self) -> &'static str {
        "outbound-mysql"
    }

    fn link(&self) -> LinkFn {
        link
    }

    fn configure_app(&self, _app: &AppContext<'_>) -> Result<Box<dyn AppCapability>> {
        Ok(Box::new(MysqlApp::new(CONNECT_TIMEOUT)))
    }
}

fn instance(state: &mut KilnState) -> &mut MysqlInstance {
    state.capability::<MysqlInstance>()
}

fn link(linker: &mut Linker<KilnState>) -> Result<()> {
    v2::add_to_linker::<KilnState, HasSelf<MysqlInstance>>(linker, instance)?;
    v2_types::add_to_linker::<KilnState, HasSelf<MysqlInstance>>(linker, instance)?;
    // `async func`s need component-model concurrency; without it wasmtime refuses to define them.
    if linker.engine().get_concurrency_support() {
        v3::add_to_linker::<KilnState, MysqlData>(linker, instance)?;
    }
    Ok(())
}

static TLS_PROVIDER: std::sync::Once = std::sync::Once::new();

/// The capability configured for one app: its connection pools.
pub struct MysqlApp {
    pools: Arc<Pools>,
}

impl MysqlApp {
    pub fn new(connect_timeout: Duration) -> MysqlApp {
        // mysql_async builds its rustls configuration from the process-wide crypto provider:
        // ring's, unless one is set already.
        TLS_PROVIDER.call_once(|| {
            if rustls::crypto::CryptoProvider::get_default().is_none() {
                let _ = rustls::crypto::ring::default_provider().install_default();
            }
        });
        MysqlApp {
            pools: Arc::new(Pools::new(connect_timeout)),
        }
    }

    /// The prepared state of a component whose `allowed_outbound_hosts` are `allowed`.
    pub fn component_state(&self, allowed: &AllowedHosts) -> Arc<MysqlComponent> {
        Arc::new(MysqlComponent {
            allowed: allowed.clone(),
            pools: self.pools.clone(),
        })
    }
}

impl AppCapability for MysqlApp {
    fn component(&self, component: &ComponentContext<'_>) -> Result<Arc<dyn ComponentCapability>> {
        Ok(self.component_state(component.allowed_hosts))
    }
}

/// One component's prepared state.
pub struct MysqlComponent {
    allowed: AllowedHosts,
    pools: Arc<Pools>,
}

impl MysqlComponent {
    pub fn instance(&self) -> MysqlInstance {
        MysqlInstance {
            allowed: self.allowed.clone(),
            pools: self.pools.clone(),
            table: ResourceTable::new(),
            open: 0,
        }
    }
}

impl ComponentCapability for MysqlComponent {
    fn instance_state(&self) -> Box<dyn Any + Send> {
        Box::new(self.instance())
    }
}

/// An open connection, as the guest's `connection` resource; dropped, it goes back to its pool.
pub struct MysqlConnection {
    conn: Arc<tokio::sync::Mutex<mysql_async::Conn>>,
}

/// One instance's MySQL state: what it may reach and its open connections.
pub struct MysqlInstance {
    allowed: AllowedHosts,
    pools: Arc<Pools>,
    table: ResourceTable,
    open: usize,
}

/// What `open` needs, checked before any I/O.
struct OpenRequest {
    address: String,
    opts: mysql_async::Opts,
    pools: Arc<Pools>,
}

impl OpenRequest {
    async fn connect(self) -> Result<MysqlConnection, DbError> {
        let conn = self.pools.connect(&self.address, self.opts).await?;
        Ok(MysqlConnection {
            conn: Arc::new(tokio::sync::Mutex::new(conn)),
        })
    }
}

impl MysqlInstance {
    fn check_open(&self, address: String) -> Result<OpenRequest, DbError> {
        let opts = ops::check_address(&self.allowed, &address)?;
        if self.open >= MAX_CONNECTIONS_PER_INSTANCE {
            return Err(DbError::ConnectionFailed(format!(
                "too many connections opened (at most {MAX_CONNECTIONS_PER_INSTANCE} per instance)"
            )));
        }
        Ok(OpenRequest {
            address,
            opts,
            pools: self.pools.clone(),
        })
    }

    fn push(&mut self, conn: MysqlConnection) -> Result<Resource<MysqlConnection>, DbError> {
        let resource = self
            .table
            .push(conn)
            .map_err(|e| DbError::Other(format!("cannot store the connection: {e}")))?;
        self.open += 1;
        Ok(resource)
    }

    fn conn(
        &self,
        conn: &Resource<MysqlConnection>,
    ) -> Result<Arc<tokio::sync::Mutex<mysql_async::Conn>>, DbError> {
        self.table
            .get(conn)
            .map(|c| c.conn.clone())
            .map_err(|_| DbError::Other("the connection is not open".to_string()))
    }

    fn close(&mut self, conn: Resource<MysqlConnection>) {
        if self.table.delete(conn).is_ok() {
            self.open = self.open.saturating_sub(1);
        }
    }
}

/// The conversions between one interface version's types and [`ops`]'s: both versions have the
/// same `error`, `parameter-value`, `db-value` and `db-data-type` shapes.
macro_rules! conversions {
    ($v:ident, $types:ident) => {
        pub(crate) fn error(e: DbError) -> $types::Error {
            match e {
                DbError::ConnectionFailed(s) => $types::Error::ConnectionFailed(s),
                DbError::BadParameter(s) => $types::Error::BadParameter(s),
                DbError::QueryFailed(s) => $types::Error::QueryFailed(s),
                DbError::ValueConversionFailed(s) => $types::Error::ValueConversionFailed(s),
                DbError::Other(s) => $types::Error::Other(s),
            }
        }

        pub(crate) fn params(params: Vec<$types::ParameterValue>) -> Vec<Param> {
            use $types::ParameterValue as P;
            params
                .into_iter()
                .map(|p| match p {
                    P::Boolean(b) => Param::Bool(b),
                    P::Int8(i) => Param::Int(i.into()),
                    P::Int16(i) => Param::Int(i.into()),
                    P::Int32(i) => Param::Int(i.into()),
                    P::Int64(i) => Param::Int(i),
                    P::Uint8(u) => Param::UInt(u.into()),
                    P::Uint16(u) => Param::UInt(u.into()),
                    P::Uint32(u) => Param::UInt(u.into()),
                    P::Uint64(u) => Param::UInt(u),
                    P::Floating32(f) => Param::F32(f),
                    P::Floating64(f) => Param::F64(f),
                    P::Str(s) => Param::Str(s),
                    P::Binary(b) => Param::Binary(b),
                    P::DbNull => Param::Null,
                })
                .collect()
        }

        pub(crate) fn value(v: DbValue) -> $types::DbValue {
            use $types::DbValue as V;
            match v {
                DbValue::Int8(i) => V::Int8(i),
                DbValue::Int16(i) => V::Int16(i),
                DbValue::Int32(i) => V::Int32(i),
                DbValue::Int64(i) => V::Int64(i),
                DbValue::UInt8(u) => V::Uint8(u),
                DbValue::UInt16(u) => V::Uint16(u),
                DbValue::UInt32(u) => V::Uint32(u),
                DbValue::UInt64(u) => V::Uint64(u),
                DbValue::F32(f) => V::Floating32(f),
                DbValue::F64(f) => V::Floating64(f),
                DbValue::Str(s) => V::Str(s),
                DbValue::Binary(b) => V::Binary(b),
                DbValue::Null => V::DbNull,
                DbValue::Unsupported => V::Unsupported,
            }
        }

        pub(crate) fn column(c: (String, DataType)) -> $types::Column {
            use $types::DbDataType as T;
            let data_type = match c.1 {
                DataType::Int8 => T::Int8,
                DataType::Int16 => T::Int16,
                DataType::Int32 => T::Int32,
                DataType::Int64 => T::Int64,
                DataType::UInt8 => T::Uint8,
                DataType::UInt16 => T::Uint16,
                DataType::UInt32 => T::Uint32,
                DataType::UInt64 => T::Uint64,
                DataType::F32 => T::Floating32,
                DataType::F64 => T::Floating64,
                DataType::Str => T::Str,
                DataType::Binary => T::Binary,
                DataType::Other => T::Other,
            };
            $types::Column { name: c.0, data_type }
        }
    };
}

/// `fermyon:spin/rdbms-types@2.0.0` ↔ [`ops`].
mod conv2 {
    use super::*;
    conversions!(v2, v2_types);
}

/// `spin:mysql@3.0.0` ↔ [`ops`].
mod conv3 {
    use super::*;
    conversions!(v3, v3);
}

// ---- fermyon:spin/mysql@2.0.0 ----

impl v2_types::Host for MysqlInstance {}

impl v2::Host for MysqlInstance {}

impl v2::HostConnection for MysqlInstance {
    async fn open(&mut self, address: String) -> Result<Resource<MysqlConnection>, v2_types::Error> {
        let request = self.check_open(address).map_err(conv2::error)?;
        let conn = request.connect().await.map_err(conv2::error)?;
        self.push(conn).map_err(conv2::error)
    }

    async fn query(
        &mut self,
        conn: Resource<MysqlConnection>,
        statement: String,
        params: Vec<v2_types::ParameterValue>,
    ) -> Result<v2_types::RowSet, v2_types::Error> {
        let conn = self.conn(&conn).map_err(conv2::error)?;
        let mut conn = conn.lock().await;
        let RowSet { columns, rows } = ops::query(&mut conn, &statement, conv2::params(params))
            .await
            .map_err(conv2::error)?;
        Ok(v2_types::RowSet {
            columns: columns.into_iter().map(conv2::column).collect(),
            rows: rows
                .into_iter()
                .map(|row| row.into_iter().map(conv2::value).collect())
                .collect(),
        })
    }

    async fn execute(
        &mut self,
        conn: Resource<MysqlConnection>,
        statement: String,
        params: Vec<v2_types::ParameterValue>,
    ) -> Result<(), v2_types::Error> {
        let conn = self.conn(&conn).map_err(conv2::error)?;
        let mut conn = conn.lock().await;
        ops::execute(&mut conn, &statement, conv2::params(params))
            .await
            .map_err(conv2::error)
    }

    async fn drop(&mut self, conn: Resource<MysqlConnection>) -> wasmtime::Result<()> {
        self.close(conn);
        Ok(())
    }
}

// ---- spin:mysql/mysql@3.0.0 (async funcs, in host_v3.rs) ----

/// The P3 bindings' host functions get the instance's [`MysqlInstance`].
pub type MysqlData = HasSelf<MysqlInstance>;
