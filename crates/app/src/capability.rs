//! The shape every capability has: link → configure for an app → prepare per component → per instance.
//!
//! A capability crate (key-value, SQLite, variables, …) implements [`Capability`]; the CLI lists the
//! capabilities it serves, and [`App::load`](crate::App::load) runs them. Adding a capability touches
//! its own crate and that list, nothing else.

use anyhow::Result;
use kiln_engine::{ComponentCapability, LinkFn};
use kiln_manifest::{Component, Manifest};
use kiln_outbound::AllowedHosts;
use kiln_runtime_config::RuntimeConfig;
use kiln_variables::Resolver;
use std::any::Any;
use std::path::Path;
use std::sync::Arc;

/// A host capability offered to guests.
pub trait Capability: Send + Sync {
    /// A short name for logs and errors (`"key-value"`).
    fn name(&self) -> &'static str;

    /// Adds every interface version this capability serves to the engine's linker.
    fn link(&self) -> LinkFn;

    /// Validates the app's grants against the runtime config and opens what the app needs (store
    /// handles, connection settings). All validation happens here: a bad grant fails at load, never
    /// per request.
    fn configure_app(&self, app: &AppContext<'_>) -> Result<Box<dyn AppCapability>>;
}

/// A capability configured for one app. A trigger that needs it finds it with
/// [`App::capability`](crate::App::capability).
pub trait AppCapability: Any + Send + Sync {
    /// What `component`'s instances get. Components without grants get a state that denies.
    fn component(&self, component: &ComponentContext<'_>) -> Result<Arc<dyn ComponentCapability>>;
}

/// What a capability sees of the app being loaded.
pub struct AppContext<'a> {
    pub manifest: &'a Manifest,
    pub runtime_config: &'a RuntimeConfig,
    pub variables: &'a Arc<Resolver>,
    /// The app's state directory (`.kiln/` beside the manifest for `kiln up`): embedded stores live here.
    pub state_dir: &'a Path,
    /// Told of what guests do through capabilities (platform mode's metrics); `None` under `kiln up`.
    pub observer: Option<&'a Arc<dyn CapabilityObserver>>,
}

/// Told of what guests do through capabilities, for metrics. Called on the guest's call path: keep
/// it to a counter's increment.
pub trait CapabilityObserver: Send + Sync {
    /// `component` wrote a line through `wasi:logging` at `level` (`trace` … `critical`).
    fn guest_log(&self, component: &str, level: &'static str);

    /// A backend `capability` uses failed a guest's call: `backend` (`redis`, `embedded`, `nats`…)
    /// did not answer, its disk is full, its connection is down. Not the guest's own mistakes.
    fn backend_error(&self, capability: &'static str, backend: &'static str) {
        let _ = (capability, backend);
    }
}

/// Where a capability reports its backends' failures: the app's observer, if it has one. Cheap to
/// clone; does nothing without an observer (`kiln up`).
#[derive(Clone, Default)]
pub struct BackendFaults {
    observer: Option<Arc<dyn CapabilityObserver>>,
    capability: &'static str,
}

impl BackendFaults {
    pub fn new(app: &AppContext<'_>, capability: &'static str) -> BackendFaults {
        BackendFaults { observer: app.observer.cloned(), capability }
    }

    /// `backend` failed a call.
    pub fn report(&self, backend: &'static str) {
        if let Some(observer) = &self.observer {
            observer.backend_error(self.capability, backend);
        }
    }
}

/// What a capability sees of one component.
pub struct ComponentContext<'a> {
    /// The app's manifest, for errors located in it.
    pub manifest: &'a Manifest,
    pub component: &'a Component,
    /// `allowed_outbound_hosts`, templates rendered.
    pub allowed_hosts: &'a AllowedHosts,
}
