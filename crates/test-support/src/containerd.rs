//! A real containerd (Debian's `containerd` and `runc`) on a private root, state and socket, with
//! a directory of shims on its PATH. containerd needs root: [`Containerd::start`] says why it cannot
//! run instead of failing, so a test can skip loudly.

use std::path::{Path, PathBuf};
use std::process::{Child, Command, Output, Stdio};
use std::time::{Duration, Instant};

pub struct Containerd {
    child: Child,
    dir: tempfile::TempDir,
    namespace: String,
}

impl Containerd {
    /// Starts containerd with `shim_dir` first on its PATH; `Err` says why this machine cannot.
    pub fn start(shim_dir: &Path) -> Result<Containerd, String> {
        // SAFETY: geteuid has no preconditions.
        if unsafe { libc_geteuid() } != 0 {
            return Err("containerd needs root".into());
        }
        for binary in ["containerd", "ctr", "runc"] {
            if !on_path(binary) {
                return Err(format!("`{binary}` is not installed (Debian: apt-get install containerd runc)"));
            }
        }
        let dir = tempfile::Builder::new().prefix("kiln-ctrd-").tempdir_in("/tmp").map_err(|e| e.to_string())?;
        let config = format!(
            "version = 2\nroot = \"{root}/root\"\nstate = \"{root}/state\"\n\
             disabled_plugins = [\"io.containerd.grpc.v1.cri\"]\n\
             [grpc]\n  address = \"{root}/c.sock\"\n[ttrpc]\n  address = \"{root}/c.sock.ttrpc\"\n",
            root = dir.path().display()
        );
        std::fs::write(dir.path().join("config.toml"), config).map_err(|e| e.to_string())?;
        let log = std::fs::File::create(dir.path().join("containerd.log")).map_err(|e| e.to_string())?;
        let path = std::env::join_paths(std::iter::once(shim_dir.to_path_buf()).chain(std::env::split_paths(&std::env::var_os("PATH").unwrap_or_default())))
            .map_err(|e| e.to_string())?;
        let child = Command::new("containerd")
            .arg("--config")
            .arg(dir.path().join("config.toml"))
            .env("PATH", path)
            .stdout(log.try_clone().map_err(|e| e.to_string())?)
            .stderr(log)
            .spawn()
            .map_err(|e| format!("cannot start containerd: {e}"))?;
        let containerd = Containerd { child, dir, namespace: "kiln-test".into() };
        let deadline = Instant::now() + Duration::from_secs(20);
        while !containerd.ctr(&["version"]).status.success() {
            if Instant::now() > deadline {
                return Err(format!("containerd did not start:\n{}", containerd.log()));
            }
            std::thread::sleep(Duration::from_millis(100));
        }
        Ok(containerd)
    }

    pub fn dir(&self) -> &Path {
        self.dir.path()
    }

    /// `ctr` against this containerd, in the test namespace.
    pub fn ctr(&self, args: &[&str]) -> Output {
        self.ctr_command(args).output().expect("run ctr")
    }

    /// The `ctr` command, to spawn (e.g. `ctr run` in the foreground, copying the container's
    /// stdout and stderr: the shim takes only paths, not `--log-uri file://…`).
    pub fn ctr_command(&self, args: &[&str]) -> Command {
        let mut command = Command::new("ctr");
        command.arg("--address").arg(self.dir.path().join("c.sock")).args(["--namespace", &self.namespace]).args(args).stdin(Stdio::null());
        command
    }

    /// `ctr`, panicking with its output unless it succeeds.
    pub fn ctr_ok(&self, args: &[&str]) -> String {
        let output = self.ctr(args);
        assert!(
            output.status.success(),
            "ctr {args:?} failed: {}{}\ncontainerd's log:\n{}",
            String::from_utf8_lossy(&output.stdout),
            String::from_utf8_lossy(&output.stderr),
            self.log()
        );
        String::from_utf8_lossy(&output.stdout).into_owned()
    }

    /// The task's status (`RUNNING`, `STOPPED`, …), or `None` once it is gone.
    pub fn task_status(&self, id: &str) -> Option<String> {
        let output = self.ctr(&["task", "ls"]);
        let list = String::from_utf8_lossy(&output.stdout).into_owned();
        list.lines().skip(1).find_map(|line| {
            let fields: Vec<&str> = line.split_whitespace().collect();
            (fields.first() == Some(&id)).then(|| fields.last().unwrap_or(&"").to_string())
        })
    }

    /// What containerd and the shims it started have logged.
    pub fn log(&self) -> String {
        std::fs::read_to_string(self.dir.path().join("containerd.log")).unwrap_or_default()
    }

    fn ids(&self) -> Vec<String> {
        let output = self.ctr(&["container", "ls", "-q"]);
        String::from_utf8_lossy(&output.stdout).lines().map(str::to_string).collect()
    }
}

impl Drop for Containerd {
    fn drop(&mut self) {
        for id in self.ids() {
            let _ = self.ctr(&["task", "kill", "--signal", "SIGKILL", &id]);
            let _ = self.ctr(&["task", "delete", "--force", &id]);
            let _ = self.ctr(&["container", "delete", &id]);
        }
        let _ = self.child.kill();
        let _ = self.child.wait();
        // Root filesystems may still be mounted in the state directory; unmount them (deepest
        // first) before the directory goes.
        let mounts = std::fs::read_to_string("/proc/mounts").unwrap_or_default();
        let mut ours: Vec<&str> = mounts.lines().filter_map(|line| line.split(' ').nth(1)).filter(|at| Path::new(at).starts_with(self.dir.path())).collect();
        ours.sort_by_key(|at| std::cmp::Reverse(at.len()));
        for at in ours {
            let _ = Command::new("umount").args(["--lazy", at]).stderr(Stdio::null()).status();
        }
    }
}

fn on_path(binary: &str) -> bool {
    let path = std::env::var_os("PATH").unwrap_or_default();
    std::env::split_paths(&path).chain(["/usr/sbin".into(), "/usr/bin".into()]).any(|dir: PathBuf| dir.join(binary).is_file())
}

unsafe extern "C" {
    #[link_name = "geteuid"]
    fn libc_geteuid() -> u32;
}
