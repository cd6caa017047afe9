//! Loading an application: from a validated manifest to components ready to instantiate.
//!
//! Everything that can be checked before serving is checked here, once: variables are resolved,
//! `allowed_outbound_hosts` templates rendered and parsed, `files` staged, every component compiled
//! and linked. A trigger then only creates stores and instances.

mod capability;
mod compose;
mod files;
mod trigger;

/// Stages a component's `files` and returns what to mount: (host directory, guest path) pairs.
pub use files::stage as stage_files;

pub use capability::{AppCapability, AppContext, BackendFaults, Capability, CapabilityObserver, ComponentContext};
pub use trigger::{AppSource, BoxFuture, Draining, EventObserver, EventOutcome, RunningTrigger, Trigger, TriggerContext, TriggerLimits};

use anyhow::{Context, Result};
use indexmap::IndexMap;
use kiln_engine::{ComponentPre, Engine, WasiTemplate};
use kiln_manifest::{Component, ComponentSource, Manifest};
use kiln_outbound::AllowedHosts;
use kiln_outbound_http::OutboundHttp;
use kiln_runtime_config::RuntimeConfig;
use kiln_variables::Resolver;
use std::any::Any;
use std::collections::HashMap;
use std::path::PathBuf;
use std::sync::{Arc, Mutex};

/// A loaded application.
pub struct App {
    pub manifest: Manifest,
    pub components: IndexMap<String, AppComponent>,
    pub variables: Arc<Resolver>,
    pub state_dir: PathBuf,
    /// Each capability as configured for this app, for triggers that need one ([`App::capability`]).
    capabilities: Vec<Box<dyn AppCapability>>,
    /// What each trigger located in this app ([`App::trigger_exports`]).
    trigger_exports: Mutex<HashMap<&'static str, Arc<dyn Any + Send + Sync>>>,
}

/// One component of a loaded application.
pub struct AppComponent {
    pub pre: ComponentPre,
    pub outbound_http: Arc<OutboundHttp>,
}

/// Where the app keeps its state, and where variable values come from.
pub struct LoadOptions<'a> {
    /// `.kiln/` beside the manifest unless the user says otherwise.
    pub state_dir: PathBuf,
    /// Where `files` globs are staged, one directory per component; `None`: `<state_dir>/files`.
    /// Platform mode gives every version of an app its own, so an update never changes the files
    /// under a request still running on the old version.
    pub files_dir: Option<PathBuf>,
    /// Variable providers, in order of precedence.
    pub providers: Vec<Box<dyn kiln_variables::Provider>>,
    pub runtime_config: RuntimeConfig,
    /// The capabilities to offer (their interfaces must be linked into the engine).
    pub capabilities: &'a [Box<dyn Capability>],
    /// Told of what guests do through capabilities (platform mode's metrics).
    pub observer: Option<Arc<dyn CapabilityObserver>>,
}

impl<'a> LoadOptions<'a> {
    /// The defaults for `kiln up`: state in `.kiln/` beside the manifest, variables from the process
    /// environment (`KILN_VARIABLE_*`, `SPIN_VARIABLE_*`), no runtime config.
    pub fn for_manifest(
        manifest: &Manifest,
        env: impl IntoIterator<Item = (String, String)>,
        capabilities: &'a [Box<dyn Capability>],
    ) -> LoadOptions<'a> {
        LoadOptions {
            state_dir: manifest.dir.join(".kiln"),
            files_dir: None,
            providers: vec![Box::new(kiln_variables::EnvProvider::new(env))],
            runtime_config: RuntimeConfig::default(),
            capabilities,
            observer: None,
        }
    }
}

impl App {
    pub fn load(engine: &Engine, manifest: Manifest, options: LoadOptions<'_>) -> Result<App> {
        manifest.check_sources()?;
        let variables = Arc::new(Resolver::new(&manifest, options.providers)?);
        let context = AppContext {
            manifest: &manifest,
            runtime_config: &options.runtime_config,
            variables: &variables,
            state_dir: &options.state_dir,
            observer: options.observer.as_ref(),
        };
        let files_dir = options.files_dir.clone().unwrap_or_else(|| options.state_dir.join("files"));
        let mut configured = Vec::with_capacity(options.capabilities.len());
        for capability in options.capabilities {
            let app_capability = capability
                .configure_app(&context)
                .with_context(|| format!("configuring {}", capability.name()))?;
            configured.push(app_capability);
        }
        let mut components = IndexMap::new();
        for (id, component) in &manifest.components {
            let loaded = load_component(engine, &context, &configured, component, &files_dir)?;
            components.insert(id.clone(), loaded);
        }
        Ok(App { manifest, components, variables, state_dir: options.state_dir, capabilities: configured, trigger_exports: Mutex::default() })
    }

