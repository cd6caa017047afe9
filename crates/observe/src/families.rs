//! The metric families Kiln exports, their labels and their buckets, and their registration.

use prometheus_client::encoding::EncodeLabelSet;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::metrics::histogram::Histogram;
use prometheus_client::registry::{Registry, Unit};
use std::sync::Arc;

/// Request durations (routing to response head): 0.5 ms to 10 s. A warm Kiln request takes well under
/// a millisecond of host time, so the low end is where the detail matters.
const REQUEST_BUCKETS: [f64; 14] = [0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0];

/// Instantiation (store creation plus `instantiate_async`): 10 µs to 100 ms. Pooled, copy-on-write
/// instantiation takes tens of microseconds; anything near the top bucket is a problem worth seeing.
const INSTANTIATION_BUCKETS: [f64; 13] =
    [0.00001, 0.000025, 0.00005, 0.0001, 0.00025, 0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1];

/// Cold loads (an idle app brought into memory): 1 ms (mapping a cached artifact) to 60 s (compiling a
/// large component from scratch).
const COLD_LOAD_BUCKETS: [f64; 15] = [0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0, 60.0];

/// Labels of the series that belong to an app as a whole.
#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub(crate) struct AppLabels {
    pub app: Arc<str>,
}

/// Labels of the series that belong to one component of an app.
#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub(crate) struct ComponentLabels {
    pub app: Arc<str>,
    pub component: Arc<str>,
}

/// Labels of `kiln_requests_total`.
#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub(crate) struct RequestLabels {
    pub app: Arc<str>,
    pub component: Arc<str>,
    pub status: u16,
}

/// Labels of `kiln_instance_kills_total`; `reason` is one of [`KILL_REASONS`].
#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub(crate) struct KillLabels {
    pub app: Arc<str>,
    pub component: Arc<str>,
    pub reason: &'static str,
}

/// Labels of `kiln_events_total`: `outcome` is `ok` or `error`.
#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub(crate) struct EventLabels {
    pub app: Arc<str>,
    pub trigger: &'static str,
    pub component: Arc<str>,
    pub outcome: &'static str,
}

/// Labels of `kiln_guest_logs_total`: `level` is one of `wasi:logging`'s levels.
#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub(crate) struct LogLabels {
    pub app: Arc<str>,
    pub component: Arc<str>,
    pub level: &'static str,
}

/// Labels of `kiln_backend_errors_total`: the capability (`key_value`, `sqlite`, `messaging`) and
/// its backend (`embedded`, `redis`, `nats`, `in-process`).
#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub(crate) struct BackendLabels {
    pub app: Arc<str>,
    pub capability: &'static str,
    pub backend: &'static str,
}

/// Labels of the series that belong to one trigger kind of an app.
#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub(crate) struct TriggerLabels {
    pub app: Arc<str>,
    pub trigger: &'static str,
}

/// Why an instance was cut off, as the `reason` label spells it.
pub(crate) const KILL_REASONS: [&str; 3] = ["deadline", "memory", "trap"];

type HistogramFamily<S> = Family<S, Histogram, fn() -> Histogram>;

/// Every family, each a cheap handle (an `Arc`) onto series the registry also holds.
#[derive(Clone)]
pub(crate) struct Families {
    pub requests: Family<RequestLabels, Counter>,
    pub request_duration: HistogramFamily<ComponentLabels>,
    pub in_flight: Family<ComponentLabels, Gauge>,
    pub instantiation: HistogramFamily<ComponentLabels>,
    pub kills: Family<KillLabels, Counter>,
    pub cold_loads: Family<AppLabels, Counter>,
    pub cold_load_duration: HistogramFamily<AppLabels>,
    pub events: Family<EventLabels, Counter>,
    pub trigger_up: Family<TriggerLabels, Gauge>,
    pub event_duration: HistogramFamily<TriggerLabels>,
    pub guest_logs: Family<LogLabels, Counter>,
    pub backend_errors: Family<BackendLabels, Counter>,
    pub apps: Gauge,
}

impl Families {
    /// Makes the families and registers them under their exported names.
    pub fn new(registry: &mut Registry) -> Families {
        let families = Families {
            requests: Family::default(),
            request_duration: Family::new_with_constructor(|| Histogram::new(REQUEST_BUCKETS)),
            in_flight: Family::default(),
            instantiation: Family::new_with_constructor(|| Histogram::new(INSTANTIATION_BUCKETS)),
            kills: Family::default(),
            cold_loads: Family::default(),
            cold_load_duration: Family::new_with_constructor(|| Histogram::new(COLD_LOAD_BUCKETS)),
            events: Family::default(),
            trigger_up: Family::default(),
            event_duration: Family::new_with_constructor(|| Histogram::new(REQUEST_BUCKETS)),
            guest_logs: Family::default(),
            backend_errors: Family::default(),
            apps: Gauge::default(),
        };
        families.register(registry);
        families
    }

    /// Families no registry holds: series made in them are counted but never rendered.
    pub fn unregistered() -> Families {
        Families::new(&mut Registry::default())
    }

    // Counters are registered without `_total` (the encoder appends it) and histograms in seconds
    // with the unit given separately (the encoder appends `_seconds`).
    fn register(&self, registry: &mut Registry) {
        registry.register("kiln_requests", "HTTP responses per app, component and status", self.requests.clone());
        registry.register_with_unit(
            "kiln_request_duration",
            "Time from routing a request to its response head",
            Unit::Seconds,
            self.request_duration.clone(),
        );
        registry.register("kiln_instances_in_flight", "Instances running now", self.in_flight.clone());
        registry.register_with_unit(
            "kiln_instantiation_duration",
            "Time to create a store and instantiate a component",
            Unit::Seconds,
            self.instantiation.clone(),
        );
        registry.register("kiln_instance_kills", "Instances cut off or trapped, by reason", self.kills.clone());
        registry.register("kiln_cold_loads", "Times an idle app was loaded into memory", self.cold_loads.clone());
        registry.register_with_unit(
            "kiln_cold_load_duration",
            "Time to load an idle app into memory",
            Unit::Seconds,
            self.cold_load_duration.clone(),
        );
        registry.register("kiln_events", "Events (Redis and NATS messages, cron ticks) handled per app, trigger, component and outcome", self.events.clone());
        registry.register(
            "kiln_trigger_up",
            "1 while an app's event trigger is subscribed (or scheduled), 0 while it is reconnecting",
            self.trigger_up.clone(),
        );
        registry.register_with_unit(
            "kiln_event_duration",
            "Time to handle one event, including loading an idle app",
            Unit::Seconds,
            self.event_duration.clone(),
        );
        registry.register("kiln_guest_logs", "Lines guests logged through wasi:logging, per app, component and level", self.guest_logs.clone());
        registry.register(
            "kiln_backend_errors",
            "Guest calls a capability's backend failed (a Redis or NATS that does not answer, a full disk), per app, capability and backend",
            self.backend_errors.clone(),
        );
        registry.register("kiln_apps", "Apps deployed", self.apps.clone());
    }
}
