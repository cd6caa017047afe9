//! The directory trigger, `[[trigger.directory]]` (Kiln's own): every file that lands in a watched
//! directory runs the component's `wasi:cli/run` once, with the file on stdin and its name in
//! `KILN_FILE_NAME`; what the program prints becomes a file of the same name in the output directory.
//!
//! ```toml
//! [[trigger.directory]]
//! path = "inbox"          # watched (created if missing)
//! pattern = "*.csv"       # file names to take; every file when absent
//! output = "outbox"       # results, written whole (temporary file, then rename)
//! component = "momentum"
//! ```
//!
//! Nothing is lost: a file is taken only once it has stopped changing for a poll; its result is
//! written (and renamed into place) before the input is moved to `inbox/.done/`; a program that
//! fails leaves `outbox/<name>.error` (the reason and what it printed on stderr) and the input in
//! `inbox/.failed/`. A file whose run was cut off (shutdown) or could not start (the app failed to
//! load) stays where it is and is taken again. Files are polled, not watched through
//! file-system events, so a network file system works the same; files are taken one at a time per
//! trigger, oldest first.

use anyhow::{Context, Result};
use bytes::Bytes;
use kiln_app::{App, BoxFuture, Draining, EventOutcome, RunningTrigger, Trigger, TriggerContext, TriggerLimits};
use kiln_engine::{CommandIo, CommandStdio, ComponentPre, KilnState};
use kiln_manifest::Manifest;
use kiln_outbound_http::OutboundHttp;
use std::collections::{BTreeMap, HashMap};
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::{Duration, Instant, SystemTime};
use tokio::sync::{Mutex, watch};
use wasmtime_wasi::p2::bindings::CommandPre;
use wasmtime_wasi::p2::pipe::MemoryOutputPipe;

/// How often the watched directories are listed.
pub const POLL: Duration = Duration::from_millis(500);
/// The largest file taken; a larger one goes to `.failed/` with the reason.
pub const MAX_INPUT: u64 = 64 << 20;
/// What a program may print on stdout (its writes fail beyond it) and on stderr.
const MAX_OUTPUT: usize = 64 << 20;
const MAX_STDERR: usize = 64 << 10;
/// The environment variable that names the file being processed (the program's stdin).
pub const FILE_NAME_VAR: &str = "KILN_FILE_NAME";
/// Where taken inputs go, inside the watched directory.
pub const DONE_DIR: &str = ".done";
pub const FAILED_DIR: &str = ".failed";

/// The directory trigger, `[[trigger.directory]]`.
pub struct DirectoryTrigger;

impl Trigger for DirectoryTrigger {
    fn kind(&self) -> &'static str {
        "directory"
    }

    fn is_used_by(&self, manifest: &Manifest) -> bool {
        !manifest.directory_triggers.is_empty()
    }

    /// The manifest checked the tables (paths, patterns) when it was read.
    fn check(&self, _manifest: &Manifest) -> Result<()> {
        Ok(())
    }

    fn plan(&self, app: &App, limits: &TriggerLimits) -> Result<String> {
        app.trigger_exports("directory", exports)?;
        Ok(format!("{:?} {limits:?}", watches(&app.manifest).iter().map(Watch::describe).collect::<Vec<_>>()))
    }

    fn start(&self, app: &App, context: TriggerContext) -> Result<Box<dyn RunningTrigger>> {
        app.trigger_exports("directory", exports)?;
        let (stop, stop_rx) = watch::channel(false);
        let watches = watches(&app.manifest);
        let described = watches.iter().map(Watch::describe).collect();
        let busy = Arc::new(Mutex::new(()));
        let loops = watches
            .into_iter()
            .map(|w| {
                tracing::info!(target: "kiln::directory", "{}watching {} [{}]", context.log_prefix(), w.describe(), w.component);
                context.runtime.spawn(watch_loop(w, context.clone(), busy.clone(), stop_rx.clone()))
            })
            .collect();
        Ok(Box::new(Running { stop, loops, busy, described }))
    }
}

/// One `[[trigger.directory]]`.
#[derive(Clone)]
struct Watch {
    component: String,
    path: PathBuf,
    pattern: Option<glob::Pattern>,
    output: PathBuf,
}

impl Watch {
    fn describe(&self) -> String {
        let pattern = self.pattern.as_ref().map_or("*", glob::Pattern::as_str);
        format!("directory {}/{pattern} → {}", self.path.display(), self.output.display())
    }

    fn takes(&self, name: &str) -> bool {
        !name.starts_with('.') && self.pattern.as_ref().is_none_or(|p| p.matches(name))
    }
}

