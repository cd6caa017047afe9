//! The shape every trigger has: check the manifest → start for a loaded app → one running handle
//! that shuts down.
//!
//! A trigger crate (HTTP, Redis, NATS, cron) implements [`Trigger`]; `kiln up` and `kiln serve` list
//! the triggers they serve and loop over them. Nothing is found by load order: what a trigger needs
//! from a capability (the messaging broker) it asks the loaded [`App`] for
//! ([`App::capability`]), and what it needs from the host (limits, the runtime it runs on, an
//! observer) comes in [`TriggerContext`].
//!
//! An event trigger (Redis, NATS, cron) takes the app from an [`AppSource`] at every event rather
//! than holding it: `kiln up` hands it the one loaded app, `kiln serve` the app's current version,
//! loaded on the first event after it went idle. So an idle event app holds its subscriptions and
//! nothing else (scale to zero), and an update that leaves the subscriptions as they were swaps
//! the version under them without unsubscribing (no message lost or handled twice).

use crate::App;
use anyhow::Result;
use kiln_engine::InstanceLimits;
use kiln_manifest::Manifest;
use std::any::Any;
use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;
use std::time::Duration;

/// A boxed future, as trait objects return them.
pub type BoxFuture<'a, T> = Pin<Box<dyn Future<Output = T> + Send + 'a>>;

/// One kind of trigger: `[[trigger.<kind>]]` in the manifest.
pub trait Trigger: Send + Sync {
    /// The manifest's name for it (`"redis"` for `[[trigger.redis]]`).
    fn kind(&self) -> &'static str;

    /// Whether the manifest binds any component to this trigger.
    fn is_used_by(&self, manifest: &Manifest) -> bool;

    /// Checks the manifest's tables of this trigger without compiling or connecting anything
    /// (`file:line:col` errors). Cheap: runs before anything is loaded.
    fn check(&self, manifest: &Manifest) -> Result<()>;

    /// What [`start`](Trigger::start) would run for `app`: addresses, channels, subjects and
    /// schedules rendered, every bound component's export located. Two versions of an app with the
    /// same plan (and `limits`) can share one running trigger. Errors here are the app's, located in its
    /// manifest.
    fn plan(&self, app: &App, limits: &TriggerLimits) -> Result<String>;

    /// Whether the services the app's triggers name answer now (deploy checks this, so an address
    /// that cannot be reached is refused instead of retried forever). A service that goes away
    /// later is retried with backoff.
    fn probe(&self, _app: &App) -> Result<()> {
        Ok(())
    }

    /// Starts serving the app's triggers of this kind (only called when [`is_used_by`]). Bad
    /// configuration fails here; a service that is unreachable is not an error: the trigger keeps
    /// trying, and says so in [`RunningTrigger::state`].
    ///
    /// [`is_used_by`]: Trigger::is_used_by
    fn start(&self, app: &App, context: TriggerContext) -> Result<Box<dyn RunningTrigger>>;
}

/// A started trigger.
pub trait RunningTrigger: Send + Sync {
    /// One line per subscription or schedule (`redis channel `orders` on redis://host:6379 → handler`).
    fn describe(&self) -> Vec<String>;

    /// `ok`, or what is wrong now (`connecting to redis://…: refused; retrying`).
    fn state(&self) -> String {
        "ok".to_string()
    }

    /// Stops taking events (unsubscribes, stops ticking) and resolves once it has; the [`Draining`]
    /// it gives then lets in-flight events finish up to `grace` and cuts off the rest. Two steps, so
    /// that a replacement can subscribe as soon as this one has stopped, without waiting for its
    /// last events.
    fn stop(self: Box<Self>, grace: Duration) -> BoxFuture<'static, Draining>;

    /// [`stop`](RunningTrigger::stop), then the drain.
    fn shutdown(self: Box<Self>, grace: Duration) -> BoxFuture<'static, ()> {
        let stopping = self.stop(grace);
        Box::pin(async move { stopping.await.finish().await })
    }
}

