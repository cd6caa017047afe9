use anyhow::{Context, Result};
use kiln_app::{App, LoadOptions, RunningTrigger, TriggerContext, TriggerLimits};
use kiln_engine::{Engine, EngineConfig, InstanceLimits};
use kiln_manifest::Manifest;
use kiln_runtime_config::RuntimeConfig;
use kiln_trigger_http::{HttpListener, ListenerSettings};
use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::{Duration, Instant};

#[derive(clap::Args)]
pub(crate) struct UpArgs {
    /// The manifest, a directory containing kiln.toml or spin.toml, or a registry reference
    /// (`host[:port]/repository:tag`, `…@sha256:…` to pin; pulled unless cached) [default: the
    /// current directory].
    #[arg(short = 'f', long = "from", value_name = "PATH|REF")]
    file: Option<String>,
    /// The registry of `--from REF` speaks plain HTTP (a registry on loopback).
    #[arg(short = 'k', long)]
    insecure: bool,
    /// Address to serve HTTP on.
    #[arg(long, default_value = "127.0.0.1:3000", env = "KILN_LISTEN")]
    listen: SocketAddr,
    /// Run the components' build commands before serving.
    #[arg(long)]
    build: bool,
    /// Log only warnings and errors (no line per request).
    #[arg(short, long)]
    quiet: bool,
    /// Log as JSON lines.
    #[arg(long)]
    json_logs: bool,
    /// Where compiled components are cached [default: $KILN_CACHE_DIR, else ~/.cache/kiln].
    #[arg(long, value_name = "DIR")]
    cache_dir: Option<PathBuf>,
    /// Compile every component at start instead of using the cache.
    #[arg(long)]
    no_cache: bool,
    /// Backends for key-value stores and SQLite databases, and variable providers (Spin's format).
    #[arg(long, value_name = "FILE")]
    runtime_config_file: Option<PathBuf>,
    /// SQL to run against the `default` SQLite database before serving (`@file` for a file of
    /// statements, `@file:label` for another database). Repeatable; runs in order.
    #[arg(long, value_name = "SQL")]
    sqlite: Vec<String>,
    /// Where the app keeps its state [default: .kiln/ beside the manifest].
    #[arg(long, value_name = "DIR")]
    state_dir: Option<PathBuf>,
    /// A request still running after this long is cut off with 504 [default: the manifest's
    /// `[application.tool.kiln] request_timeout_ms`, else 30s].
    #[arg(long, value_parser = humantime::parse_duration)]
    request_timeout: Option<Duration>,
    /// Linear memory limit of each instance, in MiB [default: the manifest's `memory_limit_mib`,
    /// else 128].
    #[arg(long, value_name = "MIB")]
    memory_limit: Option<usize>,
    /// Instances that may run at once; further requests wait for one [default: the manifest's
    /// `max_concurrency`, else 1000].
    #[arg(long)]
    max_concurrency: Option<usize>,
    /// How long a request waits for a free instance before it gets 503.
    #[arg(long, default_value = "10s", value_parser = humantime::parse_duration)]
    queue_timeout: Duration,
    /// On SIGINT/SIGTERM, how long in-flight requests may take to finish.
    #[arg(long, default_value = "10s", value_parser = humantime::parse_duration)]
    shutdown_grace: Duration,
    /// HTTP worker threads [default: one per available core].
    #[arg(long)]
    workers: Option<usize>,
}

