//! Redis as the message broker (`[messaging] type = "redis"`).
//!
//! - **Plain subscriptions** are Redis Pub/Sub: the channel is the subject, a wildcard pattern is a
//!   `PSUBSCRIBE` glob, narrowed to NATS's token rules on arrival. At most once, as core NATS: a
//!   subscriber that is disconnected misses what is published meanwhile.
//! - **Durable consumers** are Redis Streams with consumer groups: stream `kiln:msg:durable:<name>`,
//!   group `<name>`. The publish script appends every message whose subject matches a registered
//!   durable's pattern ([`DURABLES`]) before it publishes on the channel, in one server-side step.
//!   A delivery is pending until [`Acker::ack`] (`XACK` + `XDEL`, so a stream holds only unsettled
//!   messages); one a consumer never settles (its host died) is claimed by another consumer after
//!   `ack_wait` (`XAUTOCLAIM`), with Redis's delivery count as the attempt.
//! - **Queue groups** are consumer groups too (`kiln:msg:queue:<group>:<pattern>`, [`QUEUES`]),
//!   acknowledged as they are taken: each message goes to one member across hosts. Such a stream
//!   keeps at most [`QUEUE_MAX_LEN`] messages for a group with no member.
//! - **Requests** publish with a reply subject a fresh subscription listens on; a publish nobody
//!   received (no channel subscriber, no stream) is [`MessagingError::NoResponders`].
//!
//! Messages with headers or a reply subject travel on a channel as an envelope
//! (`KILN/1 <subject> [<reply>]\n`, `name: value` lines, an empty line, the payload); others are the
//! bare payload, so `redis-cli PUBLISH orders.created hi` reaches a Kiln subscriber and a Kiln publish
//! reaches any Redis subscriber. A stream entry has the fields `subject`, `payload` and, when set,
//! `reply` and `headers`: another program may `XADD` to a durable's stream with `subject` and `payload`.
//!
//! Durables keep messages for [`STREAM_MAX_AGE`], as Kiln's JetStream streams do. Nothing Redis has
//! acknowledged is lost by Kiln; whether Redis keeps it across its own crash is Redis's persistence
//! setting (`appendonly yes`, `appendfsync always` for none lost).

use crate::own_runtime::OwnRuntime;
use crate::{Delivery, DurableOptions, Message, MessagingError, subject};
use bytes::Bytes;
use futures::StreamExt;
use redis::Value;
use redis::aio::{ConnectionManager, ConnectionManagerConfig, MultiplexedConnection};
use std::collections::VecDeque;
use std::future::Future;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};
use tokio::sync::mpsc;

/// Hash of the durable consumers' streams: field = stream key, value = subject pattern.
pub(crate) const DURABLES: &str = "kiln:msg:durables";
/// Hash of the queue groups' streams, as [`DURABLES`].
pub(crate) const QUEUES: &str = "kiln:msg:queues";
const DURABLE_STREAM_PREFIX: &str = "kiln:msg:durable:";
const QUEUE_STREAM_PREFIX: &str = "kiln:msg:queue:";
/// How long a durable's stream keeps a message nobody settled (as Kiln's JetStream streams).
pub(crate) const STREAM_MAX_AGE: Duration = Duration::from_secs(7 * 24 * 3600);
/// Messages a queue group's stream keeps (approximately) while no member reads it.
pub(crate) const QUEUE_MAX_LEN: u64 = 10_000;
/// The largest payload accepted (NATS's default max payload, so both brokers take the same).
pub(crate) const MAX_PAYLOAD: usize = 1 << 20;
/// The longest one Redis exchange may take.
const CALL_TIMEOUT: Duration = Duration::from_secs(5);
/// Messages a plain subscriber may have waiting before new ones are dropped for it.
const SUBSCRIBER_CAPACITY: usize = crate::inprocess::CHANNEL_CAPACITY;
/// How often a consumer looks for deliveries other consumers left unsettled.
const CLAIM_EVERY: Duration = Duration::from_secs(1);
/// A consumer that has been silent this long and holds nothing is removed from its group.
const FORGET_CONSUMER_AFTER: Duration = Duration::from_secs(600);
const ENVELOPE_MAGIC: &[u8] = b"KILN/1 ";

