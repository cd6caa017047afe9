//! The apps of one host: their table, restoring them after a restart, and what the API shows of them.
//! Deploying, updating and removing are in `deploy.rs`, loading and idle unloading in `loading.rs`,
//! event triggers in `events.rs`, the API's errors in `error.rs`.
//!
//! Every app has one current [`AppVersion`]; a request takes an `Arc` of it when it arrives and
//! keeps it until it ends, so an update (an atomic pointer swap) never changes what a running
//! request sees, and the old version is dropped when its last request finishes. A version holds its
//! compiled, linked components ([`Loaded`]) only while it is being used: an idle app costs a few
//! kilobytes of bookkeeping.

use crate::archive::{self, ArchiveError};
use crate::data_dir::{DataDir, random_hex, sync_dir, write_atomically};
use crate::limits::{AppLimits, DeployParams, LimitCeilings, valid_app_name};
use crate::cluster::{Cluster, Desired};
use crate::record::{AppInfo, AppRecord, RouteInfo, TriggerInfo, unix_now};
use anyhow::{Context, Result};
use arc_swap::{ArcSwap, ArcSwapOption};
use http::StatusCode;
use kiln_app::{App, AppSource, BoxFuture, Capability, CapabilityObserver, Draining, LoadOptions, RunningTrigger, Trigger, TriggerContext, TriggerLimits};
use kiln_engine::{Engine, EngineConfig, InstanceLimits, LinkFn};
use kiln_manifest::{AppLimitsSpec, HttpRoute, Manifest};
use kiln_observe::{AppMetrics, Metrics, Tracing};
use kiln_runtime_config::{KeyValueStoreConfig, RuntimeConfig, SqliteDatabaseConfig, VariablesProviderConfig};
use kiln_trigger_http::{HttpObserver, HttpOptions, HttpTrigger};
use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex, RwLock, Weak};
use std::time::{Duration, Instant};

mod deploy;
mod error;
mod events;
mod loading;

pub use error::ApiError;
use events::RunningEvents;

/// The host's settings (from `kiln serve`'s flags).
#[derive(Clone, Debug)]
pub struct PlatformConfig {
    pub data_dir: PathBuf,
    /// Apps answer at `<name>.<domain>`.
    pub domain: String,
    /// The public port, for the URLs the API reports.
    pub public_port: u16,
    /// Limits of an app whose deploy request sets none.
    pub default_limits: AppLimits,
    pub ceilings: LimitCeilings,
    /// How long a request waits for one of its app's instances before 503.
    pub queue_timeout: Duration,
    /// An app unused this long is unloaded.
    pub idle_timeout: Duration,
    /// Largest accepted archive, compressed.
    pub max_upload: u64,
    /// The engine: pool size, memory ceiling (the cache directory is the data directory's).
    pub engine: EngineConfig,
    /// `redis://…` shared with other hosts: apps deployed by reference are served by all of them.
    pub cluster_redis: Option<String>,
}


/// The host: its engine, capabilities and apps.
pub struct Platform {
    config: PlatformConfig,
    data: DataDir,
    engine: Engine,
    /// Built on first need: component-model concurrency slows every instance of the engine that has
    /// it, so only apps importing WASI 0.3 / Spin 4 interfaces run on it.
    concurrent_engine: Mutex<Option<Engine>>,
    links: Vec<LinkFn>,
    capabilities: Vec<Box<dyn Capability>>,
    /// The event triggers (Redis, NATS, cron) every app may use; HTTP is the front's.
    triggers: Vec<Box<dyn Trigger>>,
    /// The runtime every app's event triggers run on.
    events: tokio::runtime::Handle,
    apps: RwLock<AppTable>,
    /// One deploy or removal at a time: they are rare, and this keeps version numbers and route
    /// prefixes consistent without finer locks.
    changes: tokio::sync::Mutex<()>,
    metrics: Arc<Metrics>,
    tracing: Option<Tracing>,
    started: Instant,
    cluster: Option<Cluster>,
}

#[derive(Default)]
struct AppTable {
    by_name: HashMap<String, Arc<AppEntry>>,
    /// `(prefix, app)`, longest prefix first.
    by_prefix: Vec<(String, Arc<AppEntry>)>,
}

