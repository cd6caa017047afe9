use crate::limits::MemoryLimiter;
use anyhow::Result;
use wasmtime::component::{Linker, ResourceTable};
use wasmtime_wasi::{WasiCtx, WasiCtxView, WasiView};
use wasmtime_wasi_http::{WasiHttpCtx, WasiHttpCtxView, WasiHttpHooks, WasiHttpView};

/// The data of every Kiln [`Store`](wasmtime::Store): one per instance, dropped with it.
pub struct KilnState {
    pub(crate) table: ResourceTable,
    pub(crate) wasi: WasiCtx,
    pub(crate) http: WasiHttpCtx,
    pub(crate) http_hooks: Box<dyn WasiHttpHooks>,
    pub(crate) limiter: MemoryLimiter,
}

impl KilnState {
    /// Whether this instance asked for more memory than its limit allowed.
    pub fn memory_exceeded(&self) -> bool {
        self.limiter.exceeded()
    }
}

impl WasiView for KilnState {
    fn ctx(&mut self) -> WasiCtxView<'_> {
        WasiCtxView { ctx: &mut self.wasi, table: &mut self.table }
    }
}

impl WasiHttpView for KilnState {
    fn http(&mut self) -> WasiHttpCtxView<'_> {
        WasiHttpCtxView { ctx: &mut self.http, table: &mut self.table, hooks: &mut *self.http_hooks }
    }
}

/// Every interface Kiln offers guests. wasmtime's linker matches imports semver-compatibly, so a
/// guest importing any `wasi:*@0.2.x` links against these definitions.
pub(crate) fn linker(engine: &wasmtime::Engine) -> Result<Linker<KilnState>> {
    let mut linker = Linker::new(engine);
    wasmtime_wasi::p2::add_to_linker_async(&mut linker).map_err(anyhow::Error::from)?;
    wasmtime_wasi_http::p2::add_only_http_to_linker_async(&mut linker).map_err(anyhow::Error::from)?;
    Ok(linker)
}
