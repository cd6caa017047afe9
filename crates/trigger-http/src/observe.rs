//! Hooks through which a host watches the requests of one app: platform mode feeds them into metrics
//! and traces. `kiln up` installs none, so the hot path pays one `Option` check.

use http::StatusCode;
use kiln_engine::InstanceFailure;
use std::sync::Arc;
use std::time::Duration;

/// Watches one app. Asked once per component, when the app's trigger is built.
pub trait HttpObserver: Send + Sync {
    fn component(&self, component: &str) -> Arc<dyn ComponentObserver>;
}

/// Watches one component of one app. Called on the request path: keep every method cheap (atomics,
/// pre-made handles), never blocking.
pub trait ComponentObserver: Send + Sync {
    /// An instance is about to be made (a permit was taken).
    fn instance_started(&self);
    /// The instance is ready to be called; `elapsed` is store creation plus instantiation.
    fn instantiated(&self, elapsed: Duration);
    /// The instance ended: cleanly (`None`) or cut off / trapped.
    fn instance_ended(&self, failure: Option<&InstanceFailure>);
    /// A response went out for a request routed to this component (`route` is the manifest's route
    /// that matched); `elapsed` runs from routing to response head.
    fn responded(&self, route: &str, status: StatusCode, elapsed: Duration);
}
