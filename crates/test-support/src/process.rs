//! One server process: finding its binary, starting it on a loopback port until it is ready,
//! stopping it, and keeping what it prints for error messages.

use std::ffi::OsString;
use std::io::{BufRead, BufReader, Read};
use std::net::{SocketAddr, TcpListener, TcpStream};
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

/// A loopback port that was free a moment ago.
pub fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0")
        .and_then(|listener| listener.local_addr())
        .expect("bind an ephemeral loopback port")
        .port()
}

/// A server binary from a distribution package.
pub(crate) struct Binary {
    /// As installed, e.g. `redis-server`.
    pub(crate) name: &'static str,
    /// The environment variable that names another binary to use.
    pub(crate) env: &'static str,
    /// The Debian package that installs it.
    pub(crate) package: &'static str,
}

impl Binary {
    /// `$env`, else `name` on the PATH or in /usr/sbin, /usr/bin or /usr/local/bin. Panics with an
    /// install hint if there is none.
    pub(crate) fn find(&self) -> PathBuf {
        if let Some(path) = std::env::var_os(self.env) {
            return PathBuf::from(path);
        }
        let path = std::env::var_os("PATH").unwrap_or_default();
        let fallback = ["/usr/sbin", "/usr/bin", "/usr/local/bin"].map(PathBuf::from);
        std::env::split_paths(&path)
            .chain(fallback)
            .map(|dir| dir.join(self.name))
            .find(|candidate| candidate.is_file())
            .unwrap_or_else(|| panic!("`{}` was not found on the PATH. {}", self.name, self.hint()))
    }

    pub(crate) fn hint(&self) -> String {
        format!(
            "These tests run a real `{}`. Install it (Debian/Ubuntu: `apt-get install {}`; \
             nats-server goes to /usr/sbin), or set {} to the binary's path.",
            self.name, self.package, self.env
        )
    }
}

/// A server listening on a loopback port; what it prints is kept (across restarts) for error
/// messages. Killed when dropped.
pub(crate) struct Process {
    binary: &'static Binary,
    path: PathBuf,
    port: u16,
    child: Option<Child>,
    log: Arc<Mutex<String>>,
}

impl Process {
    /// Finds the binary (panicking with an install hint if it is missing); starts nothing yet.
    pub(crate) fn new(binary: &'static Binary, port: u16) -> Process {
        Process::at(binary, binary.find(), port)
    }

    /// [`Process::new`] with the program to run found by the caller (e.g. a wrapper that runs
    /// `binary` as another user).
    pub(crate) fn at(binary: &'static Binary, path: PathBuf, port: u16) -> Process {
        Process {
            binary,
            path,
            port,
            child: None,
            log: Default::default(),
        }
    }

    /// Starts the server with `args(port)` and waits until `ready(address)` (20 s at most a try).
    /// Tries five times: after a restart the port may still be held for a moment. With `may_move`,
    /// a failed try moves to another free port (someone may have taken the one chosen).
    pub(crate) fn start(
        &mut self,
        may_move: bool,
        args: impl Fn(u16) -> Vec<OsString>,
        ready: impl Fn(SocketAddr) -> bool,
    ) {
        assert!(
            self.child.is_none(),
            "{} is already running",
            self.binary.name
        );
        const TRIES: u32 = 5;
        for attempt in 1..=TRIES {
            let mut child = Command::new(&self.path)
                .args(args(self.port))
                .stdin(Stdio::null())
                .stdout(Stdio::piped())
                .stderr(Stdio::piped())
                .spawn()
                .unwrap_or_else(|e| {
                    panic!(
                        "cannot start {}: {e}. {}",
                        self.path.display(),
                        self.binary.hint()
                    )
                });
            let outputs = [
                child
                    .stdout
                    .take()
                    .map(|s| Box::new(s) as Box<dyn Read + Send>),
                child.stderr.take().map(|s| Box::new(s) as _),
            ];
            for output in outputs.into_iter().flatten() {
                let log = self.log.clone();
                std::thread::spawn(move || {
                    for line in BufReader::new(output).lines().map_while(Result::ok) {
                        let mut log = log.lock().unwrap_or_else(|p| p.into_inner());
                        log.push_str(&line);
                        log.push('\n');
                    }
                });
            }
            self.child = Some(child);
            if self.wait_ready(&ready, Duration::from_secs(20)) {
                return;
            }
            let (name, port) = (self.binary.name, self.port);
            if attempt == TRIES {
                panic!("{name} on port {port} did not start:\n{}", self.log());
            }
            eprintln!(
                "{name} on port {port} did not start (attempt {attempt}):\n{}",
                self.log()
            );
            std::thread::sleep(Duration::from_millis(300));
            if may_move {
                self.port = free_port();
            }
        }
    }

