//! The host's data directory: what `kiln serve` keeps across restarts.
//!
//! ```text
//! <data-dir>/
//!   admin-token            the admin API's bearer token (mode 0600)
//!   blobs/<sha256>.wasm    components, content-addressed, shared by every app that uses them
//!   cache/                 precompiled artifacts (`<sha256>-<engine>.cwasm`, each with its `.crc32`), mmapped on load
//!   apps/<name>/app.json   the app's record: current version, limits, route prefix
//!   apps/<name>/v<N>/      version N as uploaded (manifest, files; sources hard-linked to blobs/)
//!   apps/<name>/state/     key-value stores and SQLite databases, kept across versions
//! ```
//!
//! Every change is made in a staging directory or temporary file and renamed into place, so a
//! crash leaves either the old state or the new, never a torn one.

use anyhow::{Context, Result};
use sha2::{Digest, Sha256};
use std::io::Write;
use std::path::{Path, PathBuf};

#[derive(Clone, Debug)]
pub struct DataDir {
    root: PathBuf,
}

impl DataDir {
    /// Opens (creating if needed) the data directory at `root`.
    pub fn open(root: &Path) -> Result<DataDir> {
        for dir in ["apps", "blobs", "cache"] {
            let path = root.join(dir);
            std::fs::create_dir_all(&path).with_context(|| format!("cannot create the data directory `{}`", path.display()))?;
        }
        let root = root.canonicalize().with_context(|| format!("cannot open the data directory `{}`", root.display()))?;
        Ok(DataDir { root })
    }

    pub fn root(&self) -> &Path {
        &self.root
    }

    pub fn token_path(&self) -> PathBuf {
        self.root.join("admin-token")
    }

    pub fn cache_dir(&self) -> PathBuf {
        self.root.join("cache")
    }

    pub fn apps_dir(&self) -> PathBuf {
        self.root.join("apps")
    }

    pub fn app_dir(&self, name: &str) -> PathBuf {
        self.apps_dir().join(name)
    }

    pub fn version_dir(&self, name: &str, version: u64) -> PathBuf {
        self.app_dir(name).join(format!("v{version}"))
    }

    pub fn state_dir(&self, name: &str) -> PathBuf {
        self.app_dir(name).join("state")
    }

    /// Replaces the file at `path` with a hard link to its content-addressed copy in `blobs/`,
    /// creating that copy if this content was never seen, and returns the content's SHA-256. A
    /// thousand apps deploying the same component then hold one file (and the compile cache one
    /// artifact).
    pub fn share_blob(&self, path: &Path) -> Result<String> {
        let bytes = std::fs::read(path).with_context(|| format!("cannot read `{}`", path.display()))?;
        let digest = hex::encode(Sha256::digest(&bytes));
        let blob = self.root.join("blobs").join(format!("{digest}.wasm"));
        if !blob.exists() {
            write_atomically(&blob, &bytes)?;
        }
        let link = path.with_extension("kiln-link");
        std::fs::hard_link(&blob, &link).with_context(|| format!("cannot link `{}`", blob.display()))?;
        std::fs::rename(&link, path).with_context(|| format!("cannot replace `{}`", path.display()))?;
        Ok(digest)
    }
}

/// Writes `bytes` to `path` through a temporary file in the same directory, synced before the
/// rename, so readers see the old file or the new one.
pub(crate) fn write_atomically(path: &Path, bytes: &[u8]) -> Result<()> {
    let dir = path.parent().context("a file path has a parent directory")?;
    let tmp = dir.join(format!(".tmp-{}", random_hex(8)));
    let result = (|| {
        let mut file = std::fs::File::create(&tmp)?;
        file.write_all(bytes)?;
        file.sync_all()?;
        std::fs::rename(&tmp, path)
    })();
    if result.is_err() {
        let _ = std::fs::remove_file(&tmp);
    }
    result.with_context(|| format!("cannot write `{}`", path.display()))?;
    sync_dir(dir);
    Ok(())
}

/// Makes a rename in `dir` durable. Best effort: not every filesystem supports syncing a directory.
pub(crate) fn sync_dir(dir: &Path) {
    if let Ok(dir) = std::fs::File::open(dir) {
        let _ = dir.sync_all();
    }
}

/// `bytes` random bytes from the OS, hex-encoded.
pub(crate) fn random_hex(bytes: usize) -> String {
    let mut buf = vec![0u8; bytes];
    // The OS random source only fails on systems Kiln does not run on; a zeroed suffix would still
    // be unique enough for temporary names, and the token path checks its own result.
    let _ = getrandom::getrandom(&mut buf);
    hex::encode(buf)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn same_content_is_stored_once() {
        let dir = tempfile::tempdir().unwrap();
        let data = DataDir::open(&dir.path().join("data")).unwrap();
        let (a, b) = (dir.path().join("a.wasm"), dir.path().join("b.wasm"));
        std::fs::write(&a, b"\0asm same").unwrap();
        std::fs::write(&b, b"\0asm same").unwrap();
        let digest_a = data.share_blob(&a).unwrap();
        let digest_b = data.share_blob(&b).unwrap();
        assert_eq!(digest_a, digest_b);
        assert_eq!(std::fs::read_dir(data.root().join("blobs")).unwrap().count(), 1);
        use std::os::unix::fs::MetadataExt;
        assert_eq!(std::fs::metadata(&a).unwrap().ino(), std::fs::metadata(&b).unwrap().ino());
        assert_eq!(std::fs::read(&b).unwrap(), b"\0asm same");
    }

    #[test]
    fn atomic_write_replaces_the_file() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("app.json");
        write_atomically(&path, b"one").unwrap();
        write_atomically(&path, b"two").unwrap();
        assert_eq!(std::fs::read(&path).unwrap(), b"two");
        assert_eq!(std::fs::read_dir(dir.path()).unwrap().count(), 1, "no temporary file left behind");
    }
}
