//! The wasmtime engine Kiln runs every component on.
//!
//! One [`Engine`] per process: it owns the wasmtime `Engine` (pooling allocator, copy-on-write memory
//! images, epoch interruption), the on-disk compile cache, and the linker every component is
//! instantiated against. Triggers never touch wasmtime configuration; they ask a
//! [`ComponentPre`] for a fresh [`Store`](wasmtime::Store) per event and instantiate into it.

mod cache;
mod capability;
mod component;
mod config;
mod epoch;
mod guest_output;
mod known_sources;
mod limits;
mod release_candidates;
mod response_body;
mod self_requests;
mod state;

pub use capability::{ComponentCapability, LinkFn};
pub use component::{CommandIo, CommandStdio, poll_once, run_to_exit, ComponentPre, InstanceCall, InstanceLimits, InstanceOptions, SocketPolicy, WasiTemplate};
pub use config::{EngineConfig, default_cache_dir};
pub use limits::{InstanceFailure, classify_failure};
pub use state::KilnState;
pub use wasmtime;
pub use wasmtime_wasi::sockets::SocketAddrUse;

use anyhow::{Context, Result};
use std::path::PathBuf;
use std::sync::Arc;
use wasmtime::component::Linker;

/// The process-wide wasmtime engine, its compile cache and linker. Cheap to clone.
#[derive(Clone)]
pub struct Engine {
    inner: Arc<EngineInner>,
}

struct EngineInner {
    wasmtime: wasmtime::Engine,
    linker: Linker<KilnState>,
    cache_dir: Option<PathBuf>,
    config: EngineConfig,
    _epoch: Option<epoch::EpochTicker>,
}

/// Errors capture a backtrace when `RUST_BACKTRACE` is set; wasmtime creates (and drops) errors on
/// ordinary paths (every WASI 0.3 store drop makes one), which then cost ~19 µs per request. Panics
/// still get their backtraces: only library (error) backtraces are turned off, and only when the user
/// did not ask for them with `RUST_LIB_BACKTRACE`. Every Kiln binary calls this first.
///
/// # Safety
/// Sets an environment variable: call it before the process starts any thread.
pub unsafe fn disable_library_backtraces() {
    if std::env::var_os("RUST_LIB_BACKTRACE").is_none() {
        // SAFETY: the caller promises no other thread exists yet.
        unsafe { std::env::set_var("RUST_LIB_BACKTRACE", "0") };
    }
}

/// `wasi:*@0.3.*` and Spin 4's async interfaces (`spin:key-value`, `spin:variables`, `spin:redis`,
/// `spin:mqtt`, `spin:mysql` at 3.x; `spin:sqlite@3.1`; `spin:postgres@4.2`).
fn interface_needs_concurrency(name: &str) -> bool {
    let Some((package, version)) = name.split_once('@') else {
        return false;
    };
    let namespace_iface = package.split('/').next().unwrap_or_default();
    match namespace_iface {
        n if n.starts_with("wasi:") => version.starts_with("0.3"),
        "spin:key-value" | "spin:variables" | "spin:redis" | "spin:mqtt" | "spin:mysql" => version.starts_with('3'),
        "spin:sqlite" => version.starts_with("3.1"),
        "spin:postgres" => version.starts_with("4.2"),
        _ => false,
    }
}

impl Engine {
    /// Builds the engine and its linker (WASI, wasi:http and every capability in `capabilities`), and
    /// starts the epoch ticker thread.
    pub fn new(config: EngineConfig, capabilities: &[LinkFn]) -> Result<Engine> {
        let wasmtime = wasmtime::Engine::new(&config.wasmtime_config()?)
            .map_err(anyhow::Error::from)
            .context("failed to create the wasmtime engine")?;
        let linker = state::linker(&wasmtime, config.concurrency, capabilities)?;
        let epoch = config.deadlines.then(|| epoch::EpochTicker::start(wasmtime.clone(), config::EPOCH_TICK));
        Ok(Engine {
            inner: Arc::new(EngineInner {
                wasmtime,
                linker,
                cache_dir: config.cache_dir.clone(),
                config,
                _epoch: epoch,
            }),
        })
    }

    pub fn wasmtime(&self) -> &wasmtime::Engine {
        &self.inner.wasmtime
    }

    pub fn linker(&self) -> &Linker<KilnState> {
        &self.inner.linker
    }

    pub fn config(&self) -> &EngineConfig {
        &self.inner.config
    }

    /// Whether the component at `path` imports or exports interfaces that need component-model
    /// concurrency (WASI 0.3, or Spin 4's async `spin:*@3.x` interfaces). Reads only the names.
    pub fn needs_concurrency(path: &std::path::Path) -> Result<bool> {
        let names = cache::file_interface_names(path).with_context(|| format!("failed to read `{}`", path.display()))?;
        Ok(names.iter().any(|name| interface_needs_concurrency(name)))
    }

    /// Loads a component (or a core module, which is componentized first) from a file, compiling
    /// it or taking the precompiled artifact from the cache.
    pub fn load_component(&self, path: &std::path::Path) -> Result<wasmtime::component::Component> {
        cache::load_file(&self.inner.wasmtime, self.inner.cache_dir.as_deref(), path)
            .with_context(|| format!("failed to load component `{}`", path.display()))
    }

    /// Loads a component from bytes (a composed one), through the same compile cache as
    /// [`Engine::load_component`]: keyed by the bytes' SHA-256.
    pub fn load_component_bytes(&self, bytes: &[u8]) -> Result<wasmtime::component::Component> {
        cache::load(&self.inner.wasmtime, self.inner.cache_dir.as_deref(), bytes)
    }
}

#[cfg(test)]
mod tests {
    use super::interface_needs_concurrency;

    #[test]
    fn exports_count_as_well_as_imports() {
        let exporting = wat::parse_str(
            r#"(component
                (import "wasi:cli/environment@0.2.6" (instance))
                (instance $handler)
                (export "spin:redis/inbound-redis@3.0.0" (instance $handler)))"#,
        )
        .unwrap();
        let names = crate::cache::interface_names(&exporting);
        assert_eq!(names, ["wasi:cli/environment@0.2.6", "spin:redis/inbound-redis@3.0.0"]);
        assert!(names.iter().any(|name| interface_needs_concurrency(name)));
    }

    #[test]
    fn only_async_interfaces_need_concurrency() {
        for name in ["wasi:http/handler@0.3.0-rc-2026-01-06", "wasi:http/handler@0.3.0", "spin:redis/inbound-redis@3.0.0", "spin:variables/variables@3.0.0", "spin:key-value/key-value@3.0.0", "spin:sqlite/sqlite@3.1.0"] {
            assert!(interface_needs_concurrency(name), "{name}");
        }
        for name in ["wasi:http/types@0.2.4", "fermyon:spin/key-value@2.0.0", "spin:sqlite/sqlite@3.0.0", "wasi:keyvalue/store@0.2.0-draft2", "wasi:cli/environment"] {
            assert!(!interface_needs_concurrency(name), "{name}");
        }
    }
}
