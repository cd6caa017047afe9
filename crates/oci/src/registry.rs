//! Talking to a registry (through `oci-client`): push a packed app, pull an artifact into the
//! content-addressed cache, every blob's digest checked before it is kept.
//!
//! The cache (`<cache>/registry/`):
//! - `blobs/sha256/<hex>`: layers, written to a temporary file, hashed, and renamed into place only
//!   when the hash matches: a half-downloaded or tampered blob is never kept;
//! - `manifests/<registry>/<repository>/<tag>.json`: the manifest digest a tag last pointed at;
//! - `apps/<manifest hex>/`: the materialized app (`spin.toml`, `wasm/`, `files/`).

use crate::auth::Credentials;
use crate::locked::*;
use crate::materialize::{Blobs, materialize};
use crate::pack::{Packed, sha256_digest};
use anyhow::{Context, Result, bail};
use oci_client::client::{ClientConfig, ClientProtocol, Config, ImageLayer};
use oci_client::manifest::{OciDescriptor, OciImageManifest};
use oci_client::secrets::RegistryAuth;
use oci_client::{Client, Reference};
use sha2::{Digest, Sha256};
use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

/// How to reach registries.
#[derive(Clone, Debug)]
pub struct RegistryOptions {
    /// Plain HTTP instead of TLS (a registry on loopback), as Spin's `--insecure`.
    pub insecure: bool,
    pub credentials: Credentials,
}

/// A pulled app, ready to load.
#[derive(Clone, Debug)]
pub struct PulledApp {
    /// `sha256:…` of the image manifest.
    pub digest: String,
    /// The materialized app's `spin.toml`.
    pub manifest_path: PathBuf,
}

/// Parses `REF` (`host[:port]/repository[:tag][@sha256:…]`), with an error saying what one looks like.
pub fn parse_reference(reference: &str) -> Result<Reference> {
    reference.parse::<Reference>().map_err(|err| {
        anyhow::anyhow!("`{reference}` is not a registry reference ({err}); references look like `ghcr.io/org/app:1.0` or `127.0.0.1:5000/app@sha256:…`")
    })
}

/// reqwest's rustls needs a process-wide crypto provider; installs ring's unless one is set.
pub(crate) fn install_crypto_provider() {
    if rustls::crypto::CryptoProvider::get_default().is_none() {
        let _ = rustls::crypto::ring::default_provider().install_default();
    }
}

fn client(options: &RegistryOptions) -> Client {
    install_crypto_provider();
    let protocol = if options.insecure { ClientProtocol::Http } else { ClientProtocol::Https };
    Client::new(ClientConfig {
        protocol,
        default_token_expiration_secs: 300,
        connect_timeout: Some(std::time::Duration::from_secs(10)),
        read_timeout: Some(std::time::Duration::from_secs(60)),
        ..ClientConfig::default()
    })
}

fn auth_for(reference: &Reference, options: &RegistryOptions) -> Result<RegistryAuth> {
    let registry = reference.resolve_registry();
    // Plain HTTP carries credentials in the clear: only to a registry on this machine.
    if options.insecure && !is_loopback(registry) {
        return Ok(RegistryAuth::Anonymous);
    }
    options.credentials.lookup(registry.trim_end_matches('/'))
}

/// `127.0.0.1:5000`, `localhost`, `[::1]:5000`.
fn is_loopback(registry: &str) -> bool {
    let host = match registry.strip_prefix('[') {
        Some(rest) => rest.split(']').next().unwrap_or_default(),
        None => registry.split(':').next().unwrap_or_default(),
    };
    host == "localhost" || host.parse::<std::net::IpAddr>().is_ok_and(|ip| ip.is_loopback())
}

