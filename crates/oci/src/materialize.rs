//! From a locked app and its verified blobs to an app directory Kiln runs like any other: a
//! `spin.toml` written from the locked app, each component's Wasm under `wasm/`, each component's
//! files under `files/<component>/`. Spin-pushed and Kiln-pushed artifacts go through the same path.

use crate::locked::*;
use anyhow::{Context, Result, bail};
use base64::Engine as _;
use serde_json::Value;
use std::path::{Component as PathPart, Path, PathBuf};

/// Where the blobs of an artifact are: digest → file.
pub trait Blobs {
    fn blob(&self, digest: &str) -> Result<PathBuf>;
}

/// Writes the app into `dir` (which must not exist yet; it is built beside and renamed into place,
/// so a half-written app is never seen). Returns the manifest's path.
pub fn materialize(locked: &LockedApp, blobs: &dyn Blobs, dir: &Path) -> Result<PathBuf> {
    if let Some(feature) = locked.must_understand.iter().find(|f| !KNOWN_FEATURES.contains(&f.as_str())) {
        bail!("the app needs a host that understands `{feature}`, which Kiln does not");
    }
    let parent = dir.parent().context("the app directory has no parent")?;
    std::fs::create_dir_all(parent).with_context(|| format!("cannot create `{}`", parent.display()))?;
    let staging = tempfile::Builder::new().prefix(".materializing-").tempdir_in(parent).context("cannot create a staging directory")?;
    let mut manifest = toml::Table::new();
    manifest.insert("spin_manifest_version".into(), 2.into());
    manifest.insert("application".into(), application(locked)?.into());
    if !locked.variables.is_empty() {
        manifest.insert("variables".into(), variables(locked)?.into());
    }
    let mut triggers = toml::Table::new();
    for trigger in &locked.triggers {
        let config = to_toml(&trigger.trigger_config).with_context(|| format!("trigger `{}`", trigger.id))?;
        let list = triggers.entry(trigger.trigger_type.clone()).or_insert_with(|| toml::Value::Array(Vec::new()));
        if let toml::Value::Array(list) = list {
            list.push(config);
        }
    }
    manifest.insert("trigger".into(), triggers.into());
    let mut components = toml::Table::new();
    let mut ids = std::collections::HashSet::new();
    for component in &locked.components {
        if !ids.insert(component.id.as_str()) {
            bail!("the component id `{}` appears twice", component.id);
        }
        let table = write_component(component, blobs, staging.path()).with_context(|| format!("component `{}`", component.id))?;
        components.insert(component.id.clone(), table.into());
    }
    manifest.insert("component".into(), components.into());
    let text = toml::to_string(&manifest).context("cannot write the manifest")?;
    std::fs::write(staging.path().join("spin.toml"), text).context("cannot write spin.toml")?;
    let staged = staging.keep();
    if let Err(err) = std::fs::rename(&staged, dir) {
        let _ = std::fs::remove_dir_all(&staged);
        // Another process materialized the same app meanwhile: theirs is as good as ours.
        if !dir.join("spin.toml").is_file() {
            return Err(err).with_context(|| format!("cannot move the app into `{}`", dir.display()));
        }
    }
    Ok(dir.join("spin.toml"))
}

/// `must_understand` features Kiln supports.
const KNOWN_FEATURES: &[&str] = &[];

fn application(locked: &LockedApp) -> Result<toml::Table> {
    let mut application = toml::Table::new();
    let name = locked.name().unwrap_or("app");
    application.insert("name".into(), name.into());
    for key in ["version", "description", "authors"] {
        if let Some(value) = locked.metadata.get(key).filter(|v| !v.is_null()) {
            application.insert(key.into(), to_toml(value)?);
        }
    }
    if let Some(triggers) = locked.metadata.get("triggers").filter(|v| v.is_object()) {
        application.insert("trigger".into(), to_toml(triggers)?);
    }
    if let Some(tool) = locked.metadata.get("tool").filter(|v| v.is_object()) {
        application.insert("tool".into(), to_toml(tool)?);
    }
    Ok(application)
}

/// A variable with a default has it; one without is required.
fn variables(locked: &LockedApp) -> Result<toml::Table> {
    let mut out = toml::Table::new();
    for (name, spec) in &locked.variables {
        let mut table = toml::Table::new();
        match spec.get("default").filter(|v| !v.is_null()) {
            Some(default) => table.insert("default".into(), to_toml(default)?),
            None => table.insert("required".into(), true.into()),
        };
        if spec.get("secret").and_then(Value::as_bool) == Some(true) {
            table.insert("secret".into(), true.into());
        }
        if let Some(description) = spec.get("description").and_then(Value::as_str) {
            table.insert("description".into(), description.into());
        }
        out.insert(name.clone(), table.into());
    }
    Ok(out)
}

fn write_component(component: &LockedComponent, blobs: &dyn Blobs, app_dir: &Path) -> Result<toml::Table> {
    check_id(&component.id)?;
    let mut table = toml::Table::new();
    let wasm = format!("wasm/{}.wasm", component.id);
    place(&component.source, blobs, &app_dir.join(&wasm)).context("its Wasm")?;
    table.insert("source".into(), wasm.into());
    if !component.files.is_empty() {
        let root = format!("files/{}", component.id);
        std::fs::create_dir_all(app_dir.join(&root))?;
        for file in &component.files {
            let relative = safe_relative(&file.path)?;
            place(&file.content, blobs, &app_dir.join(&root).join(relative)).with_context(|| format!("file `{}`", file.path))?;
        }
        let mut mount = toml::Table::new();
        mount.insert("source".into(), root.into());
        mount.insert("destination".into(), "/".into());
        table.insert("files".into(), toml::Value::Array(vec![mount.into()]));
    }
    if !component.env.is_empty() {
        table.insert("environment".into(), to_toml(&Value::Object(component.env.clone()))?);
    }
    for (locked_key, manifest_key) in [
        ("allowed_outbound_hosts", "allowed_outbound_hosts"),
        ("key_value_stores", "key_value_stores"),
        ("databases", "sqlite_databases"),
        ("description", "description"),
        ("tool", "tool"),
    ] {
        if let Some(value) = component.metadata.get(locked_key).filter(|v| !v.is_null()) {
            table.insert(manifest_key.into(), to_toml(value)?);
        }
    }
    if !component.config.is_empty() {
        table.insert("variables".into(), to_toml(&Value::Object(component.config.clone()))?);
    }
    Ok(table)
}

