//! NATS (async-nats) and JetStream.
//!
//! The client's connection task runs on a small runtime of its own, so the broker works from any
//! caller (the HTTP workers' current-thread runtimes, the NATS trigger's runtime, tests) and outlives
//! none of them by accident. Publishing only hands the message to that task; requests and
//! subscriptions are channels to it.

use crate::own_runtime::OwnRuntime;
use crate::{Delivery, DurableOptions, Message, MessagingError, subject};
use async_nats::jetstream::{self, consumer::pull, stream};
use async_nats::{HeaderMap, HeaderName, HeaderValue};
use futures::StreamExt;
use std::str::FromStr;
use std::sync::Arc;
use std::time::Duration;

/// How long the stream Kiln creates for a durable trigger keeps messages.
const STREAM_MAX_AGE: Duration = Duration::from_secs(7 * 24 * 3600);

pub(crate) struct Nats {
    client: async_nats::Client,
    js: jetstream::Context,
    shown: String,
    runtime: Arc<OwnRuntime>,
}

impl Nats {
    pub(crate) fn connect(url: &str, connect_timeout: Duration) -> anyhow::Result<Nats> {
        let shown = crate::redact(url);
        let runtime = OwnRuntime::new("kiln-nats-client")?;
        let options = async_nats::ConnectOptions::new()
            .name("kiln")
            .connection_timeout(connect_timeout)
            .max_reconnects(None)
            // Reconnect quickly after a server restart: 0, 100 ms, 200 ms, … up to 2 s between tries.
            .reconnect_delay_callback(|attempts| Duration::from_millis((attempts as u64 * 100).min(2000)))
            .event_callback({
                let shown = shown.clone();
                move |event| {
                    let shown = shown.clone();
                    async move {
                        match event {
                            async_nats::Event::Connected => tracing::info!("NATS {shown}: connected"),
                            async_nats::Event::Disconnected => tracing::warn!("NATS {shown}: disconnected; reconnecting"),
                            async_nats::Event::SlowConsumer(sid) => tracing::warn!("NATS {shown}: subscription {sid} is not keeping up; messages dropped"),
                            other => tracing::debug!("NATS {shown}: {other}"),
                        }
                    }
                }
            });
        let (tx, rx) = std::sync::mpsc::channel();
        let target = url.to_string();
        runtime.spawn(async move {
            let _ = tx.send(options.connect(target).await);
        });
        let client = match rx.recv_timeout(connect_timeout + Duration::from_secs(2)) {
            Ok(Ok(client)) => client,
            Ok(Err(err)) => anyhow::bail!("cannot connect to NATS at {shown}: {err} (is nats-server running there?)"),
            Err(_) => anyhow::bail!("cannot connect to NATS at {shown}: no answer within {connect_timeout:?} (is nats-server running there?)"),
        };
        // The JetStream context spawns onto the current runtime: make it ours, not the caller's.
        let js = {
            let _in_runtime = runtime.handle().enter();
            jetstream::new(client.clone())
        };
        Ok(Nats { client, js, shown, runtime: Arc::new(runtime) })
    }

    pub(crate) fn shown(&self) -> &str {
        &self.shown
    }

    pub(crate) fn health(&self) -> Result<(), String> {
        self.check_connected().map_err(|err| format!("{err}; reconnecting"))
    }

    fn check_connected(&self) -> Result<(), MessagingError> {
        match self.client.connection_state() {
            async_nats::connection::State::Connected => Ok(()),
            _ => Err(MessagingError::Connection(format!("not connected to NATS at {}", self.shown))),
        }
    }

    pub(crate) async fn publish(&self, message: Message) -> Result<(), MessagingError> {
        self.check_connected()?;
        publish(&self.client, message).await
    }