/// Explains a registry error: the address, and what to do for the usual causes.
fn explain(err: oci_client::errors::OciDistributionError, reference: &Reference, what: &str) -> anyhow::Error {
    use oci_client::errors::OciDistributionError as E;
    let registry = reference.resolve_registry();
    let text = err.to_string();
    let help = match &err {
        E::AuthenticationFailure(_) | E::UnauthorizedError { .. } => format!("the registry refused the credentials: run `kiln registry login {registry}`"),
        E::ImageManifestNotFoundError(_) => format!("`{reference}` does not exist on {registry}"),
        _ if text.contains("401") || text.to_ascii_lowercase().contains("unauthorized") => {
            format!("the registry refused the credentials (401): run `kiln registry login {registry}`")
        }
        _ if text.contains("404") || ["manifest unknown", "name unknown", "manifest_unknown", "name_unknown"].iter().any(|t| text.to_ascii_lowercase().contains(t)) => {
            format!("`{reference}` was not found on {registry}")
        }
        _ if text.contains("error sending request") || text.contains("onnect") => {
            format!("cannot reach the registry at {registry} (is it running? for a plain-HTTP registry on loopback, pass --insecure)")
        }
        _ => String::new(),
    };
    if help.is_empty() { anyhow::anyhow!("{what} `{reference}`: {text}") } else { anyhow::anyhow!("{what} `{reference}`: {help}\n  ({text})") }
}

/// Pushes a packed app to `reference`; returns the manifest's digest.
pub async fn push(packed: &Packed, reference: &str, options: &RegistryOptions) -> Result<String> {
    let reference = parse_reference(reference)?;
    let auth = auth_for(&reference, options)?;
    let layers: Vec<ImageLayer> = packed.layers.iter().map(|layer| ImageLayer::new(layer.data.clone(), layer.media_type.to_string(), None)).collect();
    let locked_digest = packed.layers.iter().find(|l| l.media_type == LOCKED_APP_MEDIA_TYPE).map(|l| l.digest.clone()).context("the packed app has no locked app")?;
    let config = serde_json::json!({
        "architecture": "wasm",
        "os": "wasip1",
        "config": { "Labels": { LOCKED_APP_DIGEST_LABEL: locked_digest } },
        "rootfs": { "type": "layers", "diff_ids": [] },
    });
    let config = Config::new(serde_json::to_vec(&config)?, OCI_CONFIG_MEDIA_TYPE.to_string(), None);
    let manifest = OciImageManifest::build(&layers, &config, Some(annotations(&packed.locked)));
    let response = client(options).push(&reference, &layers, config, &auth, Some(manifest)).await.map_err(|err| explain(err, &reference, "cannot push to"))?;
    let digest = response.manifest_url.rsplit('/').next().unwrap_or_default().to_string();
    if !digest.starts_with("sha256:") {
        bail!("the registry did not say the digest of the pushed manifest ({})", response.manifest_url);
    }
    Ok(digest)
}

/// The manifest annotations Spin writes: title, version, description, authors, created.
fn annotations(locked: &LockedApp) -> BTreeMap<String, String> {
    let mut out = BTreeMap::new();
    let text = |key: &str| locked.metadata.get(key).and_then(|v| v.as_str()).filter(|s| !s.is_empty()).map(str::to_string);
    if let Some(name) = text("name") {
        out.insert("org.opencontainers.image.title".to_string(), name);
    }
    if let Some(version) = text("version") {
        out.insert("org.opencontainers.image.version".to_string(), version);
    }
    if let Some(description) = text("description") {
        out.insert("org.opencontainers.image.description".to_string(), description);
    }
    if let Some(authors) = locked.metadata.get("authors").and_then(|a| a.as_array()).filter(|a| !a.is_empty()) {
        let authors: Vec<&str> = authors.iter().filter_map(|a| a.as_str()).collect();
        out.insert("org.opencontainers.image.authors".to_string(), authors.join(", "));
    }
    out.insert("org.opencontainers.image.created".to_string(), chrono::Utc::now().to_rfc3339());
    out
}

/// The content-addressed cache under `<cache>/registry/`.
#[derive(Clone, Debug)]
pub struct Cache {
    root: PathBuf,
}

impl Cache {
    pub fn new(cache_dir: &Path) -> Cache {
        Cache { root: cache_dir.join("registry") }
    }

    fn blob_path(&self, digest: &str) -> Result<PathBuf> {
        let hex = digest.strip_prefix("sha256:").filter(|hex| hex.len() == 64 && hex.bytes().all(|b| b.is_ascii_hexdigit())).with_context(|| format!("`{digest}` is not a sha256 digest"))?;
        Ok(self.root.join("blobs/sha256").join(hex))
    }

    fn app_dir(&self, manifest_digest: &str) -> Result<PathBuf> {
        let blob = self.blob_path(manifest_digest)?;
        let hex = blob.file_name().context("digest")?.to_owned();
        Ok(self.root.join("apps").join(hex))
    }

