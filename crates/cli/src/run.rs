//! `kiln run FILE.wasm [ARGS]...`: runs a WASI program (`wasi:cli/run`, or a wasip1 `_start`
//! module) once, on the terminal, as `wasmtime run` does: the arguments, the environment variables
//! and the directories it is given, kiln's own stdin, stdout and stderr, and its exit code.
//!
//! The program is compiled through the same cache as `kiln up`, so a second run starts from the
//! precompiled artifact. It gets nothing else: no network unless `--allow-outbound` names hosts
//! (the manifest's `allowed_outbound_hosts` patterns), no file but the `--dir`s.

use anyhow::{Context, Result, bail};
use kiln_engine::{CommandIo, CommandStdio, ComponentPre, Engine, EngineConfig, InstanceLimits, WasiTemplate};
use kiln_outbound::AllowedHosts;
use kiln_outbound_http::OutboundHttp;
use std::path::PathBuf;
use std::time::Duration;
use wasmtime_wasi::p2::bindings::CommandPre;

/// "No deadline": long enough never to matter, short enough that `Instant + it` cannot overflow.
const NO_DEADLINE: Duration = Duration::from_secs(10 * 365 * 24 * 3600);

#[derive(clap::Args)]
pub(crate) struct RunArgs {
    /// Grant a host directory, read-write: `HOST` (seen as `HOST` by the program) or `HOST::GUEST`.
    #[arg(long = "dir", value_name = "HOST[::GUEST]")]
    dirs: Vec<String>,
    /// Set an environment variable: `NAME=VALUE`, or `NAME` to pass on kiln's own value.
    #[arg(long = "env", value_name = "NAME[=VALUE]")]
    env: Vec<String>,
    /// Let the program reach these hosts over HTTP and TCP (`allowed_outbound_hosts` patterns, e.g.
    /// `https://api.example.com`); repeatable. Without it, no network.
    #[arg(long = "allow-outbound", value_name = "PATTERN")]
    allow_outbound: Vec<String>,
    /// Stop the program after this long (e.g. `30s`); no limit by default.
    #[arg(long, value_name = "DURATION")]
    timeout: Option<humantime::Duration>,
    /// The largest linear memory the program may grow (bytes; `512M`, `2G` accepted).
    #[arg(long, value_name = "BYTES", default_value = "4G", value_parser = parse_bytes)]
    max_memory: usize,
    /// The program: a component (`wasm32-wasip2`) or a wasip1 core module.
    file: PathBuf,
    /// Its arguments (everything after FILE).
    #[arg(trailing_var_arg = true, allow_hyphen_values = true)]
    args: Vec<String>,
}

/// Runs the program and returns its exit code.
pub(crate) fn run(args: RunArgs) -> Result<u8> {
    let runtime = tokio::runtime::Builder::new_current_thread().enable_all().build().context("cannot start the runtime")?;
    runtime.block_on(run_program(args))
}