    /// A capability as configured for this app: how a trigger gets what a capability provides it
    /// (the NATS trigger takes the messaging capability's broker for this app).
    pub fn capability<T: AppCapability>(&self) -> Option<&T> {
        self.capabilities.iter().find_map(|capability| (capability.as_ref() as &dyn Any).downcast_ref::<T>())
    }

    pub fn name(&self) -> &str {
        &self.manifest.application.name
    }
}

fn load_component(
    engine: &Engine,
    app: &AppContext<'_>,
    capabilities: &[Box<dyn AppCapability>],
    component: &Component,
    files_dir: &std::path::Path,
) -> Result<AppComponent> {
    let (manifest, id) = (app.manifest, component.id.as_str());
    let allowed = allowed_hosts(manifest, app.variables, component)?;
    let context = ComponentContext { manifest, component, allowed_hosts: &allowed };
    let mut instance_capabilities = Vec::with_capacity(capabilities.len());
    for capability in capabilities {
        instance_capabilities.push(capability.component(&context)?);
    }
    let wasi = WasiTemplate {
        env: component.environment.clone(),
        preopens: files::stage(manifest, component, files_dir)?,
        writable_preopens: Vec::new(),
        sockets: socket_policy(&allowed),
    };
    let path = match &component.source {
        ComponentSource::Local(path) => path.clone(),
        ComponentSource::Remote { url, .. } => {
            return Err(manifest
                .error_at(&component.source_span, format!("component `{id}`: remote source `{url}` was not fetched"), "kiln up and kiln deploy fetch remote sources; or download the .wasm file and point `source` at it")
                .into());
        }
        ComponentSource::Registry { package, .. } => {
            return Err(manifest
                .error_at(&component.source_span, format!("component `{id}`: registry source `{package}` was not fetched"), "kiln up and kiln deploy fetch registry sources; or fetch the component and point `source` at the local .wasm file")
                .into());
        }
    };
    let pre = if component.dependencies.is_empty() {
        ComponentPre::load(engine, id, &path, wasi, instance_capabilities)
    } else {
        let bytes = compose::composed_bytes(manifest, component, &path)?;
        ComponentPre::load_bytes(engine, id, &bytes, wasi, instance_capabilities)
    }
    .with_context(|| format!("component `{id}`"))?;
    Ok(AppComponent { pre, outbound_http: OutboundHttp::new(id, allowed) })
}

/// `wasi:sockets` may reach exactly what `allowed_outbound_hosts` allows (TCP and UDP are checked
/// by scheme, as Spin does); listening sockets are never allowed. No grants: no sockets at all.
pub fn socket_policy(allowed: &AllowedHosts) -> Option<kiln_engine::SocketPolicy> {
    if allowed.is_empty() {
        return None;
    }
    let allowed = allowed.clone();
    Some(Arc::new(move |addr, usage| {
        use kiln_engine::SocketAddrUse::*;
        match usage {
            TcpConnect => allowed.allows_socket_addr(addr),
            UdpSend | UdpReceive => allowed.allows_udp_addr(addr),
            // Binding to an ephemeral local address precedes connecting; a specific address would be
            // the start of a listener.
            TcpBind | UdpBind => addr.ip().is_unspecified(),
            TcpListen | TcpAccept => false,
        }
    }))
}

/// Renders `{{ variable }}` templates in `allowed_outbound_hosts` and parses the result; errors point
/// at the entry in the manifest.
fn allowed_hosts(manifest: &Manifest, variables: &Resolver, component: &Component) -> Result<AllowedHosts> {
    let mut rendered = Vec::with_capacity(component.allowed_outbound_hosts.len());
    for entry in &component.allowed_outbound_hosts {
        let value = variables.render_for_component(&component.id, &entry.pattern).map_err(|err| {
            manifest.error_at(&entry.span, format!("cannot resolve `{}`: {err}", entry.pattern), "give the variable a value (see `[variables]`)")
        })?;
        AllowedHosts::parse(std::slice::from_ref(&value)).map_err(|err| {
            manifest.error_at(&entry.span, err.to_string(), "see allowed_outbound_hosts in the README")
        })?;
        rendered.push(value);
    }
    Ok(AllowedHosts::parse(&rendered)?)
}
