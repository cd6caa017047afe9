//! Durable consumers and queue groups: consumer groups of Redis streams.

use super::channel::{BACKOFF_MAX, BACKOFF_START};
use super::wire::{delivery_count, consumer_infos, entry_message, parse_entries, read_entries};
use super::{CLAIM_EVERY, DURABLE_STREAM_PREFIX, DURABLES, Entry, FORGET_CONSUMER_AFTER, QUEUES, Shared, redis_error};
use crate::{Delivery, DurableOptions, Message, MessagingError};
use redis::Value;
use redis::aio::MultiplexedConnection;
use std::collections::VecDeque;
use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::time::{Duration, Instant};
use tokio::sync::mpsc;

/// A queue group member: takes messages from the group's stream, settles them at once (at most
/// once, as a NATS queue subscription) and hands them on.
pub(super) async fn pump_queue(mut consumer: StreamConsumer, tx: mpsc::Sender<Message>) {
    loop {
        let delivery = tokio::select! {
            _ = tx.closed() => return,
            delivery = consumer.next() => delivery,
        };
        let Some(delivery) = delivery else { return };
        let message = delivery.message.clone();
        if let Err(err) = delivery.ack().await {
            tracing::warn!("Redis bus: cannot settle a queue group message on {}: {err}", message.subject);
        }
        if tx.send(message).await.is_err() {
            return;
        }
    }
}

/// Which stream a consumer reads and how it is registered.
#[derive(Clone)]
pub(super) struct Route {
    stream: String,
    group: String,
    pattern: String,
    /// [`DURABLES`] or [`QUEUES`].
    registry: &'static str,
    /// The name deliveries report (the durable's, or the queue group's).
    name: String,
}

impl Route {
    pub(super) fn durable(durable: &str, pattern: &str) -> Route {
        Route { stream: format!("{DURABLE_STREAM_PREFIX}{durable}"), group: durable.to_string(), pattern: pattern.to_string(), registry: DURABLES, name: durable.to_string() }
    }

    pub(super) fn queue(stream: String, group: &str, pattern: &str) -> Route {
        Route { stream, group: group.to_string(), pattern: pattern.to_string(), registry: QUEUES, name: group.to_string() }
    }
}

/// A failed delivery waiting for its redelivery delay.
struct Retry {
    due: Instant,
    id: String,
    message: Message,
    attempt: u32,
}

/// A durable consumer on Redis.
pub(crate) struct Durable {
    pub(super) consumer: StreamConsumer,
}

impl Durable {
    pub(crate) async fn next(&mut self) -> Option<Delivery> {
        self.consumer.next().await
    }
}

/// One consumer of a stream's consumer group.
pub(super) struct StreamConsumer {
    shared: Arc<Shared>,
    route: Route,
    consumer: String,
    options: DurableOptions,
    /// Its own connection: `XREADGROUP … BLOCK` would hold up everything else on a shared one.
    reader: Option<MultiplexedConnection>,
    ready: VecDeque<Delivery>,
    retries: Vec<Retry>,
    retry_tx: mpsc::UnboundedSender<Retry>,
    retry_rx: mpsc::UnboundedReceiver<Retry>,
    next_claim: Instant,
    next_cleanup: Instant,
}

impl StreamConsumer {
    pub(super) fn new(shared: Arc<Shared>, route: Route, options: DurableOptions) -> StreamConsumer {
        let consumer = format!("{}-{}", shared.me, shared.next_id.fetch_add(1, Ordering::Relaxed));
        let (retry_tx, retry_rx) = mpsc::unbounded_channel();
        StreamConsumer {
            shared,
            route,
            consumer,
            options,
            reader: None,
            ready: VecDeque::new(),
            retries: Vec::new(),
            retry_tx,
            retry_rx,
            next_claim: Instant::now(),
            next_cleanup: Instant::now() + FORGET_CONSUMER_AFTER,
        }
    }

