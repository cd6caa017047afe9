//! A real `nats-server` with JetStream, and a minimal blocking NATS client for tests.

use crate::process::{Binary, Process, free_port};
use std::ffi::OsString;
use std::io::{BufRead, Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::time::{Duration, Instant};

static NATS: Binary = Binary {
    name: "nats-server",
    env: "KILN_TEST_NATS_SERVER",
    package: "nats-server",
};

/// A throwaway `nats-server` with JetStream on (`-js`, storing in a temp dir of its own), on a free
/// loopback port. Killed when dropped. Restartable on the same port and store: JetStream state
/// survives a [`NatsServer::restart`].
pub struct NatsServer {
    // Dropped first: the server goes before its store.
    process: Process,
    dir: tempfile::TempDir,
}

impl NatsServer {
    /// Starts `nats-server -a 127.0.0.1 -p P -js -sd DIR` and waits until JetStream answers. Panics,
    /// saying how to install it, if `nats-server` is missing.
    pub fn start() -> NatsServer {
        let dir = tempfile::tempdir().expect("temp dir for nats-server");
        let mut server = NatsServer {
            process: Process::new(&NATS, free_port()),
            dir,
        };
        server.run(true);
        server
    }

    fn run(&mut self, may_move: bool) {
        let store = self.dir.path().as_os_str().to_owned();
        let args = |port: u16| {
            let mut args: Vec<OsString> = [
                "-a",
                "127.0.0.1",
                "-p",
                port.to_string().as_str(),
                "-js",
                "-sd",
            ]
            .map(OsString::from)
            .into();
            args.push(store.clone());
            args
        };
        // Ready once JetStream's API answers, not merely once the port accepts.
        let ready = |addr| {
            NatsClient::connect(addr).is_ok_and(|client| {
                client
                    .request("$JS.API.INFO", b"", Duration::from_secs(2))
                    .is_some()
            })
        };
        self.process.start(may_move, args, ready);
    }

    /// `nats://127.0.0.1:P`
    pub fn url(&self) -> String {
        format!("nats://127.0.0.1:{}", self.port())
    }

    pub fn port(&self) -> u16 {
        self.process.port()
    }

    pub fn addr(&self) -> SocketAddr {
        self.process.addr()
    }

    /// Where JetStream stores its data.
    pub fn store_dir(&self) -> &std::path::Path {
        self.dir.path()
    }

    /// What the server printed so far (across restarts).
    pub fn log(&self) -> String {
        self.process.log()
    }

    pub fn is_running(&self) -> bool {
        self.process.is_running()
    }

    /// Stops the server the way an operator would (SIGTERM: JetStream flushes its store; SIGKILL
    /// after 10 s) and waits until its port refuses connections.
    pub fn stop(&mut self) {
        self.process.terminate(Duration::from_secs(10));
    }

    /// SIGKILL (no flush), and waits until the port refuses connections.
    pub fn kill(&mut self) {
        self.process.kill();
    }

    /// Starts the server again on the same port and store, stopping it first if it runs.
    pub fn restart(&mut self) {
        self.stop();
        self.run(false);
    }

    /// A new client connection (for publishing and subscribing from the test).
    pub fn client(&self) -> NatsClient {
        NatsClient::connect(self.addr())
            .unwrap_or_else(|e| panic!("connect to nats-server on {}: {e}", self.addr()))
    }

    /// Publishes one message (core NATS) and flushes (a PING/PONG round trip, so the server has it).
    pub fn publish(&self, subject: &str, payload: &[u8]) {
        let client = self.client();
        client.publish(subject, payload);
        client.flush();
    }

    /// Publishes into JetStream and waits for the stream's ack: returns the PubAck JSON
    /// (`{"stream":"…","seq":N}`). Panics if no stream stores the subject.
    pub fn js_publish(&self, subject: &str, payload: &[u8]) -> serde_json::Value {
        let client = self.client();
        let reply = client
            .request(subject, payload, Duration::from_secs(5))
            .unwrap_or_else(|| {
                panic!(
                    "no JetStream ack for a publish on {subject}:\n{}",
                    self.log()
                )
            });
        let ack: serde_json::Value = serde_json::from_slice(&reply.payload).unwrap_or_else(|e| {
            panic!(
                "JetStream ack on {subject} is not JSON ({e}): {}",
                String::from_utf8_lossy(&reply.payload)
            )
        });
        assert!(
            ack.get("error").is_none() && ack.get("seq").is_some(),
            "JetStream refused a publish on {subject}: {ack}"
        );
        ack
    }

    /// `$JS.API.<api>` (e.g. `STREAM.INFO.ORDERS`, `CONSUMER.INFO.ORDERS.worker`, `STREAM.NAMES`) →
    /// the JSON answer, or `None` if nothing answered.
    pub fn js_api(&self, api: &str, body: &str) -> Option<serde_json::Value> {
        let reply = self.client().request(
            &format!("$JS.API.{api}"),
            body.as_bytes(),
            Duration::from_secs(5),
        )?;
        serde_json::from_slice(&reply.payload).ok()
    }

    /// The names of every stream.
    pub fn stream_names(&self) -> Vec<String> {
        let Some(v) = self.js_api("STREAM.NAMES", "") else {
            return Vec::new();
        };
        v["streams"]
            .as_array()
            .map(|a| {
                a.iter()
                    .filter_map(|s| s.as_str().map(str::to_string))
                    .collect()
            })
            .unwrap_or_default()
    }
}

/// A message a [`NatsClient`] received.
#[derive(Clone, Debug)]
pub struct NatsMsg {
    pub subject: String,
    pub reply: Option<String>,
    /// Header lines after `NATS/1.0`, as (name, value); empty for a plain `MSG`.
    pub headers: Vec<(String, String)>,
    /// The status on the `NATS/1.0` line, e.g. `503` for "no responders".
    pub status: Option<String>,
    pub payload: Vec<u8>,
}

impl NatsMsg {
    pub fn text(&self) -> String {
        String::from_utf8_lossy(&self.payload).into_owned()
    }

    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(k, _)| k.eq_ignore_ascii_case(name))
            .map(|(_, v)| v.as_str())
    }
}

