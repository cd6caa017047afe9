//! The apps of one host: deploy, update, remove, restore after a restart, load on first request,
//! unload when idle.
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

/// An error for the API: a status and a one-line message.
#[derive(Debug)]
pub struct ApiError {
    pub status: StatusCode,
    pub message: String,
}

impl ApiError {
    pub fn new(status: StatusCode, message: impl Into<String>) -> ApiError {
        ApiError { status, message: message.into() }
    }

    pub(crate) fn bad_request(message: impl Into<String>) -> ApiError {
        ApiError::new(StatusCode::BAD_REQUEST, message)
    }

    fn internal(err: anyhow::Error) -> ApiError {
        ApiError::new(StatusCode::INTERNAL_SERVER_ERROR, format!("{err:#}"))
    }
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

/// One trigger kind running for an app, and the plan it was started with: a new version with the
/// same plan keeps it running.
struct RunningEvents {
    kind: &'static str,
    plan: String,
    running: Box<dyn RunningTrigger>,
}

impl RunningEvents {
    /// A trigger that could not start: shown (and counted as down) with the reason, replaced by the
    /// next deploy.
    fn failed(kind: &'static str, reason: &str) -> RunningEvents {
        RunningEvents { kind, plan: String::new(), running: Box::new(FailedTrigger(format!("not running: {reason}"))) }
    }
}

struct FailedTrigger(String);

impl RunningTrigger for FailedTrigger {
    fn describe(&self) -> Vec<String> {
        Vec::new()
    }

    fn state(&self) -> String {
        self.0.clone()
    }

    fn stop(self: Box<Self>, _grace: Duration) -> BoxFuture<'static, Draining> {
        Box::pin(async { Draining::done() })
    }
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

/// Where an app's event triggers take it from: its current version, loaded if it is idle.
struct CurrentVersion {
    platform: Weak<Platform>,
    entry: Weak<AppEntry>,
}

impl AppSource for CurrentVersion {
    fn load(&self) -> BoxFuture<'_, Result<Arc<App>>> {
        Box::pin(async move {
            let (Some(platform), Some(entry)) = (self.platform.upgrade(), self.entry.upgrade()) else {
                anyhow::bail!("the app was removed");
            };
            let version = entry.current.load_full();
            let loaded = platform.loaded(&entry, &version).await.map_err(|err| anyhow::anyhow!("{}", err.message))?;
            Ok(loaded.app.clone())
        })
    }
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

    // ---- deploy, update, remove --------------------------------------------------------------

    /// Deploys `archive` as app `name` (a new app, or a new version of one). Returns once the new
    /// version is what new requests get; `true` when the app is new. On a host of a cluster, a
    /// deploy by reference is also recorded in the cluster's shared state, so every host serves it.
    pub async fn deploy(self: &Arc<Self>, name: &str, query: Option<&str>, archive: bytes::Bytes) -> Result<(AppInfo, bool), ApiError> {
        let by_reference = DeployParams::parse(query, self.config.ceilings).is_ok_and(|params| params.reference.is_some());
        let desired = match &self.cluster {
            Some(_) if by_reference => {
                let runtime_config = (!archive.is_empty()).then(|| String::from_utf8_lossy(&archive).into_owned());
                Some(Desired::new(query.unwrap_or_default(), runtime_config))
            }
            _ => None,
        };
        let deployed = self.deploy_as(name, query, archive, desired.clone()).await?;
        if let (Some(cluster), Some(desired)) = (&self.cluster, &desired) {
            cluster.publish_deployed(name, desired).await.map_err(|err| {
                ApiError::new(StatusCode::BAD_GATEWAY, format!("`{name}` is deployed on this host, but the cluster's Redis did not take it: {err:#}"))
            })?;
        }
        Ok(deployed)
    }

    /// Deploys what the cluster wants for `name` on this host, without announcing it again.
    pub(crate) async fn deploy_desired(self: &Arc<Self>, name: &str, desired: &Desired) -> Result<(), ApiError> {
        let body = bytes::Bytes::from(desired.runtime_config.clone().unwrap_or_default());
        self.deploy_as(name, Some(&desired.query), body, Some(desired.clone())).await.map(|_| ())
    }

