//! WASI release candidates that are the final version under another name.
//!
//! spin-sdk 6 (Spin 4.0.x) and `wasip3` 0.6 build against WASI `0.3.0-rc-2026-03-15`, whose WIT is
//! the final `0.3.0` word for word: the same packages, interfaces, types and functions; only the
//! version in the names and the `@since` gates differ (the test below checks the two definitions
//! against each other). wasmtime's linker never matches a pre-release version to a release one,
//! so at load Kiln renames such a component's top-level imports and exports to the final version
//! before compiling it. The component then links against the same host functions as a `0.3.0`
//! guest, and wasmtime still checks every imported function's type, so a candidate that differed
//! would be refused at load, not misrun. A request costs nothing extra: the renaming happens once,
//! before compilation (and the compiled result is cached).
//!
//! Candidates whose types differ from the final version (WASI 0.2's `0.2.0-rc-2023-*`) cannot be
//! renamed; they are served by forwarding each call, in `kiln-wasi-rc`.

use anyhow::{Context, Result};
use wasm_encoder::reencode::{ReencodeComponent, RoundtripReencoder};

/// `(release candidate, final version)` pairs whose WIT is identical, and the WASI packages the
/// candidate covers.
const IDENTICAL: &[(&str, &str, &[&str])] =
    &[("0.3.0-rc-2026-03-15", "0.3.0", &["wasi:cli", "wasi:clocks", "wasi:filesystem", "wasi:http", "wasi:random", "wasi:sockets"])];

/// The final name for an import or export name of an identical release candidate
/// (`wasi:http/types@0.3.0-rc-2026-03-15` → `wasi:http/types@0.3.0`), else `None`.
fn final_name(name: &str) -> Option<String> {
    let (path, version) = name.rsplit_once('@')?;
    let package = path.split_once('/').map_or(path, |(package, _)| package);
    IDENTICAL
        .iter()
        .find(|(candidate, _, packages)| *candidate == version && packages.contains(&package))
        .map(|(_, release, _)| format!("{path}@{release}"))
}

/// The component with its identical-candidate imports and exports renamed to the final version, or
/// `None` when it names none (the common case: the bytes are used as they are).
pub(crate) fn rename_to_final(component: &[u8]) -> Result<Option<Vec<u8>>> {
    let names = crate::cache::interface_names(component);
    if !names.iter().any(|name| final_name(name).is_some()) {
        return Ok(None);
    }
    // spin-sdk 5's Python components import both the candidate and the final version of the same
    // interfaces: renamed, the two would share a name, which no component may import twice.
    let both = names.iter().any(|name| final_name(name).is_some_and(|release| names.contains(&release)));
    if both {
        return bridge_to_final(component).map(Some).context("failed to wire the component's WASI release-candidate imports to their final version");
    }
    rewrite_top_level_names(component).map(Some).context("failed to rename the component's WASI release-candidate imports to their final version")
}

/// Wraps the component in one that imports each interface once, under its final name, and gives
/// that one instance to the inner component for both its candidate and its final import (their
/// WIT is identical, and the composition checks every type). Exports keep their final names.
fn bridge_to_final(component: &[u8]) -> Result<Vec<u8>> {
    use wac_graph::types::Package;
    use wac_graph::{CompositionGraph, EncodeOptions};
    let mut graph = CompositionGraph::new();
    let package = Package::from_bytes("kiln:guest", None, component.to_vec(), graph.types_mut())?;
    let world = package.ty();
    let package = graph.register_package(package)?;
    let instance = graph.instantiate(package);
    let imports: Vec<(String, wac_graph::types::ItemKind)> = graph.types()[world].imports.iter().map(|(name, kind)| (name.clone(), *kind)).collect();
    // The final versions' own import types first, so the outer imports have them.
    let mut outer = std::collections::HashMap::new();
    for (name, kind) in imports.iter().filter(|(name, _)| final_name(name).is_none()) {
        let node = graph.import(name, kind.promote())?;
        outer.insert(name.clone(), node);
    }
    for (name, kind) in &imports {
        let release = final_name(name).unwrap_or_else(|| name.clone());
        let node = match outer.get(&release) {
            Some(node) => *node,
            None => {
                let node = graph.import(&release, kind.promote())?;
                outer.insert(release.clone(), node);
                node
            }
        };
        graph.set_instantiation_argument(instance, name, node).with_context(|| format!("giving `{name}` the host's `{release}`"))?;
    }
    let exports: Vec<String> = graph.types()[world].exports.keys().cloned().collect();
    for name in exports {
        let node = graph.alias_instance_export(instance, &name)?;
        graph.export(node, final_name(&name).unwrap_or(name))?;
    }
    // wasmtime validates the result as it compiles it.
    Ok(graph.encode(EncodeOptions { validate: false, ..EncodeOptions::default() })?)
}

