//! The NATS trigger: `[[trigger.nats]] subject, component, queue_group, durable` → one fresh
//! instance per message calling `wasi:messaging/incoming-handler@0.2.0-draft#handle`.
//!
//! Runs on its own multi-threaded tokio runtime (one thread per core by default). Every message:
//! a permit (at most `max_concurrency` instances of the app's NATS triggers at once; further
//! messages wait in the broker) → a fresh store with the per-instance deadline and memory limit →
//! `handle(message)` → one log line (`nats orders.created 7.1ms [component]`, target `kiln::nats`).
//!
//! Plain subscriptions are at most once: a failed handler is logged. `durable = "name"` triggers are
//! at least once: ack after `handle` returned `ok`, redelivery after an error, a trap or the
//! deadline, and after `max_deliver` deliveries the message goes to `kiln.dlq.<name>` (see
//! kiln-messaging). [`Running::shutdown`] stops taking messages, lets in-flight handlers finish
//! within the grace period, and never acks a message whose handler did not finish.

use anyhow::{Context, Result};
use kiln_app::App;
use kiln_cap_messaging::bindings::MessagingRequestReplyPre;
use kiln_cap_messaging::{GuestMessage, MessagingInstance};
use kiln_engine::{ComponentPre, InstanceLimits, KilnState};
use kiln_messaging::{Broker, Delivery, DurableConsumer, DurableOptions, FailOutcome, Message, Subscription};
use std::sync::Arc;
use std::time::{Duration, Instant};
use tokio::sync::{Semaphore, watch};
use tokio::task::JoinSet;

/// Settings of the NATS trigger for one app.
#[derive(Clone, Debug)]
pub struct MessagingOptions {
    /// A handler still running after this long is cut off (and, for durable triggers, redelivered).
    pub deadline: Duration,
    /// Linear memory limit per instance, in bytes.
    pub memory_limit: usize,
    /// Instances of the app's NATS triggers running at once.
    pub max_concurrency: usize,
    /// On shutdown, how long in-flight handlers may take to finish.
    pub grace: Duration,
    /// Deliveries of a durable trigger's message before it is dead-lettered.
    pub max_deliver: u32,
    /// Delay before a failed durable message is redelivered.
    pub redelivery_delay: Duration,
    /// Threads of the trigger's runtime (0: one per core).
    pub workers: usize,
}

impl Default for MessagingOptions {
    fn default() -> Self {
        MessagingOptions {
            deadline: Duration::from_secs(30),
            memory_limit: 128 << 20,
            max_concurrency: 100,
            grace: Duration::from_secs(10),
            max_deliver: 5,
            redelivery_delay: Duration::from_secs(1),
            workers: 0,
        }
    }
}

/// One `[[trigger.nats]]`, as started.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct TriggerInfo {
    pub component: String,
    pub subject: String,
    pub queue_group: Option<String>,
    pub durable: Option<String>,
}

/// A component that handles messages: linked, with its export located once.
struct NatsComponent {
    id: String,
    pre: ComponentPre,
    handler: MessagingRequestReplyPre<KilnState>,
    outbound: Arc<kiln_outbound_http::OutboundHttp>,
}

enum Source {
    Plain(Subscription),
    Durable(DurableConsumer),
}

/// The running NATS trigger.
pub struct Running {
    thread: Option<std::thread::JoinHandle<()>>,
    stop: watch::Sender<bool>,
    triggers: Vec<TriggerInfo>,
    broker: String,
}

impl Running {
    /// The triggers being served, for the startup banner.
    pub fn triggers(&self) -> &[TriggerInfo] {
        &self.triggers
    }

    /// `in-process` or the NATS URL (without credentials).
    pub fn broker(&self) -> &str {
        &self.broker
    }

    /// Stops taking messages, lets in-flight handlers finish (up to the grace period; then they are
    /// cut off, and their durable messages are not acked), and returns. Blocking.
    pub fn shutdown(mut self) {
        self.stop_and_join();
    }