/// A deployed app: its current version, its metrics, and its event triggers (which outlive versions:
/// they take the current version at every event).
pub(crate) struct AppEntry {
    pub(crate) name: String,
    current: ArcSwap<AppVersion>,
    metrics: Arc<AppMetrics>,
    events: Mutex<Vec<RunningEvents>>,
}


/// One uploaded version of an app.
pub(crate) struct AppVersion {
    record: AppRecord,
    dir: PathBuf,
    manifest_path: PathBuf,
    routes: Vec<RouteInfo>,
    needs_concurrency: bool,
    loaded: ArcSwapOption<Loaded>,
    /// Held while loading (concurrent first requests wait for one load); remembers the last failed
    /// load, so a broken app is not reloaded on every request.
    load_lock: tokio::sync::Mutex<Option<FailedLoad>>,
    /// Milliseconds since the host started, at the last request.
    last_used: AtomicU64,
    /// Replaced or removed: requests that reach it unloaded go to the current version instead.
    retired: AtomicBool,
}

/// How long a failed load is remembered before the next request tries again.
const LOAD_RETRY: Duration = Duration::from_secs(5);

struct FailedLoad {
    at: Instant,
    message: String,
}

/// A version ready to serve: compiled, linked, its router built.
pub(crate) struct Loaded {
    pub(crate) trigger: Arc<HttpTrigger>,
    /// Every event being handled holds a clone: the version is busy while it does.
    app: Arc<App>,
}

impl Loaded {
    /// Requests and events running on this version now.
    fn busy(&self) -> bool {
        self.trigger.in_flight() > 0 || Arc::strong_count(&self.app) > 1
    }
}

/// A version checked for deploy: loaded, and the plan of each event trigger it uses.
struct Prepared {
    version: AppVersion,
    loaded: Loaded,
    plans: Vec<(&'static str, String)>,
}


impl Platform {
    /// Opens the data directory, builds the engine and restores every app deployed before (each is
    /// left idle until its first request).
    pub fn open(
        config: PlatformConfig,
        links: Vec<LinkFn>,
        capabilities: Vec<Box<dyn Capability>>,
        triggers: Vec<Box<dyn Trigger>>,
        events: tokio::runtime::Handle,
        metrics: Arc<Metrics>,
        tracing: Option<Tracing>,
    ) -> Result<Arc<Platform>> {
        let data = DataDir::open(&config.data_dir)?;
        let mut engine_config = config.engine.clone();
        engine_config.cache_dir = Some(data.cache_dir());
        engine_config.concurrency = false;
        let engine = Engine::new(engine_config, &links)?;
        let cluster = config.cluster_redis.as_deref().map(Cluster::new).transpose()?;
        let platform = Arc::new(Platform {
            config,
            data,
            engine,
            concurrent_engine: Mutex::new(None),
            links,
            capabilities,
            triggers,
            events,
            apps: RwLock::new(AppTable::default()),
            changes: tokio::sync::Mutex::new(()),
            metrics,
            tracing,
            started: Instant::now(),
            cluster,
        });
        platform.restore();
        if let Some(cluster) = &platform.cluster {
            platform.events.spawn(crate::cluster::run(Arc::downgrade(&platform), cluster.clone()));
        }
        Ok(platform)
    }

    pub fn data_dir(&self) -> &DataDir {
        &self.data
    }

    pub fn config(&self) -> &PlatformConfig {
        &self.config
    }

    pub fn metrics(&self) -> &Arc<Metrics> {
        &self.metrics
    }

    /// The OTLP exporter, if traces are on (to flush it at shutdown).
    pub fn tracing(&self) -> Option<&Tracing> {
        self.tracing.as_ref()
    }

    /// Re-reads every `apps/<name>/app.json`. An app that cannot be restored is logged and skipped:
    /// one broken app must not keep the others from serving.
    fn restore(self: &Arc<Self>) {
        let Ok(entries) = std::fs::read_dir(self.data.apps_dir()) else { return };
        let mut restored = 0;
        for entry in entries.flatten() {
            let name = entry.file_name().to_string_lossy().into_owned();
            match self.restore_app(&name) {
                Ok(()) => restored += 1,
                Err(err) => tracing::error!("cannot restore app `{name}`: {err:#}"),
            }
        }
        self.metrics.set_apps(restored);
        if restored > 0 {
            tracing::info!("restored {restored} app(s) from {}", self.data.root().display());
        }
    }

