//! The in-process bus: NATS subject semantics inside one kiln process.

use crate::{Delivery, DurableOptions, Message, MessagingError, subject};
use std::collections::HashMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, Weak};
use std::time::Duration;
use tokio::sync::mpsc;

/// Messages a subscriber may have waiting before new ones are dropped for it (NATS calls such a
/// subscriber a slow consumer).
pub(crate) const CHANNEL_CAPACITY: usize = 8192;
/// The queue group of durable consumer `name` is `$kiln.durable.<name>`.
const DURABLE_GROUP_PREFIX: &str = "$kiln.durable.";

/// A message and how often it was delivered (1 unless a durable consumer redelivers it).
pub(crate) struct Envelope {
    pub(crate) message: Message,
    pub(crate) attempt: u32,
}

pub(crate) struct Bus {
    state: Mutex<State>,
    next_inbox: AtomicU64,
    me: Weak<Bus>,
}

#[derive(Default)]
struct State {
    subs: Vec<Sub>,
    next_id: u64,
    /// Round-robin position per queue group.
    cursor: HashMap<String, usize>,
}

struct Sub {
    id: u64,
    pattern: String,
    queue: Option<String>,
    tx: mpsc::Sender<Envelope>,
}

impl Bus {
    pub(crate) fn new() -> Arc<Bus> {
        Arc::new_cyclic(|me| Bus { state: Mutex::new(State::default()), next_inbox: AtomicU64::new(1), me: me.clone() })
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, State> {
        // A panic while holding the lock cannot leave the registry inconsistent (every change is one
        // push or retain), so a poisoned lock is still usable.
        self.state.lock().unwrap_or_else(|poisoned| poisoned.into_inner())
    }

    pub(crate) fn subscribe(&self, pattern: &str, queue: Option<String>) -> Subscription {
        let (tx, rx) = mpsc::channel(CHANNEL_CAPACITY);
        let mut state = self.lock();
        state.next_id += 1;
        let id = state.next_id;
        state.subs.push(Sub { id, pattern: pattern.to_string(), queue, tx });
        Subscription { rx, id, bus: self.me.clone() }
    }

    fn unsubscribe(&self, id: u64) {
        self.lock().subs.retain(|s| s.id != id);
    }

    /// Delivers `message` to every matching plain subscriber and to one member of every matching
    /// queue group. Returns how many subscribers got it.
    ///
    /// A plain subscriber or queue group whose queue is full misses the message (at most once, as
    /// core NATS drops for a slow consumer). A durable consumer never does: the publisher waits for
    /// room in its queue (backpressure), so a message whose publish returned was taken in.
    pub(crate) async fn publish(&self, message: Message) -> usize {
        self.publish_envelope(Envelope { message, attempt: 1 }, None).await
    }

    /// With `only_group`, delivers only to that queue group (a durable consumer's redelivery).
    async fn publish_envelope(&self, envelope: Envelope, only_group: Option<&str>) -> usize {
        let (delivered, waiting) = self.offer(envelope, only_group);
        let mut taken = 0;
        for (tx, envelope) in waiting {
            let subject = envelope.message.subject.clone();
            match tx.send(envelope).await {
                Ok(()) => taken += 1,
                Err(_) => tracing::warn!("in-process bus: a durable consumer went away; a message on {subject} was dropped for it"),
            }
        }
        delivered + taken
    }

    /// Hands the envelope to every subscriber with room; returns how many took it, and the queues of
    /// durable consumers that had none (to wait on).
    fn offer(&self, envelope: Envelope, only_group: Option<&str>) -> (usize, Vec<(mpsc::Sender<Envelope>, Envelope)>) {
        let mut state = self.lock();
        let mut plain = Vec::new();
        let mut groups: Vec<(String, Vec<usize>)> = Vec::new();
        for (index, sub) in state.subs.iter().enumerate() {
            if sub.tx.is_closed() || !subject::matches(&sub.pattern, &envelope.message.subject) {
                continue;
            }
            match (&sub.queue, only_group) {
                (None, None) => plain.push(index),
                (None, Some(_)) => {}
                (Some(q), only) if only.is_none_or(|g| g == q) => match groups.iter_mut().find(|(name, _)| name == q) {
                    Some((_, members)) => members.push(index),
                    None => groups.push((q.clone(), vec![index])),
                },
                (Some(_), _) => {}
            }
        }
        let mut delivered = 0;
        let mut slow = Vec::new();
        let mut waiting = Vec::new();
        for index in plain {
            let sub = &state.subs[index];
            match sub.tx.try_send(Envelope { message: envelope.message.clone(), attempt: envelope.attempt }) {
                Ok(()) => delivered += 1,
                Err(_) => slow.push(sub.pattern.clone()),
            }
        }
        for (group, members) in groups {
            let start = state.cursor.get(&group).copied().unwrap_or(0);
            // The next member in turn; one whose queue is full is skipped.
            let mut sent = false;
            for offset in 0..members.len() {
                let index = members[(start + offset) % members.len()];
                let copy = Envelope { message: envelope.message.clone(), attempt: envelope.attempt };
                if state.subs[index].tx.try_send(copy).is_ok() {
                    state.cursor.insert(group.clone(), (start + offset + 1) % members.len());
                    delivered += 1;
                    sent = true;
                    break;
                }
            }
            if !sent && group.starts_with(DURABLE_GROUP_PREFIX) {
                let index = members[start % members.len()];
                state.cursor.insert(group.clone(), (start + 1) % members.len());
                waiting.push((state.subs[index].tx.clone(), Envelope { message: envelope.message.clone(), attempt: envelope.attempt }));
            } else if !sent {
                slow.push(format!("queue group {group}"));
            }
        }
        state.subs.retain(|s| !s.tx.is_closed());
        drop(state);
        for who in slow {
            tracing::warn!("in-process bus: a subscriber of {who} is not keeping up; a message on {} was dropped for it", envelope.message.subject);
        }
        (delivered, waiting)
    }

    pub(crate) async fn request(&self, mut message: Message, timeout: Duration, max_replies: usize) -> Result<Vec<Message>, MessagingError> {
        let inbox = format!("_INBOX.kiln.{}", self.next_inbox.fetch_add(1, Ordering::Relaxed));
        let mut replies = self.subscribe(&inbox, None);
        let subject = message.subject.clone();
        message.reply_to = Some(inbox);
        if self.publish(message).await == 0 {
            return Err(MessagingError::NoResponders(subject));
        }
        let deadline = tokio::time::Instant::now() + timeout;
        let mut got = Vec::new();
        while got.len() < max_replies {
            match tokio::time::timeout_at(deadline, replies.next()).await {
                Ok(Some(envelope)) => got.push(envelope.message),
                Ok(None) | Err(_) => break,
            }
        }
        replies_or_timeout(got)
    }

    pub(crate) fn durable(&self, pattern: &str, durable: &str, options: DurableOptions) -> Durable {
        let group = format!("{DURABLE_GROUP_PREFIX}{durable}");
        let sub = self.subscribe(pattern, Some(group.clone()));
        Durable { sub, group, durable: durable.to_string(), options, bus: self.me.clone() }
    }
}

/// What a request's replies came to: none at all is a timeout.
pub(crate) fn replies_or_timeout(replies: Vec<Message>) -> Result<Vec<Message>, MessagingError> {
    if replies.is_empty() { Err(MessagingError::Timeout) } else { Ok(replies) }
}

pub(crate) struct Subscription {
    rx: mpsc::Receiver<Envelope>,
    id: u64,
    bus: Weak<Bus>,
}

impl Subscription {
    pub(crate) async fn next(&mut self) -> Option<Envelope> {
        self.rx.recv().await
    }
}

impl Drop for Subscription {
    fn drop(&mut self) {
        if let Some(bus) = self.bus.upgrade() {
            bus.unsubscribe(self.id);
        }
    }
}

/// An in-process durable consumer: a queue group of its own, with redelivery.
pub(crate) struct Durable {
    sub: Subscription,
    group: String,
    durable: String,
    options: DurableOptions,
    bus: Weak<Bus>,
}

impl Durable {
    pub(crate) async fn next(&mut self) -> Option<Delivery> {
        let envelope = self.sub.next().await?;
        Some(Delivery {
            message: envelope.message,
            attempt: envelope.attempt,
            max_deliver: self.options.max_deliver,
            durable: self.durable.clone(),
            acker: crate::Acker::InProcess(Acker { bus: self.bus.clone(), group: self.group.clone(), delay: self.options.redelivery_delay }),
        })
    }
}

pub(crate) struct Acker {
    bus: Weak<Bus>,
    group: String,
    delay: Duration,
}

impl Acker {
    /// Puts the message back to the durable's group after the redelivery delay.
    pub(crate) fn redeliver(self, message: Message, attempt: u32) {
        let Acker { bus, group, delay } = self;
        let redeliver = async move {
            tokio::time::sleep(delay).await;
            if let Some(bus) = bus.upgrade() {
                let subject = message.subject.clone();
                if bus.publish_envelope(Envelope { message, attempt }, Some(&group)).await == 0 {
                    tracing::warn!("in-process bus: no consumer left for a redelivery on {subject}; the message is dropped");
                }
            }
        };
        match tokio::runtime::Handle::try_current() {
            Ok(handle) => {
                handle.spawn(redeliver);
            }
            Err(_) => tracing::warn!("in-process bus: redelivery needs a tokio runtime; the message is dropped"),
        }
    }

    pub(crate) async fn publish(self, message: Message) {
        if let Some(bus) = self.bus.upgrade() {
            bus.publish(message).await;
        }
    }
}
