//! `kiln watch`: builds the app, serves it as `kiln up` does, and when a file one of its components
//! watches changes (its `[component.<id>.build] watch` globs, or the manifest itself), rebuilds those
//! components and swaps the running app for the new version without refusing a request.
//!
//! The swap: the new version is started on a clone of the same listening socket while the old one
//! still serves, then the old one drains (its in-flight requests finish) and stops. A build or load
//! that fails is printed and the old version keeps serving.
//!
//! Changes are found by polling modification times (twice a second), not by file-system events:
//! editors that save by replacing a file, and builds that write in bursts, are seen the same way,
//! and a change counts only once the files have been quiet for a poll ([`QUIET`]).

use crate::build::{jobs, run_jobs};
use crate::up::{UpArgs, print_banner, settings};
use anyhow::{Context, Result, bail};
use kiln_host::{Host, ShutdownSignal};
use kiln_manifest::Manifest;
use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant, SystemTime};

/// How often the watched files are looked at.
const POLL: Duration = Duration::from_millis(500);
/// How long the files must stay unchanged before a rebuild starts (edits and builds come in bursts).
const QUIET: Duration = Duration::from_millis(300);

#[derive(clap::Args)]
pub(crate) struct WatchArgs {
    #[command(flatten)]
    up: UpArgs,
}

/// What a file looked like at the last poll.
type Stamp = (Option<SystemTime>, u64);

/// The files each component watches (`None`: the manifest itself), and their stamps.
#[derive(PartialEq)]
struct Snapshot(BTreeMap<PathBuf, (Option<String>, Stamp)>);

pub(crate) fn run(args: WatchArgs) -> Result<()> {
    let args = args.up;
    crate::init_logging(args.quiet, args.json_logs);
    if args.file.as_deref().is_some_and(crate::registry::is_reference) {
        bail!("kiln watch serves an app from its source directory, not a registry reference; use `kiln up --from` for that");
    }
    let path = kiln_manifest::find_manifest(args.file.as_deref().map(Path::new))?;
    let mut shutdown = ShutdownSignal::install()?;
    let listener = kiln_trigger_http::bind(args.listen)?;
    let mut manifest = Manifest::load(&path)?;
    let mut seen = snapshot(&path, &manifest);
    let mut host = match build_and_start(&args, &path, None, &listener) {
        Ok(host) => Some(host),
        Err(err) => {
            report_failure(&err);
            None
        }
    };
    let mut draining = Vec::new();
    while !shutdown.received_within(POLL) {
        let Some(changed) = settled_change(&path, &mut manifest, &mut seen, &mut shutdown) else { continue };
        let started = Instant::now();
        match build_and_start(&args, &path, changed.as_deref(), &listener) {
            Ok(new) => {
                if let Some(old) = host.replace(new) {
                    // The old version drains beside the new one: its requests finish, new ones
                    // reach the new version.
                    draining.push(std::thread::spawn(move || old.shutdown()));
                }
                tracing::info!("reloaded in {:.1} s", started.elapsed().as_secs_f64());
            }
            Err(err) => {
                report_failure(&err);
                if host.is_some() {
                    tracing::warn!("the previous version keeps serving");
                }
            }
        }
        draining.retain(|thread| !thread.is_finished());
    }
    if let Some(host) = host {
        host.shutdown();
    }
    for thread in draining {
        let _ = thread.join();
    }
    Ok(())
}

/// Builds `components` (all of them when `None`), then loads the manifest anew and starts the app on
/// a clone of `listener`.
fn build_and_start(args: &UpArgs, path: &Path, components: Option<&[String]>, listener: &std::net::TcpListener) -> Result<Host> {
    let mut manifest = Manifest::load(path)?;
    run_jobs(jobs(&manifest, components))?;
    crate::registry::resolve_sources(&mut manifest, args.insecure, args.cache_dir.as_deref())?;
    let started = Instant::now();
    let listener = listener.try_clone().context("cannot share the listening socket with the new version")?;
    let prepared = kiln_host::prepare_on(manifest, settings(args), listener)?;
    let host = prepared.start(|options| {
        for statements in &args.sqlite {
            kiln_cap_sqlite::run_statements(&options.state_dir, &options.runtime_config, statements)?;
        }
        Ok(())
    })?;
    print_banner(&host, started);
    Ok(host)
}

fn report_failure(err: &anyhow::Error) {
    crate::report(err);
    tracing::warn!("waiting for a change to try again");
}

