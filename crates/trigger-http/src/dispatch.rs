//! Service chaining: requests a guest makes to `http://<component>.spin.internal` or `http://self`
//! run in this process, without a socket.

use crate::ClientAddr;
use crate::handler::{FirstPoll, HttpTrigger, set_request_headers, text_response};
use http::{Request, StatusCode};
use kiln_outbound_http::{InternalDispatch, InternalTarget, ResponseFuture};
use std::net::{Ipv4Addr, SocketAddr};
use std::sync::Arc;
use wasmtime_wasi_http::{Error, WasiBody};

/// The peer address chained requests report in `spin-client-addr`.
const LOOPBACK: SocketAddr = SocketAddr::new(std::net::IpAddr::V4(Ipv4Addr::LOCALHOST), 0);
static LOOPBACK_CLIENT: std::sync::LazyLock<ClientAddr> = std::sync::LazyLock::new(|| ClientAddr::new(LOOPBACK));

impl InternalDispatch for HttpTrigger {
    fn dispatch(&self, target: InternalTarget, request: Request<WasiBody>) -> ResponseFuture {
        let Some(trigger) = self.self_arc() else {
            return Box::pin(async { Err(Error::DestinationUnavailable) });
        };
        Box::pin(async move { trigger.dispatch_owned(target, request).await })
    }
}

impl HttpTrigger {
    async fn dispatch_owned(self: Arc<Self>, target: InternalTarget, mut request: Request<WasiBody>) -> Result<http::Response<WasiBody>, Error> {
        let path = request.uri().path().to_string();
        let component = match &target {
            InternalTarget::Component(id) => self.component(id).cloned().ok_or(Error::DestinationNotFound)?,
            InternalTarget::SelfApp => {
                let Some(matched) = self.router().route(&path) else {
                    return Ok(text_response(StatusCode::NOT_FOUND, &format!("no route matches {path}\n")));
                };
                self.component(matched.component_id()).cloned().ok_or(Error::DestinationNotFound)?
            }
        };
        // Spin's headers describe the route that would have matched; a private component has none.
        let router = self.router();
        if let Some(matched) = router.route(&path).filter(|m| m.component_id() == component.id) {
            set_request_headers(&mut request, &matched, &LOOPBACK_CLIENT, LOOPBACK);
        }
        tracing::debug!(target: "kiln::http", "in-process {} {path} -> [{}]", request.method(), component.id);
        Ok(self.run(&component, request, FirstPoll::OnItsTask).await)
    }
}
