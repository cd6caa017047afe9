//! The key-value capability: `fermyon:spin/key-value@2.0.0` (Spin 2+ SDKs),
//! `spin:key-value/key-value@3.0.0` (Spin 4, spin-sdk 7: `async func`s, linked when the engine has
//! component-model concurrency), `wasi:keyvalue/{store,atomics,batch}@0.2.0-draft2` (Spin 3) and
//! `@0.2.0-draft` (wasmCloud, wasmtime), all served by the same stores.
//!
//! - **Grant:** a component may open the labels in its `key_value_stores`; any other label is
//!   `access-denied`.
//! - **Backend:** `[key_value_store.<label>]` in the runtime config: `type = "kiln"` / `"spin"`
//!   (embedded SQLite, `path` optional) or `type = "redis"` (`url`). Without an entry, `default` is
//!   the embedded file `<state dir>/key_value/default.db`; any other label granted but not
//!   configured is `no-such-store` (with a warning at load).
//! - **App:** each store is opened once per app ([`KeyValue::configure_app`]); apps are isolated by
//!   their state directory.
//! - **Instance:** a table of open handles (`store`/`bucket`, `cas`), dropped with the instance.
//! - **Bucket names of wasmCloud components** (`wasi:keyvalue@0.2.0-draft` only): `open("")` opens
//!   the store the component's link selects: `default` unless `wasmcloud:bus/lattice.set-link-name`
//!   chose another label for `wasi:keyvalue` ([`KeyValueInstance::select_link`]). The grant is
//!   checked as for any label: `""` never reaches a store the component is not granted. Any other
//!   name is a label, as before.
//! - **Limits:** keys ≤ [`MAX_KEY_BYTES`], values ≤ [`MAX_VALUE_BYTES`]; beyond, `other("key too
//!   long: … bytes, the limit is 256")`.

mod embedded;
mod host;
mod host_v3;
mod redis_store;
mod store;
#[cfg(test)]
mod tests;

pub use embedded::EmbeddedStore;
pub use redis_store::{CALL_TIMEOUT, RedisRuntime, RedisStore};
pub use store::{Bucket, Cas, Error, KeyPage, MAX_KEY_BYTES, MAX_VALUE_BYTES, Store};

use anyhow::Context as _;
use kiln_app::{AppCapability, AppContext, Capability, ComponentContext};
use kiln_engine::{ComponentCapability, LinkFn};
use kiln_runtime_config::KeyValueStoreConfig;
use std::any::Any;
use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use wasmtime::component::ResourceTable;

/// How many stores (and, separately, compare-and-swap handles) one instance may hold open at once.
pub const MAX_OPEN_HANDLES: usize = 256;

/// The key-value capability (see the crate docs).
pub struct KeyValue;

impl Capability for KeyValue {
    fn name(&self) -> &'static str {
        "key-value"
    }

    fn link(&self) -> LinkFn {
        host::link
    }

    fn configure_app(&self, app: &AppContext<'_>) -> anyhow::Result<Box<dyn AppCapability>> {
        let mut labels: Vec<(&str, &str)> = Vec::new(); // (label, first component granting it)
        for component in app.manifest.components.values() {
            for label in &component.key_value_stores {
                if !labels.iter().any(|(l, _)| l == label) {
                    labels.push((label, &component.id));
                }
            }
        }
        let config_dir = match &app.runtime_config.path {
            Some(file) => file.parent().map(Path::to_path_buf).unwrap_or_default(),
            None => app.manifest.dir.clone(),
        };
        let mut redis_runtime: Option<Arc<RedisRuntime>> = None;
        let faults = kiln_app::BackendFaults::new(app, "key_value");
        let mut stores = HashMap::new();
        for (label, component) in labels {
            let store: Arc<dyn Store> = match app.runtime_config.key_value_stores.get(label) {
                Some(KeyValueStoreConfig::Embedded { path }) => {
                    let path = match path {
                        Some(p) => config_dir.join(p),
                        None => default_path(app.state_dir, label),
                    };
                    Arc::new(EmbeddedStore::open(&path, label)?.with_faults(faults.clone()))
                }
                Some(KeyValueStoreConfig::Redis { url }) => {
                    let runtime = match &redis_runtime {
                        Some(r) => r.clone(),
                        None => redis_runtime.insert(RedisRuntime::new()?).clone(),
                    };
                    Arc::new(
                        RedisStore::new(url, runtime)
                            .with_context(|| format!("key-value store `{label}`"))?
                            .with_faults(faults.clone()),
                    )
                }
                None if label == "default" => Arc::new(
                    EmbeddedStore::open(&default_path(app.state_dir, label), label)?
                        .with_faults(faults.clone()),
                ),
                None => {
                    tracing::warn!(
                        "component `{component}` is granted key-value store `{label}`, but no \
                         backend serves it: opening it will fail with no-such-store. Add \
                         `[key_value_store.{label}]` with `type = \"kiln\"` (embedded) or \
                         `type = \"redis\"` and `url = \"redis://…\"` to a runtime config file \
                         (--runtime-config-file)"
                    );
                    continue;
                }
            };
            tracing::debug!(label, backend = %store.describe(), "key-value store");
            stores.insert(label.to_string(), store);
        }
        Ok(Box::new(KeyValueApp { stores }))
    }
}