/// Copies every top-level section unchanged except the import and export sections, whose names go
/// through [`final_name`]. Nested modules and components are copied byte for byte: their imports
/// are satisfied inside the component, by index, not by the host.
fn rewrite_top_level_names(bytes: &[u8]) -> Result<Vec<u8>> {
    let mut out = wasm_encoder::Component::new();
    let mut reencoder = RoundtripReencoder;
    let mut parser = wasmparser::Parser::new(0);
    let mut rest = bytes;
    while !rest.is_empty() {
        let (consumed, payload) = match parser.parse(rest, true)? {
            wasmparser::Chunk::Parsed { consumed, payload } => (consumed, payload),
            wasmparser::Chunk::NeedMoreData(_) => anyhow::bail!("the component ends in the middle of a section"),
        };
        let offset = bytes.len() - rest.len();
        rest = &rest[consumed..];
        match payload {
            wasmparser::Payload::Version { .. } | wasmparser::Payload::End(_) => {}
            wasmparser::Payload::ComponentImportSection(section) => {
                let mut imports = wasm_encoder::ComponentImportSection::new();
                for import in section {
                    let import = import?;
                    let name = final_name(import.name.name).unwrap_or_else(|| import.name.name.to_string());
                    imports.import(&name, reencoder.component_type_ref(import.ty)?);
                }
                out.section(&imports);
            }
            wasmparser::Payload::ComponentExportSection(section) => {
                let mut exports = wasm_encoder::ComponentExportSection::new();
                for export in section {
                    let export = export?;
                    let name = final_name(export.name.name).unwrap_or_else(|| export.name.name.to_string());
                    let ty = export.ty.map(|ty| reencoder.component_type_ref(ty)).transpose()?;
                    exports.export(&name, reencoder.component_export_kind(export.kind), export.index, ty);
                }
                out.section(&exports);
            }
            // A nested binary follows its section header: copy it whole and skip past it.
            wasmparser::Payload::ModuleSection { unchecked_range, .. } => {
                out.section(&wasm_encoder::RawSection { id: wasm_encoder::ComponentSectionId::CoreModule as u8, data: &bytes[unchecked_range.clone()] });
                rest = &rest[unchecked_range.len()..];
            }
            wasmparser::Payload::ComponentSection { unchecked_range, .. } => {
                out.section(&wasm_encoder::RawSection { id: wasm_encoder::ComponentSectionId::Component as u8, data: &bytes[unchecked_range.clone()] });
                rest = &rest[unchecked_range.len()..];
            }
            other => match other.as_section() {
                Some((id, range)) => {
                    out.section(&wasm_encoder::RawSection { id, data: &bytes[range] });
                }
                None => anyhow::bail!("unexpected content at offset {offset} of the component"),
            },
        }
    }
    Ok(out.finish())
}

/// The WASI versions Kiln serves, as the README's interface table lists them.
const SERVED_WASI: &str = "0.2.x, 0.2.0-rc-2023-10-18, 0.2.0-rc-2023-11-10, 0.3.x (0.3.0 and later patch versions, for the functions 0.3.0 has) and 0.3.0-rc-2026-03-15";

