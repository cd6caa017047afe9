//! `wasmcloud:messaging@0.2.0`, as wasmCloud components use it: `consumer.publish`,
//! `consumer.request` (with a timeout in milliseconds) and the `handler.handle-message` export the
//! NATS trigger calls. Served over the app's broker, with the same subject checks and publish grants
//! as `wasi:messaging`; errors are the WIT's `string`s.
//!
//! Where wasmCloud's semantics differ:
//! - a `broker-message` carries no headers: received headers are not shown, none are sent;
//! - a handler replies with an ordinary `publish` to its message's `reply-to`: that one subject
//!   needs no publish grant (wasi:messaging's `request-reply.reply` needs none either);
//! - links: Kiln gives each app one broker, linked as `default`; after `wasmcloud:bus` selected any
//!   other link name (1.0.0 does not check), `publish` and `request` fail with an error naming it.

use crate::{MessagingInstance, check_subject, types};
use anyhow::Result;
use kiln_engine::KilnState;
use std::time::Duration;
use wasmtime::component::{HasSelf, Linker};

pub mod bindings {
    wasmtime::component::bindgen!({
        path: ["../../wit/wasmcloud-messaging@0.2.0"],
        inline: "
            package kiln:wasmcloud-messaging;
            world handler {
                import wasmcloud:messaging/consumer@0.2.0;
                export wasmcloud:messaging/handler@0.2.0;
            }
        ",
        world: "kiln:wasmcloud-messaging/handler",
        imports: { default: async | trappable },
        exports: { default: async },
    });
}

pub use bindings::wasmcloud::messaging::types::BrokerMessage;
use bindings::wasmcloud::messaging::{consumer, types as wc_types};

/// The link name every component has.
pub const DEFAULT_LINK: &str = "default";

pub(crate) fn link(linker: &mut Linker<KilnState>) -> Result<()> {
    bindings::Handler::add_to_linker::<KilnState, HasSelf<MessagingInstance>>(linker, |s| s.capability::<MessagingInstance>())?;
    Ok(())
}

impl BrokerMessage {
    /// A received broker message as a wasmCloud handler sees it (no headers).
    pub fn from_broker(message: &kiln_messaging::Message) -> BrokerMessage {
        BrokerMessage { subject: message.subject.clone(), body: message.payload.to_vec(), reply_to: message.reply_to.clone() }
    }
}

impl MessagingInstance {
    /// Records the reply subject of the message the trigger is about to deliver: the handler may
    /// publish there without a grant.
    pub fn deliver_reply_to(&mut self, reply_to: Option<String>) {
        self.delivered_reply_to = reply_to;
    }

    /// Whether `wasmcloud:bus` may select link `name` for messaging: only `default` exists.
    pub fn has_link(&self, name: &str) -> bool {
        name == DEFAULT_LINK
    }

    /// Selects the link `publish` and `request` use from now on (unchecked: see the module docs).
    pub fn select_link(&mut self, name: &str) {
        self.link = (name != DEFAULT_LINK).then(|| name.to_string());
    }

    fn check_link(&self) -> Result<(), types::Error> {
        match &self.link {
            None => Ok(()),
            Some(name) => Err(types::Error::Connection(format!(
                "no broker is linked as `{name}`: Kiln gives each app one broker, linked as `{DEFAULT_LINK}`"
            ))),
        }
    }

    /// A wasmCloud publish: a reply to the delivered message needs no grant.
    async fn wasmcloud_publish(&mut self, msg: BrokerMessage) -> Result<(), types::Error> {
        self.check_link()?;
        check_subject(&msg.subject)?;
        if self.delivered_reply_to.as_deref() != Some(msg.subject.as_str()) {
            self.check_granted(&msg.subject)?;
        }
        if let Some(reply) = &msg.reply_to {
            check_subject(reply)?;
            // Whoever answers publishes there on this component's behalf.
            self.check_granted(reply)?;
        }
        let sent = self.broker.publish(&msg.subject, msg.body.into(), Vec::new(), msg.reply_to).await;
        self.outcome(sent)
    }

    async fn wasmcloud_request(&mut self, subject: String, body: Vec<u8>, timeout_ms: u32) -> Result<BrokerMessage, types::Error> {
        self.check_link()?;
        check_subject(&subject)?;
        self.check_granted(&subject)?;
        let timeout = Duration::from_millis(timeout_ms.into());
        let reply = self.broker.request(&subject, body.into(), Vec::new(), timeout).await;
        let reply = self.outcome(reply)?;
        Ok(BrokerMessage::from_broker(&reply))
    }
}

/// The WIT's `string` error: the case, then what went wrong.
pub fn error_string(err: &types::Error) -> String {
    match err {
        types::Error::Timeout => "timeout".to_string(),
        types::Error::Connection(why) => format!("connection: {why}"),
        types::Error::PermissionDenied(why) => format!("permission denied: {why}"),
        types::Error::Other(why) => why.clone(),
    }
}

impl wc_types::Host for MessagingInstance {}

impl consumer::Host for MessagingInstance {
    async fn request(&mut self, subject: String, body: Vec<u8>, timeout_ms: u32) -> wasmtime::Result<Result<BrokerMessage, String>> {
        Ok(self.wasmcloud_request(subject, body, timeout_ms).await.map_err(|e| error_string(&e)))
    }

    async fn publish(&mut self, msg: BrokerMessage) -> wasmtime::Result<Result<(), String>> {
        Ok(self.wasmcloud_publish(msg).await.map_err(|e| error_string(&e)))
    }
}
