//! An app's event triggers (Redis, NATS, cron): planned against each version, kept across versions
//! with an unchanged plan, started, switched and stopped. They take the app's current version at every
//! event ([`CurrentVersion`]), loading it if it is idle.

use super::*;


/// One trigger kind running for an app, and the plan it was started with: a new version with the
/// same plan keeps it running.
pub(super) struct RunningEvents {
    pub(super) kind: &'static str,
    pub(super) plan: String,
    pub(super) running: Box<dyn RunningTrigger>,
}

impl RunningEvents {
    /// A trigger that could not start: shown (and counted as down) with the reason, replaced by the
    /// next deploy.
    pub(super) fn failed(kind: &'static str, reason: &str) -> RunningEvents {
        RunningEvents { kind, plan: String::new(), running: Box::new(FailedTrigger(format!("not running: {reason}"))) }
    }
}

pub(super) struct FailedTrigger(String);

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

/// Where an app's event triggers take it from: its current version, loaded if it is idle.
pub(super) struct CurrentVersion {
    pub(super) platform: Weak<Platform>,
    pub(super) entry: Weak<AppEntry>,
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
    /// What each event trigger the version uses would run: errors (a component without the
    /// export, an address that cannot be rendered) are the app's, located in its manifest.
    pub(super) fn plans(&self, version: &AppVersion, loaded: &Loaded) -> Result<Vec<(&'static str, String)>, ApiError> {
        let limits = Self::trigger_limits(version);
        let mut plans = Vec::new();
        for trigger in self.triggers.iter().filter(|trigger| trigger.is_used_by(&loaded.app.manifest)) {
            let plan = trigger.plan(&loaded.app, &limits).map_err(|err| ApiError::bad_request(relative_to(&version.dir, &format!("{err:#}"))))?;
            plans.push((trigger.kind(), plan));
        }
        Ok(plans)
    }

    /// The limits of the app's events: the same as its requests'.
    pub(super) fn trigger_limits(version: &AppVersion) -> TriggerLimits {
        let limits = version.record.limits;
        TriggerLimits {
            instance: InstanceLimits { deadline: limits.request_timeout(), memory_limit: limits.memory_limit_bytes() },
            max_concurrency: limits.max_concurrency as usize,
        }
    }

    pub(super) fn trigger_context(self: &Arc<Self>, entry: &Arc<AppEntry>, version: &AppVersion) -> TriggerContext {
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
    pub(super) fn start_events(self: &Arc<Self>, entry: &Arc<AppEntry>, version: &AppVersion, loaded: &Loaded, plans: Vec<(&'static str, String)>) {
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
    pub(super) async fn switch_events(self: &Arc<Self>, entry: &Arc<AppEntry>, version: &Arc<AppVersion>, loaded: Arc<Loaded>, plans: Vec<(&'static str, String)>) {
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
    pub(super) async fn stop_events(entry: &AppEntry, grace: Duration) {
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

}
