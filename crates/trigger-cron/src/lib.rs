//! The cron trigger: `[[trigger.cron]]` with a `cron_expression` (Spin's cron trigger plugin) or an
//! `interval`, one fresh component instance per tick.
//!
//! Each trigger has its own loop: sleep until the next tick, start a run unless the previous one is
//! still going (then the tick is skipped and logged), compute the next tick from the later of the tick
//! and now. Nothing is persisted, so ticks missed while the host was down are never replayed.

mod schedule;

pub use schedule::{Plan, parse_cron};

use anyhow::{Context, Result};
use chrono::{DateTime, Utc};
use kiln_app::{App, BoxFuture, Draining, EventOutcome, RunningTrigger, Trigger, TriggerContext, TriggerLimits};
use kiln_engine::{ComponentPre, KilnState};
use std::collections::HashMap;
use kiln_manifest::Manifest;
use kiln_outbound_http::OutboundHttp;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};
use tokio::sync::{Semaphore, watch};

mod bindings {
    wasmtime::component::bindgen!({
        path: ["../../wit/spin-cron@2.0.0"],
        world: "fermyon:spin-cron/spin-cron@2.0.0",
        exports: { default: async },
    });
}

use bindings::SpinCronPre;
use bindings::fermyon::spin_cron::cron_types::{Error as CronError, Metadata};

/// Checks every `[[trigger.cron]]` schedule, reporting the first bad one at its place in the file.
/// Cheap: call it before compiling anything.
pub fn check_schedules(manifest: &Manifest) -> Result<()> {
    for trigger in &manifest.cron_triggers {
        Plan::from_manifest(manifest, trigger)?;
    }
    Ok(())
}

/// The cron trigger, `[[trigger.cron]]`.
pub struct CronTrigger;

impl Trigger for CronTrigger {
    fn kind(&self) -> &'static str {
        "cron"
    }

    fn is_used_by(&self, manifest: &Manifest) -> bool {
        !manifest.cron_triggers.is_empty()
    }

    fn check(&self, manifest: &Manifest) -> Result<()> {
        check_schedules(manifest)
    }

    fn plan(&self, app: &App, limits: &TriggerLimits) -> Result<String> {
        let schedules = schedules(&app.manifest)?;
        app.trigger_exports("cron", exports)?;
        Ok(format!("{:?} {:?}", schedules.iter().map(|s| (&s.component, s.plan.to_string())).collect::<Vec<_>>(), limits))
    }

    fn start(&self, app: &App, context: TriggerContext) -> Result<Box<dyn RunningTrigger>> {
        let schedules = schedules(&app.manifest)?;
        app.trigger_exports("cron", exports)?;
        let count = schedules.len();
        let runs = Arc::new(Semaphore::new(count.max(1)));
        let (stop, stop_rx) = watch::channel(false);
        let (cut_off, cut_off_rx) = watch::channel(false);
        let described = schedules.iter().map(|s| format!("{}: cron {}", s.component, s.plan)).collect();
        let shared = Arc::new(Shared { context, cut_off: cut_off_rx });
        let loops = schedules
            .into_iter()
            .map(|schedule| {
                tracing::info!(target: "kiln::cron", "{}cron {} [{}] scheduled", shared.context.log_prefix(), schedule.plan, schedule.component);
                shared.context.runtime.spawn(schedule_loop(Arc::new(schedule), shared.clone(), runs.clone(), stop_rx.clone()))
            })
            .collect();
        Ok(Box::new(Running { stop, cut_off, loops, runs, count, described, prefix: shared.context.log_prefix() }))
    }
}

/// One `[[trigger.cron]]`, ready to tick.
struct Schedule {
    component: String,
    plan: Plan,
    /// Whether a run is going (runs of one trigger never overlap).
    busy: Arc<AtomicBool>,
}

fn schedules(manifest: &Manifest) -> Result<Vec<Schedule>> {
    let mut schedules = Vec::new();
    for trigger in &manifest.cron_triggers {
        let plan = Plan::from_manifest(manifest, trigger)?;
        schedules.push(Schedule { component: trigger.component.clone(), plan, busy: Arc::new(AtomicBool::new(false)) });
    }
    Ok(schedules)
}

