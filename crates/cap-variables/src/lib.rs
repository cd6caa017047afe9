//! The variables capability: a component reads its own `variables = { … }` table from the manifest,
//! each value a template over the application's variables, resolved through the app's
//! [`kiln_variables::Resolver`] (providers in runtime-config order, then manifest defaults).
//!
//! Interfaces served (all over [`VariablesState`]):
//! - `fermyon:spin/variables@2.0.0` — `get` → `invalid-name` / `undefined` / `provider` / `other`;
//! - `spin:variables/variables@3.0.0` — the same, as an `async func` (Spin 4). Linked only when the
//!   engine has `Config::concurrency_support`: without it wasmtime cannot define `async func`
//!   imports, and cannot load a component that declares them either;
//! - `wasi:config/store@0.2.0-draft-2024-09-27` (Spin 3) and `wasi:config/store@0.2.0-draft`
//!   (wasmCloud) — `get` → `ok(some)`, `ok(none)` for unknown *and* invalid names (as Spin does,
//!   following wasi-runtime-config's guidance), `upstream` for provider failures, `io` otherwise;
//!   `get-all` → every variable of the component;
//! - `wasi:config/runtime@0.2.0-draft` (the interface's older name, which wasmCloud still serves) —
//!   the same as `wasi:config/store`, its error variant named `config-error`.
//!
//! Nothing is resolved at load or instance start: an instance holds two `Arc`s, and a value is
//! resolved only when the guest calls `get`. Values never appear in logs or errors; errors carry
//! variable names only.

use std::sync::Arc;

use anyhow::Result;
use kiln_app::{AppCapability, AppContext, Capability, ComponentContext};
use kiln_engine::{ComponentCapability, KilnState, LinkFn};
use kiln_variables::{Resolver, VariablesError};
use wasmtime::component::{Accessor, HasSelf, Linker};

/// `fermyon:spin/variables@2.0.0`.
mod bindings_v2 {
    wasmtime::component::bindgen!({
        path: ["../../wit/spin@2.0.0"],
        inline: "
            package kiln:variables-v2;
            world imports { import fermyon:spin/variables@2.0.0; }
        ",
        world: "kiln:variables-v2/imports",
        additional_derives: [PartialEq, Eq],
    });
}

/// `spin:variables/variables@3.0.0` (`get` is an `async func`: a concurrent host function).
mod bindings_v3 {
    wasmtime::component::bindgen!({
        path: ["../../wit/spin-variables@3.0.0"],
        inline: "
            package kiln:variables-v3;
            world imports { import spin:variables/variables@3.0.0; }
        ",
        world: "kiln:variables-v3/imports",
        additional_derives: [PartialEq, Eq],
    });
}

/// `wasi:config/store@0.2.0-draft-2024-09-27` (Spin 3).
mod config_2024_09_27 {
    wasmtime::component::bindgen!({
        path: ["../../wit/wasi-runtime-config-2024-09-27"],
        world: "wasi:config/imports@0.2.0-draft-2024-09-27",
        additional_derives: [PartialEq, Eq],
    });
}

/// `wasi:config/store@0.2.0-draft` (wasmCloud). wasmtime-wasi-config 48.0.8 serves
/// `0.2.0-rc.1` from a fixed map, so it fits neither the version nor per-call resolution.
mod config_draft {
    wasmtime::component::bindgen!({
        path: ["../../wit/wasi-config-0.2.0-draft"],
        world: "wasi:config/imports@0.2.0-draft",
        additional_derives: [PartialEq, Eq],
    });
}

/// `wasi:config/runtime@0.2.0-draft`: the same package version as `store` above, published
/// separately by wasmCloud (`config-legacy`), so it has its own WIT directory and bindings.
mod config_runtime {
    wasmtime::component::bindgen!({
        path: ["../../wit/wasi-config-runtime-0.2.0-draft"],
        world: "wasi:config/imports@0.2.0-draft",
        additional_derives: [PartialEq, Eq],
    });
}

use config_2024_09_27::wasi::config::store as store_2024_09_27;
use config_runtime::wasi::config::runtime as config_runtime_draft;
use config_draft::wasi::config::store as store_draft;
use bindings_v2::fermyon::spin::variables as v2;
use bindings_v3::spin::variables::variables as v3;