type Subscribers = std::sync::Arc<
    std::sync::Mutex<std::collections::HashMap<u64, std::sync::mpsc::Sender<NatsMsg>>>,
>;

/// A minimal blocking NATS client speaking the text protocol (CONNECT, PUB/HPUB, SUB/UNSUB,
/// MSG/HMSG, PING/PONG), so the tests need no async runtime. A reader thread hands each message to
/// its subscription's channel. Not for production: no reconnects, no TLS, no auth.
///
/// The connection stays open while the client or any of its subscriptions lives, so
/// `nats.client().subscribe(..)` (the client a temporary) keeps receiving.
pub struct NatsClient {
    conn: std::sync::Arc<NatsConn>,
}

/// The connection a [`NatsClient`] and its [`NatsSub`]s share; closed when the last one is dropped.
struct NatsConn {
    writer: std::sync::Mutex<TcpStream>,
    subs: Subscribers,
    pongs: std::sync::Arc<(std::sync::Mutex<u64>, std::sync::Condvar)>,
    pings_sent: std::sync::atomic::AtomicU64,
    next_sid: std::sync::atomic::AtomicU64,
}

/// One subscription of a [`NatsClient`]. It keeps the connection open.
pub struct NatsSub {
    pub sid: u64,
    rx: std::sync::mpsc::Receiver<NatsMsg>,
    _conn: std::sync::Arc<NatsConn>,
}

impl NatsSub {
    /// The next message, or `None` after `timeout`.
    pub fn next(&self, timeout: Duration) -> Option<NatsMsg> {
        self.rx.recv_timeout(timeout).ok()
    }