    /// Restores app `name`; an app with event triggers is loaded to start them (and unloaded when
    /// idle, keeping only its subscriptions).
    fn restore_app(self: &Arc<Self>, name: &str) -> Result<()> {
        let record_path = self.data.app_dir(name).join("app.json");
        let text = std::fs::read_to_string(&record_path).with_context(|| format!("cannot read `{}`", record_path.display()))?;
        let record: AppRecord = serde_json::from_str(&text).with_context(|| format!("`{}` is damaged", record_path.display()))?;
        remove_stale_versions(&self.data.app_dir(name), record.version);
        let (version, manifest) = self.describe_version(record, None).map_err(|err| anyhow::anyhow!("{}", err.message))?;
        let metrics = self.metrics.app(name, self.tracing.as_ref());
        let version = Arc::new(version);
        self.install(name, version.clone(), metrics.clone());
        let kinds: Vec<&'static str> = self.triggers.iter().filter(|trigger| trigger.is_used_by(&manifest)).map(|trigger| trigger.kind()).collect();
        if !kinds.is_empty() {
            let entry = self.entry(name).context("the app vanished while being restored")?;
            let started = self.load(&version, &metrics).and_then(|loaded| Ok((self.plans(&version, &loaded)?, loaded)));
            match started {
                Ok((plans, loaded)) => self.start_events(&entry, &version, &loaded, plans),
                // The app stays deployed; its triggers say why they are not running.
                Err(err) => {
                    tracing::error!("app `{name}`: its event triggers cannot start: {}", err.message);
                    let failed = kinds.into_iter().map(|kind| RunningEvents::failed(kind, &err.message));
                    entry.events.lock().unwrap_or_else(|p| p.into_inner()).extend(failed);
                }
            }
        }
        Ok(())
    }

    /// Reads a version's manifest (cheap: no compiling) into what routing and the API need, and
    /// returns the manifest too for a deploy to check further. For a
    /// new deploy, `requested` are the request's limits: the record's limits become the host's
    /// defaults, overridden by the manifest's `[application.tool.kiln]`, overridden by those.
    fn describe_version(&self, mut record: AppRecord, requested: Option<&AppLimitsSpec>) -> Result<(AppVersion, Manifest), ApiError> {
        let dir = self.data.version_dir(&record.name, record.version);
        let manifest_path = archive::manifest_in(&dir).map_err(|err| ApiError::bad_request(err.to_string()))?;
        let manifest = Manifest::load(&manifest_path).map_err(|err| ApiError::bad_request(relative_to(&dir, &format!("{err}"))))?;
        if let Some(requested) = requested {
            record.limits = self.limits_for(&manifest, requested).map_err(|err| ApiError::bad_request(relative_to(&dir, &format!("{err}"))))?;
        }
        // Before anything reads a component: a missing file is reported at its line in the manifest.
        manifest.check_sources().map_err(|err| ApiError::bad_request(relative_to(&dir, &format!("{err}"))))?;
        let routes = manifest
            .http_triggers
            .iter()
            .filter_map(|trigger| match &trigger.route {
                HttpRoute::Path { route, .. } => Some(RouteInfo { component: trigger.component.clone(), route: route.clone() }),
                _ => None,
            })
            .collect();
        let mut needs_concurrency = false;
        for component in manifest.components.values() {
            if let kiln_manifest::ComponentSource::Local(path) = &component.source {
                needs_concurrency |= Engine::needs_concurrency(path).map_err(|err| ApiError::bad_request(relative_to(&dir, &format!("{err:#}"))))?;
            }
            for dependency in &component.dependencies {
                if let kiln_manifest::DependencySource::Local(path) = &dependency.source {
                    needs_concurrency |= Engine::needs_concurrency(path).map_err(|err| ApiError::bad_request(relative_to(&dir, &format!("{err:#}"))))?;
                }
            }
        }
        let version = AppVersion {
            record,
            dir,
            manifest_path,
            routes,
            needs_concurrency,
            loaded: ArcSwapOption::empty(),
            load_lock: tokio::sync::Mutex::new(None),
            last_used: AtomicU64::new(0),
            retired: AtomicBool::new(false),
        };
        Ok((version, manifest))
    }