fn watches(manifest: &Manifest) -> Vec<Watch> {
    manifest
        .directory_triggers
        .iter()
        .map(|t| Watch {
            component: t.component.clone(),
            path: t.path.clone(),
            // Checked when the manifest was read.
            pattern: t.pattern.as_deref().and_then(|p| glob::Pattern::new(p).ok()),
            output: t.output.clone(),
        })
        .collect()
}

/// A component bound to a directory trigger: linked, its `wasi:cli/run` located once per loaded app.
struct Export {
    pre: ComponentPre,
    command: CommandPre<KilnState>,
    outbound: Arc<OutboundHttp>,
}

fn exports(app: &App) -> Result<HashMap<String, Export>> {
    let manifest = &app.manifest;
    let mut exports = HashMap::new();
    for trigger in &manifest.directory_triggers {
        let component = app.components.get(&trigger.component).with_context(|| format!("component `{}` is not loaded", trigger.component))?;
        let command = CommandPre::new(component.pre.instance_pre().clone()).map_err(|err| {
            manifest.error_at(
                &trigger.component_span,
                format!("component `{}` is bound to a directory trigger but is not a program (no `wasi:cli/run` export): {err}", trigger.component),
                "build it as a WASI program (a `main`, or `wasi::cli::command::export!`)",
            )
        })?;
        exports.insert(trigger.component.clone(), Export { pre: component.pre.clone(), command, outbound: component.outbound_http.clone() });
    }
    Ok(exports)
}

struct Running {
    stop: watch::Sender<bool>,
    loops: Vec<tokio::task::JoinHandle<()>>,
    /// Held by every run: the drain takes it once the runs in flight are over.
    busy: Arc<Mutex<()>>,
    described: Vec<String>,
}

impl RunningTrigger for Running {
    fn describe(&self) -> Vec<String> {
        self.described.clone()
    }

    /// Stops polling; the drain waits for the file being processed up to the grace period. A run
    /// cut off leaves its file in place, to be taken again.
    fn stop(self: Box<Self>, grace: Duration) -> BoxFuture<'static, Draining> {
        let Running { stop, loops, busy, .. } = *self;
        Box::pin(async move {
            let _ = stop.send(true);
            Draining::new(async move {
                if tokio::time::timeout(grace, busy.lock()).await.is_err() {
                    tracing::warn!(target: "kiln::directory", "shutdown grace period of {grace:?} elapsed; the file being processed stays in place");
                }
                for task in loops {
                    task.abort();
                }
            })
        })
    }
}

/// What a file looked like at a poll: it is taken once this stays the same for a whole poll.
type Stamp = (u64, Option<SystemTime>);

async fn watch_loop(watch: Watch, context: TriggerContext, busy: Arc<Mutex<()>>, mut stop: watch::Receiver<bool>) {
    let prefix = context.log_prefix();
    let mut seen: BTreeMap<String, Stamp> = BTreeMap::new();
    let mut complained = false;
    loop {
        match ready_files(&watch, &mut seen) {
            Ok(ready) => {
                complained = false;
                for name in ready {
                    if *stop.borrow() {
                        return;
                    }
                    let _running = busy.lock().await;
                    take(&watch, &context, &name).await;
                    seen.remove(&name);
                }
            }
            Err(err) if !complained => {
                tracing::warn!(target: "kiln::directory", "{prefix}[{}] {}: {err:#}; retrying", watch.component, watch.path.display());
                complained = true;
            }
            Err(_) => {}
        }
        tokio::select! {
            biased;
            _ = stop.changed() => return,
            _ = tokio::time::sleep(POLL) => {}
        }
    }
}

/// The files of the watched directory that have not changed since the last poll, oldest first;
/// `seen` becomes this poll's stamps.
fn ready_files(watch: &Watch, seen: &mut BTreeMap<String, Stamp>) -> Result<Vec<String>> {
    std::fs::create_dir_all(&watch.path).with_context(|| format!("cannot create the watched directory `{}`", watch.path.display()))?;
    let mut now = BTreeMap::new();
    for entry in std::fs::read_dir(&watch.path).with_context(|| format!("cannot list `{}`", watch.path.display()))? {
        let Ok(entry) = entry else { continue };
        let Ok(name) = entry.file_name().into_string() else { continue };
        let Ok(meta) = entry.metadata() else { continue };
        if meta.is_file() && watch.takes(&name) {
            now.insert(name, (meta.len(), meta.modified().ok()));
        }
    }
    let mut ready: Vec<(Option<SystemTime>, String)> =
        now.iter().filter(|(name, stamp)| seen.get(*name) == Some(stamp)).map(|(name, stamp)| (stamp.1, name.clone())).collect();
    ready.sort();
    *seen = now;
    Ok(ready.into_iter().map(|(_, name)| name).collect())
}

