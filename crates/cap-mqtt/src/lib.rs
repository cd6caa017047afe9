//! The outbound MQTT capability: `fermyon:spin/mqtt@2.0.0` and `spin:mqtt/mqtt@3.0.0`.
//!
//! `open(address, username, password, keep-alive)` takes an MQTT URL as Spin does
//! (`mqtt://host[:port]?client_id=…`, port 1883 by default). The address must be allowed by the
//! component's `allowed_outbound_hosts` (`mqtt://host:port`), else `connection-failed` saying so, as
//! in Spin; an address that is not such a URL is `invalid-address`. Unlike Spin, `open` connects at
//! once, so a broker that is down or refuses the credentials fails `open` with `connection-failed`
//! rather than the first `publish`.
//!
//! `publish` returns once the broker has the message at the QoS asked for: sent (QoS 0), `PUBACK`
//! (QoS 1) or `PUBCOMP` (QoS 2). Every call has a deadline.
//!
//! Connections are pooled per app: a connection the guest drops, after a clean publish, is kept
//! idle for the next `open` with the same address, credentials and keep-alive (the same MQTT
//! client id, which a broker allows only once at a time, so one guest at a time holds it). Idle
//! connections are dropped before the broker would time them out.
//!
//! `spin:mqtt/mqtt@3.0.0` is a WASI P3 interface (`async func`): it is linked only when the
//! engine has component-model concurrency.

mod client;
mod host_v3;
#[cfg(test)]
mod tests;

use anyhow::Result;
use client::{Client, ClientKey, MqttError, Pool, Qos};
use kiln_app::{AppCapability, AppContext, Capability, ComponentContext};
use kiln_engine::{ComponentCapability, KilnState, LinkFn};
use kiln_outbound::{AllowedHosts, OutboundUrl};
use std::any::Any;
use std::sync::Arc;
use std::time::Duration;
use wasmtime::component::{HasSelf, Linker, Resource, ResourceTable};

mod bindings {
    wasmtime::component::bindgen!({
        path: ["../../wit/spin@2.0.0"],
        inline: "
            package kiln:mqtt-host;
            world host {
                import fermyon:spin/mqtt@2.0.0;
            }
        ",
        imports: { default: async },
        with: {
            "fermyon:spin/mqtt.connection": crate::MqttConnection,
        },
    });
}

mod bindings_v3 {
    wasmtime::component::bindgen!({
        path: ["../../wit/spin-mqtt@3.0.0"],
        inline: "
            package kiln:mqtt-host-v3;
            world host {
                import spin:mqtt/mqtt@3.0.0;
            }
        ",
        imports: { default: async },
        with: {
            "spin:mqtt/mqtt.connection": crate::MqttConnection,
        },
    });
}

use bindings::fermyon::spin::mqtt as v2;
use bindings_v3::spin::mqtt::mqtt as v3;

/// Most MQTT connections one instance may hold open at once; past it, `too-many-connections`.
pub const MAX_CONNECTIONS_PER_INSTANCE: usize = 64;

/// How long Kiln waits for the broker.
#[derive(Clone, Copy, Debug)]
pub struct MqttTimeouts {
    /// Connecting: TCP and the `CONNECT`/`CONNACK` handshake.
    pub connect: Duration,
    /// One publish, until the broker acknowledged it at the QoS asked for.
    pub call: Duration,
}

impl Default for MqttTimeouts {
    fn default() -> Self {
        MqttTimeouts {
            connect: Duration::from_secs(5),
            call: Duration::from_secs(10),
        }
    }
}

/// The outbound MQTT capability (see the crate docs).
pub struct OutboundMqtt;

impl Capability for OutboundMqtt {
    fn name(&self) -> &'static str {
        "outbound-mqtt"
    }

    fn link(&self) -> LinkFn {
        link
    }

    fn configure_app(&self, _app: &AppContext<'_>) -> Result<Box<dyn AppCapability>> {
        Ok(Box::new(MqttApp::new(MqttTimeouts::default())))
    }
}

fn link(linker: &mut Linker<KilnState>) -> Result<()> {
    v2::add_to_linker::<KilnState, HasSelf<MqttInstance>>(linker, |s| {
        s.capability::<MqttInstance>()
    })?;
    // `async func`s need component-model concurrency; without it wasmtime refuses to define them,
    // and no guest importing them could be compiled anyway.
    if linker.engine().get_concurrency_support() {
        v3::add_to_linker::<KilnState, MqttData>(linker, |s| s.capability::<MqttInstance>())?;
    } else {
        tracing::debug!(
            "spin:mqtt/mqtt@3.0.0 not linked: the engine has no component-model concurrency"
        );
    }
    Ok(())
}

