//! Where the app is in a container image.
//!
//! As SpinKube's shim has it: the manifest (`spin.toml` or `kiln.toml`) at the image root beside its
//! components, or at the path the image's entrypoint names; or, where containerd can import them
//! (1.6.25+, 1.7.7+), the layers of a Spin OCI artifact (`spin registry push`, `kiln registry
//! push`), which are written out as an app directory first.

use anyhow::{Context, Result, bail};
use containerd_shim_wasm::sandbox::context::{Source, WasmLayer};
use kiln_oci::locked::{DATA_LAYER_MEDIA_TYPE, LOCKED_APP_MEDIA_TYPE, LockedApp, PLAIN_WASM_MEDIA_TYPE, WASM_LAYER_MEDIA_TYPE};
use std::path::{Path, PathBuf};

/// The image layers the shim asks containerd for: the ones it can precompile or run from.
pub const LAYER_TYPES: &[&str] = &[
    // Ordinary image layers holding the app's files (the only kind containerd 1.6 imports).
    TAR_LAYER_TYPES[0],
    TAR_LAYER_TYPES[1],
    TAR_LAYER_TYPES[2],
    TAR_LAYER_TYPES[3],
    // Spin's artifact layout.
    LOCKED_APP_MEDIA_TYPE,
    WASM_LAYER_MEDIA_TYPE,
    PLAIN_WASM_MEDIA_TYPE,
    DATA_LAYER_MEDIA_TYPE,
];

pub const TAR_LAYER_TYPES: [&str; 4] = [
    "application/vnd.oci.image.layer.v1.tar",
    "application/vnd.oci.image.layer.v1.tar+gzip",
    "application/vnd.docker.image.rootfs.diff.tar",
    "application/vnd.docker.image.rootfs.diff.tar.gzip",
];

const MANIFEST_NAMES: [&str; 2] = ["spin.toml", "kiln.toml"];

const NOT_FOUND: &str = "no Kiln or Spin app in this image: put its spin.toml (or kiln.toml) at the image root beside \
    its components, name the manifest as the image's entrypoint (e.g. `ENTRYPOINT [\"/app/spin.toml\"]`), or push \
    the app with `kiln registry push` / `spin registry push`";

/// Where the app comes from.
pub enum AppSource<'a> {
    /// The manifest in the container's file system.
    Files(PathBuf),
    /// The layers of a Spin artifact; the one at `locked` holds the locked app.
    Artifact { layers: &'a [WasmLayer], locked: usize },
}

/// Finds the app: artifact layers first, else the manifest `arg0` names, else one at `root`.
pub fn find<'a>(root: &Path, arg0: Option<&Path>, source: &Source<'a>) -> Result<AppSource<'a>> {
    if let Source::Oci(layers) = source
        && let Some(locked) = locked_app_layer(layers)
    {
        return Ok(AppSource::Artifact { layers, locked });
    }
    find_manifest(root, arg0).map(AppSource::Files)
}

fn locked_app_layer(layers: &[WasmLayer]) -> Option<usize> {
    layers.iter().position(|layer| layer.config.media_type().to_string() == LOCKED_APP_MEDIA_TYPE)
}

/// The manifest `arg0` names (relative to `root`), else `spin.toml` or `kiln.toml` at `root`.
pub fn find_manifest(root: &Path, arg0: Option<&Path>) -> Result<PathBuf> {
    if let Some(arg0) = arg0.filter(|arg0| arg0.extension().is_some_and(|ext| ext == "toml")) {
        let path = root.join(arg0.strip_prefix("/").unwrap_or(arg0));
        if !path.is_file() {
            bail!("the image's entrypoint names `{}`, which is not a file in the image", arg0.display());
        }
        return Ok(path);
    }
    MANIFEST_NAMES.iter().map(|name| root.join(name)).find(|path| path.is_file()).context(NOT_FOUND)
}

/// Writes the artifact's app into `dir` (Spin's locked app and its blobs, each checked against
/// its digest) and returns the manifest's path.
pub fn materialize(layers: &[WasmLayer], locked: &[u8], dir: &Path) -> Result<PathBuf> {
    let locked: LockedApp = serde_json::from_slice(locked).context("the image's locked app (Spin's application config layer) is not valid")?;
    let blobs = kiln_oci::Cache::new(&dir.join("blobs"));
    // A precompiled layer (the locked app's, see `precompile`) no longer hashes to its digest; the
    // locked app comes in `locked` instead.
    for layer in layers.iter().filter(|layer| !layer.precompiled) {
        let digest = layer.config.digest().to_string();
        blobs.store_verified(&digest, &layer.layer, "an image layer")?;
    }
    kiln_oci::materialize::materialize(&locked, &blobs, &dir.join("app"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_entrypoint_names_the_manifest_else_it_is_at_the_root() {
        let root = tempfile::tempdir().unwrap();
        std::fs::create_dir(root.path().join("app")).unwrap();
        std::fs::write(root.path().join("app/spin.toml"), "").unwrap();
        let named = find_manifest(root.path(), Some(Path::new("/app/spin.toml"))).unwrap();
        assert_eq!(named, root.path().join("app/spin.toml"));
        let err = find_manifest(root.path(), None).unwrap_err().to_string();
        assert!(err.contains("put its spin.toml"), "{err}");
        std::fs::write(root.path().join("kiln.toml"), "").unwrap();
        assert_eq!(find_manifest(root.path(), None).unwrap(), root.path().join("kiln.toml"));
        // An entrypoint that is not a manifest (say, a leftover `/app.wasm`) does not hide the root one.
        assert_eq!(find_manifest(root.path(), Some(Path::new("/app.wasm"))).unwrap(), root.path().join("kiln.toml"));
        let err = find_manifest(root.path(), Some(Path::new("/missing.toml"))).unwrap_err().to_string();
        assert!(err.contains("`/missing.toml`, which is not a file"), "{err}");
    }
}
