//! The Redis trigger: Spin's `[[trigger.redis]]`, one fresh component instance per pub/sub message.
//!
//! At start every trigger's `address` (else `[application.trigger.redis] address`) and `channel` are
//! rendered against the application's variables, and every bound component is checked for the
//! `fermyon:spin/inbound-redis` export. Then one task per distinct address keeps a pub/sub connection
//! subscribed to that address's channels: when Redis goes away it reconnects with backoff and
//! resubscribes (messages published meanwhile are lost, as pub/sub keeps nothing for absent
//! subscribers, and the gap is logged). Each message runs each component bound to its channel on its
//! own task, with the same deadline and memory limit as an HTTP request. The app is taken from the
//! trigger's [`kiln_app::AppSource`] for every message, so an idle app holds only its connections.

mod plan;
mod subscriber;

pub use plan::{ServerPlan, plan, redact};

use anyhow::{Context, Result};
use kiln_app::{App, BoxFuture, Draining, RunningTrigger, Trigger, TriggerContext, TriggerLimits};
use kiln_engine::{ComponentPre, InstanceLimits, KilnState};
use kiln_manifest::Manifest;
use kiln_outbound_http::OutboundHttp;
use std::collections::HashMap;
use std::sync::Arc;
use std::time::Duration;
use tokio::sync::{Semaphore, watch};

mod bindings {
    wasmtime::component::bindgen!({
        path: ["../../wit/spin@unversioned"],
        world: "fermyon:spin/redis-trigger",
        exports: { default: async },
    });
}

/// Spin 4's export (spin-sdk 7 `#[redis_subscriber]`): `handle-message` is an `async func`, called
/// inside the store's event loop; it needs the engine's component-model concurrency.
mod bindings_v3 {
    wasmtime::component::bindgen!({
        path: ["../../wit/spin-redis@3.0.0"],
        inline: "
            package kiln:redis-trigger-v3;
            world redis-trigger { export spin:redis/inbound-redis@3.0.0; }
        ",
        world: "kiln:redis-trigger-v3/redis-trigger",
        exports: { default: async | store },
    });
}

/// The handler export a component bound to a Redis trigger has.
#[derive(Clone)]
enum Export {
    /// `fermyon:spin/inbound-redis` (spin-sdk 2–5).
    Spin2(bindings::RedisTriggerPre<KilnState>),
    /// `spin:redis/inbound-redis@3.0.0` (spin-sdk 7).
    Spin3(bindings_v3::RedisTriggerPre<KilnState>),
}

/// One subscription, for the startup banner.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Subscription {
    /// The address with any password removed.
    pub address: String,
    pub channel: String,
    pub component: String,
}

/// A component bound to a Redis trigger: linked, with its export located once per loaded app.
pub(crate) struct Handler {
    pre: ComponentPre,
    export: Export,
    outbound: Arc<OutboundHttp>,
}

/// The Redis-bound components of one loaded app, by id.
pub(crate) type Handlers = HashMap<String, Handler>;

/// What every subscriber task shares.
pub(crate) struct Shared {
    pub(crate) context: TriggerContext,
    pub(crate) permits: Arc<Semaphore>,
    /// Turns true when the shutdown grace period is over: handlers still running are cut off.
    pub(crate) cut_off: watch::Receiver<bool>,
}

/// Spin's Redis trigger, `[[trigger.redis]]`.
pub struct RedisTrigger;