/// A component bound to a cron trigger: linked, with its export located once per loaded app.
struct Export {
    pre: ComponentPre,
    bindings: SpinCronPre<KilnState>,
    outbound: Arc<OutboundHttp>,
}

/// Locates `handle-cron-event` in every component bound to a cron trigger.
fn exports(app: &App) -> Result<HashMap<String, Export>> {
    let manifest = &app.manifest;
    let mut exports = HashMap::new();
    for trigger in &manifest.cron_triggers {
        let component = app
            .components
            .get(&trigger.component)
            .with_context(|| format!("component `{}` is not loaded", trigger.component))?;
        let bindings = SpinCronPre::new(component.pre.instance_pre().clone()).map_err(|err| {
            manifest.error_at(
                &trigger.component_span,
                format!(
                    "component `{}` is bound to a cron trigger but does not export `handle-cron-event` of `fermyon:spin-cron@2.0.0` (world spin-cron): {err}",
                    trigger.component
                ),
                "build the component against wit/spin-cron@2.0.0 (the Spin cron trigger plugin's cron.wit)",
            )
        })?;
        exports.insert(trigger.component.clone(), Export { pre: component.pre.clone(), bindings, outbound: component.outbound_http.clone() });
    }
    Ok(exports)
}

/// What every schedule loop of one app shares.
struct Shared {
    context: TriggerContext,
    /// Turns true when the shutdown grace period is over: runs still going are cut off.
    cut_off: watch::Receiver<bool>,
}

/// The running trigger of one app.
struct Running {
    stop: watch::Sender<bool>,
    cut_off: watch::Sender<bool>,
    loops: Vec<tokio::task::JoinHandle<()>>,
    /// One permit per schedule, held by its run.
    runs: Arc<Semaphore>,
    count: usize,
    described: Vec<String>,
    prefix: String,
}

impl RunningTrigger for Running {
    fn describe(&self) -> Vec<String> {
        self.described.clone()
    }

    /// Stops ticking; the drain lets runs in flight finish up to the grace period and cuts off the
    /// rest.
    fn stop(self: Box<Self>, grace: Duration) -> BoxFuture<'static, Draining> {
        let Running { stop, cut_off, loops, runs, count, prefix, .. } = *self;
        Box::pin(async move {
            let _ = stop.send(true);
            for task in loops {
                let _ = task.await;
            }
            Draining::new(async move {
                let all = count.max(1) as u32;
                if tokio::time::timeout(grace, runs.acquire_many(all)).await.is_err() {
                    tracing::warn!(target: "kiln::cron", "{prefix}shutdown grace period of {grace:?} elapsed; cutting off the cron runs still going");
                    let _ = cut_off.send(true);
                    let _ = tokio::time::timeout(Duration::from_secs(1), runs.acquire_many(all)).await;
                }
            })
        })
    }
}

/// What happens at a tick.
#[derive(Debug, PartialEq, Eq)]
pub(crate) enum TickAction {
    Run,
    /// The previous run is still going.
    Skip,
}

/// Claims the trigger for a run, or says the tick must be skipped.
pub(crate) fn claim(busy: &AtomicBool) -> TickAction {
    if busy.swap(true, Ordering::AcqRel) { TickAction::Skip } else { TickAction::Run }
}

/// Releases the claim when the run ends, however it ends (the task may be cut off at shutdown).
struct Claim(Arc<AtomicBool>);

impl Drop for Claim {
    fn drop(&mut self) {
        self.0.store(false, Ordering::Release);
    }
}

