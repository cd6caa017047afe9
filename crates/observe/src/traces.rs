//! OpenTelemetry traces over OTLP/HTTP (protobuf): one server span per response.
//!
//! Spans are handed to the SDK's batch processor, which queues them (dropping when its queue is full)
//! and exports from its own thread with a blocking HTTP client: the request path never waits on the
//! network, and no async runtime is needed.

use anyhow::{Context as _, Result, bail};
use http::StatusCode;
use opentelemetry::trace::{Span as _, SpanKind, Status, Tracer as _, TracerProvider as _};
use opentelemetry::{Context, KeyValue};
use opentelemetry_otlp::{Protocol, WithExportConfig as _};
use opentelemetry_sdk::Resource;
use opentelemetry_sdk::trace::{SdkTracer, SdkTracerProvider};
use std::sync::Arc;
use std::time::{Duration, SystemTime};

/// The path OTLP/HTTP receivers take traces at.
const TRACES_PATH: &str = "/v1/traces";

/// An OTLP trace pipeline. Pass it to [`Metrics::app`](crate::Metrics::app) to trace an app's
/// requests; call [`shutdown`](Self::shutdown) before exiting so queued spans are sent.
pub struct Tracing {
    provider: SdkTracerProvider,
    tracer: SdkTracer,
}

impl Tracing {
    /// Exports spans to the OTLP/HTTP receiver at `endpoint`: a base URL such as
    /// `http://127.0.0.1:4318` (to which `/v1/traces` is added) or a full URL with a path (used as it
    /// is). Only `http://`: no TLS stack is built in, so send to a collector nearby. `service_name`
    /// becomes the `service.name` resource attribute.
    ///
    /// Every request is traced unless the standard variables say otherwise: on a busy host set
    /// `OTEL_TRACES_SAMPLER=traceidratio` and `OTEL_TRACES_SAMPLER_ARG=0.01`. The exporter's
    /// (`OTEL_EXPORTER_OTLP_TRACES_HEADERS`, `_TIMEOUT`) and batch processor's (`OTEL_BSP_*`)
    /// variables apply too.
    pub fn otlp(endpoint: &str, service_name: &str) -> Result<Tracing> {
        // The exporter's HTTP client uses rustls, which needs a process-wide crypto provider (the
        // workspace builds reqwest without a default one): ring's, unless one is installed.
        if rustls::crypto::CryptoProvider::get_default().is_none() {
            let _ = rustls::crypto::ring::default_provider().install_default();
        }
        let url = traces_url(endpoint)?;
        let exporter = opentelemetry_otlp::SpanExporter::builder()
            .with_http()
            .with_protocol(Protocol::HttpBinary)
            .with_endpoint(url)
            .build()
            .with_context(|| format!("cannot set up the OTLP exporter for {endpoint}"))?;
        let resource = Resource::builder().with_service_name(service_name.to_string()).build();
        let provider = SdkTracerProvider::builder().with_batch_exporter(exporter).with_resource(resource).build();
        let tracer = provider.tracer("kiln");
        Ok(Tracing { provider, tracer })
    }

    /// Sends the spans still queued and stops the exporter. Blocks (up to 5 s) while it sends: call it
    /// once, at exit.
    pub fn shutdown(&self) {
        if let Err(err) = self.provider.shutdown() {
            tracing::warn!("exporting the last traces failed: {err}");
        }
    }

    pub(crate) fn spans_for(&self, app: Arc<str>) -> SpanSource {
        SpanSource { tracer: self.tracer.clone(), app }
    }
}

/// The OTLP/HTTP traces URL for `endpoint`, refusing anything the exporter could not send to.
fn traces_url(endpoint: &str) -> Result<String> {
    let uri: http::Uri = endpoint.parse().with_context(|| format!("the OTLP endpoint `{endpoint}` is not a URL"))?;
    match uri.scheme_str() {
        Some("http") => {}
        Some("https") => bail!("the OTLP endpoint `{endpoint}` uses https, which Kiln does not support: use http:// (a collector nearby)"),
        _ => bail!("the OTLP endpoint `{endpoint}` must be an http:// URL"),
    }
    if uri.authority().is_none() {
        bail!("the OTLP endpoint `{endpoint}` has no host");
    }
    if uri.path().is_empty() || uri.path() == "/" {
        Ok(format!("{}{TRACES_PATH}", endpoint.trim_end_matches('/')))
    } else {
        Ok(endpoint.to_string())
    }
}

/// What an app's observer needs to make its components' [`SpanRecorder`]s.
pub(crate) struct SpanSource {
    tracer: SdkTracer,
    app: Arc<str>,
}