impl Trigger for RedisTrigger {
    fn kind(&self) -> &'static str {
        "redis"
    }

    fn is_used_by(&self, manifest: &Manifest) -> bool {
        !manifest.redis_triggers.is_empty()
    }

    fn check(&self, manifest: &Manifest) -> Result<()> {
        check(manifest)
    }

    fn plan(&self, app: &App, limits: &TriggerLimits) -> Result<String> {
        let servers = plan(&app.manifest, &app.variables)?;
        app.trigger_exports("redis", handlers)?;
        Ok(format!("{servers:?} {:?}", limits))
    }

    fn probe(&self, app: &App) -> Result<()> {
        for server in plan(&app.manifest, &app.variables)? {
            let shown = redact(&server.address);
            let client = redis::Client::open(server.address.as_str())?;
            let mut connection = client
                .get_connection_with_timeout(Duration::from_secs(3))
                .with_context(|| format!("the Redis trigger cannot reach {shown}"))?;
            redis::cmd("PING").query::<String>(&mut connection).with_context(|| format!("the Redis trigger cannot reach {shown}"))?;
        }
        Ok(())
    }

    /// Errors (an address that cannot be rendered or parsed, a component without the export) stop
    /// here, before anything connects; Redis being unreachable is not an error: the trigger keeps
    /// trying.
    fn start(&self, app: &App, context: TriggerContext) -> Result<Box<dyn RunningTrigger>> {
        let servers = plan(&app.manifest, &app.variables)?;
        app.trigger_exports("redis", handlers)?;
        let mut subscriptions = Vec::new();
        for server in &servers {
            for (channel, components) in &server.channels {
                for component in components {
                    subscriptions.push(Subscription { address: redact(&server.address), channel: channel.clone(), component: component.clone() });
                }
            }
        }
        // rustls needs a process-wide crypto provider for `rediss://`; install ring's unless one is set.
        if rustls::crypto::CryptoProvider::get_default().is_none() {
            let _ = rustls::crypto::ring::default_provider().install_default();
        }
        let (stop, stop_rx) = watch::channel(false);
        let (cut_off, cut_off_rx) = watch::channel(false);
        let max_concurrency = context.limits.max_concurrency.clamp(1, Semaphore::MAX_PERMITS);
        let runtime = context.runtime.clone();
        let shared = Arc::new(Shared { context, permits: Arc::new(Semaphore::new(max_concurrency)), cut_off: cut_off_rx });
        let state = Arc::new(std::sync::Mutex::new(String::from("ok")));
        let subscribers = servers
            .into_iter()
            .map(|server| runtime.spawn(subscriber::run(shared.clone(), server, stop_rx.clone(), state.clone())))
            .collect();
        Ok(Box::new(Running { stop, cut_off, subscribers, shared, subscriptions, state }))
    }
}

/// Checks every `[[trigger.redis]]` names an address (its own or the application's) and a channel,
/// before anything is loaded.
fn check(manifest: &Manifest) -> Result<()> {
    for trigger in &manifest.redis_triggers {
        if trigger.address.is_none() && manifest.application.redis_address.is_none() {
            return Err(manifest
                .error_at(
                    &trigger.component_span,
                    format!("the Redis trigger for component `{}` (channel `{}`) has no Redis address", trigger.component, trigger.channel),
                    "set `address = \"redis://host:6379\"` under [application.trigger.redis], or in the [[trigger.redis]] table",
                )
                .into());
        }
    }
    Ok(())
}

/// Locates the export of every component bound to a Redis trigger; errors point at the trigger.
fn handlers(app: &App) -> Result<Handlers> {
    let manifest = &app.manifest;
    let mut handlers = HashMap::new();
    for trigger in &manifest.redis_triggers {
        if handlers.contains_key(&trigger.component) {
            continue;
        }
        let component = app
            .components
            .get(&trigger.component)
            .with_context(|| format!("component `{}` is not loaded", trigger.component))?;
        let handler = handler(&trigger.component, &component.pre, &component.outbound_http)
            .map_err(|err| manifest.error_at(&trigger.component_span, format!("{err:#}"), "build the component with a Redis trigger SDK (spin-sdk 5's `#[redis_component]` or spin-sdk 7's `#[redis_subscriber]`)"))?;
        handlers.insert(trigger.component.clone(), handler);
    }
    Ok(handlers)
}

/// The running trigger of one app.
struct Running {
    stop: watch::Sender<bool>,
    cut_off: watch::Sender<bool>,
    subscribers: Vec<tokio::task::JoinHandle<()>>,
    shared: Arc<Shared>,
    subscriptions: Vec<Subscription>,
    /// `ok`, or why a subscription is down.
    state: Arc<std::sync::Mutex<String>>,
}