    /// The host's default limits, overridden by the manifest's, overridden by the request's; the
    /// manifest's checked against the host's ceilings (the request's were, when it was parsed).
    fn limits_for(&self, manifest: &Manifest, requested: &AppLimitsSpec) -> Result<AppLimits, kiln_manifest::ManifestError> {
        let stated = &manifest.application.limits;
        if let (Some((key, value, ceiling)), Some(span)) = (self.config.ceilings.exceeded_by(stated), &stated.span) {
            return Err(manifest.error_at(span, format!("`{key} = {value}` is more than this host allows ({ceiling})"), "ask for less, or run the host with higher ceilings"));
        }
        Ok(self.config.default_limits.overridden_by(stated).overridden_by(requested))
    }

    /// Makes `version` the one new requests of `name` get. Returns the version it replaced.
    fn install(&self, name: &str, version: Arc<AppVersion>, metrics: Arc<AppMetrics>) -> Option<Arc<AppVersion>> {
        let mut apps = self.apps.write().unwrap_or_else(|poisoned| poisoned.into_inner());
        let previous = match apps.by_name.get(name) {
            Some(entry) => Some(entry.current.swap(version.clone())),
            None => {
                let entry = Arc::new(AppEntry {
                    name: name.to_string(),
                    metrics,
                    current: ArcSwap::new(version.clone()),
                    events: Mutex::default(),
                });
                apps.by_name.insert(name.to_string(), entry);
                None
            }
        };
        apps.rebuild_prefixes();
        previous
    }

    // ---- lookups ----------------------------------------------------------------------------

    pub(crate) fn entry(&self, name: &str) -> Option<Arc<AppEntry>> {
        self.apps.read().unwrap_or_else(|p| p.into_inner()).by_name.get(name).cloned()
    }

    /// The app a request is for: by host name (`<name>.<domain>`), else by route prefix.
    pub(crate) fn route(&self, host: Option<&str>, path: &str) -> Option<(Arc<AppEntry>, Arc<AppVersion>)> {
        let apps = self.apps.read().unwrap_or_else(|p| p.into_inner());
        let by_host = host.and_then(|host| app_name_from_host(host, &self.config.domain)).and_then(|name| apps.by_name.get(name));
        let entry = by_host.or_else(|| {
            apps.by_prefix.iter().find(|(prefix, _)| path_is_under(path, prefix)).map(|(_, entry)| entry)
        })?;
        let version = entry.current.load_full();
        Some((entry.clone(), version))
    }

    fn app_count(&self) -> usize {
        self.apps.read().unwrap_or_else(|p| p.into_inner()).by_name.len()
    }

    pub fn list(&self) -> Vec<AppInfo> {
        let mut entries: Vec<Arc<AppEntry>> = self.apps.read().unwrap_or_else(|p| p.into_inner()).by_name.values().cloned().collect();
        entries.sort_by(|a, b| a.name.cmp(&b.name));
        entries.iter().map(|entry| self.info(entry)).collect()
    }

    pub fn get(&self, name: &str) -> Option<AppInfo> {
        self.entry(name).map(|entry| self.info(&entry))
    }

