//! Compiling components, and the on-disk cache of precompiled artifacts.
//!
//! The cache key is the SHA-256 of the original bytes together with the engine's compatibility hash
//! (wasmtime version, target and every setting that affects code generation), so an artifact is only
//! ever loaded by an engine that could have produced it. Artifacts are written to a temporary file
//! and renamed into place, so a crash never leaves a torn file under a valid name.

use anyhow::{Context, Result};
use sha2::{Digest, Sha256};
use std::hash::{Hash, Hasher};
use std::io::Write;
use std::path::{Path, PathBuf};
use wasmtime::component::Component;

use crate::known_sources::SourceFile;

/// Loads the component in the file at `path`. When the cache has seen this version of the file
/// before ([`SourceFile`]), its artifact is found without reading the component at all.
pub(crate) fn load_file(engine: &wasmtime::Engine, cache_dir: Option<&Path>, path: &Path) -> Result<Component> {
    let read = || std::fs::read(path).context("cannot read it");
    let Some(dir) = cache_dir else {
        return compile(engine, &read()?);
    };
    let source = SourceFile::stat(path);
    let remembered = source.as_ref().and_then(|source| source.remembered(dir));
    if let Some(component) = remembered.and_then(|digest| cached(engine, &artifact_path(engine, dir, &digest))) {
        return Ok(component);
    }
    let bytes = read()?;
    let digest = content_digest(&bytes);
    let component = load_digested(engine, dir, &bytes, &digest)?;
    if let Some(source) = source {
        source.remember(dir, &digest);
    }
    Ok(component)
}

pub(crate) fn load(engine: &wasmtime::Engine, cache_dir: Option<&Path>, bytes: &[u8]) -> Result<Component> {
    match cache_dir {
        Some(dir) => load_digested(engine, dir, bytes, &content_digest(bytes)),
        None => compile(engine, bytes),
    }
}

/// Loads `bytes`, whose [`content_digest`] is `digest`, from the cache in `dir`, else compiles
/// them and caches the artifact.
fn load_digested(engine: &wasmtime::Engine, dir: &Path, bytes: &[u8], digest: &str) -> Result<Component> {
    let path = artifact_path(engine, dir, digest);
    if let Some(component) = cached(engine, &path) {
        return Ok(component);
    }
    let component = compile(engine, bytes)?;
    if let Err(err) = store(&component, dir, &path) {
        tracing::warn!("could not write the compile cache at {}: {err:#}", dir.display());
    }
    Ok(component)
}

/// The artifact at `path`, if there is one and it is intact.
fn cached(engine: &wasmtime::Engine, path: &Path) -> Option<Component> {
    if !path.exists() {
        return None;
    }
    match intact(path) {
        // SAFETY: the file was written by `store` from `Component::serialize` of an engine with the
        // same compatibility hash (part of the file name), and its checksum matches the one
        // written with it; wasmtime additionally checks the header.
        Ok(()) => match unsafe { Component::deserialize_file(engine, path) } {
            Ok(component) => return Some(component),
            Err(err) => tracing::warn!("ignoring unusable cached artifact {}: {err}", path.display()),
        },
        Err(reason) => tracing::warn!("ignoring cached artifact {}: {reason}; compiling again", path.display()),
    }
    None
}

/// The cache's key for a component's bytes: their SHA-256, in hex.
fn content_digest(bytes: &[u8]) -> String {
    hex::encode(Sha256::digest(bytes))
}

fn artifact_path(engine: &wasmtime::Engine, dir: &Path, content_digest: &str) -> PathBuf {
    let mut engine_hash = std::collections::hash_map::DefaultHasher::new();
    engine.precompile_compatibility_hash().hash(&mut engine_hash);
    dir.join(format!("{content_digest}-{:016x}.cwasm", engine_hash.finish()))
}

/// Where an artifact's checksum is kept: wasmtime checks an artifact's header, not its code, so a
/// cached file damaged on disk (a flipped bit in machine code) would otherwise be run.
fn checksum_path(artifact: &Path) -> PathBuf {
    artifact.with_extension("cwasm.crc32")
}

fn checksum(bytes: &[u8]) -> String {
    checksum_text(crc32fast::hash(bytes))
}