    fn stop_and_join(&mut self) {
        let _ = self.stop.send(true);
        if let Some(thread) = self.thread.take() {
            let _ = thread.join();
        }
    }
}

impl Drop for Running {
    fn drop(&mut self) {
        self.stop_and_join();
    }
}

/// Starts every `[[trigger.nats]]` of `app` on `broker` (the messaging capability's
/// [`kiln_cap_messaging::Messaging::broker`]). Subscriptions and JetStream consumers are set up
/// before this returns: a bad subject, a component without the export, or a JetStream error fails
/// here. Call it from synchronous code (it blocks on the setup). With no NATS triggers it returns a
/// `Running` that does nothing.
pub fn start(app: &App, broker: Broker, options: MessagingOptions) -> Result<Running> {
    let manifest = &app.manifest;
    let mut components: Vec<(Arc<NatsComponent>, &kiln_manifest::NatsTrigger)> = Vec::new();
    for trigger in &manifest.nats_triggers {
        let component = match components.iter().find(|(c, _)| c.id == trigger.component) {
            Some((c, _)) => c.clone(),
            None => {
                let loaded = app.components.get(&trigger.component).with_context(|| format!("component `{}` is not loaded", trigger.component))?;
                let handler = MessagingRequestReplyPre::new(loaded.pre.instance_pre().clone()).map_err(|err| {
                    anyhow::anyhow!(
                        "component `{}` is bound to a NATS trigger but does not export `wasi:messaging/incoming-handler@0.2.0-draft`: {err}",
                        trigger.component
                    )
                })?;
                Arc::new(NatsComponent { id: trigger.component.clone(), pre: loaded.pre.clone(), handler, outbound: loaded.outbound_http.clone() })
            }
        };
        kiln_messaging::subject::check_pattern(&trigger.subject)
            .map_err(|e| manifest.error_at(&trigger.component_span, format!("NATS trigger for `{}`: {e}", trigger.component), "subjects look like `orders.created`, `orders.*` or `orders.>`"))?;
        components.push((component, trigger));
    }
    let triggers: Vec<TriggerInfo> = components
        .iter()
        .map(|(c, t)| TriggerInfo { component: c.id.clone(), subject: t.subject.clone(), queue_group: t.queue_group.clone(), durable: t.durable.clone() })
        .collect();
    let (stop, stop_rx) = watch::channel(false);
    let described = broker.describe();
    if triggers.is_empty() {
        return Ok(Running { thread: None, stop, triggers, broker: described });
    }
    let workers = if options.workers == 0 { std::thread::available_parallelism().map(|n| n.get()).unwrap_or(1) } else { options.workers };
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(workers)
        .thread_name("kiln-nats")
        .enable_all()
        .build()
        .context("cannot start the NATS trigger's runtime")?;
    let durable_options = DurableOptions {
        max_deliver: options.max_deliver.max(1),
        // The broker must not redeliver while the handler may still be running.
        ack_wait: options.deadline + Duration::from_secs(30),
        redelivery_delay: options.redelivery_delay,
        batch: options.max_concurrency.clamp(1, 256),
    };
    let sources = runtime.block_on(async {
        let mut sources = Vec::new();
        for (component, trigger) in &components {
            let source = match &trigger.durable {
                Some(name) => Source::Durable(broker.durable(&trigger.subject, name, durable_options.clone()).await.with_context(|| format!("NATS trigger `{}` (durable `{name}`) for `{}`", trigger.subject, component.id))?),
                None => Source::Plain(broker.subscribe(&trigger.subject, trigger.queue_group.as_deref()).await.with_context(|| format!("NATS trigger `{}` for `{}`", trigger.subject, component.id))?),
            };
            sources.push((component.clone(), source));
        }
        anyhow::Ok(sources)
    })?;
    let permits = Arc::new(Semaphore::new(options.max_concurrency.max(1)));
    let thread = std::thread::Builder::new()
        .name("kiln-nats-main".into())
        .spawn(move || {
            runtime.block_on(run(sources, options, permits, stop_rx));
            // Handlers cut off after the grace period are already aborted; nothing else is left.
            runtime.shutdown_timeout(Duration::from_secs(1));
        })
        .context("cannot start the NATS trigger's thread")?;
    Ok(Running { thread: Some(thread), stop, triggers, broker: described })
}