pub(crate) fn run(args: UpArgs) -> Result<()> {
    crate::init_logging(args.quiet, args.json_logs);
    let started = Instant::now();
    let from_registry = args.file.as_deref().is_some_and(crate::registry::is_reference);
    let path = match args.file.as_deref() {
        Some(from) if crate::registry::is_reference(from) => crate::registry::cached_or_pulled(from, args.insecure, args.cache_dir.as_deref())?,
        from => kiln_manifest::find_manifest(from.map(std::path::Path::new))?,
    };
    let mut manifest = Manifest::load(&path)?;
    crate::registry::resolve_sources(&mut manifest, args.insecure, args.cache_dir.as_deref())?;
    let limits = Limits::resolve(&args, &manifest.application.limits);
    let messaging_config = match &args.runtime_config_file {
        Some(path) => kiln_messaging::MessagingRuntimeConfig::load(path)?,
        None => None,
    };
    let messaging = kiln_cap_messaging::Messaging::new(messaging_config);
    // Bound first: a taken port fails before anything is compiled.
    let listener = kiln_trigger_http::bind(args.listen)?;
    let addr = listener.local_addr()?;
    let http = HttpListener::new(
        listener,
        ListenerSettings {
            workers: args.workers.unwrap_or_else(|| std::thread::available_parallelism().map(|n| n.get()).unwrap_or(1)),
            queue_timeout: args.queue_timeout,
            max_request_body: limits.max_request_body,
            grace: args.shutdown_grace,
        },
    );
    let triggers = crate::triggers::all(http, &messaging);
    for trigger in &triggers {
        trigger.check(&manifest)?;
    }
    if args.build {
        crate::build::build_all(&manifest)?;
    }
    // Before anything reads a component: a missing file is reported at its place in the manifest.
    manifest.check_sources()?;
    let runtime_config = match &args.runtime_config_file {
        Some(path) => RuntimeConfig::load(path)?,
        None => RuntimeConfig::default(),
    };
    let capabilities = crate::capabilities::all(&messaging);
    let links: Vec<_> = capabilities.iter().map(|c| c.link()).collect();
    let mut config = engine_config(&args, &limits)?;
    config.concurrency = app_needs_concurrency(&manifest)?;
    let engine = Engine::new(config, &links)?;
    let mut options = LoadOptions::for_manifest(&manifest, std::env::vars(), &capabilities);
    options.providers = kiln_variables::providers_from_config(&runtime_config, std::env::vars())?;
    options.runtime_config = runtime_config;
    if let Some(dir) = &args.state_dir {
        options.state_dir = dir.clone();
    } else if from_registry {
        // The pulled app in the cache is shared and never changes: its state lives where kiln runs.
        options.state_dir = std::env::current_dir().context("no current directory")?.join(".kiln");
    }
    for statements in &args.sqlite {
        kiln_cap_sqlite::run_statements(&options.state_dir, &options.runtime_config, statements)?;
    }
    let app = Arc::new(App::load(&engine, manifest, options)?);
    let events = crate::triggers::event_runtime()?;
    let trigger_limits = TriggerLimits {
        instance: InstanceLimits { deadline: limits.request_timeout, memory_limit: limits.memory_limit << 20 },
        max_concurrency: limits.max_concurrency.max(1),
    };
    let context = TriggerContext::resident(app.clone(), trigger_limits, events.handle().clone());
    // In list order, HTTP last: once /.well-known/spin/health answers, every trigger is subscribed
    // and scheduled.
    let mut running = Vec::new();
    for trigger in triggers.iter().filter(|trigger| trigger.is_used_by(&app.manifest)) {
        running.push(trigger.start(&app, context.clone())?);
    }
    print_banner(&app, addr, &running, started);
    wait_for_signal()?;
    tracing::info!("shutting down: finishing in-flight work (up to {:?})", args.shutdown_grace);
    // Every trigger drains at once, so the grace periods do not add up.
    let grace = args.shutdown_grace;
    events.block_on(futures::future::join_all(running.into_iter().map(|running| running.shutdown(grace))));
    events.shutdown_timeout(Duration::from_secs(1));
    Ok(())
}

/// Whether any local component imports an interface that needs component-model concurrency.
fn app_needs_concurrency(manifest: &Manifest) -> Result<bool> {
    for component in manifest.components.values() {
        if let kiln_manifest::ComponentSource::Local(path) = &component.source
            && Engine::needs_concurrency(path)? {
                tracing::debug!("component `{}` needs component-model concurrency", component.id);
                return Ok(true);
            }
    }
    Ok(false)
}

/// The app's limits: the flags, else the manifest's `[application.tool.kiln]`, else the defaults.
struct Limits {
    request_timeout: Duration,
    memory_limit: usize,
    max_concurrency: usize,
    max_request_body: Option<u64>,
}

impl Limits {
    fn resolve(args: &UpArgs, manifest: &kiln_manifest::AppLimitsSpec) -> Limits {
        Limits {
            request_timeout: args
                .request_timeout
                .or(manifest.request_timeout_ms.map(Duration::from_millis))
                .unwrap_or(Duration::from_secs(30)),
            memory_limit: args.memory_limit.or(manifest.memory_limit_mib.map(|mib| mib as usize)).unwrap_or(128),
            max_concurrency: args.max_concurrency.or(manifest.max_concurrency.map(|n| n as usize)).unwrap_or(1000),
            max_request_body: manifest.max_request_body,
        }
    }
}

fn engine_config(args: &UpArgs, limits: &Limits) -> Result<EngineConfig> {
    let mut config = EngineConfig::default();
    if limits.memory_limit == 0 {
        anyhow::bail!("--memory-limit must be at least 1 MiB");
    }
    config.max_instance_memory = config.max_instance_memory.max(limits.memory_limit << 20);
    // Each trigger may run up to --max-concurrency instances; the pool leaves room for two at their
    // limit at once (plus cron runs) before an instantiation would fail.
    let per_trigger = u32::try_from(limits.max_concurrency).context("--max-concurrency is too large")?.max(1);
    config.max_instances = per_trigger.saturating_mul(2).saturating_add(16);
    if args.no_cache {
        config.cache_dir = None;
    } else if let Some(dir) = &args.cache_dir {
        config.cache_dir = Some(dir.clone());
    }
    Ok(config)
}

fn print_banner(app: &App, addr: SocketAddr, running: &[Box<dyn RunningTrigger>], started: Instant) {
    let mut lines = vec![format!("Serving http://{addr} ({}, ready in {:.1} ms)", app.name(), started.elapsed().as_secs_f64() * 1000.0)];
    lines.push("Available routes and triggers:".to_string());
    for line in running.iter().flat_map(|running| running.describe()) {
        lines.push(format!("  {line}"));
    }
    tracing::info!("{}", lines.join("\n"));
}

pub(crate) fn wait_for_signal() -> Result<()> {
    let runtime = tokio::runtime::Builder::new_current_thread().enable_all().build()?;
    runtime.block_on(async {
        let mut terminate = tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate())?;
        tokio::select! {
            result = tokio::signal::ctrl_c() => result?,
            _ = terminate.recv() => {}
        }
        Ok(())
    })
}