/// The variables capability.
pub struct Variables;

impl Capability for Variables {
    fn name(&self) -> &'static str {
        "variables"
    }

    fn link(&self) -> LinkFn {
        link
    }

    fn configure_app(&self, app: &AppContext<'_>) -> Result<Box<dyn AppCapability>> {
        Ok(Box::new(AppVariables {
            resolver: app.variables.clone(),
        }))
    }
}

/// The app's resolver; shared by every component.
struct AppVariables {
    resolver: Arc<Resolver>,
}

impl AppCapability for AppVariables {
    fn component(&self, component: &ComponentContext<'_>) -> Result<Arc<dyn ComponentCapability>> {
        Ok(Arc::new(ComponentVariables {
            resolver: self.resolver.clone(),
            component_id: Arc::from(component.component.id.as_str()),
        }))
    }
}

/// What one component's instances get: the resolver and whose variables to read.
struct ComponentVariables {
    resolver: Arc<Resolver>,
    component_id: Arc<str>,
}

impl ComponentCapability for ComponentVariables {
    fn instance_state(&self) -> Box<dyn std::any::Any + Send> {
        Box::new(VariablesState::new(
            self.resolver.clone(),
            self.component_id.clone(),
        ))
    }
}

/// Per-instance state: two `Arc` clones.
pub struct VariablesState {
    resolver: Arc<Resolver>,
    component_id: Arc<str>,
}

impl VariablesState {
    pub fn new(resolver: Arc<Resolver>, component_id: Arc<str>) -> VariablesState {
        VariablesState {
            resolver,
            component_id,
        }
    }

    /// The value of the component's variable `name`, resolved now.
    fn resolve(&self, name: &str) -> Result<String, Failure> {
        self.resolver
            .component_variable(&self.component_id, name)
            .map_err(|e| self.failure(name, e))
    }

    fn resolve_all(&self) -> Result<Vec<(String, String)>, Failure> {
        self.resolver
            .component_variables(&self.component_id)
            .map_err(|e| self.failure("*", e))
    }

    fn failure(&self, name: &str, error: VariablesError) -> Failure {
        let failure = Failure::from(error);
        // Names only: the value (if any was resolved) is never logged.
        tracing::debug!(component = %self.component_id, variable = name, kind = failure.kind(), "variables.get failed");
        failure
    }
}

/// The four outcomes the Spin interfaces distinguish. Messages carry names, never values.
#[derive(Debug, PartialEq, Eq)]
enum Failure {
    InvalidName(String),
    Undefined(String),
    Provider(String),
    Other(String),
}

impl Failure {
    fn kind(&self) -> &'static str {
        match self {
            Failure::InvalidName(_) => "invalid-name",
            Failure::Undefined(_) => "undefined",
            Failure::Provider(_) => "provider",
            Failure::Other(_) => "other",
        }
    }
}

impl From<VariablesError> for Failure {
    fn from(e: VariablesError) -> Failure {
        let message = e.to_string();
        match e {
            VariablesError::InvalidName(_) => Failure::InvalidName(message),
            VariablesError::Undefined(_) => Failure::Undefined(message),
            // A variable no provider set and without a default: Spin reports it as undefined.
            VariablesError::MissingRequired { .. } => Failure::Undefined(message),
            VariablesError::Dotenv { .. } => Failure::Provider(message),
            VariablesError::Template(_) => Failure::Other(message),
        }
    }
}

fn to_v2(f: Failure) -> v2::Error {
    match f {
        Failure::InvalidName(m) => v2::Error::InvalidName(m),
        Failure::Undefined(m) => v2::Error::Undefined(m),
        Failure::Provider(m) => v2::Error::Provider(m),
        Failure::Other(m) => v2::Error::Other(m),
    }
}

fn to_v3(f: Failure) -> v3::Error {
    match f {
        Failure::InvalidName(m) => v3::Error::InvalidName(m),
        Failure::Undefined(m) => v3::Error::Undefined(m),
        Failure::Provider(m) => v3::Error::Provider(m),
        Failure::Other(m) => v3::Error::Other(m),
    }
}