    fn tag_path(&self, registry: &str, repository: &str, tag: Option<&str>) -> PathBuf {
        self.root.join("manifests").join(registry.replace(':', "_")).join(repository).join(format!("{}.json", tag.unwrap_or("latest")))
    }

    /// The app already pulled for `reference`, if a digest pins it or its tag was pulled before.
    /// Reads the reference without oci-client's parser (whose pattern takes tens of milliseconds to
    /// build): a start from the cache costs about what a start from a directory does.
    pub fn cached_app(&self, reference: &str) -> Result<Option<PulledApp>> {
        let Some(parts) = ReferenceParts::split(reference) else { return Ok(None) };
        let digest = match parts.digest {
            Some(digest) => digest.to_string(),
            None => match std::fs::read_to_string(self.tag_path(parts.registry, parts.repository, parts.tag)) {
                Ok(digest) => digest.trim().to_string(),
                Err(_) => return Ok(None),
            },
        };
        let manifest_path = self.app_dir(&digest)?.join("spin.toml");
        Ok(manifest_path.is_file().then_some(PulledApp { digest, manifest_path }))
    }

    /// The cached blob `digest`, if it is there.
    pub fn blob_file(&self, digest: &str) -> Result<PathBuf> {
        Blobs::blob(self, digest)
    }

    /// Stores `data` as the blob `digest` if it hashes to it; a mismatch is an error naming `what`.
    pub fn store_verified(&self, digest: &str, data: &[u8], what: &str) -> Result<PathBuf> {
        self.store(digest, data, what)
    }

    /// Stores `data` as the blob `digest` if it hashes to it; a mismatch is an error naming `what`.
    fn store(&self, digest: &str, data: &[u8], what: &str) -> Result<PathBuf> {
        let path = self.blob_path(digest)?;
        let actual = sha256_digest(data);
        if actual != digest {
            bail!("{what} does not match its digest: expected {digest}, got content hashing to {actual}; nothing was kept or run");
        }
        write_atomically(&path, data)?;
        Ok(path)
    }
}

impl Blobs for Cache {
    fn blob(&self, digest: &str) -> Result<PathBuf> {
        let path = self.blob_path(digest)?;
        if !path.is_file() {
            bail!("the blob {digest} is not in the cache");
        }
        Ok(path)
    }
}

fn write_atomically(path: &Path, data: &[u8]) -> Result<()> {
    let dir = path.parent().context("no parent directory")?;
    std::fs::create_dir_all(dir).with_context(|| format!("cannot create `{}`", dir.display()))?;
    let mut temp = tempfile::NamedTempFile::new_in(dir).with_context(|| format!("cannot write in `{}`", dir.display()))?;
    std::io::Write::write_all(&mut temp, data)?;
    // Read-only: apps are hard links to these files, and nothing may change one in place.
    use std::os::unix::fs::PermissionsExt;
    temp.as_file().set_permissions(std::fs::Permissions::from_mode(0o444))?;
    temp.persist(path).with_context(|| format!("cannot write `{}`", path.display()))?;
    Ok(())
}

/// `host[:port]/repository[:tag][@digest]`, split without validating (a name that is not a plain
/// registry reference, e.g. one relying on Docker Hub's defaults, is `None` and goes to the full
/// parser through a pull).
struct ReferenceParts<'a> {
    registry: &'a str,
    repository: &'a str,
    tag: Option<&'a str>,
    digest: Option<&'a str>,
}

