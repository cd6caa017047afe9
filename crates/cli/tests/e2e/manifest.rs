//! Bad manifests fail before anything is served, with file, line and column.

use crate::{kiln_bin, single};
use kiln_e2e::kiln::{app_dir, free_addr, run_to_exit};
use std::time::Duration;

/// Runs `kiln up` on `manifest` and expects it to exit with an error; returns stderr.
pub(crate) fn up_fails(manifest: &str) -> String {
    let dir = app_dir(manifest, &[]);
    let path = dir.path().join("kiln.toml");
    let addr = free_addr().to_string();
    let (status, stderr) = run_to_exit(&kiln_bin(), &["up", "-f", path.to_str().unwrap(), "--listen", &addr], Duration::from_secs(60));
    assert!(!status.success(), "kiln up should fail:\n{stderr}");
    assert!(std::net::TcpStream::connect(&addr).is_err(), "a server was started despite the error");
    stderr
}

#[test]
fn unknown_key_is_reported_with_its_location() {
    let manifest = single("echo_request", "/...", "colour = \"blue\"");
    let stderr = up_fails(&manifest);
    assert!(stderr.contains("kiln.toml:12:"), "{stderr}");
    assert!(stderr.contains("colour"), "{stderr}");
}

#[test]
fn missing_wasm_file_names_the_component_and_path() {
    let manifest = single("echo_request", "/...", "").replace("echo_request.wasm", "nope.wasm");
    let stderr = up_fails(&manifest);
    assert!(stderr.contains("nope.wasm"), "{stderr}");
    assert!(stderr.contains("kiln.toml:"), "{stderr}");
}

#[test]
fn bad_route_is_reported_with_its_location() {
    let stderr = up_fails(&single("echo_request", "/a/.../b", ""));
    assert!(stderr.contains("kiln.toml:7:"), "{stderr}");
    assert!(stderr.contains("/a/.../b"), "{stderr}");
}

#[test]
fn duplicate_component_id_is_reported() {
    let manifest = single("echo_request", "/...", "") + "\n[component.app]\nsource = \"x.wasm\"\n";
    let stderr = up_fails(&manifest);
    assert!(stderr.contains("kiln.toml:"), "{stderr}");
    assert!(stderr.to_lowercase().contains("duplicate") || stderr.contains("app"), "{stderr}");
}

#[test]
fn trigger_naming_an_unknown_component_is_reported() {
    let manifest = single("echo_request", "/...", "").replace("component = \"app\"", "component = \"ghost\"");
    let stderr = up_fails(&manifest);
    assert!(stderr.contains("ghost") && stderr.contains("kiln.toml:8:"), "{stderr}");
}

#[test]
fn toml_syntax_error_is_reported_with_its_location() {
    let stderr = up_fails("spin_manifest_version = 2\n[application\nname = \"x\"\n");
    assert!(stderr.contains("kiln.toml:2:"), "{stderr}");
}

#[test]
fn a_port_in_use_is_a_clear_error() {
    let taken = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let addr = taken.local_addr().unwrap().to_string();
    let dir = app_dir(&single("echo_request", "/...", ""), &[]);
    let path = dir.path().join("kiln.toml");
    let (status, stderr) = run_to_exit(&kiln_bin(), &["up", "-f", path.to_str().unwrap(), "--listen", &addr], Duration::from_secs(60));
    assert!(!status.success());
    assert!(stderr.contains("already in use") && stderr.contains(&addr), "{stderr}");
}

#[test]
fn manifest_is_found_in_the_directory_kiln_toml_first() {
    let dir = app_dir(&single("echo_request", "/...", ""), &[("spin.toml", "this is not toml")]);
    // -f DIR picks kiln.toml over spin.toml.
    let kiln = kiln_e2e::kiln::Kiln::up(&kiln_bin(), dir.path(), &[]);
    assert_eq!(kiln.get("/").status(), 200);
}

#[test]
fn no_manifest_says_what_to_do() {
    let dir = tempfile::tempdir().unwrap();
    let (status, stderr) = run_to_exit(&kiln_bin(), &["up", "-f", dir.path().to_str().unwrap()], Duration::from_secs(30));
    assert!(!status.success());
    assert!(stderr.contains("kiln.toml") && stderr.contains("spin.toml"), "{stderr}");
}

#[test]
fn a_bad_messaging_section_is_reported_at_its_line_in_the_runtime_config() {
    let rc = "[key_value_store.default]\ntype = \"spin\"\n\n[messaging]\ntype = \"nats\"\nurl = \"nats://127.0.0.1:4222\"\nmax_deliver = 0\n";
    let dir = app_dir(&single("echo_request", "/...", ""), &[("rc.toml", rc)]);
    let path = dir.path().join("kiln.toml");
    let rc_path = dir.path().join("rc.toml");
    let addr = free_addr().to_string();
    let args = ["up", "-f", path.to_str().unwrap(), "--runtime-config-file", rc_path.to_str().unwrap(), "--listen", &addr];
    let (status, stderr) = run_to_exit(&kiln_bin(), &args, Duration::from_secs(60));
    assert!(!status.success(), "kiln up should fail:\n{stderr}");
    assert!(stderr.contains("rc.toml:7:") && stderr.contains("`max_deliver` must be a whole number of at least 1"), "{stderr}");
}
