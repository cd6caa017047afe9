//! The app archive `kiln deploy` uploads: a gzip-compressed tar holding the manifest, every local
//! component `source` and every file the `files` entries select, each at its path relative to the
//! manifest's directory — so the host finds everything where `kiln up` would.
//!
//! The archive is deterministic (sorted entries, modification time 0, owner 0, modes 0644 and 0755):
//! packing the same app twice gives the same bytes, whatever the clock or the user.
//!
//! What is selected mirrors `kiln up`'s staging (`kiln_app`'s `files.rs`): glob entries select
//! regular files, minus the component's `exclude_files`; a `{ source, destination }` entry selects
//! its file, or its directory and everything below it. Symbolic links are left out (the host accepts
//! only regular files and directories); a skipped link is reported as a warning. So is `.kiln/`
//! beside the manifest, `kiln up`'s local state (staged files, databases), which a broad glob like
//! `**/*` would otherwise upload.

use anyhow::{Context, Result, anyhow, bail};
use flate2::{Compression, GzBuilder};
use kiln_manifest::{Component, ComponentSource, DependencySource, FileMount, Manifest};
use std::collections::BTreeMap;
use std::path::{Component as PathPart, Path, PathBuf};

/// A packed app.
#[derive(Debug)]
pub(crate) struct Archive {
    /// The gzip-compressed tar.
    pub(crate) bytes: Vec<u8>,
    /// How many regular files it holds (the manifest included).
    pub(crate) files: usize,
    /// Things left out that the user may have expected in (symbolic links, globs matching nothing).
    pub(crate) warnings: Vec<String>,
}

/// Archive path (relative, `/`-separated) → what is stored there. Sorted, so the archive is too,
/// and every directory comes before its contents.
type Contents = BTreeMap<String, Entry>;

#[derive(Debug, Clone, PartialEq, Eq)]
enum Entry {
    Directory,
    /// A regular file, read from this host path.
    File(PathBuf),
    /// A regular file made here (the manifest, when sources were moved).
    Bytes(Vec<u8>),
}

/// Where sources from outside the application directory go in the archive (the manifest's `source`
/// is rewritten to match). Apps commonly build into a shared `../target/`.
const MOVED_SOURCES_DIR: &str = "kiln-sources";

/// Selects and packs everything `manifest`'s app needs.
/// Packs the app; `runtime_config` (a file) goes in as `runtime-config.toml` at the archive root.
pub(crate) fn pack(manifest: &Manifest, runtime_config: Option<&Path>) -> Result<Archive> {
    let mut selection = Selection::default();
    selection.add_manifest(manifest)?;
    if let Some(path) = runtime_config {
        if !path.is_file() {
            anyhow::bail!("--runtime-config-file `{}` does not exist", path.display());
        }
        selection.add_file("runtime-config.toml".to_string(), path.to_path_buf());
    }
    for component in manifest.components.values() {
        selection.add_source(manifest, component)?;
        selection.add_dependencies(manifest, component)?;
        selection.add_files(manifest, component)?;
    }
    selection.rewrite_moved_sources(manifest)?;
    let files = selection.contents.values().filter(|entry| !matches!(entry, Entry::Directory)).count();
    let bytes = write_tar_gz(&selection.contents)?;
    Ok(Archive { bytes, files, warnings: selection.warnings })
}

/// `kiln up`'s default state directory, beside the manifest: never uploaded.
const LOCAL_STATE_DIR: &str = ".kiln";

/// What has been selected so far.
#[derive(Default)]
struct Selection {
    contents: Contents,
    warnings: Vec<String>,
    /// Whether something under [`LOCAL_STATE_DIR`] was left out (warned about once).
    left_out_state: bool,
    /// `(component id, archive path)` of sources from outside the application directory.
    moved_sources: Vec<(String, String)>,
}

