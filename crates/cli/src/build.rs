//! `kiln build`: runs the components' `[component.<id>.build]` commands, in parallel where they
//! are independent, with a line of progress per component and the failing command's output.

use anyhow::{Context, Result, bail};
use kiln_manifest::Manifest;
use std::io::Read;
use std::path::{Path, PathBuf};
use std::sync::Mutex;
use std::time::Instant;

#[derive(clap::Args)]
pub(crate) struct BuildArgs {
    /// The manifest, or a directory containing kiln.toml or spin.toml.
    #[arg(short = 'f', long = "from", value_name = "PATH")]
    pub(crate) file: Option<PathBuf>,
}

pub(crate) fn run(args: &BuildArgs) -> Result<()> {
    let path = kiln_manifest::find_manifest(args.file.as_deref())?;
    let manifest = Manifest::load(&path)?;
    build_all(&manifest)
}

/// One unit of work: the commands of one or more components that share a workdir and commands
/// (the examples' components all build one Cargo workspace: built once, not once per component).
#[derive(Clone)]
pub(crate) struct Job {
    pub(crate) components: Vec<String>,
    pub(crate) commands: Vec<String>,
    pub(crate) workdir: PathBuf,
}

impl Job {
    fn label(&self) -> String {
        self.components.join(", ")
    }
}

/// The build jobs of `components` (all components when `None`), in manifest order.
pub(crate) fn jobs(manifest: &Manifest, components: Option<&[String]>) -> Vec<Job> {
    let mut jobs: Vec<Job> = Vec::new();
    for (id, component) in &manifest.components {
        let Some(build) = &component.build else { continue };
        if components.is_some_and(|wanted| !wanted.contains(id)) {
            continue;
        }
        match jobs.iter_mut().find(|job| job.workdir == build.workdir && job.commands == build.command) {
            Some(job) => job.components.push(id.clone()),
            None => jobs.push(Job { components: vec![id.clone()], commands: build.command.clone(), workdir: build.workdir.clone() }),
        }
    }
    jobs
}

/// Runs every component's build commands, each in its `workdir`.
pub(crate) fn build_all(manifest: &Manifest) -> Result<()> {
    run_jobs(jobs(manifest, None))
}

/// Runs the jobs, up to one per core at once (components are independent: Spin's manifest has no
/// build order). Each job's commands run in order and stop at the first failure. Every job runs even
/// when another fails, so one build shows all the broken components.
pub(crate) fn run_jobs(jobs: Vec<Job>) -> Result<()> {
    if jobs.is_empty() {
        eprintln!("no component has a [component.<id>.build] command: nothing to build");
        return Ok(());
    }
    let started = Instant::now();
    let total = jobs.len();
    let parallel = std::thread::available_parallelism().map(|n| n.get()).unwrap_or(1).min(total);
    let queue = Mutex::new(jobs.into_iter().enumerate());
    let failures = Mutex::new(Vec::new());
    std::thread::scope(|scope| {
        for _ in 0..parallel {
            scope.spawn(|| {
                while let Some((index, job)) = next(&queue) {
                    if let Err(err) = run_job(&job, index + 1, total) {
                        failures.lock().unwrap_or_else(|p| p.into_inner()).push((job.label(), err));
                    }
                }
            });
        }
    });
    let failures = failures.into_inner().unwrap_or_else(|p| p.into_inner());
    if failures.is_empty() {
        eprintln!("built {total} component build{} in {:.1}s", if total == 1 { "" } else { "s" }, started.elapsed().as_secs_f64());
        return Ok(());
    }
    for (_, err) in &failures {
        eprintln!("\n{err:#}");
    }
    let names: Vec<_> = failures.iter().map(|(label, _)| format!("`{label}`")).collect();
    bail!("the build of {} failed", names.join(", "))
}

fn next(queue: &Mutex<impl Iterator<Item = (usize, Job)>>) -> Option<(usize, Job)> {
    queue.lock().unwrap_or_else(|p| p.into_inner()).next()
}

