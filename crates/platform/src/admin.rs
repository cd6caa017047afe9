//! The admin API: deploy, list, show and remove apps; metrics; the dashboard; its own OpenAPI
//! description. On its own listener (loopback by default), behind the bearer token.

use crate::platform::{ApiError, Platform};
use crate::token::AdminToken;
use bytes::Bytes;
use http::{HeaderValue, Method, Request, Response, StatusCode, header};
use http_body_util::{BodyExt, Full, Limited};
use hyper::body::Incoming;
use kiln_trigger_http::{Body, HttpService};
use std::net::SocketAddr;
use std::sync::Arc;

/// The OpenAPI description, served at `/openapi.json` and checked against [`ROUTES`] by a test.
pub const OPENAPI: &str = include_str!("openapi.json");
const DASHBOARD: &str = include_str!("dashboard.html");

/// Every route of the API: `(method, path template)`. The dispatcher below and the OpenAPI document
/// must both agree with this list (tests check each).
pub const ROUTES: &[(&str, &str)] = &[
    ("GET", "/healthz"),
    ("GET", "/openapi.json"),
    ("GET", "/dashboard"),
    ("GET", "/metrics"),
    ("GET", "/v1/apps"),
    ("GET", "/v1/apps/{name}"),
    ("PUT", "/v1/apps/{name}"),
    ("DELETE", "/v1/apps/{name}"),
];

pub struct Admin {
    platform: Arc<Platform>,
    token: AdminToken,
}

/// Where a request path leads.
#[derive(Debug, PartialEq, Eq)]
enum Target<'a> {
    Health,
    OpenApi,
    Dashboard,
    Metrics,
    Apps,
    App(&'a str),
    Unknown,
}

impl Target<'_> {
    fn parse(path: &str) -> Target<'_> {
        match path {
            "/healthz" => Target::Health,
            "/openapi.json" => Target::OpenApi,
            "/dashboard" | "/dashboard/" => Target::Dashboard,
            "/metrics" => Target::Metrics,
            "/v1/apps" | "/v1/apps/" => Target::Apps,
            _ => match path.strip_prefix("/v1/apps/") {
                Some(name) if !name.is_empty() && !name.contains('/') => Target::App(name),
                _ => Target::Unknown,
            },
        }
    }

    fn is_public(&self) -> bool {
        matches!(self, Target::Health | Target::OpenApi | Target::Dashboard)
    }

    fn allowed_methods(&self) -> &'static str {
        match self {
            Target::App(_) => "GET, PUT, DELETE",
            _ => "GET",
        }
    }
}

impl Admin {
    pub fn new(platform: Arc<Platform>, token: AdminToken) -> Arc<Admin> {
        Arc::new(Admin { platform, token })
    }

    async fn handle(&self, request: Request<Incoming>) -> Response<Body> {
        let path = request.uri().path().to_string();
        let target = Target::parse(&path);
        if !target.is_public() && !self.token.accepts(request.headers().get(header::AUTHORIZATION)) {
            discard_small_body(request).await;
            let mut response = error(&ApiError::new(StatusCode::UNAUTHORIZED, "missing or wrong bearer token: send `Authorization: Bearer <token>` (the token is in <data-dir>/admin-token)"));
            response.headers_mut().insert(header::WWW_AUTHENTICATE, HeaderValue::from_static("Bearer"));
            return response;
        }
        let method = request.method().clone();
        let result = match (&method, &target) {
            (&Method::GET, Target::Health) => Ok(with_type(Full::new(Bytes::from_static(b"OK\n")), "text/plain")),
            (&Method::GET, Target::OpenApi) => Ok(with_type(Full::new(Bytes::from_static(OPENAPI.as_bytes())), "application/json")),
            (&Method::GET, Target::Dashboard) => Ok(with_type(Full::new(Bytes::from_static(DASHBOARD.as_bytes())), "text/html; charset=utf-8")),
            (&Method::GET, Target::Metrics) => {
                self.platform.refresh_trigger_metrics();
                Ok(with_type(Full::new(Bytes::from(self.platform.metrics().render())), kiln_observe::CONTENT_TYPE))
            }
            (&Method::GET, Target::Apps) => Ok(json(StatusCode::OK, &crate::record::AppList { apps: self.platform.list() })),
            (&Method::GET, Target::App(name)) => self.show(name),
            (&Method::PUT, Target::App(name)) => self.deploy(name, request).await,
            (&Method::DELETE, Target::App(name)) => self.platform.remove(name).await.map(|()| empty(StatusCode::NO_CONTENT)),
            (_, Target::Unknown) => Err(ApiError::new(StatusCode::NOT_FOUND, format!("no such endpoint `{path}`; see /openapi.json"))),
            (_, target) => {
                let allowed = target.allowed_methods();
                let mut response = error(&ApiError::new(StatusCode::METHOD_NOT_ALLOWED, format!("{method} is not allowed on `{path}`; allowed: {allowed}")));
                response.headers_mut().insert(header::ALLOW, HeaderValue::from_static(allowed));
                return response;
            }
        };
        if let Err(err) = &result {
            tracing::info!(target: "kiln::admin", "{method} {path}: {} {}", err.status.as_u16(), err.message);
        }
        result.unwrap_or_else(|err| error(&err))
    }