    /// What the cluster asked for when `name` was deployed through it, if it was.
    pub(crate) fn desired_of(&self, name: &str) -> Option<Desired> {
        self.entry(name).and_then(|entry| entry.current.load().record.desired.clone())
    }

    /// Whether `name` is deployed here from an archive (not through the cluster).
    pub(crate) fn has_local_app(&self, name: &str) -> bool {
        self.entry(name).is_some_and(|entry| entry.current.load().record.desired.is_none())
    }

    /// The apps this host serves because the cluster asked for them.
    pub(crate) fn cluster_apps(&self) -> Vec<String> {
        let apps = self.apps.read().unwrap_or_else(|p| p.into_inner());
        apps.by_name.values().filter(|entry| entry.current.load().record.desired.is_some()).map(|entry| entry.name.clone()).collect()
    }

    async fn deploy_as(self: &Arc<Self>, name: &str, query: Option<&str>, archive: bytes::Bytes, desired: Option<Desired>) -> Result<(AppInfo, bool), ApiError> {
        if !valid_app_name(name) {
            return Err(ApiError::bad_request(format!(
                "`{name}` is not a valid app name: use 1-63 lowercase letters, digits and `-`, not starting or ending with `-` (it becomes `{name}.{}`)",
                self.config.domain
            )));
        }
        let params = DeployParams::parse(query, self.config.ceilings).map_err(ApiError::bad_request)?;
        // Pulled before the deploy lock: a slow registry holds up only this deploy.
        let upload = match &params.reference {
            Some(reference) => {
                // With a reference, the body is the app's runtime config (or empty).
                let runtime_config = match archive.is_empty() {
                    true => None,
                    false => Some(String::from_utf8(archive.to_vec()).map_err(|_| {
                        ApiError::bad_request(format!("with `reference={reference}` the body is the app's runtime-config.toml, which must be UTF-8 text"))
                    })?),
                };
                Upload::Pulled { dir: self.pull(reference, params.insecure).await?, runtime_config }
            }
            None => Upload::Archive(archive),
        };
        let _change = self.changes.lock().await;
        self.check_prefix_free(name, params.route_prefix.as_deref())?;
        let existing = self.entry(name);
        let previous = existing.as_ref().map(|entry| entry.current.load_full());
        let metrics = match &existing {
            Some(entry) => entry.metrics.clone(),
            None => self.metrics.app(name, self.tracing.as_ref()),
        };
        let record = AppRecord {
            name: name.to_string(),
            version: previous.as_ref().map_or(1, |v| v.record.version + 1),
            route_prefix: params.route_prefix.clone(),
            // Set from the manifest and the request once the archive is unpacked.
            limits: self.config.default_limits,
            deployed_at: unix_now(),
            desired,
        };

        let (platform, metrics_for_load) = (self.clone(), metrics.clone());
        let prepared = on_blocking_thread(move || platform.prepare_version(record, &params.limits, &upload, &metrics_for_load)).await;
        let Prepared { version, loaded, plans } = match prepared {
            Ok(prepared) => prepared,
            Err(err) => {
                if existing.is_none() {
                    self.metrics.remove_app(name);
                }
                return Err(err);
            }
        };
        let version = Arc::new(version);
        let keep_loaded = previous.as_ref().is_some_and(|v| v.loaded.load().is_some());
        let loaded = Arc::new(loaded);
        if keep_loaded {
            version.loaded.store(Some(loaded.clone()));
        }
        let replaced = self.install(name, version.clone(), metrics);
        self.metrics.set_apps(self.app_count());
        let entry = self.entry(name).ok_or_else(|| ApiError::internal(anyhow::anyhow!("app `{name}` vanished during its deploy")))?;
        self.switch_events(&entry, &version, loaded, plans).await;
        tracing::info!("deployed `{name}` version {}", version.record.version);
        if let Some(old) = replaced {
            self.retire(old);
        }
        Ok((self.info(&entry), previous.is_none()))
    }

