//! Apps as OCI artifacts, in Spin's layout (`spin registry push` / `pull` read what Kiln writes and
//! the other way round):
//!
//! - [`pack`]: an app on disk → one Wasm layer per component, one data layer per static file (content
//!   of at most 128 bytes inlined instead), identical content once, and Spin's locked app last;
//! - [`registry`]: push through `oci-client`; pull into a content-addressed cache, every blob's
//!   digest checked before it is kept;
//! - [`materialize`]: a locked app and its blobs → an app directory with a `spin.toml`, which Kiln
//!   then loads like any other;
//! - [`auth`]: `kiln registry login`'s credentials, Spin's and Docker's.

pub mod auth;
pub mod locked;
pub mod materialize;
pub mod pack;
pub mod registry;
pub mod sources;

pub use auth::Credentials;
pub use pack::{Packed, pack};
pub use registry::{Cache, PulledApp, RegistryOptions, parse_reference, pull, push};
pub use sources::{has_remote_sources, resolve_sources};