/// How one file's run ended.
enum Outcome {
    /// The program exited with 0: its stdout is the result.
    Done(Bytes),
    /// The program failed: the reason, and what it printed on stderr.
    Failed(String),
    /// The program could not run now (the app did not load): leave the file and try again.
    Retry(String),
}

async fn take(watch: &Watch, context: &TriggerContext, name: &str) {
    let started = Instant::now();
    let prefix = context.log_prefix();
    let input = watch.path.join(name);
    let outcome = match read_input(&input) {
        Ok(bytes) => run(watch, context, name, bytes).await,
        Err(reason) => Outcome::Failed(reason),
    };
    let ms = started.elapsed().as_secs_f64() * 1000.0;
    let event = match outcome {
        Outcome::Done(output) => match finish(watch, name, &output, None) {
            Ok(()) => {
                tracing::info!(target: "kiln::directory", "{prefix}[{}] {name} → {} ({} bytes) ok {ms:.2}ms", watch.component, watch.output.join(name).display(), output.len());
                EventOutcome::Ok
            }
            Err(err) => {
                tracing::error!(target: "kiln::directory", "{prefix}[{}] {name}: {err:#}; the file stays in place", watch.component);
                EventOutcome::Failed
            }
        },
        Outcome::Failed(reason) => {
            tracing::warn!(target: "kiln::directory", "{prefix}[{}] {name}: {} ({ms:.2}ms)", watch.component, reason.lines().next().unwrap_or_default());
            if let Err(err) = finish(watch, name, reason.as_bytes(), Some(FAILED_DIR)) {
                tracing::error!(target: "kiln::directory", "{prefix}[{}] {name}: {err:#}; the file stays in place", watch.component);
            }
            EventOutcome::Failed
        }
        Outcome::Retry(reason) => {
            tracing::warn!(target: "kiln::directory", "{prefix}[{}] {name}: {reason}; the file stays in place and is taken again", watch.component);
            EventOutcome::Failed
        }
    };
    if let Some(observer) = &context.observer {
        observer.event("directory", &watch.component, event, started.elapsed());
    }
}

fn read_input(path: &Path) -> Result<Bytes, String> {
    let len = std::fs::metadata(path).map_err(|err| format!("cannot read it: {err}"))?.len();
    if len > MAX_INPUT {
        return Err(format!("the file has {len} bytes, over the directory trigger's limit of {MAX_INPUT}"));
    }
    std::fs::read(path).map(Bytes::from).map_err(|err| format!("cannot read it: {err}"))
}

/// One instance of the program for one file, on the app as its source has it now.
async fn run(watch: &Watch, context: &TriggerContext, name: &str, input: Bytes) -> Outcome {
    let app = match context.source.load().await {
        Ok(app) => app,
        Err(err) => return Outcome::Retry(format!("cannot load the app: {err:#}")),
    };
    let exports = match app.trigger_exports("directory", exports) {
        Ok(exports) => exports,
        Err(err) => return Outcome::Retry(format!("{err:#}")),
    };
    let Some(export) = exports.get(&watch.component) else {
        return Outcome::Retry(format!("the app's current version has no directory-bound component `{}`", watch.component));
    };
    let (stdout, stderr) = (MemoryOutputPipe::new(MAX_OUTPUT), MemoryOutputPipe::new(MAX_STDERR));
    let io = CommandIo {
        // No arguments: a program that takes a file argument reads stdin without one.
        args: vec![watch.component.clone()],
        env: vec![(FILE_NAME_VAR.to_string(), name.to_string())],
        stdio: CommandStdio::Captured { stdin: input, stdout: stdout.clone(), stderr: Some(stderr.clone()) },
    };
    let command = export.command.clone();
    let result = export
        .pre
        .run_command(context.limits.instance, export.outbound.hooks(), io, move |store| {
            Box::pin(async move { kiln_engine::run_to_exit(&command, store).await })
        })
        .await;
    let printed = String::from_utf8_lossy(&stderr.contents()).trim_end().to_string();
    let with_stderr = |reason: String| if printed.is_empty() { reason } else { format!("{reason}\n{printed}") };
    match result {
        Ok(0) => Outcome::Done(stdout.contents()),
        Ok(code) => Outcome::Failed(with_stderr(format!("the program exited with {code}"))),
        Err(failure) => Outcome::Failed(with_stderr(failure.to_string())),
    }
}