/// Runs one job's commands, printing a line when it starts and when it ends.
fn run_job(job: &Job, number: usize, total: usize) -> Result<()> {
    let started = Instant::now();
    let label = job.label();
    for command in &job.commands {
        eprintln!("[{number}/{total}] {label}: {command}");
        if let Some(hint) = missing_program(command) {
            eprintln!("[{number}/{total}] {label}: failed");
            bail!("`{label}`: {hint}");
        }
        let (success, output) = run_command(command, &job.workdir).with_context(|| format!("`{label}`: cannot run `{command}`"))?;
        if !success {
            eprintln!("[{number}/{total}] {label}: failed after {:.1}s", started.elapsed().as_secs_f64());
            let hint = output_hint(&output).map(|hint| format!("\n{hint}")).unwrap_or_default();
            bail!("`{label}`: `{command}` failed in {}:\n{}{hint}", job.workdir.display(), output.trim_end());
        }
    }
    eprintln!("[{number}/{total}] {label}: done in {:.1}s", started.elapsed().as_secs_f64());
    Ok(())
}

/// Runs `command` with `sh -c` in `workdir`; returns whether it succeeded and its output (stdout
/// and stderr interleaved, as a terminal would show them).
fn run_command(command: &str, workdir: &Path) -> Result<(bool, String)> {
    let (mut reader, writer) = std::io::pipe()?;
    let mut child = {
        let mut process = std::process::Command::new("sh");
        process.arg("-c").arg(command).current_dir(workdir).stdin(std::process::Stdio::null());
        process.stdout(writer.try_clone()?).stderr(writer);
        // The command (and its copies of the pipe's write end) is dropped here, so reading ends
        // when the child and its own children are done writing.
        process.spawn()?
    };
    let mut output = Vec::new();
    reader.read_to_end(&mut output)?;
    let status = child.wait()?;
    Ok((status.success(), String::from_utf8_lossy(&output).into_owned()))
}

/// Toolchains the templates use: the program, and how to install it.
const TOOLCHAINS: &[(&str, &str, &str)] = &[
    ("Rust", "cargo", "install Rust with rustup (https://rustup.rs), then `rustup target add wasm32-wasip2`"),
    ("JavaScript", "npm", "install Node.js (18 or later) and npm, e.g. `apt-get install -y nodejs npm`"),
    ("Python", "componentize-py", "`python3 -m venv .venv && .venv/bin/pip install -r requirements.txt`, then put `.venv/bin` on PATH"),
];

/// If `command` starts with a program that is not on PATH, how to install it.
fn missing_program(command: &str) -> Option<String> {
    let program = command.split_whitespace().next()?;
    // Shell syntax (a variable, a path, a subshell) is the shell's business.
    if program.contains(['/', '$', '(', '=']) || on_path(program) {
        return None;
    }
    let install = TOOLCHAINS.iter().find(|(_, name, _)| *name == program).map(|(_, _, install)| format!(": {install}")).unwrap_or_default();
    Some(format!("`{program}` is not installed (not found on PATH){install}"))
}

/// For a template's language, how to install its toolchain when it is missing.
pub(crate) fn missing_toolchain_for(language: &str) -> Option<String> {
    let (_, program, install) = TOOLCHAINS.iter().find(|(lang, _, _)| *lang == language)?;
    (!on_path(program)).then(|| format!("`{program}` is not installed: {install}"))
}

fn on_path(program: &str) -> bool {
    let Some(path) = std::env::var_os("PATH") else { return false };
    std::env::split_paths(&path).any(|dir| is_executable(&dir.join(program)))
}

fn is_executable(path: &Path) -> bool {
    use std::os::unix::fs::PermissionsExt;
    path.metadata().is_ok_and(|m| m.is_file() && m.permissions().mode() & 0o111 != 0)
}

/// A known cause in a failed build's output, and its fix.
fn output_hint(output: &str) -> Option<&'static str> {
    let missing_wasip2 = output.contains("wasm32-wasip2") && (output.contains("target may not be installed") || output.contains("can't find crate for `core`"));
    missing_wasip2.then_some("hint: the Rust target is missing: run `rustup target add wasm32-wasip2`")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_missing_program_names_its_install_command() {
        let hint = missing_program("cargo-that-does-not-exist build").unwrap();
        assert!(hint.contains("not installed"), "{hint}");
        assert!(missing_program("sh -c true").is_none());
        assert!(missing_program("./build.sh").is_none());
        assert!(missing_program("FOO=1 make").is_none());
    }

    #[test]
    fn failing_output_is_captured() {
        let (success, output) = run_command("echo out; echo err >&2; exit 3", Path::new(".")).unwrap();
        assert!(!success);
        assert!(output.contains("out") && output.contains("err"), "{output}");
    }
}
