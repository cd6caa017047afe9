//! Messaging for guests: `wasi:messaging@0.2.0-draft` (`types`, `producer`, `request-reply`) over
//! the app's [`kiln_messaging::Broker`], and the `incoming-handler` export the NATS trigger calls.
//!
//! The broker is chosen once per app in [`Capability::configure_app`]: the runtime config's
//! `[messaging]` section, else `[application.trigger.nats] url` (templates rendered), else the
//! in-process bus; apps choosing the same one share it. The NATS trigger takes the app's broker
//! from its [`MessagingApp`] ([`kiln_app::App::capability`]).
//!
//! Grants: every component may publish and request. Subjects starting with `$` (`$JS.…`, `$SYS.…`,
//! `$KV.…`: the broker's own APIs) are `permission-denied`; malformed subjects (empty, whitespace,
//! empty tokens, wildcards) are `other("invalid subject …")`. Nothing fails silently.
//!
//! Message mapping: `metadata` ↔ NATS headers; `content-type` ↔ header `content-type`; the reply
//! subject appears as metadata `reply-to` on received messages, and metadata `reply-to` on a sent
//! message becomes its reply subject (it is not sent as a header).
//!
//! wasmCloud's `wasmcloud:messaging@0.2.0` (`consumer` imports, `handler` export) is served over the
//! same broker, grants and subject checks: see [`wasmcloud`].

use anyhow::{Context, Result};
use kiln_app::{AppCapability, AppContext, Capability, ComponentContext};
use kiln_engine::{ComponentCapability, KilnState, LinkFn};
use kiln_messaging::{Broker, BrokerConfig, MessagingError};
use std::any::Any;
use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::Duration;
use wasmtime::component::{HasSelf, Linker, Resource, ResourceTable};

pub mod bindings {
    wasmtime::component::bindgen!({
        path: ["../../wit/messaging@0.2.0-draft"],
        world: "wasi:messaging/messaging-request-reply",
        imports: { default: async | trappable },
        exports: { default: async },
        with: {
            "wasi:messaging/types.client": crate::GuestClient,
            "wasi:messaging/types.message": crate::GuestMessage,
            "wasi:messaging/request-reply.request-options": crate::RequestOptions,
        },
    });
}

use bindings::wasi::messaging::{producer, request_reply, types};

pub mod wasmcloud;

/// The metadata key that carries a message's reply subject.
pub const REPLY_TO_KEY: &str = "reply-to";
/// The header that carries a message's content type.
pub const CONTENT_TYPE_HEADER: &str = "content-type";
/// How long `request` waits when the guest sets no timeout (the instance's deadline still applies).
pub const DEFAULT_REQUEST_TIMEOUT: Duration = Duration::from_secs(10);
/// Most replies one `request` collects.
pub const MAX_EXPECTED_REPLIES: u32 = 1000;
/// Most resources (clients, messages, options) one instance may hold at once.
pub const MAX_RESOURCES_PER_INSTANCE: usize = 10_000;

/// The messaging capability. Apps that choose the same broker share one connection (and, in
/// process, one bus: apps of one `kiln serve` host talk to each other through it).
#[derive(Clone, Default)]
pub struct Messaging {
    shared: Arc<Shared>,
}

#[derive(Default)]
struct Shared {
    /// The host's `[messaging] max_deliver`: the NATS trigger's redelivery is set up before any app.
    max_deliver: Option<u32>,
    /// What a component without `allowed_publish_subjects` may publish to.
    default_grant: DefaultGrant,
    /// Every broker opened so far, by what chose it.
    brokers: Mutex<HashMap<BrokerConfig, Broker>>,
    /// Set by [`Messaging::with_broker`]: every app uses it.
    fixed: Option<Broker>,
}

impl Messaging {
    /// `max_deliver`: the host's runtime config's `[messaging] max_deliver`, if it sets one. Each
    /// app's broker comes from its own runtime config ([`AppContext::runtime_config`]).
    pub fn new(max_deliver: Option<u32>) -> Messaging {
        Messaging { shared: Arc::new(Shared { max_deliver, ..Shared::default() }) }
    }