async fn run_program(args: RunArgs) -> Result<u8> {
    let name = args.file.file_name().map(|n| n.to_string_lossy().into_owned()).unwrap_or_else(|| "program".into());
    let allowed = AllowedHosts::parse(&args.allow_outbound).map_err(|err| anyhow::anyhow!("--allow-outbound: {err}"))?;
    let config = EngineConfig {
        // One instance: the pooling allocator would only reserve address space for nothing.
        pooling: false,
        max_instances: 1,
        max_instance_memory: args.max_memory,
        concurrency: Engine::needs_concurrency(&args.file)?,
        // Epoch checks only when there is a deadline to keep (they cost compute-bound programs ~20%).
        deadlines: args.timeout.is_some(),
        ..EngineConfig::default()
    };
    let engine = Engine::new(config, &[])?;
    let wasi = WasiTemplate {
        env: environment(&args.env)?,
        preopens: Vec::new(),
        writable_preopens: args.dirs.iter().map(|dir| directory(dir)).collect::<Result<_>>()?,
        sockets: kiln_app::socket_policy(&allowed),
    };
    let component = ComponentPre::load(&engine, &name, &args.file, wasi, Vec::new())?;
    let command = CommandPre::new(component.instance_pre().clone()).map_err(anyhow::Error::from).with_context(|| {
        format!("`{}` is not a program: it does not export `wasi:cli/run` (build it as a binary, with a `main`)", args.file.display())
    })?;
    let limits = InstanceLimits { deadline: args.timeout.map(Into::into).unwrap_or(NO_DEADLINE), memory_limit: args.max_memory };
    let argv = std::iter::once(name.clone()).chain(args.args).collect();
    let io = CommandIo { args: argv, env: Vec::new(), stdio: CommandStdio::Inherited };
    let hooks = OutboundHttp::new(name, allowed).hooks();
    let outcome = component.run_command(limits, hooks, io, move |store| Box::pin(async move { kiln_engine::run_to_exit(&command, store).await })).await;
    match outcome {
        Ok(code) => Ok(u8::try_from(code).unwrap_or(1)),
        Err(failure) => bail!("{}: {failure}", args.file.display()),
    }
}

/// `NAME=VALUE` as given, `NAME` with kiln's own value.
fn environment(pairs: &[String]) -> Result<Vec<(String, String)>> {
    pairs
        .iter()
        .map(|pair| match pair.split_once('=') {
            Some(("", _)) => bail!("--env `{pair}`: the variable has no name"),
            Some((name, value)) => Ok((name.to_string(), value.to_string())),
            None => std::env::var(pair)
                .map(|value| (pair.clone(), value))
                .with_context(|| format!("--env `{pair}`: kiln has no such variable to pass on (write `{pair}=VALUE`)")),
        })
        .collect()
}

/// `HOST` or `HOST::GUEST` → (host directory, guest path).
fn directory(spec: &str) -> Result<(PathBuf, String)> {
    let (host, guest) = spec.split_once("::").unwrap_or((spec, spec));
    if host.is_empty() || guest.is_empty() {
        bail!("--dir `{spec}`: write `HOST` or `HOST::GUEST`");
    }
    let host = PathBuf::from(host);
    if !host.is_dir() {
        bail!("--dir `{spec}`: `{}` is not a directory", host.display());
    }
    Ok((host, guest.to_string()))
}

/// `4096`, `512K`, `512M`, `2G` (powers of 1024).
fn parse_bytes(text: &str) -> Result<usize, String> {
    let text = text.trim();
    let (digits, shift) = match text.char_indices().last() {
        Some((i, 'k' | 'K')) => (&text[..i], 10),
        Some((i, 'm' | 'M')) => (&text[..i], 20),
        Some((i, 'g' | 'G')) => (&text[..i], 30),
        _ => (text, 0),
    };
    let n: usize = digits.trim().parse().map_err(|_| format!("`{text}` is not a size (e.g. 512M, 2G)"))?;
    n.checked_mul(1 << shift).filter(|n| *n > 0).ok_or_else(|| format!("`{text}` is out of range"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sizes_and_directories() {
        assert_eq!(parse_bytes("4096"), Ok(4096));
        assert_eq!(parse_bytes("512M"), Ok(512 << 20));
        assert_eq!(parse_bytes("2g"), Ok(2 << 30));
        assert!(parse_bytes("lots").is_err());
        assert!(parse_bytes("0").is_err());
        let tmp = std::env::temp_dir();
        let tmp_str = tmp.display().to_string();
        assert_eq!(directory(&tmp_str).unwrap(), (tmp.clone(), tmp_str.clone()));
        assert_eq!(directory(&format!("{tmp_str}::/data")).unwrap(), (tmp, "/data".to_string()));
        assert!(directory("::/data").is_err());
        assert!(directory("/no/such/dir").is_err());
        assert!(environment(&["=x".into()]).is_err());
        assert_eq!(environment(&["A=b=c".into()]).unwrap(), [("A".to_string(), "b=c".to_string())]);
    }
}
