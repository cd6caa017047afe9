//! Starting the real `kiln` binary for a test, and talking to it.

use std::io::{BufRead, BufReader};
use std::net::{SocketAddr, TcpListener};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, ExitStatus, Stdio};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

/// A compile cache shared by every test of a run, so each guest is compiled once.
pub fn shared_cache_dir() -> PathBuf {
    std::env::temp_dir().join(format!("kiln-e2e-cache-{}", env!("CARGO_PKG_VERSION")))
}

/// A free loopback port (bound and released: another process could take it, rarely).
pub fn free_addr() -> SocketAddr {
    let listener = TcpListener::bind("127.0.0.1:0").expect("bind an ephemeral port");
    listener.local_addr().expect("local addr")
}

/// A running `kiln up`; killed when dropped.
pub struct Kiln {
    child: Child,
    pub addr: SocketAddr,
    log: Arc<Mutex<String>>,
}

impl Kiln {
    /// Starts `kiln up -f <manifest> --listen <free port> <extra…>` and waits until it serves the
    /// health endpoint. Panics with the log if it does not come up.
    pub fn up(bin: &Path, manifest: &Path, extra: &[&str]) -> Kiln {
        Self::up_with_env(bin, manifest, extra, &[])
    }

    pub fn up_with_env(bin: &Path, manifest: &Path, extra: &[&str], env: &[(&str, &str)]) -> Kiln {
        Self::up_with_env_timeout(bin, manifest, extra, env, Duration::from_secs(120))
    }

    /// As [`Kiln::up_with_env`], waiting up to `timeout` for the app to serve (a large guest's first
    /// compile, such as an interpreter's, takes longer than the default allows on a busy machine).
    pub fn up_with_env_timeout(bin: &Path, manifest: &Path, extra: &[&str], env: &[(&str, &str)], timeout: Duration) -> Kiln {
        // Start-ups run one at a time: the first start of a guest compiles it into the shared cache,
        // and dozens of test threads compiling the same guests at once on a small machine would
        // starve each other. Once started, tests run in parallel.
        static STARTING: Mutex<()> = Mutex::new(());
        let _one_at_a_time = STARTING.lock().unwrap_or_else(|poisoned| poisoned.into_inner());
        let addr = free_addr();
        let mut command = Command::new(bin);
        command.arg("up").arg("-f").arg(manifest).arg("--listen").arg(addr.to_string()).args(extra);
        command.env("KILN_CACHE_DIR", shared_cache_dir());
        for (key, value) in env {
            command.env(key, value);
        }
        let kiln = Self::spawn(command, addr);
        kiln.wait_healthy(timeout);
        kiln
    }

    /// Spawns `command` (which must listen on `addr`), capturing its stderr.
    pub fn spawn(mut command: Command, addr: SocketAddr) -> Kiln {
        command.stdout(Stdio::piped()).stderr(Stdio::piped()).stdin(Stdio::null());
        die_with_parent(&mut command);
        let mut child = command.spawn().expect("start kiln");
        let log = Arc::new(Mutex::new(String::new()));
        for stream in [child.stderr.take().map(|s| Box::new(s) as Box<dyn std::io::Read + Send>), child.stdout.take().map(|s| Box::new(s) as _)].into_iter().flatten() {
            let log = log.clone();
            std::thread::spawn(move || {
                for line in BufReader::new(stream).lines().map_while(Result::ok) {
                    log.lock().unwrap().push_str(&(line + "\n"));
                }
            });
        }
        Kiln { child, addr, log }
    }

    /// Waits until `/.well-known/spin/health` answers 200; panics if kiln exits or `timeout` passes.
    pub fn wait_healthy(&self, timeout: Duration) {
        let started = Instant::now();
        let url = self.url("/.well-known/spin/health");
        while started.elapsed() < timeout {
            if let Ok(response) = reqwest::blocking::get(&url)
                && response.status() == 200 {
                    return;
                }
            if let Ok(Some(status)) = self.child_status() {
                panic!("kiln exited with {status} before serving:\n{}", self.log());
            }
            std::thread::sleep(Duration::from_millis(20));
        }
        panic!("kiln did not serve within {timeout:?}:\n{}", self.log());
    }