/// A stream entry's fields, as Redis returns them.
type Fields = Vec<(Vec<u8>, Vec<u8>)>;
/// A stream entry: its id and fields.
type Entry = (String, Fields);

/// Appends the message to every stream whose pattern matches its subject, then publishes it on the
/// subject's channel. KEYS: [`DURABLES`], [`QUEUES`]. ARGV: subject, payload, reply (or ""),
/// headers (or ""), channel message, durable max age in ms, queue max length. Returns
/// `{streams appended to, channel receivers}`.
const PUBLISH_SCRIPT: &str = r"
local function tokens(s)
  local t = {}
  for token in string.gmatch(s, '[^.]+') do t[#t + 1] = token end
  return t
end
local subject = tokens(ARGV[1])
local function matches(pattern)
  local p = tokens(pattern)
  for i = 1, #p do
    if p[i] == '>' then return #subject >= i end
    if subject[i] == nil then return false end
    if p[i] ~= '*' and p[i] ~= subject[i] then return false end
  end
  return #p == #subject
end
local function entry(trim)
  local args = trim
  table.insert(args, '*')
  for _, v in ipairs({'subject', ARGV[1], 'payload', ARGV[2]}) do table.insert(args, v) end
  if ARGV[3] ~= '' then table.insert(args, 'reply'); table.insert(args, ARGV[3]) end
  if ARGV[4] ~= '' then table.insert(args, 'headers'); table.insert(args, ARGV[4]) end
  return args
end
local now = redis.call('TIME')
local min_id = tostring(tonumber(now[1]) * 1000 - tonumber(ARGV[6])) .. '-0'
local appended = 0
local durables = redis.call('HGETALL', KEYS[1])
for i = 1, #durables, 2 do
  if matches(durables[i + 1]) then
    redis.call('XADD', durables[i], unpack(entry({'MINID', '~', min_id})))
    appended = appended + 1
  end
end
local queues = redis.call('HGETALL', KEYS[2])
for i = 1, #queues, 2 do
  if matches(queues[i + 1]) then
    redis.call('XADD', queues[i], unpack(entry({'MAXLEN', '~', ARGV[7]})))
    appended = appended + 1
  end
end
return {appended, redis.call('PUBLISH', ARGV[1], ARGV[5])}
";

/// Settles a delivery: KEYS[1] = stream; ARGV = group, entry id. Returns what `XACK` returned.
const ACK_SCRIPT: &str = r"
local acked = redis.call('XACK', KEYS[1], ARGV[1], ARGV[2])
redis.call('XDEL', KEYS[1], ARGV[2])
return acked
";

struct Shared {
    client: redis::Client,
    connection: ConnectionManager,
    shown: String,
    publish: redis::Script,
    ack: redis::Script,
    /// This process's consumer names start with it: `<host>-<pid>`.
    me: String,
    next_id: AtomicU64,
    /// Why the last exchange with Redis failed, until one succeeds ([`RedisBroker::health`]).
    failing: std::sync::Mutex<Option<String>>,
    runtime: OwnRuntime,
}

pub(crate) struct RedisBroker {
    shared: Arc<Shared>,
}

/// The URL without its password.
fn redact(url: &str) -> String {
    match (url.find("://"), url.rfind('@')) {
        (Some(scheme), Some(at)) if at > scheme => format!("{}://{}", &url[..scheme], &url[at + 1..]),
        _ => url.to_string(),
    }
}

fn host_name() -> String {
    std::fs::read_to_string("/proc/sys/kernel/hostname")
        .ok()
        .map(|name| name.trim().to_string())
        .filter(|name| !name.is_empty())
        .or_else(|| std::env::var("HOSTNAME").ok())
        .unwrap_or_else(|| "kiln".to_string())
}

impl RedisBroker {
    /// Connects to Redis at `url` and checks that it answers. Blocking: call it at startup.
    pub(crate) fn connect(url: &str, connect_timeout: Duration) -> anyhow::Result<RedisBroker> {
        let shown = redact(url);
        let client = redis::Client::open(url).map_err(|err| anyhow::anyhow!("invalid Redis URL `{shown}`: {err}"))?;
        let runtime = OwnRuntime::new("kiln-redis-bus")?;
        let config = ConnectionManagerConfig::new()
            .set_connection_timeout(Some(connect_timeout))
            .set_response_timeout(Some(CALL_TIMEOUT))
            .set_number_of_retries(1)
            .set_max_delay(Duration::from_millis(500));
        let connecting = {
            let client = client.clone();
            runtime.spawn(async move {
                let mut connection = ConnectionManager::new_with_config(client, config).await?;
                redis::cmd("PING").query_async::<String>(&mut connection).await?;
                Ok::<_, redis::RedisError>(connection)
            })
        };
        let (tx, rx) = std::sync::mpsc::channel();
        runtime.spawn(async move {
            let _ = tx.send(connecting.await);
        });
        let connection = match rx.recv_timeout(connect_timeout + Duration::from_secs(2)) {
            Ok(Ok(Ok(connection))) => connection,
            Ok(Ok(Err(err))) => anyhow::bail!("cannot connect to Redis at {shown}: {err} (is redis-server running there?)"),
            Ok(Err(err)) => anyhow::bail!("cannot connect to Redis at {shown}: {err}"),
            Err(_) => anyhow::bail!("cannot connect to Redis at {shown}: no answer within {connect_timeout:?} (is redis-server running there?)"),
        };
        let me = format!("{}-{}", host_name(), std::process::id());
        Ok(RedisBroker {
            shared: Arc::new(Shared {
                client,
                connection,
                shown,
                publish: redis::Script::new(PUBLISH_SCRIPT),
                ack: redis::Script::new(ACK_SCRIPT),
                me,
                next_id: AtomicU64::new(1),
                failing: std::sync::Mutex::new(None),
                runtime,
            }),
        })
    }

    pub(crate) fn shown(&self) -> &str {
        &self.shared.shown
    }

    /// `Ok` unless the last exchange with Redis (a publish, an ack, a consumer's read, a
    /// subscription's ping) failed to reach it.
    pub(crate) fn health(&self) -> Result<(), String> {
        match &*self.shared.failing.lock().unwrap_or_else(|p| p.into_inner()) {
            None => Ok(()),
            Some(why) => Err(format!("{why}; retrying")),
        }
    }

    /// Publishes `message`; returns how many streams and channel subscribers took it.
    pub(crate) async fn publish(&self, message: Message) -> Result<u64, MessagingError> {
        self.shared.publish(message).await
    }

    pub(crate) async fn request(&self, message: Message, timeout: Duration, max_replies: usize) -> Result<Vec<Message>, MessagingError> {
        let inbox = format!("_INBOX.{}.{}", self.shared.me, self.shared.next_id.fetch_add(1, Ordering::Relaxed));
        let mut replies = self.subscribe(&inbox, None).await?;
        let subject = message.subject.clone();
        if self.shared.publish(Message { reply_to: Some(inbox), ..message }).await? == 0 {
            return Err(MessagingError::NoResponders(subject));
        }
        let deadline = tokio::time::Instant::now() + timeout;
        let mut got = Vec::new();
        while got.len() < max_replies {
            match tokio::time::timeout_at(deadline, replies.next()).await {
                Ok(Some(reply)) => got.push(reply),
                Ok(None) | Err(_) => break,
            }
        }
        crate::inprocess::replies_or_timeout(got)
    }

    /// A Pub/Sub subscription, or with `queue_group` a share of the group's stream.
    pub(crate) async fn subscribe(&self, pattern: &str, queue_group: Option<&str>) -> Result<Subscription, MessagingError> {
        let (tx, rx) = mpsc::channel(SUBSCRIBER_CAPACITY);
        let task = match queue_group {
            None => {
                let shared = self.shared.clone();
                let owned = pattern.to_string();
                let pubsub = self.shared.on_runtime(async move { shared.pubsub(&owned).await }).await??;
                self.shared.runtime.spawn(pump_channel(self.shared.clone(), pattern.to_string(), pubsub, tx))
            }
            Some(group) => {
                let stream = format!("{QUEUE_STREAM_PREFIX}{group}:{pattern}");
                let options = DurableOptions { max_deliver: u32::MAX, ..DurableOptions::default() };
                let mut consumer = StreamConsumer::new(self.shared.clone(), Route::queue(stream, group, pattern), options);
                consumer.set_up().await?;
                self.shared.runtime.spawn(pump_queue(consumer, tx))
            }
        };
        Ok(Subscription { rx, task })
    }

    pub(crate) async fn durable(&self, pattern: &str, durable: &str, options: DurableOptions) -> Result<Durable, MessagingError> {
        let route = Route::durable(durable, pattern);
        let mut consumer = StreamConsumer::new(self.shared.clone(), route, options);
        consumer.set_up().await?;
        Ok(Durable { consumer })
    }
}

impl Shared {
    /// Runs `future` on the broker's runtime, bounded by [`CALL_TIMEOUT`], and notes whether it
    /// reached Redis ([`RedisBroker::health`]).
    async fn on_runtime<T: Send + 'static>(&self, future: impl Future<Output = Result<T, MessagingError>> + Send + 'static) -> Result<Result<T, MessagingError>, MessagingError> {
        let shown = self.shown.clone();
        let task = self.runtime.spawn(async move {
            match tokio::time::timeout(CALL_TIMEOUT, future).await {
                Ok(result) => result,
                Err(_) => Err(MessagingError::Connection(format!("Redis at {shown} did not answer within {} s", CALL_TIMEOUT.as_secs()))),
            }
        });
        let result = task.await.map_err(|err| MessagingError::Other(format!("Redis broker task: {err}")))?;
        match &result {
            Err(MessagingError::Connection(why)) => self.note_failure(why.clone()),
            Ok(_) => self.note_success(),
            Err(_) => {}
        }
        Ok(result)
    }

    fn note_failure(&self, why: String) {
        *self.failing.lock().unwrap_or_else(|p| p.into_inner()) = Some(why);
    }

    fn note_success(&self) {
        let mut failing = self.failing.lock().unwrap_or_else(|p| p.into_inner());
        if failing.is_some() {
            *failing = None;
        }
    }

    /// One exchange on the shared connection.
    async fn call<T: Send + 'static, Fut>(&self, exchange: impl FnOnce(ConnectionManager) -> Fut) -> Result<T, MessagingError>
    where
        Fut: Future<Output = redis::RedisResult<T>> + Send + 'static,
    {
        let shown = self.shown.clone();
        let exchange = exchange(self.connection.clone());
        self.on_runtime(async move { exchange.await.map_err(|err| redis_error(&shown, err)) }).await?
    }

    async fn publish(&self, message: Message) -> Result<u64, MessagingError> {
        check_headers(&message.headers)?;
        if message.payload.len() > MAX_PAYLOAD {
            return Err(MessagingError::Other(format!("the message is larger than the broker's max payload ({MAX_PAYLOAD} bytes)")));
        }
        let headers = header_lines(&message.headers);
        let on_channel = envelope(&message, &headers);
        let script = self.publish.clone();
        let (appended, received): (u64, u64) = self
            .call(move |mut connection| async move {
                script
                    .key(DURABLES)
                    .key(QUEUES)
                    .arg(&message.subject)
                    .arg(&message.payload[..])
                    .arg(message.reply_to.as_deref().unwrap_or(""))
                    .arg(&headers)
                    .arg(&on_channel[..])
                    .arg(STREAM_MAX_AGE.as_millis() as u64)
                    .arg(QUEUE_MAX_LEN)
                    .invoke_async(&mut connection)
                    .await
            })
            .await?;
        Ok(appended + received)
    }

    /// A Pub/Sub connection subscribed to `pattern` (on the broker's runtime).
    async fn pubsub(&self, pattern: &str) -> Result<redis::aio::PubSub, MessagingError> {
        let shown = &self.shown;
        let mut pubsub = self.client.get_async_pubsub().await.map_err(|err| redis_error(shown, err))?;
        let subscribed = match glob(pattern) {
            Some(glob) => pubsub.psubscribe(glob).await,
            None => pubsub.subscribe(pattern).await,
        };
        subscribed.map_err(|err| redis_error(shown, err))?;
        Ok(pubsub)
    }
}

