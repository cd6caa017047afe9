//! The runtime config file (`--runtime-config-file runtime-config.toml`, Spin's shape): which backend
//! serves each key-value store and SQLite database label, and where variable values come from. The
//! same app runs against embedded defaults or real services without a rebuild.

mod error;
mod parse;

use indexmap::IndexMap;
use std::path::{Path, PathBuf};
use std::sync::Arc;

pub use error::RuntimeConfigError;

/// A parsed runtime config. [`RuntimeConfig::default`] is "no file": every label uses its embedded
/// default.
#[derive(Clone, Debug, Default)]
pub struct RuntimeConfig {
    /// The file it came from, if any.
    pub path: Option<PathBuf>,
    pub key_value_stores: IndexMap<String, KeyValueStoreConfig>,
    pub sqlite_databases: IndexMap<String, SqliteDatabaseConfig>,
    pub variables_providers: Vec<VariablesProviderConfig>,
    /// `[llm_compute]`: where `fermyon:spin/llm` inferencing runs. `None`: nowhere (calls fail).
    pub llm_compute: Option<LlmComputeConfig>,
    /// `[messaging]`: the broker of the app's messaging and event triggers. `None`: the manifest's
    /// NATS URL, else the bus inside the process.
    pub messaging: Option<MessagingConfig>,
}

/// `[messaging]`
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct MessagingConfig {
    pub broker: BrokerConfig,
    /// `max_deliver`: deliveries of a durable message before it is dead-lettered.
    pub max_deliver: Option<u32>,
}

/// The broker an app talks to (`[messaging] type`).
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub enum BrokerConfig {
    /// `type = "in-process"`: the bus inside this kiln process.
    InProcess,
    /// `type = "nats"`, `url`: a NATS server (or cluster: comma-separated URLs).
    Nats { url: String },
    /// `type = "redis"`, `url`: a Redis server: Pub/Sub, and Streams.
    Redis { url: String },
}

/// `[llm_compute]`
#[derive(Clone, PartialEq, Eq)]
pub enum LlmComputeConfig {
    /// `type = "spin"`: Spin's models inside the host. Kiln has none, so, like a Spin built without
    /// local inferencing, it loads the app and answers every call with a `runtime-error`.
    Local,
    /// `type = "remote_http"`, `url`, `auth_token`: a server speaking Spin's remote inferencing
    /// protocol (`POST <url>/infer`, `POST <url>/embed`, bearer token), such as Fermyon's
    /// `cloud-gpu` app.
    RemoteHttp { url: String, auth_token: String },
}

/// The token is a secret: never shown.
impl std::fmt::Debug for LlmComputeConfig {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            LlmComputeConfig::Local => f.write_str("Local"),
            LlmComputeConfig::RemoteHttp { url, .. } => f.debug_struct("RemoteHttp").field("url", url).finish_non_exhaustive(),
        }
    }
}

/// `[key_value_store.<label>]`
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum KeyValueStoreConfig {
    /// `type = "kiln"` or `"spin"`: the embedded store; `path` (relative to the runtime config file)
    /// or, by default, a file in the app's state directory.
    Embedded { path: Option<PathBuf> },
    /// `type = "redis"`, `url = "redis://host:port/db"`.
    Redis { url: String },
}

/// `[sqlite_database.<label>]`
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum SqliteDatabaseConfig {
    /// `type = "kiln"` or `"spin"`: a local file; `path` or, by default, in the state directory.
    Embedded { path: Option<PathBuf> },
}

/// `[[variables_provider]]`, in order of precedence.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum VariablesProviderConfig {
    /// `type = "env"`: `KILN_VARIABLE_<NAME>` / `SPIN_VARIABLE_<NAME>`, or `<PREFIX>_<NAME>` with
    /// `prefix = "…"`. `dotenv_path` (Spin's key, relative to the runtime config file): a dotenv file
    /// whose entries count as environment variables the real environment does not set.
    Env {
        prefix: Option<String>,
        dotenv_path: Option<PathBuf>,
    },
    /// `type = "static"`, `values = { name = "value" }`.
    Static { values: IndexMap<String, String> },
    /// `type = "dotenv"`, `path = ".env"` (relative to the runtime config file, stored absolute):
    /// `NAME=value` lines.
    Dotenv { path: PathBuf },
}

impl RuntimeConfig {
    /// Reads and validates the runtime config file at `path`. Relative paths inside it are resolved
    /// against the file's directory and stored absolute.
    pub fn load(path: &Path) -> Result<RuntimeConfig, RuntimeConfigError> {
        let text = std::fs::read_to_string(path).map_err(|e| {
            RuntimeConfigError::new(
                format!("cannot read runtime config file: {e}"),
                "check the path given with --runtime-config-file",
            )
            .in_file(path.display().to_string())
        })?;
        RuntimeConfig::parse(text, path)
    }

    /// Validates runtime config `text` as if it were read from `path` (used for relative paths and
    /// error messages; the file need not exist).
    pub fn parse(
        text: impl Into<String>,
        path: &Path,
    ) -> Result<RuntimeConfig, RuntimeConfigError> {
        let name = path.display().to_string();
        let absolute = std::path::absolute(path).map_err(|e| {
            RuntimeConfigError::new(format!("cannot resolve runtime config path: {e}"), "")
                .in_file(name.clone())
        })?;
        let absolute = parse::normalize(&absolute);
        let dir = absolute
            .parent()
            .map_or_else(|| PathBuf::from("/"), Path::to_path_buf);
        let src = error::Source {
            name,
            text: Arc::new(text.into()),
        };
        let mut config = parse::Cx {
            src: &src,
            dir: &dir,
        }
        .parse()?;
        config.path = Some(absolute);
        Ok(config)
    }
}

#[cfg(test)]
mod tests;

#[cfg(test)]
mod fuzz;
