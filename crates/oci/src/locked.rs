//! Spin's "locked app": the JSON document an OCI artifact carries (in its last layer, media type
//! [`LOCKED_APP_MEDIA_TYPE`]) that says what the app is — its triggers, components and variables —
//! with every piece of content replaced by a digest naming a layer (or, for content of at most 128
//! bytes, carried inline). Only what Kiln reads and writes is modelled; unknown keys are kept in
//! `extra` maps so nothing a newer Spin adds is lost on the way through.

use serde::{Deserialize, Serialize};
use serde_json::{Map, Value};

/// The locked app's layer.
pub const LOCKED_APP_MEDIA_TYPE: &str = "application/vnd.fermyon.spin.application.v1+config";
/// A component's Wasm.
pub const WASM_LAYER_MEDIA_TYPE: &str = "application/vnd.wasm.content.layer.v1+wasm";
/// What other tools (wkg) push Wasm as.
pub const PLAIN_WASM_MEDIA_TYPE: &str = "application/wasm";
/// One static file.
pub const DATA_LAYER_MEDIA_TYPE: &str = "application/vnd.wasm.content.layer.v1+data";
/// A gzip-compressed tar of a component's files (Spin, for apps with many files).
pub const ARCHIVE_LAYER_MEDIA_TYPE: &str = "application/vnd.wasm.content.bundle.v1.tar+gzip";
/// The OCI image config Spin writes beside the locked app.
pub const OCI_CONFIG_MEDIA_TYPE: &str = "application/vnd.oci.image.config.v1+json";
/// The image config label that names the locked app's layer.
pub const LOCKED_APP_DIGEST_LABEL: &str = "com.fermyon.spin.lockedAppDigest";
/// Content up to this size is inlined in the locked app instead of being a layer of its own.
pub const INLINE_MAX: usize = 128;

#[derive(Clone, Debug, Default, Serialize, Deserialize)]
pub struct LockedApp {
    /// 0, or 1 when `must_understand` is not empty.
    pub spin_lock_version: u32,
    /// Features a host must support to run the app; Kiln refuses an app naming one it does not know.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub must_understand: Vec<String>,
    /// `name`, `version`, `description`, `authors`, `triggers` (application-level trigger settings),
    /// and Kiln's `tool` tables.
    #[serde(default, skip_serializing_if = "Map::is_empty")]
    pub metadata: Map<String, Value>,
    #[serde(default, skip_serializing_if = "Map::is_empty")]
    pub variables: Map<String, Value>,
    #[serde(default)]
    pub triggers: Vec<LockedTrigger>,
    #[serde(default)]
    pub components: Vec<LockedComponent>,
    #[serde(flatten)]
    pub extra: Map<String, Value>,
}

#[derive(Clone, Debug, Default, Serialize, Deserialize)]
pub struct LockedTrigger {
    pub id: String,
    pub trigger_type: String,
    /// The `[[trigger.<type>]]` table, with `component` naming a component id.
    #[serde(default)]
    pub trigger_config: Value,
}

#[derive(Clone, Debug, Default, Serialize, Deserialize)]
pub struct LockedComponent {
    pub id: String,
    /// `allowed_outbound_hosts`, `key_value_stores`, `databases` (SQLite), `description`, and
    /// Kiln's `tool` table.
    #[serde(default, skip_serializing_if = "Map::is_empty")]
    pub metadata: Map<String, Value>,
    pub source: ContentRef,
    #[serde(default, skip_serializing_if = "Map::is_empty")]
    pub env: Map<String, Value>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub files: Vec<ContentPath>,
    /// Component variables (templates over application variables).
    #[serde(default, skip_serializing_if = "Map::is_empty")]
    pub config: Map<String, Value>,
    #[serde(flatten)]
    pub extra: Map<String, Value>,
}

/// Content by digest, optionally carried inline.
#[derive(Clone, Debug, Default, Serialize, Deserialize, PartialEq, Eq)]
pub struct ContentRef {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub content_type: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub digest: Option<String>,
    /// Base64 (standard alphabet, no padding).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub inline: Option<String>,
    /// A URL (`file://…` before locking); never set in a pushed artifact.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub source: Option<String>,
}

/// One static file: its content and its path below the component's root (no leading `/`).
#[derive(Clone, Debug, Default, Serialize, Deserialize, PartialEq, Eq)]
pub struct ContentPath {
    #[serde(flatten)]
    pub content: ContentRef,
    pub path: String,
}

impl LockedApp {
    /// The app's name, from its metadata.
    pub fn name(&self) -> Option<&str> {
        self.metadata.get("name").and_then(Value::as_str)
    }
}
