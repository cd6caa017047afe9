//! The outbound Redis capability: `fermyon:spin/redis@2.0.0` and `spin:redis/redis@3.0.0`.
//!
//! `open(address)` is allowed only to addresses the component's `allowed_outbound_hosts` allows
//! (checked as Spin does: the address as a URL, `redis` its default scheme, e.g.
//! `redis://127.0.0.1:6379` needs an entry such as `redis://127.0.0.1:6379`); anything else, or an
//! address that is not a Redis URL, is `invalid-address`. Each `open` makes its own connection
//! (multiplexed, as Spin), so per-connection state a guest sets with `execute` (`SELECT`,
//! `CLIENT SETNAME`, …) never leaks to another instance. Every call has a deadline: a Redis that does
//! not answer yields `other("…timed out…")`, never a hung request.
//!
//! `spin:redis/redis@3.0.0` is a WASI P3 interface (`async func`): it needs the engine's
//! component-model concurrency support and is linked only when the engine has it.

mod ops;
#[cfg(test)]
mod tests;

use anyhow::Result;
use kiln_app::{AppCapability, AppContext, Capability, ComponentContext};
use kiln_engine::{ComponentCapability, KilnState, LinkFn};
use kiln_outbound::{AllowedHosts, OutboundUrl};
use ops::{Param, RedisError, RedisResult};
use std::any::Any;
use std::sync::Arc;
use std::time::Duration;
use wasmtime::component::{HasSelf, Linker, Resource, ResourceTable};

mod bindings {
    wasmtime::component::bindgen!({
        path: ["../../wit/spin@2.0.0"],
        inline: "
            package kiln:redis-host;
            world host {
                import fermyon:spin/redis@2.0.0;
            }
        ",
        imports: { default: async },
        with: {
            "fermyon:spin/redis.connection": crate::RedisConnection,
        },
    });
}

mod bindings_v3 {
    wasmtime::component::bindgen!({
        path: ["../../wit/spin-redis@3.0.0"],
        inline: "
            package kiln:redis-host-v3;
            world host {
                import spin:redis/redis@3.0.0;
            }
        ",
        imports: { default: async },
        with: {
            "spin:redis/redis.connection": crate::RedisConnection,
        },
    });
}

use bindings::fermyon::spin::redis as v2;
use bindings_v3::spin::redis::redis as v3;

/// Most Redis connections one instance may hold open at once; past it, `too-many-connections`.
pub const MAX_CONNECTIONS_PER_INSTANCE: usize = 64;

/// How long Kiln waits for Redis.
#[derive(Clone, Copy, Debug)]
pub struct RedisTimeouts {
    /// Connecting (TCP, TLS and the client's handshake).
    pub connect: Duration,
    /// One command, from sending it to its whole response.
    pub call: Duration,
}

impl Default for RedisTimeouts {
    fn default() -> Self {
        RedisTimeouts {
            connect: Duration::from_secs(5),
            call: Duration::from_secs(10),
        }
    }
}

/// The outbound Redis capability (see the crate docs).
pub struct OutboundRedis;

impl Capability for OutboundRedis {
    fn name(&self) -> &'static str {
        "outbound-redis"
    }

    fn link(&self) -> LinkFn {
        link
    }

    fn configure_app(&self, _app: &AppContext<'_>) -> Result<Box<dyn AppCapability>> {
        Ok(Box::new(RedisApp::new(RedisTimeouts::default())))
    }
}

fn link(linker: &mut Linker<KilnState>) -> Result<()> {
    v2::add_to_linker::<KilnState, HasSelf<RedisInstance>>(linker, |s| {
        s.capability::<RedisInstance>()
    })?;
    // `async func`s need component-model concurrency; without it wasmtime refuses to define
    // them, and no guest importing them could be compiled anyway.
    if linker.engine().get_concurrency_support() {
        v3::add_to_linker::<KilnState, RedisData>(linker, |s| s.capability::<RedisInstance>())?;
    } else {
        tracing::debug!(
            "spin:redis/redis@3.0.0 not linked: the engine has no component-model concurrency"
        );
    }
    Ok(())
}

/// The capability configured for one app.
pub struct RedisApp {
    timeouts: RedisTimeouts,
}

impl RedisApp {
    pub fn new(timeouts: RedisTimeouts) -> RedisApp {
        RedisApp { timeouts }
    }