    /// Registers the route, creates the group (from the stream's start: a stream holds only
    /// unsettled messages) and opens the reader connection.
    pub(super) async fn set_up(&mut self) -> Result<MultiplexedConnection, MessagingError> {
        let route = self.route.clone();
        let previous: Option<String> = self
            .shared
            .call(move |mut connection| async move {
                let previous: Option<String> = redis::cmd("HGET").arg(route.registry).arg(&route.stream).query_async(&mut connection).await?;
                redis::cmd("HSET").arg(route.registry).arg(&route.stream).arg(&route.pattern).query_async::<()>(&mut connection).await?;
                let created = redis::cmd("XGROUP").arg("CREATE").arg(&route.stream).arg(&route.group).arg("0").arg("MKSTREAM").query_async::<()>(&mut connection).await;
                match created {
                    Err(err) if err.code() == Some("BUSYGROUP") => Ok(previous),
                    other => other.map(|()| previous),
                }
            })
            .await?;
        if let Some(previous) = previous.filter(|p| *p != self.route.pattern) {
            tracing::warn!("Redis bus: `{}` consumed `{previous}`; it now consumes `{}`", self.route.name, self.route.pattern);
        }
        let client = self.shared.client.clone();
        let shown = self.shared.shown.clone();
        let reader = self.shared.on_runtime(async move { client.get_multiplexed_async_connection().await.map_err(|err| redis_error(&shown, err)) }).await??;
        self.reader = Some(reader.clone());
        Ok(reader)
    }

    /// The reader connection, set up afresh when there is none (at first, or after an error).
    async fn reader(&mut self) -> Result<MultiplexedConnection, MessagingError> {
        match self.reader.clone() {
            Some(reader) => Ok(reader),
            None => self.set_up().await,
        }
    }

    async fn next(&mut self) -> Option<Delivery> {
        let mut backoff = BACKOFF_START;
        loop {
            while let Ok(retry) = self.retry_rx.try_recv() {
                self.retries.push(retry);
            }
            if let Some(due) = self.retries.iter().position(|r| r.due <= Instant::now()) {
                let retry = self.retries.swap_remove(due);
                return Some(self.delivery(retry.id, retry.message, retry.attempt));
            }
            if let Some(delivery) = self.ready.pop_front() {
                return Some(delivery);
            }
            match self.fill().await {
                Ok(()) => backoff = BACKOFF_START,
                Err(err) => {
                    tracing::warn!("Redis bus: consumer `{}`: {err}; retrying in {backoff:?}", self.route.name);
                    self.reader = None;
                    tokio::time::sleep(backoff).await;
                    backoff = (backoff * 2).min(BACKOFF_MAX);
                }
            }
        }
    }

    /// Claims abandoned deliveries when due, then reads new messages (waiting at most until the
    /// next redelivery is due).
    async fn fill(&mut self) -> Result<(), MessagingError> {
        let mut reader = self.reader().await?;
        if Instant::now() >= self.next_claim {
            self.claim().await?;
            self.next_claim = Instant::now() + CLAIM_EVERY;
            if !self.ready.is_empty() {
                return Ok(());
            }
        }
        if Instant::now() >= self.next_cleanup {
            self.forget_silent_consumers().await?;
            self.next_cleanup = Instant::now() + FORGET_CONSUMER_AFTER;
        }
        let now = Instant::now();
        let wait = self.retries.iter().map(|r| r.due.saturating_duration_since(now)).chain([self.next_claim.saturating_duration_since(now)]).min().unwrap_or(CLAIM_EVERY);
        let block_ms = wait.as_millis().clamp(1, CLAIM_EVERY.as_millis()) as u64;
        let route = self.route.clone();
        let consumer = self.consumer.clone();
        let batch = self.options.batch.max(1);
        let shown = self.shared.shown.clone();
        let reply: Value = self
            .shared
            .on_runtime(async move {
                redis::cmd("XREADGROUP")
                    .arg("GROUP")
                    .arg(&route.group)
                    .arg(&consumer)
                    .arg("COUNT")
                    .arg(batch)
                    .arg("BLOCK")
                    .arg(block_ms)
                    .arg("STREAMS")
                    .arg(&route.stream)
                    .arg(">")
                    .query_async(&mut reader)
                    .await
                    .map_err(|err| redis_error(&shown, err))
            })
            .await??;
        for (id, fields) in read_entries(&reply) {
            let message = entry_message(&self.route.pattern, &fields);
            let delivery = self.delivery(id, message, 1);
            self.ready.push_back(delivery);
        }
        Ok(())
    }

