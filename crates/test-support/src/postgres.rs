//! A real PostgreSQL server (Debian's `postgresql` package), in a temp dir of its own.
//!
//! PostgreSQL refuses to run as root, so when the tests run as root, `initdb` and `postgres` run
//! as the `postgres` user the package creates (through `setpriv`, which execs in place, so killing
//! the process kills the server).

use crate::process::{Binary, Process, free_port};
use std::ffi::OsString;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::Command;

static POSTGRES: Binary = Binary {
    name: "postgres",
    env: "KILN_TEST_POSTGRES_BIN",
    package: "postgresql",
};

static PSQL: Binary = Binary {
    name: "psql",
    env: "KILN_TEST_PSQL",
    package: "postgresql-client",
};

/// The unprivileged user the server runs as when the tests run as root.
const SERVER_USER: &str = "postgres";

/// A throwaway PostgreSQL on a free loopback port (`fsync` off), with trust authentication for
/// the `postgres` superuser and its `postgres` database. Killed when dropped.
pub struct PostgresServer {
    // Dropped first: the server goes before its data directory.
    process: Process,
    _dir: tempfile::TempDir,
}

/// The directory of the server's programs: `$KILN_TEST_POSTGRES_BIN`, or Debian's newest
/// `/usr/lib/postgresql/<version>/bin`, or wherever `postgres` is on the PATH.
fn bin_dir() -> PathBuf {
    if let Some(dir) = std::env::var_os(POSTGRES.env) {
        return PathBuf::from(dir);
    }
    let mut versions: Vec<(u32, PathBuf)> = std::fs::read_dir("/usr/lib/postgresql")
        .into_iter()
        .flatten()
        .flatten()
        .filter_map(|e| Some((e.file_name().to_str()?.parse().ok()?, e.path().join("bin"))))
        .filter(|(_, bin)| bin.join("postgres").is_file())
        .collect();
    versions.sort();
    match versions.pop() {
        Some((_, bin)) => bin,
        None => POSTGRES
            .find()
            .parent()
            .map(Path::to_path_buf)
            .unwrap_or_default(),
    }
}

fn running_as_root() -> bool {
    Command::new("id")
        .arg("-u")
        .output()
        .is_ok_and(|out| String::from_utf8_lossy(&out.stdout).trim() == "0")
}

/// `program args…`, as the server user when running as root.
fn as_server_user(program: &Path) -> Command {
    if running_as_root() {
        let mut command = Command::new("setpriv");
        command
            .args(["--reuid", SERVER_USER, "--regid", SERVER_USER, "--init-groups", "--"])
            .arg(program);
        command
    } else {
        Command::new(program)
    }
}

impl PostgresServer {
    /// `initdb`, then `postgres` on a free port, waiting until it accepts connections. Panics,
    /// saying how to install it, if PostgreSQL is missing.
    pub fn start() -> PostgresServer {
        let bin = bin_dir();
        assert!(bin.join("postgres").is_file(), "`postgres` was not found. {}", POSTGRES.hint());
        let dir = tempfile::tempdir().expect("temp dir for postgres");
        if running_as_root() {
            let status = Command::new("chown")
                .args(["-R", SERVER_USER])
                .arg(dir.path())
                .status()
                .expect("run chown");
            assert!(status.success(), "chown {SERVER_USER} {} failed", dir.path().display());
        }
        let data = dir.path().join("data");
        let initdb = as_server_user(&bin.join("initdb"))
            .args(["-U", "postgres", "--auth=trust", "-E", "UTF8", "--no-sync", "-D"])
            .arg(&data)
            .output()
            .expect("run initdb");
        assert!(
            initdb.status.success(),
            "initdb failed: {}{}",
            String::from_utf8_lossy(&initdb.stdout),
            String::from_utf8_lossy(&initdb.stderr)
        );
        let mut server = PostgresServer {
            process: PostgresServer::process(&bin),
            _dir: dir,
        };
        let socket_dir = server._dir.path().as_os_str().to_owned();
        let args = |port: u16| {
            let mut args: Vec<OsString> = Vec::new();
            if running_as_root() {
                args.extend(["--reuid", SERVER_USER, "--regid", SERVER_USER, "--init-groups", "--"].map(OsString::from));
                args.push(bin.join("postgres").into_os_string());
            }
            args.push("-D".into());
            args.push(data.clone().into_os_string());
            args.extend(["-p".to_string(), port.to_string()].map(OsString::from));
            args.push("-k".into());
            args.push(socket_dir.clone());
            for setting in ["listen_addresses=127.0.0.1", "fsync=off", "synchronous_commit=off", "full_page_writes=off", "max_connections=200"] {
                args.push("-c".into());
                args.push(setting.into());
            }
            args
        };
        let psql = PSQL.find();
        let ready = |addr: SocketAddr| {
            Command::new(&psql)
                .args(["-h", "127.0.0.1", "-U", "postgres", "-d", "postgres", "-Atc", "select 1"])
                .args(["-p", &addr.port().to_string()])
                .output()
                .is_ok_and(|out| out.status.success())
        };
        server.process.start(true, args, ready);
        server
    }

    fn process(bin: &Path) -> Process {
        if running_as_root() {
            static SETPRIV: Binary = Binary { name: "setpriv", env: "KILN_TEST_SETPRIV", package: "util-linux" };
            Process::at(&POSTGRES, SETPRIV.find(), free_port())
        } else {
            Process::at(&POSTGRES, bin.join("postgres"), free_port())
        }
    }

    /// `postgres://postgres@127.0.0.1:P/postgres`
    pub fn url(&self) -> String {
        format!("postgres://postgres@127.0.0.1:{}/postgres", self.port())
    }

    pub fn port(&self) -> u16 {
        self.process.port()
    }

    /// What the server printed so far.
    pub fn log(&self) -> String {
        self.process.log()
    }

    /// Kills the server and waits until its port refuses connections.
    pub fn stop(&mut self) {
        self.process.kill();
    }

    /// Runs `sql` with `psql` and returns its unaligned, tuples-only output (`|` between columns,
    /// a line per row), trimmed. Panics if it fails.
    pub fn psql(&self, sql: &str) -> String {
        let out = Command::new(PSQL.find())
            .args(["-h", "127.0.0.1", "-U", "postgres", "-d", "postgres", "-v", "ON_ERROR_STOP=1", "-Atc", sql])
            .args(["-p", &self.port().to_string()])
            .output()
            .expect("run psql");
        assert!(out.status.success(), "psql {sql:?} failed: {}", String::from_utf8_lossy(&out.stderr));
        String::from_utf8_lossy(&out.stdout).trim().to_string()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn postgres_starts_as_an_unprivileged_user_and_answers() {
        let pg = PostgresServer::start();
        assert_eq!(pg.psql("select 40 + 2"), "42");
        assert_eq!(pg.psql("select current_user"), "postgres");
    }
}