/// Writes `content` (inline, or the blob its digest names) at `to`: a hard link to the cached blob
/// where the filesystem allows, a copy otherwise.
fn place(content: &ContentRef, blobs: &dyn Blobs, to: &Path) -> Result<()> {
    if let Some(parent) = to.parent() {
        std::fs::create_dir_all(parent)?;
    }
    // The app directory is new: a file already there is a second entry for the same path, and
    // writing through it could change a cached blob it is a hard link to.
    if to.symlink_metadata().is_ok() {
        bail!("`{}` is listed twice", to.display());
    }
    if let Some(inline) = &content.inline {
        let data = base64::engine::general_purpose::STANDARD_NO_PAD
            .decode(inline.trim_end_matches('='))
            .context("inline content is not base64")?;
        if let Some(digest) = &content.digest
            && crate::pack::sha256_digest(&data) != *digest
        {
            bail!("inline content does not match its digest {digest}");
        }
        return std::fs::write(to, data).with_context(|| format!("cannot write `{}`", to.display()));
    }
    let digest = content.digest.as_deref().context("neither a digest nor inline content")?;
    let blob = blobs.blob(digest)?;
    if std::fs::hard_link(&blob, to).is_err() {
        std::fs::copy(&blob, to).with_context(|| format!("cannot copy {digest} to `{}`", to.display()))?;
    }
    Ok(())
}

/// A file path from the artifact: relative, no `..`, nothing that leaves the component's root.
fn safe_relative(path: &str) -> Result<PathBuf> {
    let path = Path::new(path.trim_start_matches('/'));
    if path.as_os_str().is_empty() || !path.components().all(|part| matches!(part, PathPart::Normal(_))) {
        bail!("the file path `{}` is not a plain relative path", path.display());
    }
    Ok(path.to_path_buf())
}

/// Component ids become directory names: only Spin's id characters.
fn check_id(id: &str) -> Result<()> {
    if id.is_empty() || !id.chars().all(|c| c.is_ascii_alphanumeric() || c == '-' || c == '_') {
        bail!("`{id}` is not a valid component id");
    }
    Ok(())
}

/// JSON → TOML (nulls dropped: TOML has none).
fn to_toml(value: &Value) -> Result<toml::Value> {
    Ok(match value {
        Value::Null => bail!("a null value has no TOML form"),
        Value::Bool(b) => toml::Value::Boolean(*b),
        Value::Number(n) => match n.as_i64() {
            Some(i) => toml::Value::Integer(i),
            None => toml::Value::Float(n.as_f64().unwrap_or_default()),
        },
        Value::String(s) => toml::Value::String(s.clone()),
        Value::Array(items) => toml::Value::Array(items.iter().filter(|v| !v.is_null()).map(to_toml).collect::<Result<_>>()?),
        Value::Object(map) => {
            let mut table = toml::Table::new();
            for (key, value) in map.iter().filter(|(_, v)| !v.is_null()) {
                table.insert(key.clone(), to_toml(value)?);
            }
            toml::Value::Table(table)
        }
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    struct NoBlobs;
    impl Blobs for NoBlobs {
        fn blob(&self, digest: &str) -> Result<PathBuf> {
            bail!("no blob {digest}")
        }
    }

    fn inline(text: &str) -> ContentRef {
        ContentRef { inline: Some(base64::engine::general_purpose::STANDARD_NO_PAD.encode(text)), ..ContentRef::default() }
    }

    #[test]
    fn duplicate_components_and_paths_are_refused_not_overwritten() {
        let component = |id: &str, files: Vec<ContentPath>| LockedComponent { id: id.into(), source: inline("\0asm"), files, ..LockedComponent::default() };
        let dir = tempfile::tempdir().unwrap();
        let twice = LockedApp { components: vec![component("a", vec![]), component("a", vec![])], ..LockedApp::default() };
        let err = materialize(&twice, &NoBlobs, &dir.path().join("one")).unwrap_err();
        assert!(err.to_string().contains("appears twice"), "{err:#}");
        let files = vec![ContentPath { content: inline("x"), path: "a.txt".into() }, ContentPath { content: inline("y"), path: "/a.txt".into() }];
        let same_path = LockedApp { components: vec![component("b", files)], ..LockedApp::default() };
        let err = materialize(&same_path, &NoBlobs, &dir.path().join("two")).unwrap_err();
        assert!(format!("{err:#}").contains("listed twice"), "{err:#}");
        assert!(!dir.path().join("two").exists(), "a refused app leaves nothing");
    }

    #[test]
    fn file_paths_stay_inside_the_component() {
        assert!(safe_relative("a/b.txt").is_ok());
        assert!(safe_relative("/a/b.txt").is_ok());
        for bad in ["../x", "a/../../x", "", "a/./b/.."] {
            assert!(safe_relative(bad).is_err(), "{bad}");
        }
        assert!(check_id("../evil").is_err());
    }
}