fn redis_error(shown: &str, err: redis::RedisError) -> MessagingError {
    if err.is_io_error() || err.is_connection_dropped() || err.is_connection_refusal() || err.is_timeout() {
        MessagingError::Connection(format!("Redis at {shown}: {err}"))
    } else {
        MessagingError::Other(format!("Redis at {shown}: {err}"))
    }
}

/// The `PSUBSCRIBE` glob for a NATS pattern, or `None` for a pattern without wildcards. The glob may
/// match more (`*` spans dots); arrivals are checked with [`subject::matches`].
fn glob(pattern: &str) -> Option<String> {
    if !pattern.split('.').any(|token| token == "*" || token == ">") {
        return None;
    }
    let tokens: Vec<String> = pattern
        .split('.')
        .map(|token| match token {
            "*" | ">" => "*".to_string(),
            literal => literal.chars().flat_map(|c| if matches!(c, '*' | '?' | '[' | ']' | '\\') { vec!['\\', c] } else { vec![c] }).collect(),
        })
        .collect();
    Some(tokens.join("."))
}

/// Header names are printable ASCII without `:`; values are one line (as NATS requires).
fn check_headers(headers: &[(String, String)]) -> Result<(), MessagingError> {
    for (name, value) in headers {
        if name.is_empty() || !name.bytes().all(|b| b.is_ascii_graphic() && b != b':') {
            return Err(MessagingError::Other(format!("invalid header name `{name}`: use printable ASCII without `:`")));
        }
        if value.contains(['\r', '\n']) {
            return Err(MessagingError::Other(format!("invalid value for header `{name}`: it must be one line")));
        }
    }
    Ok(())
}

