//! `kiln registry push|pull|login`: apps as OCI artifacts in Spin's layout, and where `kiln up` and
//! `kiln deploy` take an app from when `--from` names a registry reference.

use anyhow::{Context, Result, bail};
use kiln_manifest::Manifest;
use kiln_oci::{Cache, Credentials, RegistryOptions};
use std::io::Read;
use std::path::{Path, PathBuf};

#[derive(clap::Args)]
pub(crate) struct RegistryArgs {
    #[command(subcommand)]
    command: RegistryCommand,
}

#[derive(clap::Subcommand)]
enum RegistryCommand {
    /// Push an app (already built) as an OCI artifact; prints its digest.
    Push(PushArgs),
    /// Pull an app into the local cache (every blob's digest checked); prints where it is.
    Pull(PullArgs),
    /// Store credentials for a registry (mode 0600), checked against the registry first.
    Login(LoginArgs),
}

#[derive(clap::Args)]
struct PushArgs {
    /// Where to push: `host[:port]/repository:tag`.
    reference: String,
    /// The manifest, or a directory containing kiln.toml or spin.toml [default: the current directory].
    #[arg(short = 'f', long = "from", value_name = "PATH")]
    file: Option<PathBuf>,
    /// The registry speaks plain HTTP (a registry on loopback).
    #[arg(short = 'k', long)]
    insecure: bool,
}

#[derive(clap::Args)]
struct PullArgs {
    /// What to pull: `host[:port]/repository:tag` or `…@sha256:…`.
    reference: String,
    #[arg(short = 'k', long)]
    insecure: bool,
    /// The cache [default: $KILN_CACHE_DIR, else ~/.cache/kiln].
    #[arg(long, value_name = "DIR")]
    cache_dir: Option<PathBuf>,
}

#[derive(clap::Args)]
struct LoginArgs {
    /// The registry: `host[:port]`.
    server: String,
    #[arg(short = 'u', long)]
    username: String,
    /// Read the password from standard input (it is never taken as an argument).
    #[arg(long)]
    password_stdin: bool,
    #[arg(short = 'k', long)]
    insecure: bool,
}

pub(crate) fn run(args: RegistryArgs) -> Result<()> {
    crate::init_logging(true, false);
    match args.command {
        RegistryCommand::Push(args) => push(args),
        RegistryCommand::Pull(args) => {
            let pulled = pull(&args.reference, args.insecure, args.cache_dir.as_deref())?;
            println!("Pulled {} ({})\n{}", args.reference, pulled.digest, pulled.manifest_path.display());
            Ok(())
        }
        RegistryCommand::Login(args) => login(args),
    }
}

pub(crate) fn options(insecure: bool) -> RegistryOptions {
    RegistryOptions { insecure, credentials: Credentials::default_location() }
}

fn runtime() -> Result<tokio::runtime::Runtime> {
    tokio::runtime::Builder::new_current_thread().enable_all().build().context("cannot start a runtime")
}

fn push(args: PushArgs) -> Result<()> {
    let path = kiln_manifest::find_manifest(args.file.as_deref())?;
    let mut manifest = Manifest::load(&path)?;
    resolve_sources(&mut manifest, args.insecure, None)?;
    let packed = kiln_oci::pack(&manifest)?;
    let bytes: usize = packed.layers.iter().map(|layer| layer.data.len()).sum();
    eprintln!("Pushing `{}` to {} ({} layers, {} bytes)", manifest.application.name, args.reference, packed.layers.len(), bytes);
    let digest = runtime()?.block_on(kiln_oci::push(&packed, &args.reference, &options(args.insecure)))?;
    println!("Pushed {}@{digest}", args.reference.split('@').next().unwrap_or(&args.reference));
    Ok(())
}

/// Pulls `reference` into the cache (`cache_dir`, else the default compile cache's directory).
pub(crate) fn pull(reference: &str, insecure: bool, cache_dir: Option<&Path>) -> Result<kiln_oci::PulledApp> {
    let cache = Cache::new(&cache_root(cache_dir)?);
    runtime()?.block_on(kiln_oci::pull(reference, &cache, &options(insecure)))
}

