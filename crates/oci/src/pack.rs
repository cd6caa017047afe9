//! From an app on disk to the pieces of an OCI artifact in Spin's layout: one Wasm layer per
//! component source, one data layer per static file (content of at most 128 bytes inlined instead),
//! identical content stored once, and the locked app last.

use crate::locked::*;
use anyhow::{Context, Result, bail};
use base64::Engine as _;
use kiln_manifest::{ComponentSource, Manifest};
use serde_json::{Map, Value};
use sha2::{Digest, Sha256};
use std::path::Path;

/// One blob to push.
#[derive(Clone, Debug)]
pub struct Layer {
    pub media_type: &'static str,
    pub data: Vec<u8>,
    pub digest: String,
}

impl Layer {
    fn new(media_type: &'static str, data: Vec<u8>) -> Layer {
        Layer { digest: sha256_digest(&data), media_type, data }
    }
}

/// An app packed for a registry: its layers (the locked app's last) and the locked app itself.
pub struct Packed {
    pub layers: Vec<Layer>,
    pub locked: LockedApp,
}

pub fn sha256_digest(data: &[u8]) -> String {
    format!("sha256:{}", hex::encode(Sha256::digest(data)))
}

/// Packs the app of `manifest`. Builds nothing: a component whose `.wasm` is missing is an error
/// naming it (and the build command to run).
pub fn pack(manifest: &Manifest) -> Result<Packed> {
    manifest.check_sources().map_err(|err| anyhow::anyhow!("{err}\nhelp: build the app first (`kiln build`); `kiln registry push` builds nothing"))?;
    let text = std::fs::read_to_string(&manifest.path).with_context(|| format!("cannot read `{}`", manifest.path.display()))?;
    let raw: toml::Table = toml::from_str(&text).with_context(|| format!("`{}` is not valid TOML", manifest.path.display()))?;
    let mut layers: Vec<Layer> = Vec::new();
    let mut add_layer = |layer: Layer| {
        if !layers.iter().any(|known| known.digest == layer.digest && known.media_type == layer.media_type) {
            layers.push(layer);
        }
    };
    let raw_components = raw.get("component").and_then(toml::Value::as_table).cloned().unwrap_or_default();
    let staging = tempfile::tempdir().context("cannot create a temporary directory")?;
    let mut components = Vec::new();
    for (id, component) in &manifest.components {
        let ComponentSource::Local(path) = &component.source else {
            bail!("component `{id}`: only local `source` files can be pushed (download it and point `source` at the .wasm)");
        };
        // The locked app's dependencies (Spin's `dependencies` of a locked component) are not written
        // yet: refuse rather than push an app that would not load.
        if let Some(dependency) = component.dependencies.first() {
            bail!("component `{id}`: `kiln registry push` does not carry component dependencies yet (`{}`); run the app with `kiln up` or `kiln deploy` from its directory", dependency.name);
        }
        let wasm = std::fs::read(path).with_context(|| format!("component `{id}`: cannot read `{}`", path.display()))?;
        let wasm = Layer::new(WASM_LAYER_MEDIA_TYPE, wasm);
        let source = ContentRef { content_type: Some(PLAIN_WASM_MEDIA_TYPE.to_string()), digest: Some(wasm.digest.clone()), ..ContentRef::default() };
        add_layer(wasm);
        let mut files = Vec::new();
        for (host_dir, guest_path) in kiln_app::stage_files(manifest, component, staging.path())? {
            for (relative, data) in walk(&host_dir)? {
                let path = join_guest(&guest_path, &relative);
                let digest = sha256_digest(&data);
                let inline = (data.len() <= INLINE_MAX).then(|| base64::engine::general_purpose::STANDARD_NO_PAD.encode(&data));
                if inline.is_none() {
                    add_layer(Layer { media_type: DATA_LAYER_MEDIA_TYPE, digest: digest.clone(), data });
                }
                files.push(ContentPath { content: ContentRef { digest: Some(digest), inline, ..ContentRef::default() }, path });
            }
        }
        let raw_component = raw_components.get(id).and_then(toml::Value::as_table).cloned().unwrap_or_default();
        components.push(LockedComponent {
            id: id.clone(),
            metadata: component_metadata(&raw_component)?,
            source,
            env: component.environment.iter().map(|(k, v)| (k.clone(), Value::String(v.clone()))).collect(),
            files,
            config: component.variables.iter().map(|(k, _)| (k.clone(), raw_variable(&raw_component, k))).collect(),
            extra: Map::new(),
        });
    }
    let locked = LockedApp {
        spin_lock_version: 0,
        must_understand: Vec::new(),
        metadata: app_metadata(&raw)?,
        variables: variables(&raw)?,
        triggers: triggers(manifest, &raw)?,
        components,
        extra: Map::new(),
    };
    let json = serde_json::to_vec(&locked).context("cannot serialise the locked app")?;
    add_layer(Layer::new(LOCKED_APP_MEDIA_TYPE, json));
    Ok(Packed { layers, locked })
}