/// The capability configured for one app: its pool of idle connections.
pub struct MqttApp {
    timeouts: MqttTimeouts,
    pool: Arc<Pool>,
}

impl MqttApp {
    pub fn new(timeouts: MqttTimeouts) -> MqttApp {
        MqttApp {
            timeouts,
            pool: Arc::new(Pool::default()),
        }
    }

    /// The prepared state of a component whose `allowed_outbound_hosts` are `allowed`.
    pub fn component_state(&self, allowed: &AllowedHosts) -> Arc<MqttComponent> {
        Arc::new(MqttComponent {
            allowed: allowed.clone(),
            timeouts: self.timeouts,
            pool: self.pool.clone(),
        })
    }
}

impl AppCapability for MqttApp {
    fn component(&self, component: &ComponentContext<'_>) -> Result<Arc<dyn ComponentCapability>> {
        Ok(self.component_state(component.allowed_hosts))
    }
}

/// One component's prepared state.
pub struct MqttComponent {
    allowed: AllowedHosts,
    timeouts: MqttTimeouts,
    pool: Arc<Pool>,
}

impl MqttComponent {
    pub fn instance(&self) -> MqttInstance {
        MqttInstance {
            allowed: self.allowed.clone(),
            timeouts: self.timeouts,
            pool: self.pool.clone(),
            table: ResourceTable::new(),
            open: 0,
        }
    }
}

impl ComponentCapability for MqttComponent {
    fn instance_state(&self) -> Box<dyn Any + Send> {
        Box::new(self.instance())
    }
}

/// An open connection, as the guest's `connection` resource. Dropped, it goes back to the app's
/// pool if it is still clean.
pub struct MqttConnection {
    key: ClientKey,
    client: Arc<tokio::sync::Mutex<Client>>,
    pool: Arc<Pool>,
}

impl Drop for MqttConnection {
    fn drop(&mut self) {
        // A publish still running (its future dropped mid-way) keeps a clone: such a connection
        // is in an unknown state and is not pooled.
        let placeholder = Arc::new(tokio::sync::Mutex::new(Client::closed()));
        let client = std::mem::replace(&mut self.client, placeholder);
        if let Ok(client) = Arc::try_unwrap(client) {
            self.pool.put(self.key.clone(), client.into_inner());
        }
    }
}

/// One instance's MQTT state: what it may reach and its open connections.
pub struct MqttInstance {
    allowed: AllowedHosts,
    timeouts: MqttTimeouts,
    pool: Arc<Pool>,
    table: ResourceTable,
    open: usize,
}

/// What `open` needs, checked before any I/O.
struct OpenRequest {
    key: ClientKey,
    pool: Arc<Pool>,
    timeouts: MqttTimeouts,
}

impl OpenRequest {
    async fn pooled(&self) -> Option<Client> {
        while let Some(mut client) = self.pool.take(&self.key) {
            if client.still_connected().await {
                return Some(client);
            }
        }
        None
    }

    /// A pooled connection for the key, or a new one.
    async fn connect(self) -> Result<MqttConnection, MqttError> {
        let client = match self.pooled().await {
            Some(client) => client,
            None => Client::connect(&self.key, self.timeouts.connect).await?,
        };
        Ok(MqttConnection {
            key: self.key,
            client: Arc::new(tokio::sync::Mutex::new(client)),
            pool: self.pool,
        })
    }
}

impl MqttInstance {
    /// Checks the address, the grant and the connection limit (no I/O).
    fn check_open(
        &self,
        address: String,
        username: String,
        password: String,
        keep_alive_secs: u64,
    ) -> Result<OpenRequest, MqttError> {
        // An address that is not an MQTT URL is `invalid-address` whether or not it is allowed.
        let key = ClientKey::new(address, username, password, keep_alive_secs)?;
        let address = key.address();
        let url = OutboundUrl::parse_with_default_scheme(address, "mqtt")
            .map_err(|_| MqttError::InvalidAddress)?;
        if !self.allowed.allows(&url) {
            tracing::debug!(address, "outbound MQTT address not allowed");
            return Err(MqttError::ConnectionFailed(format!(
                "address {address} is not permitted: add it to the component's allowed_outbound_hosts \
                 (e.g. `mqtt://host:port`)"
            )));
        }
        if self.open >= MAX_CONNECTIONS_PER_INSTANCE {
            return Err(MqttError::TooManyConnections);
        }
        Ok(OpenRequest {
            key,
            pool: self.pool.clone(),
            timeouts: self.timeouts,
        })
    }