    fn info(&self, entry: &AppEntry) -> AppInfo {
        let version = entry.current.load();
        let record = &version.record;
        let (requests_total, errors_total) = entry.metrics.totals();
        let (events_total, event_errors_total) = entry.metrics.event_totals();
        let triggers = entry
            .events
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .iter()
            .map(|running| TriggerInfo { kind: running.kind.to_string(), subscriptions: running.running.describe(), state: running.running.state() })
            .collect();
        let prefix = record.route_prefix.clone().unwrap_or_default();
        AppInfo {
            name: entry.name.clone(),
            version: record.version,
            status: if version.loaded.load().is_some() { "loaded" } else { "idle" }.to_string(),
            url: format!("http://{}.{}:{}{prefix}/", entry.name, self.config.domain, self.config.public_port),
            route_prefix: record.route_prefix.clone(),
            routes: version.routes.clone(),
            limits: record.limits,
            deployed_at: record.deployed_at,
            requests_total,
            errors_total,
            in_flight: entry.metrics.in_flight().max(0) as u64,
            triggers,
            events_total,
            event_errors_total,
        }
    }
}

impl AppTable {
    fn rebuild_prefixes(&mut self) {
        let mut prefixes: Vec<(String, Arc<AppEntry>)> = self
            .by_name
            .values()
            .filter_map(|entry| entry.current.load().record.route_prefix.clone().map(|prefix| (prefix, entry.clone())))
            .collect();
        prefixes.sort_by(|a, b| b.0.len().cmp(&a.0.len()).then_with(|| a.0.cmp(&b.0)));
        self.by_prefix = prefixes;
    }
}

/// What a deploy brings: an uploaded archive, or an app pulled from a registry.
enum Upload {
    Archive(bytes::Bytes),
    /// The pulled app's directory in the cache (`spin.toml`, `wasm/`, `files/`), and the runtime
    /// config the deploy sent with it.
    Pulled { dir: PathBuf, runtime_config: Option<String> },
}

/// Copies the tree `from` into `to` (which exists): hard links where the filesystem allows (the
/// cache's files are never changed in place), copies otherwise.
fn copy_tree(from: &Path, to: &Path) -> Result<()> {
    for entry in std::fs::read_dir(from).with_context(|| format!("cannot list `{}`", from.display()))? {
        let entry = entry?;
        let (source, target) = (entry.path(), to.join(entry.file_name()));
        let kind = entry.file_type()?;
        if kind.is_dir() {
            std::fs::create_dir_all(&target)?;
            copy_tree(&source, &target)?;
        } else if kind.is_file() && std::fs::hard_link(&source, &target).is_err() {
            std::fs::copy(&source, &target).with_context(|| format!("cannot copy `{}`", source.display()))?;
        }
    }
    Ok(())
}

/// Runs `work` (file system, compiling) off the async workers; a panic in it becomes a 500.
async fn on_blocking_thread<T: Send + 'static>(work: impl FnOnce() -> Result<T, ApiError> + Send + 'static) -> Result<T, ApiError> {
    tokio::task::spawn_blocking(work)
        .await
        .map_err(|err| ApiError::internal(anyhow::anyhow!("the task failed: {err}")))
        .and_then(|result| result)
}

/// Waits until no request holds `version`'s loaded components (or `timeout` passes).
///
/// The version is marked retired first, and any load of it in progress is waited for, so no request
/// loads it again (they go to the current version) and nothing reads its files once this returns.
async fn drain(version: &AppVersion, timeout: Duration) {
    version.retired.store(true, Ordering::Release);
    let _no_load_in_progress = version.load_lock.lock().await;
    let Some(loaded) = version.loaded.swap(None) else { return };
    let deadline = Instant::now() + timeout;
    // Our `loaded` is one reference; every request still running holds another.
    while (Arc::strong_count(&loaded) > 1 || loaded.busy()) && Instant::now() < deadline {
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
}

/// `hello.apps.example.com:3000` with domain `apps.example.com` → `hello`.
pub(crate) fn app_name_from_host<'a>(host: &'a str, domain: &str) -> Option<&'a str> {
    let host = host.rsplit_once(':').filter(|(_, port)| port.bytes().all(|b| b.is_ascii_digit())).map_or(host, |(host, _)| host);
    let host = host.strip_suffix('.').unwrap_or(host);
    if host.len() <= domain.len() + 1 {
        return None;
    }
    let (name, rest) = host.split_at(host.len() - domain.len() - 1);
    (rest.as_bytes()[0] == b'.' && rest[1..].eq_ignore_ascii_case(domain) && !name.contains('.')).then_some(name)
}

/// Whether `path` is `prefix` or below it (`/shop` covers `/shop` and `/shop/x`, not `/shopping`).
fn path_is_under(path: &str, prefix: &str) -> bool {
    path.strip_prefix(prefix).is_some_and(|rest| rest.is_empty() || rest.starts_with('/'))
}

fn prefixes_overlap(a: &str, b: &str) -> bool {
    path_is_under(a, b) || path_is_under(b, a)
}

