//! The HTTP trigger: a hyper server that runs one fresh component instance per request.
//!
//! Request path: accept (one current-thread runtime per core, all accepting on the same socket) →
//! hyper parses → [`routing::Router`] picks the component → Spin's `spin-*` headers are set → an
//! instance permit is taken (requests wait up to the queue timeout, then 503) → a new store and
//! instance are made from the component's `ProxyPre` → `wasi:http/incoming-handler.handle` runs on
//! its own task → the response streams back while the guest keeps writing the body.

mod dispatch;
mod gather;
mod handler;
mod listener;
mod observe;
mod routing;
mod server;
mod wagi;

pub use handler::{Body, HttpTrigger, check_routes, text_response};
pub use listener::{HttpListener, ListenerSettings};
pub use observe::{ComponentObserver, HttpObserver};
pub use server::{ClientAddr, ConnectionLimits, HttpService, Server, bind};

use std::sync::Arc;
use std::sync::atomic::AtomicBool;
use std::time::Duration;

static STRUCTURED_LOGS: AtomicBool = AtomicBool::new(false);

/// Request log lines as fields (method, path, status, ms, app, component) for JSON logs, instead of
/// one readable sentence.
pub fn structured_request_logs(enabled: bool) {
    STRUCTURED_LOGS.store(enabled, std::sync::atomic::Ordering::Relaxed);
}

/// Settings of the HTTP trigger for one app.
#[derive(Clone)]
pub struct HttpOptions {
    /// A request still running after this long is cut off (504).
    pub deadline: Duration,
    /// Linear memory limit per instance, in bytes.
    pub memory_limit: usize,
    /// Instances of this app running at once; further requests wait.
    pub max_concurrency: usize,
    /// How long a request waits for an instance before it gets 503.
    pub queue_timeout: Duration,
    /// Request bodies larger than this get 413 (declared length) or end in an error for the guest
    /// (streamed). `None`: no limit.
    pub max_request_body: Option<u64>,
    /// A path prefix the whole app is mounted under (platform mode), in front of the manifest's
    /// `base`. Empty: none.
    pub mount: String,
    /// Metrics and traces (platform mode).
    pub observer: Option<Arc<dyn HttpObserver>>,
    /// The app's name in request log lines (platform mode, where one log holds many apps).
    pub app_label: Option<String>,
}

impl Default for HttpOptions {
    fn default() -> Self {
        HttpOptions {
            deadline: Duration::from_secs(30),
            memory_limit: 128 << 20,
            max_concurrency: 1000,
            queue_timeout: Duration::from_secs(10),
            max_request_body: None,
            mount: String::new(),
            observer: None,
            app_label: None,
        }
    }
}
