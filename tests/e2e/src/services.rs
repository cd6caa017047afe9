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

/// A tiny HTTP/1.1 file server on a free loopback port, for `{ url, digest }` sources: `GET <path>`
/// answers 200 with the bytes registered for `path`, anything else 404. One connection at a time is
/// enough for a download; runs until the test process ends.
pub struct StaticServer {
    pub addr: SocketAddr,
}

impl StaticServer {
    pub fn start(files: Vec<(String, Vec<u8>)>) -> StaticServer {
        let listener = std::net::TcpListener::bind("127.0.0.1:0").expect("bind static server");
        let addr = listener.local_addr().expect("static server addr");
        std::thread::spawn(move || {
            for stream in listener.incoming() {
                let Ok(mut stream) = stream else { continue };
                let _ = stream.set_read_timeout(Some(Duration::from_secs(10)));
                let mut request = Vec::new();
                let mut buf = [0u8; 1024];
                while !request.windows(4).any(|w| w == b"\r\n\r\n") {
                    match stream.read(&mut buf) {
                        Ok(0) | Err(_) => break,
                        Ok(n) => request.extend_from_slice(&buf[..n]),
                    }
                }
                let text = String::from_utf8_lossy(&request);
                let path = text.split_whitespace().nth(1).unwrap_or("");
                let response = match files.iter().find(|(p, _)| p == path) {
                    Some((_, body)) => [format!("HTTP/1.1 200 OK\r\ncontent-length: {}\r\nconnection: close\r\n\r\n", body.len()).into_bytes(), body.clone()].concat(),
                    None => b"HTTP/1.1 404 Not Found\r\ncontent-length: 0\r\nconnection: close\r\n\r\n".to_vec(),
                };
                let _ = stream.write_all(&response);
            }
        });
        StaticServer { addr }
    }

    pub fn url(&self, path: &str) -> String {
        format!("http://{}{path}", self.addr)
    }
}
