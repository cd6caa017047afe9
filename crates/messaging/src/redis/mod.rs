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

mod channel;
mod stream;
mod wire;

pub(crate) use channel::Subscription;
pub(crate) use stream::{Acker, Durable};

use crate::own_runtime::OwnRuntime;
use crate::{DurableOptions, Message, MessagingError};
use redis::aio::{ConnectionManager, ConnectionManagerConfig};
use std::future::Future;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;
use stream::{Route, StreamConsumer};
use tokio::sync::mpsc;
use wire::{check_headers, envelope, glob, header_lines};

/// Hash of the durable consumers' streams: field = stream key, value = subject pattern.
pub(crate) const DURABLES: &str = "kiln:msg:durables";
/// Hash of the queue groups' streams, as [`DURABLES`].
pub(crate) const QUEUES: &str = "kiln:msg:queues";
pub(super) const DURABLE_STREAM_PREFIX: &str = "kiln:msg:durable:";
pub(super) const QUEUE_STREAM_PREFIX: &str = "kiln:msg:queue:";
/// How long a durable's stream keeps a message nobody settled (as Kiln's JetStream streams).
pub(crate) const STREAM_MAX_AGE: Duration = Duration::from_secs(7 * 24 * 3600);
/// Messages a queue group's stream keeps (approximately) while no member reads it.
pub(crate) const QUEUE_MAX_LEN: u64 = 10_000;
/// The largest payload accepted (NATS's default max payload, so both brokers take the same).
pub(crate) const MAX_PAYLOAD: usize = 1 << 20;
/// The longest one Redis exchange may take.
pub(super) const CALL_TIMEOUT: Duration = Duration::from_secs(5);
/// Messages a plain subscriber may have waiting before new ones are dropped for it.
pub(super) const SUBSCRIBER_CAPACITY: usize = crate::inprocess::CHANNEL_CAPACITY;
/// How often a consumer looks for deliveries other consumers left unsettled.
pub(super) const CLAIM_EVERY: Duration = Duration::from_secs(1);
/// A consumer that has been silent this long and holds nothing is removed from its group.
pub(super) const FORGET_CONSUMER_AFTER: Duration = Duration::from_secs(600);
pub(super) const ENVELOPE_MAGIC: &[u8] = b"KILN/1 ";

/// A stream entry's fields, as Redis returns them.
pub(super) type Fields = Vec<(Vec<u8>, Vec<u8>)>;
/// A stream entry: its id and fields.
pub(super) type Entry = (String, Fields);

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

pub(super) struct Shared {
    pub(super) client: redis::Client,
    pub(super) connection: ConnectionManager,
    pub(super) shown: String,
    pub(super) publish: redis::Script,
    pub(super) ack: redis::Script,
    /// This process's consumer names start with it: `<host>-<pid>`.
    pub(super) me: String,
    pub(super) next_id: AtomicU64,
    /// Why the last exchange with Redis failed, until one succeeds ([`RedisBroker::health`]).
    pub(super) failing: std::sync::Mutex<Option<String>>,
    pub(super) runtime: OwnRuntime,
}

pub(crate) struct RedisBroker {
    shared: Arc<Shared>,
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
        let shown = crate::redact(url);
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
                self.shared.runtime.spawn(channel::pump_channel(self.shared.clone(), pattern.to_string(), pubsub, tx))
            }
            Some(group) => {
                let stream = format!("{QUEUE_STREAM_PREFIX}{group}:{pattern}");
                let options = DurableOptions { max_deliver: u32::MAX, ..DurableOptions::default() };
                let mut consumer = StreamConsumer::new(self.shared.clone(), Route::queue(stream, group, pattern), options);
                consumer.set_up().await?;
                self.shared.runtime.spawn(stream::pump_queue(consumer, tx))
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
    pub(super) async fn on_runtime<T: Send + 'static>(&self, future: impl Future<Output = Result<T, MessagingError>> + Send + 'static) -> Result<Result<T, MessagingError>, MessagingError> {
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

    pub(super) fn note_failure(&self, why: String) {
        *self.failing.lock().unwrap_or_else(|p| p.into_inner()) = Some(why);
    }

    pub(super) fn note_success(&self) {
        let mut failing = self.failing.lock().unwrap_or_else(|p| p.into_inner());
        if failing.is_some() {
            *failing = None;
        }
    }

    /// One exchange on the shared connection.
    pub(super) async fn call<T: Send + 'static, Fut>(&self, exchange: impl FnOnce(ConnectionManager) -> Fut) -> Result<T, MessagingError>
    where
        Fut: Future<Output = redis::RedisResult<T>> + Send + 'static,
    {
        let shown = self.shown.clone();
        let exchange = exchange(self.connection.clone());
        self.on_runtime(async move { exchange.await.map_err(|err| redis_error(&shown, err)) }).await?
    }

    pub(super) async fn publish(&self, message: Message) -> Result<u64, MessagingError> {
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
    pub(super) async fn pubsub(&self, pattern: &str) -> Result<redis::aio::PubSub, MessagingError> {
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

pub(super) fn redis_error(shown: &str, err: redis::RedisError) -> MessagingError {
    if err.is_io_error() || err.is_connection_dropped() || err.is_connection_refusal() || err.is_timeout() {
        MessagingError::Connection(format!("Redis at {shown}: {err}"))
    } else {
        MessagingError::Other(format!("Redis at {shown}: {err}"))
    }
}