    /// Unpacks, checks and compiles a version, and records it as current on disk. Nothing is
    /// visible to requests yet; on any error nothing is left behind.
    /// Pulls `reference` into the data directory's cache (blobs verified); returns the pulled app's
    /// directory. Registry errors are the request's (400), naming the reference.
    async fn pull(&self, reference: &str, insecure: bool) -> Result<PathBuf, ApiError> {
        let cache = kiln_oci::Cache::new(&self.data.cache_dir());
        let options = kiln_oci::RegistryOptions { insecure, credentials: kiln_oci::Credentials::default_location() };
        let pulled = kiln_oci::pull(reference, &cache, &options).await.map_err(|err| ApiError::bad_request(format!("{err:#}")))?;
        tracing::info!("pulled {reference} ({})", pulled.digest);
        let dir = pulled.manifest_path.parent().ok_or_else(|| ApiError::internal(anyhow::anyhow!("the pulled app has no directory")))?;
        Ok(dir.to_path_buf())
    }

    fn prepare_version(&self, record: AppRecord, requested: &AppLimitsSpec, upload: &Upload, metrics: &Arc<AppMetrics>) -> Result<Prepared, ApiError> {
        let dir = self.data.version_dir(&record.name, record.version);
        let result = self.unpack_and_load(&record, requested, upload, &dir, metrics);
        match result {
            Ok(prepared) => {
                let json = serde_json::to_vec_pretty(&prepared.version.record).map_err(|err| ApiError::internal(err.into()))?;
                write_atomically(&self.data.app_dir(&record.name).join("app.json"), &json).map_err(ApiError::internal)?;
                Ok(prepared)
            }
            Err(err) => {
                let _ = std::fs::remove_dir_all(&dir);
                if record.version == 1 {
                    // A first deploy that failed leaves no app behind (its state was never used).
                    let _ = std::fs::remove_dir_all(self.data.app_dir(&record.name));
                }
                Err(err)
            }
        }
    }

    fn unpack_and_load(&self, record: &AppRecord, requested: &AppLimitsSpec, upload: &Upload, dir: &Path, metrics: &Arc<AppMetrics>) -> Result<Prepared, ApiError> {
        let app_dir = self.data.app_dir(&record.name);
        std::fs::create_dir_all(&app_dir).map_err(|err| ApiError::internal(err.into()))?;
        let staging = app_dir.join(format!(".staging-{}", random_hex(6)));
        std::fs::create_dir(&staging).map_err(|err| ApiError::internal(err.into()))?;
        let unpacked = match upload {
            Upload::Archive(bytes) => archive::unpack(bytes, &staging, self.config.max_upload.saturating_mul(4)).map_err(archive_error),
            Upload::Pulled { dir: app_dir, runtime_config } => copy_tree(app_dir, &staging)
                .and_then(|()| match runtime_config {
                    Some(text) => std::fs::write(staging.join("runtime-config.toml"), text).map_err(anyhow::Error::from),
                    None => Ok(()),
                })
                .map_err(|err| ApiError::internal(err.context("cannot copy the pulled app"))),
        };
        if let Err(err) = unpacked {
            let _ = std::fs::remove_dir_all(&staging);
            return Err(err);
        }
        let _ = std::fs::remove_dir_all(dir);
        std::fs::rename(&staging, dir).map_err(|err| ApiError::internal(err.into()))?;
        sync_dir(&app_dir);
        let (version, manifest) = self.describe_version(record.clone(), Some(requested))?;
        self.check_manifest(&version, &manifest)?;
        // Compiling (or finding the artifact in the cache) and linking now proves the version can
        // serve before it replaces the one that does.
        let loaded = self.load(&version, metrics)?;
        let plans = self.plans(&version, &loaded)?;
        // Deploy-time only: a restored app whose Redis is down keeps retrying instead.
        for trigger in self.triggers.iter().filter(|trigger| trigger.is_used_by(&loaded.app.manifest)) {
            trigger.probe(&loaded.app).map_err(|err| ApiError::bad_request(relative_to(&version.dir, &format!("{err:#}"))))?;
        }
        Ok(Prepared { version, loaded, plans })
    }