/// A stopped trigger's events still running: [`finish`](Draining::finish) waits for them (up to the
/// grace period) and cuts off the rest.
pub struct Draining(BoxFuture<'static, ()>);

impl Draining {
    pub fn new(drain: impl Future<Output = ()> + Send + 'static) -> Draining {
        Draining(Box::pin(drain))
    }

    /// Nothing left running.
    pub fn done() -> Draining {
        Draining(Box::pin(async {}))
    }

    pub async fn finish(self) {
        self.0.await
    }
}

/// What a trigger gets from the host to start for one app (besides the app as loaded now, against
/// which it checks its exports before anything starts, and which it does not keep).
#[derive(Clone)]
pub struct TriggerContext {
    /// Where each event takes the app from (this one for `kiln up`; the current version, loaded on
    /// demand, for `kiln serve`).
    pub source: Arc<dyn AppSource>,
    pub limits: TriggerLimits,
    /// The runtime event triggers run on (one for the whole host).
    pub runtime: tokio::runtime::Handle,
    /// Told of every event handled (platform mode's metrics).
    pub observer: Option<Arc<dyn EventObserver>>,
    /// The app's name in log lines (platform mode, where one log holds many apps).
    pub label: Option<String>,
}

impl TriggerContext {
    /// For an app that stays loaded while its triggers run (`kiln up`, tests).
    pub fn resident(app: Arc<App>, limits: TriggerLimits, runtime: tokio::runtime::Handle) -> TriggerContext {
        TriggerContext { source: Arc::new(Resident(app)), limits, runtime, observer: None, label: None }
    }

    /// `[app] ` for log lines in platform mode, empty otherwise.
    pub fn log_prefix(&self) -> String {
        self.label.as_ref().map(|label| format!("[{label}] ")).unwrap_or_default()
    }
}

/// How much an app's events may use: the same bounds as its HTTP requests.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct TriggerLimits {
    /// Deadline and linear memory of each instance.
    pub instance: InstanceLimits,
    /// Instances of one trigger kind of the app running at once; further events wait (in the
    /// broker, where it keeps them).
    pub max_concurrency: usize,
}

impl Default for TriggerLimits {
    fn default() -> Self {
        TriggerLimits {
            instance: InstanceLimits { deadline: Duration::from_secs(30), memory_limit: 128 << 20 },
            max_concurrency: 100,
        }
    }
}

/// Where an event takes its app from.
pub trait AppSource: Send + Sync {
    /// The app to run this event on, loaded (loading it first if it is idle). The event holds it
    /// until it ends: an update or an idle unload waits for it.
    fn load(&self) -> BoxFuture<'_, Result<Arc<App>>>;
}

/// An app that is always loaded.
struct Resident(Arc<App>);

impl AppSource for Resident {
    fn load(&self) -> BoxFuture<'_, Result<Arc<App>>> {
        let app = self.0.clone();
        Box::pin(async move { Ok(app) })
    }
}

/// What happened to one event, for metrics.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum EventOutcome {
    Ok,
    /// The handler returned an error, trapped, or ran past its deadline.
    Failed,
}

/// Told of every event a trigger handles.
pub trait EventObserver: Send + Sync {
    fn event(&self, trigger: &'static str, component: &str, outcome: EventOutcome, elapsed: Duration);
}

impl App {
    /// What trigger `kind` located in this app (bound components, their exports), built once per
    /// loaded app by `build` and dropped with it: a trigger that outlives a version (kiln serve
    /// keeps subscriptions across updates) never holds a version's compiled code.
    pub fn trigger_exports<T: Any + Send + Sync>(&self, kind: &'static str, build: impl FnOnce(&App) -> Result<T>) -> Result<Arc<T>> {
        let mut exports = self.trigger_exports.lock().unwrap_or_else(|poisoned| poisoned.into_inner());
        if let Some(found) = exports.get(kind).and_then(|found| found.clone().downcast::<T>().ok()) {
            return Ok(found);
        }
        let built = Arc::new(build(self)?);
        exports.insert(kind, built.clone());
        Ok(built)
    }
}
