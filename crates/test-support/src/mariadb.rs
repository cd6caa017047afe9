//! A real MariaDB server (Debian's `mariadb-server` package), in a temp dir of its own, with a
//! `kiln` user (password `kiln`) and a `kiln` database reachable over TCP on a free loopback port.

use crate::process::{Binary, Process, free_port};
use std::ffi::OsString;
use std::path::{Path, PathBuf};
use std::process::Command;

static MARIADBD: Binary = Binary {
    name: "mariadbd",
    env: "KILN_TEST_MARIADBD",
    package: "mariadb-server",
};

static INSTALL_DB: Binary = Binary {
    name: "mariadb-install-db",
    env: "KILN_TEST_MARIADB_INSTALL_DB",
    package: "mariadb-server",
};

static CLIENT: Binary = Binary {
    name: "mariadb",
    env: "KILN_TEST_MARIADB",
    package: "mariadb-client",
};

/// A throwaway MariaDB. Killed when dropped.
pub struct MariaDbServer {
    // Dropped first: the server goes before its data directory.
    process: Process,
    dir: tempfile::TempDir,
}

impl MariaDbServer {
    /// `mariadb-install-db` into a temp dir, then `mariadbd` on a free port; waits until it answers
    /// and creates the `kiln` user and database. Panics, saying how to install it, if MariaDB is
    /// missing.
    pub fn start() -> MariaDbServer {
        let dir = tempfile::tempdir().expect("temp dir for mariadb");
        let data = dir.path().join("data");
        install_db(&data);
        let mut server = MariaDbServer {
            process: Process::new(&MARIADBD, free_port()),
            dir,
        };
        let socket = server.socket();
        let args = |port: u16| {
            [
                "--no-defaults".to_string(),
                format!("--datadir={}", data.display()),
                format!("--socket={}", socket.display()),
                format!("--port={port}"),
                "--bind-address=127.0.0.1".to_string(),
                "--user=root".to_string(),
                "--skip-log-bin".to_string(),
                "--innodb-flush-log-at-trx-commit=0".to_string(),
                "--max-connections=300".to_string(),
                // Linux AIO contexts are a small machine-wide pool; many servers at once (tests run
                // in parallel) exhaust it. Plain I/O is fine for tests.
                "--innodb-use-native-aio=0".to_string(),
            ]
            .map(OsString::from)
            .into()
        };
        let ready = |_| root_sql(&socket, "SELECT 1").is_ok();
        server.process.start(true, args, ready);
        server
            .root("CREATE USER 'kiln'@'%' IDENTIFIED BY 'kiln'; GRANT ALL ON *.* TO 'kiln'@'%'; CREATE DATABASE kiln;")
            .unwrap_or_else(|e| panic!("cannot create the kiln user: {e}"));
        server
    }

    fn socket(&self) -> PathBuf {
        self.dir.path().join("mariadb.sock")
    }

    /// `mysql://kiln:kiln@127.0.0.1:P/kiln`
    pub fn url(&self) -> String {
        format!("mysql://kiln:kiln@127.0.0.1:{}/kiln", self.port())
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

    /// Runs `sql` in the `kiln` database as root and returns its tab-separated output, trimmed.
    /// Panics if it fails.
    pub fn sql(&self, sql: &str) -> String {
        self.root(&format!("USE kiln; {sql}"))
            .unwrap_or_else(|e| panic!("{sql:?} failed: {e}"))
    }

    fn root(&self, sql: &str) -> Result<String, String> {
        root_sql(&self.socket(), sql)
    }
}

/// `mariadb-install-db` into `data`, tried three times: under load its bootstrap server can fail
/// to start once.
fn install_db(data: &Path) {
    let mut last = String::new();
    for _ in 0..3 {
        let _ = std::fs::remove_dir_all(data);
        let install = Command::new(INSTALL_DB.find())
            .arg("--no-defaults")
            .arg(format!("--datadir={}", data.display()))
            .args(["--user=root", "--auth-root-authentication-method=normal", "--skip-test-db"])
            .arg("--innodb-use-native-aio=0")
            .output()
            .expect("run mariadb-install-db");
        if install.status.success() {
            return;
        }
        last = format!(
            "{}{}",
            String::from_utf8_lossy(&install.stdout),
            String::from_utf8_lossy(&install.stderr)
        );
        std::thread::sleep(std::time::Duration::from_millis(300));
    }
    panic!("mariadb-install-db failed: {last}");
}

fn root_sql(socket: &Path, sql: &str) -> Result<String, String> {
    let out = Command::new(CLIENT.find())
        .arg("--no-defaults")
        .arg(format!("--socket={}", socket.display()))
        .args(["-u", "root", "-N", "-B", "-e", sql])
        .output()
        .map_err(|e| e.to_string())?;
    if !out.status.success() {
        return Err(String::from_utf8_lossy(&out.stderr).into_owned());
    }
    Ok(String::from_utf8_lossy(&out.stdout).trim().to_string())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn mariadb_starts_and_answers() {
        let db = MariaDbServer::start();
        db.sql("CREATE TABLE t (n INT); INSERT INTO t VALUES (42)");
        assert_eq!(db.sql("SELECT n FROM t"), "42");
    }
}