impl<'a> ReferenceParts<'a> {
    fn split(reference: &'a str) -> Option<ReferenceParts<'a>> {
        let (name, digest) = match reference.split_once('@') {
            Some((name, digest)) => (name, Some(digest)),
            None => (reference, None),
        };
        let (registry, path) = name.split_once('/')?;
        if !(registry.contains('.') || registry.contains(':') || registry == "localhost") || path.is_empty() {
            return None;
        }
        let (repository, tag) = match path.rsplit_once(':') {
            Some((repository, tag)) if !tag.contains('/') => (repository, Some(tag)),
            _ => (path, None),
        };
        Some(ReferenceParts { registry, repository, tag, digest })
    }
}

/// Pulls `reference` into `cache` (blobs already there are not fetched again) and materializes it.
pub async fn pull(reference: &str, cache: &Cache, options: &RegistryOptions) -> Result<PulledApp> {
    let reference = parse_reference(reference)?;
    let auth = auth_for(&reference, options)?;
    let client = client(options);
    let (manifest, digest) = client.pull_image_manifest(&reference, &auth).await.map_err(|err| explain(err, &reference, "cannot pull"))?;
    if let Some(pinned) = reference.digest()
        && pinned != digest
    {
        bail!("the registry answered `{reference}` with a manifest whose digest is {digest}");
    }
    let locked_layer = manifest.layers.iter().rev().find(|layer| layer.media_type == LOCKED_APP_MEDIA_TYPE);
    let locked_bytes = match locked_layer {
        Some(layer) => fetch(&client, &reference, cache, layer, "the locked app layer").await?,
        // Older Spin artifacts carried the locked app as the config blob.
        None => {
            let config = fetch(&client, &reference, cache, &manifest.config, "the config blob").await?;
            if !serde_json::from_slice::<serde_json::Value>(&config).is_ok_and(|v| v.get("spin_lock_version").is_some()) {
                bail!("`{reference}` is not a Spin or Kiln app: it has no `{LOCKED_APP_MEDIA_TYPE}` layer and its config is not a locked app");
            }
            config
        }
    };
    let locked: LockedApp = serde_json::from_slice(&locked_bytes).with_context(|| format!("`{reference}`: its locked app is not valid"))?;
    let mut own: std::collections::HashSet<String> = manifest.layers.iter().map(|layer| layer.digest.clone()).collect();
    for (index, layer) in manifest.layers.iter().enumerate() {
        match layer.media_type.as_str() {
            LOCKED_APP_MEDIA_TYPE => {}
            WASM_LAYER_MEDIA_TYPE | PLAIN_WASM_MEDIA_TYPE | DATA_LAYER_MEDIA_TYPE => {
                if cache.blob(&layer.digest).is_err() {
                    fetch(&client, &reference, cache, layer, &format!("layer {index} ({}, {})", layer.media_type, layer.digest)).await?;
                }
            }
            ARCHIVE_LAYER_MEDIA_TYPE => {
                let archive = fetch(&client, &reference, cache, layer, &format!("layer {index} ({}, {})", layer.media_type, layer.digest)).await?;
                own.extend(unpack_archive_layer(&archive, cache).with_context(|| format!("layer {index} ({})", layer.digest))?);
            }
            other => bail!("`{reference}`: layer {index} has media type `{other}`, which a Spin or Kiln app does not use"),
        }
    }
    let dir = cache.app_dir(&digest)?;
    let manifest_path = match dir.join("spin.toml") {
        path if path.is_file() => path,
        // Only this artifact's own content: a locked app cannot link in another app's blobs.
        _ => materialize(&locked, &Own { cache, allowed: &own }, &dir).with_context(|| format!("`{reference}`"))?,
    };
    if reference.digest().is_none() {
        let path = cache.tag_path(reference.resolve_registry(), reference.repository(), reference.tag());
        write_atomically(&path, digest.as_bytes())?;
    }
    Ok(PulledApp { digest, manifest_path })
}

/// Pulls the layers of `reference` whose media type is one of `media_types` into the cache; returns
/// their files, in manifest order.
pub(crate) async fn pull_layers(reference: &str, cache: &Cache, options: &RegistryOptions, media_types: &[&str]) -> Result<Vec<PathBuf>> {
    let reference = parse_reference(reference)?;
    let auth = auth_for(&reference, options)?;
    let client = client(options);
    let (manifest, _) = client.pull_image_manifest(&reference, &auth).await.map_err(|err| explain(err, &reference, "cannot pull"))?;
    let mut files = Vec::new();
    for (index, layer) in manifest.layers.iter().enumerate().filter(|(_, layer)| media_types.contains(&layer.media_type.as_str())) {
        if cache.blob(&layer.digest).is_err() {
            fetch(&client, &reference, cache, layer, &format!("layer {index} ({}, {})", layer.media_type, layer.digest)).await?;
        }
        files.push(cache.blob(&layer.digest)?);
    }
    Ok(files)
}

/// The largest blob Kiln pulls: far above any component or static file, far below what would exhaust
/// the host's memory (blobs are held in memory while they are hashed).
pub const MAX_BLOB: i64 = 1 << 30;

async fn fetch(client: &Client, reference: &Reference, cache: &Cache, layer: &OciDescriptor, what: &str) -> Result<Vec<u8>> {
    if layer.size > MAX_BLOB || layer.size < 0 {
        bail!("{what} is {} bytes; Kiln pulls blobs of at most {MAX_BLOB} bytes", layer.size);
    }
    // The size is the registry's word: preallocate a bounded amount only.
    let mut data = Vec::with_capacity(usize::try_from(layer.size).unwrap_or(0).min(16 << 20));
    client.pull_blob(reference, layer, &mut data).await.map_err(|err| {
        let text = err.to_string();
        if text.to_ascii_lowercase().contains("digest") {
            anyhow::anyhow!("{what} does not match its digest {}: the registry sent something else; nothing was kept or run ({text})", layer.digest)
        } else {
            explain(err, reference, &format!("cannot fetch {what} of"))
        }
    })?;
    if data.len() as i64 > MAX_BLOB {
        bail!("{what} is larger than {MAX_BLOB} bytes");
    }
    cache.store(&layer.digest, &data, what)?;
    Ok(data)
}

/// The blobs of one artifact, out of the shared cache.
struct Own<'a> {
    cache: &'a Cache,
    allowed: &'a std::collections::HashSet<String>,
}