async fn run(sources: Vec<(Arc<NatsComponent>, Source)>, options: MessagingOptions, permits: Arc<Semaphore>, stop: watch::Receiver<bool>) {
    let mut loops = JoinSet::new();
    for (component, source) in sources {
        loops.spawn(serve(component, source, options.clone(), permits.clone(), stop.clone()));
    }
    while loops.join_next().await.is_some() {}
}

/// Takes messages from one trigger's source until shutdown, runs each on its own task, and on
/// shutdown waits for those tasks up to the grace period.
async fn serve(component: Arc<NatsComponent>, mut source: Source, options: MessagingOptions, permits: Arc<Semaphore>, mut stop: watch::Receiver<bool>) {
    let mut inflight = JoinSet::new();
    loop {
        // A permit before a message: while every instance is busy the broker keeps the messages.
        let permit = tokio::select! {
            biased;
            _ = stop.changed() => break,
            permit = permits.clone().acquire_owned() => match permit {
                Ok(permit) => permit,
                Err(_) => break,
            },
        };
        let next = tokio::select! {
            biased;
            _ = stop.changed() => break,
            next = next_message(&mut source) => next,
        };
        let Some((message, delivery)) = next else {
            tracing::warn!("[{}] the broker closed the subscription; this NATS trigger stops", component.id);
            break;
        };
        let component = component.clone();
        let options = options.clone();
        inflight.spawn(async move {
            handle(&component, &options, message, delivery).await;
            drop(permit);
        });
        // Reap finished tasks so the set does not grow.
        while inflight.try_join_next().is_some() {}
    }
    // Stop fetching: a durable consumer's buffered, unstarted messages are never acked (redelivered).
    drop(source);
    if inflight.is_empty() {
        return;
    }
    let grace = options.grace;
    if tokio::time::timeout(grace, async { while inflight.join_next().await.is_some() {} }).await.is_err() {
        tracing::warn!("[{}] shutdown grace period of {grace:?} elapsed; cutting off {} handler(s) (their messages are not acked)", component.id, inflight.len());
        inflight.abort_all();
        while inflight.join_next().await.is_some() {}
    }
}

async fn next_message(source: &mut Source) -> Option<(Message, Option<Delivery>)> {
    match source {
        Source::Plain(sub) => sub.next().await.map(|m| (m, None)),
        Source::Durable(consumer) => {
            let mut delivery = consumer.next().await?;
            let message = std::mem::take(&mut delivery.message);
            Some((message, Some(delivery)))
        }
    }
}

/// Runs one message through one instance, settles a durable delivery, logs one line.
async fn handle(component: &NatsComponent, options: &MessagingOptions, message: Message, delivery: Option<Delivery>) {
    let started = Instant::now();
    let subject = message.subject.clone();
    if let Some(d) = &delivery {
        // Delivered more often than allowed without being settled (a host died mid-handler):
        // dead-letter without running it again.
        if d.attempt > d.max_deliver {
            let Some(mut d) = delivery else { return };
            d.message = message;
            let attempts = d.attempt;
            let result = d.dead_letter(&format!("delivered {attempts} times without being acknowledged")).await;
            tracing::warn!(target: "kiln::nats", "nats {subject} [{}] {}", component.id, settle_text(&result.map(Some)));
            return;
        }
    }
    let outcome = run_instance(component, options, &message).await;
    let elapsed = started.elapsed().as_secs_f64() * 1000.0;
    let settled = match (delivery, &outcome) {
        (None, _) => None,
        (Some(d), Ok(())) => Some(d.ack().await.map(|()| None)),
        (Some(mut d), Err(reason)) => {
            d.message = message;
            Some(d.fail(reason).await.map(Some))
        }
    };
    let suffix = settled.as_ref().map(settle_text).unwrap_or_default();
    match outcome {
        Ok(()) if settled.as_ref().is_none_or(|s| s.is_ok()) => {
            tracing::info!(target: "kiln::nats", "nats {subject} {elapsed:.1}ms [{}]{suffix}", component.id)
        }
        Ok(()) => tracing::warn!(target: "kiln::nats", "nats {subject} {elapsed:.1}ms [{}]{suffix}", component.id),
        Err(reason) => tracing::warn!(target: "kiln::nats", "nats {subject} {elapsed:.1}ms [{}] error: {reason}{suffix}", component.id),
    }
}

