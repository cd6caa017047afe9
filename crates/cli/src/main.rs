//! `kiln`: the command line. The only crate that reads process arguments and environment.

mod apps;
mod build;
mod client;
mod connections;
mod deploy;
mod k8s;
mod new;
mod registry;
mod serve;
mod run;
mod up;
mod watch;

use clap::{Parser, Subcommand};

/// Every request allocates and frees many small objects (stores, tables, header maps); mimalloc
/// measured markedly cheaper than glibc's allocator for this pattern (see bench/).
#[global_allocator]
static GLOBAL: mimalloc::MiMalloc = mimalloc::MiMalloc;
use std::process::ExitCode;

#[derive(Parser)]
#[command(name = "kiln", version, about = "Run WebAssembly components: a fresh sandboxed instance for every request")]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Serve an application from its manifest (kiln.toml or spin.toml).
    Up(up::UpArgs),
    /// Create an app from a template (`kiln templates list`).
    New(new::NewArgs),
    /// The templates `kiln new` can create.
    Templates(new::TemplatesArgs),
    /// Run the `[component.<id>.build]` commands of an application.
    Build(build::BuildArgs),
    /// Run a WASI program (`wasi:cli/run`) once on the terminal, as `wasmtime run` does.
    Run(run::RunArgs),
    /// Build and serve an application, rebuilding and swapping it in when its watched files change.
    Watch(watch::WatchArgs),
    /// Host many apps: deployed, updated and removed live over an authenticated admin API.
    Serve(serve::ServeArgs),
    /// Upload an application to a `kiln serve` host (deploy or update).
    Deploy(deploy::DeployArgs),
    /// List, show and remove the apps of a `kiln serve` host.
    Apps(apps::AppsArgs),
    /// Push apps to OCI registries, pull them, and log in (Spin's artifact layout).
    Registry(registry::RegistryArgs),
    /// Kubernetes objects for an app (RuntimeClass, Deployment, Service, autoscaler).
    K8s(k8s::K8sArgs),
}

fn main() -> ExitCode {
    // SAFETY: first thing in main, before any thread exists.
    unsafe { kiln_engine::disable_library_backtraces() };
    install_tls_provider();
    let cli = Cli::parse();
    let result = match cli.command {
        Command::Up(args) => up::run(args),
        Command::New(args) => new::run(&args),
        Command::Templates(args) => new::run_templates(&args),
        Command::Build(args) => {
            init_logging(false, false);
            build::run(&args)
        }
        Command::Watch(args) => watch::run(args),
        Command::Run(args) => {
            init_logging(true, false);
            return match run::run(args) {
                Ok(code) => ExitCode::from(code),
                Err(err) => {
                    report(&err);
                    ExitCode::FAILURE
                }
            };
        }
        Command::Serve(args) => serve::run(args),
        Command::Deploy(args) => deploy::run(args),
        Command::Apps(args) => apps::run(args),
        Command::Registry(args) => registry::run(args),
        Command::K8s(args) => k8s::run(args),
    };
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(err) => {
            report(&err);
            ExitCode::FAILURE
        }
    }
}

/// Every TLS client of the process (registries, OTLP, `rediss://`) uses rustls with ring: one
/// process-wide provider, installed before any of them is built.
fn install_tls_provider() {
    let _ = rustls::crypto::ring::default_provider().install_default();
}

pub(crate) fn init_logging(quiet: bool, json: bool) {
    use tracing_subscriber::EnvFilter;
    let default = if quiet { "warn" } else { "info" };
    let filter = EnvFilter::try_from_env("KILN_LOG").unwrap_or_else(|_| EnvFilter::new(default));
    let builder = tracing_subscriber::fmt().with_env_filter(filter).with_writer(std::io::stderr).with_target(false);
    kiln_trigger_http::structured_request_logs(json);
    let _ = if json { builder.json().try_init() } else { builder.try_init() };
}

/// Prints an error: manifest errors with their source snippet, everything else as its causes.
fn report(err: &anyhow::Error) {
    // Manifest and runtime-config errors are both `kiln_diagnostic::LocatedError`.
    if let Some(diagnostic) = err.chain().find_map(|cause| cause.downcast_ref::<kiln_manifest::ManifestError>()) {
        return render(diagnostic);
    }
    eprintln!("error: {err:#}");
}

/// A diagnostic with its source snippet: `file:line:col: message`, the lines around it, and help.
fn render(diagnostic: &dyn miette::Diagnostic) {
    let handler = miette::GraphicalReportHandler::new_themed(miette::GraphicalTheme::unicode_nocolor());
    let mut rendered = String::new();
    match handler.render_report(&mut rendered, diagnostic) {
        Ok(()) => eprintln!("error:{rendered}"),
        Err(_) => eprintln!("error: {diagnostic}"),
    }
}
