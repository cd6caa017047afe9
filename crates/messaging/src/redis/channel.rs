//! Plain subscriptions: Redis Pub/Sub, resubscribed after the connection is lost.

use super::wire::from_channel;
use super::{CALL_TIMEOUT, Shared};
use crate::{Message, subject};
use futures::StreamExt;
use redis::Value;
use std::sync::Arc;
use std::time::Duration;
use tokio::sync::mpsc;

/// Messages of a subscription (Pub/Sub or a queue group's stream), fed by a task on the broker's
/// runtime that stops when this is dropped.
pub(crate) struct Subscription {
    pub(super) rx: mpsc::Receiver<Message>,
    pub(super) task: tokio::task::JoinHandle<()>,
}

impl Subscription {
    pub(crate) async fn next(&mut self) -> Option<Message> {
        self.rx.recv().await
    }
}

impl Drop for Subscription {
    fn drop(&mut self) {
        self.task.abort();
    }
}

pub(super) const BACKOFF_START: Duration = Duration::from_millis(100);
pub(super) const BACKOFF_MAX: Duration = Duration::from_secs(5);
const PING_EVERY: Duration = Duration::from_secs(10);

/// Forwards a Pub/Sub subscription's messages; resubscribes after the connection is lost (what was
/// published meanwhile is missed, as with core NATS).
pub(super) async fn pump_channel(shared: Arc<Shared>, pattern: String, mut pubsub: redis::aio::PubSub, tx: mpsc::Sender<Message>) {
    loop {
        let lost = forward_channel(&pattern, pubsub, &tx).await;
        let Some(reason) = lost else { return };
        tracing::warn!("Redis bus {}: subscription to `{pattern}` lost ({reason}); resubscribing", shared.shown);
        shared.note_failure(format!("Redis at {}: subscription to `{pattern}` lost ({reason})", shared.shown));
        let mut backoff = BACKOFF_START;
        pubsub = loop {
            if tx.is_closed() {
                return;
            }
            match tokio::time::timeout(CALL_TIMEOUT, shared.pubsub(&pattern)).await {
                Ok(Ok(pubsub)) => break pubsub,
                Ok(Err(err)) => tracing::debug!("Redis bus: cannot resubscribe to `{pattern}`: {err}"),
                Err(_) => tracing::debug!("Redis bus: resubscribing to `{pattern}` timed out"),
            }
            tokio::time::sleep(backoff).await;
            backoff = (backoff * 2).min(BACKOFF_MAX);
        };
        tracing::info!("Redis bus {}: resubscribed to `{pattern}`", shared.shown);
        shared.note_success();
    }
}

/// `None` when the subscriber went away; else why the connection ended.
async fn forward_channel(pattern: &str, pubsub: redis::aio::PubSub, tx: &mpsc::Sender<Message>) -> Option<String> {
    let (mut sink, mut stream) = pubsub.split();
    let mut ping = tokio::time::interval_at(tokio::time::Instant::now() + PING_EVERY, PING_EVERY);
    loop {
        tokio::select! {
            _ = tx.closed() => return None,
            message = stream.next() => {
                let Some(message) = message else { return Some("connection closed".to_string()) };
                let channel = message.get_channel_name();
                if !subject::matches(pattern, channel) {
                    continue;
                }
                match tx.try_send(from_channel(channel, message.get_payload_bytes())) {
                    Ok(()) => {}
                    Err(mpsc::error::TrySendError::Full(_)) => tracing::warn!("Redis bus: a subscriber of {pattern} is not keeping up; a message on {channel} was dropped for it"),
                    Err(mpsc::error::TrySendError::Closed(_)) => return None,
                }
            }
            _ = ping.tick() => {
                match tokio::time::timeout(CALL_TIMEOUT, sink.ping::<Value>()).await {
                    Ok(Ok(_)) => {}
                    Ok(Err(err)) => return Some(format!("PING failed: {err}")),
                    Err(_) => return Some("no answer to PING".to_string()),
                }
            }
        }
    }
}