/// wasi:config's `get`: unknown and invalid names are `none` (Spin's mapping).
fn config_get(state: &VariablesState, key: &str) -> Result<Option<String>, (bool, String)> {
    match state.resolve(key) {
        Ok(value) => Ok(Some(value)),
        Err(Failure::Undefined(_) | Failure::InvalidName(_)) => Ok(None),
        Err(Failure::Provider(m)) => Err((true, m)),
        Err(Failure::Other(m)) => Err((false, m)),
    }
}

/// wasi:config's `get-all`: any failure is `upstream` for a provider, `io` otherwise.
fn config_get_all(state: &VariablesState) -> Result<Vec<(String, String)>, (bool, String)> {
    state.resolve_all().map_err(|f| match f {
        Failure::Provider(m) => (true, m),
        Failure::InvalidName(m) | Failure::Undefined(m) | Failure::Other(m) => (false, m),
    })
}

impl v2::Host for VariablesState {
    fn get(&mut self, name: String) -> Result<String, v2::Error> {
        self.resolve(&name).map_err(to_v2)
    }
}

impl v3::Host for VariablesState {}

/// The concurrent (`async func`) interface's host functions get the instance's state.
type V3 = HasSelf<VariablesState>;

impl<T> v3::HostWithStore<T> for V3 {
    async fn get(accessor: &Accessor<T, Self>, name: String) -> Result<String, v3::Error> {
        let (resolver, component_id) = accessor.with(|mut access| {
            let state = access.get();
            (state.resolver.clone(), state.component_id.clone())
        });
        VariablesState::new(resolver, component_id)
            .resolve(&name)
            .map_err(to_v3)
    }
}

impl store_2024_09_27::Host for VariablesState {
    fn get(&mut self, key: String) -> Result<Option<String>, store_2024_09_27::Error> {
        config_get(self, &key).map_err(|(upstream, m)| match upstream {
            true => store_2024_09_27::Error::Upstream(m),
            false => store_2024_09_27::Error::Io(m),
        })
    }

    fn get_all(&mut self) -> Result<Vec<(String, String)>, store_2024_09_27::Error> {
        config_get_all(self).map_err(|(upstream, m)| match upstream {
            true => store_2024_09_27::Error::Upstream(m),
            false => store_2024_09_27::Error::Io(m),
        })
    }
}

impl store_draft::Host for VariablesState {
    fn get(&mut self, key: String) -> Result<Option<String>, store_draft::Error> {
        config_get(self, &key).map_err(|(upstream, m)| match upstream {
            true => store_draft::Error::Upstream(m),
            false => store_draft::Error::Io(m),
        })
    }

    fn get_all(&mut self) -> Result<Vec<(String, String)>, store_draft::Error> {
        config_get_all(self).map_err(|(upstream, m)| match upstream {
            true => store_draft::Error::Upstream(m),
            false => store_draft::Error::Io(m),
        })
    }
}

impl config_runtime_draft::Host for VariablesState {
    fn get(&mut self, key: String) -> Result<Option<String>, config_runtime_draft::ConfigError> {
        config_get(self, &key).map_err(to_config_error)
    }

    fn get_all(&mut self) -> Result<Vec<(String, String)>, config_runtime_draft::ConfigError> {
        config_get_all(self).map_err(to_config_error)
    }
}

fn to_config_error((upstream, m): (bool, String)) -> config_runtime_draft::ConfigError {
    match upstream {
        true => config_runtime_draft::ConfigError::Upstream(m),
        false => config_runtime_draft::ConfigError::Io(m),
    }
}

fn instance(state: &mut KilnState) -> &mut VariablesState {
    state.capability::<VariablesState>()
}

/// Adds every interface version to the linker.
fn link(linker: &mut Linker<KilnState>) -> Result<()> {
    type State = HasSelf<VariablesState>;
    v2::add_to_linker::<KilnState, State>(linker, instance)?;
    store_2024_09_27::add_to_linker::<KilnState, State>(linker, instance)?;
    store_draft::add_to_linker::<KilnState, State>(linker, instance)?;
    config_runtime_draft::add_to_linker::<KilnState, State>(linker, instance)?;
    if linker.engine().get_concurrency_support() {
        v3::add_to_linker::<KilnState, V3>(linker, instance)?;
    }
    Ok(())
}

#[cfg(test)]
mod tests;
