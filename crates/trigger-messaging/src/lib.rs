//! The NATS trigger: `[[trigger.nats]] subject, component, queue_group, durable` → one fresh
//! instance per message calling `wasi:messaging/incoming-handler@0.2.0-draft#handle`, or, for a
//! wasmCloud component, `wasmcloud:messaging/handler@0.2.0#handle-message` (an `err(string)` is a
//! failure like `wasi:messaging`'s `error`).
//!
//! Runs on the host's event runtime. Every message:
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
use kiln_app::{App, BoxFuture, Draining, EventOutcome, RunningTrigger, Trigger, TriggerContext, TriggerLimits};
use kiln_cap_messaging::bindings::MessagingRequestReplyPre;
use kiln_cap_messaging::wasmcloud::BrokerMessage;
use kiln_cap_messaging::wasmcloud::bindings::HandlerPre as WasmCloudHandlerPre;
use kiln_cap_messaging::{GuestMessage, MessagingApp, MessagingInstance};
use kiln_engine::{ComponentPre, KilnState};
use kiln_manifest::Manifest;
use kiln_messaging::{Broker, Delivery, DurableConsumer, DurableOptions, FailOutcome, Message, Subscription};
use std::collections::HashMap;
use std::sync::Arc;
use std::time::{Duration, Instant};
use tokio::sync::{Semaphore, watch};
use tokio::task::JoinSet;

/// How durable (JetStream) triggers settle failed messages: the runtime config's `[messaging]`
/// section (`max_deliver`), handed to the trigger when the host starts.
#[derive(Clone, Debug)]
pub struct Redelivery {
    /// Deliveries of a durable trigger's message before it is dead-lettered.
    pub max_deliver: u32,
    /// Delay before a failed durable message is redelivered.
    pub delay: Duration,
}

