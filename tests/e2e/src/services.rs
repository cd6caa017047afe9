//! Real services for end-to-end tests, started from the machine's packages on free loopback ports.

use std::io::{Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

/// A throwaway `redis-server` (Debian's `redis-server` package) on a free loopback port, with no
/// persistence. Killed when dropped.
pub struct RedisServer {
    child: Option<Child>,
    port: u16,
    dir: tempfile::TempDir,
}

impl RedisServer {
    /// Starts `redis-server --save "" --appendonly no --port P --bind 127.0.0.1` and waits until it
    /// answers `PING`. Panics, saying how to install it, if `redis-server` is not on the PATH.
    pub fn start() -> RedisServer {
        let dir = tempfile::tempdir().expect("temp dir for redis");
        let port = crate::kiln::free_addr().port();
        let mut server = RedisServer { child: None, port, dir };
        server.spawn();
        server
    }

    fn spawn(&mut self) {
        let binary = redis_server_binary();
        let mut attempts = 0;
        loop {
            attempts += 1;
            let child = Command::new(&binary)
                .args(["--save", "", "--appendonly", "no", "--bind", "127.0.0.1", "--protected-mode", "no"])
                .arg("--port")
                .arg(self.port.to_string())
                .arg("--dir")
                .arg(self.dir.path())
                .stdin(Stdio::null())
                .stdout(Stdio::piped())
                .stderr(Stdio::piped())
                .spawn()
                .unwrap_or_else(|e| panic!("failed to start {}: {e}{}", binary.display(), INSTALL_HINT));
            self.child = Some(child);
            match self.wait_ready(Duration::from_secs(20)) {
                Ok(()) => return,
                // After a restart the port may still be held for a moment: try again.
                Err(log) if attempts < 5 => {
                    eprintln!("redis-server on port {} did not start (attempt {attempts}):\n{log}", self.port);
                    std::thread::sleep(Duration::from_millis(300));
                }
                Err(log) => panic!("redis-server on port {} did not start:\n{log}", self.port),
            }
        }
    }

    /// Waits until the server answers PING; on failure, kills it and returns its output.
    fn wait_ready(&mut self, timeout: Duration) -> Result<(), String> {
        let started = Instant::now();
        while started.elapsed() < timeout {
            if let Ok(reply) = self.command(&["PING"])
                && reply.starts_with("+PONG") {
                    return Ok(());
                }
            let child = self.child.as_mut().expect("spawned");
            if let Ok(Some(_)) = child.try_wait() {
                return Err(take_output(self.child.take().unwrap()));
            }
            std::thread::sleep(Duration::from_millis(20));
        }
        let mut child = self.child.take().unwrap();
        let _ = child.kill();
        Err(take_output(child))
    }

    /// `redis://127.0.0.1:P`
    pub fn url(&self) -> String {
        format!("redis://127.0.0.1:{}", self.port)
    }

    pub fn port(&self) -> u16 {
        self.port
    }

    pub fn addr(&self) -> SocketAddr {
        SocketAddr::from(([127, 0, 0, 1], self.port))
    }

    /// Whether the server is running (it was not stopped).
    pub fn is_running(&self) -> bool {
        self.child.is_some()
    }

    /// Kills the server (SIGKILL) and waits until its port refuses connections.
    pub fn stop(&mut self) {
        if let Some(mut child) = self.child.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
        let started = Instant::now();
        while TcpStream::connect_timeout(&self.addr(), Duration::from_millis(100)).is_ok() {
            assert!(started.elapsed() < Duration::from_secs(10), "redis port {} still accepts after stop", self.port);
            std::thread::sleep(Duration::from_millis(20));
        }
    }

    /// Starts the server again on the same port (empty: nothing is persisted).
    pub fn restart(&mut self) {
        self.stop();
        self.spawn();
    }

    /// Sends one command (as a RESP array of bulk strings) and returns the raw reply, e.g. `+PONG\r\n`,
    /// `$3\r\nbar\r\n`, `:1\r\n`. For checking from the test what a guest wrote.
    pub fn command(&self, args: &[&str]) -> std::io::Result<String> {
        let mut stream = TcpStream::connect_timeout(&self.addr(), Duration::from_millis(500))?;
        stream.set_read_timeout(Some(Duration::from_secs(5)))?;
        let mut request = format!("*{}\r\n", args.len());
        for arg in args {
            request.push_str(&format!("${}\r\n{arg}\r\n", arg.len()));
        }
        stream.write_all(request.as_bytes())?;
        let mut reply = Vec::new();
        let mut buf = [0u8; 4096];
        // Read until one complete reply is in (good enough for the simple replies tests look at).
        loop {
            let n = stream.read(&mut buf)?;
            if n == 0 {
                break;
            }
            reply.extend_from_slice(&buf[..n]);
            if complete(&reply) {
                break;
            }
        }
        Ok(String::from_utf8_lossy(&reply).into_owned())
    }

    /// `GET key` as the value, or `None` for nil.
    pub fn get(&self, key: &str) -> Option<String> {
        let reply = self.command(&["GET", key]).expect("redis GET");
        if reply.starts_with("$-1") {
            return None;
        }
        let (_, rest) = reply.split_once("\r\n").expect("bulk reply");
        Some(rest.trim_end_matches("\r\n").to_string())
    }
}

/// Whether `reply` holds one complete RESP reply (of any kind, arrays nested or not).
fn complete(reply: &[u8]) -> bool {
    resp_end(reply, 0).is_some()
}

/// Where the RESP element starting at `at` ends, if it is complete.
fn resp_end(reply: &[u8], at: usize) -> Option<usize> {
    let line_end = at + reply.get(at..)?.windows(2).position(|w| w == b"\r\n")?;
    let head = std::str::from_utf8(&reply[at..line_end]).ok()?;
    let after = line_end + 2;
    match head.as_bytes().first()? {
        b'$' => match head[1..].parse::<i64>().ok()? {
            n if n < 0 => Some(after),
            n => (reply.len() >= after + n as usize + 2).then_some(after + n as usize + 2),
        },
        b'*' => {
            let count = head[1..].parse::<i64>().ok()?;
            (0..count.max(0)).try_fold(after, |pos, _| resp_end(reply, pos))
        }
        _ => Some(after),
    }
}

fn take_output(child: Child) -> String {
    match child.wait_with_output() {
        Ok(out) => format!("{}{}", String::from_utf8_lossy(&out.stdout), String::from_utf8_lossy(&out.stderr)),
        Err(e) => format!("(no output: {e})"),
    }
}

const INSTALL_HINT: &str = "\n\nThe Redis end-to-end tests run a real Redis server. Install it with:\n\n    \
                            apt-get update && apt-get install -y redis-server\n\n\
                            (or put a `redis-server` binary on the PATH, or set KILN_E2E_REDIS_SERVER).\n";

/// `$KILN_E2E_REDIS_SERVER`, else `redis-server` found on the PATH (or in /usr/bin, /usr/sbin).
fn redis_server_binary() -> PathBuf {
    if let Some(path) = std::env::var_os("KILN_E2E_REDIS_SERVER") {
        return PathBuf::from(path);
    }
    let path = std::env::var_os("PATH").unwrap_or_default();
    let dirs = std::env::split_paths(&path).chain(["/usr/bin".into(), "/usr/sbin".into(), "/usr/local/bin".into()]);
    for dir in dirs {
        let candidate = dir.join("redis-server");
        if candidate.is_file() {
            return candidate;
        }
    }
    panic!("`redis-server` was not found on the PATH.{INSTALL_HINT}");
}

impl Drop for RedisServer {
    fn drop(&mut self) {
        if let Some(mut child) = self.child.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
    }
}

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

// -------------------------------------------------------------------------------------------------
// NATS

/// A throwaway `nats-server` (Debian's `nats-server` package, 2.9) with JetStream on, storing in its
/// own temp dir, on a free loopback port: `nats-server -a 127.0.0.1 -p P -js -sd DIR`. Killed when
/// dropped. Restartable on the same port and store (JetStream state survives a restart).
pub struct NatsServer {
    child: Option<Child>,
    port: u16,
    dir: tempfile::TempDir,
    log: std::sync::Arc<std::sync::Mutex<String>>,
}

impl NatsServer {
    /// Starts the server and waits until it greets a client with `INFO`. Panics, saying how to
    /// install it, if `nats-server` is not on the PATH.
    pub fn start() -> NatsServer {
        let dir = tempfile::tempdir().expect("temp dir for nats");
        let port = crate::kiln::free_addr().port();
        let mut server = NatsServer { child: None, port, dir, log: Default::default() };
        server.spawn();
        server
    }

    fn spawn(&mut self) {
        let binary = nats_server_binary();
        let mut attempts = 0;
        loop {
            attempts += 1;
            let mut child = Command::new(&binary)
                .args(["-a", "127.0.0.1", "-p"])
                .arg(self.port.to_string())
                .arg("-js")
                .arg("-sd")
                .arg(self.dir.path())
                .stdin(Stdio::null())
                .stdout(Stdio::piped())
                .stderr(Stdio::piped())
                .spawn()
                .unwrap_or_else(|e| panic!("failed to start {}: {e}{}", binary.display(), NATS_INSTALL_HINT));
            for stream in [child.stderr.take().map(|s| Box::new(s) as Box<dyn Read + Send>), child.stdout.take().map(|s| Box::new(s) as _)]
                .into_iter()
                .flatten()
            {
                let log = self.log.clone();
                std::thread::spawn(move || {
                    use std::io::BufRead;
                    for line in std::io::BufReader::new(stream).lines().map_while(Result::ok) {
                        log.lock().unwrap().push_str(&(line + "\n"));
                    }
                });
            }
            self.child = Some(child);
            match self.wait_ready(Duration::from_secs(20)) {
                Ok(()) => return,
                Err(()) if attempts < 5 => {
                    eprintln!("nats-server on port {} did not start (attempt {attempts}):\n{}", self.port, self.log());
                    std::thread::sleep(Duration::from_millis(300));
                }
                Err(()) => panic!("nats-server on port {} did not start:\n{}", self.port, self.log()),
            }
        }
    }

    fn wait_ready(&mut self, timeout: Duration) -> Result<(), ()> {
        let started = Instant::now();
        while started.elapsed() < timeout {
            if let Ok(stream) = TcpStream::connect_timeout(&self.addr(), Duration::from_millis(200)) {
                let _ = stream.set_read_timeout(Some(Duration::from_secs(2)));
                let mut line = String::new();
                use std::io::BufRead;
                if std::io::BufReader::new(stream).read_line(&mut line).is_ok() && line.starts_with("INFO") {
                    // JetStream is ready once its API answers.
                    if let Ok(client) = NatsClient::connect(self.addr())
                        && client.request("$JS.API.INFO", b"", Duration::from_secs(2)).is_some() {
                            return Ok(());
                        }
                }
            }
            let child = self.child.as_mut().expect("spawned");
            if let Ok(Some(_)) = child.try_wait() {
                self.child = None;
                return Err(());
            }
            std::thread::sleep(Duration::from_millis(20));
        }
        if let Some(mut child) = self.child.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
        Err(())
    }

    /// `nats://127.0.0.1:P`
    pub fn url(&self) -> String {
        format!("nats://127.0.0.1:{}", self.port)
    }

    pub fn port(&self) -> u16 {
        self.port
    }

    pub fn addr(&self) -> SocketAddr {
        SocketAddr::from(([127, 0, 0, 1], self.port))
    }

    /// Where JetStream stores its data.
    pub fn store_dir(&self) -> &std::path::Path {
        self.dir.path()
    }

    /// What the server printed so far (across restarts).
    pub fn log(&self) -> String {
        self.log.lock().unwrap().clone()
    }

    pub fn is_running(&self) -> bool {
        self.child.is_some()
    }

    /// Stops the server the way an operator would (SIGTERM: JetStream flushes its store; SIGKILL
    /// after 10 s) and waits until its port refuses connections.
    pub fn stop(&mut self) {
        if let Some(mut child) = self.child.take() {
            let _ = Command::new("kill").arg("-TERM").arg(child.id().to_string()).status();
            let started = Instant::now();
            loop {
                if let Ok(Some(_)) = child.try_wait() {
                    break;
                }
                if started.elapsed() > Duration::from_secs(10) {
                    let _ = child.kill();
                    let _ = child.wait();
                    break;
                }
                std::thread::sleep(Duration::from_millis(20));
            }
        }
        self.wait_port_closed();
    }

    /// SIGKILL (no flush), and waits until the port refuses connections.
    pub fn kill(&mut self) {
        if let Some(mut child) = self.child.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
        self.wait_port_closed();
    }

    fn wait_port_closed(&self) {
        let started = Instant::now();
        while TcpStream::connect_timeout(&self.addr(), Duration::from_millis(100)).is_ok() {
            assert!(started.elapsed() < Duration::from_secs(10), "nats port {} still accepts after stop", self.port);
            std::thread::sleep(Duration::from_millis(20));
        }
    }

    /// Starts the server again (after [`NatsServer::stop`]) on the same port and store.
    pub fn restart(&mut self) {
        self.stop();
        self.spawn();
    }

    /// A new client connection (for publishing and subscribing from the test).
    pub fn client(&self) -> NatsClient {
        NatsClient::connect(self.addr()).unwrap_or_else(|e| panic!("connect to nats-server on {}: {e}", self.addr()))
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
            .unwrap_or_else(|| panic!("no JetStream ack for a publish on {subject}:\n{}", self.log()));
        let ack: serde_json::Value = serde_json::from_slice(&reply.payload).unwrap_or_else(|e| {
            panic!("JetStream ack on {subject} is not JSON ({e}): {}", String::from_utf8_lossy(&reply.payload))
        });
        assert!(ack.get("error").is_none() && ack.get("seq").is_some(), "JetStream refused a publish on {subject}: {ack}");
        ack
    }

    /// `$JS.API.<api>` (e.g. `STREAM.INFO.ORDERS`, `CONSUMER.INFO.ORDERS.worker`, `STREAM.NAMES`) →
    /// the JSON answer, or `None` if nothing answered.
    pub fn js_api(&self, api: &str, body: &str) -> Option<serde_json::Value> {
        let reply = self.client().request(&format!("$JS.API.{api}"), body.as_bytes(), Duration::from_secs(5))?;
        serde_json::from_slice(&reply.payload).ok()
    }

    /// The names of every stream.
    pub fn stream_names(&self) -> Vec<String> {
        let Some(v) = self.js_api("STREAM.NAMES", "") else { return Vec::new() };
        v["streams"].as_array().map(|a| a.iter().filter_map(|s| s.as_str().map(str::to_string)).collect()).unwrap_or_default()
    }
}

impl Drop for NatsServer {
    fn drop(&mut self) {
        if let Some(mut child) = self.child.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
    }
}

const NATS_INSTALL_HINT: &str = "\n\nThe NATS end-to-end tests run a real NATS server with JetStream. Install it with:\n\n    \
                                 apt-get update && apt-get install -y nats-server\n\n\
                                 (or put a `nats-server` binary on the PATH, or set KILN_E2E_NATS_SERVER).\n";

/// `$KILN_E2E_NATS_SERVER`, else `nats-server` on the PATH (or in /usr/sbin, /usr/bin, /usr/local/bin).
fn nats_server_binary() -> PathBuf {
    if let Some(path) = std::env::var_os("KILN_E2E_NATS_SERVER") {
        return PathBuf::from(path);
    }
    let path = std::env::var_os("PATH").unwrap_or_default();
    let dirs = std::env::split_paths(&path).chain(["/usr/sbin".into(), "/usr/bin".into(), "/usr/local/bin".into()]);
    for dir in dirs {
        let candidate = dir.join("nats-server");
        if candidate.is_file() {
            return candidate;
        }
    }
    panic!("`nats-server` was not found on the PATH.{NATS_INSTALL_HINT}");
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
        self.headers.iter().find(|(k, _)| k.eq_ignore_ascii_case(name)).map(|(_, v)| v.as_str())
    }
}

