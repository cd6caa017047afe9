//! End-to-end tests: each starts the real `kiln` binary on a free port and speaks HTTP to it. The
//! guests come from `guests/` and `examples/`, built from source once per run by the `kiln-e2e`
//! crate's build script. Tests run in parallel (one thread each).

mod cluster;
mod cron_trigger;
mod dependencies;
mod dashboard;
mod engine;
mod files;
mod finicky_whiskers;
mod hostile_clients;
mod http;
mod isolation;
mod k8s;
mod key_value;
mod llm;
mod lifecycle;
mod manifest;
mod messaging;
mod momentum;
mod mqtt;
mod mysql;
mod outbound;
mod platform;
mod platform_cli;
mod platform_events;
mod postgres;
mod redis_outbound;
mod redis_trigger;
mod registry;
mod sockets;
mod spin2;
mod spin4;
mod spin6;
mod spin_python;
mod sqlite;
mod templates;
mod variables;
mod wagi;
mod wasmcloud;

use kiln_e2e::kiln::{Kiln, app_dir};
use std::path::{Path, PathBuf};

pub fn kiln_bin() -> PathBuf {
    PathBuf::from(env!("CARGO_BIN_EXE_kiln"))
}

/// A manifest with one component serving `route` from the guest `guest` (a file of guests/).
pub fn single(guest: &str, route: &str, component_extra: &str) -> String {
    format!(
        r#"spin_manifest_version = 2

[application]
name = "test-{guest}"

[[trigger.http]]
route = "{route}"
component = "app"

[component.app]
source = "{source}"
{component_extra}
"#,
        source = kiln_e2e::guest(guest).display()
    )
}

/// Serves `manifest` (written to a temp dir, with `files`), with extra `kiln up` args.
pub fn serve(manifest: &str, files: &[(&str, &str)], args: &[&str]) -> (Kiln, tempfile::TempDir) {
    let dir = app_dir(manifest, files);
    let kiln = Kiln::up(&kiln_bin(), &dir.path().join("kiln.toml"), args);
    (kiln, dir)
}

pub fn serve_guest(guest: &str, args: &[&str]) -> (Kiln, tempfile::TempDir) {
    serve(&single(guest, "/...", ""), &[], args)
}

pub fn example(name: &str) -> PathBuf {
    kiln_e2e::examples_dir().join(name)
}

pub fn body(response: reqwest::blocking::Response) -> (u16, String) {
    let status = response.status().as_u16();
    (status, response.text().unwrap_or_default())
}

#[allow(dead_code)]
pub fn exists(path: &Path) -> bool {
    path.exists()
}