impl Default for Redelivery {
    fn default() -> Self {
        Redelivery { max_deliver: 5, delay: Duration::from_secs(1) }
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

/// The NATS trigger, `[[trigger.nats]]`. Each app's messages come from the broker the messaging
/// capability chose for that app ([`MessagingApp::broker`]).
#[derive(Clone, Debug, Default)]
pub struct NatsTrigger {
    pub redelivery: Redelivery,
}

impl Trigger for NatsTrigger {
    fn kind(&self) -> &'static str {
        "nats"
    }

    fn is_used_by(&self, manifest: &Manifest) -> bool {
        !manifest.nats_triggers.is_empty()
    }

    fn check(&self, manifest: &Manifest) -> Result<()> {
        check_triggers(manifest)
    }

    fn plan(&self, app: &App, limits: &TriggerLimits) -> Result<String> {
        let broker = broker_of(app)?;
        app.trigger_exports("nats", exports)?;
        Ok(format!("{} {:?} {:?}", broker.describe(), infos(&app.manifest), limits))
    }

    /// Subscriptions and JetStream consumers are set up before this returns: a bad subject, a
    /// component without the export, or a JetStream error fails here. Blocks on the setup: call it
    /// from synchronous code or a blocking thread.
    fn start(&self, app: &App, context: TriggerContext) -> Result<Box<dyn RunningTrigger>> {
        check_triggers(&app.manifest)?;
        let broker = broker_of(app)?;
        app.trigger_exports("nats", exports)?;
        let triggers = infos(&app.manifest);
        let limits = context.limits;
        let durable_options = DurableOptions {
            max_deliver: self.redelivery.max_deliver.max(1),
            // The broker must not redeliver while the handler may still be running.
            ack_wait: limits.instance.deadline + Duration::from_secs(30),
            redelivery_delay: self.redelivery.delay,
            batch: limits.max_concurrency.clamp(1, 256),
        };
        let runtime = context.runtime.clone();
        let sources = runtime.block_on(async {
            let mut sources = Vec::new();
            for trigger in &triggers {
                let source = match &trigger.durable {
                    Some(name) => Source::Durable(broker.durable(&trigger.subject, name, durable_options.clone()).await.with_context(|| format!("NATS trigger `{}` (durable `{name}`) for `{}`", trigger.subject, trigger.component))?),
                    None => Source::Plain(broker.subscribe(&trigger.subject, trigger.queue_group.as_deref()).await.with_context(|| format!("NATS trigger `{}` for `{}`", trigger.subject, trigger.component))?),
                };
                sources.push((trigger.component.clone(), source));
            }
            anyhow::Ok(sources)
        })?;
        let (stop, stop_rx) = watch::channel(false);
        let prefix = context.log_prefix();
        let shared = Arc::new(Shared { context, permits: Arc::new(Semaphore::new(limits.max_concurrency.max(1))) });
        let loops = sources.into_iter().map(|(component, source)| runtime.spawn(serve(shared.clone(), component, source, stop_rx.clone()))).collect();
        Ok(Box::new(Running { stop, loops, prefix, triggers, broker: broker.describe(), health: broker.clone() }))
    }
}

/// The broker the messaging capability chose for `app`.
fn broker_of(app: &App) -> Result<Broker> {
    let messaging = app.capability::<MessagingApp>().context("the app is bound to NATS triggers but the host does not offer messaging")?;
    Ok(messaging.broker().clone())
}

fn infos(manifest: &Manifest) -> Vec<TriggerInfo> {
    manifest
        .nats_triggers
        .iter()
        .map(|t| TriggerInfo { component: t.component.clone(), subject: t.subject.clone(), queue_group: t.queue_group.clone(), durable: t.durable.clone() })
        .collect()
}

/// A component that handles messages: linked, with its export located once per loaded app.
struct NatsComponent {
    pre: ComponentPre,
    handler: Handler,
    outbound: Arc<kiln_outbound_http::OutboundHttp>,
}

/// The export a component handles messages with.
#[derive(Clone)]
enum Handler {
    /// `wasi:messaging/incoming-handler@0.2.0-draft`.
    Wasi(MessagingRequestReplyPre<KilnState>),
    /// `wasmcloud:messaging/handler@0.2.0`.
    WasmCloud(WasmCloudHandlerPre<KilnState>),
}

impl Handler {
    /// The component's `wasi:messaging` handler, else its `wasmCloud` one; the error names both.
    fn locate(pre: &wasmtime::component::InstancePre<KilnState>) -> Result<Handler, String> {
        let wasi_err = match MessagingRequestReplyPre::new(pre.clone()) {
            Ok(handler) => return Ok(Handler::Wasi(handler)),
            Err(err) => err,
        };
        WasmCloudHandlerPre::new(pre.clone())
            .map(Handler::WasmCloud)
            .map_err(|wasmcloud_err| format!("{wasi_err}; nor `wasmcloud:messaging/handler@0.2.0`: {wasmcloud_err}"))
    }
}

/// Locates `wasi:messaging/incoming-handler` in every component bound to a NATS trigger.
fn exports(app: &App) -> Result<HashMap<String, NatsComponent>> {
    let manifest = &app.manifest;
    let mut exports = HashMap::new();
    for trigger in &manifest.nats_triggers {
        if exports.contains_key(&trigger.component) {
            continue;
        }
        let loaded = app.components.get(&trigger.component).with_context(|| format!("component `{}` is not loaded", trigger.component))?;
        let handler = Handler::locate(loaded.pre.instance_pre()).map_err(|err| {
            manifest.error_at(
                &trigger.component_span,
                format!("component `{}` is bound to a NATS trigger but does not export `wasi:messaging/incoming-handler@0.2.0-draft`: {err}", trigger.component),
                "build the component against wit/messaging@0.2.0-draft (world messaging-request-reply), or wasmCloud's wasmcloud:messaging@0.2.0 (export handler)",
            )
        })?;
        exports.insert(trigger.component.clone(), NatsComponent { pre: loaded.pre.clone(), handler, outbound: loaded.outbound_http.clone() });
    }
    Ok(exports)
}

enum Source {
    Plain(Subscription),
    Durable(DurableConsumer),
}

/// What every subscription loop of one app shares.
struct Shared {
    context: TriggerContext,
    /// At most `max_concurrency` instances of the app's NATS triggers at once.
    permits: Arc<Semaphore>,
}

/// The running NATS trigger of one app.
struct Running {
    stop: watch::Sender<bool>,
    /// Each subscription's loop; it ends with the handlers it started that are still running.
    loops: Vec<tokio::task::JoinHandle<JoinSet<()>>>,
    prefix: String,
    triggers: Vec<TriggerInfo>,
    /// `in-process`, or the broker's URL (without credentials).
    broker: String,
    /// For [`RunningTrigger::state`]: whether the broker is reachable now.
    health: Broker,
}

impl RunningTrigger for Running {
    fn state(&self) -> String {
        match self.health.health() {
            Ok(()) => "ok".to_string(),
            Err(why) => why,
        }
    }