impl Selection {
    /// The manifest, at the archive root under its own name (`kiln.toml` or `spin.toml`).
    fn add_manifest(&mut self, manifest: &Manifest) -> Result<()> {
        let name = manifest.path.file_name().and_then(|name| name.to_str());
        let name = name.with_context(|| format!("the manifest's file name {} is not valid UTF-8; rename it kiln.toml", manifest.path.display()))?;
        self.add_file(name.to_string(), manifest.path.clone());
        Ok(())
    }

    /// A component's local `.wasm`; remote and registry sources cannot be uploaded.
    fn add_source(&mut self, manifest: &Manifest, component: &Component) -> Result<()> {
        let id = &component.id;
        let path = match &component.source {
            ComponentSource::Local(path) => path,
            ComponentSource::Remote { url, .. } => bail!(
                "component `{id}`: `source` is a URL ({url}); kiln deploy uploads only local files\n\
                 help: download the .wasm (and check its digest) into the application directory, and set `source` to that file"
            ),
            ComponentSource::Registry { package, version, .. } => bail!(
                "component `{id}`: `source` is the registry package {package}@{version}; kiln deploy uploads only local files\n\
                 help: fetch the .wasm into the application directory, and set `source` to that file"
            ),
        };
        // The manifest named this file itself, so a symbolic link is read through, as `kiln up` does.
        match relative_inside(&manifest.dir, path) {
            Some(relative) => self.add_file(relative, path.clone()),
            None => {
                let moved = format!("{MOVED_SOURCES_DIR}/{id}.wasm");
                self.moved_sources.push((id.clone(), moved.clone()));
                self.add_file(moved, path.clone());
            }
        }
        Ok(())
    }

    /// A component's `{ path }` dependencies, at their place in the application directory (the
    /// manifest names them there); `{ component }` ones are the app's components, packed already.
    fn add_dependencies(&mut self, manifest: &Manifest, component: &Component) -> Result<()> {
        for dependency in &component.dependencies {
            let DependencySource::Local(path) = &dependency.source else { continue };
            let Some(relative) = relative_inside(&manifest.dir, path) else {
                bail!(
                    "component `{}`: dependency `{}` is {}, outside the application directory; kiln deploy uploads dependencies \
                     given by a `path` inside it, or by `{{ component = \"…\" }}`\n\
                     help: put the dependency's .wasm below the manifest's directory and point `path` at it",
                    component.id,
                    dependency.name,
                    path.display()
                )
            };
            self.add_file(relative, path.clone());
        }
        Ok(())
    }

    /// Points the uploaded manifest's `source` at the moved files, keeping everything else of the
    /// file as written (comments, order), so the host's errors still point at the user's lines.
    fn rewrite_moved_sources(&mut self, manifest: &Manifest) -> Result<()> {
        if self.moved_sources.is_empty() {
            return Ok(());
        }
        let text = std::fs::read_to_string(&manifest.path).with_context(|| format!("cannot read {}", manifest.path.display()))?;
        let mut document: toml_edit::DocumentMut = text.parse().with_context(|| format!("cannot parse {}", manifest.path.display()))?;
        for (id, moved) in &self.moved_sources {
            let component = document
                .get_mut("component")
                .and_then(|components| components.get_mut(id.as_str()))
                .with_context(|| format!("component `{id}` not found in {}", manifest.path.display()))?;
            // `source` is a string, or a table `{ url, digest }` (remote), which never gets here.
            component["source"] = toml_edit::value(moved.as_str());
        }
        let name = manifest.path.file_name().and_then(|name| name.to_str()).unwrap_or("kiln.toml").to_string();
        self.contents.insert(name, Entry::Bytes(document.to_string().into_bytes()));
        Ok(())
    }

    /// Everything the component's `files` entries select.
    fn add_files(&mut self, manifest: &Manifest, component: &Component) -> Result<()> {
        let excluded = exclude_patterns(component)?;
        for mount in &component.files {
            match mount {
                FileMount::Glob { pattern } => self.add_glob(manifest, component, pattern, &excluded)?,
                FileMount::Directory { source, .. } => self.add_mapped(manifest, component, source)?,
            }
        }
        Ok(())
    }