    /// The prepared state of a component whose `allowed_outbound_hosts` are `allowed`.
    pub fn component_state(&self, allowed: &AllowedHosts) -> Arc<RedisComponent> {
        Arc::new(RedisComponent {
            allowed: allowed.clone(),
            timeouts: self.timeouts,
        })
    }
}

impl AppCapability for RedisApp {
    fn component(&self, component: &ComponentContext<'_>) -> Result<Arc<dyn ComponentCapability>> {
        Ok(self.component_state(component.allowed_hosts))
    }
}

/// One component's prepared state.
pub struct RedisComponent {
    allowed: AllowedHosts,
    timeouts: RedisTimeouts,
}

impl RedisComponent {
    pub fn instance(&self) -> RedisInstance {
        RedisInstance {
            allowed: self.allowed.clone(),
            timeouts: self.timeouts,
            table: ResourceTable::new(),
            open: 0,
        }
    }
}

impl ComponentCapability for RedisComponent {
    fn instance_state(&self) -> Box<dyn Any + Send> {
        Box::new(self.instance())
    }
}

/// An open connection, as the guest's `connection` resource.
pub struct RedisConnection {
    conn: redis::aio::MultiplexedConnection,
}

/// One instance's Redis state: what it may reach and its open connections.
pub struct RedisInstance {
    allowed: AllowedHosts,
    timeouts: RedisTimeouts,
    table: ResourceTable,
    open: usize,
}

impl RedisInstance {
    /// Checks `address` and the connection limit (no I/O).
    fn check_open(&self, address: &str) -> Result<(), RedisError> {
        if !address_allowed(&self.allowed, address) {
            tracing::debug!(address, "outbound Redis address not allowed");
            return Err(RedisError::InvalidAddress);
        }
        if self.open >= MAX_CONNECTIONS_PER_INSTANCE {
            return Err(RedisError::TooManyConnections);
        }
        Ok(())
    }

    fn push(&mut self, conn: RedisConnection) -> Result<Resource<RedisConnection>, RedisError> {
        if self.open >= MAX_CONNECTIONS_PER_INSTANCE {
            return Err(RedisError::TooManyConnections);
        }
        let resource = self
            .table
            .push(conn)
            .map_err(|e| RedisError::Other(format!("cannot store the connection: {e}")))?;
        self.open += 1;
        Ok(resource)
    }

    /// A handle to the connection, to await without borrowing the instance.
    fn conn(
        &self,
        conn: &Resource<RedisConnection>,
    ) -> Result<redis::aio::MultiplexedConnection, RedisError> {
        self.table
            .get(conn)
            .map(|c| c.conn.clone())
            .map_err(|_| RedisError::Other("the connection is not open".to_string()))
    }

    fn close(&mut self, conn: Resource<RedisConnection>) {
        if self.table.delete(conn).is_ok() {
            self.open = self.open.saturating_sub(1);
        }
    }

    async fn open(&mut self, address: String) -> Result<Resource<RedisConnection>, RedisError> {
        self.check_open(&address)?;
        let conn = ops::connect(&address, self.timeouts).await?;
        self.push(RedisConnection { conn })
    }

    async fn call<T>(
        &mut self,
        conn: &Resource<RedisConnection>,
        op: impl AsyncFnOnce(redis::aio::MultiplexedConnection) -> Result<T, RedisError>,
    ) -> Result<T, RedisError> {
        let c = self.conn(conn)?;
        ops::with_deadline(self.timeouts.call, op(c)).await
    }
}

/// Whether the guest may open `address`: a URL (`redis` when it has no scheme) that the
/// component's `allowed_outbound_hosts` allows.
pub fn address_allowed(allowed: &AllowedHosts, address: &str) -> bool {
    OutboundUrl::parse_with_default_scheme(address, "redis").is_ok_and(|url| allowed.allows(&url))
}

// ---- fermyon:spin/redis@2.0.0 ----

fn v2_error(e: RedisError) -> v2::Error {
    match e {
        RedisError::InvalidAddress => v2::Error::InvalidAddress,
        RedisError::TooManyConnections => v2::Error::TooManyConnections,
        RedisError::TypeError => v2::Error::TypeError,
        RedisError::Other(s) => v2::Error::Other(s),
    }
}

impl v2::Host for RedisInstance {}