/// Writes `output` to the output directory (`<name>`, or `<name>.error` for a failure) whole, then
/// moves the input out of the watched directory (to `.done/` or `failed`). In that order: a crash
/// in between leaves the input, which is taken again.
fn finish(watch: &Watch, name: &str, output: &[u8], failed: Option<&str>) -> Result<()> {
    let result_name = if failed.is_some() { format!("{name}.error") } else { name.to_string() };
    write_whole(&watch.output, &result_name, output)?;
    let moved = watch.path.join(failed.unwrap_or(DONE_DIR));
    std::fs::create_dir_all(&moved).with_context(|| format!("cannot create `{}`", moved.display()))?;
    std::fs::rename(watch.path.join(name), moved.join(name)).with_context(|| format!("cannot move `{name}` to `{}`", moved.display()))?;
    if failed.is_none() {
        // A success replaces an earlier failure of a file of the same name.
        let _ = std::fs::remove_file(watch.output.join(format!("{name}.error")));
    }
    Ok(())
}

/// `dir/name` appears whole or not at all: written to a hidden temporary file, synced, renamed.
fn write_whole(dir: &Path, name: &str, bytes: &[u8]) -> Result<()> {
    use std::io::Write;
    std::fs::create_dir_all(dir).with_context(|| format!("cannot create the output directory `{}`", dir.display()))?;
    let temporary = dir.join(format!(".{name}.partial"));
    let mut file = std::fs::File::create(&temporary).with_context(|| format!("cannot write `{}`", temporary.display()))?;
    file.write_all(bytes).and_then(|()| file.sync_all()).with_context(|| format!("cannot write `{}`", temporary.display()))?;
    std::fs::rename(&temporary, dir.join(name)).with_context(|| format!("cannot write `{}`", dir.join(name).display()))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn watch(dir: &Path, pattern: Option<&str>) -> Watch {
        Watch {
            component: "c".into(),
            path: dir.join("in"),
            pattern: pattern.map(|p| glob::Pattern::new(p).unwrap()),
            output: dir.join("out"),
        }
    }

    #[test]
    fn a_file_is_ready_once_unchanged_for_a_poll() {
        let dir = tempfile::tempdir().unwrap();
        let w = watch(dir.path(), Some("*.csv"));
        let mut seen = BTreeMap::new();
        assert!(ready_files(&w, &mut seen).unwrap().is_empty(), "creates the directory");
        std::fs::write(w.path.join("a.csv"), "1,2\n").unwrap();
        std::fs::write(w.path.join("skip.txt"), "x").unwrap();
        std::fs::write(w.path.join(".hidden.csv"), "x").unwrap();
        assert!(ready_files(&w, &mut seen).unwrap().is_empty(), "seen once: not yet");
        assert_eq!(ready_files(&w, &mut seen).unwrap(), ["a.csv"]);
        std::fs::write(w.path.join("a.csv"), "1,2\n3,4\n").unwrap();
        assert!(ready_files(&w, &mut seen).unwrap().is_empty(), "changed: wait again");
    }

    #[test]
    fn results_replace_inputs_and_failures_are_kept() {
        let dir = tempfile::tempdir().unwrap();
        let w = watch(dir.path(), None);
        std::fs::create_dir_all(&w.path).unwrap();
        std::fs::write(w.path.join("a.csv"), "in").unwrap();
        finish(&w, "a.csv", b"reason", Some(FAILED_DIR)).unwrap();
        assert_eq!(std::fs::read(w.output.join("a.csv.error")).unwrap(), b"reason");
        assert_eq!(std::fs::read(w.path.join(".failed/a.csv")).unwrap(), b"in");
        std::fs::write(w.path.join("a.csv"), "in2").unwrap();
        finish(&w, "a.csv", b"out", None).unwrap();
        assert_eq!(std::fs::read(w.output.join("a.csv")).unwrap(), b"out");
        assert_eq!(std::fs::read(w.path.join(".done/a.csv")).unwrap(), b"in2");
        assert!(!w.output.join("a.csv.error").exists(), "a success clears the earlier failure");
        assert!(!w.path.join("a.csv").exists());
        let names: Vec<_> = std::fs::read_dir(&w.output).unwrap().map(|e| e.unwrap().file_name()).collect();
        assert_eq!(names, ["a.csv"], "no partial file left");
    }
}