    /// Every message that arrives until `quiet` passes with none (or `max_wait` in all).
    pub fn drain(&self, quiet: Duration, max_wait: Duration) -> Vec<NatsMsg> {
        let started = Instant::now();
        let mut out = Vec::new();
        while started.elapsed() < max_wait {
            match self.rx.recv_timeout(quiet) {
                Ok(m) => out.push(m),
                Err(_) => break,
            }
        }
        out
    }
}

impl NatsClient {
    pub fn connect(addr: SocketAddr) -> std::io::Result<NatsClient> {
        let stream = TcpStream::connect_timeout(&addr, Duration::from_secs(2))?;
        stream.set_nodelay(true)?;
        let mut reader = std::io::BufReader::new(stream.try_clone()?);
        stream.set_read_timeout(Some(Duration::from_secs(5)))?;
        let mut info = String::new();
        reader.read_line(&mut info)?;
        if !info.starts_with("INFO") {
            return Err(std::io::Error::other(format!(
                "expected INFO, got {info:?}"
            )));
        }
        stream.set_read_timeout(None)?;
        let mut writer = stream;
        writer.write_all(b"CONNECT {\"verbose\":false,\"pedantic\":false,\"headers\":true,\"no_responders\":true,\"lang\":\"kiln-test-support\",\"version\":\"0\"}\r\n")?;
        let subs: Subscribers = Default::default();
        let pongs = std::sync::Arc::new((std::sync::Mutex::new(0u64), std::sync::Condvar::new()));
        let ponger = writer.try_clone()?;
        {
            let subs = subs.clone();
            let pongs = pongs.clone();
            std::thread::spawn(move || read_loop(reader, ponger, subs, pongs));
        }
        let client = NatsClient {
            conn: std::sync::Arc::new(NatsConn {
                writer: std::sync::Mutex::new(writer),
                subs,
                pongs,
                pings_sent: Default::default(),
                next_sid: std::sync::atomic::AtomicU64::new(1),
            }),
        };
        if !client.try_flush(Duration::from_secs(5)) {
            return Err(std::io::Error::other("no PONG after CONNECT"));
        }
        Ok(client)
    }

    fn write(&self, bytes: &[u8]) {
        let mut w = self.conn.writer.lock().unwrap();
        w.write_all(bytes).expect("write to nats-server");
    }

    /// PING and wait for its PONG: every command sent before has been processed by the server.
    pub fn flush(&self) {
        assert!(
            self.try_flush(Duration::from_secs(10)),
            "nats-server did not answer PING"
        );
    }

    fn try_flush(&self, timeout: Duration) -> bool {
        let n = self
            .conn
            .pings_sent
            .fetch_add(1, std::sync::atomic::Ordering::SeqCst)
            + 1;
        if self
            .conn
            .writer
            .lock()
            .unwrap()
            .write_all(b"PING\r\n")
            .is_err()
        {
            return false;
        }
        let (lock, cvar) = &*self.conn.pongs;
        let guard = lock.lock().unwrap();
        let (guard, _) = cvar
            .wait_timeout_while(guard, timeout, |got| *got < n)
            .unwrap();
        *guard >= n
    }

    pub fn publish(&self, subject: &str, payload: &[u8]) {
        self.publish_full(subject, None, &[], payload);
    }

    /// PUB (or HPUB when there are headers) with an optional reply subject.
    pub fn publish_full(
        &self,
        subject: &str,
        reply: Option<&str>,
        headers: &[(&str, &str)],
        payload: &[u8],
    ) {
        let reply = reply.map(|r| format!(" {r}")).unwrap_or_default();
        let mut frame = Vec::with_capacity(payload.len() + 64);
        if headers.is_empty() {
            frame.extend_from_slice(
                format!("PUB {subject}{reply} {}\r\n", payload.len()).as_bytes(),
            );
        } else {
            let mut h = String::from("NATS/1.0\r\n");
            for (k, v) in headers {
                h.push_str(&format!("{k}: {v}\r\n"));
            }
            h.push_str("\r\n");
            frame.extend_from_slice(
                format!(
                    "HPUB {subject}{reply} {} {}\r\n",
                    h.len(),
                    h.len() + payload.len()
                )
                .as_bytes(),
            );
            frame.extend_from_slice(h.as_bytes());
        }
        frame.extend_from_slice(payload);
        frame.extend_from_slice(b"\r\n");
        self.write(&frame);
    }