    fn describe(&self) -> Vec<String> {
        self.triggers
            .iter()
            .map(|t| {
                let mut line = format!("{}: nats subject `{}` on {}", t.component, t.subject, self.broker);
                if let Some(group) = &t.queue_group {
                    line.push_str(&format!(" (queue group `{group}`)"));
                }
                if let Some(durable) = &t.durable {
                    line.push_str(&format!(" (durable `{durable}`)"));
                }
                line
            })
            .collect()
    }

    /// Stops taking messages (a durable consumer's buffered, unstarted messages are never acked, so
    /// they are redelivered); the drain lets in-flight handlers finish up to the grace period, then
    /// cuts them off, and their durable messages are not acked.
    fn stop(self: Box<Self>, grace: Duration) -> BoxFuture<'static, Draining> {
        let Running { stop, loops, prefix, .. } = *self;
        Box::pin(async move {
            let _ = stop.send(true);
            let mut inflight = Vec::new();
            for task in loops {
                if let Ok(handlers) = task.await {
                    inflight.push(handlers);
                }
            }
            Draining::new(async move {
                let all = async {
                    for handlers in &mut inflight {
                        while handlers.join_next().await.is_some() {}
                    }
                };
                if tokio::time::timeout(grace, all).await.is_err() {
                    let left: usize = inflight.iter().map(JoinSet::len).sum();
                    tracing::warn!("{prefix}shutdown grace period of {grace:?} elapsed; cutting off {left} NATS handler(s) (their messages are not acked)");
                    for handlers in &mut inflight {
                        handlers.abort_all();
                        while handlers.join_next().await.is_some() {}
                    }
                }
            })
        })
    }
}

