//! What the data directory remembers of an app (`apps/<name>/app.json`), and what the API shows.

use crate::limits::AppLimits;
use serde::{Deserialize, Serialize};

/// `GET /v1/apps`.
#[derive(Clone, Debug, Default, Serialize, Deserialize)]
#[serde(default)]
pub struct AppList {
    pub apps: Vec<AppInfo>,
}

/// The persistent record of a deployed app: which version is current and with which settings.
#[derive(Clone, Debug, Serialize, Deserialize, PartialEq, Eq)]
pub struct AppRecord {
    pub name: String,
    pub version: u64,
    pub route_prefix: Option<String>,
    pub limits: AppLimits,
    /// Unix seconds.
    pub deployed_at: u64,
    /// Deployed through the cluster's shared state (by reference): what the cluster asked for.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub desired: Option<crate::cluster::Desired>,
}

/// One route of an app, as the API lists it.
#[derive(Clone, Debug, Default, Serialize, Deserialize, PartialEq, Eq)]
#[serde(default)]
pub struct RouteInfo {
    pub component: String,
    pub route: String,
}

/// An app as the admin API shows it, and as its clients (`kiln apps`, `kiln deploy`) read it: every
/// field has a default on the wire, so a client still lists the apps of an older or newer host.
#[derive(Clone, Debug, Default, Serialize, Deserialize)]
#[serde(default)]
pub struct AppInfo {
    pub name: String,
    pub version: u64,
    /// `idle` (nothing in memory) or `loaded` (compiled code mapped, ready to instantiate).
    pub status: String,
    pub url: String,
    pub route_prefix: Option<String>,
    pub routes: Vec<RouteInfo>,
    pub limits: AppLimits,
    pub deployed_at: u64,
    pub requests_total: u64,
    pub errors_total: u64,
    pub in_flight: u64,
    /// The app's event triggers (Redis, NATS, cron), running whether the app is loaded or idle.
    pub triggers: Vec<TriggerInfo>,
    /// Events handled since the app was first deployed, and how many failed.
    pub events_total: u64,
    pub event_errors_total: u64,
}

/// One running event trigger of an app, as the API lists it.
#[derive(Clone, Debug, Default, Serialize, Deserialize, PartialEq, Eq)]
#[serde(default)]
pub struct TriggerInfo {
    /// `redis`, `nats` or `cron`.
    pub kind: String,
    /// One line per subscription or schedule.
    pub subscriptions: Vec<String>,
    /// `ok`, or what is wrong now (a Redis server that went away: reconnecting).
    pub state: String,
}

pub(crate) fn unix_now() -> u64 {
    std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).map(|d| d.as_secs()).unwrap_or_default()
}