/// `name: value` lines.
fn header_lines(headers: &[(String, String)]) -> String {
    headers.iter().map(|(name, value)| format!("{name}: {value}\n")).collect()
}

fn parse_header_lines(text: &str) -> Vec<(String, String)> {
    text.lines()
        .filter_map(|line| line.split_once(':'))
        .map(|(name, value)| (name.to_string(), value.strip_prefix(' ').unwrap_or(value).to_string()))
        .collect()
}

/// What a publish sends on the channel: the bare payload, or an envelope when there are headers
/// or a reply subject.
fn envelope(message: &Message, headers: &str) -> Vec<u8> {
    if message.headers.is_empty() && message.reply_to.is_none() {
        return message.payload.to_vec();
    }
    let mut out = Vec::with_capacity(message.payload.len() + headers.len() + 64);
    out.extend_from_slice(ENVELOPE_MAGIC);
    out.extend_from_slice(message.subject.as_bytes());
    if let Some(reply) = &message.reply_to {
        out.push(b' ');
        out.extend_from_slice(reply.as_bytes());
    }
    out.push(b'\n');
    out.extend_from_slice(headers.as_bytes());
    out.push(b'\n');
    out.extend_from_slice(&message.payload);
    out
}

/// A message that arrived on `channel`: an envelope, or a bare payload.
fn from_channel(channel: &str, bytes: &[u8]) -> Message {
    parse_envelope(bytes).unwrap_or_else(|| Message::new(channel, Bytes::copy_from_slice(bytes)))
}

