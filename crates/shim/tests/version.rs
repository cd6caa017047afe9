//! containerd asks a shim binary for its version with `-v`. Also makes `cargo test --workspace`
//! build the shim binary (cargo builds a package's binaries for its integration tests), which the
//! containerd end-to-end test (crates/cli/tests/containerd.rs) runs.

#[test]
fn the_shim_reports_its_name_and_version() {
    let output = std::process::Command::new(env!("CARGO_BIN_EXE_containerd-shim-kiln-v1")).arg("-v").output().expect("run the shim");
    assert!(output.status.success(), "{output:?}");
    let text = String::from_utf8_lossy(&output.stdout);
    assert!(text.contains("containerd-shim-kiln-v1") && text.contains(env!("CARGO_PKG_VERSION")), "{text}");
}