    fn show(&self, name: &str) -> Result<Response<Body>, ApiError> {
        let info = self.platform.get(name).ok_or_else(|| ApiError::new(StatusCode::NOT_FOUND, format!("no app `{name}`")))?;
        Ok(json(StatusCode::OK, &info))
    }

    async fn deploy(&self, name: &str, request: Request<Incoming>) -> Result<Response<Body>, ApiError> {
        let query = request.uri().query().map(str::to_string);
        let archive = read_upload(request, self.platform.config().max_upload).await?;
        let (info, created) = self.platform.deploy(name, query.as_deref(), archive).await?;
        Ok(json(if created { StatusCode::CREATED } else { StatusCode::OK }, &info))
    }
}

impl HttpService for Admin {
    async fn serve(self: Arc<Self>, request: Request<Incoming>, _client: kiln_trigger_http::ClientAddr, _local: SocketAddr) -> Response<Body> {
        self.handle(request).await
    }
}

/// The whole upload, refused with 413 as soon as it is known to be over `max` bytes.
async fn read_upload(request: Request<Incoming>, max: u64) -> Result<Bytes, ApiError> {
    let too_large = || ApiError::new(StatusCode::PAYLOAD_TOO_LARGE, format!("the archive is larger than this host's limit of {max} bytes (kiln serve --max-upload)"));
    let declared = request.headers().get(header::CONTENT_LENGTH).and_then(|v| v.to_str().ok()).and_then(|v| v.parse::<u64>().ok());
    if declared.is_some_and(|length| length > max) {
        return Err(too_large());
    }
    let limit = usize::try_from(max).unwrap_or(usize::MAX);
    match Limited::new(request.into_body(), limit).collect().await {
        Ok(collected) => Ok(collected.to_bytes()),
        Err(err) if err.downcast_ref::<http_body_util::LengthLimitError>().is_some() => Err(too_large()),
        Err(err) => Err(ApiError::bad_request(format!("the upload was interrupted: {err}"))),
    }
}

/// Reads and drops what is left of a small request body before an early error, so a client still
/// sending it gets the response instead of a reset connection. Larger bodies are not read.
async fn discard_small_body(request: Request<Incoming>) {
    const SMALL: usize = 1 << 20;
    let _ = Limited::new(request.into_body(), SMALL).collect().await;
}

fn with_type(body: Full<Bytes>, content_type: &'static str) -> Response<Body> {
    let mut response = Response::new(body.map_err(|never| match never {}).boxed_unsync());
    response.headers_mut().insert(header::CONTENT_TYPE, HeaderValue::from_static(content_type));
    response
}

fn json(status: StatusCode, value: &impl serde::Serialize) -> Response<Body> {
    let bytes = serde_json::to_vec_pretty(value).unwrap_or_else(|err| format!("{{\"error\": \"cannot encode the response: {err}\"}}").into_bytes());
    let mut response = with_type(Full::new(Bytes::from(bytes)), "application/json");
    *response.status_mut() = status;
    response
}

fn error(err: &ApiError) -> Response<Body> {
    json(err.status, &serde_json::json!({ "error": err.message }))
}

fn empty(status: StatusCode) -> Response<Body> {
    let mut response = with_type(Full::new(Bytes::new()), "text/plain");
    response.headers_mut().remove(header::CONTENT_TYPE);
    *response.status_mut() = status;
    response
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn paths_parse_to_targets() {
        assert_eq!(Target::parse("/v1/apps"), Target::Apps);
        assert_eq!(Target::parse("/v1/apps/hello"), Target::App("hello"));
        assert_eq!(Target::parse("/v1/apps/hello/x"), Target::Unknown);
        assert_eq!(Target::parse("/v1/apps/"), Target::Apps);
        assert_eq!(Target::parse("/nope"), Target::Unknown);
        assert!(Target::parse("/dashboard").is_public());
        assert!(!Target::parse("/metrics").is_public());
    }

    /// The OpenAPI document lists exactly the routes the dispatcher serves, with the same methods.
    #[test]
    fn openapi_lists_exactly_the_routes() {
        let doc: serde_json::Value = serde_json::from_str(OPENAPI).expect("openapi.json is JSON");
        assert_eq!(doc["openapi"].as_str().map(|v| v.starts_with("3.")), Some(true));
        let mut documented = Vec::new();
        for (path, item) in doc["paths"].as_object().expect("paths") {
            let methods = item.as_object().expect("path item").keys().filter(|key| ["get", "put", "post", "delete", "patch"].contains(&key.as_str()));
            for method in methods {
                documented.push((method.to_uppercase(), path.clone()));
            }
        }
        documented.sort();
        let mut served: Vec<(String, String)> = ROUTES.iter().map(|(m, p)| (m.to_string(), p.to_string())).collect();
        served.sort();
        assert_eq!(documented, served);
        for (method, path) in ROUTES {
            let concrete = path.replace("{name}", "hello");
            let target = Target::parse(&concrete);
            assert_ne!(target, Target::Unknown, "{method} {path}");
            assert!(target.allowed_methods().contains(method), "{method} {path}");
            let operation = &doc["paths"][*path][method.to_lowercase()];
            let secured = operation.get("security").map(|s| s.as_array().is_some_and(|a| a.is_empty())) != Some(true);
            assert_eq!(secured, !target.is_public(), "{method} {path}: security in the document must match the server");
        }
    }
}