    /// The regular files `pattern` matches, minus the excluded ones.
    fn add_glob(&mut self, manifest: &Manifest, component: &Component, pattern: &str, excluded: &[glob::Pattern]) -> Result<()> {
        let id = &component.id;
        let full = manifest.dir.join(pattern);
        let full = full.to_str().with_context(|| format!("component `{id}`: files pattern `{pattern}` is not valid UTF-8"))?;
        let matches = glob::glob(full).with_context(|| format!("component `{id}`: invalid files pattern `{pattern}`"))?;
        let mut matched_any = false;
        for entry in matches {
            let path = entry.with_context(|| format!("component `{id}`: cannot read a match of files pattern `{pattern}`"))?;
            let relative = self.relative_in_files(manifest, component, &path)?;
            if excluded.iter().any(|exclude| exclude.matches_path(Path::new(&relative))) || self.is_local_state(&relative) {
                continue;
            }
            let meta = std::fs::symlink_metadata(&path).with_context(|| format!("cannot read {}", path.display()))?;
            if meta.file_type().is_symlink() {
                self.skip_link(component, &relative);
            } else if meta.is_file() {
                matched_any = true;
                self.add_file(relative, path);
            }
        }
        if !matched_any {
            self.warnings.push(format!("component `{id}`: files pattern `{pattern}` selects no file"));
        }
        Ok(())
    }

    /// A `{ source, destination }` entry: its file, or its directory with everything below it.
    fn add_mapped(&mut self, manifest: &Manifest, component: &Component, source: &Path) -> Result<()> {
        // `source = "."` maps the application directory itself: its archive path is the root, "".
        let relative = if source == manifest.dir { String::new() } else { self.relative_in_files(manifest, component, source)? };
        let meta = std::fs::symlink_metadata(source).map_err(|_| {
            anyhow!(
                "component `{}`: files source `{relative}` does not exist\nhelp: create it, or fix the `files` entry of [component.{}]",
                component.id,
                component.id
            )
        })?;
        if meta.is_dir() {
            self.add_directory(component, source, relative)
        } else if meta.is_file() {
            self.add_file(relative, source.to_path_buf());
            Ok(())
        } else {
            bail!(
                "component `{}`: files source `{relative}` is not a regular file or directory (a symbolic link?)\n\
                 help: the archive holds only regular files and directories; point the `files` entry at the real directory",
                component.id
            )
        }
    }

    /// `dir` (stored at `relative`, "" for the root) and, recursively, its regular files and
    /// directories.
    fn add_directory(&mut self, component: &Component, dir: &Path, relative: String) -> Result<()> {
        let read = std::fs::read_dir(dir).with_context(|| format!("cannot list {}", dir.display()))?;
        if !relative.is_empty() {
            self.add_dir_and_parents(&relative);
        }
        for child in read {
            let child = child.with_context(|| format!("cannot list {}", dir.display()))?;
            let Some(name) = child.file_name().to_str().map(str::to_string) else {
                bail!("{}: the file name is not valid UTF-8; rename it", child.path().display());
            };
            let child_relative = if relative.is_empty() { name } else { format!("{relative}/{name}") };
            if self.is_local_state(&child_relative) {
                continue;
            }
            let kind = child.file_type().with_context(|| format!("cannot read {}", child.path().display()))?;
            if kind.is_symlink() {
                self.skip_link(component, &child_relative);
            } else if kind.is_dir() {
                self.add_directory(component, &child.path(), child_relative)?;
            } else if kind.is_file() {
                self.add_file(child_relative, child.path());
            }
        }
        Ok(())
    }

    /// The archive path of `path`, a file a `files` entry selected (the manifest already keeps
    /// these inside the application directory; this is the check that it stayed so).
    fn relative_in_files(&self, manifest: &Manifest, component: &Component, path: &Path) -> Result<String> {
        relative_inside(&manifest.dir, path).ok_or_else(|| {
            anyhow!(
                "component `{}`: files entry selects {}, which is outside the application directory {} (or not valid UTF-8)\n\
                 help: move it below the manifest's directory and fix the `files` entry",
                component.id,
                path.display(),
                manifest.dir.display()
            )
        })
    }