    fn child_status(&self) -> std::io::Result<Option<ExitStatus>> {
        // `try_wait` needs `&mut`; a zero-signal `kill` tells whether the process is alive.
        let alive = Command::new("kill").arg("-0").arg(self.child.id().to_string()).stderr(Stdio::null()).status()?;
        Ok(if alive.success() { None } else { Some(alive) })
    }

    pub fn url(&self, path: &str) -> String {
        format!("http://{}{path}", self.addr)
    }

    pub fn get(&self, path: &str) -> reqwest::blocking::Response {
        client().get(self.url(path)).send().unwrap_or_else(|err| panic!("GET {path}: {err}\n{}", self.log()))
    }

    /// Everything kiln printed so far.
    pub fn log(&self) -> String {
        self.log.lock().unwrap().clone()
    }

    /// Waits until the log contains `needle`.
    pub fn wait_for_log(&self, needle: &str, timeout: Duration) -> bool {
        let started = Instant::now();
        while started.elapsed() < timeout {
            if self.log().contains(needle) {
                return true;
            }
            std::thread::sleep(Duration::from_millis(20));
        }
        false
    }

    pub fn pid(&self) -> u32 {
        self.child.id()
    }

    /// Sends a signal by name (`TERM`, `INT`, `KILL`).
    pub fn signal(&self, name: &str) {
        let status = Command::new("kill").arg(format!("-{name}")).arg(self.child.id().to_string()).status().expect("run kill");
        assert!(status.success(), "kill -{name} failed");
    }

    /// Waits for the process to exit.
    pub fn wait_exit(&mut self, timeout: Duration) -> Option<ExitStatus> {
        let started = Instant::now();
        while started.elapsed() < timeout {
            if let Ok(Some(status)) = self.child.try_wait() {
                return Some(status);
            }
            std::thread::sleep(Duration::from_millis(20));
        }
        None
    }
}

impl Drop for Kiln {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// Has the kernel kill the child when the thread that started it ends (the test's thread, or the
/// whole test binary when it is killed): a test that panics while other threads hold its `Kiln` would
/// otherwise leave a server running. Start a `Kiln` on the thread that keeps using it.
fn die_with_parent(command: &mut Command) {
    use std::os::unix::process::CommandExt;
    // SAFETY: `prctl(PR_SET_PDEATHSIG)` is async-signal-safe and touches only the calling (child)
    // process, as `pre_exec` requires.
    unsafe {
        command.pre_exec(|| {
            if libc::prctl(libc::PR_SET_PDEATHSIG, libc::SIGKILL) == -1 {
                return Err(std::io::Error::last_os_error());
            }
            Ok(())
        });
    }
}

/// A client without proxies, connection reuse or timeouts surprises.
pub fn client() -> reqwest::blocking::Client {
    reqwest::blocking::Client::builder()
        .no_proxy()
        .timeout(Duration::from_secs(120))
        .build()
        .expect("build client")
}

/// Runs `kiln <args>` to completion (it is expected to fail fast); returns its status and stderr.
pub fn run_to_exit(bin: &Path, args: &[&str], timeout: Duration) -> (ExitStatus, String) {
    let mut child = Command::new(bin)
        .args(args)
        .env("KILN_CACHE_DIR", shared_cache_dir())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("start kiln");
    let started = Instant::now();
    loop {
        if let Some(_status) = child.try_wait().expect("wait") {
            let output = child.wait_with_output().expect("output");
            let text = String::from_utf8_lossy(&output.stderr).to_string() + &String::from_utf8_lossy(&output.stdout);
            return (output.status, text);
        }
        if started.elapsed() > timeout {
            let _ = child.kill();
            let output = child.wait_with_output().expect("output");
            panic!("kiln {args:?} did not exit within {timeout:?}:\n{}", String::from_utf8_lossy(&output.stderr));
        }
        std::thread::sleep(Duration::from_millis(20));
    }
}

/// A temporary app directory: writes `kiln.toml` with `manifest` and the given extra files.
pub fn app_dir(manifest: &str, files: &[(&str, &str)]) -> tempfile::TempDir {
    let dir = tempfile::tempdir().expect("temp dir");
    std::fs::write(dir.path().join("kiln.toml"), manifest).expect("write manifest");
    for (name, content) in files {
        let path = dir.path().join(name);
        std::fs::create_dir_all(path.parent().unwrap()).unwrap();
        std::fs::write(path, content).unwrap();
    }
    dir
}
