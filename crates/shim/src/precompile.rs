//! Components compiled once per image, not at every container start.
//!
//! runwasi hands the image's app layers to [`KilnCompiler`] in the shim process the first time a
//! container of the image starts, keeps what it returns in containerd's content store (labelled
//! with the shim's cache key, garbage-collected with the image), and passes it instead of the
//! original layer at every later start. What Kiln returns is a *bundle*: a tar holding Kiln's
//! compile-cache files (`cache/<sha256>-<engine>.cwasm`, the names `kiln-engine` looks up) and,
//! for a Spin artifact, the locked app it replaces. At start the bundle is unpacked into the
//! container's compile cache, where the engine finds every component already compiled.
//!
//! Only images whose config says `"architecture": "wasm"` get here (runwasi's rule); others compile
//! at every start unless `KILN_CACHE_DIR` is a volume.

use crate::app::{self, AppSource, TAR_LAYER_TYPES};
use anyhow::{Context, Result, bail};
use containerd_shim_wasm::sandbox::context::{Source, WasmLayer};
use containerd_shim_wasm::shim::Compiler;
use kiln_engine::Engine;
use kiln_host::Settings;
use kiln_manifest::{ComponentSource, Manifest};
use std::io::Read;
use std::path::{Component, Path};

/// The first entry of every bundle; a layer without it is not one of ours.
const MARKER: &str = "kiln-precompiled-v1";
const ORIGINAL: &str = "original";

pub struct KilnCompiler;

impl Compiler for KilnCompiler {
    fn cache_key(&self) -> impl std::hash::Hash {
        // Artifacts name the engine they fit; a new shim may still change how apps are compiled.
        (MARKER, env!("CARGO_PKG_VERSION"), std::env::consts::ARCH)
    }

    async fn compile(&self, layers: &[WasmLayer]) -> Result<Vec<Option<Vec<u8>>>> {
        let started = std::time::Instant::now();
        // runwasi logs only the outermost message: put the causes in it.
        let compiled = compile_layers(layers).map_err(|err| anyhow::anyhow!("{err:#}"))?;
        log::info!("kiln: precompiled the app in {:.0} ms", started.elapsed().as_secs_f64() * 1000.0);
        Ok(compiled)
    }
}

/// The bundle replaces one layer (the locked app's, else the first file layer); the rest stay.
fn compile_layers(layers: &[WasmLayer]) -> Result<Vec<Option<Vec<u8>>>> {
    let work = tempfile::tempdir().context("cannot create a directory to precompile in")?;
    let (manifest, carrier, original) = match app::find(work.path(), None, &Source::Oci(layers)) {
        Ok(AppSource::Artifact { layers, locked }) => {
            let manifest = app::materialize(layers, &layers[locked].layer, &work.path().join("artifact"))?;
            (manifest, locked, Some(layers[locked].layer.as_slice()))
        }
        _ => {
            let root = work.path().join("rootfs");
            let mut carrier = None;
            for (index, layer) in layers.iter().enumerate().filter(|(_, layer)| is_file_layer(layer)) {
                unpack_files(&layer.layer, is_gzip(layer), &root)?;
                carrier.get_or_insert(index);
            }
            let carrier = carrier.context("no file layers to precompile")?;
            (app::find_manifest(&root, None)?, carrier, None)
        }
    };
    let cache = work.path().join("cache");
    compile_app(&manifest, &cache)?;
    let mut compiled = vec![None; layers.len()];
    compiled[carrier] = Some(write_bundle(&cache, original)?);
    Ok(compiled)
}

fn is_file_layer(layer: &WasmLayer) -> bool {
    TAR_LAYER_TYPES.contains(&layer.config.media_type().to_string().as_str())
}

fn is_gzip(layer: &WasmLayer) -> bool {
    layer.config.media_type().to_string().ends_with("gzip")
}

/// Compiles every local component of the app into `cache` with the engine settings the container
/// will run it with (the artifact names carry the engine's compatibility hash).
fn compile_app(manifest: &Path, cache: &Path) -> Result<()> {
    let manifest = Manifest::load(manifest)?;
    let mut settings = Settings::new(([0, 0, 0, 0], 80).into());
    settings.cache_dir = Some(cache.to_path_buf());
    let engine = Engine::new(kiln_host::engine_config(&manifest, &settings)?, &[])?;
    for component in manifest.components.values() {
        if let ComponentSource::Local(path) = &component.source {
            engine.load_component(path)?;
        }
    }
    Ok(())
}

