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
mod limits;
mod state;

pub use capability::{ComponentCapability, LinkFn};
pub use component::{ComponentPre, InstanceOptions, SocketPolicy, WasiTemplate};
pub use config::EngineConfig;
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
    _epoch: epoch::EpochTicker,
}

impl Engine {
    /// Builds the engine and its linker (WASI, wasi:http and every capability in `capabilities`), and
    /// starts the epoch ticker thread.
    pub fn new(config: EngineConfig, capabilities: &[LinkFn]) -> Result<Engine> {
        let wasmtime = wasmtime::Engine::new(&config.wasmtime_config()?)
            .map_err(anyhow::Error::from)
            .context("failed to create the wasmtime engine")?;
        let linker = state::linker(&wasmtime, capabilities)?;
        let epoch = epoch::EpochTicker::start(wasmtime.clone(), config::EPOCH_TICK);
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

    /// Loads a component (or a core module, which is componentized first) from a file, compiling
    /// it or taking the precompiled artifact from the cache.
    pub fn load_component(&self, path: &std::path::Path) -> Result<wasmtime::component::Component> {
        let bytes = std::fs::read(path)
            .with_context(|| format!("failed to read component `{}`", path.display()))?;
        cache::load(&self.inner.wasmtime, self.inner.cache_dir.as_deref(), &bytes)
            .with_context(|| format!("failed to load component `{}`", path.display()))
    }
}