/// Where the embedded store of `label` lives when the runtime config does not say.
pub fn default_path(state_dir: &Path, label: &str) -> PathBuf {
    // Labels are kebab- or snake-case words (':' allowed); keep the file name plain anyway.
    let file: String = label
        .chars()
        .map(|c| {
            if c.is_ascii_alphanumeric() || c == '-' || c == '_' {
                c
            } else {
                '_'
            }
        })
        .collect();
    state_dir.join("key_value").join(format!("{file}.db"))
}

/// The key-value stores of one app, by label (only labels some component is granted and a backend
/// serves).
pub struct KeyValueApp {
    stores: HashMap<String, Arc<dyn Store>>,
}

impl KeyValueApp {
    /// An app state from stores opened elsewhere (tests, embedding).
    pub fn new(stores: HashMap<String, Arc<dyn Store>>) -> Self {
        KeyValueApp { stores }
    }

    /// The state for a component granted `granted`.
    pub fn component_state(&self, granted: &[String]) -> Arc<KeyValueComponent> {
        let labels = granted
            .iter()
            .map(|label| (label.clone(), self.stores.get(label).cloned()))
            .collect();
        Arc::new(KeyValueComponent {
            grants: Arc::new(Grants { labels }),
        })
    }
}

impl AppCapability for KeyValueApp {
    fn component(
        &self,
        component: &ComponentContext<'_>,
    ) -> anyhow::Result<Arc<dyn ComponentCapability>> {
        Ok(self.component_state(&component.component.key_value_stores))
    }
}

/// What one component may open: its granted labels, each with its store (`None`: not configured).
struct Grants {
    labels: HashMap<String, Option<Arc<dyn Store>>>,
}

impl Grants {
    fn open(&self, label: &str) -> Result<Bucket, Error> {
        match self.labels.get(label) {
            None => Err(Error::AccessDenied),
            Some(None) => Err(Error::NoSuchStore),
            Some(Some(store)) => Ok(Bucket::new(label, store.clone())),
        }
    }
}

/// One component's key-value state, built at load.
pub struct KeyValueComponent {
    grants: Arc<Grants>,
}

impl KeyValueComponent {
    /// Opens `label` for this component: `access-denied` if not granted, `no-such-store` if granted
    /// but not configured.
    pub fn open(&self, label: &str) -> Result<Bucket, Error> {
        self.grants.open(label)
    }

    /// A fresh instance state (an `Arc` clone and an empty handle table).
    pub fn instance(&self) -> KeyValueInstance {
        KeyValueInstance {
            grants: self.grants.clone(),
            link: None,
            table: ResourceTable::new(),
            open_buckets: 0,
            open_cas: 0,
        }
    }
}

impl ComponentCapability for KeyValueComponent {
    fn instance_state(&self) -> Box<dyn Any + Send> {
        Box::new(self.instance())
    }
}

/// One instance's key-value state: its component's grants and its open handles.
pub struct KeyValueInstance {
    grants: Arc<Grants>,
    /// The label `open("")` opens when a link other than `default` was selected.
    link: Option<Arc<str>>,
    table: ResourceTable,
    open_buckets: usize,
    open_cas: usize,
}

/// The link every component has, whatever it was granted.
pub const DEFAULT_LINK: &str = "default";

impl KeyValueInstance {
    /// Whether `wasmcloud:bus` may select link `name` for `wasi:keyvalue`: `default` always, any
    /// other label only when the component is granted it.
    pub fn has_link(&self, name: &str) -> bool {
        name == DEFAULT_LINK || self.grants.labels.contains_key(name)
    }

    /// Makes `open("")` open the store labelled `name` for the rest of this instance. Not checked
    /// here: an ungranted label is `access-denied` when opened, as any other label is.
    pub fn select_link(&mut self, name: &str) {
        self.link = (name != DEFAULT_LINK).then(|| Arc::from(name));
    }

    /// The label a wasmCloud component means by `identifier`: `""` is its linked store.
    pub(crate) fn linked_label<'a>(&'a self, identifier: &'a str) -> &'a str {
        match identifier {
            "" => self.link.as_deref().unwrap_or(DEFAULT_LINK),
            label => label,
        }
    }
}
