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
    /// is). Only `http://`: no TLS stack is built in, so send to a collector nearby. The standard
    /// `OTEL_EXPORTER_OTLP_TRACES_HEADERS` / `_TIMEOUT` variables still apply. `service_name` becomes
    /// the `service.name` resource attribute.
    pub fn otlp(endpoint: &str, service_name: &str) -> Result<Tracing> {
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
