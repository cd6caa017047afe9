//! `kiln deploy`: pack an app (its manifest, component sources and files) into an archive and PUT
//! it to a `kiln serve` host, which answers once the new version is what new requests get.

pub(crate) mod archive;

use crate::client::{AdminClient, ApiError, App, ConnectArgs, SLOW_CALL_TIMEOUT, check_app_name};
use anyhow::{Context, Result, bail};
use kiln_manifest::Manifest;
use reqwest::StatusCode;
use std::time::Duration;

#[derive(clap::Args)]
pub(crate) struct DeployArgs {
    /// The manifest, a directory containing kiln.toml or spin.toml, or a registry reference, which the
    /// host pulls (with its own credentials) [default: the current directory].
    #[arg(short = 'f', long = "from", value_name = "PATH|REF")]
    file: Option<String>,
    /// The registry of `--from REF` speaks plain HTTP (a registry on loopback).
    #[arg(short = 'k', long)]
    insecure: bool,
    /// The app's name on the host, a DNS label [default: the manifest's application name, made into one].
    #[arg(long)]
    name: Option<String>,
    #[command(flatten)]
    connect: ConnectArgs,
    /// Also serve the app under this path on every host name (e.g. /shop); its routes are mounted below it.
    #[arg(long, value_name = "PATH")]
    route_prefix: Option<String>,
    /// Instances of this app that may run at once [default: the host's --max-concurrency].
    #[arg(long, value_name = "N", value_parser = clap::value_parser!(u64).range(1..))]
    max_concurrency: Option<u64>,
    /// Linear memory limit of each instance, in MiB [default: the host's --memory-limit].
    #[arg(long, value_name = "MIB", value_parser = clap::value_parser!(u64).range(1..))]
    memory_limit: Option<u64>,
    /// A request still running after this long is cut off with 504, e.g. 5s or 500ms [default: the
    /// host's --request-timeout].
    #[arg(long, value_name = "DURATION", value_parser = humantime::parse_duration)]
    request_timeout: Option<Duration>,
    /// Largest request body the app accepts, in bytes; larger ones get 413 [default: the host's
    /// --max-request-body].
    #[arg(long, value_name = "BYTES")]
    max_request_body: Option<u64>,
    /// Run the components' build commands before packing.
    #[arg(long)]
    build: bool,
    /// The app's runtime config on the host (Redis key-value stores, `static` or `dotenv` variables):
    /// packed as `runtime-config.toml`, or sent with `--from REF`.
    #[arg(long, value_name = "FILE")]
    runtime_config_file: Option<std::path::PathBuf>,
}

pub(crate) fn run(args: DeployArgs) -> Result<()> {
    crate::init_logging(false, false);
    if let Some(reference) = args.file.as_deref().filter(|from| crate::registry::is_reference(from)) {
        return deploy_reference(&args, reference);
    }
    let path = kiln_manifest::find_manifest(args.file.as_deref().map(std::path::Path::new))?;
    let mut manifest = Manifest::load(&path)?;
    crate::registry::resolve_sources(&mut manifest, args.insecure, None)?;
    let name = app_name(args.name.as_deref(), &manifest.application.name)?;
    let query = query_parameters(&args)?;
    // Resolved before building or packing, so a missing token is reported at once.
    let client = AdminClient::connect(&args.connect)?;
    if args.build {
        crate::build::build_all(&manifest)?;
    }
    manifest.check_sources()?;
    let archive = archive::pack(&manifest, args.runtime_config_file.as_deref())?;
    for warning in &archive.warnings {
        eprintln!("warning: {warning}");
    }
    eprintln!("Uploading `{name}` to {} ({} files, {})", client.host(), archive.files, size(archive.bytes.len()));
    let (app, created) = upload(&client, &name, &query, archive.bytes)?;
    print!("{}", deployed(&app, created));
    Ok(())
}

/// Asks the host to pull `reference` and deploy it: the same checks and zero-failed-request swap as
/// for an uploaded archive.
fn deploy_reference(args: &DeployArgs, reference: &str) -> Result<()> {
    let parsed = kiln_oci::parse_reference(reference)?;
    let repository_name = parsed.repository().rsplit('/').next().unwrap_or_default().to_string();
    let name = app_name(args.name.as_deref(), &repository_name)?;
    let mut query = query_parameters(args)?;
    query.push(("reference", reference.to_string()));
    if args.insecure {
        query.push(("insecure", "true".to_string()));
    }
    let runtime_config = match &args.runtime_config_file {
        Some(path) => std::fs::read(path).with_context(|| format!("cannot read --runtime-config-file `{}`", path.display()))?,
        None => Vec::new(),
    };
    let client = AdminClient::connect(&args.connect)?;
    eprintln!("Deploying `{name}` from {reference} on {}", client.host());
    let (app, created) = upload(&client, &name, &query, runtime_config)?;
    print!("{}", deployed(&app, created));
    Ok(())
}

