//! The message broker Kiln's NATS trigger and the guests' `wasi:messaging` publishing share.
//!
//! A [`Broker`] is either the **in-process bus** (the zero-setup default: publish/subscribe between
//! the components of one kiln process, NATS subject semantics, queue groups, request/reply, and
//! durable consumers with redelivery and a dead-letter subject, nothing persisted), a **NATS**
//! connection (async-nats on its own runtime; reconnects by itself, subscriptions resume; JetStream
//! durable pull consumers for `durable = "name"` triggers), or **Redis** (Pub/Sub for plain
//! subscriptions, Streams with consumer groups for durables and queue groups; see `redis/`).
//!
//! All behave the same to their users:
//! - [`Broker::publish`], [`Broker::request`] / [`Broker::request_many`], [`Broker::subscribe`]
//!   (with an optional queue group: each message to one member);
//! - [`Broker::durable`]: at-least-once delivery with explicit [`Delivery::ack`] /
//!   [`Delivery::fail`]; after `max_deliver` failed deliveries the message goes to
//!   [`dead_letter_subject`] (`kiln.dlq.<durable>`) and is not redelivered.

mod config;
mod inprocess;
mod nats;
mod own_runtime;
mod redis;
pub mod subject;

pub use config::{BrokerConfig, MessagingConfig, choose_broker};

use bytes::Bytes;
use std::sync::Arc;
use std::time::Duration;

/// Header names Kiln sets on a dead-lettered message (beside the original headers).
pub const DLQ_SUBJECT_HEADER: &str = "Kiln-Dlq-Subject";
pub const DLQ_DURABLE_HEADER: &str = "Kiln-Dlq-Durable";
pub const DLQ_DELIVERIES_HEADER: &str = "Kiln-Dlq-Deliveries";
pub const DLQ_REASON_HEADER: &str = "Kiln-Dlq-Reason";

/// Where the messages of durable consumer `durable` go after their last failed delivery.
pub fn dead_letter_subject(durable: &str) -> String {
    format!("kiln.dlq.{durable}")
}

/// A message as the broker carries it.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Message {
    pub subject: String,
    pub payload: Bytes,
    /// Where a reply goes (request/reply), if the sender wants one.
    pub reply_to: Option<String>,
    /// Headers in order; a name may repeat.
    pub headers: Vec<(String, String)>,
}

impl Message {
    pub fn new(subject: impl Into<String>, payload: impl Into<Bytes>) -> Message {
        Message { subject: subject.into(), payload: payload.into(), reply_to: None, headers: Vec::new() }
    }

    /// The first value of header `name` (case-insensitive).
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers.iter().find(|(n, _)| n.eq_ignore_ascii_case(name)).map(|(_, v)| v.as_str())
    }
}

/// Why a broker operation failed.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum MessagingError {
    #[error("invalid subject `{0}`: {1}")]
    InvalidSubject(String, &'static str),
    #[error("no responders for `{0}`")]
    NoResponders(String),
    #[error("timed out")]
    Timeout,
    #[error("broker connection: {0}")]
    Connection(String),
    #[error("{0}")]
    Other(String),
}

/// Settings of a durable consumer.
#[derive(Clone, Debug)]
pub struct DurableOptions {
    /// Deliveries of one message before it is dead-lettered (at least 1).
    pub max_deliver: u32,
    /// How long the broker waits for an ack before it redelivers (JetStream `ack_wait`): longer than
    /// the handler's deadline.
    pub ack_wait: Duration,
    /// Delay before a failed message is redelivered.
    pub redelivery_delay: Duration,
    /// Messages fetched per pull request (JetStream).
    pub batch: usize,
}

impl Default for DurableOptions {
    fn default() -> Self {
        DurableOptions {
            max_deliver: 5,
            ack_wait: Duration::from_secs(60),
            redelivery_delay: Duration::from_secs(1),
            batch: 64,
        }
    }
}

/// A handle to the app's broker. Cheap to clone; every clone is the same broker.
#[derive(Clone)]
pub struct Broker {
    backend: Arc<Backend>,
}

enum Backend {
    InProcess(Arc<inprocess::Bus>),
    Nats(Box<nats::Nats>),
    Redis(Box<redis::RedisBroker>),
}