fn settle_text(result: &Result<Option<FailOutcome>, kiln_messaging::MessagingError>) -> String {
    match result {
        Ok(None) => String::new(),
        Ok(Some(FailOutcome::Redeliver { next_attempt })) => format!(" (will be redelivered: delivery {next_attempt})"),
        Ok(Some(FailOutcome::DeadLettered { subject })) => format!(" (dead-lettered to {subject})"),
        Err(err) => format!(" (could not settle the message, the broker will redeliver it: {err})"),
    }
}

/// One instance, start to end: `Ok` when `handle` returned `ok`, else the one-line reason.
async fn run_instance(component: &NatsComponent, options: &MessagingOptions, message: &Message) -> Result<(), String> {
    let limits = InstanceLimits { deadline: options.deadline, memory_limit: options.memory_limit };
    let (handler, message) = (component.handler.clone(), GuestMessage::from_broker(message));
    let outcome = component
        .pre
        .run(limits, component.outbound.hooks(), move |store| {
            Box::pin(async move {
                let instance = handler.instantiate_async(&mut *store).await?;
                let resource = store
                    .data_mut()
                    .capability::<MessagingInstance>()
                    .push_message(message)
                    .map_err(|e| wasmtime::Error::msg(format!("cannot pass the message: {}", error_text(&e))))?;
                instance.wasi_messaging_incoming_handler().call_handle(&mut *store, resource).await
            })
        })
        .await;
    match outcome {
        Ok(Ok(())) => Ok(()),
        Ok(Err(err)) => Err(format!("the component returned an error: {}", error_text(&err))),
        Err(failure) => Err(failure.to_string()),
    }
}

fn error_text(err: &kiln_cap_messaging::bindings::wasi::messaging::types::Error) -> String {
    use kiln_cap_messaging::bindings::wasi::messaging::types::Error;
    let text = match err {
        Error::Timeout => "timeout".to_string(),
        Error::Connection(s) => format!("connection: {s}"),
        Error::PermissionDenied(s) => format!("permission denied: {s}"),
        Error::Other(s) => s.clone(),
    };
    text.lines().next().unwrap_or_default().chars().take(500).collect()
}

/// Checks the app's NATS triggers without starting anything (subjects, durable names, components
/// present): for `kiln up` to fail early with a located error.
pub fn check_triggers(manifest: &kiln_manifest::Manifest) -> Result<()> {
    for trigger in &manifest.nats_triggers {
        if !manifest.components.contains_key(&trigger.component) {
            return Err(manifest.error_at(&trigger.component_span, format!("NATS trigger: no component `{}`", trigger.component), "name a component defined in this manifest").into());
        }
        kiln_messaging::subject::check_pattern(&trigger.subject)
            .map_err(|e| manifest.error_at(&trigger.component_span, format!("NATS trigger for `{}`: {e}", trigger.component), "subjects look like `orders.created`, `orders.*` or `orders.>`"))?;
        for (what, name) in [("queue_group", &trigger.queue_group), ("durable", &trigger.durable)] {
            if let Some(name) = name
                && (name.is_empty() || !name.chars().all(|c| c.is_ascii_alphanumeric() || c == '-' || c == '_')) {
                    return Err(manifest.error_at(&trigger.component_span, format!("NATS trigger for `{}`: invalid {what} `{name}`", trigger.component), "use letters, digits, `-` and `_`").into());
                }
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests;