impl SpanSource {
    pub fn for_component(&self, component: &str) -> SpanRecorder {
        SpanRecorder {
            tracer: self.tracer.clone(),
            app: self.app.clone(),
            app_attribute: KeyValue::new("app", self.app.clone()),
            component_attribute: KeyValue::new("component", Arc::<str>::from(component)),
        }
    }
}

/// Makes the spans of one component's responses. The attributes that never change are made once.
pub(crate) struct SpanRecorder {
    tracer: SdkTracer,
    app: Arc<str>,
    app_attribute: KeyValue,
    component_attribute: KeyValue,
}

impl SpanRecorder {
    /// One server span named `{app} {route}` covering `elapsed` up to now. It has no parent: the
    /// observer does not see the request's headers, so a caller's `traceparent` is not followed.
    pub fn record(&self, route: &str, status: StatusCode, elapsed: Duration) {
        let end = SystemTime::now();
        let start = end.checked_sub(elapsed).unwrap_or(end);
        let attributes = [
            self.app_attribute.clone(),
            self.component_attribute.clone(),
            KeyValue::new("http.route", route.to_string()),
            KeyValue::new("http.response.status_code", i64::from(status.as_u16())),
        ];
        let mut span = self
            .tracer
            .span_builder(format!("{} {route}", self.app))
            .with_kind(SpanKind::Server)
            .with_start_time(start)
            .with_attributes(attributes)
            .start_with_context(&self.tracer, &Context::new());
        // OpenTelemetry's HTTP conventions: a server span is an error only for a 5xx.
        if status.is_server_error() {
            span.set_status(Status::error(status.to_string()));
        }
        span.end_with_timestamp(end);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::Metrics;
    use bytes::Bytes;
    use http_body_util::{BodyExt, Full};
    use hyper::body::Incoming;
    use hyper::{Request, Response};
    use kiln_trigger_http::HttpObserver as _;
    use opentelemetry_proto::tonic::collector::trace::v1::{ExportTraceServiceRequest, ExportTraceServiceResponse};
    use opentelemetry_proto::tonic::common::v1::{KeyValue as ProtoKeyValue, any_value};
    use opentelemetry_proto::tonic::trace::v1::{Span as ProtoSpan, span, status};
    use prost::Message as _;
    use std::net::SocketAddr;
    use tokio::sync::mpsc;

    /// One POST the receiver took.
    struct Export {
        path: String,
        content_type: String,
        body: Bytes,
    }

    /// An OTLP/HTTP receiver: takes `POST /v1/traces` with a protobuf body and answers as a collector
    /// does (200, an empty `ExportTraceServiceResponse`), passing each body on to the test.
    async fn start_receiver() -> (SocketAddr, mpsc::UnboundedReceiver<Export>) {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.expect("bind the receiver");
        let addr = listener.local_addr().expect("receiver address");
        let (sender, exports) = mpsc::unbounded_channel();
        tokio::spawn(async move {
            while let Ok((stream, _)) = listener.accept().await {
                let sender = sender.clone();
                let service = hyper::service::service_fn(move |request| receive(request, sender.clone()));
                tokio::spawn(hyper::server::conn::http1::Builder::new().serve_connection(hyper_util::rt::TokioIo::new(stream), service));
            }
        });
        (addr, exports)
    }

    async fn receive(request: Request<Incoming>, sender: mpsc::UnboundedSender<Export>) -> Result<Response<Full<Bytes>>, hyper::Error> {
        if request.method() != http::Method::POST {
            return Ok(Response::builder().status(405).body(Full::default()).expect("a 405"));
        }
        let path = request.uri().path().to_string();
        let content_type = request.headers().get(http::header::CONTENT_TYPE).and_then(|v| v.to_str().ok()).unwrap_or_default().to_string();
        let body = request.into_body().collect().await?.to_bytes();
        let _ = sender.send(Export { path, content_type, body });
        let answer = ExportTraceServiceResponse::default().encode_to_vec();
        Ok(Response::builder().header(http::header::CONTENT_TYPE, "application/x-protobuf").body(Full::from(answer)).expect("a 200"))
    }

    fn attribute<'s>(attributes: &'s [ProtoKeyValue], key: &str) -> Option<&'s any_value::Value> {
        attributes.iter().find(|kv| kv.key == key)?.value.as_ref()?.value.as_ref()
    }

    fn string(value: &str) -> any_value::Value {
        any_value::Value::StringValue(value.to_string())
    }

    fn span_named<'s>(spans: &'s [&'s ProtoSpan], name: &str) -> &'s ProtoSpan {
        spans.iter().copied().find(|span| span.name == name).unwrap_or_else(|| panic!("no span named {name:?}"))
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn each_response_arrives_as_a_span_at_an_otlp_receiver() {
        let (addr, mut exports) = start_receiver().await;
        let tracing = Tracing::otlp(&format!("http://{addr}"), "kiln-test").expect("an OTLP pipeline");
        let metrics = Metrics::new();
        let cart = metrics.app("shop", Some(&tracing)).component("cart");
        cart.responded("/cart/...", StatusCode::OK, Duration::from_millis(3));
        cart.responded("/cart/checkout", StatusCode::BAD_GATEWAY, Duration::from_millis(7));
        tokio::task::spawn_blocking(move || tracing.shutdown()).await.expect("shutdown");

        let mut requests = Vec::new();
        while let Ok(export) = exports.try_recv() {
            assert_eq!(export.path, "/v1/traces");
            assert_eq!(export.content_type, "application/x-protobuf");
            requests.push(ExportTraceServiceRequest::decode(export.body).expect("an OTLP protobuf body"));
        }
        let resource_spans: Vec<_> = requests.iter().flat_map(|request| &request.resource_spans).collect();
        let resource = resource_spans.first().and_then(|r| r.resource.as_ref()).expect("a resource");
        assert_eq!(attribute(&resource.attributes, "service.name"), Some(&string("kiln-test")));
        let spans: Vec<&ProtoSpan> = resource_spans.iter().flat_map(|r| &r.scope_spans).flat_map(|s| &s.spans).collect();
        assert_eq!(spans.len(), 2);

        let ok = span_named(&spans, "shop /cart/...");
        assert_eq!(ok.kind, span::SpanKind::Server as i32);
        assert_eq!(attribute(&ok.attributes, "app"), Some(&string("shop")));
        assert_eq!(attribute(&ok.attributes, "component"), Some(&string("cart")));
        assert_eq!(attribute(&ok.attributes, "http.route"), Some(&string("/cart/...")));
        assert_eq!(attribute(&ok.attributes, "http.response.status_code"), Some(&any_value::Value::IntValue(200)));
        assert_eq!(ok.end_time_unix_nano - ok.start_time_unix_nano, 3_000_000);
        assert_ne!(ok.status.as_ref().map(|s| s.code), Some(status::StatusCode::Error as i32));

        let failed = span_named(&spans, "shop /cart/checkout");
        assert_eq!(attribute(&failed.attributes, "http.response.status_code"), Some(&any_value::Value::IntValue(502)));
        assert_eq!(failed.status.as_ref().map(|s| s.code), Some(status::StatusCode::Error as i32));
        assert_eq!(failed.end_time_unix_nano - failed.start_time_unix_nano, 7_000_000);
    }

    /// A collector that accepts connections and never answers, until `stop` fires; then it closes
    /// them all.
    async fn start_silent_collector() -> (SocketAddr, tokio::sync::oneshot::Sender<()>, tokio::task::JoinHandle<()>) {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.expect("bind the collector");
        let addr = listener.local_addr().expect("collector address");
        let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
        let task = tokio::spawn(async move {
            let mut held = Vec::new();
            let accept_forever = async {
                while let Ok((stream, _)) = listener.accept().await {
                    held.push(stream);
                }
            };
            tokio::select! {
                _ = accept_forever => {}
                _ = stopped => {}
            }
        });
        (addr, stop, task)
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn a_collector_that_hangs_never_slows_responses() {
        let (addr, stop, collector) = start_silent_collector().await;
        let tracing = Tracing::otlp(&format!("http://{addr}"), "kiln-test").expect("an OTLP pipeline");
        let metrics = Metrics::new();
        let cart = metrics.app("shop", Some(&tracing)).component("cart");
        // More spans than the batch queue holds (2048): the excess is dropped, never waited for.
        let started = std::time::Instant::now();
        for _ in 0..3000 {
            cart.responded("/cart/...", StatusCode::OK, Duration::from_millis(1));
        }
        let took = started.elapsed();
        let _ = stop.send(());
        collector.await.expect("the collector task");
        tokio::task::spawn_blocking(move || tracing.shutdown()).await.expect("shutdown");
        assert!(took < Duration::from_secs(2), "3000 responses took {took:?} with a collector that hangs");
    }

    #[test]
    fn endpoint_without_a_path_gets_the_traces_path() {
        assert_eq!(traces_url("http://127.0.0.1:4318").expect("valid"), "http://127.0.0.1:4318/v1/traces");
        assert_eq!(traces_url("http://collector:4318/").expect("valid"), "http://collector:4318/v1/traces");
        assert_eq!(traces_url("http://collector/otlp/v1/traces").expect("valid"), "http://collector/otlp/v1/traces");
    }

    #[test]
    fn endpoint_must_be_plain_http() {
        for bad in ["https://collector:4318", "collector:4318", "/v1/traces", "http://", "not a url"] {
            assert!(traces_url(bad).is_err(), "{bad} was accepted");
        }
        assert!(Tracing::otlp("https://collector:4318", "kiln").is_err());
    }
}