impl Broker {
    /// A new, empty in-process bus.
    pub fn in_process() -> Broker {
        Broker { backend: Arc::new(Backend::InProcess(inprocess::Bus::new())) }
    }

    /// Connects to NATS at `url` (`nats://host:port`, `tls://…`, a comma-separated list for a
    /// cluster; `user:password@` allowed). Fails if the server does not answer within
    /// `connect_timeout`; once connected, the client reconnects by itself forever. Blocking: call it
    /// at startup, not from async code on a current-thread runtime.
    pub fn connect_nats(url: &str, connect_timeout: Duration) -> anyhow::Result<Broker> {
        Ok(Broker { backend: Arc::new(Backend::Nats(Box::new(nats::Nats::connect(url, connect_timeout)?))) })
    }

    /// Connects to Redis at `url` (`redis://[user:password@]host:port[/db]`, `rediss://` for TLS) and
    /// checks that it answers within `connect_timeout`; once connected, connections are re-made by
    /// themselves. Blocking: call it at startup.
    pub fn connect_redis(url: &str, connect_timeout: Duration) -> anyhow::Result<Broker> {
        Ok(Broker { backend: Arc::new(Backend::Redis(Box::new(redis::RedisBroker::connect(url, connect_timeout)?))) })
    }

    /// The broker `config` names (in-process, NATS or Redis).
    pub fn from_config(config: &BrokerConfig) -> anyhow::Result<Broker> {
        match config {
            BrokerConfig::InProcess => Ok(Broker::in_process()),
            BrokerConfig::Nats { url } => Broker::connect_nats(url, Duration::from_secs(5)),
            BrokerConfig::Redis { url } => Broker::connect_redis(url, Duration::from_secs(5)),
        }
    }

    /// `in-process`, `nats://host:port` or `redis://host:port` (without credentials), for banners
    /// and logs.
    pub fn describe(&self) -> String {
        match &*self.backend {
            Backend::InProcess(_) => "in-process".to_string(),
            Backend::Nats(n) => n.shown().to_string(),
            Backend::Redis(r) => r.shown().to_string(),
        }
    }

    /// `Ok` while the broker is reachable; else what is wrong (a NATS client reconnecting, a Redis
    /// whose last exchange failed). The in-process bus is always reachable.
    pub fn health(&self) -> Result<(), String> {
        match &*self.backend {
            Backend::InProcess(_) => Ok(()),
            Backend::Nats(n) => n.health(),
            Backend::Redis(r) => r.health(),
        }
    }

