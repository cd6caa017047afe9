//! Real services for end-to-end tests, started from the machine's packages on free loopback ports:
//! Redis, NATS (with a small NATS client), MQTT (mosquitto, with a subscriber), PostgreSQL and
//! MariaDB from `kiln-test-support`, and a TCP echo server.

use std::io::{Read, Write};
use std::net::SocketAddr;
use std::time::Duration;

pub use kiln_test_support::{
    MariaDbServer, MosquittoServer, MqttMessage, MqttSubscriber, NatsClient, NatsMsg, NatsServer,
    NatsSub, PostgresServer, RedisServer, RegistryServer,
};

/// A tiny TCP echo server on a free loopback port, for outbound-socket tests: each connection gets
/// back everything it sends, until it half-closes. Runs until dropped (the thread is detached and
/// blocks in `accept`; it dies with the test process).
pub struct EchoServer {
    pub addr: SocketAddr,
}

impl EchoServer {
    pub fn start() -> EchoServer {
        let listener = std::net::TcpListener::bind("127.0.0.1:0").expect("bind echo server");
        let addr = listener.local_addr().expect("echo addr");
        std::thread::spawn(move || {
            for stream in listener.incoming() {
                let Ok(mut stream) = stream else { continue };
                std::thread::spawn(move || {
                    let _ = stream.set_read_timeout(Some(Duration::from_secs(30)));
                    let mut buf = [0u8; 4096];
                    loop {
                        match stream.read(&mut buf) {
                            Ok(0) | Err(_) => break,
                            Ok(n) => {
                                if stream.write_all(&buf[..n]).is_err() {
                                    break;
                                }
                            }
                        }
                    }
                });
            }
        });
        EchoServer { addr }
    }
}