/// Deletes versions other than `current`, and half-unpacked uploads, left by a crash.
fn remove_stale_versions(app_dir: &Path, current: u64) {
    let Ok(entries) = std::fs::read_dir(app_dir) else { return };
    let keep = format!("v{current}");
    for entry in entries.flatten() {
        let name = entry.file_name().to_string_lossy().into_owned();
        let stale_version = name.starts_with('v') && name[1..].parse::<u64>().is_ok() && name != keep;
        if stale_version || name.starts_with(".staging-") {
            let _ = std::fs::remove_dir_all(entry.path());
        }
    }
}

/// An app's own `runtime-config.toml` (at the archive root), if it has one. In platform mode it may
/// name Redis stores, static or dotenv variables and an inferencing server (`[llm_compute]`), but not
/// paths on the host (stores live in the app's state directory) nor the host's environment (it
/// belongs to the operator, not the apps).
fn app_runtime_config(dir: &Path) -> Result<RuntimeConfig, ApiError> {
    let path = dir.join("runtime-config.toml");
    if !path.is_file() {
        return Ok(RuntimeConfig::default());
    }
    let config = RuntimeConfig::load(&path).map_err(|err| ApiError::bad_request(relative_to(dir, &err.to_string())))?;
    let refuse = |what: String| Err(ApiError::bad_request(format!("runtime-config.toml: {what}")));
    for (label, store) in &config.key_value_stores {
        if matches!(store, KeyValueStoreConfig::Embedded { path: Some(_) }) {
            return refuse(format!("key_value_store `{label}`: `path` is not allowed on a shared host; embedded stores live in the app's state directory"));
        }
    }
    for (label, database) in &config.sqlite_databases {
        if matches!(database, SqliteDatabaseConfig::Embedded { path: Some(_) }) {
            return refuse(format!("sqlite_database `{label}`: `path` is not allowed on a shared host; databases live in the app's state directory"));
        }
    }
    if config.variables_providers.iter().any(|provider| matches!(provider, VariablesProviderConfig::Env { .. })) {
        return refuse("the `env` variables provider is not allowed on a shared host (the environment is the host's); use `static` or `dotenv`".to_string());
    }
    Ok(config)
}

/// Messages name files inside the version directory by their path in the archive.
fn relative_to(dir: &Path, message: &str) -> String {
    message.replace(&format!("{}/", dir.display()), "")
}

fn archive_error(err: ArchiveError) -> ApiError {
    match err {
        ArchiveError::Io(err) => ApiError::internal(err.into()),
        other => ApiError::bad_request(other.to_string()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn app_names_come_from_the_host_header() {
        assert_eq!(app_name_from_host("hello.localhost", "localhost"), Some("hello"));
        assert_eq!(app_name_from_host("hello.localhost:3000", "localhost"), Some("hello"));
        assert_eq!(app_name_from_host("Hello.Apps.Example.com.", "apps.example.com"), Some("Hello"));
        assert_eq!(app_name_from_host("localhost:3000", "localhost"), None);
        assert_eq!(app_name_from_host("a.b.localhost", "localhost"), None);
        assert_eq!(app_name_from_host("hellolocalhost", "localhost"), None);
        assert_eq!(app_name_from_host(".localhost", "localhost"), None);
    }

    #[test]
    fn prefixes_cover_whole_segments() {
        assert!(path_is_under("/shop", "/shop"));
        assert!(path_is_under("/shop/cart", "/shop"));
        assert!(!path_is_under("/shopping", "/shop"));
        assert!(prefixes_overlap("/shop", "/shop/eu"));
        assert!(!prefixes_overlap("/shop", "/blog"));
    }

    #[test]
    fn stale_versions_are_cleaned() {
        let dir = tempfile::tempdir().unwrap();
        for name in ["v1", "v2", "v3", ".staging-abc", "state"] {
            std::fs::create_dir(dir.path().join(name)).unwrap();
        }
        remove_stale_versions(dir.path(), 2);
        let mut left: Vec<String> = std::fs::read_dir(dir.path()).unwrap().map(|e| e.unwrap().file_name().to_string_lossy().into_owned()).collect();
        left.sort();
        assert_eq!(left, ["state", "v2"]);
    }
}