/// Every file below `dir`, as (path relative to `dir` with `/` separators, content), sorted.
fn walk(dir: &Path) -> Result<Vec<(String, Vec<u8>)>> {
    let mut out = Vec::new();
    let mut pending = vec![dir.to_path_buf()];
    while let Some(current) = pending.pop() {
        for entry in std::fs::read_dir(&current).with_context(|| format!("cannot list `{}`", current.display()))? {
            let entry = entry?;
            let path = entry.path();
            let kind = std::fs::metadata(&path).with_context(|| format!("cannot read `{}`", path.display()))?;
            if kind.is_dir() {
                pending.push(path);
            } else if kind.is_file() {
                let relative = path.strip_prefix(dir).unwrap_or(&path).components().map(|c| c.as_os_str().to_string_lossy().into_owned()).collect::<Vec<_>>().join("/");
                out.push((relative, std::fs::read(&path).with_context(|| format!("cannot read `{}`", path.display()))?));
            }
        }
    }
    out.sort_by(|a, b| a.0.cmp(&b.0));
    Ok(out)
}

/// `/static` + `css/a.css` → `static/css/a.css`: Spin's file paths have no leading `/`.
fn join_guest(guest_dir: &str, relative: &str) -> String {
    let base = guest_dir.trim_matches('/');
    if base.is_empty() { relative.to_string() } else { format!("{base}/{relative}") }
}

fn to_json(value: &toml::Value) -> Result<Value> {
    serde_json::to_value(value).context("cannot convert a manifest value to JSON")
}

/// `name`, `version`, `description`, `authors`, the application-level trigger settings, and any
/// `[application.tool]` tables.
fn app_metadata(raw: &toml::Table) -> Result<Map<String, Value>> {
    let mut metadata = Map::new();
    let Some(application) = raw.get("application").and_then(toml::Value::as_table) else { return Ok(metadata) };
    for key in ["name", "version", "description", "authors"] {
        if let Some(value) = application.get(key) {
            metadata.insert(key.to_string(), to_json(value)?);
        }
    }
    if let Some(triggers) = application.get("trigger") {
        metadata.insert("triggers".to_string(), to_json(triggers)?);
    }
    if let Some(tool) = application.get("tool") {
        metadata.insert("tool".to_string(), to_json(tool)?);
    }
    Ok(metadata)
}

/// A component's grants as Spin names them in the locked app (`databases` for
/// `sqlite_databases`), its description and its `tool` tables.
fn component_metadata(raw: &toml::Table) -> Result<Map<String, Value>> {
    let mut metadata = Map::new();
    for (manifest_key, locked_key) in [
        ("allowed_outbound_hosts", "allowed_outbound_hosts"),
        ("key_value_stores", "key_value_stores"),
        ("sqlite_databases", "databases"),
        ("description", "description"),
        ("tool", "tool"),
    ] {
        if let Some(value) = raw.get(manifest_key) {
            metadata.insert(locked_key.to_string(), to_json(value)?);
        }
    }
    Ok(metadata)
}

fn raw_variable(component: &toml::Table, name: &str) -> Value {
    component
        .get("variables")
        .and_then(|variables| variables.get(name))
        .and_then(toml::Value::as_str)
        .map_or(Value::Null, |template| Value::String(template.to_string()))
}

/// `[variables]`: `{ default?, secret? , description? }`; a required variable has no default.
fn variables(raw: &toml::Table) -> Result<Map<String, Value>> {
    let mut out = Map::new();
    let Some(variables) = raw.get("variables").and_then(toml::Value::as_table) else { return Ok(out) };
    for (name, spec) in variables {
        let mut locked = Map::new();
        if let Some(spec) = spec.as_table() {
            for key in ["default", "secret", "description"] {
                if let Some(value) = spec.get(key) {
                    locked.insert(key.to_string(), to_json(value)?);
                }
            }
        }
        out.insert(name.clone(), Value::Object(locked));
    }
    Ok(out)
}

/// Every `[[trigger.<type>]]` table as written, with `component` naming the component's id (an
/// inline component gets the id the manifest gave it).
fn triggers(manifest: &Manifest, raw: &toml::Table) -> Result<Vec<LockedTrigger>> {
    let bound: [(&str, Vec<&str>); 5] = [
        ("http", manifest.http_triggers.iter().map(|t| t.component.as_str()).collect()),
        ("redis", manifest.redis_triggers.iter().map(|t| t.component.as_str()).collect()),
        ("nats", manifest.nats_triggers.iter().map(|t| t.component.as_str()).collect()),
        ("cron", manifest.cron_triggers.iter().map(|t| t.component.as_str()).collect()),
        ("directory", manifest.directory_triggers.iter().map(|t| t.component.as_str()).collect()),
    ];
    let mut out = Vec::new();
    let raw_triggers = raw.get("trigger").and_then(toml::Value::as_table).cloned().unwrap_or_default();
    for (kind, components) in bound {
        let tables = raw_triggers.get(kind).and_then(toml::Value::as_array).cloned().unwrap_or_default();
        for (index, (table, component)) in tables.iter().zip(components).enumerate() {
            let mut config = to_json(table)?;
            if let Some(object) = config.as_object_mut() {
                object.insert("component".to_string(), Value::String(component.to_string()));
            }
            out.push(LockedTrigger { id: format!("trigger-{kind}-{index}"), trigger_type: kind.to_string(), trigger_config: config });
        }
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn guest_paths_have_no_leading_slash() {
        assert_eq!(join_guest("/", "a/b.txt"), "a/b.txt");
        assert_eq!(join_guest("/static", "css/a.css"), "static/css/a.css");
    }
}
