//! A real `redis-server`.

use crate::process::{Binary, Process, free_port};
use std::ffi::OsString;
use std::io::{Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::time::Duration;

static REDIS: Binary = Binary {
    name: "redis-server",
    env: "KILN_TEST_REDIS_SERVER",
    package: "redis-server",
};

/// A throwaway `redis-server` on a free loopback port, persisting nothing (its working directory is
/// a temp dir of its own). Killed when dropped.
pub struct RedisServer {
    // Dropped first: the server goes before its directory.
    process: Process,
    dir: tempfile::TempDir,
    /// Whether it writes an append-only file (fsync on every write) and so keeps its data across
    /// [`RedisServer::restart`].
    persistent: bool,
}

impl RedisServer {
    /// Starts `redis-server --port P --bind 127.0.0.1 --save "" --appendonly no` and waits until it
    /// answers `PING`. Panics, saying how to install it, if `redis-server` is missing.
    pub fn start() -> RedisServer {
        RedisServer::launch(free_port(), true, false)
    }

    /// [`RedisServer::start`] on `port`, e.g. to bring back a server dropped before.
    pub fn start_on(port: u16) -> RedisServer {
        RedisServer::launch(port, false, false)
    }

    /// A server with `--appendonly yes --appendfsync always`: every write it acknowledged survives a
    /// kill -9 and [`RedisServer::restart`].
    pub fn start_persistent() -> RedisServer {
        RedisServer::launch(free_port(), true, true)
    }

    fn launch(port: u16, may_move: bool, persistent: bool) -> RedisServer {
        let dir = tempfile::tempdir().expect("temp dir for redis-server");
        let mut server = RedisServer {
            process: Process::new(&REDIS, port),
            dir,
            persistent,
        };
        server.run(may_move);
        server
    }

    fn run(&mut self, may_move: bool) {
        let dir = self.dir.path().as_os_str().to_owned();
        let appendonly = if self.persistent { "yes" } else { "no" };
        let args = |port: u16| {
            let port = port.to_string();
            let mut args: Vec<OsString> = [
                "--port",
                port.as_str(),
                "--bind",
                "127.0.0.1",
                "--protected-mode",
                "no",
                "--save",
                "",
                "--appendonly",
                appendonly,
                "--appendfsync",
                "always",
                "--dir",
            ]
            .map(OsString::from)
            .into();
            args.push(dir.clone());
            args
        };
        let ready =
            |addr| command_at(addr, &["PING"]).is_ok_and(|reply| reply.starts_with("+PONG"));
        self.process.start(may_move, args, ready);
    }

    /// `redis://127.0.0.1:P`
    pub fn url(&self) -> String {
        format!("redis://127.0.0.1:{}", self.port())
    }

    pub fn port(&self) -> u16 {
        self.process.port()
    }

    pub fn addr(&self) -> SocketAddr {
        self.process.addr()
    }

    /// The server's process id, while it runs.
    pub fn pid(&self) -> Option<u32> {
        self.process.pid()
    }

    /// Whether the server is running (it was not stopped).
    pub fn is_running(&self) -> bool {
        self.process.is_running()
    }

    /// What the server printed so far.
    pub fn log(&self) -> String {
        self.process.log()
    }

    /// Sends `signal` as `kill` takes it: `-STOP` freezes the server, `-CONT` lets it go on.
    pub fn signal(&self, signal: &str) {
        self.process.signal(signal)
    }

    /// Kills the server (SIGKILL) and waits until its port refuses connections.
    pub fn stop(&mut self) {
        self.process.kill();
    }

    /// Starts the server again on the same port, stopping it first if it runs. It starts empty
    /// unless it is [persistent](RedisServer::start_persistent).
    pub fn restart(&mut self) {
        self.stop();
        self.run(false);
    }

    /// Sends one command (as a RESP array of bulk strings) and returns the raw reply, e.g.
    /// `+PONG\r\n`, `$3\r\nbar\r\n`, `:1\r\n`. For checking from a test what a guest wrote.
    pub fn command(&self, args: &[&str]) -> std::io::Result<String> {
        command_at(self.addr(), args)
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

fn command_at(addr: SocketAddr, args: &[&str]) -> std::io::Result<String> {
    let mut stream = TcpStream::connect_timeout(&addr, Duration::from_millis(500))?;
    stream.set_read_timeout(Some(Duration::from_secs(5)))?;
    let mut request = format!("*{}\r\n", args.len());
    for arg in args {
        request.push_str(&format!("${}\r\n{arg}\r\n", arg.len()));
    }
    stream.write_all(request.as_bytes())?;
    let mut reply = Vec::new();
    let mut buf = [0u8; 4096];
    // Until one complete reply is in.
    loop {
        let n = stream.read(&mut buf)?;
        if n == 0 {
            break;
        }
        reply.extend_from_slice(&buf[..n]);
        if resp_end(&reply, 0).is_some() {
            break;
        }
    }
    Ok(String::from_utf8_lossy(&reply).into_owned())
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn resp_replies_are_complete_only_when_whole() {
        assert_eq!(resp_end(b"+PONG\r\n", 0), Some(7));
        assert_eq!(resp_end(b"+PON", 0), None);
        assert_eq!(resp_end(b"$3\r\nba", 0), None);
        assert_eq!(resp_end(b"$3\r\nbar\r\n", 0), Some(9));
        assert_eq!(resp_end(b"$-1\r\n", 0), Some(5));
        assert_eq!(resp_end(b"*2\r\n:1\r\n$1\r\n", 0), None);
        assert_eq!(resp_end(b"*2\r\n:1\r\n$1\r\nx\r\n", 0), Some(15));
    }

    #[test]
    fn redis_server_starts_restarts_and_stops() {
        let mut redis = RedisServer::start();
        assert!(redis.is_running() && redis.url().ends_with(&redis.port().to_string()));
        assert_eq!(redis.command(&["SET", "k", "v"]).unwrap(), "+OK\r\n");
        assert_eq!(redis.get("k").as_deref(), Some("v"));
        redis.signal("-STOP");
        redis.signal("-CONT");
        let port = redis.port();
        redis.restart();
        assert_eq!(
            (redis.port(), redis.get("k")),
            (port, None),
            "same port, nothing kept"
        );
        redis.stop();
        assert!(!redis.is_running() && redis.command(&["PING"]).is_err());
        drop(redis);
        let again = RedisServer::start_on(port);
        assert_eq!(again.command(&["PING"]).unwrap(), "+PONG\r\n");
    }
}
