//! Builds the test guests (`guests/`) and the example apps (`examples/`) once per test build, and
//! tells the tests where they are through `KILN_E2E_*` environment variables (see src/lib.rs).
//!
//! Each is a cargo workspace of its own, built into its own `target/` (gitignored) by a nested
//! `cargo` whose environment is cleaned of everything this outer cargo set for the build script:
//! its flags, profile, target and jobserver are meant for the host build, not for wasm.

use std::collections::BTreeSet;
use std::env;
use std::path::{Path, PathBuf};
use std::process::Command;

const WASIP2: &str = "wasm32-wasip2";
const WASIP1: &str = "wasm32-wasip1";
const UNKNOWN: &str = "wasm32-unknown-unknown";

fn main() {
    let manifest_dir = PathBuf::from(env::var("CARGO_MANIFEST_DIR").unwrap());
    let root = manifest_dir.join("../..").canonicalize().expect("repository root");
    let guests = root.join("guests");
    let examples = root.join("examples");

    println!("cargo:rerun-if-changed=build.rs");
    watch_workspace(&guests);
    watch_workspace(&examples);

    check_targets(&[WASIP2, WASIP1, UNKNOWN]);

    // All wasm32-wasip2 guests (the workspace's default members), then the core modules.
    cargo_build(&guests, &["--target", WASIP2]);
    // spin2_http: a Spin 2.x app (spin-sdk 2.2), built for wasip1 as `spin build` did then.
    cargo_build(&guests, &["--target", WASIP1, "-p", "hello_core_wasip1", "-p", "wagi_hello", "-p", "spin2_http"]);
    cargo_build(&guests, &["--target", UNKNOWN, "-p", "hello_core_unknown"]);
    cargo_build(&examples, &["--target", WASIP2, "--workspace"]);

    let out = |target: &str| guests.join("target").join(target).join("release");
    export("KILN_E2E_GUESTS_DIR", &out(WASIP2));
    export("KILN_E2E_GUESTS_WASIP1_DIR", &out(WASIP1));
    export("KILN_E2E_GUESTS_UNKNOWN_DIR", &out(UNKNOWN));
    export("KILN_E2E_EXAMPLES_DIR", &examples);
}

fn export(name: &str, path: &Path) {
    println!("cargo:rustc-env={name}={}", path.display());
}

/// Reruns this script when a source, manifest, lock file or asset of the workspace changes. Never
/// names `target/` (a directory is watched recursively, and the build writes there).
fn watch_workspace(dir: &Path) {
    for name in ["Cargo.toml", "Cargo.lock"] {
        println!("cargo:rerun-if-changed={}", dir.join(name).display());
    }
    let mut stack = vec![dir.to_path_buf()];
    let mut watched = BTreeSet::new();
    while let Some(d) = stack.pop() {
        let Ok(entries) = std::fs::read_dir(&d) else { continue };
        for entry in entries.flatten() {
            let path = entry.path();
            let name = entry.file_name();
            if name == "target" || name.to_string_lossy().starts_with('.') {
                continue;
            }
            if path.join("Cargo.toml").is_file() {
                // A crate: its manifest and everything but its (nested) crates and target.
                watched.insert(path.join("Cargo.toml"));
                for sub in ["src", "build.rs", "wit"] {
                    if path.join(sub).exists() {
                        watched.insert(path.join(sub));
                    }
                }
            }
            if path.is_dir() {
                stack.push(path);
            }
        }
    }
    for p in watched {
        println!("cargo:rerun-if-changed={}", p.display());
    }
}

/// Fails early, with the fix, when a wasm target's standard library is not installed.
fn check_targets(targets: &[&str]) {
    let Some(sysroot) = Command::new("rustc")
        .args(["--print", "sysroot"])
        .env_remove("RUSTC_WRAPPER")
        .output()
        .ok()
        .filter(|o| o.status.success())
        .map(|o| PathBuf::from(String::from_utf8_lossy(&o.stdout).trim()))
    else {
        return; // Let cargo report whatever is wrong.
    };
    let missing: Vec<&str> = targets
        .iter()
        .copied()
        .filter(|t| !sysroot.join("lib/rustlib").join(t).is_dir())
        .collect();
    if !missing.is_empty() {
        panic!(
            "\n\nThe e2e tests build WebAssembly guests, but the Rust standard library for {} is not \
             installed (sysroot {}).\nInstall it with:\n\n    rustup target add {}\n\n",
            missing.join(", "),
            sysroot.display(),
            missing.join(" "),
        );
    }
}

/// `cargo build --release <args>` in `dir`, in a clean environment; panics with its output if it
/// fails.
fn cargo_build(dir: &Path, args: &[&str]) {
    let cargo = env::var_os("CARGO").unwrap_or_else(|| "cargo".into());
    let mut cmd = Command::new(&cargo);
    cmd.current_dir(dir).arg("build").arg("--release").args(args);
    clean_env(&mut cmd);

    let output = cmd
        .output()
        .unwrap_or_else(|e| panic!("failed to run {cargo:?} in {}: {e}", dir.display()));
    if !output.status.success() {
        let stderr = String::from_utf8_lossy(&output.stderr);
        let hint = if stderr.contains("target may not be installed")
            || stderr.contains("can't find crate for `core`")
            || stderr.contains("can't find crate for `std`")
        {
            "\nA wasm target is missing: rustup target add wasm32-wasip2 wasm32-wasip1 wasm32-unknown-unknown\n"
        } else {
            ""
        };
        panic!(
            "\n\nbuilding the e2e guests failed: `cargo build --release {}` in {} ({})\n{hint}\n\
             --- stdout ---\n{}\n--- stderr ---\n{}\n",
            args.join(" "),
            dir.display(),
            output.status,
            String::from_utf8_lossy(&output.stdout),
            stderr,
        );
    }
}

/// Removes what cargo sets for build scripts (and the host-build settings a user may have set), so
/// the nested cargo builds the wasm workspace as if run by hand. Cargo's own configuration that is
/// not about what or how to compile (home, registries, network, terminal) is kept.
fn clean_env(cmd: &mut Command) {
    const KEEP_PREFIXES: &[&str] = &[
        "CARGO_HOME",
        "CARGO_NET_",
        "CARGO_HTTP_",
        "CARGO_REGISTRIES_",
        "CARGO_REGISTRY_",
        "CARGO_TERM_",
    ];
    const REMOVE: &[&str] = &[
        "RUSTFLAGS",
        "RUSTDOCFLAGS",
        "RUSTC",
        "RUSTDOC",
        "RUSTC_LINKER",
        "RUSTC_WRAPPER",
        "RUSTC_WORKSPACE_WRAPPER",
        "RUSTC_BOOTSTRAP",
        "DEBUG",
        "OPT_LEVEL",
        "PROFILE",
        "TARGET",
        "HOST",
        "OUT_DIR",
        "NUM_JOBS",
        "MAKEFLAGS",
        "MFLAGS",
    ];
    for (key, _) in env::vars_os() {
        let Some(key) = key.to_str() else { continue };
        let cargo_var = key.starts_with("CARGO") && !KEEP_PREFIXES.iter().any(|p| key.starts_with(p));
        // CARGO_*, plus the DEP_<links>_* metadata cargo passes to build scripts.
        if cargo_var || key.starts_with("DEP_") || REMOVE.contains(&key) {
            cmd.env_remove(key);
        }
    }
}