    /// What each event trigger the version uses would run: errors (a component without the
    /// export, an address that cannot be rendered) are the app's, located in its manifest.
    fn plans(&self, version: &AppVersion, loaded: &Loaded) -> Result<Vec<(&'static str, String)>, ApiError> {
        let limits = Self::trigger_limits(version);
        let mut plans = Vec::new();
        for trigger in self.triggers.iter().filter(|trigger| trigger.is_used_by(&loaded.app.manifest)) {
            let plan = trigger.plan(&loaded.app, &limits).map_err(|err| ApiError::bad_request(relative_to(&version.dir, &format!("{err:#}"))))?;
            plans.push((trigger.kind(), plan));
        }
        Ok(plans)
    }

    /// The limits of the app's events: the same as its requests'.
    fn trigger_limits(version: &AppVersion) -> TriggerLimits {
        let limits = version.record.limits;
        TriggerLimits {
            instance: InstanceLimits { deadline: limits.request_timeout(), memory_limit: limits.memory_limit_bytes() },
            max_concurrency: limits.max_concurrency as usize,
        }
    }

    fn trigger_context(self: &Arc<Self>, entry: &Arc<AppEntry>, version: &AppVersion) -> TriggerContext {
        TriggerContext {
            source: Arc::new(CurrentVersion { platform: Arc::downgrade(self), entry: Arc::downgrade(entry) }),
            limits: Self::trigger_limits(version),
            runtime: self.events.clone(),
            observer: Some(entry.metrics.clone()),
            label: Some(entry.name.clone()),
        }
    }