/// Takes messages from one trigger's source until stopped, runs each on its own task, and returns
/// the tasks still running.
async fn serve(shared: Arc<Shared>, component: String, mut source: Source, mut stop: watch::Receiver<bool>) -> JoinSet<()> {
    let mut inflight = JoinSet::new();
    let prefix = shared.context.log_prefix();
    loop {
        // A permit before a message: while every instance is busy the broker keeps the messages.
        let permit = tokio::select! {
            biased;
            _ = stop.changed() => break,
            permit = shared.permits.clone().acquire_owned() => match permit {
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
            tracing::warn!("{prefix}[{component}] the broker closed the subscription; this NATS trigger stops");
            break;
        };
        let (shared, component) = (shared.clone(), component.clone());
        inflight.spawn(async move {
            handle(&shared, &component, message, delivery).await;
            drop(permit);
        });
        // Reap finished tasks so the set does not grow.
        while inflight.try_join_next().is_some() {}
    }
    // Stop fetching: a durable consumer's buffered, unstarted messages are never acked (redelivered).
    drop(source);
    inflight
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
async fn handle(shared: &Shared, component: &str, message: Message, delivery: Option<Delivery>) {
    let started = Instant::now();
    let subject = message.subject.clone();
    let prefix = shared.context.log_prefix();
    if let Some(d) = &delivery {
        // Delivered more often than allowed without being settled (a host died mid-handler):
        // dead-letter without running it again.
        if d.attempt > d.max_deliver {
            let Some(mut d) = delivery else { return };
            d.message = message;
            let attempts = d.attempt;
            let result = d.dead_letter(&format!("delivered {attempts} times without being acknowledged")).await;
            tracing::warn!(target: "kiln::nats", "{prefix}nats {subject} [{component}] {}", settle_text(&result.map(Some)));
            return;
        }
    }
    let outcome = run_on_current_app(shared, component, &message).await;
    let elapsed = started.elapsed();
    let ms = elapsed.as_secs_f64() * 1000.0;
    let settled = match (delivery, &outcome) {
        (None, _) => None,
        (Some(d), Ok(())) => Some(d.ack().await.map(|()| None)),
        (Some(mut d), Err(reason)) => {
            d.message = message;
            Some(d.fail(reason).await.map(Some))
        }
    };
    let suffix = settled.as_ref().map(settle_text).unwrap_or_default();
    let event_outcome = if outcome.is_ok() { EventOutcome::Ok } else { EventOutcome::Failed };
    match outcome {
        Ok(()) if settled.as_ref().is_none_or(|s| s.is_ok()) => {
            tracing::info!(target: "kiln::nats", "{prefix}nats {subject} {ms:.1}ms [{component}]{suffix}")
        }
        Ok(()) => tracing::warn!(target: "kiln::nats", "{prefix}nats {subject} {ms:.1}ms [{component}]{suffix}"),
        Err(reason) => tracing::warn!(target: "kiln::nats", "{prefix}nats {subject} {ms:.1}ms [{component}] error: {reason}{suffix}"),
    }
    if let Some(observer) = &shared.context.observer {
        observer.event("nats", component, event_outcome, elapsed);
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

/// One instance, start to end, on the app as its source has it now: `Ok` when `handle` returned
/// `ok`, else the one-line reason.
async fn run_on_current_app(shared: &Shared, component: &str, message: &Message) -> Result<(), String> {
    let app = shared.context.source.load().await.map_err(|err| format!("cannot load the app: {err:#}"))?;
    let exports = app.trigger_exports("nats", exports).map_err(|err| format!("{err:#}"))?;
    let export = exports.get(component).ok_or_else(|| format!("the app's current version has no NATS-bound component `{component}`"))?;
    let outcome = match export.handler.clone() {
        Handler::Wasi(handler) => run_wasi(export, shared, handler, GuestMessage::from_broker(message)).await,
        Handler::WasmCloud(handler) => run_wasmcloud(export, shared, handler, BrokerMessage::from_broker(message)).await,
    };
    outcome.map_err(|failure| failure.to_string())?
}

type Outcome = Result<Result<(), String>, kiln_engine::InstanceFailure>;

async fn run_wasi(export: &NatsComponent, shared: &Shared, handler: MessagingRequestReplyPre<KilnState>, message: GuestMessage) -> Outcome {
    let outcome = export
        .pre
        .run(shared.context.limits.instance, export.outbound.hooks(), move |store| {
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
        .await?;
    Ok(outcome.map_err(|err| format!("the component returned an error: {}", error_text(&err))))
}

async fn run_wasmcloud(export: &NatsComponent, shared: &Shared, handler: WasmCloudHandlerPre<KilnState>, message: BrokerMessage) -> Outcome {
    let outcome = export
        .pre
        .run(shared.context.limits.instance, export.outbound.hooks(), move |store| {
            Box::pin(async move {
                let instance = handler.instantiate_async(&mut *store).await?;
                store.data_mut().capability::<MessagingInstance>().deliver_reply_to(message.reply_to.clone());
                instance.wasmcloud_messaging_handler().call_handle_message(&mut *store, &message).await
            })
        })
        .await?;
    Ok(outcome.map_err(|err| format!("the component returned an error: {}", one_line(&err))))
}

fn error_text(err: &kiln_cap_messaging::bindings::wasi::messaging::types::Error) -> String {
    use kiln_cap_messaging::bindings::wasi::messaging::types::Error;
    let text = match err {
        Error::Timeout => "timeout".to_string(),
        Error::Connection(s) => format!("connection: {s}"),
        Error::PermissionDenied(s) => format!("permission denied: {s}"),
        Error::Other(s) => s.clone(),
    };
    one_line(&text)
}

/// The first line of a guest's error, at most 500 characters.
fn one_line(text: &str) -> String {
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