    /// Whether the server became ready; if not, it is no longer running.
    fn wait_ready(&mut self, ready: &impl Fn(SocketAddr) -> bool, timeout: Duration) -> bool {
        let started = Instant::now();
        while started.elapsed() < timeout {
            // Another server may be listening on the port (a parallel test chose the same free
            // one): it answers at once, while ours fails to bind and exits. The server is ready
            // only once it answers and is still running a moment later.
            if ready(self.addr()) {
                std::thread::sleep(Duration::from_millis(100));
                return !self.exited();
            }
            if self.exited() {
                return false;
            }
            std::thread::sleep(Duration::from_millis(20));
        }
        self.kill_child();
        false
    }

    /// Whether the child has exited (then it is forgotten).
    fn exited(&mut self) -> bool {
        if let Some(child) = self.child.as_mut()
            && let Ok(Some(_)) = child.try_wait()
        {
            self.child = None;
            return true;
        }
        false
    }

    pub(crate) fn port(&self) -> u16 {
        self.port
    }

    pub(crate) fn addr(&self) -> SocketAddr {
        SocketAddr::from(([127, 0, 0, 1], self.port))
    }

    pub(crate) fn pid(&self) -> Option<u32> {
        self.child.as_ref().map(Child::id)
    }

    pub(crate) fn is_running(&self) -> bool {
        self.child.is_some()
    }

    /// Everything the server printed so far, across restarts.
    pub(crate) fn log(&self) -> String {
        self.log.lock().unwrap_or_else(|p| p.into_inner()).clone()
    }

    /// Sends `signal` as `kill` takes it (`-STOP`, `-CONT`, `-TERM`, …).
    pub(crate) fn signal(&self, signal: &str) {
        let pid = self
            .pid()
            .unwrap_or_else(|| panic!("{} is not running", self.binary.name));
        let status = Command::new("kill")
            .arg(signal)
            .arg(pid.to_string())
            .status()
            .expect("run kill");
        assert!(status.success(), "kill {signal} {pid} failed");
    }

    /// SIGKILL, then waits until the port refuses connections.
    pub(crate) fn kill(&mut self) {
        self.kill_child();
        self.wait_port_closed();
    }

    /// SIGTERM (SIGKILL if still running after `grace`), then waits until the port refuses
    /// connections.
    pub(crate) fn terminate(&mut self, grace: Duration) {
        if let Some(mut child) = self.child.take() {
            let _ = Command::new("kill")
                .arg("-TERM")
                .arg(child.id().to_string())
                .status();
            let started = Instant::now();
            while !matches!(child.try_wait(), Ok(Some(_))) {
                if started.elapsed() > grace {
                    let _ = child.kill();
                    let _ = child.wait();
                    break;
                }
                std::thread::sleep(Duration::from_millis(20));
            }
        }
        self.wait_port_closed();
    }

    fn kill_child(&mut self) {
        if let Some(mut child) = self.child.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
    }

    fn wait_port_closed(&self) {
        let started = Instant::now();
        while TcpStream::connect_timeout(&self.addr(), Duration::from_millis(100)).is_ok() {
            assert!(
                started.elapsed() < Duration::from_secs(10),
                "{} port {} still accepts after stop",
                self.binary.name,
                self.port
            );
            std::thread::sleep(Duration::from_millis(20));
        }
    }
}

impl Drop for Process {
    fn drop(&mut self) {
        self.kill_child();
    }
}
