//! The container's process: the app served as `kiln up` serves it, configured from the container's
//! environment, until SIGTERM or SIGINT.
//!
//! The process is PID 1 of its own PID namespace, where the kernel drops every signal the process
//! has no handler for: SIGTERM from `kubectl delete` or `ctr task kill` would be ignored and the pod
//! would hang in Terminating until SIGKILL. So SIGTERM and SIGINT get a handler before the app
//! starts ([`TermSignals`]); in-flight requests then get the grace period to finish.

use crate::app::{self, AppSource};
use crate::precompile;
use anyhow::{Context, Result};
use containerd_shim_wasm::sandbox::context::RuntimeContext;
use kiln_host::Settings;
use kiln_manifest::Manifest;
use std::collections::HashMap;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::os::fd::{AsRawFd, FromRawFd};
use std::sync::atomic::{AtomicI32, Ordering};
use std::time::Instant;

const DEFAULT_LISTEN: &str = "0.0.0.0:80";

/// Runs the container's app; returns the process's exit code.
pub fn run(ctx: &impl RuntimeContext) -> i32 {
    let started = Instant::now();
    let env = container_env(ctx.envs());
    init_logging(&env);
    let result = TermSignals::install().and_then(|signals| {
        let (manifest, settings) = prepare(ctx, &env)?;
        // The host builds and drives its own runtimes: on a thread of its own, not inside the
        // shim's async runtime this function is called from.
        std::thread::Builder::new()
            .name("kiln".into())
            .spawn(move || serve(&manifest, settings, &signals, started))
            .context("cannot start the app's thread")?
            .join()
            .map_err(|_| anyhow::anyhow!("the app's thread panicked"))?
    });
    match result {
        Ok(()) => 0,
        Err(err) => {
            tracing::error!("{err:#}");
            1
        }
    }
}

/// Finds the app (writing out an artifact's), unpacks its precompiled components into the cache,
/// and reads the settings from the environment.
fn prepare(ctx: &impl RuntimeContext, env: &HashMap<String, String>) -> Result<(PathBuf, Settings)> {
    let entrypoint = ctx.entrypoint();
    let mut settings = settings(env)?;
    let cache_dir = settings.cache_dir.clone().context("no compile cache")?;
    let layers = match &entrypoint.source {
        containerd_shim_wasm::sandbox::context::Source::Oci(layers) => *layers,
        containerd_shim_wasm::sandbox::context::Source::File(_) => &[],
    };
    let mut locked_original = None;
    for layer in layers.iter().filter(|layer| layer.precompiled) {
        let bundle = precompile::unpack(&layer.layer, &cache_dir)?;
        tracing::info!("using {} precompiled component(s)", bundle.artifacts);
        locked_original = locked_original.or(bundle.original);
    }
    let manifest = match app::find(Path::new("/"), entrypoint.arg0, &entrypoint.source)? {
        AppSource::Files(manifest) => manifest,
        AppSource::Artifact { layers, locked } => {
            let locked = locked_original.as_deref().unwrap_or(&layers[locked].layer);
            let dir = std::env::temp_dir().join("kiln-artifact");
            app::materialize(layers, locked, &dir)?
        }
    };
    if settings.runtime_config_file.is_none() {
        let beside = manifest.with_file_name("runtime-config.toml");
        settings.runtime_config_file = beside.is_file().then_some(beside);
    }
    Ok((manifest, settings))
}

fn serve(manifest: &Path, settings: Settings, signals: &TermSignals, started: Instant) -> Result<()> {
    let manifest = Manifest::load(manifest)?;
    let host = kiln_host::prepare(manifest, settings)?.start(|_| Ok(()))?;
    let mut lines = vec![format!(
        "Serving http://{} ({}, ready in {:.1} ms)",
        host.addr(),
        host.app().name(),
        started.elapsed().as_secs_f64() * 1000.0
    )];
    lines.extend(host.describe().into_iter().map(|line| format!("  {line}")));
    tracing::info!("{}", lines.join("\n"));
    let signal = signals.wait();
    tracing::info!("received signal {signal}");
    host.shutdown();
    Ok(())
}

/// `KEY=VALUE` pairs (the container's, not the shim's environment).
fn container_env(envs: &[String]) -> HashMap<String, String> {
    envs.iter().filter_map(|pair| pair.split_once('=')).map(|(key, value)| (key.to_string(), value.to_string())).collect()
}

/// The settings the container's environment asks for; see the README's containerd section.
fn settings(env: &HashMap<String, String>) -> Result<Settings> {
    // SpinKube's variable name too, so its pod specs work unchanged.
    let listen = env.get("KILN_HTTP_LISTEN_ADDR").or(env.get("SPIN_HTTP_LISTEN_ADDR")).map(String::as_str).unwrap_or(DEFAULT_LISTEN);
    let listen: SocketAddr = listen.parse().with_context(|| format!("KILN_HTTP_LISTEN_ADDR `{listen}` is not an address such as {DEFAULT_LISTEN}"))?;
    let mut settings = Settings::new(listen);
    if let Some(grace) = env.get("KILN_SHUTDOWN_GRACE") {
        settings.shutdown_grace = humantime::parse_duration(grace).with_context(|| format!("KILN_SHUTDOWN_GRACE `{grace}` is not a duration such as 10s"))?;
    }
    settings.cache_dir = Some(env.get("KILN_CACHE_DIR").map(PathBuf::from).unwrap_or_else(|| std::env::temp_dir().join("kiln-cache")));
    settings.state_dir = env.get("KILN_STATE_DIR").map(PathBuf::from);
    settings.runtime_config_file = env.get("KILN_RUNTIME_CONFIG").map(PathBuf::from);
    settings.env = env.iter().map(|(key, value)| (key.clone(), value.clone())).collect();
    Ok(settings)
}