type Subscribers = std::sync::Arc<std::sync::Mutex<std::collections::HashMap<u64, std::sync::mpsc::Sender<NatsMsg>>>>;

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
        use std::io::BufRead;
        let stream = TcpStream::connect_timeout(&addr, Duration::from_secs(2))?;
        stream.set_nodelay(true)?;
        let mut reader = std::io::BufReader::new(stream.try_clone()?);
        stream.set_read_timeout(Some(Duration::from_secs(5)))?;
        let mut info = String::new();
        reader.read_line(&mut info)?;
        if !info.starts_with("INFO") {
            return Err(std::io::Error::other(format!("expected INFO, got {info:?}")));
        }
        stream.set_read_timeout(None)?;
        let mut writer = stream;
        writer.write_all(b"CONNECT {\"verbose\":false,\"pedantic\":false,\"headers\":true,\"no_responders\":true,\"lang\":\"rust-e2e\",\"version\":\"0\"}\r\n")?;
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
        assert!(self.try_flush(Duration::from_secs(10)), "nats-server did not answer PING");
    }

    fn try_flush(&self, timeout: Duration) -> bool {
        let n = self.conn.pings_sent.fetch_add(1, std::sync::atomic::Ordering::SeqCst) + 1;
        if self.conn.writer.lock().unwrap().write_all(b"PING\r\n").is_err() {
            return false;
        }
        let (lock, cvar) = &*self.conn.pongs;
        let guard = lock.lock().unwrap();
        let (guard, _) = cvar.wait_timeout_while(guard, timeout, |got| *got < n).unwrap();
        *guard >= n
    }

    pub fn publish(&self, subject: &str, payload: &[u8]) {
        self.publish_full(subject, None, &[], payload);
    }

    /// PUB (or HPUB when there are headers) with an optional reply subject.
    pub fn publish_full(&self, subject: &str, reply: Option<&str>, headers: &[(&str, &str)], payload: &[u8]) {
        let reply = reply.map(|r| format!(" {r}")).unwrap_or_default();
        let mut frame = Vec::with_capacity(payload.len() + 64);
        if headers.is_empty() {
            frame.extend_from_slice(format!("PUB {subject}{reply} {}\r\n", payload.len()).as_bytes());
        } else {
            let mut h = String::from("NATS/1.0\r\n");
            for (k, v) in headers {
                h.push_str(&format!("{k}: {v}\r\n"));
            }
            h.push_str("\r\n");
            frame.extend_from_slice(format!("HPUB {subject}{reply} {} {}\r\n", h.len(), h.len() + payload.len()).as_bytes());
            frame.extend_from_slice(h.as_bytes());
        }
        frame.extend_from_slice(payload);
        frame.extend_from_slice(b"\r\n");
        self.write(&frame);
    }

    /// SUB (with an optional queue group); flushed, so the subscription is in place on return.
    pub fn subscribe(&self, subject: &str, queue: Option<&str>) -> NatsSub {
        let sid = self.conn.next_sid.fetch_add(1, std::sync::atomic::Ordering::SeqCst);
        let (tx, rx) = std::sync::mpsc::channel();
        self.conn.subs.lock().unwrap().insert(sid, tx);
        let queue = queue.map(|q| format!(" {q}")).unwrap_or_default();
        self.write(format!("SUB {subject}{queue} {sid}\r\n").as_bytes());
        self.flush();
        NatsSub { sid, rx, _conn: self.conn.clone() }
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

    pub fn request_with_headers(&self, subject: &str, headers: &[(&str, &str)], payload: &[u8], timeout: Duration) -> Option<NatsMsg> {
        let inbox = format!("_INBOX.e2e.{}.{}", std::process::id(), self.conn.next_sid.fetch_add(1, std::sync::atomic::Ordering::SeqCst));
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
    use std::io::BufRead;
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
                let header_len: usize = if with_headers { parts[parts.len() - 2].parse().unwrap_or(0) } else { 0 };
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
mod nats_tests {
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
        assert_eq!((m.subject.as_str(), m.reply.as_deref(), m.header("x-key"), m.text().as_str()), ("t.a", Some("r.1"), Some("v 1"), "hello"));
        let m = sub.next(Duration::from_secs(5)).expect("second message");
        assert_eq!((m.subject.as_str(), m.reply, m.payload.len()), ("t.b", None, 0));

        // A subscription keeps its connection open after the client itself is dropped.
        let orphan = server.client().subscribe("t.orphan", None);
        client.publish("t.orphan", b"still here");
        assert_eq!(orphan.next(Duration::from_secs(5)).map(|m| m.text()).as_deref(), Some("still here"));

        // Request/reply through a responder on another connection; no responders → None.
        let responder = server.client();
        let rsub = responder.subscribe("svc", None);
        let handle = std::thread::spawn(move || {
            let m = rsub.next(Duration::from_secs(5)).expect("request");
            responder.publish(m.reply.as_deref().unwrap(), &m.text().to_uppercase().into_bytes());
            responder.flush();
        });
        assert_eq!(client.request("svc", b"ping", Duration::from_secs(5)).map(|m| m.text()), Some("PING".into()));
        handle.join().unwrap();
        assert!(client.request("nobody", b"x", Duration::from_secs(2)).is_none());

        // Queue group: each message to one member.
        let (q1, q2) = (client.subscribe("q", Some("g")), client.subscribe("q", Some("g")));
        for i in 0..20 {
            client.publish("q", i.to_string().as_bytes());
        }
        client.flush();
        let got = q1.drain(Duration::from_millis(300), Duration::from_secs(5)).len() + q2.drain(Duration::from_millis(300), Duration::from_secs(5)).len();
        assert_eq!(got, 20);

        // JetStream: a stream, an acked publish, and the stream survives a restart.
        let created = server.js_api("STREAM.CREATE.E2E", r#"{"name":"E2E","subjects":["e2e.>"],"storage":"file"}"#).unwrap();
        assert!(created.get("error").is_none(), "{created}");
        let ack = server.js_publish("e2e.one", b"1");
        assert_eq!(ack["seq"], 1);
        server.restart();
        assert_eq!(server.stream_names(), vec!["E2E".to_string()]);
        let info = server.js_api("STREAM.INFO.E2E", "").unwrap();
        assert_eq!(info["state"]["messages"], 1, "{info}");
    }
}