    pub(crate) async fn request(&self, message: Message, timeout: Duration, max_replies: usize) -> Result<Vec<Message>, MessagingError> {
        self.check_connected()?;
        let inbox = self.client.new_inbox();
        let mut replies = self.client.subscribe(inbox.clone()).await.map_err(other)?;
        let subject = message.subject.clone();
        publish(&self.client, Message { reply_to: Some(inbox), ..message }).await?;
        let deadline = tokio::time::Instant::now() + timeout;
        let mut got = Vec::new();
        while got.len() < max_replies {
            match tokio::time::timeout_at(deadline, replies.next()).await {
                // The server answers a request nobody listens to with a 503 status message.
                Ok(Some(reply)) if reply.status == Some(async_nats::StatusCode::NO_RESPONDERS) => {
                    return Err(MessagingError::NoResponders(subject));
                }
                Ok(Some(reply)) => got.push(from_nats(reply)),
                Ok(None) | Err(_) => break,
            }
        }
        crate::inprocess::replies_or_timeout(got)
    }

    pub(crate) async fn subscribe(&self, pattern: &str, queue_group: Option<&str>) -> Result<async_nats::Subscriber, MessagingError> {
        let result = match queue_group {
            Some(group) => self.client.queue_subscribe(pattern.to_string(), group.to_string()).await,
            None => self.client.subscribe(pattern.to_string()).await,
        };
        let subscriber = result.map_err(other)?;
        // Sent to the server before this returns, not left in the client's buffer.
        self.client.flush().await.map_err(|e| MessagingError::Connection(e.to_string()))?;
        Ok(subscriber)
    }

    pub(crate) async fn durable(&self, pattern: &str, durable: &str, options: DurableOptions) -> Result<Durable, MessagingError> {
        let mut consumer = Durable {
            js: self.js.clone(),
            client: self.client.clone(),
            pattern: pattern.to_string(),
            durable: durable.to_string(),
            options,
            messages: None,
            established: false,
            missing_since: None,
            _runtime: self.runtime.clone(),
        };
        consumer.setup().await?;
        Ok(consumer)
    }
}

fn other(err: impl std::fmt::Display) -> MessagingError {
    MessagingError::Other(err.to_string())
}

/// Kiln's headers → NATS headers. Names must be printable ASCII without `:`; values one line.
fn to_headers(headers: &[(String, String)]) -> Result<Option<HeaderMap>, MessagingError> {
    if headers.is_empty() {
        return Ok(None);
    }
    let mut map = HeaderMap::new();
    for (name, value) in headers {
        let header = if name.is_empty() { None } else { HeaderName::from_str(name).ok() };
        let header = header.ok_or_else(|| MessagingError::Other(format!("invalid header name `{name}`: use printable ASCII without `:`")))?;
        let value = HeaderValue::from_str(value).map_err(|_| MessagingError::Other(format!("invalid value for header `{name}`: it must be one line")))?;
        map.append(header, value);
    }
    Ok(Some(map))
}

pub(crate) async fn publish(client: &async_nats::Client, message: Message) -> Result<(), MessagingError> {
    let headers = to_headers(&message.headers)?.unwrap_or_default();
    let result = match message.reply_to {
        Some(reply) => client.publish_with_reply_and_headers(message.subject, reply, headers, message.payload).await,
        None => client.publish_with_headers(message.subject, headers, message.payload).await,
    };
    result.map_err(|err| match err.kind() {
        async_nats::client::PublishErrorKind::MaxPayloadExceeded => MessagingError::Other(format!("the message is larger than the server's max payload ({} bytes)", client.server_info().max_payload)),
        async_nats::client::PublishErrorKind::InvalidSubject => MessagingError::Other("invalid subject".to_string()),
        _ => MessagingError::Connection(err.to_string()),
    })
}

pub(crate) fn from_nats(message: async_nats::Message) -> Message {
    let mut headers = Vec::new();
    if let Some(map) = &message.headers {
        for (name, values) in map.iter() {
            for value in values {
                headers.push((name.to_string(), value.as_str().to_string()));
            }
        }
        headers.sort_by(|a, b| a.0.cmp(&b.0));
    }
    Message {
        subject: message.subject.to_string(),
        payload: message.payload,
        reply_to: message.reply.map(|r| r.to_string()),
        headers,
    }
}