    /// For a host shared by many apps (`kiln serve`): a component publishes only to the subjects its
    /// `[component.<id>.tool.kiln] allowed_publish_subjects` lists, since the in-process bus and a
    /// shared NATS server carry other apps' messages too.
    pub fn for_shared_host() -> Messaging {
        Messaging { shared: Arc::new(Shared { default_grant: DefaultGrant::Nothing, ..Shared::default() }) }
    }

    /// Uses `broker` for every app instead of choosing one (tests, embedding).
    pub fn with_broker(broker: Broker) -> Messaging {
        Messaging { shared: Arc::new(Shared { fixed: Some(broker), ..Shared::default() }) }
    }

    /// The runtime config's `max_deliver`, if it sets one (for the NATS trigger's redelivery).
    pub fn max_deliver(&self) -> Option<u32> {
        self.shared.max_deliver
    }

    /// The broker `config` names, opened once and shared.
    fn broker(&self, config: &BrokerConfig) -> Result<Broker> {
        if let Some(broker) = &self.shared.fixed {
            return Ok(broker.clone());
        }
        let mut brokers = self.shared.brokers.lock().unwrap_or_else(|p| p.into_inner());
        if let Some(broker) = brokers.get(config) {
            return Ok(broker.clone());
        }
        let broker = Broker::from_config(config).context("messaging")?;
        brokers.insert(config.clone(), broker.clone());
        Ok(broker)
    }
}

/// The broker for an app: its runtime config's `[messaging]` (the host's under `kiln up`, the app's
/// own `runtime-config.toml` under `kiln serve`), else the manifest's NATS URL with `{{ variable }}`
/// templates rendered from application variables, else in-process.
pub fn broker_config(app: &AppContext<'_>) -> Result<BrokerConfig> {
    let url = match &app.manifest.application.nats_url {
        Some(template) => Some(
            app.variables
                .render_app_template(template)
                .map_err(|e| anyhow::anyhow!("[application.trigger.nats] url `{template}`: {e}"))?,
        ),
        None => None,
    };
    Ok(kiln_messaging::choose_broker(app.runtime_config.messaging.as_ref(), url.as_deref()))
}

impl Capability for Messaging {
    fn name(&self) -> &'static str {
        "messaging"
    }

    fn link(&self) -> LinkFn {
        link
    }

    fn configure_app(&self, app: &AppContext<'_>) -> Result<Box<dyn AppCapability>> {
        let config = broker_config(app)?;
        Ok(Box::new(MessagingApp { broker: self.broker(&config)?, default_grant: self.shared.default_grant, faults: kiln_app::BackendFaults::new(app, "messaging") }))
    }
}

fn link(linker: &mut Linker<KilnState>) -> Result<()> {
    bindings::MessagingRequestReply::add_to_linker::<KilnState, HasSelf<MessagingInstance>>(linker, |s| s.capability::<MessagingInstance>())?;
    wasmcloud::link(linker)

}

/// What a component that states no `allowed_publish_subjects` may publish to.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
enum DefaultGrant {
    /// Every subject (`kiln up`: the app is alone on its broker).
    #[default]
    Everything,
    /// None (`kiln serve`).
    Nothing,
}

/// The subjects one component may publish and send requests to.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum PublishGrant {
    Everything,
    /// Subject patterns (`orders.*`, `billing.>`).
    Subjects(Vec<String>),
}

impl PublishGrant {
    fn allows(&self, subject: &str) -> bool {
        match self {
            PublishGrant::Everything => true,
            PublishGrant::Subjects(patterns) => patterns.iter().any(|pattern| kiln_messaging::subject::matches(pattern, subject)),
        }
    }
}

/// The capability configured for one app.
pub struct MessagingApp {
    broker: Broker,
    default_grant: DefaultGrant,
    faults: kiln_app::BackendFaults,
}

impl MessagingApp {
    pub fn new(broker: Broker) -> MessagingApp {
        MessagingApp { broker, default_grant: DefaultGrant::Everything, faults: kiln_app::BackendFaults::default() }
    }

    /// The app's broker: the NATS trigger takes the app's messages from it.
    pub fn broker(&self) -> &Broker {
        &self.broker
    }

    pub fn component_state(&self) -> Arc<MessagingComponent> {
        Arc::new(MessagingComponent { broker: self.broker.clone(), grant: Arc::new(PublishGrant::Everything), faults: self.faults.clone() })
    }
}