    /// Takes over deliveries left unsettled longer than `ack_wait` (their consumer died or hung),
    /// with their delivery counts.
    async fn claim(&mut self) -> Result<(), MessagingError> {
        let route = self.route.clone();
        let consumer = self.consumer.clone();
        let min_idle = self.options.ack_wait.as_millis() as u64;
        let batch = self.options.batch.max(1);
        let claimed: Vec<(Entry, u32)> = self
            .shared
            .call(move |mut connection| async move {
                let reply: Value = redis::cmd("XAUTOCLAIM").arg(&route.stream).arg(&route.group).arg(&consumer).arg(min_idle).arg("0-0").arg("COUNT").arg(batch).query_async(&mut connection).await?;
                let entries = match &reply {
                    Value::Array(parts) if parts.len() >= 2 => parse_entries(&parts[1]),
                    _ => Vec::new(),
                };
                let mut claimed = Vec::new();
                for (id, fields) in entries {
                    let pending: Value = redis::cmd("XPENDING").arg(&route.stream).arg(&route.group).arg(&id).arg(&id).arg(1).query_async(&mut connection).await?;
                    claimed.push(((id, fields), delivery_count(&pending).unwrap_or(2)));
                }
                Ok(claimed)
            })
            .await?;
        for ((id, fields), attempt) in claimed {
            tracing::info!("Redis bus: `{}` took over an unsettled delivery (attempt {attempt})", self.route.name);
            let message = entry_message(&self.route.pattern, &fields);
            let delivery = self.delivery(id, message, attempt);
            self.ready.push_back(delivery);
        }
        Ok(())
    }

    /// Removes consumers of the group that hold nothing and have been silent for
    /// [`FORGET_CONSUMER_AFTER`] (hosts gone), so the group does not collect names forever.
    async fn forget_silent_consumers(&self) -> Result<(), MessagingError> {
        let route = self.route.clone();
        let silent_ms = FORGET_CONSUMER_AFTER.as_millis() as i64;
        self.shared
            .call(move |mut connection| async move {
                let consumers: Value = redis::cmd("XINFO").arg("CONSUMERS").arg(&route.stream).arg(&route.group).query_async(&mut connection).await?;
                for (name, pending, idle) in consumer_infos(&consumers) {
                    if pending == 0 && idle > silent_ms {
                        redis::cmd("XGROUP").arg("DELCONSUMER").arg(&route.stream).arg(&route.group).arg(&name).query_async::<Value>(&mut connection).await?;
                    }
                }
                Ok(())
            })
            .await
    }

    fn delivery(&self, id: String, message: Message, attempt: u32) -> Delivery {
        Delivery {
            message,
            attempt,
            max_deliver: self.options.max_deliver,
            durable: self.route.name.clone(),
            acker: crate::Acker::Redis(Box::new(Acker {
                shared: self.shared.clone(),
                stream: self.route.stream.clone(),
                group: self.route.group.clone(),
                consumer: self.consumer.clone(),
                id,
                delay: self.options.redelivery_delay,
                retry: self.retry_tx.clone(),
            })),
        }
    }
}

/// Settles one delivery of a stream consumer.
pub(crate) struct Acker {
    shared: Arc<Shared>,
    stream: String,
    group: String,
    consumer: String,
    id: String,
    delay: Duration,
    retry: mpsc::UnboundedSender<Retry>,
}

impl Acker {
    /// `XACK` and `XDEL`, confirmed by Redis.
    pub(crate) async fn ack(&self) -> Result<(), MessagingError> {
        let (script, stream, group, id) = (self.shared.ack.clone(), self.stream.clone(), self.group.clone(), self.id.clone());
        self.shared
            .call(move |mut connection| async move { script.key(&stream).arg(&group).arg(&id).invoke_async::<i64>(&mut connection).await })
            .await
            .map(|_| ())
            .map_err(|err| MessagingError::Connection(format!("cannot acknowledge the message: {err}")))
    }

    /// Counts the delivery (`XCLAIM`, which also keeps other consumers off it) and hands it back to
    /// this consumer after the redelivery delay. If this host dies first, another consumer claims it
    /// after `ack_wait`.
    pub(crate) async fn redeliver(self, message: Message, attempt: u32) -> Result<(), MessagingError> {
        let (stream, group, consumer, id) = (self.stream.clone(), self.group.clone(), self.consumer.clone(), self.id.clone());
        self.shared
            .call(move |mut connection| async move { redis::cmd("XCLAIM").arg(&stream).arg(&group).arg(&consumer).arg(0).arg(&id).query_async::<Value>(&mut connection).await })
            .await?;
        let retry = Retry { due: Instant::now() + self.delay, id: self.id, message, attempt };
        // The consumer is gone: the delivery stays pending, for another consumer to claim.
        let _ = self.retry.send(retry);
        Ok(())
    }

    /// Publishes the dead letter, then settles the original. If the publish fails, the original is
    /// handed back for redelivery instead: never dropped.
    pub(crate) async fn dead_letter(self, dead: Message, original: Message, attempt: u32) -> Result<(), MessagingError> {
        if let Err(err) = self.shared.publish(dead).await {
            let _ = self.redeliver(original, attempt).await;
            return Err(err);
        }
        self.ack().await
    }
}