impl v2::HostConnection for RedisInstance {
    async fn open(&mut self, address: String) -> Result<Resource<RedisConnection>, v2::Error> {
        RedisInstance::open(self, address).await.map_err(v2_error)
    }

    async fn publish(
        &mut self,
        conn: Resource<RedisConnection>,
        channel: String,
        payload: Vec<u8>,
    ) -> Result<(), v2::Error> {
        self.call(&conn, async |mut c| {
            ops::publish(&mut c, &channel, &payload).await
        })
        .await
        .map_err(v2_error)
    }

    async fn get(
        &mut self,
        conn: Resource<RedisConnection>,
        key: String,
    ) -> Result<Option<Vec<u8>>, v2::Error> {
        self.call(&conn, async |mut c| ops::get(&mut c, &key).await)
            .await
            .map_err(v2_error)
    }

    async fn set(
        &mut self,
        conn: Resource<RedisConnection>,
        key: String,
        value: Vec<u8>,
    ) -> Result<(), v2::Error> {
        self.call(&conn, async |mut c| ops::set(&mut c, &key, &value).await)
            .await
            .map_err(v2_error)
    }

    async fn incr(
        &mut self,
        conn: Resource<RedisConnection>,
        key: String,
    ) -> Result<i64, v2::Error> {
        self.call(&conn, async |mut c| ops::incr(&mut c, &key).await)
            .await
            .map_err(v2_error)
    }

    async fn del(
        &mut self,
        conn: Resource<RedisConnection>,
        keys: Vec<String>,
    ) -> Result<u32, v2::Error> {
        self.call(&conn, async |mut c| ops::del(&mut c, &keys).await)
            .await
            .map_err(v2_error)
    }

    async fn sadd(
        &mut self,
        conn: Resource<RedisConnection>,
        key: String,
        values: Vec<String>,
    ) -> Result<u32, v2::Error> {
        self.call(&conn, async |mut c| ops::sadd(&mut c, &key, &values).await)
            .await
            .map_err(v2_error)
    }

    async fn smembers(
        &mut self,
        conn: Resource<RedisConnection>,
        key: String,
    ) -> Result<Vec<String>, v2::Error> {
        self.call(&conn, async |mut c| ops::smembers(&mut c, &key).await)
            .await
            .map_err(v2_error)
    }

    async fn srem(
        &mut self,
        conn: Resource<RedisConnection>,
        key: String,
        values: Vec<String>,
    ) -> Result<u32, v2::Error> {
        self.call(&conn, async |mut c| ops::srem(&mut c, &key, &values).await)
            .await
            .map_err(v2_error)
    }

    async fn execute(
        &mut self,
        conn: Resource<RedisConnection>,
        command: String,
        arguments: Vec<v2::RedisParameter>,
    ) -> Result<Vec<v2::RedisResult>, v2::Error> {
        let args = arguments
            .into_iter()
            .map(|a| match a {
                v2::RedisParameter::Int64(i) => Param::Int(i),
                v2::RedisParameter::Binary(b) => Param::Binary(b),
            })
            .collect();
        let results = self
            .call(&conn, async |mut c| {
                ops::execute(&mut c, &command, args).await
            })
            .await
            .map_err(v2_error)?;
        Ok(results
            .into_iter()
            .map(|r| match r {
                RedisResult::Nil => v2::RedisResult::Nil,
                RedisResult::Status(s) => v2::RedisResult::Status(s),
                RedisResult::Int(i) => v2::RedisResult::Int64(i),
                RedisResult::Binary(b) => v2::RedisResult::Binary(b),
            })
            .collect())
    }

    async fn drop(&mut self, conn: Resource<RedisConnection>) -> wasmtime::Result<()> {
        self.close(conn);
        Ok(())
    }
}

// ---- spin:redis/redis@3.0.0 (async funcs, reached through an `Accessor`) ----

/// The P3 bindings' host functions get the instance's [`RedisInstance`].
pub type RedisData = HasSelf<RedisInstance>;

fn v3_error(e: RedisError) -> v3::Error {
    match e {
        RedisError::InvalidAddress => v3::Error::InvalidAddress,
        RedisError::TooManyConnections => v3::Error::TooManyConnections,
        RedisError::TypeError => v3::Error::TypeError,
        RedisError::Other(s) => v3::Error::Other(s),
    }
}

mod host_v3;