/// How a checksum is written beside its artifact.
fn checksum_text(crc: u32) -> String {
    format!("{crc:08x}")
}

/// Whether the artifact at `path` is the one `store` wrote (its checksum matches). The file is
/// checksummed through a small buffer rather than read whole: an interpreter's artifact is tens of
/// megabytes, and allocating (zeroing) and filling a buffer that size was most of a warm start.
fn intact(path: &Path) -> Result<(), String> {
    let expected = std::fs::read_to_string(checksum_path(path)).map_err(|err| format!("no checksum beside it ({err})"))?;
    let actual = file_checksum(path).map_err(|err| format!("cannot read it ({err})"))?;
    if actual == expected.trim() { Ok(()) } else { Err("its checksum does not match: the file is damaged".into()) }
}

/// `checksum` of a file's contents, read in 256 KiB pieces.
fn file_checksum(path: &Path) -> std::io::Result<String> {
    use std::io::Read;
    let mut file = std::fs::File::open(path)?;
    let mut hasher = crc32fast::Hasher::new();
    let mut buffer = vec![0; 256 << 10];
    loop {
        match file.read(&mut buffer) {
            Ok(0) => return Ok(checksum_text(hasher.finalize())),
            Ok(n) => hasher.update(&buffer[..n]),
            Err(err) if err.kind() == std::io::ErrorKind::Interrupted => continue,
            Err(err) => return Err(err),
        }
    }
}

/// Writes the artifact and its checksum, each whole (a temporary file, synced, then renamed); the
/// checksum first, so an artifact is never found without it.
fn store(component: &Component, dir: &Path, path: &Path) -> Result<()> {
    std::fs::create_dir_all(dir)?;
    let artifact = component.serialize().map_err(anyhow::Error::from)?;
    write_whole(dir, &checksum_path(path), checksum(&artifact).as_bytes())?;
    write_whole(dir, path, &artifact)
}

/// Writes `bytes` to `path` (in `dir`) whole: a temporary file, synced, then renamed.
pub(crate) fn write_whole(dir: &Path, path: &Path, bytes: &[u8]) -> Result<()> {
    let mut tmp = tempfile_in(dir)?;
    tmp.1.write_all(bytes)?;
    tmp.1.sync_all()?;
    std::fs::rename(&tmp.0, path)?;
    Ok(())
}

fn tempfile_in(dir: &Path) -> Result<(PathBuf, std::fs::File)> {
    let name = format!(".tmp-{}-{:x}", std::process::id(), rand_suffix());
    let path = dir.join(name);
    let file = std::fs::File::create(&path)?;
    Ok((path, file))
}

fn rand_suffix() -> u128 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_nanos())
        .unwrap_or_default()
}

/// Compiles a component; a core module is first turned into a component.
fn compile(engine: &wasmtime::Engine, bytes: &[u8]) -> Result<Component> {
    if !bytes.starts_with(b"\0asm") {
        anyhow::bail!("not a WebAssembly binary (a .wasm file starts with the bytes `\\0asm`); check `source`");
    }
    let componentized;
    let component = if wasmparser::Parser::is_core_wasm(bytes) {
        componentized = componentize(bytes)?;
        &componentized[..]
    } else {
        bytes
    };
    match crate::release_candidates::rename_to_final(component)? {
        Some(renamed) => Component::new(engine, &renamed),
        None => Component::new(engine, component),
    }
    .map_err(anyhow::Error::from)
}

/// Turns a core module into a component: one carrying a `component-type` custom section
/// (wasm32-unknown-unknown built with wit-bindgen, or a wasip1 library), or a wasip1 program
/// (`_start`, as WAGI modules are). Modules importing WASI preview 1 get the preview1→preview2
/// adapter that wasmtime ships: the command adapter for a program (its `_start` becomes
/// `wasi:cli/run`), else the reactor adapter.
fn componentize(module: &[u8]) -> Result<Vec<u8>> {
    let mut encoder = wit_component::ComponentEncoder::default()
        .validate(true)
        .module(module)
        .context("the core module cannot be turned into a component: it needs the `component-type` custom section that wit-bindgen (or the `wasi` crate) emits")?;
    if imports_wasi_preview1(module) {
        let adapter = if exports_start(module) {
            wasi_preview1_component_adapter_provider::WASI_SNAPSHOT_PREVIEW1_COMMAND_ADAPTER
        } else {
            wasi_preview1_component_adapter_provider::WASI_SNAPSHOT_PREVIEW1_REACTOR_ADAPTER
        };
        encoder = encoder.adapter("wasi_snapshot_preview1", adapter)?;
    }
    encoder.encode().context("failed to turn the core module into a component")
}