/// A JetStream durable pull consumer that re-establishes itself after errors.
pub(crate) struct Durable {
    js: jetstream::Context,
    client: async_nats::Client,
    pattern: String,
    durable: String,
    options: DurableOptions,
    messages: Option<pull::Stream>,
    /// Whether the consumer was set up once (after that, a missing consumer is waited for).
    established: bool,
    /// Since when the consumer has been missing on re-establishing (see [`Durable::setup`]).
    missing_since: Option<std::time::Instant>,
    _runtime: Arc<OwnRuntime>,
}

/// How long a durable consumer that existed may be missing (a JetStream server still restoring its
/// state after a restart) before Kiln creates it afresh, which redelivers the stream's history.
const RECREATE_AFTER: Duration = Duration::from_secs(30);

/// `KILN_<DURABLE>`: stream names allow no `.`, `*`, `>` or whitespace; durables are letters, digits,
/// `-` and `_` already.
fn stream_name(durable: &str) -> String {
    format!("KILN_{}", durable.to_ascii_uppercase())
}

impl Durable {
    /// Finds (or creates) the stream covering the pattern and the durable consumer, and starts
    /// pulling.
    async fn setup(&mut self) -> Result<(), MessagingError> {
        let stream = self.stream().await?;
        let config = pull::Config {
            durable_name: Some(self.durable.clone()),
            filter_subject: self.pattern.clone(),
            ack_policy: jetstream::consumer::AckPolicy::Explicit,
            ack_wait: self.options.ack_wait,
            deliver_policy: jetstream::consumer::DeliverPolicy::All,
            // Kiln counts deliveries itself and dead-letters at `max_deliver`; the server never drops
            // a message silently.
            max_deliver: -1,
            ..Default::default()
        };
        // Re-establishing: a consumer the server does not know (yet) is waited for, not created at
        // once. A server that restarts may answer before it has restored its consumers, and a new
        // consumer would deliver the whole stream again, messages already acked included.
        if self.established
            && let Err(err) = stream.get_consumer::<pull::Config>(&self.durable).await
        {
            let since = *self.missing_since.get_or_insert_with(std::time::Instant::now);
            if since.elapsed() < RECREATE_AFTER {
                return Err(MessagingError::Other(format!("JetStream consumer `{}` is not there (yet): {err}", self.durable)));
            }
            tracing::warn!("JetStream consumer `{}` has been missing for {RECREATE_AFTER:?}; creating it again (it starts from the beginning of the stream)", self.durable);
        }
        let consumer = stream
            .get_or_create_consumer(&self.durable, config)
            .await
            .map_err(|e| MessagingError::Other(format!("cannot create JetStream consumer `{}`: {e}", self.durable)))?;
        self.established = true;
        self.missing_since = None;
        let messages = consumer
            .stream()
            .max_messages_per_batch(self.options.batch)
            .heartbeat(Duration::from_secs(5))
            .expires(Duration::from_secs(30))
            .messages()
            .await
            .map_err(|e| MessagingError::Other(format!("cannot pull from JetStream consumer `{}`: {e}", self.durable)))?;
        self.messages = Some(messages);
        Ok(())
    }

    async fn stream(&self) -> Result<jetstream::stream::Stream, MessagingError> {
        match self.js.stream_by_subject(self.pattern.clone()).await {
            Ok(name) => {
                let stream = self.js.get_stream(&name).await.map_err(|e| MessagingError::Other(format!("cannot read JetStream stream `{name}`: {e}")))?;
                let subjects = &stream.cached_info().config.subjects;
                if !subjects.iter().any(|s| subject::covers(s, &self.pattern)) {
                    return Err(MessagingError::Other(format!(
                        "JetStream stream `{name}` (subjects {subjects:?}) overlaps `{}` but does not cover all of it; \
                         add the subject to that stream or use a subject it covers",
                        self.pattern
                    )));
                }
                Ok(stream)
            }
            Err(err) if err.kind() == jetstream::context::GetStreamByNameErrorKind::NotFound => {
                let name = stream_name(&self.durable);
                tracing::info!("JetStream: creating stream `{name}` for subject `{}`", self.pattern);
                self.js
                    .get_or_create_stream(stream::Config {
                        name: name.clone(),
                        subjects: vec![self.pattern.clone()],
                        storage: stream::StorageType::File,
                        retention: stream::RetentionPolicy::Limits,
                        max_age: STREAM_MAX_AGE,
                        ..Default::default()
                    })
                    .await
                    .map_err(|e| MessagingError::Other(format!("cannot create JetStream stream `{name}` for `{}`: {e}", self.pattern)))
            }
            Err(err) => Err(MessagingError::Connection(format!("cannot look up JetStream streams (is JetStream enabled on the server?): {err}"))),
        }
    }