    /// Starts the event triggers of `plans` for the app (restore). A trigger that fails to start is
    /// logged and the others still start.
    fn start_events(self: &Arc<Self>, entry: &Arc<AppEntry>, version: &AppVersion, loaded: &Loaded, plans: Vec<(&'static str, String)>) {
        let context = self.trigger_context(entry, version);
        let mut started = Vec::new();
        for (kind, plan) in plans {
            let Some(trigger) = self.triggers.iter().find(|trigger| trigger.kind() == kind) else { continue };
            match trigger.start(&loaded.app, context.clone()) {
                Ok(running) => started.push(RunningEvents { kind, plan, running }),
                Err(err) => {
                    tracing::error!("app `{}`: cannot start its {kind} trigger: {err:#}", entry.name);
                    started.push(RunningEvents::failed(kind, &format!("{err:#}")));
                }
            }
        }
        entry.events.lock().unwrap_or_else(|p| p.into_inner()).extend(started);
    }

    /// After a deploy made `version` current: keeps each event trigger whose plan is unchanged
    /// (it takes the new version at its next event: nothing lost, nothing doubled), stops the others
    /// (in-flight events finish), then starts what the new version adds or changes.
    async fn switch_events(self: &Arc<Self>, entry: &Arc<AppEntry>, version: &Arc<AppVersion>, loaded: Arc<Loaded>, plans: Vec<(&'static str, String)>) {
        let stale: Vec<RunningEvents> = {
            let mut events = entry.events.lock().unwrap_or_else(|p| p.into_inner());
            let (kept, stale) = std::mem::take(&mut *events).into_iter().partition(|running| plans.iter().any(|(kind, plan)| *kind == running.kind && *plan == running.plan));
            *events = kept;
            stale
        };
        // The old triggers stop taking events first (unsubscribed: nothing is handled twice); the
        // new ones start at once, while the old ones' last events finish.
        let grace = version.record.limits.request_timeout();
        let stopped_at = Instant::now();
        let restarted: Vec<&'static str> = stale.iter().map(|old| old.kind).collect();
        let draining = futures::future::join_all(stale.into_iter().map(|old| old.running.stop(grace))).await;
        let kept: Vec<&'static str> = entry.events.lock().unwrap_or_else(|p| p.into_inner()).iter().map(|running| running.kind).collect();
        let to_start: Vec<(&'static str, String)> = plans.into_iter().filter(|(kind, _)| !kept.contains(kind)).collect();
        if !to_start.is_empty() {
            let (platform, entry, version) = (self.clone(), entry.clone(), version.clone());
            let _ = tokio::task::spawn_blocking(move || platform.start_events(&entry, &version, &loaded, to_start)).await;
        }
        if !restarted.is_empty() {
            tracing::info!(
                "app `{}`: {} trigger(s) changed and were restarted, {:.1} ms between the old one stopping and the new one starting",
                entry.name,
                restarted.join(", "),
                stopped_at.elapsed().as_secs_f64() * 1000.0
            );
        }
        futures::future::join_all(draining.into_iter().map(Draining::finish)).await;
    }

    /// Stops every event trigger of the app (removal, host shutdown).
    async fn stop_events(entry: &AppEntry, grace: Duration) {
        let events = std::mem::take(&mut *entry.events.lock().unwrap_or_else(|p| p.into_inner()));
        futures::future::join_all(events.into_iter().map(|running| running.running.shutdown(grace))).await;
    }

    /// Sets each app's `kiln_trigger_up` from its triggers' state (before `/metrics` is rendered).
    pub fn refresh_trigger_metrics(&self) {
        let entries: Vec<Arc<AppEntry>> = self.apps.read().unwrap_or_else(|p| p.into_inner()).by_name.values().cloned().collect();
        for entry in entries {
            for running in entry.events.lock().unwrap_or_else(|p| p.into_inner()).iter() {
                entry.metrics.trigger_state(running.kind, running.running.state() == "ok");
            }
        }
    }

    /// Stops every app's event triggers, in-flight events finishing within `grace` (host shutdown).
    pub async fn shutdown_events(&self, grace: Duration) {
        let entries: Vec<Arc<AppEntry>> = self.apps.read().unwrap_or_else(|p| p.into_inner()).by_name.values().cloned().collect();
        futures::future::join_all(entries.iter().map(|entry| Self::stop_events(entry, grace))).await;
    }

    /// What `kiln serve` can run, checked before compiling, and sources shared as blobs.
    fn check_manifest(&self, version: &AppVersion, manifest: &Manifest) -> Result<(), ApiError> {
        let located = |err: anyhow::Error| ApiError::bad_request(relative_to(&version.dir, &format!("{err:#}")));
        kiln_trigger_http::check_routes(manifest).map_err(located)?;
        let events = self.triggers.iter().filter(|trigger| trigger.is_used_by(manifest));
        if manifest.http_triggers.is_empty() && events.clone().next().is_none() {
            return Err(ApiError::bad_request("the app has no triggers: bind a component to `[[trigger.http]]`, `[[trigger.redis]]`, `[[trigger.nats]]` or `[[trigger.cron]]`"));
        }
        for trigger in events {
            trigger.check(manifest).map_err(located)?;
        }
        for component in manifest.components.values() {
            if let kiln_manifest::ComponentSource::Local(path) = &component.source {
                // On a shared host a `source` may only name a file the app uploaded: `../` would
                // reach other apps' versions or the host's files.
                if !path.starts_with(&version.dir) {
                    let message = format!("component `{}`: `source` must be a file in the uploaded archive", component.id);
                    return Err(located(manifest.error_at(&component.source_span, message, "kiln deploy packs sources from elsewhere under kiln-sources/").into()));
                }
                self.data.share_blob(path).map_err(ApiError::internal)?;
            }
            // The same for a dependency's file; URL and registry dependencies are not fetched here.
            for dependency in &component.dependencies {
                let inside = matches!(&dependency.source, kiln_manifest::DependencySource::Local(path) if path.starts_with(&version.dir));
                if !inside && !matches!(dependency.source, kiln_manifest::DependencySource::AppComponent(_)) {
                    let message = format!("component `{}`: dependency `{}` must be a file in the uploaded archive or another component of the app", component.id, dependency.name);
                    return Err(located(manifest.error_at(&dependency.span, message, "give it as `{ path = \"…\" }` inside the application directory, or `{ component = \"…\" }`").into()));
                }
            }
        }
        Ok(())
    }

    /// Removes app `name`: new requests get 404 at once, running ones finish (up to the app's
    /// deadline), then its files and state are deleted. An app deployed through the cluster is
    /// removed from the cluster's shared state too, so every host removes it.
    pub async fn remove(self: &Arc<Self>, name: &str) -> Result<(), ApiError> {
        let through_cluster = self.desired_of(name).is_some();
        self.remove_local(name).await?;
        if let (Some(cluster), true) = (&self.cluster, through_cluster) {
            cluster.publish_removed(name).await.map_err(|err| {
                ApiError::new(StatusCode::BAD_GATEWAY, format!("`{name}` is removed from this host, but the cluster's Redis did not take it: {err:#}"))
            })?;
        }
        Ok(())
    }

    /// Removes app `name` from this host only.
    pub(crate) async fn remove_local(self: &Arc<Self>, name: &str) -> Result<(), ApiError> {
        let _change = self.changes.lock().await;
        let entry = {
            let mut apps = self.apps.write().unwrap_or_else(|poisoned| poisoned.into_inner());
            let entry = apps.by_name.remove(name).ok_or_else(|| ApiError::new(StatusCode::NOT_FOUND, format!("no app `{name}`")))?;
            apps.rebuild_prefixes();
            entry
        };
        self.metrics.set_apps(self.app_count());
        let version = entry.current.load_full();
        Self::stop_events(&entry, version.record.limits.request_timeout()).await;
        drain(&version, version.record.limits.request_timeout() + Duration::from_secs(1)).await;
        self.metrics.remove_app(name);
        let app_dir = self.data.app_dir(name);
        let removed = tokio::task::spawn_blocking(move || std::fs::remove_dir_all(&app_dir)).await;
        if let Ok(Err(err)) = removed {
            tracing::warn!("app `{name}` removed, but its directory could not be deleted: {err}");
        }
        tracing::info!("removed `{name}`");
        Ok(())
    }

    /// Lets the requests on a replaced version finish, then deletes its directory.
    fn retire(self: &Arc<Self>, old: Arc<AppVersion>) {
        tokio::spawn(async move {
            drain(&old, old.record.limits.request_timeout() + Duration::from_secs(1)).await;
            let dir = old.dir.clone();
            drop(old);
            let _ = tokio::task::spawn_blocking(move || std::fs::remove_dir_all(dir)).await;
        });
    }

    fn check_prefix_free(&self, name: &str, prefix: Option<&str>) -> Result<(), ApiError> {
        let Some(prefix) = prefix else { return Ok(()) };
        let apps = self.apps.read().unwrap_or_else(|poisoned| poisoned.into_inner());
        for (taken, entry) in &apps.by_prefix {
            if entry.name != name && prefixes_overlap(taken, prefix) {
                return Err(ApiError::new(StatusCode::CONFLICT, format!("route prefix `{prefix}` overlaps `{taken}` of app `{}`", entry.name)));
            }
        }
        Ok(())
    }

    // ---- loading ----------------------------------------------------------------------------

    /// Compiles (or maps from the cache) and links a version's components, and builds its router.
    fn load(&self, version: &AppVersion, metrics: &Arc<AppMetrics>) -> Result<Loaded, ApiError> {
        let located = |err: anyhow::Error| ApiError::bad_request(relative_to(&version.dir, &format!("{err:#}")));
        let manifest = Manifest::load(&version.manifest_path).map_err(|err| located(err.into()))?;
        let engine = self.engine_for(version.needs_concurrency).map_err(ApiError::internal)?;
        let runtime_config = app_runtime_config(&version.dir)?;
        let mut options = LoadOptions::for_manifest(&manifest, std::iter::empty(), &self.capabilities);
        options.providers = kiln_variables::providers_from_config(&runtime_config, std::iter::empty()).map_err(|err| located(err.into()))?;
        options.runtime_config = runtime_config;
        options.state_dir = self.data.state_dir(&version.record.name);
        options.files_dir = Some(version.dir.join(".kiln-files"));
        options.observer = Some(metrics.clone() as Arc<dyn CapabilityObserver>);
        let app = App::load(&engine, manifest, options).map_err(located)?;
        let limits = version.record.limits;
        let options = HttpOptions {
            deadline: limits.request_timeout(),
            memory_limit: limits.memory_limit_bytes(),
            max_concurrency: limits.max_concurrency as usize,
            queue_timeout: self.config.queue_timeout,
            max_request_body: Some(limits.max_request_body),
            mount: version.record.route_prefix.clone().unwrap_or_default(),
            observer: Some(metrics.clone() as Arc<dyn HttpObserver>),
            app_label: Some(version.record.name.clone()),
        };
        let trigger = HttpTrigger::new(&app, options).map_err(located)?;
        Ok(Loaded { trigger, app: Arc::new(app) })
    }

    fn engine_for(&self, concurrency: bool) -> Result<Engine> {
        if !concurrency {
            return Ok(self.engine.clone());
        }
        let mut slot = self.concurrent_engine.lock().unwrap_or_else(|poisoned| poisoned.into_inner());
        if let Some(engine) = slot.as_ref() {
            return Ok(engine.clone());
        }
        let mut config = self.engine.config().clone();
        config.concurrency = true;
        let engine = Engine::new(config, &self.links)?;
        *slot = Some(engine.clone());
        Ok(engine)
    }

    /// The loaded form of the app's current version, loading it if it is idle. Concurrent first
    /// requests wait for one load. A request that took a version just before it was replaced gets
    /// it while it drains, or else the version that replaced it.
    pub(crate) async fn loaded(self: &Arc<Self>, entry: &Arc<AppEntry>, version: &Arc<AppVersion>) -> Result<Arc<Loaded>, ApiError> {
        if let Some(loaded) = version.loaded.load_full() {
            version.last_used.store(self.now_ms(), Ordering::Relaxed);
            return Ok(loaded);
        }
        if version.retired.load(Ordering::Acquire) {
            let current = entry.current.load_full();
            if Arc::ptr_eq(&current, version) {
                return Err(ApiError::new(StatusCode::NOT_FOUND, format!("the app `{}` was removed", entry.name)));
            }
            return Box::pin(self.loaded(entry, &current)).await;
        }
        self.cold_load(entry, version).await
    }

    /// Loads `version` (idle, not retired) for [`Platform::loaded`].
    async fn cold_load(self: &Arc<Self>, entry: &Arc<AppEntry>, version: &Arc<AppVersion>) -> Result<Arc<Loaded>, ApiError> {
        version.last_used.store(self.now_ms(), Ordering::Relaxed);
        let mut last_failure = version.load_lock.lock().await;
        if let Some(loaded) = version.loaded.load_full() {
            return Ok(loaded);
        }
        if version.retired.load(Ordering::Acquire) {
            drop(last_failure);
            return Box::pin(self.loaded(entry, version)).await;
        }
        if let Some(failure) = last_failure.as_ref().filter(|failure| failure.at.elapsed() < LOAD_RETRY) {
            return Err(ApiError::internal(anyhow::anyhow!("{} (retried after {LOAD_RETRY:?})", failure.message)));
        }
        let started = Instant::now();
        let (platform, version_for_load, metrics) = (self.clone(), version.clone(), entry.metrics.clone());
        let result = on_blocking_thread(move || platform.load(&version_for_load, &metrics)).await;
        let loaded = match result {
            Ok(loaded) => Arc::new(loaded),
            Err(err) => {
                *last_failure = Some(FailedLoad { at: Instant::now(), message: err.message.clone() });
                return Err(err);
            }
        };
        *last_failure = None;
        version.loaded.store(Some(loaded.clone()));
        entry.metrics.cold_load(started.elapsed());
        tracing::debug!("loaded `{}` in {:.2} ms", entry.name, started.elapsed().as_secs_f64() * 1000.0);
        Ok(loaded)
    }

    /// Unloads every app unused for the idle timeout with no request in flight. Called periodically.
    pub fn unload_idle(&self) -> usize {
        let idle_ms = self.config.idle_timeout.as_millis() as u64;
        let now = self.now_ms();
        let entries: Vec<Arc<AppEntry>> = self.apps.read().unwrap_or_else(|p| p.into_inner()).by_name.values().cloned().collect();
        let mut unloaded = 0;
        for entry in entries {
            let version = entry.current.load();
            let idle = now.saturating_sub(version.last_used.load(Ordering::Relaxed)) >= idle_ms;
            let busy = version.loaded.load().as_ref().is_some_and(|loaded| loaded.busy());
            if idle && !busy && version.loaded.swap(None).is_some() {
                tracing::debug!("unloaded idle app `{}`", entry.name);
                unloaded += 1;
            }
        }
        unloaded
    }

    fn now_ms(&self) -> u64 {
        self.started.elapsed().as_millis() as u64
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
/// name Redis stores and static or dotenv variables, but not paths on the host (stores live in the
/// app's state directory) nor the host's environment (it belongs to the operator, not the apps).
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
