//! The runtime config file (`--runtime-config-file runtime-config.toml`, Spin's shape): which backend
//! serves each key-value store and SQLite database label, and where variable values come from. The
//! same app runs against embedded defaults or real services without a rebuild.

use indexmap::IndexMap;
use std::path::PathBuf;

/// A parsed runtime config. [`RuntimeConfig::default`] is "no file": every label uses its embedded
/// default.
#[derive(Clone, Debug, Default)]
pub struct RuntimeConfig {
    /// The file it came from, if any.
    pub path: Option<PathBuf>,
    pub key_value_stores: IndexMap<String, KeyValueStoreConfig>,
    pub sqlite_databases: IndexMap<String, SqliteDatabaseConfig>,
    pub variables_providers: Vec<VariablesProviderConfig>,
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
    /// `type = "env"`: `KILN_VARIABLE_<NAME>` / `SPIN_VARIABLE_<NAME>` (or `prefix = "…"`).
    Env { prefix: Option<String> },
    /// `type = "static"`, `values = { name = "value" }`.
    Static { values: IndexMap<String, String> },
    /// `type = "dotenv"`, `path = ".env"`: `NAME=value` lines.
    Dotenv { path: PathBuf },
}
