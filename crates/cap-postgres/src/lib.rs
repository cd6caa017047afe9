//! The outbound PostgreSQL capability: `fermyon:spin/postgres@2.0.0`, `spin:postgres/postgres@3.0.0`
//! and `spin:postgres/postgres@4.0.0` (spin-sdk 5's `pg`, `pg3` and `pg4`), and, when the engine has
//! component-model concurrency, `spin:postgres/postgres@4.2.0` (spin-sdk 7's `pg`; see `host_v42.rs`), which
//! then serves 4.0.x guests too.
//!
//! `open(address)` takes a `postgres://` URL or `key=value` pairs, as tokio-postgres does. Every
//! host it names must be allowed by the component's `allowed_outbound_hosts` as
//! `postgres://host:port` (port 5432 when left out); anything else is `connection-failed` saying
//! so, before any connection is made. TLS is used when the address asks (`sslmode=require`) or
//! the server offers it (`prefer`, the default).
//!
//! Connections come from a pool per app and address. A connection goes back to the pool when the
//! guest drops it, unless the guest ran a statement that may leave a transaction or session state
//! behind (anything but `SELECT`/`INSERT`/`UPDATE`/`DELETE`/`WITH`/`VALUES`/`TABLE`/`MERGE`): such
//! a connection is closed instead, so one instance's `BEGIN` never leaks into another's.
//!
//! Values are converted as `types.rs` says (4.0.0's types; older versions see the values their
//! WIT can carry and `unsupported`/`other` for the rest). Errors are the WIT's variants: a bad
//! value or a parameter the statement cannot take → `bad-parameter`; the server's error →
//! `query-failed` (with its SQLSTATE code and fields in 4.0.0); a column Kiln cannot read →
//! `value-conversion-failed`; a dropped connection → `query-failed`, and the pool replaces it.

// The interfaces' own `error` (4.0.0's carries a structured database error) is what every
// function returns: boxing it would only move the allocation to each error path.
#![allow(clippy::result_large_err)]

mod convert;
mod pool;
#[cfg(test)]
mod tests;
mod types;
mod host_v42;

pub use pool::PgTimeouts;

use anyhow::Result;
use deadpool_postgres::Object;
use kiln_app::{AppCapability, AppContext, Capability, ComponentContext};
use kiln_engine::{ComponentCapability, KilnState, LinkFn};
use kiln_outbound::AllowedHosts;
use pool::Pools;
use std::any::Any;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use wasmtime::component::{HasSelf, Linker, Resource, ResourceTable};

mod bindings {
    wasmtime::component::bindgen!({
        path: [
            "../../wit/spin@2.0.0",
            "../../wit/spin-postgres@3.0.0",
            "../../wit/spin-postgres@4.0.0",
        ],
        inline: "
            package kiln:postgres-host;
            world host {
                import fermyon:spin/postgres@2.0.0;
                import spin:postgres/postgres@3.0.0;
                import spin:postgres/postgres@4.0.0;
            }
        ",
        imports: { default: async },
        with: {
            "fermyon:spin/postgres.connection": crate::PgConnection,
            "spin:postgres/postgres@3.0.0.connection": crate::PgConnection,
            "spin:postgres/postgres@4.0.0.connection": crate::PgConnection,
        },
    });
}

use bindings::fermyon::spin::postgres as v2;
use bindings::fermyon::spin::rdbms_types as v2_types;
use bindings::spin::postgres3_0_0::postgres as v3;
use bindings::spin::postgres4_0_0::postgres as v4;

/// Most Postgres connections one instance may hold open at once.
pub const MAX_CONNECTIONS_PER_INSTANCE: usize = 16;

/// The outbound PostgreSQL capability (see the crate docs).
pub struct OutboundPg;

impl Capability for OutboundPg {
    fn name(&self) -> &'static str {
        "outbound-pg"
    }

    fn link(&self) -> LinkFn {
        link
    }

    fn configure_app(&self, _app: &AppContext<'_>) -> Result<Box<dyn AppCapability>> {
        Ok(Box::new(PgApp::new(PgTimeouts::default())))
    }
}

fn instance(state: &mut KilnState) -> &mut PgInstance {
    state.capability::<PgInstance>()
}