    fn push(&mut self, conn: MqttConnection) -> Result<Resource<MqttConnection>, MqttError> {
        if self.open >= MAX_CONNECTIONS_PER_INSTANCE {
            return Err(MqttError::TooManyConnections);
        }
        let resource = self
            .table
            .push(conn)
            .map_err(|e| MqttError::Other(format!("cannot store the connection: {e}")))?;
        self.open += 1;
        Ok(resource)
    }

    /// A handle to the connection's client, to await without borrowing the instance.
    fn client(
        &self,
        conn: &Resource<MqttConnection>,
    ) -> Result<Arc<tokio::sync::Mutex<Client>>, MqttError> {
        self.table
            .get(conn)
            .map(|c| c.client.clone())
            .map_err(|_| MqttError::Other("the connection is not open".to_string()))
    }

    fn close(&mut self, conn: Resource<MqttConnection>) {
        if self.table.delete(conn).is_ok() {
            self.open = self.open.saturating_sub(1);
        }
    }

    async fn open(
        &mut self,
        address: String,
        username: String,
        password: String,
        keep_alive_secs: u64,
    ) -> Result<Resource<MqttConnection>, MqttError> {
        let request = self.check_open(address, username, password, keep_alive_secs)?;
        let conn = request.connect().await?;
        self.push(conn)
    }

    async fn publish(
        &mut self,
        conn: &Resource<MqttConnection>,
        topic: String,
        payload: Vec<u8>,
        qos: Qos,
    ) -> Result<(), MqttError> {
        let client = self.client(conn)?;
        let mut client = client.lock().await;
        client.publish(topic, payload, qos, self.timeouts.call).await
    }
}

// ---- fermyon:spin/mqtt@2.0.0 ----

fn v2_error(e: MqttError) -> v2::Error {
    match e {
        MqttError::InvalidAddress => v2::Error::InvalidAddress,
        MqttError::TooManyConnections => v2::Error::TooManyConnections,
        MqttError::ConnectionFailed(s) => v2::Error::ConnectionFailed(s),
        MqttError::Other(s) => v2::Error::Other(s),
    }
}

fn v2_qos(qos: v2::Qos) -> Qos {
    match qos {
        v2::Qos::AtMostOnce => Qos::AtMostOnce,
        v2::Qos::AtLeastOnce => Qos::AtLeastOnce,
        v2::Qos::ExactlyOnce => Qos::ExactlyOnce,
    }
}

impl v2::Host for MqttInstance {}

impl v2::HostConnection for MqttInstance {
    async fn open(
        &mut self,
        address: String,
        username: String,
        password: String,
        keep_alive_interval_in_secs: u64,
    ) -> Result<Resource<MqttConnection>, v2::Error> {
        MqttInstance::open(self, address, username, password, keep_alive_interval_in_secs)
            .await
            .map_err(v2_error)
    }

    async fn publish(
        &mut self,
        conn: Resource<MqttConnection>,
        topic: String,
        payload: Vec<u8>,
        qos: v2::Qos,
    ) -> Result<(), v2::Error> {
        MqttInstance::publish(self, &conn, topic, payload, v2_qos(qos))
            .await
            .map_err(v2_error)
    }

    async fn drop(&mut self, conn: Resource<MqttConnection>) -> wasmtime::Result<()> {
        self.close(conn);
        Ok(())
    }
}

// ---- spin:mqtt/mqtt@3.0.0 (async funcs, reached through an `Accessor`) ----

/// The P3 bindings' host functions get the instance's [`MqttInstance`].
pub type MqttData = HasSelf<MqttInstance>;

fn v3_error(e: MqttError) -> v3::Error {
    match e {
        MqttError::InvalidAddress => v3::Error::InvalidAddress,
        MqttError::TooManyConnections => v3::Error::TooManyConnections,
        MqttError::ConnectionFailed(s) => v3::Error::ConnectionFailed(s),
        MqttError::Other(s) => v3::Error::Other(s),
    }
}

fn v3_qos(qos: v3::Qos) -> Qos {
    match qos {
        v3::Qos::AtMostOnce => Qos::AtMostOnce,
        v3::Qos::AtLeastOnce => Qos::AtLeastOnce,
        v3::Qos::ExactlyOnce => Qos::ExactlyOnce,
    }
}
