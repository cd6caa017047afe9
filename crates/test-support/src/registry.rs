//! A real OCI registry: Debian's `docker-registry` (the CNCF distribution server), with its storage
//! in a temp dir, optionally behind htpasswd basic auth (`htpasswd` from `apache2-utils`).

use crate::process::{Binary, Process, free_port};
use std::ffi::OsString;
use std::io::{Read, Write};
use std::net::TcpStream;
use std::path::{Path, PathBuf};
use std::time::Duration;

static REGISTRY: Binary = Binary {
    name: "docker-registry",
    env: "KILN_TEST_REGISTRY",
    package: "docker-registry",
};

/// A throwaway registry on a free loopback port (plain HTTP). Killed when dropped.
pub struct RegistryServer {
    process: Process,
    dir: tempfile::TempDir,
}

impl RegistryServer {
    /// A registry anyone may push to and pull from.
    pub fn start() -> RegistryServer {
        RegistryServer::launch(None)
    }

    /// A registry that takes `user`/`password` only (basic auth over htpasswd, bcrypt).
    pub fn start_with_auth(user: &str, password: &str) -> RegistryServer {
        RegistryServer::launch(Some((user, password)))
    }

    fn launch(auth: Option<(&str, &str)>) -> RegistryServer {
        let dir = tempfile::tempdir().expect("temp dir for the registry");
        let auth_section = match auth {
            Some((user, password)) => {
                let htpasswd = dir.path().join("htpasswd");
                let output = std::process::Command::new("htpasswd")
                    .args(["-Bbn", user, password])
                    .output()
                    .unwrap_or_else(|e| panic!("cannot run htpasswd ({e}); install it: apt-get install apache2-utils"));
                assert!(output.status.success(), "htpasswd failed: {}", String::from_utf8_lossy(&output.stderr));
                std::fs::write(&htpasswd, &output.stdout).expect("write htpasswd");
                format!("auth:\n  htpasswd:\n    realm: kiln-tests\n    path: {}\n", htpasswd.display())
            }
            None => String::new(),
        };
        let mut server = RegistryServer { process: Process::new(&REGISTRY, free_port()), dir };
        let (storage, config_dir) = (server.storage(), server.dir.path().to_path_buf());
        let args = move |port: u16| {
            let config = format!(
                "version: 0.1\nlog:\n  level: warn\nstorage:\n  filesystem:\n    rootdirectory: {}\n  delete:\n    enabled: true\nhttp:\n  addr: 127.0.0.1:{port}\n{auth_section}",
                storage.display()
            );
            let path = config_dir.join(format!("config-{port}.yml"));
            std::fs::write(&path, config).expect("write the registry config");
            vec![OsString::from("serve"), path.into_os_string()]
        };
        let ready = |addr| {
            let Ok(mut stream) = TcpStream::connect_timeout(&addr, Duration::from_millis(200)) else { return false };
            let _ = stream.set_read_timeout(Some(Duration::from_secs(2)));
            let _ = stream.write_all(b"GET /v2/ HTTP/1.0\r\n\r\n");
            let mut reply = [0u8; 12];
            stream.read_exact(&mut reply).is_ok() && reply.starts_with(b"HTTP/1")
        };
        server.process.start(true, args, ready);
        server
    }

    /// `127.0.0.1:P`, as registry references start.
    pub fn host(&self) -> String {
        format!("127.0.0.1:{}", self.process.port())
    }

    /// Where the registry keeps blobs: `docker/registry/v2/blobs/sha256/<xx>/<hex>/data`.
    pub fn storage(&self) -> PathBuf {
        self.dir.path().join("storage")
    }

    /// The file of the blob `sha256:<hex>` on the registry's disk.
    pub fn blob_file(&self, digest: &str) -> PathBuf {
        let hex = digest.trim_start_matches("sha256:");
        self.storage().join("docker/registry/v2/blobs/sha256").join(&hex[..2]).join(hex).join("data")
    }

    pub fn log(&self) -> String {
        self.process.log()
    }

    pub fn dir(&self) -> &Path {
        self.dir.path()
    }
}