/// Writes the regular files and directories of an image layer under `root`. Links, devices and
/// whiteouts are skipped: nothing here may point outside `root`.
fn unpack_files(layer: &[u8], gzip: bool, root: &Path) -> Result<()> {
    let reader: Box<dyn Read> = if gzip { Box::new(flate2::read::GzDecoder::new(layer)) } else { Box::new(layer) };
    std::fs::create_dir_all(root).with_context(|| format!("cannot create `{}`", root.display()))?;
    let mut archive = tar::Archive::new(reader);
    for entry in archive.entries().context("the image layer is not a tar archive")? {
        let mut entry = entry.context("the image layer is not a valid tar archive")?;
        let kind = entry.header().entry_type();
        if !(kind.is_file() || kind.is_dir()) {
            continue;
        }
        let path = entry.path()?.into_owned();
        if path.file_name().is_some_and(|name| name.to_string_lossy().starts_with(".wh.")) {
            continue;
        }
        if !path.components().all(|part| matches!(part, Component::Normal(_) | Component::CurDir | Component::RootDir)) {
            bail!("the image layer has an entry outside its root: `{}`", path.display());
        }
        entry.unpack_in(root).with_context(|| format!("cannot unpack `{}`", path.display()))?;
    }
    Ok(())
}

fn write_bundle(cache: &Path, original: Option<&[u8]>) -> Result<Vec<u8>> {
    let mut bundle = tar::Builder::new(Vec::new());
    append(&mut bundle, MARKER, &[])?;
    if let Some(original) = original {
        append(&mut bundle, ORIGINAL, original)?;
    }
    for artifact in std::fs::read_dir(cache).context("nothing was compiled")? {
        let artifact = artifact?;
        let name = artifact.file_name().to_string_lossy().into_owned();
        // Each artifact with its checksum (kiln-engine compiles again an artifact without one).
        if is_artifact_name(&name) {
            append(&mut bundle, &format!("cache/{name}"), &std::fs::read(artifact.path())?)?;
        }
    }
    bundle.into_inner().context("cannot write the precompiled bundle")
}

fn append(bundle: &mut tar::Builder<Vec<u8>>, path: &str, data: &[u8]) -> Result<()> {
    let mut header = tar::Header::new_gnu();
    header.set_size(data.len() as u64);
    header.set_mode(0o644);
    header.set_cksum();
    bundle.append_data(&mut header, path, data).context("cannot write the precompiled bundle")
}

/// What a bundle held.
pub struct Unpacked {
    pub artifacts: usize,
    /// The layer the bundle replaced, when the app needs it (a Spin artifact's locked app).
    pub original: Option<Vec<u8>>,
}

/// Writes a bundle's artifacts into the compile cache `cache_dir`.
pub fn unpack(bundle: &[u8], cache_dir: &Path) -> Result<Unpacked> {
    std::fs::create_dir_all(cache_dir).with_context(|| format!("cannot create the compile cache `{}`", cache_dir.display()))?;
    let mut archive = tar::Archive::new(bundle);
    let mut entries = archive.entries().context("the precompiled layer is not a bundle")?;
    let first = entries.next().context("the precompiled layer is empty")??;
    if first.path()?.as_os_str() != MARKER {
        bail!("the precompiled layer is not a Kiln bundle (from another shim?)");
    }
    let mut unpacked = Unpacked { artifacts: 0, original: None };
    for entry in entries {
        let mut entry = entry?;
        let path = entry.path()?.into_owned();
        let mut data = Vec::with_capacity(entry.size() as usize);
        entry.read_to_end(&mut data)?;
        if path.as_os_str() == ORIGINAL {
            unpacked.original = Some(data);
        } else if let Some(name) = path.strip_prefix("cache").ok().and_then(|name| name.to_str()).filter(|name| is_artifact_name(name)) {
            std::fs::write(cache_dir.join(name), data).with_context(|| format!("cannot write `{name}` into the compile cache"))?;
            unpacked.artifacts += usize::from(name.ends_with(".cwasm"));
        }
    }
    Ok(unpacked)
}