    fn add_file(&mut self, relative: String, source: PathBuf) {
        if let Some((parent, _)) = relative.rsplit_once('/') {
            self.add_dir_and_parents(parent);
        }
        self.contents.insert(relative, Entry::File(source));
    }

    fn add_dir_and_parents(&mut self, relative: &str) {
        let mut end = 0;
        for part in relative.split('/') {
            end += part.len();
            self.contents.entry(relative[..end].to_string()).or_insert(Entry::Directory);
            end += 1;
        }
    }

    /// Whether `relative` is in `kiln up`'s state directory; warns the first time.
    fn is_local_state(&mut self, relative: &str) -> bool {
        let inside = relative.split('/').next() == Some(LOCAL_STATE_DIR);
        if inside && !self.left_out_state {
            self.left_out_state = true;
            self.warnings.push(format!("left out {LOCAL_STATE_DIR}/, the local state of `kiln up` (staged files, databases)"));
        }
        inside
    }

    fn skip_link(&mut self, component: &Component, relative: &str) {
        self.warnings.push(format!(
            "component `{}`: left out the symbolic link {relative} (the archive holds only regular files and directories)",
            component.id
        ));
    }
}

fn exclude_patterns(component: &Component) -> Result<Vec<glob::Pattern>> {
    let compile = |pattern: &String| {
        glob::Pattern::new(pattern).with_context(|| format!("component `{}`: invalid exclude_files pattern `{pattern}`", component.id))
    };
    component.exclude_files.iter().map(compile).collect()
}

/// `path` relative to `dir` as a `/`-separated UTF-8 string, if `path` is strictly below `dir`.
/// Both are absolute and lexically normalised (the manifest crate makes them so), so a `..` left
/// over can only mean "outside".
fn relative_inside(dir: &Path, path: &Path) -> Option<String> {
    let rest = path.strip_prefix(dir).ok()?;
    let mut parts = Vec::new();
    for part in rest.components() {
        match part {
            PathPart::Normal(name) => parts.push(name.to_str()?),
            PathPart::CurDir => {}
            _ => return None,
        }
    }
    if parts.is_empty() { None } else { Some(parts.join("/")) }
}


/// Writes `contents` as a gzip-compressed tar, with nothing that varies between machines or runs.
fn write_tar_gz(contents: &Contents) -> Result<Vec<u8>> {
    // `GzBuilder` writes modification time 0 unless told otherwise.
    let gzip = GzBuilder::new().write(Vec::new(), Compression::default());
    let mut tar = tar::Builder::new(gzip);
    for (path, entry) in contents {
        let (mut header, data) = match entry {
            Entry::Directory => (header(tar::EntryType::Directory, 0o755, 0), Vec::new()),
            Entry::File(source) => {
                // Read whole, so the size in the header is the size of what is written even if the
                // file changes meanwhile.
                let data = std::fs::read(source).with_context(|| format!("cannot read {}", source.display()))?;
                (header(tar::EntryType::Regular, 0o644, data.len() as u64), data)
            }
            Entry::Bytes(data) => (header(tar::EntryType::Regular, 0o644, data.len() as u64), data.clone()),
        };
        tar.append_data(&mut header, path, data.as_slice()).with_context(|| format!("cannot add {path} to the archive"))?;
    }
    let gzip = tar.into_inner().context("cannot finish the archive")?;
    gzip.finish().context("cannot finish the archive")
}

