//! The registry of all apps' series, and the per-app observer the host installs in each trigger.

use crate::component::{AppShared, ComponentMetrics, ObservedComponent};
use crate::families::{AppLabels, BackendLabels, ComponentLabels, EventLabels, Families, LogLabels, TriggerLabels};
use kiln_app::{CapabilityObserver, EventObserver, EventOutcome};
use std::sync::atomic::AtomicU64;
use crate::traces::{SpanSource, Tracing};
use kiln_trigger_http::{ComponentObserver, HttpObserver};
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::histogram::Histogram;
use prometheus_client::registry::Registry;
use std::collections::HashMap;
use std::sync::atomic::Ordering;
use std::sync::{Arc, Mutex, PoisonError};
use std::time::Duration;

/// The `Content-Type` of [`Metrics::render`]'s output. `prometheus-client` writes the OpenMetrics 1.0
/// text format, which Prometheus scrapes natively (and which a text-format 0.0.4 parser reads too:
/// the `# UNIT` and `# EOF` lines are comments to it).
pub const CONTENT_TYPE: &str = "application/openmetrics-text; version=1.0.0; charset=utf-8";

/// Every app's metrics, in one registry rendered by `GET /metrics`.
pub struct Metrics {
    registry: Registry,
    families: Families,
    apps: Mutex<HashMap<Arc<str>, Arc<AppState>>>,
}

impl Metrics {
    pub fn new() -> Arc<Metrics> {
        let mut registry = Registry::default();
        let families = Families::new(&mut registry);
        Arc::new(Metrics { registry, families, apps: Mutex::default() })
    }

    /// The observer for app `name`, to install in its trigger (`HttpOptions::observer`). With
    /// `tracing`, every response of the app also becomes a span.
    ///
    /// Asking again for the same name (a new version of the app) continues the same series and
    /// totals, so a redeploy does not reset counters; the old version's trigger may keep using its
    /// observer while it drains.
    pub fn app(&self, name: &str, tracing: Option<&Tracing>) -> Arc<AppMetrics> {
        let state = self.app_state(name);
        let spans = tracing.map(|tracing| tracing.spans_for(state.labels.app.clone()));
        Arc::new(AppMetrics { state, spans })
    }

    fn app_state(&self, name: &str) -> Arc<AppState> {
        let mut apps = self.apps.lock().unwrap_or_else(PoisonError::into_inner);
        if let Some(state) = apps.get(name) {
            return state.clone();
        }
        let state = Arc::new(AppState::new(&self.families, Arc::from(name)));
        apps.insert(state.labels.app.clone(), state.clone());
        state
    }

    /// Drops every series of app `name` (it was removed). Observers still held by its draining
    /// trigger go on working but no longer show in [`render`](Self::render); deploying the name again
    /// starts from zero.
    pub fn remove_app(&self, name: &str) {
        let removed = self.apps.lock().unwrap_or_else(PoisonError::into_inner).remove(name);
        if let Some(state) = removed {
            state.remove_series();
        }
    }

    /// Sets `kiln_apps`, the number of apps deployed.
    pub fn set_apps(&self, count: usize) {
        self.families.apps.set(i64::try_from(count).unwrap_or(i64::MAX));
    }

    /// The text exposition of every series, served with [`CONTENT_TYPE`].
    pub fn render(&self) -> String {
        let mut text = String::new();
        if let Err(err) = prometheus_client::encoding::text::encode(&mut text, &self.registry) {
            // Writing to a String cannot fail; an encoder error would be a bug in a label value.
            tracing::error!("cannot encode the metrics: {err}");
        }
        text
    }
}

/// (trigger, component, outcome) of an event series.
type EventKey = (&'static str, Arc<str>, &'static str);