    /// SUB (with an optional queue group); flushed, so the subscription is in place on return.
    pub fn subscribe(&self, subject: &str, queue: Option<&str>) -> NatsSub {
        let sid = self
            .conn
            .next_sid
            .fetch_add(1, std::sync::atomic::Ordering::SeqCst);
        let (tx, rx) = std::sync::mpsc::channel();
        self.conn.subs.lock().unwrap().insert(sid, tx);
        let queue = queue.map(|q| format!(" {q}")).unwrap_or_default();
        self.write(format!("SUB {subject}{queue} {sid}\r\n").as_bytes());
        self.flush();
        NatsSub {
            sid,
            rx,
            _conn: self.conn.clone(),
        }
    }

    pub fn unsubscribe(&self, sub: NatsSub) {
        self.write(format!("UNSUB {}\r\n", sub.sid).as_bytes());
        self.conn.subs.lock().unwrap().remove(&sub.sid);
    }

    /// Request/reply on a fresh inbox: the first answer, or `None` after `timeout` or on "no
    /// responders" (status 503).
    pub fn request(&self, subject: &str, payload: &[u8], timeout: Duration) -> Option<NatsMsg> {
        self.request_with_headers(subject, &[], payload, timeout)
    }

    pub fn request_with_headers(
        &self,
        subject: &str,
        headers: &[(&str, &str)],
        payload: &[u8],
        timeout: Duration,
    ) -> Option<NatsMsg> {
        let inbox = format!(
            "_INBOX.e2e.{}.{}",
            std::process::id(),
            self.conn
                .next_sid
                .fetch_add(1, std::sync::atomic::Ordering::SeqCst)
        );
        let sub = self.subscribe(&inbox, None);
        self.publish_full(subject, Some(&inbox), headers, payload);
        let reply = sub.next(timeout);
        self.unsubscribe(sub);
        reply.filter(|m| m.status.as_deref() != Some("503"))
    }
}

fn read_loop(
    mut reader: std::io::BufReader<TcpStream>,
    mut ponger: TcpStream,
    subs: Subscribers,
    pongs: std::sync::Arc<(std::sync::Mutex<u64>, std::sync::Condvar)>,
) {
    let mut line = String::new();
    loop {
        line.clear();
        match reader.read_line(&mut line) {
            Ok(0) | Err(_) => return,
            Ok(_) => {}
        }
        let head = line.trim_end();
        let parts: Vec<&str> = head.split_whitespace().collect();
        match parts.first().copied() {
            Some("PING") => {
                let _ = ponger.write_all(b"PONG\r\n");
            }
            Some("PONG") => {
                let (lock, cvar) = &*pongs;
                *lock.lock().unwrap() += 1;
                cvar.notify_all();
            }
            Some("MSG") | Some("HMSG") => {
                let with_headers = parts[0] == "HMSG";
                // MSG <subject> <sid> [reply] <#bytes>; HMSG <subject> <sid> [reply] <#hdr> <#total>
                let fixed = if with_headers { 5 } else { 4 };
                let reply = (parts.len() > fixed).then(|| parts[3].to_string());
                let total: usize = parts.last().and_then(|n| n.parse().ok()).unwrap_or(0);
                let header_len: usize = if with_headers {
                    parts[parts.len() - 2].parse().unwrap_or(0)
                } else {
                    0
                };
                let mut buf = vec![0u8; total + 2];
                if reader.read_exact(&mut buf).is_err() {
                    return;
                }
                buf.truncate(total);
                let (mut headers, mut status) = (Vec::new(), None);
                if with_headers {
                    let text = String::from_utf8_lossy(&buf[..header_len]).into_owned();
                    let mut lines = text.split("\r\n");
                    if let Some(first) = lines.next() {
                        status = first.split_whitespace().nth(1).map(str::to_string);
                    }
                    for l in lines {
                        if let Some((k, v)) = l.split_once(':') {
                            headers.push((k.trim().to_string(), v.trim().to_string()));
                        }
                    }
                }
                let msg = NatsMsg {
                    subject: parts.get(1).unwrap_or(&"").to_string(),
                    reply,
                    headers,
                    status,
                    payload: buf[header_len..].to_vec(),
                };
                let sid: u64 = parts.get(2).and_then(|s| s.parse().ok()).unwrap_or(0);
                if let Some(tx) = subs.lock().unwrap().get(&sid) {
                    let _ = tx.send(msg);
                }
            }
            Some("-ERR") => eprintln!("nats-server: {head}"),
            _ => {}
        }
    }
}

