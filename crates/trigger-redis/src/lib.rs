//! The Redis trigger: Spin's `[[trigger.redis]]`, one fresh component instance per pub/sub message.
//!
//! At start every trigger's `address` (else `[application.trigger.redis] address`) and `channel` are
//! rendered against the application's variables, and every bound component is checked for the
//! `fermyon:spin/inbound-redis` export. Then one task per distinct address keeps a pub/sub connection
//! subscribed to that address's channels: when Redis goes away it reconnects with backoff and
//! resubscribes (messages published meanwhile are lost, as pub/sub keeps nothing for absent
//! subscribers, and the gap is logged). Each message runs each component bound to its channel on its
//! own task, with the same deadline and memory limit as an HTTP request.

mod plan;
mod subscriber;

pub use plan::{ServerPlan, plan, redact, render};

use anyhow::{Context, Result};
use kiln_app::App;
use kiln_engine::{ComponentPre, InstanceLimits, KilnState};
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

/// Settings of the Redis trigger for one app.
#[derive(Clone, Debug)]
pub struct RedisOptions {
    /// A handler still running after this long is cut off.
    pub deadline: Duration,
    /// Linear memory limit per instance, in bytes.
    pub memory_limit: usize,
    /// Handlers running at once (all addresses and channels together); further messages wait, and
    /// reading from Redis waits with them. 1 handles messages one at a time, in order, as Spin does.
    pub max_concurrency: usize,
    /// On shutdown, how long in-flight handlers may take to finish.
    pub grace: Duration,
}

impl Default for RedisOptions {
    fn default() -> Self {
        RedisOptions { deadline: Duration::from_secs(30), memory_limit: 128 << 20, max_concurrency: 1000, grace: Duration::from_secs(10) }
    }
}

/// One subscription, for the startup banner.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Subscription {
    /// The address with any password removed.
    pub address: String,
    pub channel: String,
    pub component: String,
}

/// A component bound to a Redis trigger: linked, with its export located once.
pub(crate) struct Handler {
    pub(crate) id: String,
    pre: ComponentPre,
    export: Export,
    outbound: Arc<OutboundHttp>,
}

/// What every subscriber task shares.
pub(crate) struct Shared {
    pub(crate) handlers: HashMap<String, Arc<Handler>>,
    pub(crate) options: RedisOptions,
    pub(crate) permits: Arc<Semaphore>,
}

/// The running trigger. [`Running::shutdown`] stops it.
pub struct Running {
    runtime: Option<tokio::runtime::Runtime>,
    stop: watch::Sender<bool>,
    subscribers: Vec<tokio::task::JoinHandle<()>>,
    shared: Option<Arc<Shared>>,
    subscriptions: Vec<Subscription>,
}

/// Starts the app's Redis triggers. With no `[[trigger.redis]]` it starts nothing. Errors (an address
/// that cannot be rendered or parsed, a component without the export) stop here, before anything
/// connects; Redis being unreachable is not an error: the trigger keeps trying.
pub fn start(app: &App, options: RedisOptions) -> Result<Running> {
    let (stop, stop_rx) = watch::channel(false);
    let manifest = &app.manifest;
    if manifest.redis_triggers.is_empty() {
        return Ok(Running { runtime: None, stop, subscribers: Vec::new(), shared: None, subscriptions: Vec::new() });
    }
    let servers = plan(manifest, &app.variables)?;
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
        handlers.insert(trigger.component.clone(), Arc::new(handler));
    }
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
    let workers = std::thread::available_parallelism().map(|n| n.get()).unwrap_or(1);
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(workers)
        .thread_name("kiln-redis")
        .enable_all()
        .build()
        .context("cannot start the Redis trigger's runtime")?;
    let max_concurrency = options.max_concurrency.clamp(1, Semaphore::MAX_PERMITS);
    let shared = Arc::new(Shared { handlers, permits: Arc::new(Semaphore::new(max_concurrency)), options });
    let subscribers = servers
        .into_iter()
        .map(|server| runtime.spawn(subscriber::run(shared.clone(), server, stop_rx.clone())))
        .collect();
    Ok(Running { runtime: Some(runtime), stop, subscribers, shared: Some(shared), subscriptions })
}

impl Running {
    /// Every (address, channel, component) subscribed, in manifest order of addresses.
    pub fn subscriptions(&self) -> &[Subscription] {
        &self.subscriptions
    }

    /// Stops taking messages (unsubscribes), lets in-flight handlers finish up to the grace period,
    /// cuts off the rest and returns. Blocking: call it from a thread that is not running a tokio
    /// runtime.
    pub fn shutdown(mut self) {
        let _ = self.stop.send(true);
        let (Some(runtime), Some(shared)) = (self.runtime.take(), self.shared.take()) else {
            return;
        };
        let subscribers = std::mem::take(&mut self.subscribers);
        let grace = shared.options.grace;
        runtime.block_on(async {
            let deadline = tokio::time::Instant::now() + grace;
            for subscriber in subscribers {
                let _ = tokio::time::timeout_at(deadline, subscriber).await;
            }
            let all = shared.options.max_concurrency.clamp(1, Semaphore::MAX_PERMITS) as u32;
            if tokio::time::timeout_at(deadline, shared.permits.acquire_many(all)).await.is_err() {
                tracing::warn!(target: "kiln::redis", "shutdown grace period of {grace:?} elapsed; cutting off the Redis handlers still running");
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
    Ok(Handler { id: id.to_string(), pre: pre.clone(), export, outbound: outbound.clone() })
}

/// Runs one instance of `handler` for one message. `Err` is the one-line reason it failed.
pub(crate) async fn run_instance(handler: &Handler, options: &RedisOptions, payload: &[u8]) -> Result<(), String> {
    let limits = InstanceLimits { deadline: options.deadline, memory_limit: options.memory_limit };
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
