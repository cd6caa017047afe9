//! `files`: what a component may read, mounted read-only.
//!
//! A `{ source = "dir", destination = "/x" }` entry is mounted as it is. Glob entries (and single
//! files) are staged into `<state dir>/files/<component>/` — hard links where the filesystem allows,
//! copies otherwise — and that directory is mounted at `/`. Either way the guest sees only what the
//! manifest granted: wasmtime-wasi resolves every path inside its mount and refuses `..` or symlinks
//! that would leave it.

use anyhow::{Context, Result, bail};
use kiln_manifest::{Component, FileMount, Manifest};
use std::path::{Path, PathBuf};

/// Returns the (host directory, guest path) pairs to mount for `component`.
pub fn stage(manifest: &Manifest, component: &Component, files_dir: &Path) -> Result<Vec<(PathBuf, String)>> {
    if component.files.is_empty() {
        return Ok(Vec::new());
    }
    let staging = files_dir.join(&component.id);
    if staging.exists() {
        std::fs::remove_dir_all(&staging).with_context(|| format!("failed to clear {}", staging.display()))?;
    }
    let excluded = exclude_patterns(component)?;
    let mut mounts = Vec::new();
    let mut staged_any = false;
    for mount in &component.files {
        match mount {
            FileMount::Glob { pattern } => {
                for file in glob_files(&manifest.dir, pattern)? {
                    let relative = file.strip_prefix(&manifest.dir).unwrap_or(&file).to_path_buf();
                    if excluded.iter().any(|p| p.matches_path(&relative)) {
                        continue;
                    }
                    link_or_copy(&file, &staging.join(&relative))?;
                    staged_any = true;
                }
            }
            FileMount::Directory { source, destination } if source.is_dir() => {
                mounts.push((source.clone(), destination.clone()));
            }
            FileMount::Directory { source, destination } if source.is_file() => {
                link_or_copy(source, &staging.join(destination.trim_start_matches('/')))?;
                staged_any = true;
            }
            FileMount::Directory { source, .. } => {
                bail!("component `{}`: files source `{}` does not exist", component.id, source.display());
            }
        }
    }
    if staged_any {
        mounts.insert(0, (staging, "/".to_string()));
    }
    Ok(mounts)
}

fn exclude_patterns(component: &Component) -> Result<Vec<glob::Pattern>> {
    component
        .exclude_files
        .iter()
        .map(|p| glob::Pattern::new(p).with_context(|| format!("component `{}`: invalid exclude_files pattern `{p}`", component.id)))
        .collect()
}

fn glob_files(base: &Path, pattern: &str) -> Result<Vec<PathBuf>> {
    let full = base.join(pattern);
    let full = full.to_str().with_context(|| format!("files pattern `{pattern}` is not valid UTF-8"))?;
    let mut files = Vec::new();
    for entry in glob::glob(full).with_context(|| format!("invalid files pattern `{pattern}`"))? {
        let path = entry.with_context(|| format!("cannot read a match of files pattern `{pattern}`"))?;
        // Only regular files are staged; symlinks are not followed out of the app directory.
        let meta = std::fs::symlink_metadata(&path)?;
        if meta.is_file() {
            files.push(path);
        }
    }
    Ok(files)
}

fn link_or_copy(from: &Path, to: &Path) -> Result<()> {
    if let Some(parent) = to.parent() {
        std::fs::create_dir_all(parent).with_context(|| format!("failed to create {}", parent.display()))?;
    }
    if std::fs::hard_link(from, to).is_err() {
        std::fs::copy(from, to).with_context(|| format!("failed to copy {} to {}", from.display(), to.display()))?;
    }
    Ok(())
}