impl Drop for NatsConn {
    fn drop(&mut self) {
        if let Ok(w) = self.writer.lock() {
            let _ = w.shutdown(std::net::Shutdown::Both);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The test client against the real server: pub/sub, headers, request/reply, queue groups,
    /// JetStream publish acks, and a restart keeping JetStream's store.
    #[test]
    fn nats_client_and_server() {
        let mut server = NatsServer::start();
        let client = server.client();
        let sub = client.subscribe("t.*", None);
        client.publish_full("t.a", Some("r.1"), &[("X-Key", "v 1")], b"hello");
        client.publish("t.b", b"");
        let m = sub.next(Duration::from_secs(5)).expect("first message");
        assert_eq!(
            (
                m.subject.as_str(),
                m.reply.as_deref(),
                m.header("x-key"),
                m.text().as_str()
            ),
            ("t.a", Some("r.1"), Some("v 1"), "hello")
        );
        let m = sub.next(Duration::from_secs(5)).expect("second message");
        assert_eq!(
            (m.subject.as_str(), m.reply, m.payload.len()),
            ("t.b", None, 0)
        );

        // A subscription keeps its connection open after the client itself is dropped.
        let orphan = server.client().subscribe("t.orphan", None);
        client.publish("t.orphan", b"still here");
        assert_eq!(
            orphan
                .next(Duration::from_secs(5))
                .map(|m| m.text())
                .as_deref(),
            Some("still here")
        );

        // Request/reply through a responder on another connection; no responders → None.
        let responder = server.client();
        let rsub = responder.subscribe("svc", None);
        let handle = std::thread::spawn(move || {
            let m = rsub.next(Duration::from_secs(5)).expect("request");
            responder.publish(
                m.reply.as_deref().unwrap(),
                &m.text().to_uppercase().into_bytes(),
            );
            responder.flush();
        });
        assert_eq!(
            client
                .request("svc", b"ping", Duration::from_secs(5))
                .map(|m| m.text()),
            Some("PING".into())
        );
        handle.join().unwrap();
        assert!(
            client
                .request("nobody", b"x", Duration::from_secs(2))
                .is_none()
        );

        // Queue group: each message to one member.
        let (q1, q2) = (
            client.subscribe("q", Some("g")),
            client.subscribe("q", Some("g")),
        );
        for i in 0..20 {
            client.publish("q", i.to_string().as_bytes());
        }
        client.flush();
        let got = q1
            .drain(Duration::from_millis(300), Duration::from_secs(5))
            .len()
            + q2.drain(Duration::from_millis(300), Duration::from_secs(5))
                .len();
        assert_eq!(got, 20);

        // JetStream: a stream, an acked publish, and the stream survives a restart.
        let created = server
            .js_api(
                "STREAM.CREATE.E2E",
                r#"{"name":"E2E","subjects":["e2e.>"],"storage":"file"}"#,
            )
            .unwrap();
        assert!(created.get("error").is_none(), "{created}");
        let ack = server.js_publish("e2e.one", b"1");
        assert_eq!(ack["seq"], 1);
        server.restart();
        assert_eq!(server.stream_names(), vec!["E2E".to_string()]);
        let info = server.js_api("STREAM.INFO.E2E", "").unwrap();
        assert_eq!(info["state"]["messages"], 1, "{info}");
    }
}
