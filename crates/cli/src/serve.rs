//! `kiln serve`: the platform host — many apps, deployed live over the admin API.

use anyhow::{Context, Result};
use kiln_engine::EngineConfig;
use kiln_platform::{Admin, AdminToken, AppLimits, Front, LimitCeilings, Platform, PlatformConfig};
use kiln_trigger_http::Server;
use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::{Duration, Instant};

#[derive(clap::Args)]
pub(crate) struct ServeArgs {
    /// Where deployed apps, their state and compiled artifacts are kept (created if missing).
    #[arg(long, value_name = "DIR", default_value = "kiln-data", env = "KILN_DATA_DIR")]
    data_dir: PathBuf,
    /// Address the apps are served on.
    #[arg(long, default_value = "127.0.0.1:3000", env = "KILN_LISTEN")]
    listen: SocketAddr,
    /// Address of the admin API, metrics and dashboard (keep it private).
    #[arg(long, default_value = "127.0.0.1:3001", env = "KILN_ADMIN_LISTEN")]
    admin_listen: SocketAddr,
    /// Apps answer at `<app>.<domain>`.
    #[arg(long, default_value = "localhost", env = "KILN_DOMAIN")]
    domain: String,
    /// Default per-app limit: instances at once (a deploy may set its own).
    #[arg(long, default_value_t = 100)]
    max_concurrency: u32,
    /// Default per-app limit: linear memory per instance, in MiB.
    #[arg(long, default_value_t = 128, value_name = "MIB")]
    memory_limit: u32,
    /// Default per-app limit: requests running longer get 504.
    #[arg(long, default_value = "30s", value_parser = humantime::parse_duration)]
    request_timeout: Duration,
    /// Default per-app limit: larger request bodies get 413, in bytes.
    #[arg(long, default_value_t = 10 << 20, value_name = "BYTES")]
    max_request_body: u64,
    /// The most memory per instance any app may ask for, in MiB.
    #[arg(long, default_value_t = 512, value_name = "MIB")]
    max_memory_limit: u32,
    /// Instances of all apps together (the size of the instance pool).
    #[arg(long, default_value_t = 1000)]
    max_instances: u32,
    /// How long a request waits for one of its app's instances before it gets 503.
    #[arg(long, default_value = "10s", value_parser = humantime::parse_duration)]
    queue_timeout: Duration,
    /// An app with no request for this long is unloaded (it holds no memory until its next request).
    #[arg(long, default_value = "60s", value_parser = humantime::parse_duration)]
    idle_timeout: Duration,
    /// Largest app archive accepted, in bytes (compressed).
    #[arg(long, default_value_t = 100 << 20, value_name = "BYTES")]
    max_upload: u64,
    /// Send a trace span per request over OTLP/HTTP to this endpoint (e.g. http://127.0.0.1:4318).
    #[arg(long, value_name = "URL", env = "OTEL_EXPORTER_OTLP_ENDPOINT")]
    otlp_endpoint: Option<String>,
    /// A Redis server shared with other `kiln serve` hosts: an app deployed by reference on any of
    /// them is served by all (`redis://host:6379`).
    #[arg(long, value_name = "URL", env = "KILN_CLUSTER_REDIS")]
    cluster_redis: Option<String>,
    /// On SIGINT/SIGTERM, how long in-flight requests may take to finish.
    #[arg(long, default_value = "10s", value_parser = humantime::parse_duration)]
    shutdown_grace: Duration,
    /// HTTP worker threads [default: one per available core].
    #[arg(long)]
    workers: Option<usize>,
    #[command(flatten)]
    connections: crate::connections::ConnectionArgs,
    /// Log only warnings and errors (no line per request).
    #[arg(short, long)]
    quiet: bool,
    /// Log as JSON lines.
    #[arg(long)]
    json_logs: bool,
}

