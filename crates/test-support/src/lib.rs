//! Real servers for Kiln's tests: a `redis-server` ([`RedisServer`]) and a `nats-server` with
//! JetStream ([`NatsServer`]), started from the machine's packages, each on a free loopback port and
//! killed when dropped. A test fails at once, saying how to install the binary, if it is missing.
//!
//! Debian/Ubuntu: `apt-get install redis-server nats-server`. Debian puts `nats-server` in `/usr/sbin`,
//! which is searched even when it is not on the PATH. `KILN_TEST_REDIS_SERVER` and
//! `KILN_TEST_NATS_SERVER` name another binary to use.
//!
//! Also a minimal blocking NATS client ([`NatsClient`]) for checking from a test what a guest sent.
//!
//! For the outbound database and MQTT interfaces: [`MosquittoServer`] (with a `mosquitto_sub`
//! [`MqttSubscriber`]), [`PostgresServer`] (`initdb` into a temp dir; run as the `postgres` user
//! when the tests run as root, since PostgreSQL refuses root) and [`MariaDbServer`]
//! (`mariadb-install-db` into a temp dir). Debian: `apt-get install mosquitto mosquitto-clients
//! postgresql mariadb-server`.

mod containerd;
mod mariadb;
mod mqtt;
mod nats;
mod postgres;
mod process;
mod redis;
mod registry;
mod trigger;

pub use containerd::Containerd;
pub use mariadb::MariaDbServer;
pub use mqtt::{MosquittoServer, MqttMessage, MqttSubscriber};
pub use nats::{NatsClient, NatsMsg, NatsServer, NatsSub};
pub use postgres::PostgresServer;
pub use process::free_port;
pub use redis::RedisServer;
pub use registry::RegistryServer;
pub use trigger::StartedTrigger;