    /// `in-process`, `nats` or `redis`: the backend's kind, for metrics.
    pub fn kind(&self) -> &'static str {
        match &*self.backend {
            Backend::InProcess(_) => "in-process",
            Backend::Nats(_) => "nats",
            Backend::Redis(_) => "redis",
        }
    }

    pub fn is_in_process(&self) -> bool {
        matches!(&*self.backend, Backend::InProcess(_))
    }

    /// Publishes a message to `subject` (no wildcards).
    pub async fn publish(&self, subject: &str, payload: Bytes, headers: Vec<(String, String)>, reply_to: Option<String>) -> Result<(), MessagingError> {
        subject::check_publish_subject(subject)?;
        if let Some(reply) = &reply_to {
            subject::check_publish_subject(reply)?;
        }
        let message = Message { subject: subject.to_string(), payload, reply_to, headers };
        match &*self.backend {
            Backend::InProcess(bus) => {
                bus.publish(message).await;
                Ok(())
            }
            Backend::Nats(n) => n.publish(message).await,
            Backend::Redis(r) => r.publish(message).await.map(|_| ()),
        }
    }

    /// Publishes `payload` with a fresh reply subject and returns the first reply within `timeout`.
    pub async fn request(&self, subject: &str, payload: Bytes, headers: Vec<(String, String)>, timeout: Duration) -> Result<Message, MessagingError> {
        let mut replies = self.request_many(subject, payload, headers, timeout, 1).await?;
        replies.pop().ok_or(MessagingError::Timeout)
    }

    /// Publishes `payload` with a fresh reply subject and collects replies until `max_replies`
    /// arrived or `timeout` passed. No reply at all is [`MessagingError::Timeout`]; no subscriber on
    /// `subject` is [`MessagingError::NoResponders`].
    pub async fn request_many(
        &self,
        subject: &str,
        payload: Bytes,
        headers: Vec<(String, String)>,
        timeout: Duration,
        max_replies: usize,
    ) -> Result<Vec<Message>, MessagingError> {
        subject::check_publish_subject(subject)?;
        let message = Message { subject: subject.to_string(), payload, reply_to: None, headers };
        let max_replies = max_replies.max(1);
        match &*self.backend {
            Backend::InProcess(bus) => bus.request(message, timeout, max_replies).await,
            Backend::Nats(n) => n.request(message, timeout, max_replies).await,
            Backend::Redis(r) => r.request(message, timeout, max_replies).await,
        }
    }

    /// Subscribes to `pattern` (wildcards allowed). With `queue_group`, each message goes to one
    /// of the group's subscribers. The subscription ends when dropped.
    pub async fn subscribe(&self, pattern: &str, queue_group: Option<&str>) -> Result<Subscription, MessagingError> {
        subject::check_pattern(pattern)?;
        if let Some(group) = queue_group {
            check_name("queue group", group)?;
        }
        match &*self.backend {
            Backend::InProcess(bus) => Ok(Subscription(SubscriptionInner::InProcess(bus.subscribe(pattern, queue_group.map(str::to_string))))),
            Backend::Nats(n) => Ok(Subscription(SubscriptionInner::Nats(n.subscribe(pattern, queue_group).await?))),
            Backend::Redis(r) => Ok(Subscription(SubscriptionInner::Redis(r.subscribe(pattern, queue_group).await?))),
        }
    }

    /// A durable consumer named `durable` of the messages on `pattern`: at-least-once, explicit
    /// ack. On NATS this is a JetStream durable pull consumer on a stream covering `pattern` (one is
    /// created, `KILN_<DURABLE>`, if none covers it); on Redis a consumer group of the stream
    /// `kiln:msg:durable:<durable>`. Consumers with the same name share the messages (each to one of
    /// them), also across hosts on NATS and Redis.
    pub async fn durable(&self, pattern: &str, durable: &str, options: DurableOptions) -> Result<DurableConsumer, MessagingError> {
        subject::check_pattern(pattern)?;
        check_name("durable name", durable)?;
        let options = DurableOptions { max_deliver: options.max_deliver.max(1), batch: options.batch.max(1), ..options };
        match &*self.backend {
            Backend::InProcess(bus) => Ok(DurableConsumer(DurableInner::InProcess(bus.durable(pattern, durable, options)))),
            Backend::Nats(n) => Ok(DurableConsumer(DurableInner::Nats(Box::new(n.durable(pattern, durable, options).await?)))),
            Backend::Redis(r) => Ok(DurableConsumer(DurableInner::Redis(Box::new(r.durable(pattern, durable, options).await?)))),
        }
    }
}

/// A broker URL without its credentials (`nats://user:pw@a:4222,nats://b:4222` →
/// `nats://a:4222,nats://b:4222`), for banners, logs and errors.
pub(crate) fn redact(url: &str) -> String {
    url.split(',')
        .map(|part| match (part.find("://"), part.rfind('@')) {
            (Some(scheme), Some(at)) if at > scheme => format!("{}://{}", &part[..scheme], &part[at + 1..]),
            (None, Some(at)) => part[at + 1..].to_string(),
            _ => part.to_string(),
        })
        .collect::<Vec<_>>()
        .join(",")
}

/// Durable names and queue groups: one NATS token of letters, digits, `-` and `_`.
fn check_name(what: &str, name: &str) -> Result<(), MessagingError> {
    if name.is_empty() || name.len() > 128 || !name.chars().all(|c| c.is_ascii_alphanumeric() || c == '-' || c == '_') {
        return Err(MessagingError::Other(format!("invalid {what} `{name}`: use letters, digits, `-` and `_`")));
    }
    Ok(())
}

/// Messages of a subscription, in arrival order.
pub struct Subscription(SubscriptionInner);

enum SubscriptionInner {
    InProcess(inprocess::Subscription),
    Nats(async_nats::Subscriber),
    Redis(redis::Subscription),
}

impl Subscription {
    /// The next message; `None` once the subscription is closed (broker gone).
    pub async fn next(&mut self) -> Option<Message> {
        match &mut self.0 {
            SubscriptionInner::InProcess(sub) => sub.next().await.map(|envelope| envelope.message),
            SubscriptionInner::Nats(sub) => {
                use futures::StreamExt;
                sub.next().await.map(nats::from_nats)
            }
            SubscriptionInner::Redis(sub) => sub.next().await,
        }
    }
}

