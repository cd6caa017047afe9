//! Python apps written for Spin with Spin's own Python SDK, built and run unchanged: key-value,
//! variables and AI inferencing, with the toolchains Spin documents (PyPI):
//! - `examples/spin-python`: spin-sdk 3.4.1, componentize-py 0.17.2 (WASI 0.2);
//! - `examples/spin-python-async`: spin-sdk 5.0.0, componentize-py 0.25.1 (Spin 4: an async WASI 0.3
//!   handler; the component imports WASI `0.3.0-rc-2026-03-15` and `0.3.0` both).
//!
//! spin-sdk imports `fermyon:spin/llm` whether or not the app calls it, so these apps only load
//! where that interface is served.

use crate::kiln_bin;
use crate::llm::{inferencing_server, runtime_config};
use kiln_e2e::kiln::Kiln;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Duration;

/// The virtualenv `/var/tmp/kiln-toolchains/<venv>` with one of Spin's Python toolchains (`.ci/run`
/// makes them); a machine without it fails here with the command that makes it.
fn spin_python_toolchain(venv: &str, packages: &str) -> PathBuf {
    let venv = PathBuf::from("/var/tmp/kiln-toolchains").join(venv);
    let found = Command::new(venv.join("bin/componentize-py")).arg("--version").output().is_ok_and(|output| output.status.success());
    assert!(found, "Spin's Python toolchain is missing: `python3 -m venv {0} && {0}/bin/pip install {packages}` (.ci/run does)", venv.display());
    venv.join("bin")
}

fn copy_example(example: &str, to: &Path) {
    let from = crate::example(example);
    std::fs::create_dir_all(to).expect("app dir");
    for name in ["app.py", "spin.toml"] {
        std::fs::copy(from.join(name), to.join(name)).unwrap_or_else(|err| panic!("copy {name}: {err}"));
    }
}

#[test]
fn spin_python_sdk_3_app_runs_unchanged() {
    let bin = spin_python_toolchain("spin-python-sdk3", "componentize-py==0.17.2 spin-sdk==3.4.1");
    build_and_serve("spin-python", &bin);
}

#[test]
fn spin_python_sdk_5_app_runs_unchanged() {
    let bin = spin_python_toolchain("spin-python-sdk5", "componentize-py==0.25.1 spin-sdk==5.0.0");
    build_and_serve("spin-python-async", &bin);
}

fn build_and_serve(example: &str, bin: &Path) {
    let temp = tempfile::tempdir().expect("temp dir");
    let dir = temp.path().join(example);
    copy_example(example, &dir);
    let path = format!("{}:{}", bin.display(), std::env::var("PATH").unwrap_or_default());
    let output = Command::new(kiln_bin()).args(["build", "-f"]).arg(&dir).env("PATH", &path).output().expect("run kiln build");
    assert!(output.status.success(), "kiln build failed:\n{}", String::from_utf8_lossy(&output.stderr));

    let rc = dir.join("runtime-config.toml");
    std::fs::write(&rc, runtime_config(&inferencing_server(), "token-123")).expect("write the runtime config");
    let rc = rc.to_str().expect("UTF-8 temp path");
    let kiln = Kiln::up_with_env_timeout(&kiln_bin(), &dir.join("spin.toml"), &["--runtime-config-file", rc], &[("KILN_VARIABLE_GREETING", "Howdy")], Duration::from_secs(300));
    let text = |path: &str| {
        let response = kiln.get(path);
        (response.status().as_u16(), response.text().expect("body"))
    };
    assert_eq!(text("/"), (200, "Howdy, visit 1".into()));
    assert_eq!(text("/"), (200, "Howdy, visit 2".into()));
    assert_eq!(text("/ask?q=what%20now"), (200, "WHAT NOW max=100".into()));
}
