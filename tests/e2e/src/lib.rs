//! Support for Kiln's end-to-end tests: where the guests and examples built by `build.rs` are.

use std::path::PathBuf;

/// The built `wasm32-wasip2` guest component `<name>.wasm` (e.g. `guest("echo_request")`).
///
/// Also finds the core-module guests: `hello_core_wasip1`, `wagi_hello` and `spin2_http` (built for `wasm32-wasip1`) and
/// `hello_core_unknown` (built for `wasm32-unknown-unknown`).
pub fn guest(name: &str) -> PathBuf {
    let dir = match name {
        "hello_core_wasip1" | "wagi_hello" | "spin2_http" => env!("KILN_E2E_GUESTS_WASIP1_DIR"),
        "hello_core_unknown" => env!("KILN_E2E_GUESTS_UNKNOWN_DIR"),
        _ => env!("KILN_E2E_GUESTS_DIR"),
    };
    let path = PathBuf::from(dir).join(format!("{name}.wasm"));
    assert!(
        path.is_file(),
        "guest {name:?} not found at {} (is it a member of guests/Cargo.toml?)",
        path.display()
    );
    path
}

/// The repository's `examples/` folder (the example apps are already built into
/// `examples/target/wasm32-wasip2/release`).
pub fn examples_dir() -> PathBuf {
    PathBuf::from(env!("KILN_E2E_EXAMPLES_DIR"))
}

#[cfg(test)]
mod tests {
    #[test]
    fn every_guest_and_example_is_built() {
        for name in [
            "echo_request",
            "stream_echo",
            "trap",
            "busy_loop",
            "memory_bomb",
            "sleep",
            "outbound",
            "chain",
            "files",
            "semver_newer",
            "hello_core_wasip1",
            "hello_core_unknown",
            "wagi_hello",
            "spin2_http",
            "spin_mqtt",
            "spin_pg",
            "spin_mysql",
            "spin4_outbound",
            "http_middleware_p2",
            "http_middleware_p3",
        ] {
            let bytes = std::fs::read(super::guest(name)).unwrap();
            assert_eq!(&bytes[..4], b"\0asm", "{name}");
        }
        let examples = super::examples_dir();
        for (manifest, wasm) in [
            ("hello/kiln.toml", "hello"),
            ("files/kiln.toml", "files_example"),
            ("routes/spin.toml", "routes_chain"),
        ] {
            assert!(examples.join(manifest).is_file(), "{manifest}");
            let built = examples.join(format!("target/wasm32-wasip2/release/{wasm}.wasm"));
            assert!(built.is_file(), "{}", built.display());
        }
    }
}
pub mod kiln;
pub mod serve;
pub mod services;