    pub(crate) async fn next(&mut self) -> Option<Delivery> {
        let mut backoff = Duration::from_millis(100);
        loop {
            let Some(messages) = &mut self.messages else {
                // Re-establish after the pull stream ended (consumer deleted, server gone a long time).
                if let Err(err) = self.setup().await {
                    tracing::warn!("JetStream consumer `{}`: {err}; retrying in {backoff:?}", self.durable);
                    tokio::time::sleep(backoff).await;
                    backoff = (backoff * 2).min(Duration::from_secs(5));
                }
                continue;
            };
            match messages.next().await {
                Some(Ok(message)) => {
                    let attempt = message.info().map(|i| i.delivered).unwrap_or(1).clamp(1, u32::MAX as i64) as u32;
                    let (message, acker) = message.split();
                    // A JetStream message's reply subject is its ack subject: Kiln's business, not
                    // the handler's (JetStream keeps no reply subject of the original publish).
                    let message = Message { reply_to: None, ..from_nats(message) };
                    return Some(Delivery {
                        message,
                        attempt,
                        max_deliver: self.options.max_deliver,
                        durable: self.durable.clone(),
                        acker: crate::Acker::Nats(Box::new(Acker { acker, client: self.client.clone(), delay: self.options.redelivery_delay })),
                    });
                }
                Some(Err(err)) => {
                    // Missed heartbeats and the like while the server restarts: the stream goes on
                    // and re-issues its pull requests once the connection is back.
                    tracing::debug!("JetStream consumer `{}`: {err}", self.durable);
                    if matches!(err.kind(), pull::MessagesErrorKind::ConsumerDeleted) {
                        self.messages = None;
                    }
                    tokio::time::sleep(Duration::from_millis(50)).await;
                }
                None => {
                    tracing::warn!("JetStream consumer `{}`: the pull stream ended; re-creating it", self.durable);
                    self.messages = None;
                }
            }
        }
    }
}

pub(crate) struct Acker {
    acker: jetstream::message::Acker,
    client: async_nats::Client,
    delay: Duration,
}

fn ack_error(err: impl std::fmt::Display) -> MessagingError {
    MessagingError::Connection(format!("cannot acknowledge the message: {err}"))
}

impl Acker {
    /// `+ACK`, confirmed by the server.
    pub(crate) async fn ack(&self) -> Result<(), MessagingError> {
        self.acker.double_ack().await.map_err(ack_error)
    }

    /// `-NAK` with the redelivery delay.
    pub(crate) async fn nak(&self) -> Result<(), MessagingError> {
        self.acker.ack_with(jetstream::AckKind::Nak(Some(self.delay))).await.map_err(ack_error)
    }

    /// Publishes the dead letter, waits until the server has it, then `+TERM`s the original. If the
    /// publish fails the original is nak'ed (redelivered later), never dropped.
    pub(crate) async fn dead_letter(&self, dead: Message) -> Result<(), MessagingError> {
        let published = match publish(&self.client, dead).await {
            Ok(()) => self.client.flush().await.map_err(|e| MessagingError::Connection(e.to_string())),
            Err(err) => Err(err),
        };
        if let Err(err) = published {
            let _ = self.nak().await;
            return Err(err);
        }
        self.acker.ack_with(jetstream::AckKind::Term).await.map_err(ack_error)
    }
}
