//! The public listener: picks the app a request is for and hands it to that app's HTTP trigger.

use crate::platform::Platform;
use http::{Request, Response, StatusCode};
use hyper::body::Incoming;
use kiln_trigger_http::{Body, ClientAddr, HttpService, text_response};
use std::net::SocketAddr;
use std::sync::Arc;

/// Serves every app of the platform on one listener.
pub struct Front {
    platform: Arc<Platform>,
}

impl Front {
    pub fn new(platform: Arc<Platform>) -> Arc<Front> {
        Arc::new(Front { platform })
    }

    async fn handle(&self, request: Request<Incoming>, client: ClientAddr, local: SocketAddr) -> Response<Body> {
        let Some((entry, version)) = self.platform.route(host_of(&request), request.uri().path()) else {
            return self.no_app(host_of(&request));
        };
        // The loaded version stays alive (and counted as busy) until this request ends.
        let loaded = match self.platform.loaded(&entry, &version).await {
            Ok(loaded) => loaded,
            // Removed while this request waited: gone, as if it had come a moment later.
            Err(err) if err.status == StatusCode::NOT_FOUND => return text_response(StatusCode::NOT_FOUND, &format!("404 Not Found: {}\n", err.message)),
            Err(err) => {
                tracing::error!("[{}] cannot load the app: {}", entry.name, err.message);
                return text_response(StatusCode::INTERNAL_SERVER_ERROR, &format!("500 Internal Server Error: the app `{}` cannot be loaded\n", entry.name));
            }
        };
        let response = loaded.trigger.clone().handle(request, client, local).await;
        drop(loaded);
        response
    }

    fn no_app(&self, host: Option<&str>) -> Response<Body> {
        let domain = &self.platform.config().domain;
        let message = match host {
            Some(host) => format!("no app is deployed for host `{host}`; apps answer at http://<app>.{domain}/ (or at their route prefix)\n"),
            None => format!("no app matches; apps answer at http://<app>.{domain}/ (or at their route prefix)\n"),
        };
        text_response(StatusCode::NOT_FOUND, &message)
    }
}

impl HttpService for Front {
    async fn serve(self: Arc<Self>, request: Request<Incoming>, client: ClientAddr, local: SocketAddr) -> Response<Body> {
        self.handle(request, client, local).await
    }
}

/// The request's host: the URI's authority (HTTP/2) or the `Host` header (HTTP/1.1).
fn host_of<B>(request: &Request<B>) -> Option<&str> {
    request.uri().authority().map(|authority| authority.as_str()).or_else(|| request.headers().get(http::header::HOST)?.to_str().ok())
}
