//! One component's metric handles, and the observer the HTTP trigger calls for its requests.

use crate::families::{ComponentLabels, Families, KILL_REASONS, KillLabels, RequestLabels};
use crate::traces::SpanRecorder;
use http::StatusCode;
use kiln_engine::InstanceFailure;
use kiln_trigger_http::ComponentObserver;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::metrics::histogram::Histogram;
use std::sync::atomic::{AtomicBool, AtomicI64, AtomicU64, Ordering};
use std::sync::{Arc, PoisonError, RwLock};
use std::time::Duration;

/// The statuses whose counters are made with the component, so that most responses count without
/// looking anything up or taking any lock.
const COMMON_STATUSES: [u16; 5] = [200, 404, 500, 503, 504];

/// What every component of one app updates: the admin API's totals, and whether the app's series
/// were removed (so that a request still draining after `remove_app` does not bring them back).
#[derive(Default)]
pub(crate) struct AppShared {
    pub requests: AtomicU64,
    pub errors_5xx: AtomicU64,
    pub in_flight: AtomicI64,
    pub removed: AtomicBool,
}

/// One component's series, as handles made in advance: counting is an atomic add on a handle.
pub(crate) struct ComponentMetrics {
    labels: ComponentLabels,
    families: Families,
    shared: Arc<AppShared>,
    common_statuses: [(u16, Counter); COMMON_STATUSES.len()],
    /// Counters of the other statuses this component answered with, made on first use.
    other_statuses: RwLock<Vec<(u16, Counter)>>,
    request_duration: Histogram,
    in_flight: Gauge,
    instantiation: Histogram,
    /// One counter per entry of [`KILL_REASONS`], in that order.
    kills: [Counter; KILL_REASONS.len()],
}

impl ComponentMetrics {
    pub fn new(families: &Families, labels: ComponentLabels, shared: Arc<AppShared>) -> ComponentMetrics {
        let status_counter = |status| families.requests.get_or_create_owned(&request_labels(&labels, status));
        let kill_counter = |reason| families.kills.get_or_create_owned(&kill_labels(&labels, reason));
        ComponentMetrics {
            common_statuses: COMMON_STATUSES.map(|status| (status, status_counter(status))),
            other_statuses: RwLock::default(),
            request_duration: families.request_duration.get_or_create_owned(&labels),
            in_flight: families.in_flight.get_or_create_owned(&labels),
            instantiation: families.instantiation.get_or_create_owned(&labels),
            kills: KILL_REASONS.map(kill_counter),
            families: families.clone(),
            labels,
            shared,
        }
    }

    fn count_response(&self, status: StatusCode, elapsed: Duration) {
        self.count_status(status.as_u16());
        self.request_duration.observe(elapsed.as_secs_f64());
        self.shared.requests.fetch_add(1, Ordering::Relaxed);
        if status.is_server_error() {
            self.shared.errors_5xx.fetch_add(1, Ordering::Relaxed);
        }
    }

    fn count_status(&self, status: u16) {
        if let Some((_, counter)) = self.common_statuses.iter().find(|(common, _)| *common == status) {
            counter.inc();
            return;
        }
        let others = self.other_statuses.read().unwrap_or_else(PoisonError::into_inner);
        if let Some((_, counter)) = others.iter().find(|(other, _)| *other == status) {
            counter.inc();
            return;
        }
        drop(others);
        self.add_status_counter(status).inc();
    }

    /// Makes the counter of a status seen for the first time. Holds the write lock while it registers
    /// the series, so that [`remove_series`](Self::remove_series) sees every series it must remove.
    fn add_status_counter(&self, status: u16) -> Counter {
        let mut others = self.other_statuses.write().unwrap_or_else(PoisonError::into_inner);
        if let Some((_, counter)) = others.iter().find(|(other, _)| *other == status) {
            return counter.clone();
        }
        let counter = if self.shared.removed.load(Ordering::SeqCst) {
            Counter::default()
        } else {
            self.families.requests.get_or_create_owned(&request_labels(&self.labels, status))
        };
        others.push((status, counter.clone()));
        counter
    }

    fn instance_started(&self) {
        self.in_flight.inc();
        self.shared.in_flight.fetch_add(1, Ordering::Relaxed);
    }

    fn instance_ended(&self, failure: Option<&InstanceFailure>) {
        self.in_flight.dec();
        self.shared.in_flight.fetch_sub(1, Ordering::Relaxed);
        if let Some(failure) = failure {
            self.kills[kill_index(failure)].inc();
        }
    }

    /// Drops every series of this component from the families. The caller has set `removed` first.
    pub fn remove_series(&self) {
        let others = self.other_statuses.write().unwrap_or_else(PoisonError::into_inner);
        let statuses = COMMON_STATUSES.iter().chain(others.iter().map(|(status, _)| status));
        for status in statuses {
            self.families.requests.remove(&request_labels(&self.labels, *status));
        }
        for reason in KILL_REASONS {
            self.families.kills.remove(&kill_labels(&self.labels, reason));
        }
        self.families.request_duration.remove(&self.labels);
        self.families.in_flight.remove(&self.labels);
        self.families.instantiation.remove(&self.labels);
    }
}

fn request_labels(labels: &ComponentLabels, status: u16) -> RequestLabels {
    RequestLabels { app: labels.app.clone(), component: labels.component.clone(), status }
}

fn kill_labels(labels: &ComponentLabels, reason: &'static str) -> KillLabels {
    KillLabels { app: labels.app.clone(), component: labels.component.clone(), reason }
}

/// The index in [`KILL_REASONS`] of a failure's reason.
fn kill_index(failure: &InstanceFailure) -> usize {
    match failure {
        InstanceFailure::Deadline(_) => 0,
        InstanceFailure::OutOfMemory { .. } => 1,
        InstanceFailure::Trap(_) => 2,
    }
}

/// The observer handed to the HTTP trigger for one component: its metrics, and its spans when
/// tracing is on.
pub(crate) struct ObservedComponent {
    pub metrics: Arc<ComponentMetrics>,
    pub spans: Option<SpanRecorder>,
}

impl ComponentObserver for ObservedComponent {
    fn instance_started(&self) {
        self.metrics.instance_started();
    }

    fn instantiated(&self, elapsed: Duration) {
        self.metrics.instantiation.observe(elapsed.as_secs_f64());
    }

    fn instance_ended(&self, failure: Option<&InstanceFailure>) {
        self.metrics.instance_ended(failure);
    }

    fn responded(&self, route: &str, status: StatusCode, elapsed: Duration) {
        self.metrics.count_response(status, elapsed);
        if let Some(spans) = &self.spans {
            spans.record(route, status, elapsed);
        }
    }
}