impl Blobs for Own<'_> {
    fn blob(&self, digest: &str) -> Result<PathBuf> {
        if !self.allowed.contains(digest) {
            bail!("the locked app names {digest}, which is not part of the artifact");
        }
        self.cache.blob(digest)
    }
}

/// A Spin archive layer: every file in it becomes a blob of its own, by its content's digest.
/// Returns their digests.
fn unpack_archive_layer(archive: &[u8], cache: &Cache) -> Result<Vec<String>> {
    let mut digests = Vec::new();
    let mut tar = tar::Archive::new(flate2::read::GzDecoder::new(archive));
    for entry in tar.entries().context("not a gzip-compressed tar")? {
        let mut entry = entry?;
        if !entry.header().entry_type().is_file() {
            continue;
        }
        let mut data = Vec::new();
        std::io::Read::read_to_end(&mut std::io::Read::take(&mut entry, MAX_BLOB as u64 + 1), &mut data)?;
        if data.len() as i64 > MAX_BLOB {
            bail!("a file of the archive layer is larger than {MAX_BLOB} bytes");
        }
        let digest = format!("sha256:{}", hex::encode(Sha256::digest(&data)));
        if cache.blob(&digest).is_err() {
            cache.store(&digest, &data, "a file of the archive layer")?;
        }
        digests.push(digest);
    }
    Ok(digests)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn references_split_into_their_parts() {
        let parts = ReferenceParts::split("127.0.0.1:5000/apps/demo:v1").unwrap();
        assert_eq!((parts.registry, parts.repository, parts.tag, parts.digest), ("127.0.0.1:5000", "apps/demo", Some("v1"), None));
        let parts = ReferenceParts::split("ghcr.io/org/app@sha256:abc").unwrap();
        assert_eq!((parts.registry, parts.repository, parts.tag, parts.digest), ("ghcr.io", "org/app", None, Some("sha256:abc")));
        let parts = ReferenceParts::split("localhost/app").unwrap();
        assert_eq!((parts.repository, parts.tag), ("app", None));
        assert!(ReferenceParts::split("library/ubuntu").is_none(), "Docker Hub shorthand goes to the full parser");
    }

    #[test]
    fn credentials_go_over_plain_http_to_loopback_only() {
        assert!(is_loopback("127.0.0.1:5000") && is_loopback("localhost:5000") && is_loopback("[::1]:5000"));
        assert!(!is_loopback("ghcr.io") && !is_loopback("10.0.0.1:5000"));
    }

    #[test]
    fn a_blob_is_kept_only_if_it_matches_its_digest() {
        let dir = tempfile::tempdir().unwrap();
        let cache = Cache::new(dir.path());
        let digest = sha256_digest(b"content");
        let err = cache.store(&digest, b"tampered", "layer 1").unwrap_err();
        assert!(err.to_string().contains("layer 1 does not match its digest"), "{err}");
        assert!(cache.blob_file(&digest).is_err(), "nothing was kept");
        cache.store(&digest, b"content", "layer 1").unwrap();
        assert_eq!(std::fs::read(cache.blob_file(&digest).unwrap()).unwrap(), b"content");
        assert!(cache.blob_file("sha256:../../etc/passwd").is_err());
    }
}
