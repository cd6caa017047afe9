//! One MQTT client connection (rumqttc) and the app's pool of idle ones.

use rumqttc::{AsyncClient, ConnectionError, Event, EventLoop, Incoming, MqttOptions, Outgoing, QoS};
use std::collections::HashMap;
use std::sync::Mutex;
use std::time::{Duration, Instant};

/// The interfaces' error variants.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum MqttError {
    InvalidAddress,
    TooManyConnections,
    ConnectionFailed(String),
    Other(String),
}

/// The interfaces' `qos`, named as they name it.
#[allow(clippy::enum_variant_names)]
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Qos {
    AtMostOnce,
    AtLeastOnce,
    ExactlyOnce,
}

/// Largest message a guest may publish (rumqttc's own default is 10 KiB, far below what brokers
/// accept).
const MAX_PACKET_BYTES: usize = 16 << 20;

/// MQTT carries the keep-alive as 16-bit seconds.
const MAX_KEEP_ALIVE_SECS: u64 = u16::MAX as u64;

/// How long an idle connection without keep-alive stays pooled.
const IDLE_WITHOUT_KEEP_ALIVE: Duration = Duration::from_secs(30);

/// Idle connections kept per key.
const MAX_IDLE_PER_KEY: usize = 16;

/// What makes two connections interchangeable: the same broker, client id and session settings.
#[derive(Clone, PartialEq, Eq, Hash)]
pub(crate) struct ClientKey {
    address: String,
    username: String,
    password: String,
    keep_alive_secs: u64,
}

impl ClientKey {
    /// Checks that `address` is an MQTT URL rumqttc accepts (with its `client_id`).
    pub(crate) fn new(
        address: String,
        username: String,
        password: String,
        keep_alive_secs: u64,
    ) -> Result<ClientKey, MqttError> {
        let key = ClientKey {
            address,
            username,
            password,
            keep_alive_secs: keep_alive_secs.min(MAX_KEEP_ALIVE_SECS),
        };
        key.options()?;
        Ok(key)
    }

    pub(crate) fn address(&self) -> &str {
        &self.address
    }

    fn options(&self) -> Result<MqttOptions, MqttError> {
        let mut options = MqttOptions::parse_url(self.address.as_str()).map_err(|e| {
            tracing::debug!(address = %self.address, "not an MQTT address: {e}");
            MqttError::InvalidAddress
        })?;
        // No credentials at all when both are empty, as SDK users pass "" for an anonymous broker.
        if !self.username.is_empty() || !self.password.is_empty() {
            options.set_credentials(self.username.clone(), self.password.clone());
        }
        options.set_keep_alive(Duration::from_secs(self.keep_alive_secs));
        options.set_max_packet_size(MAX_PACKET_BYTES, MAX_PACKET_BYTES);
        Ok(options)
    }

    /// How long a connection may sit idle: the broker drops a client silent for 1.5 keep-alives.
    fn max_idle(&self) -> Duration {
        match self.keep_alive_secs {
            0 => IDLE_WITHOUT_KEEP_ALIVE,
            secs => Duration::from_secs(secs),
        }
    }
}

/// A connected client: its handle and the event loop that does its I/O (driven only while a
/// call runs).
pub(crate) struct Client {
    inner: Option<(AsyncClient, EventLoop)>,
    /// Set while a publish runs and cleared when it completes: a connection whose publish failed
    /// or was abandoned is never reused.
    dirty: bool,
}

fn connection_failed(e: ConnectionError) -> MqttError {
    MqttError::ConnectionFailed(format!("MQTT connection failed: {e}"))
}

impl Client {
    /// A client that was never connected (a placeholder).
    pub(crate) fn closed() -> Client {
        Client {
            inner: None,
            dirty: true,
        }
    }

    /// Connects and waits for the broker's `CONNACK`.
    pub(crate) async fn connect(key: &ClientKey, limit: Duration) -> Result<Client, MqttError> {
        let options = key.options()?;
        let (client, mut events) = AsyncClient::new(options, 10);
        let handshake = async {
            loop {
                match events.poll().await.map_err(connection_failed)? {
                    Event::Incoming(Incoming::ConnAck(_)) => return Ok(()),
                    _ => continue,
                }
            }
        };
        match tokio::time::timeout(limit, handshake).await {
            Ok(result) => result?,
            Err(_) => {
                return Err(MqttError::ConnectionFailed(format!(
                    "the MQTT broker did not accept the connection within {} ms",
                    limit.as_millis()
                )));
            }
        }
        Ok(Client {
            inner: Some((client, events)),
            dirty: false,
        })
    }