impl AppCapability for MessagingApp {
    fn component(&self, context: &ComponentContext<'_>) -> Result<Arc<dyn ComponentCapability>> {
        let grant = match &context.component.allowed_publish_subjects {
            Some(subjects) => {
                for (pattern, span) in subjects {
                    kiln_messaging::subject::check_pattern(pattern).map_err(|err| {
                        context.manifest.error_at(
                            span,
                            format!("component `{}`: allowed_publish_subjects entry `{pattern}`: {err}", context.component.id),
                            "subjects look like `orders.created`, `orders.*` or `orders.>`",
                        )
                    })?;
                }
                PublishGrant::Subjects(subjects.iter().map(|(pattern, _)| pattern.clone()).collect())
            }
            None if self.default_grant == DefaultGrant::Everything => PublishGrant::Everything,
            None => PublishGrant::Subjects(Vec::new()),
        };
        Ok(Arc::new(MessagingComponent { broker: self.broker.clone(), grant: Arc::new(grant), faults: self.faults.clone() }))
    }
}

/// One component's prepared state.
pub struct MessagingComponent {
    broker: Broker,
    grant: Arc<PublishGrant>,
    faults: kiln_app::BackendFaults,
}

impl MessagingComponent {
    pub fn instance(&self) -> MessagingInstance {
        MessagingInstance {
            broker: self.broker.clone(),
            grant: self.grant.clone(),
            table: ResourceTable::new(),
            resources: 0,
            delivered_reply_to: None,
            link: None,
            faults: self.faults.clone(),
        }
    }
}

impl ComponentCapability for MessagingComponent {
    fn instance_state(&self) -> Box<dyn Any + Send> {
        Box::new(self.instance())
    }
}

/// A guest's `client`: the app's broker.
pub struct GuestClient {
    broker: Broker,
}

/// A guest's `message`.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct GuestMessage {
    pub topic: Option<String>,
    pub data: Vec<u8>,
    pub content_type: Option<String>,
    /// Metadata as the guest sees it (headers, plus `reply-to`).
    pub metadata: Vec<(String, String)>,
    /// The reply subject the broker delivered the message with (a guest can write `reply-to` in the
    /// metadata, but not this): replying to it needs no publish grant.
    pub delivered_reply_to: Option<String>,
}

impl GuestMessage {
    /// A received broker message as the guest sees it.
    pub fn from_broker(message: &kiln_messaging::Message) -> GuestMessage {
        let mut metadata = message.headers.clone();
        metadata.retain(|(k, _)| !k.eq_ignore_ascii_case(REPLY_TO_KEY));
        if let Some(reply) = &message.reply_to {
            metadata.push((REPLY_TO_KEY.to_string(), reply.clone()));
        }
        GuestMessage {
            topic: Some(message.subject.clone()),
            data: message.payload.to_vec(),
            content_type: message.header(CONTENT_TYPE_HEADER).map(str::to_string),
            metadata,
            delivered_reply_to: message.reply_to.clone(),
        }
    }

    /// The reply subject (metadata `reply-to`).
    pub fn reply_to(&self) -> Option<&str> {
        self.metadata.iter().find(|(k, _)| k.eq_ignore_ascii_case(REPLY_TO_KEY)).map(|(_, v)| v.as_str())
    }

    /// Headers to send: the metadata without `reply-to`, and `content-type` from the content type.
    fn headers(&self) -> Vec<(String, String)> {
        let mut headers: Vec<(String, String)> = self
            .metadata
            .iter()
            .filter(|(k, _)| !k.eq_ignore_ascii_case(REPLY_TO_KEY) && (self.content_type.is_none() || !k.eq_ignore_ascii_case(CONTENT_TYPE_HEADER)))
            .cloned()
            .collect();
        if let Some(ct) = &self.content_type {
            headers.push((CONTENT_TYPE_HEADER.to_string(), ct.clone()));
        }
        headers
    }
}

/// A guest's `request-options`.
#[derive(Clone, Debug, Default)]
pub struct RequestOptions {
    timeout: Option<Duration>,
    expected_replies: Option<u32>,
}