/// The components to rebuild, once a change has settled: `Some(ids)`, or `Some(None)` when the
/// manifest changed (everything is rebuilt). `None`: nothing changed, or a signal arrived.
fn settled_change(path: &Path, manifest: &mut Manifest, seen: &mut Snapshot, shutdown: &mut ShutdownSignal) -> Option<Option<Vec<String>>> {
    let mut now = snapshot(path, manifest);
    if now == *seen {
        return None;
    }
    // Wait for the burst to end: the same snapshot twice, QUIET apart.
    loop {
        if shutdown.received_within(QUIET) {
            return None;
        }
        let later = snapshot(path, manifest);
        if later == now {
            break;
        }
        now = later;
    }
    let changed = changed_components(seen, &now);
    *seen = now;
    if changed.contains(&None) {
        match Manifest::load(path) {
            Ok(reloaded) => *manifest = reloaded,
            Err(err) => {
                crate::report(&err.into());
                return None;
            }
        }
        *seen = snapshot(path, manifest);
        tracing::info!("{} changed: rebuilding every component", path.display());
        return Some(None);
    }
    let ids: Vec<String> = changed.into_iter().flatten().collect();
    tracing::info!("changed: rebuilding {}", ids.join(", "));
    Some(Some(ids))
}

/// Who watches each file that was added, removed or modified between `before` and `after`.
fn changed_components(before: &Snapshot, after: &Snapshot) -> Vec<Option<String>> {
    let mut changed = Vec::new();
    let mut note = |owner: &Option<String>| {
        if !changed.contains(owner) {
            changed.push(owner.clone());
        }
    };
    for (file, (owner, stamp)) in &after.0 {
        if before.0.get(file).map(|(_, old)| old) != Some(stamp) {
            note(owner);
        }
    }
    for (file, (owner, _)) in &before.0 {
        if !after.0.contains_key(file) {
            note(owner);
        }
    }
    changed
}

/// The manifest and every file matching a component's `watch` globs (relative to its `workdir`),
/// with their modification times and sizes.
fn snapshot(path: &Path, manifest: &Manifest) -> Snapshot {
    let mut files = BTreeMap::new();
    files.insert(path.to_path_buf(), (None, stamp(path)));
    for (id, component) in &manifest.components {
        let Some(build) = &component.build else { continue };
        for pattern in &build.watch {
            let full = build.workdir.join(pattern);
            let Ok(paths) = glob::glob(&full.to_string_lossy()) else {
                continue;
            };
            for file in paths.flatten() {
                files.entry(file.clone()).or_insert_with(|| (Some(id.clone()), stamp(&file)));
            }
        }
    }
    Snapshot(files)
}

fn stamp(path: &Path) -> Stamp {
    match std::fs::metadata(path) {
        Ok(meta) => (meta.modified().ok(), meta.len()),
        Err(_) => (None, 0),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn snap(entries: &[(&str, Option<&str>, u64)]) -> Snapshot {
        Snapshot(entries.iter().map(|(file, owner, len)| (PathBuf::from(file), (owner.map(str::to_string), (None, *len)))).collect())
    }

    #[test]
    fn changes_name_the_components_that_watch_the_files() {
        let before = snap(&[("spin.toml", None, 1), ("a/src/lib.rs", Some("a"), 10), ("b/src/lib.rs", Some("b"), 10), ("b/old.rs", Some("b"), 1)]);
        let edited = snap(&[("spin.toml", None, 1), ("a/src/lib.rs", Some("a"), 11), ("b/src/lib.rs", Some("b"), 10), ("b/old.rs", Some("b"), 1)]);
        assert_eq!(changed_components(&before, &edited), [Some("a".to_string())]);
        let removed = snap(&[("spin.toml", None, 1), ("a/src/lib.rs", Some("a"), 10), ("b/src/lib.rs", Some("b"), 10)]);
        assert_eq!(changed_components(&before, &removed), [Some("b".to_string())]);
        let manifest = snap(&[("spin.toml", None, 2), ("a/src/lib.rs", Some("a"), 10), ("b/src/lib.rs", Some("b"), 10), ("b/old.rs", Some("b"), 1)]);
        assert_eq!(changed_components(&before, &manifest), [None]);
        assert!(changed_components(&before, &before).is_empty());
    }

    #[test]
    fn snapshots_see_the_manifest_and_the_watched_files() {
        let dir = tempfile::tempdir().unwrap();
        std::fs::create_dir_all(dir.path().join("src")).unwrap();
        std::fs::write(dir.path().join("src/lib.rs"), "fn main() {}").unwrap();
        std::fs::write(dir.path().join("notes.txt"), "not watched").unwrap();
        let toml = "spin_manifest_version = 2\n[application]\nname = \"w\"\n[[trigger.http]]\nroute = \"/\"\ncomponent = \"c\"\n\
                    [component.c]\nsource = \"c.wasm\"\n[component.c.build]\ncommand = \"true\"\nwatch = [\"src/**/*.rs\"]\n";
        let path = dir.path().join("spin.toml");
        std::fs::write(&path, toml).unwrap();
        let manifest = Manifest::load(&path).unwrap();
        let files: Vec<_> = snapshot(&path, &manifest).0.into_iter().map(|(file, (owner, _))| (file.strip_prefix(dir.path()).unwrap().to_path_buf(), owner)).collect();
        assert_eq!(files, [(PathBuf::from("spin.toml"), None), (PathBuf::from("src/lib.rs"), Some("c".to_string()))]);
    }
}