    /// Publishes and waits until the broker has the message at `qos`.
    pub(crate) async fn publish(
        &mut self,
        topic: String,
        payload: Vec<u8>,
        qos: Qos,
        limit: Duration,
    ) -> Result<(), MqttError> {
        let Some((client, events)) = self.inner.as_mut() else {
            return Err(MqttError::Other("the connection is closed".to_string()));
        };
        check_topic(&topic)?;
        self.dirty = true;
        let qos = match qos {
            Qos::AtMostOnce => QoS::AtMostOnce,
            Qos::AtLeastOnce => QoS::AtLeastOnce,
            Qos::ExactlyOnce => QoS::ExactlyOnce,
        };
        client
            .publish_bytes(topic, qos, false, payload.into())
            .await
            .map_err(|e| MqttError::Other(format!("cannot publish: {e}")))?;
        match tokio::time::timeout(limit, delivered(events, qos)).await {
            Ok(Ok(())) => {
                self.dirty = false;
                Ok(())
            }
            Ok(Err(e)) => Err(e),
            Err(_) => Err(MqttError::Other(format!(
                "the MQTT broker did not acknowledge the message within {} ms",
                limit.as_millis()
            ))),
        }
    }

    /// Whether the broker kept the connection while it sat idle: one look at the socket, without
    /// waiting (a broker that restarted or timed the client out has closed it).
    pub(crate) async fn still_connected(&mut self) -> bool {
        let Some((_, events)) = self.inner.as_mut() else {
            return false;
        };
        !matches!(
            tokio::time::timeout(Duration::ZERO, events.poll()).await,
            Ok(Err(_))
        )
    }

    fn reusable(&self) -> bool {
        self.inner.is_some() && !self.dirty
    }
}

/// A topic a message may be published to: brokers close the connection on anything else.
fn check_topic(topic: &str) -> Result<(), MqttError> {
    if topic.is_empty() || topic.contains(['+', '#', '\0']) {
        return Err(MqttError::Other(format!(
            "cannot publish to {topic:?}: a topic name must be non-empty, without wildcards (+, #) or NUL"
        )));
    }
    Ok(())
}

/// Drives the event loop until the message just queued is delivered at `qos`.
async fn delivered(events: &mut EventLoop, qos: QoS) -> Result<(), MqttError> {
    loop {
        let event = events.poll().await.map_err(connection_failed)?;
        match (qos, event) {
            (QoS::AtMostOnce, Event::Outgoing(Outgoing::Publish(_)))
            | (QoS::AtLeastOnce, Event::Incoming(Incoming::PubAck(_)))
            | (QoS::ExactlyOnce, Event::Incoming(Incoming::PubComp(_))) => return Ok(()),
            _ => continue,
        }
    }
}

/// An app's idle connections, by key, with when each was last used.
#[derive(Default)]
pub(crate) struct Pool {
    idle: Mutex<HashMap<ClientKey, Vec<(Instant, Client)>>>,
}

impl Pool {
    /// The most recently used idle connection for `key` that the broker still keeps.
    pub(crate) fn take(&self, key: &ClientKey) -> Option<Client> {
        let mut idle = self.idle.lock().unwrap_or_else(|p| p.into_inner());
        let entries = idle.get_mut(key)?;
        while let Some((since, client)) = entries.pop() {
            if since.elapsed() < key.max_idle() {
                return Some(client);
            }
        }
        idle.remove(key);
        None
    }

    /// Keeps `client` for the next `open` with `key`, if it is clean.
    pub(crate) fn put(&self, key: ClientKey, client: Client) {
        if !client.reusable() {
            return;
        }
        let max_idle = key.max_idle();
        let mut idle = self.idle.lock().unwrap_or_else(|p| p.into_inner());
        let entries = idle.entry(key).or_default();
        entries.retain(|(since, _)| since.elapsed() < max_idle);
        if entries.len() < MAX_IDLE_PER_KEY {
            entries.push((Instant::now(), client));
        }
    }

    #[cfg(test)]
    pub(crate) fn idle_count(&self) -> usize {
        let idle = self.idle.lock().unwrap_or_else(|p| p.into_inner());
        idle.values().map(Vec::len).sum()
    }
}