/// One instance's messaging state.
pub struct MessagingInstance {
    broker: Broker,
    grant: Arc<PublishGrant>,
    table: ResourceTable,
    resources: usize,
    /// The reply subject of the message the trigger delivered: a wasmCloud handler replies with an
    /// ordinary `publish` there, which needs no grant (as `request-reply.reply` needs none).
    delivered_reply_to: Option<String>,
    /// The link `wasmcloud:bus` selected for `wasmcloud:messaging` (`None`: `default`).
    link: Option<String>,
    faults: kiln_app::BackendFaults,
}

impl MessagingInstance {
    pub fn broker(&self) -> &Broker {
        &self.broker
    }

    /// The guest's view of a broker call's result; a broker that cannot be reached also counts as
    /// a backend fault.
    fn outcome<T>(&self, result: Result<T, MessagingError>) -> Result<T, types::Error> {
        if let Err(MessagingError::Connection(_)) = &result {
            self.faults.report(self.broker.kind());
        }
        result.map_err(to_wasi)
    }

    /// Puts a received message into the instance, for `incoming-handler.handle`.
    pub fn push_message(&mut self, message: GuestMessage) -> Result<Resource<GuestMessage>, types::Error> {
        self.push(message)
    }

    fn push<T: Send + 'static>(&mut self, value: T) -> Result<Resource<T>, types::Error> {
        if self.resources >= MAX_RESOURCES_PER_INSTANCE {
            return Err(types::Error::Other(format!("too many messaging resources in this instance (at most {MAX_RESOURCES_PER_INSTANCE})")));
        }
        let resource = self.table.push(value).map_err(|e| types::Error::Other(format!("cannot store the resource: {e}")))?;
        self.resources += 1;
        Ok(resource)
    }

    fn delete<T: 'static>(&mut self, resource: Resource<T>) -> Option<T> {
        let value = self.table.delete(resource).ok()?;
        self.resources = self.resources.saturating_sub(1);
        Some(value)
    }

    fn message(&self, message: &Resource<GuestMessage>) -> wasmtime::Result<&GuestMessage> {
        Ok(self.table.get(message)?)
    }

    fn message_mut(&mut self, message: &Resource<GuestMessage>) -> wasmtime::Result<&mut GuestMessage> {
        Ok(self.table.get_mut(message)?)
    }

    /// Whether the component may publish (or send a request) to `subject`. Replies are always
    /// allowed: they go to the subject the requester chose.
    fn check_granted(&self, subject: &str) -> Result<(), types::Error> {
        if self.grant.allows(subject) {
            return Ok(());
        }
        Err(types::Error::PermissionDenied(format!(
            "publishing to `{subject}` is not granted: list it (or a pattern covering it) in the component's `[component.<id>.tool.kiln] allowed_publish_subjects`"
        )))
    }

    fn client(&self, client: &Resource<GuestClient>) -> Result<Broker, types::Error> {
        self.table.get(client).map(|c| c.broker.clone()).map_err(|_| types::Error::Other("the client is not open".to_string()))
    }
}

/// Checks a subject the guest wants to publish or send a request to.
fn check_subject(subject: &str) -> Result<(), types::Error> {
    if subject.starts_with('$') {
        return Err(types::Error::PermissionDenied(format!("subject `{subject}` is reserved for the broker's own APIs")));
    }
    kiln_messaging::subject::check_publish_subject(subject).map_err(to_wasi)
}

fn trap(err: types::Error) -> wasmtime::Error {
    wasmtime::Error::msg(format!("{err:?}"))
}

fn to_wasi(err: MessagingError) -> types::Error {
    match err {
        MessagingError::Timeout => types::Error::Timeout,
        MessagingError::Connection(why) => types::Error::Connection(why),
        other => types::Error::Other(other.to_string()),
    }
}

// ---- types ----

impl types::Host for MessagingInstance {}

impl types::HostClient for MessagingInstance {
    async fn connect(&mut self, _name: String) -> wasmtime::Result<Result<Resource<GuestClient>, types::Error>> {
        let broker = self.broker.clone();
        Ok(self.push(GuestClient { broker }))
    }

    async fn disconnect(&mut self, _client: Resource<GuestClient>) -> wasmtime::Result<Result<(), types::Error>> {
        Ok(Ok(()))
    }