/// The app `reference` names, from the cache if it is there (a tag pulled before, or a digest),
/// else pulled.
pub(crate) fn cached_or_pulled(reference: &str, insecure: bool, cache_dir: Option<&Path>) -> Result<PathBuf> {
    let cache = Cache::new(&cache_root(cache_dir)?);
    if let Some(cached) = cache.cached_app(reference)? {
        tracing::debug!("{reference}: {} from the cache", cached.digest);
        return Ok(cached.manifest_path);
    }
    Ok(pull(reference, insecure, cache_dir)?.manifest_path)
}

/// Fetches every `{ url, digest }` and `{ registry, package, version }` component source and
/// dependency of `manifest` into the cache and points the component (or dependency) at the file.
pub(crate) fn resolve_sources(manifest: &mut Manifest, insecure: bool, cache_dir: Option<&Path>) -> Result<()> {
    if !kiln_oci::has_remote_sources(manifest) {
        return Ok(());
    }
    let cache = Cache::new(&cache_root(cache_dir)?);
    runtime()?.block_on(kiln_oci::resolve_sources(manifest, &cache, &options(insecure)))
}

fn cache_root(cache_dir: Option<&Path>) -> Result<PathBuf> {
    match cache_dir {
        Some(dir) => Ok(dir.to_path_buf()),
        None => kiln_engine::default_cache_dir().context("no cache directory: set KILN_CACHE_DIR or HOME"),
    }
}

/// Whether `from` (a `--from` value) names a registry reference rather than a file or directory:
/// it does not exist on disk, and its first segment is a host (`ghcr.io/…`, `127.0.0.1:5000/…`,
/// `localhost/…`).
pub(crate) fn is_reference(from: &str) -> bool {
    if Path::new(from).exists() {
        return false;
    }
    let Some((host, rest)) = from.split_once('/') else { return false };
    !rest.is_empty() && (host.contains('.') || host.contains(':') || host == "localhost")
}

fn login(args: LoginArgs) -> Result<()> {
    if !args.password_stdin {
        bail!("pass the password on standard input with --password-stdin (it is never taken as an argument)");
    }
    let mut password = String::new();
    std::io::stdin().read_to_string(&mut password).context("cannot read the password from standard input")?;
    let password = password.trim_end_matches(['\n', '\r']);
    if password.is_empty() {
        bail!("no password on standard input");
    }
    let server = kiln_oci::auth::normalise_server(&args.server);
    check_login(&server, &args.username, password, args.insecure)?;
    let credentials = Credentials::default_location();
    credentials.store(&server, &args.username, password)?;
    println!("Logged in to {server} (credentials in {})", credentials.file.display());
    Ok(())
}

/// Asks the registry's `/v2/` with the credentials: 200 (or no auth at all) is a yes.
fn check_login(server: &str, user: &str, password: &str, insecure: bool) -> Result<()> {
    let scheme = if insecure { "http" } else { "https" };
    let url = format!("{scheme}://{server}/v2/");
    let client = reqwest::blocking::Client::builder().timeout(std::time::Duration::from_secs(10)).build()?;
    let response = client.get(&url).basic_auth(user, Some(password)).send().with_context(|| format!("cannot reach the registry at {url} (for a plain-HTTP registry on loopback, pass --insecure)"))?;
    match response.status().as_u16() {
        200..=299 => Ok(()),
        401 | 403 => bail!("{server} refused the credentials of `{user}` ({})", response.status()),
        status => bail!("{url} answered {status}; is it an OCI registry?"),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn registry_references_are_told_from_paths() {
        assert!(is_reference("127.0.0.1:5000/hello:v1"));
        assert!(is_reference("ghcr.io/org/app@sha256:abc"));
        assert!(is_reference("localhost/app"));
        assert!(!is_reference("examples/hello"));
        assert!(!is_reference("spin.toml"));
        assert!(!is_reference("."));
    }
}
