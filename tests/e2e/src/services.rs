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
            if let Ok(reply) = self.command(&["PING"]) {
                if reply.starts_with("+PONG") {
                    return Ok(());
                }
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

/// Whether `reply` holds one complete RESP reply of the simple kinds (status, error, integer, bulk).
fn complete(reply: &[u8]) -> bool {
    let text = String::from_utf8_lossy(reply);
    let Some((head, rest)) = text.split_once("\r\n") else { return false };
    match head.as_bytes().first() {
        Some(b'$') => match head[1..].parse::<i64>() {
            Ok(n) if n < 0 => true,
            Ok(n) => rest.len() >= n as usize + 2,
            Err(_) => true,
        },
        Some(b'*') => {
            // Arrays: count the lines roughly (each bulk element is two lines).
            let count: usize = head[1..].parse().unwrap_or(0);
            rest.matches("\r\n").count() >= count * 2
        }
        _ => true,
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
