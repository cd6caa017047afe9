//! Platform mode (`kiln serve`): one host serving many apps, each deployed, updated and removed live
//! over an authenticated admin API, loaded on its first request and unloaded when idle.
//!
//! - [`platform`]: the apps — deploy, update, remove, restore, lazy load, idle unload.
//! - [`front`]: the public listener — `Host: <app>.<domain>` or a route prefix picks the app.
//! - [`admin`]: the admin API, metrics and dashboard, behind a bearer token ([`token`]).
//! - [`data_dir`]: what is kept on disk, and how it is changed safely; [`archive`]: uploads.

pub mod admin;
pub mod archive;
pub mod cluster;
pub mod data_dir;
pub mod front;
pub mod limits;
pub mod platform;
pub mod record;
pub mod token;

pub use admin::Admin;
pub use front::Front;
pub use limits::{AppLimits, LimitCeilings};
pub use platform::{ApiError, Platform, PlatformConfig};
pub use record::AppInfo;
pub use token::AdminToken;
