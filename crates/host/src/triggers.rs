//! The triggers `kiln` serves. Adding one: its crate, and one line in each list here.

use anyhow::{Context, Result};
use kiln_app::Trigger;
use kiln_trigger_http::HttpListener;
use kiln_trigger_messaging::{NatsTrigger, Redelivery};

/// `kiln up`'s triggers, HTTP last (see [`crate::Prepared::start`]). The NATS trigger's redelivery settings come from
/// the messaging capability's runtime config.
pub fn all(http: HttpListener, messaging: &kiln_cap_messaging::Messaging) -> Vec<Box<dyn Trigger>> {
    let mut triggers = events(messaging);
    // Not in `events`: an app on a shared `kiln serve` host may not watch the host's directories.
    triggers.push(Box::new(kiln_trigger_directory::DirectoryTrigger));
    triggers.push(Box::new(http));
    triggers
}

/// The event triggers: `kiln serve` starts them per app (its front serves HTTP for every app).
pub fn events(messaging: &kiln_cap_messaging::Messaging) -> Vec<Box<dyn Trigger>> {
    let redelivery = Redelivery { max_deliver: messaging.max_deliver().unwrap_or(5), ..Redelivery::default() };
    vec![
        Box::new(kiln_trigger_redis::RedisTrigger),
        Box::new(kiln_trigger_cron::CronTrigger),
        Box::new(NatsTrigger { redelivery }),
    ]
}

/// The runtime every app's event triggers run on: one thread per core, made once per process.
pub fn event_runtime() -> Result<tokio::runtime::Runtime> {
    tokio::runtime::Builder::new_multi_thread()
        .worker_threads(std::thread::available_parallelism().map(|n| n.get()).unwrap_or(1))
        .thread_name("kiln-events")
        .enable_all()
        .build()
        .context("cannot start the event triggers' runtime")
}