/// The names a component (or core module) imports and exports at its top level: component imports
/// and exports (`wasi:http/types@0.2.4`, `wasi:http/handler@0.3.0`, …), and a core module's imports as
/// `module#name`. Nested modules and components are skipped.
pub(crate) fn interface_names(bytes: &[u8]) -> Vec<String> {
    let mut names = Vec::new();
    let mut depth = 0usize;
    for payload in wasmparser::Parser::new(0).parse_all(bytes) {
        match payload {
            Ok(wasmparser::Payload::ModuleSection { .. } | wasmparser::Payload::ComponentSection { .. }) => depth += 1,
            Ok(wasmparser::Payload::End(_)) => depth = depth.saturating_sub(1),
            Ok(wasmparser::Payload::ComponentImportSection(section)) if depth == 0 => {
                names.extend(section.into_iter().flatten().map(|import| import.name.name.to_string()));
            }
            Ok(wasmparser::Payload::ComponentExportSection(section)) if depth == 0 => {
                names.extend(section.into_iter().flatten().map(|export| export.name.name.to_string()));
            }
            Ok(wasmparser::Payload::ImportSection(section)) if depth == 0 => {
                names.extend(section.into_imports().flatten().map(|import| format!("{}#{}", import.module, import.name)));
            }
            Err(_) => break,
            _ => {}
        }
    }
    names
}

/// [`interface_names`] of the component (or core module) in a file, read section by section: the
/// top-level import and export sections are read, and nested modules and components (nearly all of
/// an interpreter's 19 MB) are skipped over rather than read.
pub(crate) fn file_interface_names(path: &Path) -> std::io::Result<Vec<String>> {
    use std::io::Read;
    let mut file = std::io::BufReader::new(std::fs::File::open(path)?);
    let mut top_level = vec![0; 8];
    if file.read_exact(&mut top_level).is_err() || !top_level.starts_with(b"\0asm") {
        return Ok(Vec::new());
    }
    // Component import and export sections; a core module's import section.
    let wanted: &[u8] = if wasmparser::Parser::is_component(&top_level) { &[10, 11] } else { &[2] };
    loop {
        let section_start = top_level.len();
        let mut id = [0u8];
        if file.read(&mut id)? == 0 {
            break;
        }
        top_level.push(id[0]);
        let Some(size) = read_section_size(&mut file, &mut top_level)? else { break };
        if wanted.contains(&id[0]) {
            // Read through `take`, so a size past the end of the file (a damaged or hostile one)
            // allocates only what the file holds.
            let read = (&mut file).take(u64::from(size)).read_to_end(&mut top_level)?;
            if read != size as usize {
                top_level.truncate(section_start);
                break;
            }
        } else {
            top_level.truncate(section_start);
            file.seek_relative(i64::from(size))?;
        }
    }
    Ok(interface_names(&top_level))
}

/// Reads a section's size (an unsigned LEB128 of at most 5 bytes), copying its bytes to `out`;
/// `None` at the end of the file or for a malformed size.
fn read_section_size(file: &mut impl std::io::Read, out: &mut Vec<u8>) -> std::io::Result<Option<u32>> {
    let mut size = 0u32;
    for shift in (0..35).step_by(7) {
        let mut byte = [0u8];
        if file.read(&mut byte)? == 0 {
            return Ok(None);
        }
        out.push(byte[0]);
        size |= u32::from(byte[0] & 0x7f).checked_shl(shift).unwrap_or(0);
        if byte[0] & 0x80 == 0 {
            return Ok(Some(size));
        }
    }
    Ok(None)
}

