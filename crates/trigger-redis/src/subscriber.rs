//! One pub/sub connection per Redis server: subscribe, dispatch, reconnect.

use crate::plan::{ServerPlan, redact};
use crate::{Shared, handlers, run_instance};
use futures::StreamExt;
use kiln_app::EventOutcome;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};
use tokio::sync::{OwnedSemaphorePermit, watch};

const BACKOFF_START: Duration = Duration::from_millis(100);
const BACKOFF_MAX: Duration = Duration::from_secs(5);
/// Connecting and subscribing must finish within this.
const CONNECT_TIMEOUT: Duration = Duration::from_secs(5);
/// A connection that is silently gone (no FIN, e.g. a dropped network) is found by a PING.
const PING_EVERY: Duration = Duration::from_secs(10);
const PING_TIMEOUT: Duration = Duration::from_secs(5);

enum Ended {
    Stopped,
    Lost(String),
}

/// Keeps `server`'s channels subscribed until `stop` turns true (or its sender is dropped).
/// `state` says `ok`, or why the subscription is down.
pub(crate) async fn run(shared: Arc<Shared>, server: ServerPlan, mut stop: watch::Receiver<bool>, state: Arc<Mutex<String>>) {
    let set_state = |text: String| *state.lock().unwrap_or_else(|poisoned| poisoned.into_inner()) = text;
    let prefix = shared.context.log_prefix();
    let shown = redact(&server.address);
    let client = match redis::Client::open(server.address.as_str()) {
        Ok(client) => client,
        // Checked at start; kept as a log line rather than a panic.
        Err(err) => {
            tracing::error!(target: "kiln::redis", "redis {shown}: invalid address: {err}");
            return;
        }
    };
    let channels: Vec<String> = server.channels.keys().cloned().collect();
    let listed = channels.iter().map(|c| format!("`{c}`")).collect::<Vec<_>>().join(", ");
    let mut backoff = BACKOFF_START;
    // When the last connection went away (or the first attempt failed), and how many attempts since.
    let mut down_since: Option<Instant> = None;
    let mut attempts = 0u32;
    let mut subscribed_before = false;
    loop {
        if stopping(&stop) {
            return;
        }
        let connected = tokio::select! {
            biased;
            _ = stop.changed() => return,
            connected = tokio::time::timeout(CONNECT_TIMEOUT, connect(&client, &channels)) => connected,
        };
        let failure = match connected {
            Ok(Ok(pubsub)) => {
                backoff = BACKOFF_START;
                attempts = 0;
                set_state("ok".to_string());
                match down_since.take().filter(|_| subscribed_before) {
                    Some(since) => tracing::info!(
                        target: "kiln::redis",
                        "{prefix}redis {shown}: resubscribed to {listed}; messages published during the {:.1}s without a subscription were lost",
                        since.elapsed().as_secs_f64()
                    ),
                    None => tracing::info!(target: "kiln::redis", "{prefix}redis {shown}: subscribed to {listed}"),
                }
                subscribed_before = true;
                match pump(&shared, &server, pubsub, &mut stop).await {
                    Ended::Stopped => return,
                    Ended::Lost(reason) => {
                        down_since = Some(Instant::now());
                        tracing::warn!(target: "kiln::redis", "{prefix}redis {shown}: connection lost ({reason}); reconnecting");
                        set_state(format!("redis {shown}: connection lost ({reason}); reconnecting"));
                        // Reconnect at once the first time: a failover is often instant.
                        continue;
                    }
                }
            }
            Ok(Err(err)) => err.to_string(),
            Err(_elapsed) => format!("no answer within {}s", CONNECT_TIMEOUT.as_secs()),
        };
        down_since.get_or_insert_with(Instant::now);
        attempts += 1;
        set_state(format!("redis {shown}: cannot subscribe ({failure}); retrying (attempt {attempts})"));
        // The first failure and then one in ten are warnings; the rest would only flood the log.
        if attempts == 1 || attempts.is_multiple_of(10) {
            tracing::warn!(target: "kiln::redis", "{prefix}redis {shown}: cannot subscribe ({failure}); retrying every {}s at most (attempt {attempts})", BACKOFF_MAX.as_secs());
        } else {
            tracing::debug!(target: "kiln::redis", "redis {shown}: cannot subscribe ({failure}); retrying in {backoff:?}");
        }
        tokio::select! {
            biased;
            _ = stop.changed() => return,
            _ = tokio::time::sleep(backoff) => {}
        }
        backoff = (backoff * 2).min(BACKOFF_MAX);
    }
}