async fn schedule_loop(trigger: Arc<Schedule>, shared: Arc<Shared>, runs: Arc<Semaphore>, mut stop: watch::Receiver<bool>) {
    // Missed ticks are never replayed: the first tick is the next one from now.
    let mut after = Utc::now();
    loop {
        let Some(tick) = trigger.plan.next_after(after) else {
            tracing::info!(target: "kiln::cron", "cron {} [{}]: no further ticks", trigger.plan, trigger.component);
            return;
        };
        // Sleep in steps of at most a minute, so a wall-clock change is noticed.
        loop {
            let wait = (tick - Utc::now()).to_std().unwrap_or_default();
            if wait.is_zero() {
                break;
            }
            tokio::select! {
                biased;
                _ = stop.changed() => return,
                _ = tokio::time::sleep(wait.min(Duration::from_secs(60))) => {}
            }
        }
        if *stop.borrow() {
            return;
        }
        match claim(&trigger.busy) {
            TickAction::Skip => tracing::warn!(
                target: "kiln::cron",
                "{}[{}] cron {}: tick at {} skipped, the previous run is still going",
                shared.context.log_prefix(),
                trigger.component,
                trigger.plan,
                tick.format("%Y-%m-%dT%H:%M:%SZ")
            ),
            TickAction::Run => {
                let claim = Claim(trigger.busy.clone());
                match runs.clone().try_acquire_owned() {
                    Ok(permit) => {
                        let (trigger, shared) = (trigger.clone(), shared.clone());
                        tokio::spawn(async move {
                            let _held = (claim, permit);
                            run(&trigger, &shared, tick).await;
                        });
                    }
                    // One permit per trigger and this trigger holds none: only when shutting down.
                    Err(_) => drop(claim),
                }
            }
        }
        after = tick.max(Utc::now());
    }
}

async fn run(schedule: &Schedule, shared: &Shared, tick: DateTime<Utc>) {
    let started = Instant::now();
    let timestamp = u64::try_from(tick.timestamp()).unwrap_or_default();
    let mut cut_off = shared.cut_off.clone();
    let outcome = tokio::select! {
        outcome = run_on_current_app(schedule, shared, timestamp) => outcome,
        _ = cut_off.wait_for(|cut| *cut) => Err("cut off at shutdown".to_string()),
    };
    let elapsed = started.elapsed();
    let (prefix, ms) = (shared.context.log_prefix(), elapsed.as_secs_f64() * 1000.0);
    let event_outcome = match outcome {
        Ok(()) => {
            tracing::info!(target: "kiln::cron", "{prefix}cron {} [{}] ok {ms:.2}ms", schedule.plan, schedule.component);
            EventOutcome::Ok
        }
        Err(reason) => {
            tracing::warn!(target: "kiln::cron", "{prefix}[{}] cron {}: {reason} ({ms:.2}ms)", schedule.component, schedule.plan);
            EventOutcome::Failed
        }
    };
    if let Some(observer) = &shared.context.observer {
        observer.event("cron", &schedule.component, event_outcome, elapsed);
    }
}

/// One instance for one tick, on the app as its source has it now. `Err` is the one-line reason it
/// failed.
async fn run_on_current_app(schedule: &Schedule, shared: &Shared, timestamp: u64) -> Result<(), String> {
    let app = shared.context.source.load().await.map_err(|err| format!("cannot load the app: {err:#}"))?;
    let exports = app.trigger_exports("cron", exports).map_err(|err| format!("{err:#}"))?;
    let export = exports
        .get(&schedule.component)
        .ok_or_else(|| format!("the app's current version has no cron-bound component `{}`", schedule.component))?;
    let bindings = export.bindings.clone();
    let outcome = export
        .pre
        .run(shared.context.limits.instance, export.outbound.hooks(), move |store| {
            Box::pin(async move {
                let guest = bindings.instantiate_async(&mut *store).await?;
                guest.call_handle_cron_event(&mut *store, Metadata { timestamp }).await
            })
        })
        .await;
    match outcome {
        Ok(Ok(())) => Ok(()),
        Ok(Err(CronError::Other(message))) => Err(format!("the handler returned an error: {}", one_line(&message))),
        Err(failure) => Err(failure.to_string()),
    }
}

/// A guest's message on one line of bounded length.
fn one_line(message: &str) -> String {
    let line: String = message.lines().next().unwrap_or_default().chars().take(500).collect();
    if line.len() < message.len() { format!("{line}…") } else { line }
}

#[cfg(test)]
mod tests;
