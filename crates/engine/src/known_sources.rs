//! The content digests of component files the compile cache has already seen, remembered by the
//! file's identity, so a warm start finds its artifact without reading and hashing the component.
//!
//! An interpreter's component is tens of megabytes (the Python template's is 19 MB): reading it
//! and taking its SHA-256 was a third of a warm start. The identity is what `git` and `ccache`
//! trust for the same purpose: the file's path, device, inode, size, and its modification and
//! change times in nanoseconds. Any write to the file changes its change time (which, unlike the
//! modification time, no program can set back), so a changed file is never taken for a known one.
//!
//! One rule keeps that true on filesystems with coarse timestamps: a file changed in the last
//! [`SETTLING`] is not remembered, since a second write within the same timestamp tick would leave
//! its identity unchanged. Such a file (one `kiln watch` just rebuilt, say) is read and hashed
//! as before, and remembered at a later start.

use sha2::{Digest, Sha256};
use std::os::unix::fs::MetadataExt;
use std::path::{Path, PathBuf};
use std::time::{Duration, SystemTime};

/// How long a file must have been left alone before its identity is trusted.
const SETTLING: Duration = Duration::from_secs(2);

/// A component file as found on disk: where, and which version of it.
pub(crate) struct SourceFile {
    /// The file name of its entry in the cache: a digest of its path and identity.
    entry: String,
    /// When it was last changed (the later of its modification and change times).
    changed: SystemTime,
}

impl SourceFile {
    /// The file at `path` as it is now; `None` when it cannot be inspected (it is then simply
    /// read, and any error reported from there).
    pub(crate) fn stat(path: &Path) -> Option<SourceFile> {
        let path = std::fs::canonicalize(path).ok()?;
        let meta = std::fs::metadata(&path).ok()?;
        let nanos = |seconds: i64, nanos: i64| i128::from(seconds) * 1_000_000_000 + i128::from(nanos);
        let (modified, changed) = (nanos(meta.mtime(), meta.mtime_nsec()), nanos(meta.ctime(), meta.ctime_nsec()));
        let mut identity = Sha256::new();
        identity.update(path.as_os_str().as_encoded_bytes());
        for field in [i128::from(meta.dev()), i128::from(meta.ino()), i128::from(meta.size()), modified, changed] {
            identity.update(field.to_le_bytes());
        }
        let latest = u64::try_from(modified.max(changed)).unwrap_or(0);
        Some(SourceFile {
            entry: hex::encode(identity.finalize()),
            changed: SystemTime::UNIX_EPOCH + Duration::from_nanos(latest),
        })
    }

    /// The content digest remembered for this version of the file, if any.
    pub(crate) fn remembered(&self, cache_dir: &Path) -> Option<String> {
        let digest = std::fs::read_to_string(entry_path(cache_dir, &self.entry)).ok()?;
        let digest = digest.trim();
        (digest.len() == 64 && digest.bytes().all(|b| b.is_ascii_hexdigit())).then(|| digest.to_string())
    }

    /// Remembers `digest` as this version's content, unless the file changed too recently to be
    /// told apart from its next version. Failing to remember only costs a later start a read.
    pub(crate) fn remember(&self, cache_dir: &Path, digest: &str) {
        self.remember_as_of(cache_dir, digest, SystemTime::now());
    }

    /// [`SourceFile::remember`] with the clock reading `now`.
    pub(crate) fn remember_as_of(&self, cache_dir: &Path, digest: &str, now: SystemTime) {
        let settled = now.duration_since(self.changed).is_ok_and(|age| age >= SETTLING);
        if !settled {
            return;
        }
        let dir = entries_dir(cache_dir);
        let written = std::fs::create_dir_all(&dir)
            .map_err(anyhow::Error::from)
            .and_then(|()| crate::cache::write_whole(&dir, &dir.join(&self.entry), digest.as_bytes()));
        if let Err(err) = written {
            tracing::debug!("could not remember a component's digest in {}: {err:#}", dir.display());
        }
    }
}

fn entries_dir(cache_dir: &Path) -> PathBuf {
    cache_dir.join("sources")
}

fn entry_path(cache_dir: &Path, entry: &str) -> PathBuf {
    entries_dir(cache_dir).join(entry)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_settled_file_is_remembered_until_it_changes() {
        let cache = tempfile::tempdir().unwrap();
        let source = tempfile::tempdir().unwrap();
        let path = source.path().join("app.wasm");
        std::fs::write(&path, b"one").unwrap();
        let fresh = SourceFile::stat(&path).unwrap();
        fresh.remember(cache.path(), &"a".repeat(64));
        assert_eq!(fresh.remembered(cache.path()), None, "a file changed just now is not trusted");

        fresh.remember_as_of(cache.path(), &"a".repeat(64), SystemTime::now() + SETTLING);
        assert_eq!(SourceFile::stat(&path).unwrap().remembered(cache.path()), Some("a".repeat(64)));

        std::fs::write(&path, b"two").unwrap();
        assert_eq!(SourceFile::stat(&path).unwrap().remembered(cache.path()), None, "a rewritten file is new");
    }

    #[test]
    fn a_damaged_entry_is_not_believed() {
        let cache = tempfile::tempdir().unwrap();
        let source = tempfile::NamedTempFile::new().unwrap();
        let file = SourceFile::stat(source.path()).unwrap();
        std::fs::create_dir_all(cache.path().join("sources")).unwrap();
        std::fs::write(entry_path(cache.path(), &file.entry), "not a digest").unwrap();
        assert_eq!(file.remembered(cache.path()), None);
    }
}