/// Whether Kiln serves `wasi:*` interfaces at `version` (before renaming).
fn wasi_version_served(version: &str) -> bool {
    let release = |minor: &str| version.strip_prefix(minor).is_some_and(|patch| !patch.is_empty() && patch.chars().all(|c| c.is_ascii_digit()));
    release("0.2.") || release("0.3.") || matches!(version, "0.2.0-rc-2023-10-18" | "0.2.0-rc-2023-11-10" | "0.3.0-rc-2026-03-15")
}

/// For a component that failed to link: the `wasi:*` imports and exports at versions Kiln does not
/// serve, with the versions it does and what to rebuild with; `None` if every WASI name is served
/// (then wasmtime's own error says which function or type is missing).
pub(crate) fn unsupported_wasi_help<'a>(names: impl IntoIterator<Item = &'a str>) -> Option<String> {
    let unsupported: Vec<&str> = names
        .into_iter()
        .filter(|name| name.starts_with("wasi:"))
        .filter(|name| name.rsplit_once('@').is_some_and(|(_, version)| !wasi_version_served(version)))
        .collect();
    if unsupported.is_empty() {
        return None;
    }
    Some(format!(
        "it uses WASI at a version Kiln does not serve: {}. Kiln serves `wasi:*` at {SERVED_WASI}. Rebuild it with a current toolchain: \
         for WASI 0.3, spin-sdk 7 or `wasip3` 0.7 and later; for WASI 0.2, Rust's wasm32-wasip2 target, spin-sdk 2.2 to 5, or `wasi` 0.14",
        unsupported.iter().map(|name| format!("`{name}`")).collect::<Vec<_>>().join(", ")
    ))
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::path::{Path, PathBuf};

    #[test]
    fn only_the_identical_candidates_are_renamed() {
        assert_eq!(final_name("wasi:http/types@0.3.0-rc-2026-03-15").as_deref(), Some("wasi:http/types@0.3.0"));
        assert_eq!(final_name("wasi:cli/environment@0.3.0-rc-2026-03-15").as_deref(), Some("wasi:cli/environment@0.3.0"));
        for unchanged in [
            "wasi:http/types@0.3.0",
            "wasi:http/types@0.3.0-rc-2026-01-06",
            "wasi:http/types@0.2.0-rc-2023-10-18",
            "wasi:keyvalue/store@0.3.0-rc-2026-03-15",
            "spin:key-value/key-value@3.0.0",
            "wasi:cli/environment",
        ] {
            assert_eq!(final_name(unchanged), None, "{unchanged}");
        }
    }

    fn repo_wit(dir: &str) -> PathBuf {
        Path::new(env!("CARGO_MANIFEST_DIR")).join("../../wit").join(dir)
    }

    /// Loads single-file WIT packages whose dependencies are among them, in whatever order resolves.
    fn resolve(dir: &Path) -> (wit_parser::Resolve, Vec<wit_parser::PackageId>) {
        let mut resolve = wit_parser::Resolve::default();
        let mut pending: Vec<PathBuf> = std::fs::read_dir(dir).unwrap().map(|e| e.unwrap().path()).collect();
        pending.sort();
        let mut packages = Vec::new();
        while !pending.is_empty() {
            let before = pending.len();
            pending.retain(|file| match resolve.clone().push_file(file) {
                Ok(_) => {
                    packages.push(resolve.push_file(file).unwrap());
                    false
                }
                Err(_) => true,
            });
            assert!(pending.len() < before, "these WIT files do not resolve: {pending:?}");
        }
        (resolve, packages)
    }

    /// A component importing every interface of the release candidate and exporting its HTTP
    /// handler, made by wit-component from the vendored WIT, as a guest toolchain would.
    fn candidate_component() -> Vec<u8> {
        let (mut resolve, _) = resolve(&repo_wit("wasi-0.3.0-rc-2026-03-15"));
        let world = r#"package kiln:test;
            world everything {
                include wasi:cli/imports@0.3.0-rc-2026-03-15;
                import wasi:http/client@0.3.0-rc-2026-03-15;
                export wasi:http/handler@0.3.0-rc-2026-03-15;
            }"#;
        component_of_world(&mut resolve, "everything", world)
    }

    /// The component a guest toolchain would make of world `name` (in `wit`, whose packages
    /// `resolve` holds): every import, and a dummy core module behind every export.
    fn component_of_world(resolve: &mut wit_parser::Resolve, name: &str, wit: &str) -> Vec<u8> {
        let package = resolve.push_str(format!("{name}.wit"), wit).unwrap();
        let world = resolve.select_world(&[package], Some(name)).unwrap();
        let mut module = wit_component::dummy_module(resolve, world, wit_parser::ManglingAndAbi::Standard32);
        wit_component::embed_component_metadata(&mut module, resolve, world, wit_component::StringEncoding::UTF8).unwrap();
        wit_component::ComponentEncoder::default().validate(true).module(&module).unwrap().encode().unwrap()
    }

    /// An engine with component-model concurrency, as WASI 0.3 guests need.
    fn concurrent_engine() -> crate::Engine {
        let config = crate::EngineConfig { concurrency: true, cache_dir: None, deadlines: false, pooling: false, ..crate::EngineConfig::default() };
        crate::Engine::new(config, &[]).unwrap()
    }

    #[test]
    fn every_candidate_function_links_against_the_final_host() {
        let component = candidate_component();
        let renamed = rename_to_final(&component).unwrap().expect("names to rename");
        let names = crate::cache::interface_names(&renamed);
        assert!(names.contains(&"wasi:http/handler@0.3.0".to_string()), "{names:?}");
        assert!(names.iter().all(|name| !name.contains("rc-2026")), "{names:?}");
        wasmparser::Validator::new_with_features(wasmparser::WasmFeatures::all()).validate_all(&renamed).unwrap();

        let engine = concurrent_engine();
        let as_built = wasmtime::component::Component::new(engine.wasmtime(), &component).unwrap();
        let refused = engine.linker().instantiate_pre(&as_built).err().expect("a candidate never matches 0.3.0 by itself");
        assert!(format!("{refused:#}").contains("0.3.0-rc-2026-03-15"), "{refused:#}");
        let component = wasmtime::component::Component::new(engine.wasmtime(), &renamed).unwrap();
        // Type-checks every import against the host's definitions: a function whose signature differs
        // between the candidate and 0.3.0 fails here.
        engine.linker().instantiate_pre(&component).unwrap();
    }

    #[test]
    fn unserved_wasi_versions_are_named_with_what_to_rebuild_with() {
        let help = unsupported_wasi_help(["wasi:http/types@0.3.0-rc-2026-01-06", "wasi:cli/stdout@0.2.6", "spin:key-value/key-value@3.0.0"]).unwrap();
        assert!(help.contains("`wasi:http/types@0.3.0-rc-2026-01-06`"), "{help}");
        assert!(!help.contains("stdout"), "{help}");
        assert!(help.contains("spin-sdk 7"), "{help}");
        for served in ["wasi:http/types@0.2.0-rc-2023-10-18", "wasi:http/types@0.3.2", "wasi:io/streams@0.2.12", "wasi:http/handler@0.3.0-rc-2026-03-15"] {
            assert_eq!(unsupported_wasi_help([served]), None, "{served}");
        }
        assert!(unsupported_wasi_help(["wasi:io/streams@0.2.0-rc-2023-12-05"]).is_some());
        assert!(unsupported_wasi_help(["wasi:io/streams@0.4.0"]).is_some());
    }

    #[test]
    fn a_newer_0_3_patch_links_for_what_0_3_0_has_and_names_the_function_it_lacks() {
        let engine = concurrent_engine();
        let importing = |functions: &str| {
            let wat = format!(r#"(component (import "wasi:random/random@0.3.2" (instance {functions})))"#);
            wasmtime::component::Component::new(engine.wasmtime(), wat::parse_str(&wat).unwrap()).unwrap()
        };
        let known = r#"(export "get-random-u64" (func (result u64)))"#;
        engine.linker().instantiate_pre(&importing(known)).expect("0.3.2 links to 0.3.0 for the functions 0.3.0 has");
        let newer = format!(r#"{known} (export "get-random-u128" (func (result u64)))"#);
        let refused = engine.linker().instantiate_pre(&importing(&newer)).err().expect("a function 0.3.0 lacks");
        let message = format!("{refused:#}");
        assert!(message.contains("wasi:random/random@0.3.2") && message.contains("get-random-u128"), "{message}");
    }

    /// A component like spin-sdk 5's Python ones: it imports the candidate and the final version of
    /// the same interfaces, and exports the final handler.
    fn candidate_and_final_component() -> Vec<u8> {
        let candidate = repo_wit("wasi-0.3.0-rc-2026-03-15");
        let (mut wit, _) = resolve(&candidate);
        // The final version's WIT is the candidate's under another version.
        let release = tempfile::tempdir().unwrap();
        for entry in std::fs::read_dir(&candidate).unwrap() {
            let path = entry.unwrap().path();
            let text = std::fs::read_to_string(&path).unwrap().replace("0.3.0-rc-2026-03-15", "0.3.0");
            std::fs::write(release.path().join(path.file_name().unwrap()), text).unwrap();
        }
        let (release_resolve, release_packages) = resolve(release.path());
        let remap = wit.merge(release_resolve).unwrap();
        assert!(!release_packages.is_empty() && !remap.packages.is_empty());
        let world = r#"package kiln:test;
            world both {
                include wasi:cli/imports@0.3.0-rc-2026-03-15;
                include wasi:cli/imports@0.3.0;
                import wasi:http/client@0.3.0-rc-2026-03-15;
                import wasi:http/client@0.3.0;
                export wasi:http/handler@0.3.0;
            }"#;
        component_of_world(&mut wit, "both", world)
    }

    #[test]
    fn candidate_and_final_imports_of_one_interface_share_the_final_host() {
        let component = candidate_and_final_component();
        let names = crate::cache::interface_names(&component);
        assert!(names.contains(&"wasi:clocks/types@0.3.0".to_string()) && names.contains(&"wasi:clocks/types@0.3.0-rc-2026-03-15".to_string()), "{names:?}");
        let bridged = rename_to_final(&component).unwrap().expect("names to rename");
        wasmparser::Validator::new_with_features(wasmparser::WasmFeatures::all()).validate_all(&bridged).unwrap();

        let engine = concurrent_engine();
        let component = wasmtime::component::Component::new(engine.wasmtime(), &bridged).unwrap();
        let ty = component.component_type();
        let imports: Vec<String> = ty.imports(engine.wasmtime()).map(|(name, _)| name.to_string()).collect();
        assert!(imports.iter().all(|name| !name.contains("rc-2026")), "{imports:?}");
        assert!(imports.contains(&"wasi:http/client@0.3.0".to_string()), "{imports:?}");
        let exports: Vec<String> = ty.exports(engine.wasmtime()).map(|(name, _)| name.to_string()).collect();
        assert_eq!(exports, ["wasi:http/handler@0.3.0"]);
        engine.linker().instantiate_pre(&component).unwrap();
    }

    #[test]
    fn a_component_without_candidates_is_left_as_it_is() {
        let component = wat::parse_str(r#"(component (import "wasi:cli/environment@0.3.0" (instance)))"#).unwrap();
        assert!(rename_to_final(&component).unwrap().is_none());
    }
}
