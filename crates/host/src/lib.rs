//! Runs one app in this process with every trigger and capability Kiln has. `kiln up` and the
//! containerd shim (`containerd-shim-kiln-v1`) start apps through it, so an app behaves the same on
//! a laptop and in a pod; `kiln serve` takes its lists of triggers and capabilities.
//!
//! Two steps, so a caller can act in between: [`prepare`] binds the HTTP address and checks the
//! manifest's trigger tables (a taken port or a bad table fails before anything is compiled);
//! [`Prepared::start`] compiles and loads the app and starts its triggers.

pub mod capabilities;
pub mod triggers;

use anyhow::{Context, Result};
use kiln_app::{App, LoadOptions, RunningTrigger, Trigger, TriggerContext, TriggerLimits};
use kiln_engine::{Engine, EngineConfig, InstanceLimits};
use kiln_manifest::Manifest;
use kiln_runtime_config::RuntimeConfig;
use kiln_trigger_http::{ConnectionLimits, HttpListener, ListenerSettings};
use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

/// How to run the app. Limits left `None` come from the manifest's `[application.tool.kiln]`, else
/// Kiln's defaults.
pub struct Settings {
    pub listen: SocketAddr,
    /// HTTP worker threads.
    pub workers: usize,
    /// How long a request waits for a free instance before it gets 503.
    pub queue_timeout: Duration,
    /// On shutdown, how long in-flight requests and events may take to finish.
    pub shutdown_grace: Duration,
    pub request_timeout: Option<Duration>,
    pub memory_limit_mib: Option<usize>,
    pub max_concurrency: Option<usize>,
    /// Where compiled components are cached; `None` compiles every component at start.
    pub cache_dir: Option<PathBuf>,
    pub runtime_config_file: Option<PathBuf>,
    /// Where the app keeps its state; `None`: `.kiln/` beside the manifest.
    pub state_dir: Option<PathBuf>,
    /// The environment the app's variables are read from (`SPIN_VARIABLE_<NAME>`).
    pub env: Vec<(String, String)>,
    /// What one client connection may hold: header size and timeout, connections at once.
    pub connections: ConnectionLimits,
}

impl Settings {
    /// Kiln's defaults: a worker per core, the default cache, no runtime config, no environment.
    pub fn new(listen: SocketAddr) -> Settings {
        Settings {
            listen,
            workers: std::thread::available_parallelism().map(|n| n.get()).unwrap_or(1),
            queue_timeout: Duration::from_secs(10),
            shutdown_grace: Duration::from_secs(10),
            request_timeout: None,
            memory_limit_mib: None,
            max_concurrency: None,
            cache_dir: kiln_engine::default_cache_dir(),
            runtime_config_file: None,
            state_dir: None,
            env: Vec::new(),
            connections: ConnectionLimits::default(),
        }
    }
}

/// The app's limits: the settings, else the manifest's `[application.tool.kiln]`, else the defaults.
struct Limits {
    request_timeout: Duration,
    memory_limit_mib: usize,
    max_concurrency: usize,
    max_request_body: Option<u64>,
}

impl Limits {
    fn resolve(settings: &Settings, manifest: &kiln_manifest::AppLimitsSpec) -> Result<Limits> {
        let limits = Limits {
            request_timeout: settings
                .request_timeout
                .or(manifest.request_timeout_ms.map(Duration::from_millis))
                .unwrap_or(Duration::from_secs(30)),
            memory_limit_mib: settings.memory_limit_mib.or(manifest.memory_limit_mib.map(|mib| mib as usize)).unwrap_or(128),
            max_concurrency: settings.max_concurrency.or(manifest.max_concurrency.map(|n| n as usize)).unwrap_or(1000).max(1),
            max_request_body: manifest.max_request_body,
        };
        if limits.memory_limit_mib == 0 {
            anyhow::bail!("the memory limit must be at least 1 MiB");
        }
        Ok(limits)
    }

    fn for_triggers(&self) -> TriggerLimits {
        TriggerLimits {
            instance: InstanceLimits { deadline: self.request_timeout, memory_limit: self.memory_limit_mib << 20 },
            max_concurrency: self.max_concurrency,
        }
    }
}