/// A durable consumer's deliveries.
pub struct DurableConsumer(DurableInner);

enum DurableInner {
    InProcess(inprocess::Durable),
    Nats(Box<nats::Durable>),
    Redis(Box<redis::Durable>),
}

impl DurableConsumer {
    /// The next delivery. Waits across broker restarts (NATS) and returns `None` only when the
    /// broker is gone for good.
    pub async fn next(&mut self) -> Option<Delivery> {
        match &mut self.0 {
            DurableInner::InProcess(d) => d.next().await,
            DurableInner::Nats(d) => d.next().await,
            DurableInner::Redis(d) => d.next().await,
        }
    }
}

/// One delivery of a durable consumer's message. Settle it with [`ack`](Delivery::ack) or
/// [`fail`](Delivery::fail); dropping it unsettled leaves it to the broker's redelivery (JetStream:
/// after `ack_wait`; in-process: lost).
pub struct Delivery {
    pub message: Message,
    /// 1 for the first delivery.
    pub attempt: u32,
    pub max_deliver: u32,
    pub durable: String,
    acker: Acker,
}

pub(crate) enum Acker {
    InProcess(inprocess::Acker),
    Nats(Box<nats::Acker>),
    Redis(Box<redis::Acker>),
}

/// What became of a failed delivery.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum FailOutcome {
    /// It will be delivered again (as attempt `next_attempt`).
    Redeliver { next_attempt: u32 },
    /// It was published to `subject` and will not be delivered again.
    DeadLettered { subject: String },
}

impl Delivery {
    /// The handler succeeded: the message is done. On JetStream and Redis the ack is confirmed by
    /// the server before this returns; an error means the broker may redeliver it.
    pub async fn ack(self) -> Result<(), MessagingError> {
        match self.acker {
            Acker::InProcess(_) => Ok(()),
            Acker::Nats(acker) => acker.ack().await,
            Acker::Redis(acker) => acker.ack().await,
        }
    }

    /// The handler failed: redeliver after the redelivery delay, or, if this was delivery
    /// `max_deliver` (or later), dead-letter it.
    pub async fn fail(self, reason: &str) -> Result<FailOutcome, MessagingError> {
        if self.attempt >= self.max_deliver {
            return self.dead_letter(reason).await;
        }
        let next_attempt = self.attempt + 1;
        match self.acker {
            Acker::InProcess(acker) => acker.redeliver(self.message, next_attempt),
            Acker::Nats(acker) => acker.nak().await?,
            Acker::Redis(acker) => acker.redeliver(self.message, next_attempt).await?,
        }
        Ok(FailOutcome::Redeliver { next_attempt })
    }

    /// Publishes the message to the dead-letter subject (with `Kiln-Dlq-*` headers) and settles it
    /// so it is not delivered again. If the dead-letter publish fails, the message is left for
    /// redelivery instead: never lost.
    pub async fn dead_letter(self, reason: &str) -> Result<FailOutcome, MessagingError> {
        let subject = dead_letter_subject(&self.durable);
        let mut headers = self.message.headers.clone();
        headers.push((DLQ_SUBJECT_HEADER.to_string(), self.message.subject.clone()));
        headers.push((DLQ_DURABLE_HEADER.to_string(), self.durable.clone()));
        headers.push((DLQ_DELIVERIES_HEADER.to_string(), self.attempt.to_string()));
        headers.push((DLQ_REASON_HEADER.to_string(), one_line(reason)));
        let dead = Message { subject: subject.clone(), payload: self.message.payload.clone(), reply_to: None, headers };
        match self.acker {
            Acker::InProcess(acker) => acker.publish(dead).await,
            Acker::Nats(acker) => acker.dead_letter(dead).await?,
            Acker::Redis(acker) => acker.dead_letter(dead, self.message, self.attempt).await?,
        }
        Ok(FailOutcome::DeadLettered { subject })
    }
}

/// Header values are one line; long reasons are cut.
fn one_line(text: &str) -> String {
    let line: String = text.lines().next().unwrap_or_default().chars().filter(|c| !c.is_control()).take(512).collect();
    line
}

#[cfg(test)]
mod tests;