/// `--name`, checked; else the manifest's application name made into a DNS label.
fn app_name(flag: Option<&str>, application: &str) -> Result<String> {
    if let Some(name) = flag {
        check_app_name(name)?;
        return Ok(name.to_string());
    }
    let name = dns_label(application);
    if name.is_empty() {
        bail!("the application name `{application}` has no letter or digit to make an app name of\nhelp: pass --name NAME");
    }
    check_app_name(&name).context("pass --name NAME")?;
    Ok(name)
}

/// Lower-cases, turns every other character than `a-z`/`0-9` into `-` (one for a run of them),
/// trims `-` from both ends and keeps at most 63 characters: "My Shop_v2" → "my-shop-v2".
pub(crate) fn dns_label(name: &str) -> String {
    let mut label = String::with_capacity(name.len());
    for c in name.chars().map(|c| c.to_ascii_lowercase()) {
        if c.is_ascii_lowercase() || c.is_ascii_digit() {
            label.push(c);
        } else if !label.ends_with('-') {
            label.push('-');
        }
    }
    let trimmed = label.trim_matches('-');
    // Only ASCII is left, so any byte index is a character boundary.
    trimmed[..trimmed.len().min(63)].trim_end_matches('-').to_string()
}

/// The limits and route prefix given on the command line, as the API's query parameters.
fn query_parameters(args: &DeployArgs) -> Result<Vec<(&'static str, String)>> {
    let mut query = Vec::new();
    if let Some(prefix) = &args.route_prefix {
        if !prefix.starts_with('/') {
            bail!("--route-prefix `{prefix}` must start with `/`, like /shop");
        }
        query.push(("route_prefix", prefix.clone()));
    }
    if let Some(n) = args.max_concurrency {
        query.push(("max_concurrency", n.to_string()));
    }
    if let Some(mib) = args.memory_limit {
        query.push(("memory_limit_mib", mib.to_string()));
    }
    if let Some(timeout) = args.request_timeout {
        query.push(("request_timeout_ms", timeout_millis(timeout)?.to_string()));
    }
    if let Some(bytes) = args.max_request_body {
        query.push(("max_request_body", bytes.to_string()));
    }
    Ok(query)
}

fn timeout_millis(timeout: Duration) -> Result<u64> {
    let millis = u64::try_from(timeout.as_millis()).unwrap_or(u64::MAX);
    if millis == 0 {
        bail!("--request-timeout must be at least 1ms");
    }
    Ok(millis)
}

/// PUTs the archive; returns the app as now served and whether it is new (201) or updated (200).
fn upload(client: &AdminClient, name: &str, query: &[(&str, String)], archive: Vec<u8>) -> Result<(App, bool)> {
    let archive_len = archive.len();
    let request = client
        .request(reqwest::Method::PUT, &format!("/v1/apps/{name}"))
        .query(query)
        .header(reqwest::header::CONTENT_TYPE, "application/gzip")
        .timeout(SLOW_CALL_TIMEOUT)
        .body(archive);
    let answer = client.send(request)?;
    if !answer.status.is_success() {
        let error = ApiError::from_answer(&answer);
        let err = client.status_error(&error, &format!("deploying `{name}`"), &client.wrong_address_hint());
        if error.status == StatusCode::PAYLOAD_TOO_LARGE {
            let help = "help: the host's --max-upload is smaller; leave out large files with `exclude_files`, or raise --max-upload";
            return Err(err.context(format!("the archive is {}\n{help}", size(archive_len))));
        }
        return Err(err);
    }
    let app = answer.parse::<App>(&format!("deploying `{name}`"))?;
    Ok((app, answer.status == StatusCode::CREATED))
}

/// What the user reads after a successful deploy: where the app is, and its routes.
fn deployed(app: &App, created: bool) -> String {
    let verb = if created { "Deployed" } else { "Updated" };
    let mut text = format!("{verb} `{}` (version {}): {}\n", app.name, app.version, app.url);
    if let Some(prefix) = &app.route_prefix {
        text.push_str(&format!("Also served under {prefix} on every host name.\n"));
    }
    text.push_str(&crate::apps::routes_table(app));
    text
}