    async fn drop(&mut self, client: Resource<GuestClient>) -> wasmtime::Result<()> {
        self.delete(client);
        Ok(())
    }
}

impl types::HostMessage for MessagingInstance {
    async fn new(&mut self, data: Vec<u8>) -> wasmtime::Result<Resource<GuestMessage>> {
        self.push(GuestMessage { data, ..Default::default() }).map_err(trap)
    }

    async fn topic(&mut self, m: Resource<GuestMessage>) -> wasmtime::Result<Option<String>> {
        Ok(self.message(&m)?.topic.clone())
    }

    async fn content_type(&mut self, m: Resource<GuestMessage>) -> wasmtime::Result<Option<String>> {
        Ok(self.message(&m)?.content_type.clone())
    }

    async fn set_content_type(&mut self, m: Resource<GuestMessage>, content_type: String) -> wasmtime::Result<Result<(), ()>> {
        if content_type.contains(['\r', '\n']) {
            return Ok(Err(()));
        }
        self.message_mut(&m)?.content_type = Some(content_type);
        Ok(Ok(()))
    }

    async fn data(&mut self, m: Resource<GuestMessage>) -> wasmtime::Result<Vec<u8>> {
        Ok(self.message(&m)?.data.clone())
    }

    async fn set_data(&mut self, m: Resource<GuestMessage>, data: Vec<u8>) -> wasmtime::Result<()> {
        self.message_mut(&m)?.data = data;
        Ok(())
    }

    async fn metadata(&mut self, m: Resource<GuestMessage>) -> wasmtime::Result<Option<types::Metadata>> {
        let metadata = &self.message(&m)?.metadata;
        Ok(if metadata.is_empty() { None } else { Some(metadata.clone()) })
    }

    async fn add_metadata(&mut self, m: Resource<GuestMessage>, key: String, value: String) -> wasmtime::Result<Result<(), types::MetadataError>> {
        if let Err(e) = check_metadata(&key, &value) {
            return Ok(Err(e));
        }
        let message = self.message_mut(&m)?;
        message.metadata.retain(|(k, _)| !k.eq_ignore_ascii_case(&key));
        message.metadata.push((key, value));
        Ok(Ok(()))
    }

    async fn set_metadata(&mut self, m: Resource<GuestMessage>, meta: types::Metadata) -> wasmtime::Result<Result<(), types::MetadataError>> {
        for (k, v) in &meta {
            if let Err(e) = check_metadata(k, v) {
                return Ok(Err(e));
            }
        }
        self.message_mut(&m)?.metadata = meta;
        Ok(Ok(()))
    }

    async fn remove_metadata(&mut self, m: Resource<GuestMessage>, key: String) -> wasmtime::Result<()> {
        self.message_mut(&m)?.metadata.retain(|(k, _)| !k.eq_ignore_ascii_case(&key));
        Ok(())
    }

    async fn drop(&mut self, m: Resource<GuestMessage>) -> wasmtime::Result<()> {
        self.delete(m);
        Ok(())
    }
}

/// NATS header names: printable ASCII without `:`; values: one line.
fn check_metadata(key: &str, value: &str) -> Result<(), types::MetadataError> {
    if key.is_empty() || key.chars().any(|c| !c.is_ascii_graphic() || c == ':') {
        return Err(types::MetadataError::Invalid(Some(format!("invalid metadata key `{key}`: use printable ASCII without `:`"))));
    }
    if value.contains(['\r', '\n']) {
        return Err(types::MetadataError::Invalid(Some(format!("the value of `{key}` must be one line"))));
    }
    Ok(())
}

// ---- producer ----

impl producer::Host for MessagingInstance {
    async fn send(&mut self, c: Resource<GuestClient>, topic: String, m: Resource<GuestMessage>) -> wasmtime::Result<Result<(), types::Error>> {
        Ok(self.send_inner(c, topic, m).await)
    }
}