fn header(kind: tar::EntryType, mode: u32, size: u64) -> tar::Header {
    let mut header = tar::Header::new_gnu();
    header.set_entry_type(kind);
    header.set_mode(mode);
    header.set_size(size);
    header.set_mtime(0);
    header.set_uid(0);
    header.set_gid(0);
    header
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::io::Read;

    /// An app directory: the manifest `kiln.toml` plus `files` (path → content).
    fn app(manifest: &str, files: &[(&str, &str)]) -> (tempfile::TempDir, Manifest) {
        let root = tempfile::tempdir().unwrap();
        let dir = root.path().join("app");
        for (path, content) in files {
            let path = dir.join(path);
            std::fs::create_dir_all(path.parent().unwrap()).unwrap();
            std::fs::write(path, content).unwrap();
        }
        std::fs::create_dir_all(&dir).unwrap();
        std::fs::write(dir.join("kiln.toml"), manifest).unwrap();
        let manifest = Manifest::load(&dir.join("kiln.toml")).unwrap();
        (root, manifest)
    }

    fn manifest(component: &str) -> String {
        format!(
            "spin_manifest_version = 2\n[application]\nname = \"t\"\n[[trigger.http]]\nroute = \"/...\"\ncomponent = \"c\"\n[component.c]\n{component}\n"
        )
    }

    /// (path, kind, mode, mtime, content) of every entry, in archive order.
    fn entries(bytes: &[u8]) -> Vec<(String, tar::EntryType, u32, u64, String)> {
        let mut tar = tar::Archive::new(flate2::read::GzDecoder::new(bytes));
        let mut out = Vec::new();
        for entry in tar.entries().unwrap() {
            let mut entry = entry.unwrap();
            let header = entry.header().clone();
            let mut content = String::new();
            entry.read_to_string(&mut content).unwrap();
            let path = entry.path().unwrap().to_str().unwrap().to_string();
            out.push((path, header.entry_type(), header.mode().unwrap(), header.mtime().unwrap(), content));
        }
        out
    }

    fn paths(bytes: &[u8]) -> Vec<String> {
        entries(bytes).into_iter().map(|entry| entry.0).collect()
    }

    #[test]
    fn manifest_and_source_at_their_relative_paths() {
        let (_root, manifest) = app(&manifest("source = \"build/out/c.wasm\""), &[("build/out/c.wasm", "wasm")]);
        let archive = pack(&manifest, None).unwrap();
        assert_eq!(paths(&archive.bytes), ["build", "build/out", "build/out/c.wasm", "kiln.toml"]);
        assert_eq!(archive.files, 2);
        let all = entries(&archive.bytes);
        assert_eq!(all[2].4, "wasm");
        assert!(all[3].4.contains("spin_manifest_version"));
    }

    #[test]
    fn path_dependencies_are_packed_and_must_be_inside_the_app() {
        let deps = "source = \"c.wasm\"\n[component.c.dependencies]\n\"a:b/c\" = { path = \"deps/d.wasm\" }";
        let (_root, packed) = app(&manifest(deps), &[("c.wasm", "c"), ("deps/d.wasm", "d")]);
        let archive = pack(&packed, None).unwrap();
        assert_eq!(paths(&archive.bytes), ["c.wasm", "deps", "deps/d.wasm", "kiln.toml"]);

        let outside = "source = \"c.wasm\"\n[component.c.dependencies]\n\"a:b/c\" = { path = \"../d.wasm\" }";
        let (_root, refused) = app(&manifest(outside), &[("c.wasm", "c")]);
        let Err(err) = pack(&refused, None) else { panic!("a dependency outside the app is refused") };
        assert!(format!("{err:#}").contains("dependency `a:b/c` is"), "{err:#}");
    }

    #[test]
    fn a_spin_toml_keeps_its_name() {
        let root = tempfile::tempdir().unwrap();
        std::fs::write(root.path().join("c.wasm"), "w").unwrap();
        std::fs::write(root.path().join("spin.toml"), manifest("source = \"c.wasm\"")).unwrap();
        let manifest = Manifest::load(&root.path().join("spin.toml")).unwrap();
        assert_eq!(paths(&pack(&manifest, None).unwrap().bytes), ["c.wasm", "spin.toml"]);
    }

    #[test]
    fn a_source_outside_the_directory_is_moved_in_and_the_manifest_rewritten() {
        let (root, manifest) = app(&format!("# keep me\n{}", manifest("source = \"../c.wasm\"")), &[]);
        std::fs::write(root.path().join("c.wasm"), "w").unwrap();
        let packed = entries(&pack(&manifest, None).unwrap().bytes);
        let moved = packed.iter().find(|entry| entry.0 == "kiln-sources/c.wasm").expect("the source is packed");
        assert_eq!(moved.4, "w");
        let uploaded = &packed.iter().find(|entry| entry.0 == "kiln.toml").expect("manifest").4;
        assert!(uploaded.contains("source = \"kiln-sources/c.wasm\""), "{uploaded}");
        assert!(uploaded.starts_with("# keep me") && uploaded.contains("route = \"/...\""), "the rest is as written: {uploaded}");
    }

    #[test]
    fn remote_and_registry_sources_are_refused() {
        let digest = "sha256:".to_string() + &"a".repeat(64);
        let (_root, remote) = app(&manifest(&format!("source = {{ url = \"https://x.example/c.wasm\", digest = \"{digest}\" }}")), &[]);
        assert!(pack(&remote, None).unwrap_err().to_string().contains("is a URL (https://x.example/c.wasm)"));
        let (_root, registry) = app(&manifest("source = { package = \"ns:c\", version = \"1.0.0\" }"), &[]);
        assert!(pack(&registry, None).unwrap_err().to_string().contains("registry package ns:c@1.0.0"));
    }

    #[test]
    fn globs_select_files_minus_exclusions() {
        let files = [("c.wasm", "w"), ("static/a.html", "a"), ("static/b.txt", "b"), ("static/deep/c.html", "c"), ("static/secret.html", "s")];
        let component = "source = \"c.wasm\"\nfiles = [\"static/**/*.html\"]\nexclude_files = [\"static/secret.html\"]";
        let (_root, manifest) = app(&manifest(component), &files);
        let archive = pack(&manifest, None).unwrap();
        assert_eq!(paths(&archive.bytes), ["c.wasm", "kiln.toml", "static", "static/a.html", "static/deep", "static/deep/c.html"]);
        assert!(archive.warnings.is_empty(), "{:?}", archive.warnings);
    }

    #[test]
    fn mapped_directories_are_included_whole_with_empty_subdirectories() {
        let files = [("c.wasm", "w"), ("assets/x.css", "x"), ("assets/img/y.png", "y"), ("other.txt", "o")];
        let component = "source = \"c.wasm\"\nfiles = [{ source = \"assets\", destination = \"/\" }, { source = \"other.txt\", destination = \"/o.txt\" }]";
        let (root, manifest) = app(&manifest(component), &files);
        std::fs::create_dir(root.path().join("app/assets/empty")).unwrap();
        let archive = pack(&manifest, None).unwrap();
        let expected = ["assets", "assets/empty", "assets/img", "assets/img/y.png", "assets/x.css", "c.wasm", "kiln.toml", "other.txt"];
        assert_eq!(paths(&archive.bytes), expected);
        assert_eq!(archive.files, 5);
    }

    #[test]
    fn a_missing_mapped_source_is_an_error() {
        let (_root, manifest) = app(&manifest("source = \"c.wasm\"\nfiles = [{ source = \"nope\", destination = \"/\" }]"), &[("c.wasm", "w")]);
        let err = pack(&manifest, None).unwrap_err().to_string();
        assert!(err.contains("files source `nope` does not exist"), "{err}");
    }

    #[test]
    fn symbolic_links_are_left_out_with_a_warning() {
        let component = "source = \"c.wasm\"\nfiles = [\"*.txt\", { source = \"d\", destination = \"/d\" }]";
        let (root, manifest) = app(&manifest(component), &[("c.wasm", "w"), ("real.txt", "r"), ("d/f", "f")]);
        let dir = root.path().join("app");
        std::os::unix::fs::symlink("/etc/passwd", dir.join("link.txt")).unwrap();
        std::os::unix::fs::symlink("/etc", dir.join("d/escape")).unwrap();
        let archive = pack(&manifest, None).unwrap();
        assert_eq!(paths(&archive.bytes), ["c.wasm", "d", "d/f", "kiln.toml", "real.txt"]);
        assert_eq!(archive.warnings.len(), 2, "{:?}", archive.warnings);
        assert!(archive.warnings.iter().any(|w| w.contains("link.txt")));
        assert!(archive.warnings.iter().any(|w| w.contains("d/escape")));
    }

    #[test]
    fn local_state_is_never_uploaded() {
        let files = [("c.wasm", "w"), (".kiln/key_value/default.db", "db"), (".kiln/files/c/x", "x"), (".env", "e")];
        let component = "source = \"c.wasm\"\nfiles = [\"**/*\", { source = \".\", destination = \"/all\" }]";
        let (_root, manifest) = app(&manifest(component), &files);
        let archive = pack(&manifest, None).unwrap();
        assert_eq!(paths(&archive.bytes), [".env", "c.wasm", "kiln.toml"]);
        assert_eq!(archive.warnings.len(), 1, "{:?}", archive.warnings);
        assert!(archive.warnings[0].contains(".kiln/"));
    }

    #[test]
    fn a_glob_selecting_nothing_is_a_warning() {
        let (_root, manifest) = app(&manifest("source = \"c.wasm\"\nfiles = [\"nothing/*\"]"), &[("c.wasm", "w")]);
        let archive = pack(&manifest, None).unwrap();
        assert_eq!(archive.warnings, ["component `c`: files pattern `nothing/*` selects no file"]);
    }

    #[test]
    fn entries_are_deterministic_and_normalized() {
        let files = [("c.wasm", "w"), ("s/a", "a")];
        let (_root, manifest) = app(&manifest("source = \"c.wasm\"\nfiles = [\"s/*\"]"), &files);
        let first = pack(&manifest, None).unwrap().bytes;
        // Touch a file's time and permissions: neither may show in the archive.
        let dir = &manifest.dir;
        std::fs::set_permissions(dir.join("s/a"), std::os::unix::fs::PermissionsExt::from_mode(0o700)).unwrap();
        std::thread::sleep(std::time::Duration::from_millis(1100));
        std::fs::write(dir.join("c.wasm"), "w").unwrap();
        assert_eq!(pack(&manifest, None).unwrap().bytes, first);
        for (path, kind, mode, mtime, _) in entries(&first) {
            assert_eq!(mtime, 0, "{path}");
            match kind {
                tar::EntryType::Directory => assert_eq!(mode, 0o755, "{path}"),
                _ => assert_eq!((kind, mode), (tar::EntryType::Regular, 0o644), "{path}"),
            }
        }
    }

    #[test]
    fn long_paths_survive() {
        let long = format!("{}/{}.txt", "d".repeat(80), "f".repeat(80));
        let (_root, manifest) = app(&manifest("source = \"c.wasm\"\nfiles = [\"d*/*.txt\"]"), &[("c.wasm", "w"), (&long, "x")]);
        assert!(paths(&pack(&manifest, None).unwrap().bytes).contains(&long));
    }

    #[test]
    fn a_file_selected_twice_is_stored_once() {
        let component = "source = \"c.wasm\"\nfiles = [\"*.wasm\", \"**/*\"]";
        let (_root, manifest) = app(&manifest(component), &[("c.wasm", "w")]);
        assert_eq!(paths(&pack(&manifest, None).unwrap().bytes), ["c.wasm", "kiln.toml"]);
    }

    #[test]
    fn relative_inside_accepts_only_paths_strictly_below() {
        let dir = Path::new("/app");
        assert_eq!(relative_inside(dir, Path::new("/app/a/b.wasm")).as_deref(), Some("a/b.wasm"));
        assert_eq!(relative_inside(dir, Path::new("/app")), None);
        assert_eq!(relative_inside(dir, Path::new("/other/b.wasm")), None);
        assert_eq!(relative_inside(dir, Path::new("/app/../b.wasm")), None);
        assert_eq!(relative_inside(dir, Path::new("/apple/b.wasm")), None);
    }
}