fn link(linker: &mut Linker<KilnState>) -> Result<()> {
    v2::add_to_linker::<KilnState, HasSelf<PgInstance>>(linker, instance)?;
    v2_types::add_to_linker::<KilnState, HasSelf<PgInstance>>(linker, instance)?;
    v3::add_to_linker::<KilnState, HasSelf<PgInstance>>(linker, instance)?;
    // 4.2.0 is a superset of 4.0.0, so with concurrency it alone serves 4.0.x guests too
    // (wasmtime links imports semver-compatibly, and would refuse both).
    if linker.engine().get_concurrency_support() {
        host_v42::link(linker)?;
    } else {
        v4::add_to_linker::<KilnState, HasSelf<PgInstance>>(linker, instance)?;
    }
    Ok(())
}

/// The capability configured for one app: its connection pools.
pub struct PgApp {
    pools: Arc<Pools>,
}

impl PgApp {
    pub fn new(timeouts: PgTimeouts) -> PgApp {
        PgApp {
            pools: Arc::new(Pools::new(timeouts)),
        }
    }

    /// The prepared state of a component whose `allowed_outbound_hosts` are `allowed`.
    pub fn component_state(&self, allowed: &AllowedHosts) -> Arc<PgComponent> {
        Arc::new(PgComponent {
            allowed: allowed.clone(),
            pools: self.pools.clone(),
        })
    }
}

impl AppCapability for PgApp {
    fn component(&self, component: &ComponentContext<'_>) -> Result<Arc<dyn ComponentCapability>> {
        Ok(self.component_state(component.allowed_hosts))
    }
}

/// One component's prepared state.
pub struct PgComponent {
    allowed: AllowedHosts,
    pools: Arc<Pools>,
}

impl PgComponent {
    pub fn instance(&self) -> PgInstance {
        PgInstance {
            allowed: self.allowed.clone(),
            pools: self.pools.clone(),
            table: ResourceTable::new(),
            open: 0,
        }
    }
}

impl ComponentCapability for PgComponent {
    fn instance_state(&self) -> Box<dyn Any + Send> {
        Box::new(self.instance())
    }
}

/// An open connection, as the guest's `connection` resource.
pub struct PgConnection {
    client: Arc<PooledClient>,
}

/// A pooled client, shared by the connection resource and the statements running on it (an `async`
/// statement holds it while the instance does other work). It goes back to its pool when the last
/// of them lets go, unless the guest may have changed its session.
pub(crate) struct PooledClient {
    object: Option<Object>,
    clean: AtomicBool,
}

impl PooledClient {
    fn client(&self) -> Result<&tokio_postgres::Client, v4::Error> {
        self.object.as_deref().map(|wrapper| &**wrapper).ok_or_else(|| v4::Error::Other("the connection is closed".to_string()))
    }
}

impl Drop for PooledClient {
    fn drop(&mut self) {
        if !self.clean.load(Ordering::Relaxed)
            && let Some(client) = self.object.take()
        {
            // Out of the pool, and closed with it: the server rolls back what was left open.
            drop(Object::take(client));
        }
    }
}

/// One instance's Postgres state: what it may reach and its open connections.
pub struct PgInstance {
    allowed: AllowedHosts,
    pools: Arc<Pools>,
    table: ResourceTable,
    open: usize,
}

impl PgInstance {
    async fn open(&mut self, address: String) -> Result<Resource<PgConnection>, v4::Error> {
        let pools = self.may_open(&address)?;
        let client = pools.connect(&address, None).await?;
        self.push(client)
    }

    /// The app's pools, if this instance may open another connection to `address`.
    fn may_open(&self, address: &str) -> Result<Arc<Pools>, v4::Error> {
        pool::address_allowed(&self.allowed, address)?;
        if self.open >= MAX_CONNECTIONS_PER_INSTANCE {
            return Err(v4::Error::ConnectionFailed(format!(
                "too many connections opened (at most {MAX_CONNECTIONS_PER_INSTANCE} per instance)"
            )));
        }
        Ok(self.pools.clone())
    }

    /// Hands a pooled client to the guest as a `connection`.
    fn push(&mut self, client: Object) -> Result<Resource<PgConnection>, v4::Error> {
        let client = Arc::new(PooledClient { object: Some(client), clean: AtomicBool::new(true) });
        let resource = self
            .table
            .push(PgConnection { client })
            .map_err(|e| v4::Error::Other(format!("cannot store the connection: {e}")))?;
        self.open += 1;
        Ok(resource)
    }

    /// The connection's client, marked as no longer reusable if `statement` may change its
    /// session.
    fn client(
        &mut self,
        conn: &Resource<PgConnection>,
        statement: &str,
    ) -> Result<Arc<PooledClient>, v4::Error> {
        let conn = self
            .table
            .get(conn)
            .map_err(|_| v4::Error::Other("the connection is not open".to_string()))?;
        if !pool::keeps_session_clean(statement) {
            conn.client.clean.store(false, Ordering::Relaxed);
        }
        Ok(conn.client.clone())
    }

