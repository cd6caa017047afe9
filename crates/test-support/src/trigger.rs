//! A trigger started as `kiln up` starts it (on an event runtime of its own, with the app resident),
//! for the trigger crates' tests.

use kiln_app::{App, RunningTrigger, Trigger, TriggerContext, TriggerLimits};
use kiln_engine::InstanceLimits;
use std::sync::Arc;
use std::time::Duration;

/// A started trigger and the runtime it runs on.
pub struct StartedTrigger {
    pub running: Box<dyn RunningTrigger>,
    runtime: tokio::runtime::Runtime,
    grace: Duration,
}

impl StartedTrigger {
    /// Starts `trigger` for `app`: instances get `deadline` and `memory_limit` bytes, at most
    /// `max_concurrency` at once; [`shutdown`](Self::shutdown) allows `grace`.
    pub fn start(trigger: &dyn Trigger, app: Arc<App>, deadline: Duration, memory_limit: usize, max_concurrency: usize, grace: Duration) -> anyhow::Result<StartedTrigger> {
        let runtime = tokio::runtime::Builder::new_multi_thread().worker_threads(2).enable_all().build()?;
        let limits = TriggerLimits { instance: InstanceLimits { deadline, memory_limit }, max_concurrency };
        let context = TriggerContext::resident(app.clone(), limits, runtime.handle().clone());
        let running = trigger.start(&app, context)?;
        Ok(StartedTrigger { running, runtime, grace })
    }

    /// Stops taking events, waits for those in flight up to the grace period, cuts off the rest.
    pub fn shutdown(self) {
        self.runtime.block_on(self.running.shutdown(self.grace));
    }
}