fn exports_start(module: &[u8]) -> bool {
    wasmparser::Parser::new(0).parse_all(module).any(|payload| match payload {
        Ok(wasmparser::Payload::ExportSection(exports)) => exports.into_iter().flatten().any(|export| export.name == "_start"),
        _ => false,
    })
}

fn imports_wasi_preview1(module: &[u8]) -> bool {
    for payload in wasmparser::Parser::new(0).parse_all(module) {
        if let Ok(wasmparser::Payload::ImportSection(imports)) = payload {
            for import in imports.into_imports().flatten() {
                if import.module == "wasi_snapshot_preview1" {
                    return true;
                }
            }
        }
    }
    false
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;

    fn engine() -> wasmtime::Engine {
        wasmtime::Engine::default()
    }

    fn empty_component() -> Vec<u8> {
        wat::parse_str("(component)").expect("valid component text")
    }

    fn artifacts(dir: &Path) -> Vec<PathBuf> {
        std::fs::read_dir(dir).unwrap().map(|e| e.unwrap().path()).filter(|p| p.extension().is_some_and(|x| x == "cwasm")).collect()
    }

    #[test]
    fn a_file_is_checksummed_piecewise_as_it_was_whole() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("artifact.cwasm");
        // Several read pieces and a partial last one.
        let bytes: Vec<u8> = (0..(600u32 << 10) + 7).map(|i| (i.wrapping_mul(2_654_435_761) >> 13) as u8).collect();
        std::fs::write(&path, &bytes).unwrap();
        assert_eq!(file_checksum(&path).unwrap(), checksum(&bytes));
        std::fs::write(&path, b"").unwrap();
        assert_eq!(file_checksum(&path).unwrap(), checksum(b""));
    }

    #[test]
    fn a_compiled_component_is_cached_and_reused() {
        let dir = tempfile::tempdir().unwrap();
        load(&engine(), Some(dir.path()), &empty_component()).unwrap();
        let cached = artifacts(dir.path());
        assert_eq!(cached.len(), 1);
        let written = std::fs::metadata(&cached[0]).unwrap().modified().unwrap();
        load(&engine(), Some(dir.path()), &empty_component()).unwrap();
        assert_eq!(std::fs::metadata(&cached[0]).unwrap().modified().unwrap(), written);
        assert_eq!(artifacts(dir.path()).len(), 1, "no temporary files are left behind");
    }

    #[test]
    fn a_corrupt_artifact_is_recompiled() {
        let dir = tempfile::tempdir().unwrap();
        load(&engine(), Some(dir.path()), &empty_component()).unwrap();
        let cached = artifacts(dir.path()).remove(0);
        std::fs::write(&cached, b"not an artifact").unwrap();
        load(&engine(), Some(dir.path()), &empty_component()).unwrap();
        assert!(std::fs::read(&cached).unwrap().len() > 100);
    }

    #[test]
    fn a_damaged_artifact_is_recompiled_not_run() {
        let dir = tempfile::tempdir().unwrap();
        let component = wat::parse_str(r#"(component (core module (func (export "f") (result i32) i32.const 42)))"#).unwrap();
        load(&engine(), Some(dir.path()), &component).unwrap();
        let cached = artifacts(dir.path()).remove(0);
        let good = std::fs::read(&cached).unwrap();
        // One bit flipped past the header, where wasmtime itself would not notice.
        let mut damaged = good.clone();
        let middle = damaged.len() / 2;
        damaged[middle] ^= 0x01;
        std::fs::write(&cached, &damaged).unwrap();
        load(&engine(), Some(dir.path()), &component).unwrap();
        assert_eq!(std::fs::read(&cached).unwrap(), good, "the damaged artifact was replaced by a fresh compile");
        // An artifact from before checksums were kept is compiled again too.
        std::fs::remove_file(checksum_path(&cached)).unwrap();
        load(&engine(), Some(dir.path()), &component).unwrap();
        assert!(checksum_path(&cached).is_file());
    }

    #[test]
    fn a_known_file_is_loaded_without_being_read() {
        let cache = tempfile::tempdir().unwrap();
        let source = tempfile::tempdir().unwrap();
        let path = source.path().join("app.wasm");
        std::fs::write(&path, empty_component()).unwrap();
        let engine = engine();
        let exports = |component: &Component| component.component_type().exports(&engine).count();
        assert_eq!(exports(&load_file(&engine, Some(cache.path()), &path).unwrap()), 0);
        // Point the file's entry at another component's artifact: if the file is not read, that
        // component is what loads.
        let other = wat::parse_str(r#"(component (core module $m) (export "m" (core module $m)))"#).unwrap();
        load(&engine, Some(cache.path()), &other).unwrap();
        let known = SourceFile::stat(&path).unwrap();
        known.remember_as_of(cache.path(), &content_digest(&other), std::time::SystemTime::now() + Duration::from_secs(60));
        assert_eq!(exports(&load_file(&engine, Some(cache.path()), &path).unwrap()), 1);
        // A changed file is read again.
        std::fs::write(&path, empty_component()).unwrap();
        assert_eq!(exports(&load_file(&engine, Some(cache.path()), &path).unwrap()), 0);
        let err = format!("{:#}", load_file(&engine, Some(cache.path()), &source.path().join("missing.wasm")).unwrap_err());
        assert!(err.starts_with("cannot read it: "), "{err}");
    }

    #[test]
    fn different_bytes_get_different_artifacts() {
        let dir = tempfile::tempdir().unwrap();
        load(&engine(), Some(dir.path()), &empty_component()).unwrap();
        let other = wat::parse_str("(component (core module))").unwrap();
        load(&engine(), Some(dir.path()), &other).unwrap();
        assert_eq!(artifacts(dir.path()).len(), 2);
    }

    #[test]
    fn a_file_s_names_are_read_without_its_nested_modules() {
        let dir = tempfile::tempdir().unwrap();
        let component = wat::parse_str(
            r#"(component
                (import "wasi:http/types@0.3.0" (instance))
                (core module (func (export "f")) (data "a large nested module"))
                (component (import "nested:only/inner@1.0.0" (instance)))
                (import "spin:key-value/key-value@3.0.0" (instance))
                (import "example:app/handler@1.0.0" (instance $i))
                (export "wasi:http/handler@0.3.0" (instance $i)))"#,
        )
        .unwrap();
        let names = |bytes: &[u8]| {
            let path = dir.path().join("c.wasm");
            std::fs::write(&path, bytes).unwrap();
            file_interface_names(&path).unwrap()
        };
        assert_eq!(
            names(&component),
            ["wasi:http/types@0.3.0", "spin:key-value/key-value@3.0.0", "example:app/handler@1.0.0", "wasi:http/handler@0.3.0"]
        );
        let module = wat::parse_str(r#"(module (import "wasi_snapshot_preview1" "fd_write" (func)) (func (export "_start")))"#).unwrap();
        assert_eq!(names(&module), ["wasi_snapshot_preview1#fd_write"]);
        for bytes in [component, module, b"\0asm".to_vec(), b"text, not wasm".to_vec()] {
            assert_eq!(names(&bytes), interface_names(&bytes));
            // A truncated file is read as far as it goes, without an error.
            for end in [9, bytes.len() / 2, bytes.len().saturating_sub(1)] {
                names(&bytes[..end.min(bytes.len())]);
            }
        }
        assert!(file_interface_names(&dir.path().join("missing.wasm")).is_err());
    }

    #[test]
    fn text_and_garbage_are_rejected_with_a_clear_message() {
        let err = load(&engine(), None, b"hello").unwrap_err();
        assert!(format!("{err:#}").contains("not a WebAssembly binary"), "{err:#}");
    }

    #[test]
    fn a_core_module_whose_imports_no_component_type_describes_is_refused_clearly() {
        // Nothing says which interface `env.f` belongs to, so it cannot become a component.
        let module = wat::parse_str(r#"(module (import "env" "f" (func)))"#).unwrap();
        let err = format!("{:#}", load(&engine(), None, &module).unwrap_err());
        assert!(err.contains("into a component"), "{err}");
    }

    #[test]
    fn an_empty_core_module_becomes_a_component() {
        let module = wat::parse_str("(module)").unwrap();
        assert!(load(&engine(), None, &module).is_ok());
    }
}
