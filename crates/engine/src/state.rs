use crate::capability::{ComponentCapability, LinkFn};
use crate::limits::MemoryLimiter;
use std::any::Any;
use std::sync::Arc;
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
    /// When the instance is cut off. Kept here, not in the epoch callback's closure, so that closure
    /// captures nothing and its box allocates nothing.
    pub(crate) deadline: std::time::Instant,
    /// One state per capability of this instance (see [`crate::ComponentCapability`]), made when
    /// the guest first calls into any capability: most requests of most guests call none, and
    /// then the instance makes none.
    pub(crate) capabilities: CapabilityStates,
    /// Which body is the response's, and whether the guest finished it (WASI 0.2).
    pub(crate) response_body: crate::response_body::ResponseBody,
}

impl KilnState {
    /// The instance state of capability type `T`. Every linked capability installs its state in every
    /// instance (components without grants get a state that denies), so a missing state is a bug in
    /// Kiln's wiring, not something a guest can cause.
    pub fn capability<T: Any + Send>(&mut self) -> &mut T {
        self.capabilities
            .made()
            .iter_mut()
            .find_map(|state| state.downcast_mut::<T>())
            .unwrap_or_else(|| panic!("capability state {} is not installed", std::any::type_name::<T>()))
    }

    /// The instance state of capability type `T`, if that capability is installed: for a capability
    /// that works with another one (wasmCloud's bus selects key-value stores and brokers) and must
    /// not panic in a host that leaves the other out.
    pub fn try_capability<T: Any + Send>(&mut self) -> Option<&mut T> {
        self.capabilities.made().iter_mut().find_map(|state| state.downcast_mut::<T>())
    }

    /// The instance's resource table (for capabilities whose resources live beside WASI's).
    pub fn table(&mut self) -> &mut ResourceTable {
        &mut self.table
    }

    /// Set once the guest has finished its WASI 0.2 response body: a body that ends without it was
    /// cut short (the instance trapped or ran out of time), and must not reach the client as whole.
    pub fn response_finished(&self) -> std::sync::Arc<std::sync::atomic::AtomicBool> {
        self.response_body.finished()
    }

    /// Whether this instance asked for more memory than its limit allowed.
    pub fn memory_exceeded(&self) -> bool {
        self.limiter.exceeded()
    }
}

/// An instance's capability states, made together on first use from its component's capabilities.
pub(crate) struct CapabilityStates {
    capabilities: Arc<[Arc<dyn ComponentCapability>]>,
    states: Option<Vec<Box<dyn Any + Send>>>,
}

impl CapabilityStates {
    pub(crate) fn new(capabilities: Arc<[Arc<dyn ComponentCapability>]>) -> CapabilityStates {
        CapabilityStates { capabilities, states: None }
    }

    fn made(&mut self) -> &mut Vec<Box<dyn Any + Send>> {
        let capabilities = &self.capabilities;
        self.states.get_or_insert_with(|| capabilities.iter().map(|c| c.instance_state()).collect())
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

/// What Kiln learns from a WASI 0.2 release-candidate guest (Spin 2), as from a 0.2 one whose
/// calls it shadows: which body is the response's and whether it was finished
/// (`response_body.rs`), and that a relative URL is a request to the app (`self_requests.rs`).
impl kiln_wasi_rc::RcHooks for KilnState {
    fn response_body_created(&mut self, body: u32) {
        self.response_body.created(body);
    }

    fn outgoing_body_finishing(&mut self, body: u32) {
        self.response_body.finishing(body);
    }

    fn relative_request_authority(&self) -> Option<&'static str> {
        Some(crate::self_requests::SELF_AUTHORITY)
    }
}

/// Every interface Kiln offers guests. wasmtime's linker matches imports semver-compatibly, so a
/// guest importing any `wasi:*@0.2.x` links against these definitions, and, when the engine has
/// component-model concurrency, any `wasi:*@0.3.x` (WASI 0.3: Spin SDK 7 components) too. The
/// release candidates `wasi:*@0.2.0-rc-2023-10-18` and `-11-10` (Spin 2) are served by
/// `kiln-wasi-rc`.
pub(crate) fn linker(engine: &wasmtime::Engine, concurrency: bool, capabilities: &[LinkFn]) -> Result<Linker<KilnState>> {
    let mut linker = Linker::new(engine);
    wasmtime_wasi::p2::add_to_linker_async(&mut linker).map_err(anyhow::Error::from)?;
    wasmtime_wasi_http::p2::add_only_http_to_linker_async(&mut linker).map_err(anyhow::Error::from)?;
    crate::self_requests::shadow_p2_handle(&mut linker).map_err(anyhow::Error::from)?;
    crate::response_body::shadow_p2_response_body(&mut linker).map_err(anyhow::Error::from)?;
    // Spin 2's WASI 0.2 release candidates, each call forwarded to the 0.2 host above.
    kiln_wasi_rc::add_to_linker(&mut linker).map_err(anyhow::Error::from)?;
    if concurrency {
        wasmtime_wasi::p3::add_to_linker(&mut linker).map_err(anyhow::Error::from)?;
        crate::self_requests::add_p3_to_linker(&mut linker).map_err(anyhow::Error::from)?;
    }
    for link in capabilities {
        link(&mut linker)?;
    }
    Ok(linker)
}