fn stopping(stop: &watch::Receiver<bool>) -> bool {
    *stop.borrow() || stop.has_changed().is_err()
}

async fn connect(client: &redis::Client, channels: &[String]) -> redis::RedisResult<redis::aio::PubSub> {
    let mut pubsub = client.get_async_pubsub().await?;
    pubsub.subscribe(channels).await?;
    Ok(pubsub)
}

/// Reads messages until the connection ends or `stop` turns true.
async fn pump(shared: &Arc<Shared>, server: &ServerPlan, pubsub: redis::aio::PubSub, stop: &mut watch::Receiver<bool>) -> Ended {
    let (mut sink, mut stream) = pubsub.split();
    let mut ping = tokio::time::interval_at(tokio::time::Instant::now() + PING_EVERY, PING_EVERY);
    ping.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        tokio::select! {
            biased;
            _ = stop.changed() => {
                let channels: Vec<&String> = server.channels.keys().collect();
                let _ = tokio::time::timeout(Duration::from_secs(1), sink.unsubscribe(channels)).await;
                return Ended::Stopped;
            }
            message = stream.next() => {
                let Some(message) = message else {
                    return Ended::Lost("closed".to_string());
                };
                if !dispatch(shared, server, message, stop).await {
                    return Ended::Stopped;
                }
            }
            _ = ping.tick() => {
                match tokio::time::timeout(PING_TIMEOUT, sink.ping::<redis::Value>()).await {
                    Ok(Ok(_)) => {}
                    Ok(Err(err)) => return Ended::Lost(format!("PING failed: {err}")),
                    Err(_) => return Ended::Lost(format!("no answer to PING within {}s", PING_TIMEOUT.as_secs())),
                }
            }
        }
    }
}

/// Starts one handler per component bound to the message's channel, each once a permit is free.
/// `false` when stopping: the message is not handled.
async fn dispatch(shared: &Arc<Shared>, server: &ServerPlan, message: redis::Msg, stop: &mut watch::Receiver<bool>) -> bool {
    let channel = message.get_channel_name().to_string();
    let Some(components) = server.channels.get(&channel) else {
        tracing::debug!(target: "kiln::redis", "message on unexpected channel `{channel}` ignored");
        return true;
    };
    let payload: Arc<Vec<u8>> = Arc::new(message.get_payload_bytes().to_vec());
    for component in components {
        let permit = tokio::select! {
            biased;
            _ = stop.changed() => return false,
            permit = shared.permits.clone().acquire_owned() => match permit {
                Ok(permit) => permit,
                Err(_closed) => return false,
            },
        };
        if stopping(stop) {
            return false;
        }
        tokio::spawn(handle(shared.clone(), component.clone(), channel.clone(), payload.clone(), permit));
    }
    true
}

async fn handle(shared: Arc<Shared>, component: String, channel: String, payload: Arc<Vec<u8>>, _permit: OwnedSemaphorePermit) {
    let started = Instant::now();
    let mut cut_off = shared.cut_off.clone();
    let outcome = tokio::select! {
        outcome = run_on_current_app(&shared, &component, &payload) => outcome,
        _ = cut_off.wait_for(|cut| *cut) => Err("cut off at shutdown".to_string()),
    };
    let elapsed = started.elapsed();
    let prefix = shared.context.log_prefix();
    let ms = elapsed.as_secs_f64() * 1000.0;
    let event_outcome = match outcome {
        Ok(()) => {
            tracing::info!(target: "kiln::redis", "{prefix}redis {channel} {}B [{component}] ok {ms:.2}ms", payload.len());
            EventOutcome::Ok
        }
        Err(reason) => {
            tracing::warn!(target: "kiln::redis", "{prefix}[{component}] redis channel `{channel}`: {reason} ({ms:.2}ms)");
            EventOutcome::Failed
        }
    };
    if let Some(observer) = &shared.context.observer {
        observer.event("redis", &component, event_outcome, elapsed);
    }
}

/// Runs `component` for one message on the app as its source has it now.
async fn run_on_current_app(shared: &Shared, component: &str, payload: &[u8]) -> Result<(), String> {
    let app = shared.context.source.load().await.map_err(|err| format!("cannot load the app: {err:#}"))?;
    let handlers = app.trigger_exports("redis", handlers).map_err(|err| format!("{err:#}"))?;
    let handler = handlers.get(component).ok_or_else(|| format!("the app's current version has no Redis-bound component `{component}`"))?;
    run_instance(handler, shared.context.limits.instance, payload).await
}