impl MessagingInstance {
    async fn send_inner(&mut self, c: Resource<GuestClient>, topic: String, m: Resource<GuestMessage>) -> Result<(), types::Error> {
        let broker = self.client(&c)?;
        // `message` is passed as `own`: it is consumed.
        let message = self.delete(m).ok_or_else(|| types::Error::Other("the message does not exist".to_string()))?;
        check_subject(&topic)?;
        self.check_granted(&topic)?;
        let reply_to = message.reply_to().map(str::to_string);
        if let Some(reply) = &reply_to {
            check_subject(reply)?;
            // Whoever answers publishes there on this component's behalf.
            self.check_granted(reply)?;
        }
        let sent = broker.publish(&topic, message.data.clone().into(), message.headers(), reply_to).await;
        self.outcome(sent)
    }
}

// ---- request-reply ----

impl request_reply::Host for MessagingInstance {
    async fn request(
        &mut self,
        c: Resource<GuestClient>,
        topic: String,
        m: Resource<GuestMessage>,
        options: Option<Resource<RequestOptions>>,
    ) -> wasmtime::Result<Result<Vec<Resource<GuestMessage>>, types::Error>> {
        Ok(self.request_inner(c, topic, m, options).await)
    }

    async fn reply(&mut self, reply_to: Resource<GuestMessage>, m: Resource<GuestMessage>) -> wasmtime::Result<Result<(), types::Error>> {
        Ok(self.reply_inner(reply_to, m).await)
    }
}

impl MessagingInstance {
    async fn request_inner(
        &mut self,
        c: Resource<GuestClient>,
        topic: String,
        m: Resource<GuestMessage>,
        options: Option<Resource<RequestOptions>>,
    ) -> Result<Vec<Resource<GuestMessage>>, types::Error> {
        let options = match options {
            Some(o) => self.delete(o).unwrap_or_default(),
            None => RequestOptions::default(),
        };
        let broker = self.client(&c)?;
        check_subject(&topic)?;
        self.check_granted(&topic)?;
        let message = self.table.get(&m).map_err(|_| types::Error::Other("the message does not exist".to_string()))?.clone();
        let timeout = options.timeout.unwrap_or(DEFAULT_REQUEST_TIMEOUT);
        let expected = options.expected_replies.unwrap_or(1).clamp(1, MAX_EXPECTED_REPLIES) as usize;
        let replies = broker.request_many(&topic, message.data.clone().into(), message.headers(), timeout, expected).await;
        let replies = self.outcome(replies)?;
        let mut resources = Vec::with_capacity(replies.len());
        for reply in &replies {
            resources.push(self.push(GuestMessage::from_broker(reply))?);
        }
        Ok(resources)
    }

    async fn reply_inner(&mut self, reply_to: Resource<GuestMessage>, m: Resource<GuestMessage>) -> Result<(), types::Error> {
        let message = self.delete(m).ok_or_else(|| types::Error::Other("the message does not exist".to_string()))?;
        let original = self.table.get(&reply_to).map_err(|_| types::Error::Other("the message replied to does not exist".to_string()))?;
        let subject = original
            .reply_to()
            .map(str::to_string)
            .ok_or_else(|| types::Error::Other("the message has no reply subject (it was not sent as a request)".to_string()))?;
        check_subject(&subject)?;
        // A reply to what the broker delivered needs no grant; a reply subject the guest wrote
        // itself is an ordinary publish.
        if original.delivered_reply_to.as_deref() != Some(subject.as_str()) {
            self.check_granted(&subject)?;
        }
        let headers = message.headers();
        let sent = self.broker.publish(&subject, message.data.into(), headers, None).await;
        self.outcome(sent)
    }
}

impl request_reply::HostRequestOptions for MessagingInstance {
    async fn new(&mut self) -> wasmtime::Result<Resource<RequestOptions>> {
        self.push(RequestOptions::default()).map_err(trap)
    }

    async fn set_timeout_ms(&mut self, o: Resource<RequestOptions>, timeout_ms: u32) -> wasmtime::Result<()> {
        self.table.get_mut(&o)?.timeout = Some(Duration::from_millis(timeout_ms.into()));
        Ok(())
    }

    async fn set_expected_replies(&mut self, o: Resource<RequestOptions>, expected_replies: u32) -> wasmtime::Result<()> {
        self.table.get_mut(&o)?.expected_replies = Some(expected_replies);
        Ok(())
    }

    async fn drop(&mut self, o: Resource<RequestOptions>) -> wasmtime::Result<()> {
        self.delete(o);
        Ok(())
    }
}

#[cfg(test)]
mod tests;