/// `1536` → "1.5 KiB".
fn size(bytes: usize) -> String {
    const KIB: f64 = 1024.0;
    let bytes_f = bytes as f64;
    if bytes_f < KIB {
        format!("{bytes} B")
    } else if bytes_f < KIB * KIB {
        format!("{:.1} KiB", bytes_f / KIB)
    } else {
        format!("{:.1} MiB", bytes_f / (KIB * KIB))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use clap::Parser;

    #[derive(Parser)]
    struct Cli {
        #[command(flatten)]
        deploy: DeployArgs,
    }

    fn parse(args: &[&str]) -> Result<DeployArgs, clap::Error> {
        Cli::try_parse_from(std::iter::once("deploy").chain(args.iter().copied())).map(|cli| cli.deploy)
    }

    #[test]
    fn names_become_dns_labels() {
        assert_eq!(dns_label("hello"), "hello");
        assert_eq!(dns_label("My Shop_v2"), "my-shop-v2");
        assert_eq!(dns_label("--a..b--"), "a-b");
        assert_eq!(dns_label("Ünïcode café"), "n-code-caf");
        assert_eq!(dns_label("___"), "");
        let long = dns_label(&format!("{}-{}", "a".repeat(62), "b".repeat(10)));
        assert_eq!(long, "a".repeat(62), "cut at 63, then the trailing `-` trimmed");
        assert!(check_app_name(&dns_label(&"x".repeat(100))).is_ok());
    }

    #[test]
    fn name_flag_is_checked_and_default_comes_from_the_manifest() {
        assert_eq!(app_name(None, "Hello World").unwrap(), "hello-world");
        assert_eq!(app_name(Some("custom"), "Hello World").unwrap(), "custom");
        assert!(app_name(Some("Bad_Name"), "x").unwrap_err().to_string().contains("not a valid app name"));
        assert!(app_name(None, "!!!").unwrap_err().to_string().contains("--name"));
    }

    #[test]
    fn limits_become_query_parameters() {
        let args = parse(&[
            "--route-prefix",
            "/shop",
            "--max-concurrency",
            "5",
            "--memory-limit",
            "64",
            "--request-timeout",
            "1500ms",
            "--max-request-body",
            "0",
        ])
        .unwrap();
        let query = query_parameters(&args).unwrap();
        let expected = [
            ("route_prefix", "/shop"),
            ("max_concurrency", "5"),
            ("memory_limit_mib", "64"),
            ("request_timeout_ms", "1500"),
            ("max_request_body", "0"),
        ];
        assert_eq!(query, expected.map(|(k, v)| (k, v.to_string())));
        assert!(query_parameters(&parse(&[]).unwrap()).unwrap().is_empty());
    }

    #[test]
    fn bad_limits_are_refused_locally() {
        assert!(parse(&["--max-concurrency", "0"]).is_err());
        assert!(parse(&["--memory-limit", "-1"]).is_err());
        assert!(parse(&["--request-timeout", "soon"]).is_err());
        let zero = parse(&["--request-timeout", "0s"]).unwrap();
        assert!(query_parameters(&zero).unwrap_err().to_string().contains("at least 1ms"));
        let prefix = parse(&["--route-prefix", "shop"]).unwrap();
        assert!(query_parameters(&prefix).unwrap_err().to_string().contains("must start with `/`"));
    }

    #[test]
    fn the_deployed_message_has_url_and_routes() {
        let app: App = serde_json::from_str(
            r#"{"name":"hello","version":2,"url":"http://hello.localhost:3000/","route_prefix":"/shop",
                "routes":[{"component":"hello","route":"/..."},{"component":"api","route":"/api/..."}]}"#,
        )
        .unwrap();
        let text = deployed(&app, false);
        assert!(text.starts_with("Updated `hello` (version 2): http://hello.localhost:3000/\n"), "{text}");
        assert!(text.contains("under /shop"), "{text}");
        assert!(text.contains("http://hello.localhost:3000/api/..."), "{text}");
        assert!(text.contains("api"), "{text}");
        assert!(deployed(&app, true).starts_with("Deployed"));
    }

    #[test]
    fn sizes_read_well() {
        assert_eq!(size(10), "10 B");
        assert_eq!(size(1536), "1.5 KiB");
        assert_eq!(size(3 * 1024 * 1024), "3.0 MiB");
    }
}
