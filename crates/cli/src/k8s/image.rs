//! `kiln k8s image`: the app as an OCI image archive for the Kiln containerd shim — the same files
//! `kiln deploy` uploads (manifest at the root, components, `files`, `runtime-config.toml`) in one
//! ordinary gzip tar layer, which every containerd imports (1.6 refuses Wasm-typed layers). The
//! config says `"architecture": "wasm"`, so the shim precompiles the app once per image.
//!
//! Load it with `ctr images import app.tar`, or copy it to a registry with
//! `skopeo copy oci-archive:app.tar docker://REGISTRY/APP:TAG`.

use anyhow::{Context, Result};
use kiln_manifest::Manifest;
use serde_json::json;
use sha2::{Digest, Sha256};
use std::io::Read;
use std::path::{Path, PathBuf};

#[derive(clap::Args)]
pub(crate) struct ImageArgs {
    /// The manifest, or a directory containing kiln.toml or spin.toml [default: the current directory].
    #[arg(short = 'f', long = "from", value_name = "PATH")]
    file: Option<PathBuf>,
    /// The image's name, e.g. registry.example.com/team/app:1.0.
    #[arg(long, value_name = "REF")]
    name: String,
    /// Runtime config to ship beside the manifest (key-value, SQLite, variables, messaging).
    #[arg(long, value_name = "FILE")]
    runtime_config_file: Option<PathBuf>,
    /// Where to write the archive.
    #[arg(short, long, value_name = "FILE")]
    output: PathBuf,
}

pub(crate) fn run(args: ImageArgs) -> Result<()> {
    let path = kiln_manifest::find_manifest(args.file.as_deref())?;
    let manifest = Manifest::load(&path)?;
    let archive = crate::deploy::archive::pack(&manifest, args.runtime_config_file.as_deref())?;
    for warning in &archive.warnings {
        tracing::warn!("{warning}");
    }
    let manifest_name = path.file_name().and_then(|name| name.to_str()).context("the manifest has no file name")?;
    let image = image_archive(&archive.bytes, &args.name, manifest_name)?;
    write_atomically(&args.output, &image)?;
    eprintln!("Wrote {} ({} files) as {}", args.output.display(), archive.files, args.name);
    Ok(())
}

fn digest(bytes: &[u8]) -> String {
    format!("sha256:{}", hex::encode(Sha256::digest(bytes)))
}

/// An OCI image layout (`oci-layout`, `index.json`, `blobs/sha256/…`) as a tar, holding one image
/// (its index entry has no `platform`: `ctr images import` would filter a `wasm` one out unless
/// given `--all-platforms`)
/// whose only layer is `layer` (a gzip tar) and whose entrypoint names the manifest, the way the
/// shim finds it.
fn image_archive(layer: &[u8], name: &str, manifest_name: &str) -> Result<Vec<u8>> {
    let mut uncompressed = Vec::new();
    flate2::read::GzDecoder::new(layer).read_to_end(&mut uncompressed).context("the app archive is not gzip")?;
    let config = serde_json::to_vec(&json!({
        "architecture": "wasm",
        "os": "wasip1",
        "config": { "Entrypoint": [format!("/{manifest_name}")] },
        "rootfs": { "type": "layers", "diff_ids": [digest(&uncompressed)] },
    }))?;
    let manifest = serde_json::to_vec(&json!({
        "schemaVersion": 2,
        "mediaType": "application/vnd.oci.image.manifest.v1+json",
        "config": { "mediaType": "application/vnd.oci.image.config.v1+json", "digest": digest(&config), "size": config.len() },
        "layers": [{ "mediaType": "application/vnd.oci.image.layer.v1.tar+gzip", "digest": digest(layer), "size": layer.len() }],
    }))?;
    let tag = name.rsplit_once(':').filter(|(_, tag)| !tag.contains('/')).map_or("latest", |(_, tag)| tag);
    let index = serde_json::to_vec(&json!({
        "schemaVersion": 2,
        "manifests": [{
            "mediaType": "application/vnd.oci.image.manifest.v1+json",
            "digest": digest(&manifest),
            "size": manifest.len(),
            "annotations": { "io.containerd.image.name": name, "org.opencontainers.image.ref.name": tag },
        }],
    }))?;
    let mut out = tar::Builder::new(Vec::new());
    append(&mut out, "oci-layout", br#"{"imageLayoutVersion":"1.0.0"}"#)?;
    append(&mut out, "index.json", &index)?;
    for blob in [layer, &config, &manifest] {
        append(&mut out, &format!("blobs/sha256/{}", &digest(blob)["sha256:".len()..]), blob)?;
    }
    out.into_inner().context("cannot write the image archive")
}

fn append(out: &mut tar::Builder<Vec<u8>>, path: &str, data: &[u8]) -> Result<()> {
    let mut header = tar::Header::new_ustar();
    header.set_size(data.len() as u64);
    header.set_mode(0o644);
    header.set_cksum();
    out.append_data(&mut header, path, data).context("cannot write the image archive")
}

fn write_atomically(path: &Path, bytes: &[u8]) -> Result<()> {
    let partial = path.with_extension("partial");
    std::fs::write(&partial, bytes).with_context(|| format!("cannot write `{}`", partial.display()))?;
    std::fs::rename(&partial, path).with_context(|| format!("cannot write `{}`", path.display()))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_image_names_its_layer_by_digest_and_its_uncompressed_tar_by_diff_id() {
        let mut gz = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::fast());
        std::io::Write::write_all(&mut gz, b"tar bytes").unwrap();
        let layer = gz.finish().unwrap();
        let image = image_archive(&layer, "registry.local:5000/team/app:1.2", "spin.toml").unwrap();
        let mut files = std::collections::BTreeMap::new();
        for entry in tar::Archive::new(image.as_slice()).entries().unwrap() {
            let mut entry = entry.unwrap();
            let mut data = Vec::new();
            entry.read_to_end(&mut data).unwrap();
            files.insert(entry.path().unwrap().to_string_lossy().into_owned(), data);
        }
        let index: serde_json::Value = serde_json::from_slice(&files["index.json"]).unwrap();
        let entry = &index["manifests"][0];
        assert_eq!(entry["annotations"]["io.containerd.image.name"], "registry.local:5000/team/app:1.2");
        assert_eq!(entry["annotations"]["org.opencontainers.image.ref.name"], "1.2");
        let manifest_digest = entry["digest"].as_str().unwrap();
        let manifest: serde_json::Value = serde_json::from_slice(&files[&format!("blobs/sha256/{}", &manifest_digest[7..])]).unwrap();
        assert_eq!(manifest["layers"][0]["digest"], digest(&layer));
        let config_digest = manifest["config"]["digest"].as_str().unwrap();
        let config: serde_json::Value = serde_json::from_slice(&files[&format!("blobs/sha256/{}", &config_digest[7..])]).unwrap();
        assert_eq!(config["architecture"], "wasm");
        assert_eq!(config["config"]["Entrypoint"][0], "/spin.toml");
        assert_eq!(config["rootfs"]["diff_ids"][0], digest(b"tar bytes"));
        assert_eq!(files.len(), 5);
    }
}
