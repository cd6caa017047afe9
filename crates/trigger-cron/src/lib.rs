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
use kiln_app::App;
use kiln_engine::{ComponentPre, InstanceLimits, KilnState};
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

/// Settings of the cron trigger for one app.
#[derive(Clone, Debug)]
pub struct CronOptions {
    /// A run still going after this long is cut off.
    pub deadline: Duration,
    /// Linear memory limit per instance, in bytes.
    pub memory_limit: usize,
    /// On shutdown, how long in-flight runs may take to finish.
    pub grace: Duration,
}

impl Default for CronOptions {
    fn default() -> Self {
        CronOptions { deadline: Duration::from_secs(30), memory_limit: 128 << 20, grace: Duration::from_secs(10) }
    }
}

/// Checks every `[[trigger.cron]]` schedule, reporting the first bad one at its place in the file.
/// Cheap: call it before compiling anything.
pub fn check_schedules(manifest: &Manifest) -> Result<()> {
    for trigger in &manifest.cron_triggers {
        Plan::from_manifest(manifest, trigger)?;
    }
    Ok(())
}

/// One trigger, ready to run.
struct Trigger {
    component: String,
    plan: Plan,
    pre: ComponentPre,
    bindings: SpinCronPre<KilnState>,
    outbound: Arc<OutboundHttp>,
    /// Whether a run is going (runs of one trigger never overlap).
    busy: Arc<AtomicBool>,
}

/// The running trigger. [`Running::shutdown`] stops it.
pub struct Running {
    runtime: Option<tokio::runtime::Runtime>,
    stop: watch::Sender<bool>,
    loops: Vec<tokio::task::JoinHandle<()>>,
    /// One permit per trigger, held by its run.
    runs: Arc<Semaphore>,
    triggers: usize,
    grace: Duration,
    schedules: Vec<(String, String)>,
}

/// Starts the app's cron triggers. With no `[[trigger.cron]]` it starts nothing.
pub fn start(app: &App, options: CronOptions) -> Result<Running> {
    let (stop, stop_rx) = watch::channel(false);
    let manifest = &app.manifest;
    let mut triggers = Vec::new();
    for trigger in &manifest.cron_triggers {
        let plan = Plan::from_manifest(manifest, trigger)?;
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
        triggers.push(Arc::new(Trigger {
            component: trigger.component.clone(),
            plan,
            pre: component.pre.clone(),
            bindings,
            outbound: component.outbound_http.clone(),
            busy: Arc::new(AtomicBool::new(false)),
        }));
    }
    let schedules = triggers.iter().map(|t| (t.component.clone(), t.plan.to_string())).collect();
    let count = triggers.len();
    let runs = Arc::new(Semaphore::new(count.max(1)));
    if triggers.is_empty() {
        return Ok(Running { runtime: None, stop, loops: Vec::new(), runs, triggers: 0, grace: options.grace, schedules });
    }
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(count.min(std::thread::available_parallelism().map(|n| n.get()).unwrap_or(1)).max(1))
        .thread_name("kiln-cron")
        .enable_all()
        .build()
        .context("cannot start the cron trigger's runtime")?;
    let options = Arc::new(options);
    let loops = triggers
        .into_iter()
        .map(|trigger| {
            tracing::info!(target: "kiln::cron", "cron {} [{}] scheduled", trigger.plan, trigger.component);
            runtime.spawn(schedule_loop(trigger, options.clone(), runs.clone(), stop_rx.clone()))
        })
        .collect();
    Ok(Running { runtime: Some(runtime), stop, loops, runs, triggers: count, grace: options.grace, schedules })
}

impl Running {
    /// `(component, schedule)` of every trigger, for the startup banner.
    pub fn schedules(&self) -> &[(String, String)] {
        &self.schedules
    }

    /// Stops ticking, lets runs in flight finish up to the grace period, cuts off the rest and
    /// returns. Blocking: call it from a thread that is not running a tokio runtime.
    pub fn shutdown(mut self) {
        let _ = self.stop.send(true);
        let Some(runtime) = self.runtime.take() else {
            return;
        };
        let loops = std::mem::take(&mut self.loops);
        let (runs, count, grace) = (self.runs.clone(), self.triggers as u32, self.grace);
        runtime.block_on(async {
            for task in loops {
                let _ = task.await;
            }
            if tokio::time::timeout(grace, runs.acquire_many(count)).await.is_err() {
                tracing::warn!(target: "kiln::cron", "shutdown grace period of {grace:?} elapsed; cutting off the cron runs still going");
            }
        });
        runtime.shutdown_timeout(Duration::from_secs(1));
    }
}

impl Drop for Running {
    fn drop(&mut self) {
        let _ = self.stop.send(true);
        if let Some(runtime) = self.runtime.take() {
            runtime.shutdown_background();
        }
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

async fn schedule_loop(trigger: Arc<Trigger>, options: Arc<CronOptions>, runs: Arc<Semaphore>, mut stop: watch::Receiver<bool>) {
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
                "[{}] cron {}: tick at {} skipped, the previous run is still going",
                trigger.component,
                trigger.plan,
                tick.format("%Y-%m-%dT%H:%M:%SZ")
            ),
            TickAction::Run => {
                let claim = Claim(trigger.busy.clone());
                match runs.clone().try_acquire_owned() {
                    Ok(permit) => {
                        let (trigger, options) = (trigger.clone(), options.clone());
                        tokio::spawn(async move {
                            let _held = (claim, permit);
                            run(&trigger, &options, tick).await;
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

async fn run(trigger: &Trigger, options: &CronOptions, tick: DateTime<Utc>) {
    let started = Instant::now();
    let timestamp = u64::try_from(tick.timestamp()).unwrap_or_default();
    let outcome = run_instance(trigger, options, timestamp).await;
    let elapsed = started.elapsed().as_secs_f64() * 1000.0;
    match outcome {
        Ok(()) => tracing::info!(target: "kiln::cron", "cron {} [{}] ok {elapsed:.2}ms", trigger.plan, trigger.component),
        Err(reason) => tracing::warn!(target: "kiln::cron", "[{}] cron {}: {reason} ({elapsed:.2}ms)", trigger.component, trigger.plan),
    }
}

/// One instance for one tick. `Err` is the one-line reason it failed.
async fn run_instance(trigger: &Trigger, options: &CronOptions, timestamp: u64) -> Result<(), String> {
    let limits = InstanceLimits { deadline: options.deadline, memory_limit: options.memory_limit };
    let bindings = trigger.bindings.clone();
    let outcome = trigger
        .pre
        .run(limits, trigger.outbound.hooks(), move |store| {
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