/// `<hex>-<hex>.cwasm` or its checksum `<hex>-<hex>.cwasm.crc32`, nothing that could name another
/// directory.
fn is_artifact_name(name: &str) -> bool {
    let name = name.strip_suffix(".crc32").unwrap_or(name);
    name.strip_suffix(".cwasm").is_some_and(|stem| !stem.is_empty() && stem.bytes().all(|b| b.is_ascii_hexdigit() || b == b'-'))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_bundle_round_trips_its_artifacts_and_original_only() {
        let cache = tempfile::tempdir().unwrap();
        std::fs::write(cache.path().join("ab12-cd34.cwasm"), b"compiled").unwrap();
        std::fs::write(cache.path().join("ab12-cd34.cwasm.crc32"), b"0badf00d").unwrap();
        std::fs::write(cache.path().join(".tmp-1-2"), b"torn").unwrap();
        let bundle = write_bundle(cache.path(), Some(b"{\"locked\":1}")).unwrap();
        let into = tempfile::tempdir().unwrap();
        let unpacked = unpack(&bundle, into.path()).unwrap();
        assert_eq!(unpacked.artifacts, 1);
        assert_eq!(unpacked.original.as_deref(), Some(&b"{\"locked\":1}"[..]));
        assert_eq!(std::fs::read(into.path().join("ab12-cd34.cwasm")).unwrap(), b"compiled");
        assert_eq!(std::fs::read(into.path().join("ab12-cd34.cwasm.crc32")).unwrap(), b"0badf00d", "with its checksum");
        assert_eq!(std::fs::read_dir(into.path()).unwrap().count(), 2);
    }

    #[test]
    fn foreign_layers_and_names_are_refused() {
        let into = tempfile::tempdir().unwrap();
        let mut other = tar::Builder::new(Vec::new());
        append(&mut other, "wasmtime.cwasm", b"x").unwrap();
        let err = unpack(&other.into_inner().unwrap(), into.path()).err().unwrap();
        assert!(err.to_string().contains("not a Kiln bundle"), "{err}");
        for name in ["../x.cwasm", "a/b.cwasm", ".cwasm", "ab.wasm"] {
            assert!(!is_artifact_name(name), "{name}");
        }
    }

    #[test]
    fn layer_files_unpack_without_links_or_escapes() {
        let mut layer = tar::Builder::new(Vec::new());
        append(&mut layer, "spin.toml", b"manifest").unwrap();
        append(&mut layer, "app/.wh.gone", b"").unwrap();
        let mut link = tar::Header::new_gnu();
        link.set_entry_type(tar::EntryType::Symlink);
        link.set_size(0);
        layer.append_link(&mut link, "evil", "/etc/passwd").unwrap();
        let dir = tempfile::tempdir().unwrap();
        let root = dir.path().join("rootfs");
        unpack_files(&layer.into_inner().unwrap(), false, &root).unwrap();
        assert_eq!(std::fs::read(root.join("spin.toml")).unwrap(), b"manifest");
        assert!(!root.join("evil").exists() && !root.join("app/.wh.gone").exists());
    }

    /// A Spin artifact (as `kiln registry push` makes it): its locked-app layer is replaced by a
    /// bundle holding the locked app and the compiled component, and the app comes back from it.
    #[test]
    fn an_artifact_is_precompiled_into_its_locked_app_layer() {
        let dir = tempfile::tempdir().unwrap();
        let component = wat::parse_str("(component)").unwrap();
        std::fs::write(dir.path().join("app.wasm"), &component).unwrap();
        std::fs::write(
            dir.path().join("spin.toml"),
            "spin_manifest_version = 2\n[application]\nname = \"art\"\n[[trigger.http]]\nroute = \"/...\"\ncomponent = \"app\"\n[component.app]\nsource = \"app.wasm\"\n",
        )
        .unwrap();
        let packed = kiln_oci::pack(&Manifest::load(&dir.path().join("spin.toml")).unwrap()).unwrap();
        let mut layers: Vec<WasmLayer> = packed
            .layers
            .iter()
            .map(|layer| WasmLayer {
                config: serde_json::from_value(serde_json::json!({ "mediaType": layer.media_type, "digest": layer.digest, "size": layer.data.len() })).unwrap(),
                precompiled: false,
                layer: layer.data.clone(),
            })
            .collect();
        let compiled = compile_layers(&layers).unwrap();
        let locked = layers.len() - 1;
        assert!(compiled[..locked].iter().all(Option::is_none));
        let original = std::mem::replace(&mut layers[locked].layer, compiled[locked].clone().unwrap());
        layers[locked].precompiled = true;

        let cache = dir.path().join("cache");
        let unpacked = unpack(&layers[locked].layer, &cache).unwrap();
        assert_eq!(unpacked.artifacts, 1);
        assert_eq!(unpacked.original.as_deref(), Some(original.as_slice()));
        let artifact = std::fs::read_dir(&cache).unwrap().next().unwrap().unwrap().file_name();
        let component_hash = hex::encode(<sha2::Sha256 as sha2::Digest>::digest(&component));
        assert!(artifact.to_string_lossy().starts_with(&component_hash), "{artifact:?}");

        let Ok(AppSource::Artifact { layers, locked }) = app::find(dir.path(), None, &Source::Oci(&layers)) else { panic!("not found as an artifact") };
        assert!(layers[locked].precompiled);
        let manifest = app::materialize(layers, unpacked.original.as_deref().unwrap(), &dir.path().join("run")).unwrap();
        assert_eq!(Manifest::load(&manifest).unwrap().application.name, "art");
    }
}