/// (component, level) of a guest-log series.
type LogKey = (Arc<str>, &'static str);

/// (capability, backend) of a backend-error series.
type BackendKey = (&'static str, &'static str);

/// One app's state in the registry, shared by every version of the app.
struct AppState {
    labels: AppLabels,
    families: Families,
    shared: Arc<AppShared>,
    cold_loads: Counter,
    cold_load_duration: Histogram,
    /// Made when a trigger asks for them, kept so that a new version reuses them and so that removal
    /// knows every series.
    components: Mutex<HashMap<Arc<str>, Arc<ComponentMetrics>>>,
    /// Every event series made, by (trigger, component, outcome): removal knows them, and an event
    /// finds its counter and histogram without allocating labels.
    event_series: Mutex<HashMap<EventKey, (Counter, Histogram)>>,
    events: AtomicU64,
    event_errors: AtomicU64,
    /// The trigger kinds whose `kiln_trigger_up` series exist.
    trigger_kinds: Mutex<Vec<&'static str>>,
    /// Every guest-log series made: removal knows them, and a log call finds its counter without
    /// allocating labels.
    log_series: Mutex<HashMap<LogKey, Counter>>,
    /// Every backend-error series made, as `log_series`.
    backend_series: Mutex<HashMap<BackendKey, Counter>>,
}

impl AppState {
    fn new(families: &Families, app: Arc<str>) -> AppState {
        let labels = AppLabels { app };
        AppState {
            cold_loads: families.cold_loads.get_or_create_owned(&labels),
            cold_load_duration: families.cold_load_duration.get_or_create_owned(&labels),
            families: families.clone(),
            shared: Arc::default(),
            components: Mutex::default(),
            event_series: Mutex::default(),
            events: AtomicU64::new(0),
            event_errors: AtomicU64::new(0),
            trigger_kinds: Mutex::default(),
            log_series: Mutex::default(),
            backend_series: Mutex::default(),
            labels,
        }
    }

    fn component(&self, name: &str) -> Arc<ComponentMetrics> {
        let mut components = self.components.lock().unwrap_or_else(PoisonError::into_inner);
        if let Some(metrics) = components.get(name) {
            return metrics.clone();
        }
        let component: Arc<str> = Arc::from(name);
        let labels = ComponentLabels { app: self.labels.app.clone(), component: component.clone() };
        // Checked under the lock `remove_series` takes after setting the flag: a component asked
        // for after removal must not bring the app's series back.
        let families = if self.shared.removed.load(Ordering::SeqCst) { &Families::unregistered() } else { &self.families };
        let metrics = Arc::new(ComponentMetrics::new(families, labels, self.shared.clone()));
        components.insert(component, metrics.clone());
        metrics
    }

    fn remove_series(&self) {
        self.shared.removed.store(true, Ordering::SeqCst);
        self.families.cold_loads.remove(&self.labels);
        self.families.cold_load_duration.remove(&self.labels);
        let components = self.components.lock().unwrap_or_else(PoisonError::into_inner);
        for component in components.values() {
            component.remove_series();
        }
        for trigger in self.trigger_kinds.lock().unwrap_or_else(PoisonError::into_inner).drain(..) {
            self.families.trigger_up.remove(&TriggerLabels { app: self.labels.app.clone(), trigger });
        }
        let events = self.event_series.lock().unwrap_or_else(PoisonError::into_inner);
        for (trigger, component, outcome) in events.keys() {
            let app = self.labels.app.clone();
            self.families.events.remove(&EventLabels { app: app.clone(), trigger, component: component.clone(), outcome });
            self.families.event_duration.remove(&TriggerLabels { app, trigger });
        }
        let logs = self.log_series.lock().unwrap_or_else(PoisonError::into_inner);
        for (component, level) in logs.keys() {
            self.families.guest_logs.remove(&LogLabels { app: self.labels.app.clone(), component: component.clone(), level });
        }
        let backends = self.backend_series.lock().unwrap_or_else(PoisonError::into_inner);
        for (capability, backend) in backends.keys() {
            self.families.backend_errors.remove(&BackendLabels { app: self.labels.app.clone(), capability, backend });
        }
    }

    fn backend_error(&self, capability: &'static str, backend: &'static str) {
        // Checked under the lock `remove_series` takes after setting the flag, as for components.
        let mut series = self.backend_series.lock().unwrap_or_else(PoisonError::into_inner);
        if self.shared.removed.load(Ordering::SeqCst) {
            return;
        }
        let counter = series
            .entry((capability, backend))
            .or_insert_with(|| self.families.backend_errors.get_or_create_owned(&BackendLabels { app: self.labels.app.clone(), capability, backend }))
            .clone();
        drop(series);
        counter.inc();
    }

    fn guest_log(&self, component: &str, level: &'static str) {
        // Checked under the lock `remove_series` takes after setting the flag, as for components.
        let mut series = self.log_series.lock().unwrap_or_else(PoisonError::into_inner);
        if self.shared.removed.load(Ordering::SeqCst) {
            return;
        }
        let found = series.iter().find(|((c, l), _)| **c == *component && *l == level).map(|(_, counter)| counter.clone());
        let counter = found.unwrap_or_else(|| {
            let component: Arc<str> = Arc::from(component);
            let labels = LogLabels { app: self.labels.app.clone(), component: component.clone(), level };
            let counter = self.families.guest_logs.get_or_create_owned(&labels);
            series.insert((component, level), counter.clone());
            counter
        });
        drop(series);
        counter.inc();
    }

    fn event(&self, trigger: &'static str, component: &str, outcome: EventOutcome, elapsed: Duration) {
        self.events.fetch_add(1, Ordering::Relaxed);
        if outcome == EventOutcome::Failed {
            self.event_errors.fetch_add(1, Ordering::Relaxed);
        }
        let outcome = match outcome {
            EventOutcome::Ok => "ok",
            EventOutcome::Failed => "error",
        };
        // Checked under the lock `remove_series` takes after setting the flag, as for components.
        let mut series = self.event_series.lock().unwrap_or_else(PoisonError::into_inner);
        if self.shared.removed.load(Ordering::SeqCst) {
            return;
        }
        let found = series.iter().find(|((t, c, o), _)| *t == trigger && **c == *component && *o == outcome).map(|(_, handles)| handles.clone());
        let (counter, histogram) = found.unwrap_or_else(|| {
            let component: Arc<str> = Arc::from(component);
            let app = self.labels.app.clone();
            let labels = EventLabels { app: app.clone(), trigger, component: component.clone(), outcome };
            let handles = (
                self.families.events.get_or_create_owned(&labels),
                self.families.event_duration.get_or_create_owned(&TriggerLabels { app, trigger }),
            );
            series.insert((trigger, component, outcome), handles.clone());
            handles
        });
        drop(series);
        counter.inc();
        histogram.observe(elapsed.as_secs_f64());
    }
}

/// One app's observer: the HTTP trigger asks it for each component's; the host reports cold loads
/// to it and reads its totals for the admin API.
pub struct AppMetrics {
    state: Arc<AppState>,
    spans: Option<SpanSource>,
}

impl AppMetrics {
    /// The app was loaded into memory from idle, taking `elapsed`.
    pub fn cold_load(&self, elapsed: Duration) {
        self.state.cold_loads.inc();
        self.state.cold_load_duration.observe(elapsed.as_secs_f64());
    }

    /// `(requests, errors_5xx)`: responses counted since the app was first deployed, and how many of
    /// them were 5xx.
    pub fn totals(&self) -> (u64, u64) {
        let shared = &self.state.shared;
        (shared.requests.load(Ordering::Relaxed), shared.errors_5xx.load(Ordering::Relaxed))
    }

    /// Sets `kiln_trigger_up` for the app's `trigger` kind: whether it is subscribed now.
    pub fn trigger_state(&self, trigger: &'static str, up: bool) {
        let mut kinds = self.state.trigger_kinds.lock().unwrap_or_else(PoisonError::into_inner);
        if self.state.shared.removed.load(Ordering::SeqCst) {
            return;
        }
        if !kinds.contains(&trigger) {
            kinds.push(trigger);
        }
        self.state.families.trigger_up.get_or_create(&TriggerLabels { app: self.state.labels.app.clone(), trigger }).set(i64::from(up));
    }

    /// `(events, failed)`: events handled since the app was first deployed, and how many failed.
    pub fn event_totals(&self) -> (u64, u64) {
        (self.state.events.load(Ordering::Relaxed), self.state.event_errors.load(Ordering::Relaxed))
    }

    /// Instances of the app running now.
    pub fn in_flight(&self) -> i64 {
        self.state.shared.in_flight.load(Ordering::Relaxed)
    }
}

impl EventObserver for AppMetrics {
    fn event(&self, trigger: &'static str, component: &str, outcome: EventOutcome, elapsed: Duration) {
        self.state.event(trigger, component, outcome, elapsed);
    }
}

impl CapabilityObserver for AppMetrics {
    fn guest_log(&self, component: &str, level: &'static str) {
        self.state.guest_log(component, level);
    }

    fn backend_error(&self, capability: &'static str, backend: &'static str) {
        self.state.backend_error(capability, backend);
    }
}

impl HttpObserver for AppMetrics {
    fn component(&self, component: &str) -> Arc<dyn ComponentObserver> {
        let metrics = self.state.component(component);
        let spans = self.spans.as_ref().map(|spans| spans.for_component(component));
        Arc::new(ObservedComponent { metrics, spans })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use http::StatusCode;
    use kiln_engine::InstanceFailure;

    const MS: Duration = Duration::from_millis(1);

    /// The line of `text` that starts with `series` (a name and its labels), without the value.
    fn sample<'t>(text: &'t str, series: &str) -> Option<&'t str> {
        text.lines().find_map(|line| line.strip_prefix(series)?.strip_prefix(' '))
    }

    fn assert_sample(text: &str, series: &str, value: &str) {
        assert_eq!(sample(text, series), Some(value), "{series} in:\n{text}");
    }

    /// One request through the hooks in the order the HTTP trigger calls them.
    fn request(component: &dyn ComponentObserver, status: StatusCode, failure: Option<InstanceFailure>) {
        component.instance_started();
        component.instantiated(Duration::from_micros(40));
        component.instance_ended(failure.as_ref());
        component.responded("/cart/...", status, 3 * MS);
    }

    #[test]
    fn requests_are_counted_by_app_component_and_status() {
        let metrics = Metrics::new();
        let shop = metrics.app("shop", None);
        let cart = shop.component("cart");
        request(&*cart, StatusCode::OK, None);
        request(&*cart, StatusCode::OK, None);
        request(&*cart, StatusCode::CREATED, None);
        request(&*cart, StatusCode::GATEWAY_TIMEOUT, Some(InstanceFailure::Deadline(Duration::from_secs(1))));
        let text = metrics.render();
        assert_sample(&text, r#"kiln_requests_total{app="shop",component="cart",status="200"}"#, "2");
        assert_sample(&text, r#"kiln_requests_total{app="shop",component="cart",status="201"}"#, "1");
        assert_sample(&text, r#"kiln_requests_total{app="shop",component="cart",status="504"}"#, "1");
        assert_sample(&text, r#"kiln_requests_total{app="shop",component="cart",status="404"}"#, "0");
        assert!(text.contains("# TYPE kiln_requests counter\n"), "{text}");
    }

    #[test]
    fn durations_land_in_their_buckets() {
        let metrics = Metrics::new();
        let cart = metrics.app("shop", None).component("cart");
        request(&*cart, StatusCode::OK, None);
        cart.responded("/cart/...", StatusCode::OK, 20 * MS);
        let text = metrics.render();
        let labels = r#"app="shop",component="cart""#;
        assert_sample(&text, &format!("kiln_request_duration_seconds_count{{{labels}}}"), "2");
        assert_sample(&text, &format!(r#"kiln_request_duration_seconds_bucket{{le="0.0005",{labels}}}"#), "0");
        assert_sample(&text, &format!(r#"kiln_request_duration_seconds_bucket{{le="0.005",{labels}}}"#), "1");
        assert_sample(&text, &format!(r#"kiln_request_duration_seconds_bucket{{le="0.025",{labels}}}"#), "2");
        assert_sample(&text, &format!(r#"kiln_request_duration_seconds_bucket{{le="10.0",{labels}}}"#), "2");
        assert_sample(&text, &format!("kiln_instantiation_duration_seconds_count{{{labels}}}"), "1");
        assert_sample(&text, &format!(r#"kiln_instantiation_duration_seconds_bucket{{le="0.00001",{labels}}}"#), "0");
        assert_sample(&text, &format!(r#"kiln_instantiation_duration_seconds_bucket{{le="0.00005",{labels}}}"#), "1");
        assert!(text.contains("# TYPE kiln_request_duration_seconds histogram\n"), "{text}");
        assert!(text.contains("# UNIT kiln_request_duration_seconds seconds\n"), "{text}");
    }

    #[test]
    fn kills_are_counted_by_reason() {
        let metrics = Metrics::new();
        let cart = metrics.app("shop", None).component("cart");
        request(&*cart, StatusCode::GATEWAY_TIMEOUT, Some(InstanceFailure::Deadline(Duration::from_secs(1))));
        request(&*cart, StatusCode::INTERNAL_SERVER_ERROR, Some(InstanceFailure::OutOfMemory { limit: 1 << 20 }));
        request(&*cart, StatusCode::INTERNAL_SERVER_ERROR, Some(InstanceFailure::Trap("unreachable".into())));
        request(&*cart, StatusCode::INTERNAL_SERVER_ERROR, Some(InstanceFailure::Trap("unreachable".into())));
        let text = metrics.render();
        let labels = r#"app="shop",component="cart""#;
        assert_sample(&text, &format!(r#"kiln_instance_kills_total{{{labels},reason="deadline"}}"#), "1");
        assert_sample(&text, &format!(r#"kiln_instance_kills_total{{{labels},reason="memory"}}"#), "1");
        assert_sample(&text, &format!(r#"kiln_instance_kills_total{{{labels},reason="trap"}}"#), "2");
    }

    #[test]
    fn in_flight_rises_and_falls_with_instances() {
        let metrics = Metrics::new();
        let shop = metrics.app("shop", None);
        let (cart, pay) = (shop.component("cart"), shop.component("pay"));
        cart.instance_started();
        cart.instance_started();
        pay.instance_started();
        let labels = r#"app="shop",component="cart""#;
        assert_sample(&metrics.render(), &format!("kiln_instances_in_flight{{{labels}}}"), "2");
        assert_eq!(shop.in_flight(), 3);
        cart.instance_ended(None);
        pay.instance_ended(Some(&InstanceFailure::Trap("unreachable".into())));
        assert_sample(&metrics.render(), &format!("kiln_instances_in_flight{{{labels}}}"), "1");
        assert_eq!(shop.in_flight(), 1);
    }

    #[test]
    fn totals_count_responses_and_5xx() {
        let metrics = Metrics::new();
        let shop = metrics.app("shop", None);
        let cart = shop.component("cart");
        for status in [StatusCode::OK, StatusCode::NOT_FOUND, StatusCode::INTERNAL_SERVER_ERROR, StatusCode::BAD_GATEWAY] {
            cart.responded("/cart/...", status, MS);
        }
        shop.component("pay").responded("/pay", StatusCode::SERVICE_UNAVAILABLE, MS);
        assert_eq!(shop.totals(), (5, 3));
        assert_eq!(metrics.app("other", None).totals(), (0, 0));
    }

    #[test]
    fn a_new_version_of_an_app_continues_its_series() {
        let metrics = Metrics::new();
        let first = metrics.app("shop", None);
        first.component("cart").responded("/cart/...", StatusCode::OK, MS);
        let second = metrics.app("shop", None);
        second.component("cart").responded("/cart/...", StatusCode::OK, MS);
        assert_eq!(second.totals(), (2, 0));
        assert_sample(&metrics.render(), r#"kiln_requests_total{app="shop",component="cart",status="200"}"#, "2");
    }

    #[test]
    fn cold_loads_are_counted_and_timed() {
        let metrics = Metrics::new();
        let shop = metrics.app("shop", None);
        shop.cold_load(Duration::from_millis(30));
        shop.cold_load(Duration::from_secs(2));
        let text = metrics.render();
        assert_sample(&text, r#"kiln_cold_loads_total{app="shop"}"#, "2");
        assert_sample(&text, r#"kiln_cold_load_duration_seconds_count{app="shop"}"#, "2");
        assert_sample(&text, r#"kiln_cold_load_duration_seconds_bucket{le="0.05",app="shop"}"#, "1");
        assert_sample(&text, r#"kiln_cold_load_duration_seconds_bucket{le="2.5",app="shop"}"#, "2");
    }

    #[test]
    fn events_are_counted_by_app_trigger_component_and_outcome() {
        let metrics = Metrics::new();
        let orders = metrics.app("orders", None);
        orders.event("nats", "audit", EventOutcome::Ok, 2 * MS);
        orders.event("nats", "audit", EventOutcome::Ok, 3 * MS);
        orders.event("redis", "audit", EventOutcome::Failed, MS);
        let text = metrics.render();
        assert_sample(&text, r#"kiln_events_total{app="orders",trigger="nats",component="audit",outcome="ok"}"#, "2");
        assert_sample(&text, r#"kiln_events_total{app="orders",trigger="redis",component="audit",outcome="error"}"#, "1");
        assert_sample(&text, r#"kiln_event_duration_seconds_count{app="orders",trigger="nats"}"#, "2");
        assert_eq!(orders.event_totals(), (3, 1));
        metrics.remove_app("orders");
        orders.event("nats", "audit", EventOutcome::Ok, MS);
        assert!(!metrics.render().contains(r#"app="orders""#));
    }

    #[test]
    fn backend_errors_are_counted_by_app_capability_and_backend() {
        let metrics = Metrics::new();
        let shop = metrics.app("shop", None);
        shop.backend_error("key_value", "redis");
        shop.backend_error("key_value", "redis");
        shop.backend_error("messaging", "nats");
        let text = metrics.render();
        assert_sample(&text, r#"kiln_backend_errors_total{app="shop",capability="key_value",backend="redis"}"#, "2");
        assert_sample(&text, r#"kiln_backend_errors_total{app="shop",capability="messaging",backend="nats"}"#, "1");
        metrics.remove_app("shop");
        shop.backend_error("sqlite", "embedded");
        assert!(!metrics.render().contains(r#"app="shop""#));
    }

    #[test]
    fn guest_logs_are_counted_by_app_component_and_level() {
        let metrics = Metrics::new();
        let counter = metrics.app("counter", None);
        counter.guest_log("api", "info");
        counter.guest_log("api", "info");
        counter.guest_log("api", "critical");
        let text = metrics.render();
        assert_sample(&text, r#"kiln_guest_logs_total{app="counter",component="api",level="info"}"#, "2");
        assert_sample(&text, r#"kiln_guest_logs_total{app="counter",component="api",level="critical"}"#, "1");
        metrics.remove_app("counter");
        counter.guest_log("api", "warn");
        assert!(!metrics.render().contains(r#"app="counter""#));
    }

    #[test]
    fn apps_gauge_is_set() {
        let metrics = Metrics::new();
        metrics.set_apps(3);
        assert_sample(&metrics.render(), "kiln_apps", "3");
    }

    #[test]
    fn removing_an_app_drops_its_series_and_keeps_the_others() {
        let metrics = Metrics::new();
        let shop = metrics.app("shop", None);
        let cart = shop.component("cart");
        request(&*cart, StatusCode::CREATED, Some(InstanceFailure::Trap("unreachable".into())));
        shop.cold_load(MS);
        request(&*metrics.app("blog", None).component("posts"), StatusCode::OK, None);
        metrics.remove_app("shop");
        // The removed app's trigger may still be draining: its hooks work but bring nothing back.
        request(&*cart, StatusCode::IM_A_TEAPOT, None);
        shop.cold_load(MS);
        let text = metrics.render();
        assert!(!text.contains(r#"app="shop""#), "{text}");
        assert_sample(&text, r#"kiln_requests_total{app="blog",component="posts",status="200"}"#, "1");
        metrics.remove_app("no-such-app");
    }

    #[test]
    fn a_component_asked_for_after_removal_stays_out_of_the_output() {
        let metrics = Metrics::new();
        let shop = metrics.app("shop", None);
        metrics.remove_app("shop");
        request(&*shop.component("late"), StatusCode::OK, None);
        assert!(!metrics.render().contains(r#"app="shop""#));
    }

    #[test]
    fn an_app_deployed_again_after_removal_starts_from_zero() {
        let metrics = Metrics::new();
        metrics.app("shop", None).component("cart").responded("/cart/...", StatusCode::OK, MS);
        metrics.remove_app("shop");
        let shop = metrics.app("shop", None);
        assert_eq!(shop.totals(), (0, 0));
        shop.component("cart");
        assert_sample(&metrics.render(), r#"kiln_requests_total{app="shop",component="cart",status="200"}"#, "0");
    }

    #[test]
    fn output_is_openmetrics_text() {
        let text = Metrics::new().render();
        assert!(text.ends_with("# EOF\n"), "{text}");
        assert!(CONTENT_TYPE.starts_with("application/openmetrics-text"));
    }
}