fn parse_envelope(bytes: &[u8]) -> Option<Message> {
    let rest = bytes.strip_prefix(ENVELOPE_MAGIC)?;
    let first_end = rest.iter().position(|b| *b == b'\n')?;
    let first = std::str::from_utf8(&rest[..first_end]).ok()?;
    let mut words = first.split(' ');
    let subject = words.next().filter(|s| !s.is_empty())?.to_string();
    let reply_to = words.next().map(str::to_string);
    let rest = &rest[first_end + 1..];
    let headers_end = if rest.first() == Some(&b'\n') { 0 } else { rest.windows(2).position(|w| w == b"\n\n")? + 1 };
    let headers = parse_header_lines(std::str::from_utf8(&rest[..headers_end]).ok()?);
    let payload = Bytes::copy_from_slice(&rest[headers_end + 1..]);
    Some(Message { subject, payload, reply_to, headers })
}

/// Messages of a subscription (Pub/Sub or a queue group's stream), fed by a task on the broker's
/// runtime that stops when this is dropped.
pub(crate) struct Subscription {
    rx: mpsc::Receiver<Message>,
    task: tokio::task::JoinHandle<()>,
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

const BACKOFF_START: Duration = Duration::from_millis(100);
const BACKOFF_MAX: Duration = Duration::from_secs(5);
const PING_EVERY: Duration = Duration::from_secs(10);

/// Forwards a Pub/Sub subscription's messages; resubscribes after the connection is lost (what was
/// published meanwhile is missed, as with core NATS).
async fn pump_channel(shared: Arc<Shared>, pattern: String, mut pubsub: redis::aio::PubSub, tx: mpsc::Sender<Message>) {
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

/// A queue group member: takes messages from the group's stream, settles them at once (at most
/// once, as a NATS queue subscription) and hands them on.
async fn pump_queue(mut consumer: StreamConsumer, tx: mpsc::Sender<Message>) {
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
struct Route {
    stream: String,
    group: String,
    pattern: String,
    /// [`DURABLES`] or [`QUEUES`].
    registry: &'static str,
    /// The name deliveries report (the durable's, or the queue group's).
    name: String,
}

impl Route {
    fn durable(durable: &str, pattern: &str) -> Route {
        Route { stream: format!("{DURABLE_STREAM_PREFIX}{durable}"), group: durable.to_string(), pattern: pattern.to_string(), registry: DURABLES, name: durable.to_string() }
    }

    fn queue(stream: String, group: &str, pattern: &str) -> Route {
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
    consumer: StreamConsumer,
}

impl Durable {
    pub(crate) async fn next(&mut self) -> Option<Delivery> {
        self.consumer.next().await
    }
}

/// One consumer of a stream's consumer group.
struct StreamConsumer {
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
    fn new(shared: Arc<Shared>, route: Route, options: DurableOptions) -> StreamConsumer {
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
    async fn set_up(&mut self) -> Result<(), MessagingError> {
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
        self.reader = Some(reader);
        Ok(())
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
        if self.reader.is_none() {
            self.set_up().await?;
        }
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
        let mut reader = self.reader.clone().expect("set up above");
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
            let message = entry_message(&self.route, &fields);
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
            let message = entry_message(&self.route, &fields);
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

/// The message of a stream entry.
fn entry_message(route: &Route, fields: &[(Vec<u8>, Vec<u8>)]) -> Message {
    let field = |name: &str| fields.iter().find(|(n, _)| n == name.as_bytes()).map(|(_, v)| v.as_slice());
    let text = |name: &str| field(name).map(|v| String::from_utf8_lossy(v).into_owned());
    Message {
        // An entry another program added without a subject is on the pattern it was read for.
        subject: text("subject").filter(|s| !s.is_empty()).unwrap_or_else(|| route.pattern.clone()),
        payload: Bytes::copy_from_slice(field("payload").unwrap_or_default()),
        reply_to: text("reply").filter(|s| !s.is_empty()),
        headers: text("headers").map(|h| parse_header_lines(&h)).unwrap_or_default(),
    }
}

fn bytes_of(value: &Value) -> Option<Vec<u8>> {
    match value {
        Value::BulkString(bytes) => Some(bytes.clone()),
        Value::SimpleString(text) => Some(text.clone().into_bytes()),
        Value::Int(n) => Some(n.to_string().into_bytes()),
        _ => None,
    }
}

fn items(value: &Value) -> Vec<&Value> {
    match value {
        Value::Array(items) | Value::Set(items) => items.iter().collect(),
        Value::Map(pairs) => pairs.iter().flat_map(|(k, v)| [k, v]).collect(),
        _ => Vec::new(),
    }
}

/// `XREADGROUP`'s reply: `[[stream, entries]]` (or nil when nothing came).
fn read_entries(reply: &Value) -> Vec<Entry> {
    match reply {
        Value::Map(streams) => streams.iter().flat_map(|(_, entries)| parse_entries(entries)).collect(),
        _ => items(reply).into_iter().flat_map(|stream| items(stream).get(1).map(|entries| parse_entries(entries)).unwrap_or_default()).collect(),
    }
}

/// `[[id, [field, value, …]], …]`; entries deleted meanwhile come as `[id, nil]` and are skipped.
fn parse_entries(entries: &Value) -> Vec<Entry> {
    items(entries)
        .into_iter()
        .filter_map(|entry| {
            let parts = items(entry);
            let id = String::from_utf8(bytes_of(parts.first()?)?).ok()?;
            let flat = items(parts.get(1)?);
            if flat.is_empty() {
                return None;
            }
            let fields = flat.chunks(2).filter_map(|pair| Some((bytes_of(pair.first()?)?, bytes_of(pair.get(1)?)?))).collect();
            Some((id, fields))
        })
        .collect()
}

/// The delivery count in `XPENDING key group id id 1`'s reply.
fn delivery_count(reply: &Value) -> Option<u32> {
    let first = items(reply).into_iter().next()?;
    match items(first).get(3)? {
        Value::Int(n) => u32::try_from(*n).ok(),
        _ => None,
    }
}

/// `(name, pending, idle ms)` of each consumer in `XINFO CONSUMERS`' reply.
fn consumer_infos(reply: &Value) -> Vec<(String, i64, i64)> {
    items(reply)
        .into_iter()
        .filter_map(|consumer| {
            let flat = items(consumer);
            let get = |key: &str| flat.chunks(2).find(|pair| pair.first().and_then(|k| bytes_of(k)).is_some_and(|k| k == key.as_bytes())).and_then(|pair| pair.get(1).copied());
            let name = String::from_utf8(bytes_of(get("name")?)?).ok()?;
            let number = |key: &str| match get(key) {
                Some(Value::Int(n)) => Some(*n),
                _ => None,
            };
            Some((name, number("pending")?, number("idle")?))
        })
        .collect()
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn globs_escape_literals_and_widen_wildcards() {
        assert_eq!(glob("orders.created"), None);
        assert_eq!(glob("orders.*").as_deref(), Some("orders.*"));
        assert_eq!(glob("orders.>").as_deref(), Some("orders.*"));
        assert_eq!(glob("a[1]?.*").as_deref(), Some("a\\[1\\]\\?.*"));
    }

    #[test]
    fn envelopes_round_trip_and_bare_payloads_pass() {
        let message = Message {
            subject: "orders.created".into(),
            payload: Bytes::from_static(b"body\n\nwith blank lines"),
            reply_to: Some("_INBOX.x.1".into()),
            headers: vec![("trace".into(), "t: 1".into()), ("k".into(), "".into())],
        };
        let bytes = envelope(&message, &header_lines(&message.headers));
        assert_eq!(from_channel("ignored", &bytes), message);
        let no_headers = Message { headers: vec![], ..message.clone() };
        assert_eq!(from_channel("ignored", &envelope(&no_headers, "")), no_headers);
        let bare = Message::new("orders.created", "plain");
        assert_eq!(envelope(&bare, ""), b"plain");
        assert_eq!(from_channel("orders.created", b"plain"), bare);
        // Garbage after the magic is a bare payload, not a panic.
        for garbage in [&b"KILN/1 "[..], b"KILN/1 x", b"KILN/1 x\nname: v", b"KILN/1 \n\n"] {
            assert_eq!(from_channel("c", garbage).payload, garbage);
        }
    }

    #[test]
    fn headers_are_checked() {
        assert!(check_headers(&[("ok-name".into(), "a value".into())]).is_ok());
        for bad in [("".to_string(), "v".to_string()), ("a:b".into(), "v".into()), ("a b".into(), "v".into()), ("n".into(), "two\nlines".into())] {
            assert!(check_headers(std::slice::from_ref(&bad)).is_err(), "{bad:?}");
        }
    }
}
