//! Component sources that are not local files, as Spin has them: `{ url, digest }` (downloaded once
//! into the cache, the digest checked) and `{ registry, package, version }` (a Wasm package in an OCI
//! registry: `registry/namespace/name:version` for package `namespace:name`). Each is resolved to a
//! file in the cache and the manifest's component made to point at it, before the app is loaded.

use crate::locked::{PLAIN_WASM_MEDIA_TYPE, WASM_LAYER_MEDIA_TYPE};
use crate::registry::{Cache, RegistryOptions};
use anyhow::{Context, Result, bail};
use kiln_manifest::{ComponentSource, DependencySource, Manifest};

/// Makes every remote `source` of `manifest` a local file in `cache`, fetching what is not there.
/// Errors name the component and its place in the manifest.
pub async fn resolve_sources(manifest: &mut Manifest, cache: &Cache, options: &RegistryOptions) -> Result<()> {
    let ids: Vec<String> = manifest.components.keys().cloned().collect();
    for id in ids {
        let component = &manifest.components[&id];
        let resolved = match &component.source {
            ComponentSource::Local(_) => continue,
            ComponentSource::Remote { url, digest } => download(url, digest, cache).await,
            ComponentSource::Registry { registry, package, version } => from_registry(registry.as_deref(), package, version, cache, options).await,
        };
        let path = resolved.map_err(|err| {
            let span = manifest.components[&id].source_span;
            anyhow::Error::from(manifest.error_at(&span, format!("component `{id}`: {err:#}"), "check the source's URL, digest, registry and version"))
        })?;
        if let Some(component) = manifest.components.get_mut(&id) {
            component.source = ComponentSource::Local(path);
        }
    }
    resolve_dependencies(manifest, cache, options).await
}

/// The same for `[component.<id>.dependencies]`: a `{ url, digest }` or `{ registry, package,
/// version }` dependency is fetched exactly as a component source is, and pointed at the file.
async fn resolve_dependencies(manifest: &mut Manifest, cache: &Cache, options: &RegistryOptions) -> Result<()> {
    let ids: Vec<String> = manifest.components.keys().cloned().collect();
    for id in ids {
        for index in 0..manifest.components[&id].dependencies.len() {
            let dependency = &manifest.components[&id].dependencies[index];
            let resolved = match &dependency.source {
                DependencySource::Local(_) | DependencySource::AppComponent(_) => continue,
                DependencySource::Remote { url, digest } => download(url, digest, cache).await,
                DependencySource::Registry { registry, package, version } => from_registry(Some(registry), package, version, cache, options).await,
            };
            let path = resolved.map_err(|err| {
                let message = format!("component `{id}`: dependency `{}`: {err:#}", dependency.name);
                anyhow::Error::from(manifest.error_at(&dependency.span, message, "check the dependency's URL, digest, registry and version"))
            })?;
            if let Some(dependency) = manifest.components.get_mut(&id).and_then(|c| c.dependencies.get_mut(index)) {
                dependency.source = DependencySource::Local(path);
            }
        }
    }
    Ok(())
}

/// Whether anything in `manifest` (a component source or a dependency) must be fetched.
pub fn has_remote_sources(manifest: &Manifest) -> bool {
    manifest.components.values().any(|c| {
        !matches!(c.source, ComponentSource::Local(_))
            || c.dependencies.iter().any(|d| matches!(d.source, DependencySource::Remote { .. } | DependencySource::Registry { .. }))
    })
}

async fn download(url: &str, digest: &str, cache: &Cache) -> Result<std::path::PathBuf> {
    if let Ok(path) = cache.blob_file(digest) {
        return Ok(path);
    }
    if !(url.starts_with("https://") || url.starts_with("http://")) {
        bail!("`{url}` is not an http(s) URL");
    }
    crate::registry::install_crypto_provider();
    let response = reqwest::get(url).await.with_context(|| format!("cannot download `{url}`"))?;
    if !response.status().is_success() {
        bail!("downloading `{url}`: the server answered {}", response.status());
    }
    let data = response.bytes().await.with_context(|| format!("the download of `{url}` was cut off"))?;
    cache.store_verified(digest, &data, &format!("the download of `{url}`"))
}

/// `{ registry, package = "ns:name", version }` → `registry/ns/name:version`, whose one Wasm layer
/// is the component.
async fn from_registry(registry: Option<&str>, package: &str, version: &str, cache: &Cache, options: &RegistryOptions) -> Result<std::path::PathBuf> {
    let Some(registry) = registry else {
        bail!("a `registry` source needs `registry = \"host\"` (Kiln has no default package registry)");
    };
    let Some((namespace, name)) = package.split_once(':') else {
        bail!("package `{package}` must be `namespace:name`");
    };
    let reference = format!("{}/{namespace}/{name}:{version}", registry.trim_end_matches('/'));
    let layers = crate::registry::pull_layers(&reference, cache, options, &[WASM_LAYER_MEDIA_TYPE, PLAIN_WASM_MEDIA_TYPE]).await?;
    match layers.as_slice() {
        [only] => Ok(only.clone()),
        [] => bail!("`{reference}` has no Wasm layer"),
        _ => bail!("`{reference}` has {} Wasm layers; a package has one", layers.len()),
    }
}
