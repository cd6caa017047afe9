//! Observability for platform mode (`kiln serve`): Prometheus metrics for every app and, when an OTLP
//! endpoint is configured, one OpenTelemetry span per request.
//!
//! Both are fed by the HTTP trigger's observer hooks ([`kiln_trigger_http::HttpObserver`]): the host
//! asks [`Metrics::app`] for an observer when it builds an app's trigger, and the trigger calls it on
//! every request. Everything on that path is an atomic operation on a handle made in advance, or (for
//! a span) a non-blocking hand-off to the exporter's own thread.
//!
//! ```no_run
//! # fn main() -> anyhow::Result<()> {
//! use kiln_observe::{Metrics, Tracing};
//! let metrics = Metrics::new();
//! let tracing = Tracing::otlp("http://127.0.0.1:4318", "kiln")?;
//! let observer = metrics.app("hello", Some(&tracing)); // into HttpOptions::observer
//! metrics.set_apps(1);
//! let body = metrics.render(); // GET /metrics, with `Content-Type: kiln_observe::CONTENT_TYPE`
//! # drop((observer, body));
//! tracing.shutdown();
//! # Ok(()) }
//! ```

mod component;
mod families;
mod metrics;
mod traces;

pub use metrics::{AppMetrics, CONTENT_TYPE, Metrics};
pub use traces::Tracing;