pub(crate) fn run(args: ServeArgs) -> Result<()> {
    crate::init_logging(args.quiet, args.json_logs);
    let started = Instant::now();
    let shutdown = kiln_host::ShutdownSignal::install()?;
    let config = platform_config(&args)?;
    // Apps share the host's in-process bus (and any NATS server they name): each component publishes
    // only to the subjects its manifest grants.
    let messaging = kiln_cap_messaging::Messaging::for_shared_host();
    let capabilities = kiln_host::capabilities::all(&messaging);
    let links: Vec<_> = capabilities.iter().map(|c| c.link()).collect();
    let triggers = kiln_host::triggers::events(&messaging);
    let events = kiln_host::triggers::event_runtime()?;
    let tracing = match &args.otlp_endpoint {
        Some(endpoint) => Some(kiln_observe::Tracing::otlp(endpoint, "kiln").with_context(|| format!("cannot send traces to `{endpoint}`"))?),
        None => None,
    };
    let metrics = kiln_observe::Metrics::new();
    let platform = Platform::open(config, links, capabilities, triggers, events.handle().clone(), metrics, tracing)?;
    let token = AdminToken::load_or_create(&platform.data_dir().token_path())?;
    let public = kiln_trigger_http::bind(args.listen)?;
    let admin = kiln_trigger_http::bind(args.admin_listen).map_err(|err| anyhow::anyhow!("{err:#} (admin listener: --admin-listen)"))?;
    let workers = args.workers.unwrap_or_else(|| std::thread::available_parallelism().map(|n| n.get()).unwrap_or(1));
    let front = Server::start(Front::new(platform.clone()), public, workers, args.shutdown_grace, args.connections.limits())?;
    let admin = Server::start(Admin::new(platform.clone(), token), admin, 1, args.shutdown_grace, args.connections.limits())?;
    let idle = IdleUnloader::start(platform.clone(), args.idle_timeout);
    tracing::info!(
        "kiln serve ready in {:.1} ms: apps at http://<app>.{}:{} ({} deployed), admin API at http://{} (token in {})",
        started.elapsed().as_secs_f64() * 1000.0,
        args.domain,
        front.local_addr().port(),
        platform.list().len(),
        admin.local_addr(),
        platform.data_dir().token_path().display()
    );
    shutdown.wait();
    tracing::info!("shutting down: finishing in-flight requests (up to {:?})", args.shutdown_grace);
    std::thread::scope(|scope| {
        scope.spawn(|| admin.shutdown());
        scope.spawn(|| events.block_on(platform.shutdown_events(args.shutdown_grace)));
        front.shutdown();
    });
    idle.stop();
    events.shutdown_timeout(Duration::from_secs(1));
    if let Some(tracing) = platform.tracing() {
        tracing.shutdown();
    }
    Ok(())
}

fn platform_config(args: &ServeArgs) -> Result<PlatformConfig> {
    if args.memory_limit == 0 || args.memory_limit > args.max_memory_limit {
        anyhow::bail!("--memory-limit must be between 1 and --max-memory-limit ({} MiB)", args.max_memory_limit);
    }
    if args.max_concurrency == 0 || args.max_concurrency > args.max_instances {
        anyhow::bail!("--max-concurrency must be between 1 and --max-instances ({})", args.max_instances);
    }
    let domain = args.domain.trim_matches('.').to_ascii_lowercase();
    if domain.is_empty() {
        anyhow::bail!("--domain must not be empty (apps answer at <app>.<domain>; `localhost` works on one machine)");
    }
    let engine = EngineConfig {
        max_instances: args.max_instances,
        max_instance_memory: (args.max_memory_limit as usize) << 20,
        ..EngineConfig::default()
    };
    Ok(PlatformConfig {
        data_dir: args.data_dir.clone(),
        domain,
        public_port: args.listen.port(),
        default_limits: AppLimits {
            max_concurrency: args.max_concurrency,
            memory_limit_mib: args.memory_limit,
            request_timeout_ms: args.request_timeout.as_millis().max(1) as u64,
            max_request_body: args.max_request_body,
        },
        ceilings: LimitCeilings { max_memory_limit_mib: args.max_memory_limit, max_concurrency: args.max_instances },
        queue_timeout: args.queue_timeout,
        idle_timeout: args.idle_timeout,
        max_upload: args.max_upload,
        engine,
        cluster_redis: args.cluster_redis.clone(),
    })
}

/// Unloads idle apps, checking a few times per idle timeout; stops at once when asked.
struct IdleUnloader {
    stop: std::sync::mpsc::Sender<()>,
    thread: std::thread::JoinHandle<()>,
}

impl IdleUnloader {
    fn start(platform: Arc<Platform>, idle_timeout: Duration) -> IdleUnloader {
        let (stop, stopped) = std::sync::mpsc::channel::<()>();
        let tick = (idle_timeout / 4).clamp(Duration::from_millis(50), Duration::from_secs(5));
        let thread = std::thread::spawn(move || {
            while let Err(std::sync::mpsc::RecvTimeoutError::Timeout) = stopped.recv_timeout(tick) {
                platform.unload_idle();
            }
        });
        IdleUnloader { stop, thread }
    }

    fn stop(self) {
        let _ = self.stop.send(());
        let _ = self.thread.join();
    }
}