/// The engine settings for an app: what `start` runs it with, and what the shim precompiles it
/// with (the two must agree, or the precompiled artifacts are not used).
pub fn engine_config(manifest: &Manifest, settings: &Settings) -> Result<EngineConfig> {
    let limits = Limits::resolve(settings, &manifest.application.limits)?;
    let mut config = EngineConfig::default();
    config.max_instance_memory = config.max_instance_memory.max(limits.memory_limit_mib << 20);
    // Each trigger may run up to max_concurrency instances; the pool leaves room for two at their
    // limit at once (plus cron runs) before an instantiation would fail.
    let per_trigger = u32::try_from(limits.max_concurrency).context("the concurrency limit is too large")?;
    config.max_instances = per_trigger.saturating_mul(2).saturating_add(16);
    config.cache_dir = settings.cache_dir.clone();
    config.concurrency = app_needs_concurrency(manifest)?;
    Ok(config)
}

/// Whether any local component, or local dependency, imports an interface that needs
/// component-model concurrency.
fn app_needs_concurrency(manifest: &Manifest) -> Result<bool> {
    for component in manifest.components.values() {
        let dependencies = component.dependencies.iter().filter_map(|d| match &d.source {
            kiln_manifest::DependencySource::Local(path) => Some(path),
            _ => None,
        });
        let source = match &component.source {
            kiln_manifest::ComponentSource::Local(path) => Some(path),
            _ => None,
        };
        for path in source.into_iter().chain(dependencies) {
            if Engine::needs_concurrency(path)? {
                tracing::debug!("component `{}` needs component-model concurrency", component.id);
                return Ok(true);
            }
        }
    }
    Ok(false)
}

/// An app whose address is bound and whose trigger tables are checked, not yet loaded.
pub struct Prepared {
    manifest: Manifest,
    settings: Settings,
    limits: Limits,
    addr: SocketAddr,
    runtime_config: RuntimeConfig,
    messaging: kiln_cap_messaging::Messaging,
    triggers: Vec<Box<dyn Trigger>>,
}

/// Binds the app's HTTP address and checks its trigger tables.
pub fn prepare(manifest: Manifest, settings: Settings) -> Result<Prepared> {
    let listener = kiln_trigger_http::bind(settings.listen)?;
    prepare_on(manifest, settings, listener)
}

/// Checks the app's trigger tables, to serve HTTP on `listener` (bound already: `kiln watch` hands
/// each new version of the app a clone of the same socket, so no connection is refused while the
/// versions change over).
pub fn prepare_on(manifest: Manifest, settings: Settings, listener: std::net::TcpListener) -> Result<Prepared> {
    let limits = Limits::resolve(&settings, &manifest.application.limits)?;
    let runtime_config = match &settings.runtime_config_file {
        Some(path) => RuntimeConfig::load(path)?,
        None => RuntimeConfig::default(),
    };
    let messaging = kiln_cap_messaging::Messaging::new(runtime_config.messaging.as_ref().and_then(|m| m.max_deliver));
    let addr = listener.local_addr()?;
    let http = HttpListener::new(
        listener,
        ListenerSettings {
            workers: settings.workers.max(1),
            queue_timeout: settings.queue_timeout,
            max_request_body: limits.max_request_body,
            grace: settings.shutdown_grace,
            connections: settings.connections,
        },
    );
    let triggers = triggers::all(http, &messaging);
    for trigger in &triggers {
        trigger.check(&manifest)?;
    }
    Ok(Prepared { manifest, settings, limits, addr, runtime_config, messaging, triggers })
}

impl Prepared {
    pub fn manifest(&self) -> &Manifest {
        &self.manifest
    }

    pub fn addr(&self) -> SocketAddr {
        self.addr
    }

