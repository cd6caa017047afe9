//! Loading a version (compile or map from the cache, link, build its router) on its first request or
//! event, once however many arrive together, and unloading versions left idle.

use super::*;

impl Platform {
    // ---- loading ----------------------------------------------------------------------------

    /// Compiles (or maps from the cache) and links a version's components, and builds its router.
    pub(super) fn load(&self, version: &AppVersion, metrics: &Arc<AppMetrics>) -> Result<Loaded, ApiError> {
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

    pub(super) fn engine_for(&self, concurrency: bool) -> Result<Engine> {
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
    pub(super) async fn cold_load(self: &Arc<Self>, entry: &Arc<AppEntry>, version: &Arc<AppVersion>) -> Result<Arc<Loaded>, ApiError> {
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

    pub(super) fn now_ms(&self) -> u64 {
        self.started.elapsed().as_millis() as u64
    }
}