impl RunningTrigger for Running {
    fn describe(&self) -> Vec<String> {
        self.subscriptions.iter().map(|s| format!("{}: redis channel `{}` on {}", s.component, s.channel, s.address)).collect()
    }

    fn state(&self) -> String {
        self.state.lock().unwrap_or_else(|poisoned| poisoned.into_inner()).clone()
    }

    /// Stops taking messages (unsubscribes); the drain lets in-flight handlers finish up to the
    /// grace period and cuts off the rest.
    fn stop(self: Box<Self>, grace: Duration) -> BoxFuture<'static, Draining> {
        let Running { stop, cut_off, subscribers, shared, .. } = *self;
        Box::pin(async move {
            let _ = stop.send(true);
            let deadline = tokio::time::Instant::now() + grace;
            for subscriber in subscribers {
                let _ = tokio::time::timeout_at(deadline, subscriber).await;
            }
            Draining::new(async move {
                let all = shared.context.limits.max_concurrency.clamp(1, Semaphore::MAX_PERMITS) as u32;
                if tokio::time::timeout_at(deadline, shared.permits.acquire_many(all)).await.is_err() {
                    tracing::warn!(target: "kiln::redis", "{}shutdown grace period of {grace:?} elapsed; cutting off the Redis handlers still running", shared.context.log_prefix());
                    let _ = cut_off.send(true);
                    // Cut-off handlers give their permits back as they unwind.
                    let _ = tokio::time::timeout(Duration::from_secs(1), shared.permits.acquire_many(all)).await;
                }
            })
        })
    }
}

/// Locates the `inbound-redis` export of a component: Spin 2's or Spin 4's.
fn handler(id: &str, pre: &ComponentPre, outbound: &Arc<OutboundHttp>) -> Result<Handler> {
    let instance_pre = pre.instance_pre().clone();
    let export = match bindings::RedisTriggerPre::new(instance_pre.clone()) {
        Ok(bindings) => Export::Spin2(bindings),
        Err(err) => match bindings_v3::RedisTriggerPre::new(instance_pre) {
            Ok(bindings) => Export::Spin3(bindings),
            Err(_) => anyhow::bail!(
                "component `{id}` is bound to a Redis trigger but exports neither `fermyon:spin/inbound-redis` nor `spin:redis/inbound-redis@3.0.0`: {err}"
            ),
        },
    };
    Ok(Handler { pre: pre.clone(), export, outbound: outbound.clone() })
}

/// Runs one instance of `handler` for one message. `Err` is the one-line reason it failed.
pub(crate) async fn run_instance(handler: &Handler, limits: InstanceLimits, payload: &[u8]) -> Result<(), String> {
    let (export, payload) = (handler.export.clone(), payload.to_vec());
    let outcome = handler
        .pre
        .run(limits, handler.outbound.hooks(), move |store| {
            Box::pin(async move {
                match export {
                    Export::Spin2(bindings) => {
                        let guest = bindings.instantiate_async(&mut *store).await?;
                        let handled = guest.fermyon_spin_inbound_redis().call_handle_message(&mut *store, &payload).await?;
                        Ok(handled.map_err(|error| format!("{error:?}")))
                    }
                    Export::Spin3(bindings) => {
                        let guest = bindings.instantiate_async(&mut *store).await?;
                        let handled = store
                            .run_concurrent(async move |accessor| guest.spin_redis_inbound_redis().call_handle_message(accessor, payload).await)
                            .await??;
                        Ok(handled.map_err(|error| format!("{error:?}")))
                    }
                }
            })
        })
        .await;
    match outcome {
        Ok(Ok(())) => Ok(()),
        Ok(Err(error)) => Err(format!("the handler returned an error: {error}")),
        Err(failure) => Err(failure.to_string()),
    }
}

#[cfg(test)]
mod tests;
