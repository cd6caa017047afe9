//! Outbound HTTP for guests: `wasi:http/outgoing-handler`, limited to the component's
//! `allowed_outbound_hosts`.
//!
//! wasmtime-wasi-http implements the interface; Kiln only supplies its `send_request` hook. A request
//! to a host that is not allowed fails with `HttpRequestDenied` when the guest awaits the response
//! (as Spin reports it), never at `handle`. Requests to `http://<component>.spin.internal` and
//! `http://self` never touch the network: they go to an [`InternalDispatch`] (the HTTP trigger),
//! which runs the target component in-process.

use kiln_outbound::{AllowedHosts, OutboundUrl};
use std::future::Future;
use std::pin::Pin;
use std::sync::{Arc, OnceLock, Weak};
use wasmtime_wasi_http::{Error, RequestOptions, WasiBody, WasiHttpHooks};

/// The suffix of service-chaining host names: `http://<component-id>.spin.internal/...`.
pub const INTERNAL_HOST_SUFFIX: &str = ".spin.internal";

/// Where an in-process request goes.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum InternalTarget {
    /// `http://<id>.spin.internal`: that component, whatever its route (private ones included).
    Component(String),
    /// `http://self`: the app's own router.
    SelfApp,
}

pub type ResponseFuture = Pin<Box<dyn Future<Output = Result<http::Response<WasiBody>, Error>> + Send>>;

/// Runs requests in-process; implemented by the HTTP trigger.
pub trait InternalDispatch: Send + Sync {
    fn dispatch(&self, target: InternalTarget, request: http::Request<WasiBody>) -> ResponseFuture;
}

/// A component's outbound HTTP policy, built once at load.
pub struct OutboundHttp {
    component_id: String,
    allowed: AllowedHosts,
    dispatcher: OnceLock<Weak<dyn InternalDispatch>>,
}

impl OutboundHttp {
    pub fn new(component_id: impl Into<String>, allowed: AllowedHosts) -> Arc<OutboundHttp> {
        Arc::new(OutboundHttp { component_id: component_id.into(), allowed, dispatcher: OnceLock::new() })
    }

    /// Connects in-process requests to the app that owns this component. Held weakly: the app owns
    /// its components, not the other way round.
    pub fn set_dispatcher(&self, dispatcher: Weak<dyn InternalDispatch>) {
        let _ = self.dispatcher.set(dispatcher);
    }

    pub fn allowed_hosts(&self) -> &AllowedHosts {
        &self.allowed
    }

    /// The hooks for one instance (an `Arc` clone).
    pub fn hooks(self: &Arc<Self>) -> Box<dyn WasiHttpHooks> {
        Box::new(Hooks { policy: self.clone() })
    }

    /// What to do with a request for `uri`.
    fn decide(&self, uri: &http::Uri) -> Decision {
        let host = uri.host().unwrap_or_default().to_ascii_lowercase();
        if let Some(id) = host.strip_suffix(INTERNAL_HOST_SUFFIX) {
            return match self.allowed.allows_internal(id) {
                true => Decision::Internal(InternalTarget::Component(id.to_string())),
                false => Decision::Deny,
            };
        }
        // Also a relative URL (Spin's rule): kiln-engine gives a request without an authority the
        // authority `self`, and spin-sdk sends one with a port but no host (`:80`, `:443`).
        if host == "self" || host.is_empty() {
            return match self.allowed.allows_self() {
                true => Decision::Internal(InternalTarget::SelfApp),
                false => Decision::Deny,
            };
        }
        match OutboundUrl::from_uri(uri) {
            Some(url) if self.allowed.allows(&url) => Decision::Network,
            _ => Decision::Deny,
        }
    }
}

enum Decision {
    Network,
    Internal(InternalTarget),
    Deny,
}

struct Hooks {
    policy: Arc<OutboundHttp>,
}

type IoFuture = Box<dyn Future<Output = Result<(), Error>> + Send>;
type SendFuture = Box<dyn Future<Output = Result<(http::Response<WasiBody>, IoFuture), Error>> + Send>;

/// The default forbidden-header check, shared: wasmtime-wasi-http's default builds a new `Arc` for
/// every header it checks.
fn forbidden_header_filter() -> wasmtime_wasi_http::ForbiddenHeaderFilter {
    static FILTER: OnceLock<wasmtime_wasi_http::ForbiddenHeaderFilter> = OnceLock::new();
    FILTER
        .get_or_init(|| Arc::new(|name| wasmtime_wasi_http::DEFAULT_FORBIDDEN_HEADERS.contains(name)))
        .clone()
}

/// Chunks a guest may queue on an outgoing body (response or request) before it must wait for the
/// other side. wasmtime-wasi-http's default of one makes every guest that writes and then flushes
/// wait for hyper to take the chunk: a task round trip on every response. Four chunks of at most
/// 256 KiB keep the buffered amount per body at 1 MiB, as before (1 × 1 MiB).
const BODY_BUFFER_CHUNKS: usize = 4;
const BODY_CHUNK_SIZE: usize = 256 * 1024;

impl WasiHttpHooks for Hooks {
    fn p2_outgoing_body_buffer_chunks(&mut self) -> usize {
        BODY_BUFFER_CHUNKS
    }

    fn p2_outgoing_body_chunk_size(&mut self) -> usize {
        BODY_CHUNK_SIZE
    }

    fn is_forbidden_header(&mut self, name: &http::HeaderName) -> bool {
        wasmtime_wasi_http::DEFAULT_FORBIDDEN_HEADERS.contains(name)
    }

    fn forbidden_header_filter(&mut self) -> wasmtime_wasi_http::ForbiddenHeaderFilter {
        forbidden_header_filter()
    }

    fn send_request(&mut self, request: http::Request<WasiBody>, options: Option<RequestOptions>, _fut: IoFuture) -> SendFuture {
        match self.policy.decide(request.uri()) {
            Decision::Network => Box::new(async move {
                use http_body_util::BodyExt;
                let (response, io) = wasmtime_wasi_http::default_send_request(request, options).await?;
                Ok((response.map(BodyExt::boxed_unsync), Box::new(io) as IoFuture))
            }),
            Decision::Internal(target) => {
                let dispatcher = self.policy.dispatcher.get().and_then(Weak::upgrade);
                Box::new(async move {
                    let dispatcher = dispatcher.ok_or(Error::DestinationUnavailable)?;
                    let response = dispatcher.dispatch(target, request).await?;
                    Ok((response, Box::new(async { Ok(()) }) as IoFuture))
                })
            }
            Decision::Deny => {
                tracing::info!(
                    target: "kiln::outbound",
                    "[{}] outbound request to {} denied: not in allowed_outbound_hosts",
                    self.policy.component_id,
                    request.uri()
                );
                Box::new(async { Err(Error::HttpRequestDenied) })
            }
        }
    }
}
