//! Unpacking an uploaded app: a gzip-compressed tar with the manifest at its root.
//!
//! Only regular files and directories with plain relative paths are accepted; absolute paths, `..`,
//! links and devices are refused with the entry's name, so an archive can never write outside the
//! directory it is unpacked into. The unpacked size is bounded too (a small archive can inflate
//! enormously).

use std::io::Read;
use std::path::{Component, Path, PathBuf};

/// What is wrong with an archive, in words for the uploader.
#[derive(Debug, thiserror::Error)]
pub enum ArchiveError {
    #[error("the archive is not a gzip-compressed tar: {0}")]
    NotAnArchive(String),
    #[error("archive entry `{entry}`: {problem}")]
    BadEntry { entry: String, problem: String },
    #[error("the archive unpacks to more than {limit} bytes")]
    TooLarge { limit: u64 },
    #[error("the archive has no manifest at its root: put `kiln.toml` or `spin.toml` at the top level (not in a subdirectory)")]
    NoManifest,
    #[error("cannot unpack the archive: {0}")]
    Io(#[from] std::io::Error),
}

/// Unpacks `archive` into `into` (which must exist and be empty), writing at most `max_unpacked`
/// bytes of file content.
pub fn unpack(archive: &[u8], into: &Path, max_unpacked: u64) -> Result<(), ArchiveError> {
    let mut tar = tar::Archive::new(flate2::read::GzDecoder::new(archive));
    let mut written = 0u64;
    let entries = tar.entries().map_err(|err| ArchiveError::NotAnArchive(err.to_string()))?;
    for entry in entries {
        let mut entry = entry.map_err(|err| ArchiveError::NotAnArchive(err.to_string()))?;
        let raw = entry.path_bytes().into_owned();
        let name = String::from_utf8_lossy(&raw).into_owned();
        let bad = |problem: &str| ArchiveError::BadEntry { entry: name.clone(), problem: problem.to_string() };
        let relative = safe_relative_path(&raw).map_err(&bad)?;
        let Some(relative) = relative else { continue }; // `./`
        let target = into.join(&relative);
        match entry.header().entry_type() {
            tar::EntryType::Directory => std::fs::create_dir_all(&target)?,
            tar::EntryType::Regular | tar::EntryType::Continuous => {
                written = written.saturating_add(entry.header().size().unwrap_or(0));
                if written > max_unpacked {
                    return Err(ArchiveError::TooLarge { limit: max_unpacked });
                }
                if let Some(parent) = target.parent() {
                    std::fs::create_dir_all(parent)?;
                }
                let mut content = Vec::new();
                (&mut entry).take(max_unpacked + 1).read_to_end(&mut content)?;
                std::fs::write(&target, content)?;
            }
            tar::EntryType::XGlobalHeader | tar::EntryType::XHeader | tar::EntryType::GNULongName => continue,
            other => return Err(bad(&format!("{other:?} entries are not allowed; only regular files and directories"))),
        }
    }
    Ok(())
}

/// The manifest at the root of an unpacked app: `kiln.toml`, else `spin.toml`.
pub fn manifest_in(dir: &Path) -> Result<PathBuf, ArchiveError> {
    ["kiln.toml", "spin.toml"].iter().map(|name| dir.join(name)).find(|path| path.is_file()).ok_or(ArchiveError::NoManifest)
}

/// `raw` as a path that stays inside the unpack directory, or why not. `Ok(None)`: the root itself.
fn safe_relative_path(raw: &[u8]) -> Result<Option<PathBuf>, &'static str> {
    let text = std::str::from_utf8(raw).map_err(|_| "the path is not UTF-8")?;
    let mut clean = PathBuf::new();
    for part in Path::new(text).components() {
        match part {
            Component::Normal(part) => clean.push(part),
            Component::CurDir => {}
            Component::ParentDir => return Err("`..` is not allowed in archive paths"),
            Component::RootDir | Component::Prefix(_) => return Err("absolute paths are not allowed; paths are relative to the manifest's directory"),
        }
    }
    Ok((!clean.as_os_str().is_empty()).then_some(clean))
}

#[cfg(test)]
#[path = "archive_fuzz.rs"]
mod fuzz;

