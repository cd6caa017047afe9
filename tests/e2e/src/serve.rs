//! Starting the real `kiln serve` for a test, deploying to it, and calling its apps.

use crate::kiln::{Kiln, client, free_addr, shared_cache_dir};
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::{Duration, Instant};

/// A running `kiln serve` with its own data directory; killed when dropped (the directory stays
/// while the `KilnServe` or the `tempfile::TempDir` it was given lives).
pub struct KilnServe {
    pub kiln: Kiln,
    pub admin: std::net::SocketAddr,
    pub data_dir: PathBuf,
    pub token: String,
}

impl KilnServe {
    /// Starts `kiln serve --data-dir <data_dir> --listen <free> --admin-listen <free> <extra…>` and
    /// waits until the admin API answers.
    pub fn start(bin: &Path, data_dir: &Path, extra: &[&str]) -> KilnServe {
        let (addr, admin) = (free_addr(), free_addr());
        let mut command = Command::new(bin);
        command
            .arg("serve")
            .arg("--data-dir")
            .arg(data_dir)
            .arg("--listen")
            .arg(addr.to_string())
            .arg("--admin-listen")
            .arg(admin.to_string())
            .args(extra)
            .env("KILN_CACHE_DIR", shared_cache_dir());
        let kiln = Kiln::spawn(command, addr);
        let started = Instant::now();
        loop {
            if let Ok(response) = client().get(format!("http://{admin}/healthz")).send()
                && response.status() == 200 {
                    break;
                }
            assert!(started.elapsed() < Duration::from_secs(60), "kiln serve did not start:\n{}", kiln.log());
            std::thread::sleep(Duration::from_millis(20));
        }
        let token = std::fs::read_to_string(data_dir.join("admin-token")).expect("admin token written").trim().to_string();
        KilnServe { kiln, admin, data_dir: data_dir.to_path_buf(), token }
    }

    pub fn admin_url(&self, path: &str) -> String {
        format!("http://{}{path}", self.admin)
    }

    /// `PUT /v1/apps/<name>?<query>` with `archive`; returns the status and the JSON body.
    pub fn deploy(&self, name: &str, query: &str, archive: Vec<u8>) -> (u16, serde_json::Value) {
        let url = if query.is_empty() { self.admin_url(&format!("/v1/apps/{name}")) } else { self.admin_url(&format!("/v1/apps/{name}?{query}")) };
        let response = client()
            .put(url)
            .bearer_auth(&self.token)
            .header("content-type", "application/gzip")
            .body(archive)
            .send()
            .unwrap_or_else(|err| panic!("deploy {name}: {err}\n{}", self.kiln.log()));
        json_of(response)
    }

    /// Deploys and panics unless it succeeded.
    pub fn deploy_ok(&self, name: &str, query: &str, archive: Vec<u8>) -> serde_json::Value {
        let (status, body) = self.deploy(name, query, archive);
        assert!(status == 200 || status == 201, "deploy {name}: {status} {body}\n{}", self.kiln.log());
        body
    }

    /// An authenticated admin request.
    pub fn admin(&self, method: &str, path: &str) -> (u16, serde_json::Value) {
        let method = reqwest::Method::from_bytes(method.as_bytes()).expect("method");
        let response = client().request(method, self.admin_url(path)).bearer_auth(&self.token).send().expect("admin request");
        json_of(response)
    }

    /// The admin API's `GET /metrics` (OpenMetrics text).
    pub fn metrics(&self) -> String {
        let response = client().get(self.admin_url("/metrics")).bearer_auth(&self.token).send().expect("GET /metrics");
        assert_eq!(response.status(), 200, "GET /metrics\n{}", self.kiln.log());
        response.text().expect("metrics text")
    }

    /// `GET http://<app>.localhost:<port><path>` (sent to the loopback address with that `Host`).
    pub fn app_get(&self, app: &str, path: &str) -> reqwest::blocking::Response {
        client()
            .get(self.kiln.url(path))
            .header("host", format!("{app}.localhost:{}", self.kiln.addr.port()))
            .send()
            .unwrap_or_else(|err| panic!("GET {app}{path}: {err}\n{}", self.kiln.log()))
    }

    /// The body of a 200 response from `app`, or a panic with the status and log.
    pub fn app_text(&self, app: &str, path: &str) -> String {
        let response = self.app_get(app, path);
        let status = response.status();
        let body = response.text().unwrap_or_default();
        assert_eq!(status, 200, "GET {app}{path}: {body}\n{}", self.kiln.log());
        body
    }
}

fn json_of(response: reqwest::blocking::Response) -> (u16, serde_json::Value) {
    let status = response.status().as_u16();
    let text = response.text().unwrap_or_default();
    let value = if text.is_empty() { serde_json::Value::Null } else { serde_json::from_str(&text).unwrap_or(serde_json::Value::String(text)) };
    (status, value)
}

/// An app archive as `kiln deploy` uploads it: a gzip-compressed tar with the manifest at its root.
#[derive(Default)]
pub struct AppArchive {
    entries: Vec<(String, Vec<u8>)>,
}

impl AppArchive {
    /// Starts an archive with `kiln.toml` holding `manifest`.
    pub fn new(manifest: &str) -> AppArchive {
        AppArchive { entries: vec![("kiln.toml".to_string(), manifest.as_bytes().to_vec())] }
    }

    pub fn file(mut self, path: &str, content: impl Into<Vec<u8>>) -> AppArchive {
        self.entries.push((path.to_string(), content.into()));
        self
    }

    /// Adds the built guest `name` at `path`.
    pub fn guest(self, path: &str, name: &str) -> AppArchive {
        let bytes = std::fs::read(crate::guest(name)).expect("read guest");
        self.file(path, bytes)
    }

    pub fn build(self) -> Vec<u8> {
        let mut builder = tar::Builder::new(flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::fast()));
        for (path, content) in &self.entries {
            let mut header = tar::Header::new_gnu();
            header.set_size(content.len() as u64);
            header.set_mode(0o644);
            // The name is written raw (tar's own path setter refuses `..`), so tests can send the
            // archives an attacker would.
            let name = &mut header.as_old_mut().name;
            assert!(path.len() < name.len(), "archive path too long for the test builder: {path}");
            name[..path.len()].copy_from_slice(path.as_bytes());
            header.set_cksum();
            builder.append(&header, content.as_slice()).expect("append to archive");
        }
        builder.into_inner().and_then(|gz| gz.finish()).expect("finish archive")
    }
}

/// A one-component HTTP app manifest: `component` built from `source`, on `route`, plus `extra`
/// lines appended to the component table.
pub fn http_app(component: &str, source: &str, route: &str, extra: &str) -> String {
    format!(
        "spin_manifest_version = 2\n[application]\nname = \"{component}\"\n[[trigger.http]]\nroute = \"{route}\"\ncomponent = \"{component}\"\n[component.{component}]\nsource = \"{source}\"\n{extra}\n"
    )
}
