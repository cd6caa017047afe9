//! `[[trigger.http]]` as a [`Trigger`] for `kiln up`: one app on its own listener. (`kiln serve`
//! routes many apps' requests through its front instead, building an [`HttpTrigger`] per app.)

use crate::{ConnectionLimits, HttpOptions, HttpTrigger, Server, check_routes};
use anyhow::{Context, Result};
use kiln_app::{App, BoxFuture, Draining, RunningTrigger, Trigger, TriggerContext, TriggerLimits};
use kiln_manifest::Manifest;
use std::net::{SocketAddr, TcpListener};
use std::sync::{Arc, Mutex};
use std::time::Duration;

/// The HTTP trigger of `kiln up`.
pub struct HttpListener {
    /// Bound before anything is loaded, so a taken port fails at once.
    listener: Mutex<Option<TcpListener>>,
    settings: ListenerSettings,
}

/// What `kiln up`'s flags and the manifest say of HTTP beyond the shared limits.
#[derive(Clone, Debug)]
pub struct ListenerSettings {
    /// Worker threads (one current-thread runtime each).
    pub workers: usize,
    /// How long a request waits for an instance before it gets 503.
    pub queue_timeout: Duration,
    /// Request bodies larger than this get 413.
    pub max_request_body: Option<u64>,
    /// On shutdown, how long in-flight requests may take to finish.
    pub grace: Duration,
    /// Header size and timeout, and open connections.
    pub connections: ConnectionLimits,
}

impl HttpListener {
    pub fn new(listener: TcpListener, settings: ListenerSettings) -> HttpListener {
        HttpListener { listener: Mutex::new(Some(listener)), settings }
    }
}

impl Trigger for HttpListener {
    fn kind(&self) -> &'static str {
        "http"
    }

    /// Always: the listener runs for an app without HTTP routes too, so `/.well-known/spin/health`
    /// answers for event-only apps.
    fn is_used_by(&self, _manifest: &Manifest) -> bool {
        true
    }

    fn check(&self, manifest: &Manifest) -> Result<()> {
        check_routes(manifest)
    }

    fn plan(&self, app: &App, limits: &TriggerLimits) -> Result<String> {
        check_routes(&app.manifest)?;
        Ok(format!("{:?} {:?}", self.settings, limits))
    }

    fn start(&self, app: &App, context: TriggerContext) -> Result<Box<dyn RunningTrigger>> {
        let listener = self.listener.lock().unwrap_or_else(|p| p.into_inner()).take().context("the HTTP listener was started already")?;
        let options = HttpOptions {
            deadline: context.limits.instance.deadline,
            memory_limit: context.limits.instance.memory_limit,
            max_concurrency: context.limits.max_concurrency.max(1),
            queue_timeout: self.settings.queue_timeout,
            max_request_body: self.settings.max_request_body,
            app_label: context.label.clone(),
            ..HttpOptions::default()
        };
        let trigger = HttpTrigger::new(app, options)?;
        let server = Server::start(trigger.clone(), listener, self.settings.workers, self.settings.grace, self.settings.connections)?;
        Ok(Box::new(Running { addr: server.local_addr(), server, trigger }))
    }
}

struct Running {
    server: Server,
    trigger: Arc<HttpTrigger>,
    addr: SocketAddr,
}

impl RunningTrigger for Running {
    fn describe(&self) -> Vec<String> {
        self.trigger.routes().map(|(component, route)| format!("{component}: http://{}{route}", self.addr)).collect()
    }

    /// Stops accepting and drains in one step; the grace period is the one the listener was made
    /// with (`kiln up --shutdown-grace`).
    fn stop(self: Box<Self>, _grace: Duration) -> BoxFuture<'static, Draining> {
        let server = self.server;
        Box::pin(async move {
            let _ = tokio::task::spawn_blocking(move || server.shutdown()).await;
            Draining::done()
        })
    }
}