    async fn query(
        &mut self,
        conn: &Resource<PgConnection>,
        statement: String,
        params: Vec<v4::ParameterValue>,
    ) -> Result<v4::RowSet, v4::Error> {
        let client = self.client(conn, &statement)?;
        pool::query(client.client()?, &statement, params).await
    }

    async fn execute(
        &mut self,
        conn: &Resource<PgConnection>,
        statement: String,
        params: Vec<v4::ParameterValue>,
    ) -> Result<u64, v4::Error> {
        let client = self.client(conn, &statement)?;
        pool::execute(client.client()?, &statement, params).await
    }

    fn close(&mut self, conn: Resource<PgConnection>) {
        if self.table.delete(conn).is_ok() {
            self.open = self.open.saturating_sub(1);
        }
    }
}

// ---- spin:postgres/postgres@4.0.0 ----

impl v4::Host for PgInstance {}

impl v4::HostConnection for PgInstance {
    async fn open(&mut self, address: String) -> Result<Resource<PgConnection>, v4::Error> {
        PgInstance::open(self, address).await
    }

    async fn query(
        &mut self,
        conn: Resource<PgConnection>,
        statement: String,
        params: Vec<v4::ParameterValue>,
    ) -> Result<v4::RowSet, v4::Error> {
        PgInstance::query(self, &conn, statement, params).await
    }

    async fn execute(
        &mut self,
        conn: Resource<PgConnection>,
        statement: String,
        params: Vec<v4::ParameterValue>,
    ) -> Result<u64, v4::Error> {
        PgInstance::execute(self, &conn, statement, params).await
    }

    async fn drop(&mut self, conn: Resource<PgConnection>) -> wasmtime::Result<()> {
        self.close(conn);
        Ok(())
    }
}

// ---- spin:postgres/postgres@3.0.0 ----

impl v3::Host for PgInstance {}

impl v3::HostConnection for PgInstance {
    async fn open(&mut self, address: String) -> Result<Resource<PgConnection>, v3::Error> {
        PgInstance::open(self, address).await.map_err(convert::v3_error)
    }

    async fn query(
        &mut self,
        conn: Resource<PgConnection>,
        statement: String,
        params: Vec<v3::ParameterValue>,
    ) -> Result<v3::RowSet, v3::Error> {
        let params = params.into_iter().map(convert::v3_param).collect();
        PgInstance::query(self, &conn, statement, params)
            .await
            .map(convert::v3_row_set)
            .map_err(convert::v3_error)
    }

    async fn execute(
        &mut self,
        conn: Resource<PgConnection>,
        statement: String,
        params: Vec<v3::ParameterValue>,
    ) -> Result<u64, v3::Error> {
        let params = params.into_iter().map(convert::v3_param).collect();
        PgInstance::execute(self, &conn, statement, params)
            .await
            .map_err(convert::v3_error)
    }

    async fn drop(&mut self, conn: Resource<PgConnection>) -> wasmtime::Result<()> {
        self.close(conn);
        Ok(())
    }
}

// ---- fermyon:spin/postgres@2.0.0 ----

impl v2_types::Host for PgInstance {}

impl v2::Host for PgInstance {}

impl v2::HostConnection for PgInstance {
    async fn open(&mut self, address: String) -> Result<Resource<PgConnection>, v2_types::Error> {
        PgInstance::open(self, address).await.map_err(convert::v2_error)
    }

    async fn query(
        &mut self,
        conn: Resource<PgConnection>,
        statement: String,
        params: Vec<v2_types::ParameterValue>,
    ) -> Result<v2_types::RowSet, v2_types::Error> {
        let params = convert::v2_params(params).map_err(convert::v2_error)?;
        PgInstance::query(self, &conn, statement, params)
            .await
            .map(convert::v2_row_set)
            .map_err(convert::v2_error)
    }

    async fn execute(
        &mut self,
        conn: Resource<PgConnection>,
        statement: String,
        params: Vec<v2_types::ParameterValue>,
    ) -> Result<u64, v2_types::Error> {
        let params = convert::v2_params(params).map_err(convert::v2_error)?;
        PgInstance::execute(self, &conn, statement, params)
            .await
            .map_err(convert::v2_error)
    }

    async fn drop(&mut self, conn: Resource<PgConnection>) -> wasmtime::Result<()> {
        self.close(conn);
        Ok(())
    }
}