    /// Compiles and loads the app and starts its triggers. `before_load` sees the app's state
    /// directory and runtime config before any component runs (`kiln up --sqlite`).
    pub fn start(self, before_load: impl FnOnce(&LoadOptions) -> Result<()>) -> Result<Host> {
        let Prepared { manifest, settings, limits, addr, runtime_config, messaging, triggers } = self;
        // Before anything reads a component: a missing file is reported at its place in the manifest.
        manifest.check_sources()?;
        let capabilities = capabilities::all(&messaging);
        let links: Vec<_> = capabilities.iter().map(|c| c.link()).collect();
        let engine = Engine::new(engine_config(&manifest, &settings)?, &links)?;
        let mut options = LoadOptions::for_manifest(&manifest, settings.env.iter().cloned(), &capabilities);
        options.providers = kiln_variables::providers_from_config(&runtime_config, settings.env.iter().cloned())?;
        options.runtime_config = runtime_config;
        if let Some(dir) = &settings.state_dir {
            options.state_dir = dir.clone();
        }
        before_load(&options)?;
        let app = Arc::new(App::load(&engine, manifest, options)?);
        let events = triggers::event_runtime()?;
        let context = TriggerContext::resident(app.clone(), limits.for_triggers(), events.handle().clone());
        // In list order, HTTP last: once /.well-known/spin/health answers, every trigger is
        // subscribed and scheduled.
        let mut running = Vec::new();
        for trigger in triggers.iter().filter(|trigger| trigger.is_used_by(&app.manifest)) {
            running.push(trigger.start(&app, context.clone())?);
        }
        Ok(Host { app, addr, running, events, grace: settings.shutdown_grace })
    }
}

/// A running app: its triggers take requests and events until [`Host::shutdown`].
pub struct Host {
    app: Arc<App>,
    addr: SocketAddr,
    running: Vec<Box<dyn RunningTrigger>>,
    events: tokio::runtime::Runtime,
    grace: Duration,
}

impl Host {
    pub fn app(&self) -> &App {
        &self.app
    }

    pub fn addr(&self) -> SocketAddr {
        self.addr
    }

    /// A line per route, channel, subject and schedule.
    pub fn describe(&self) -> Vec<String> {
        self.running.iter().flat_map(|running| running.describe()).collect()
    }

    /// Stops taking requests and events, and lets the in-flight ones finish within the grace period.
    pub fn shutdown(self) {
        tracing::info!("shutting down: finishing in-flight work (up to {:?})", self.grace);
        // Every trigger drains at once, so the grace periods do not add up.
        let grace = self.grace;
        self.events.block_on(futures::future::join_all(self.running.into_iter().map(|running| running.shutdown(grace))));
        self.events.shutdown_timeout(Duration::from_secs(1));
    }
}

/// SIGINT and SIGTERM, handled from the moment [`ShutdownSignal::install`] returns: install it
/// before anything can be seen from outside (a bound port, a health check), so a signal sent as soon
/// as the app answers is never met by the default action, which would kill the process mid-request.
pub struct ShutdownSignal {
    runtime: tokio::runtime::Runtime,
    terminate: tokio::signal::unix::Signal,
    interrupt: tokio::signal::unix::Signal,
}

impl ShutdownSignal {
    pub fn install() -> Result<ShutdownSignal> {
        use tokio::signal::unix::{SignalKind, signal};
        let runtime = tokio::runtime::Builder::new_current_thread().enable_all().build()?;
        let (terminate, interrupt) = {
            let _context = runtime.enter();
            (signal(SignalKind::terminate())?, signal(SignalKind::interrupt())?)
        };
        Ok(ShutdownSignal { runtime, terminate, interrupt })
    }

    /// Whether SIGINT or SIGTERM arrives within `timeout` (or arrived since `install`).
    pub fn received_within(&mut self, timeout: Duration) -> bool {
        let ShutdownSignal { runtime, terminate, interrupt } = self;
        runtime.block_on(async {
            tokio::select! {
                _ = terminate.recv() => true,
                _ = interrupt.recv() => true,
                _ = tokio::time::sleep(timeout) => false,
            }
        })
    }

    /// Blocks until SIGINT or SIGTERM (also one that arrived since `install`).
    pub fn wait(self) {
        let ShutdownSignal { runtime, mut terminate, mut interrupt } = self;
        runtime.block_on(async {
            tokio::select! {
                _ = terminate.recv() => {}
                _ = interrupt.recv() => {}
            }
        });
    }
}