#[cfg(test)]
pub(crate) mod tests {
    use super::*;

    /// Builds a tar.gz from `(path, content)` pairs; `None` content makes a directory.
    pub(crate) fn archive(entries: &[(&str, Option<&[u8]>)]) -> Vec<u8> {
        let mut builder = tar::Builder::new(flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::fast()));
        for (path, content) in entries {
            let mut header = tar::Header::new_gnu();
            match content {
                Some(bytes) => {
                    header.set_entry_type(tar::EntryType::Regular);
                    header.set_size(bytes.len() as u64);
                    header.set_mode(0o644);
                    // `append_data` would refuse `..`; write the name raw to test the unpacker.
                    set_raw_path(&mut header, path);
                    header.set_cksum();
                    builder.append(&header, *bytes).unwrap();
                }
                None => {
                    header.set_entry_type(tar::EntryType::Directory);
                    header.set_size(0);
                    header.set_mode(0o755);
                    set_raw_path(&mut header, path);
                    header.set_cksum();
                    builder.append(&header, std::io::empty()).unwrap();
                }
            }
        }
        builder.into_inner().unwrap().finish().unwrap()
    }

    fn set_raw_path(header: &mut tar::Header, path: &str) {
        let name = &mut header.as_old_mut().name;
        name[..path.len()].copy_from_slice(path.as_bytes());
    }

    #[test]
    fn unpacks_files_and_directories() {
        let dir = tempfile::tempdir().unwrap();
        let bytes = archive(&[("kiln.toml", Some(b"x")), ("static", None), ("static/a.txt", Some(b"hello")), ("./b/c.wasm", Some(b"\0asm"))]);
        unpack(&bytes, dir.path(), 1 << 20).unwrap();
        assert_eq!(std::fs::read(dir.path().join("static/a.txt")).unwrap(), b"hello");
        assert_eq!(std::fs::read(dir.path().join("b/c.wasm")).unwrap(), b"\0asm");
        assert_eq!(manifest_in(dir.path()).unwrap(), dir.path().join("kiln.toml"));
    }

    #[test]
    fn refuses_paths_that_escape() {
        for path in ["../evil", "a/../../evil", "/etc/evil"] {
            let dir = tempfile::tempdir().unwrap();
            let err = unpack(&archive(&[(path, Some(b"x"))]), dir.path(), 1 << 20).unwrap_err().to_string();
            assert!(err.contains(path) && (err.contains("..") || err.contains("absolute")), "{path}: {err}");
        }
    }

    #[test]
    fn refuses_links() {
        let mut builder = tar::Builder::new(flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::fast()));
        let mut header = tar::Header::new_gnu();
        header.set_entry_type(tar::EntryType::Symlink);
        header.set_size(0);
        builder.append_link(&mut header, "link", "/etc/passwd").unwrap();
        let bytes = builder.into_inner().unwrap().finish().unwrap();
        let dir = tempfile::tempdir().unwrap();
        let err = unpack(&bytes, dir.path(), 1 << 20).unwrap_err().to_string();
        assert!(err.contains("`link`") && err.contains("Symlink"), "{err}");
    }

    #[test]
    fn bounds_the_unpacked_size() {
        let dir = tempfile::tempdir().unwrap();
        let big = vec![0u8; 4096];
        let err = unpack(&archive(&[("a", Some(&big)), ("b", Some(&big))]), dir.path(), 6000).unwrap_err();
        assert!(matches!(err, ArchiveError::TooLarge { limit: 6000 }), "{err}");
    }

    #[test]
    fn garbage_is_not_an_archive() {
        let dir = tempfile::tempdir().unwrap();
        let err = unpack(b"definitely not gzip", dir.path(), 1 << 20).unwrap_err();
        assert!(matches!(err, ArchiveError::NotAnArchive(_)), "{err}");
    }

    #[test]
    fn a_manifest_must_be_at_the_root() {
        let dir = tempfile::tempdir().unwrap();
        unpack(&archive(&[("sub/spin.toml", Some(b"x"))]), dir.path(), 1 << 20).unwrap();
        assert!(matches!(manifest_in(dir.path()), Err(ArchiveError::NoManifest)));
    }
}
