//! Composition against small hand-written components: what is satisfied, what stays an import,
//! what is exported, and every refusal with its place in the manifest.

use super::*;
use std::path::Path;

/// A component importing `a:b/c@1.0.0` (one function `f`) and `wasi:io/poll@0.2.0`, exporting
/// `a:b/main@1.0.0` whose `g` calls `f`.
const MAIN: &str = r#"(component
  (import "wasi:io/poll@0.2.0" (instance))
  (import "a:b/c@1.0.0" (instance $c (export "f" (func (result u32)))))
  (core module $m (import "c" "f" (func $f (result i32))) (func (export "g") (result i32) call $f))
  (core func $f (canon lower (func $c "f")))
  (core instance $i (instantiate $m (with "c" (instance (export "f" (func $f))))))
  (func $g (result u32) (canon lift (core func $i "g")))
  (instance $out (export "g" (func $g)))
  (export "a:b/main@1.0.0" (instance $out)))"#;

/// A component exporting `f` as `export`, importing `import` (an empty instance) if given.
fn dependency(export: &str, import: Option<&str>) -> String {
    let import = import.map(|name| format!("(import \"{name}\" (instance))")).unwrap_or_default();
    format!(
        r#"(component {import}
  (core module $m (func (export "f") (result i32) i32.const 42))
  (core instance $i (instantiate $m))
  (func $f (result u32) (canon lift (core func $i "f")))
  (instance $out (export "f" (func $f)))
  (export "{export}" (instance $out)))"#
    )
}

/// An app whose component `main` has the given `[component.main.dependencies]` lines; `dep.wasm`
/// holds `dep`.
fn app(dir: &Path, dependencies: &str, dep: &str) -> (Manifest, std::path::PathBuf) {
    std::fs::write(dir.join("main.wasm"), wat::parse_str(MAIN).unwrap()).unwrap();
    std::fs::write(dir.join("dep.wasm"), wat::parse_str(dep).unwrap()).unwrap();
    let text = format!(
        "spin_manifest_version = 2\n[application]\nname = \"a\"\n[[trigger.http]]\nroute = \"/\"\ncomponent = \"main\"\n\
         [component.main]\nsource = \"main.wasm\"\n[component.main.dependencies]\n{dependencies}\n"
    );
    let manifest = Manifest::parse(text, &dir.join("spin.toml")).unwrap();
    (manifest, dir.join("main.wasm"))
}

fn compose_app(dependencies: &str, dep: &str) -> Result<Vec<u8>> {
    let dir = tempfile::tempdir().unwrap();
    let (manifest, main) = app(dir.path(), dependencies, dep);
    composed_bytes(&manifest, &manifest.components["main"], &main)
}

/// The imports and exports of a component.
fn names(bytes: Vec<u8>) -> (Vec<String>, Vec<String>) {
    let mut types = wac_graph::types::Types::default();
    let package = Package::from_bytes("t:t", None, bytes, &mut types).unwrap();
    let world = &types[package.ty()];
    (world.imports.keys().cloned().collect(), world.exports.keys().cloned().collect())
}

#[test]
fn satisfies_the_matching_import_and_keeps_the_rest() {
    for key in ["\"a:b/c@1.0.0\"", "\"a:b/c\"", "\"a:b\"", "\"a:b@1.0.0\""] {
        let bytes = compose_app(&format!("{key} = {{ path = \"dep.wasm\" }}"), &dependency("a:b/c@1.0.0", Some("wasi:io/poll@0.2.0"))).unwrap();
        let (imports, exports) = names(bytes);
        assert_eq!(imports, ["wasi:io/poll@0.2.0"], "{key}");
        assert_eq!(exports, ["a:b/main@1.0.0"], "{key}");
    }
}

#[test]
fn export_selects_another_name_and_composition_is_deterministic() {
    let entry = "\"a:b/c@1.0.0\" = { path = \"dep.wasm\", export = \"x:y/impl@2.0.0\" }";
    let first = compose_app(entry, &dependency("x:y/impl@2.0.0", None)).unwrap();
    let second = compose_app(entry, &dependency("x:y/impl@2.0.0", None)).unwrap();
    assert_eq!(first, second, "the same inputs compose to the same bytes, so the compile cache keeps one artifact");
    assert_eq!(names(first).0, ["wasi:io/poll@0.2.0"]);
}

#[test]
fn refusals_name_the_dependency_and_its_place() {
    let refused = |entry: &str, dep: String, needle: &str| {
        let err = compose_app(entry, &dep).unwrap_err();
        let text = format!("{err:#}");
        assert!(text.contains(needle), "{text} does not mention {needle:?}");
        assert!(text.contains("spin.toml:10:1"), "{text} is not at the entry");
    };
    refused("\"a:b/other\" = { path = \"dep.wasm\" }", dependency("a:b/c@1.0.0", None), "matches none of the component's imports");
    refused("\"a:b/c\" = { path = \"dep.wasm\" }", dependency("a:b/d@1.0.0", None), "has no export `a:b/c@1.0.0`");
    refused("\"a:b/c\" = { path = \"dep.wasm\", export = \"nope\" }", dependency("a:b/c@1.0.0", None), "has no export `nope`");
    for import in ["wasi:keyvalue/store@0.2.0-draft2", "wasi:http/outgoing-handler@0.2.4", "fermyon:spin/variables@2.0.0", "wasi:filesystem/preopens@0.2.0"] {
        refused("\"a:b/c\" = { path = \"dep.wasm\" }", dependency("a:b/c@1.0.0", Some(import)), &format!("imports `{import}`, which would use component `main`'s grants"));
    }
}

#[test]
fn an_inheriting_dependency_keeps_its_configuration_imports() {
    let entry = "\"a:b/c\" = { path = \"dep.wasm\", inherit_configuration = true }";
    let (imports, _) = names(compose_app(entry, &dependency("a:b/c@1.0.0", Some("wasi:keyvalue/store@0.2.0-draft2"))).unwrap());
    assert!(imports.contains(&"wasi:keyvalue/store@0.2.0-draft2".to_string()), "{imports:?}");
}

#[test]
fn which_interfaces_carry_configuration() {
    for name in ["wasi:filesystem/types@0.2.0", "wasi:sockets/tcp@0.2.0", "wasi:http/outgoing-handler@0.2.4", "wasi:http/client@0.3.0", "wasi:keyvalue/store@0.2.0-draft", "wasi:config/store@0.2.0-draft", "wasi:messaging/producer@0.2.0-draft", "fermyon:spin/key-value@2.0.0", "spin:sqlite/sqlite@3.1.0", "wasmcloud:bus/lattice@1.0.0"] {
        assert!(carries_configuration(name), "{name}");
    }
    for name in ["wasi:io/streams@0.2.0", "wasi:clocks/monotonic-clock@0.3.0", "wasi:random/random@0.2.0", "wasi:cli/stdout@0.2.0", "wasi:cli/exit@0.2.0", "wasi:http/types@0.3.0", "wasi:http/handler@0.3.0", "wasi:http/incoming-handler@0.2.4"] {
        assert!(!carries_configuration(name), "{name}");
    }
}
