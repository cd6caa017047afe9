use anyhow::{Context, Result};
use kiln_host::{Host, Settings};
use kiln_manifest::Manifest;
use std::net::SocketAddr;
use std::path::PathBuf;
use std::time::{Duration, Instant};

#[derive(clap::Args)]
pub(crate) struct UpArgs {
    /// The manifest, a directory containing kiln.toml or spin.toml, or a registry reference
    /// (`host[:port]/repository:tag`, `…@sha256:…` to pin; pulled unless cached) [default: the
    /// current directory].
    #[arg(short = 'f', long = "from", value_name = "PATH|REF")]
    pub(crate) file: Option<String>,
    /// The registry of `--from REF` speaks plain HTTP (a registry on loopback).
    #[arg(short = 'k', long)]
    pub(crate) insecure: bool,
    /// Address to serve HTTP on.
    #[arg(long, default_value = "127.0.0.1:3000", env = "KILN_LISTEN")]
    pub(crate) listen: SocketAddr,
    /// Run the components' build commands before serving.
    #[arg(long)]
    build: bool,
    /// Log only warnings and errors (no line per request).
    #[arg(short, long)]
    pub(crate) quiet: bool,
    /// Log as JSON lines.
    #[arg(long)]
    pub(crate) json_logs: bool,
    /// Where compiled components are cached [default: $KILN_CACHE_DIR, else ~/.cache/kiln].
    #[arg(long, value_name = "DIR")]
    pub(crate) cache_dir: Option<PathBuf>,
    /// Compile every component at start instead of using the cache.
    #[arg(long)]
    no_cache: bool,
    /// Backends for key-value stores and SQLite databases, and variable providers (Spin's format).
    #[arg(long, value_name = "FILE")]
    runtime_config_file: Option<PathBuf>,
    /// SQL to run against the `default` SQLite database before serving (`@file` for a file of
    /// statements, `@file:label` for another database). Repeatable; runs in order.
    #[arg(long, value_name = "SQL")]
    pub(crate) sqlite: Vec<String>,
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
    #[command(flatten)]
    connections: crate::connections::ConnectionArgs,
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
    let mut settings = settings(&args);
    if from_registry && settings.state_dir.is_none() {
        // The pulled app in the cache is shared and never changes: its state lives where kiln runs.
        settings.state_dir = Some(std::env::current_dir().context("no current directory")?.join(".kiln"));
    }
    // Bound and checked first: a taken port fails before anything is built or compiled.
    let shutdown = kiln_host::ShutdownSignal::install()?;
    let prepared = kiln_host::prepare(manifest, settings)?;
    if args.build {
        crate::build::build_all(prepared.manifest())?;
    }
    let host = prepared.start(|options| {
        for statements in &args.sqlite {
            kiln_cap_sqlite::run_statements(&options.state_dir, &options.runtime_config, statements)?;
        }
        Ok(())
    })?;
    print_banner(&host, started);
    shutdown.wait();
    host.shutdown();
    Ok(())
}

pub(crate) fn settings(args: &UpArgs) -> Settings {
    let mut settings = Settings::new(args.listen);
    if let Some(workers) = args.workers {
        settings.workers = workers;
    }
    settings.queue_timeout = args.queue_timeout;
    settings.shutdown_grace = args.shutdown_grace;
    settings.connections = args.connections.limits();
    settings.request_timeout = args.request_timeout;
    settings.memory_limit_mib = args.memory_limit;
    settings.max_concurrency = args.max_concurrency;
    if args.no_cache {
        settings.cache_dir = None;
    } else if let Some(dir) = &args.cache_dir {
        settings.cache_dir = Some(dir.clone());
    }
    settings.runtime_config_file = args.runtime_config_file.clone();
    settings.state_dir = args.state_dir.clone();
    settings.env = std::env::vars().collect();
    settings
}

pub(crate) fn print_banner(host: &Host, started: Instant) {
    let app = host.app();
    let mut lines = vec![format!("Serving http://{} ({}, ready in {:.1} ms)", host.addr(), app.name(), started.elapsed().as_secs_f64() * 1000.0)];
    lines.push("Available routes and triggers:".to_string());
    for line in host.describe() {
        lines.push(format!("  {line}"));
    }
    tracing::info!("{}", lines.join("\n"));
}