/// Logs go to the container's stderr, where `kubectl logs` / `ctr` read them.
fn init_logging(env: &HashMap<String, String>) {
    use tracing_subscriber::EnvFilter;
    let filter = env.get("KILN_LOG").and_then(|filter| EnvFilter::try_new(filter).ok()).unwrap_or_else(|| EnvFilter::new("info"));
    let ansi = std::io::IsTerminal::is_terminal(&std::io::stderr());
    let _ = tracing_subscriber::fmt().with_env_filter(filter).with_writer(std::io::stderr).with_ansi(ansi).with_target(false).try_init();
}

/// SIGTERM and SIGINT, delivered through a pipe: the handler (on whichever thread the kernel picks;
/// the shim's own async runtime has threads here before Kiln runs, so blocking the signals and
/// `sigwait` cannot catch them all) writes the signal's number, [`TermSignals::wait`] reads it.
struct TermSignals {
    read: std::os::fd::OwnedFd,
}

/// The pipe's write end, for the handler; -1 until installed.
static SIGNAL_PIPE: AtomicI32 = AtomicI32::new(-1);

impl TermSignals {
    fn install() -> Result<TermSignals> {
        let mut fds = [0; 2];
        // SAFETY: `fds` is a valid array of two ints for pipe2 to fill.
        if unsafe { libc::pipe2(fds.as_mut_ptr(), libc::O_CLOEXEC) } != 0 {
            anyhow::bail!("cannot create the signal pipe: {}", std::io::Error::last_os_error());
        }
        // SAFETY: pipe2 succeeded, so fds[0] is an open descriptor this struct now owns.
        let read = unsafe { std::os::fd::OwnedFd::from_raw_fd(fds[0]) };
        SIGNAL_PIPE.store(fds[1], Ordering::SeqCst);
        for signal in [libc::SIGTERM, libc::SIGINT] {
            // SAFETY: a zeroed sigaction with an emptied mask and a handler that only calls
            // async-signal-safe functions (load, write).
            let rc = unsafe {
                let mut action: libc::sigaction = std::mem::zeroed();
                action.sa_sigaction = on_signal as *const () as libc::sighandler_t;
                action.sa_flags = libc::SA_RESTART;
                libc::sigemptyset(&mut action.sa_mask);
                libc::sigaction(signal, &action, std::ptr::null_mut())
            };
            if rc != 0 {
                anyhow::bail!("cannot handle signal {signal}: {}", std::io::Error::last_os_error());
            }
        }
        Ok(TermSignals { read })
    }

    /// Blocks until SIGTERM or SIGINT arrives; returns it.
    fn wait(&self) -> i32 {
        loop {
            let mut signal = 0u8;
            // SAFETY: reads one byte into `signal` from the pipe this struct owns.
            let n = unsafe { libc::read(self.read.as_raw_fd(), (&mut signal as *mut u8).cast(), 1) };
            if n == 1 {
                return i32::from(signal);
            }
            if n == 0 || std::io::Error::last_os_error().kind() != std::io::ErrorKind::Interrupted {
                // The pipe cannot fail while we hold both ends; if it does, stop rather than spin.
                return libc::SIGTERM;
            }
        }
    }
}

extern "C" fn on_signal(signal: libc::c_int) {
    let fd = SIGNAL_PIPE.load(Ordering::SeqCst);
    if fd >= 0 {
        let byte = signal as u8;
        // SAFETY: write(2) is async-signal-safe; `byte` lives for the call.
        unsafe { libc::write(fd, (&byte as *const u8).cast(), 1) };
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;

    #[test]
    fn settings_come_from_the_container_environment() {
        let env = container_env(&["SPIN_HTTP_LISTEN_ADDR=127.0.0.1:8080".into(), "KILN_SHUTDOWN_GRACE=3s".into(), "A=b=c".into()]);
        assert_eq!(env["A"], "b=c");
        let spin_named = settings(&env).unwrap();
        assert_eq!(spin_named.listen, "127.0.0.1:8080".parse().unwrap());
        assert_eq!(spin_named.shutdown_grace, Duration::from_secs(3));
        let env = container_env(&["KILN_HTTP_LISTEN_ADDR=[::]:9000".into(), "SPIN_HTTP_LISTEN_ADDR=127.0.0.1:1".into()]);
        assert_eq!(settings(&env).unwrap().listen, "[::]:9000".parse().unwrap());
        assert_eq!(settings(&HashMap::new()).unwrap().listen, DEFAULT_LISTEN.parse().unwrap());
        let err = settings(&container_env(&["KILN_HTTP_LISTEN_ADDR=localhost".into()])).err().unwrap();
        assert!(format!("{err:#}").contains("`localhost` is not an address"), "{err:#}");
    }
}
