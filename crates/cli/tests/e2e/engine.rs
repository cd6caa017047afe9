//! Loading: core modules, newer WASI versions, the compile cache.

use crate::{body, serve_guest};
use kiln_e2e::kiln::Kiln;

#[test]
fn a_wasip1_core_module_is_componentized_on_load() {
    let (kiln, _dir) = serve_guest("hello_core_wasip1", &[]);
    assert_eq!(body(kiln.get("/")), (200, "hello from a core module".to_string()));
}

#[test]
fn a_wasm32_unknown_unknown_core_module_is_componentized_on_load() {
    let (kiln, _dir) = serve_guest("hello_core_unknown", &[]);
    assert_eq!(body(kiln.get("/")), (200, "hello from wasm32-unknown-unknown".to_string()));
}

#[test]
fn a_guest_importing_newer_wasi_links_semver_compatibly() {
    // The guest imports and exports `wasi:*@0.2.12`, wasmtime 48's own version; renamed to a
    // later 0.2.x (a string of the same length, so the binary stays valid), it must still link,
    // as a guest built against a newer WASI 0.2 would.
    let built = std::fs::read(kiln_e2e::guest("semver_newer")).expect("read guest");
    let renamed = replace_all(&built, b"@0.2.12", b"@0.2.99");
    assert_ne!(renamed, built, "the guest no longer names @0.2.12");
    let dir = tempfile::tempdir().expect("temp dir");
    let path = dir.path().join("newer.wasm");
    std::fs::write(&path, renamed).expect("write guest");
    let manifest = crate::single("semver_newer", "/...", "").replace(&kiln_e2e::guest("semver_newer").display().to_string(), &path.display().to_string());
    let (kiln, _app_dir) = crate::serve(&manifest, &[], &[]);
    assert_eq!(body(kiln.get("/")), (200, "semver ok".to_string()));
    let (kiln, _dir) = serve_guest("semver_newer", &[]);
    assert_eq!(body(kiln.get("/")), (200, "semver ok".to_string()));
}

pub(crate) fn replace_all(haystack: &[u8], from: &[u8], to: &[u8]) -> Vec<u8> {
    let mut out = Vec::with_capacity(haystack.len());
    let mut i = 0;
    while i < haystack.len() {
        if haystack[i..].starts_with(from) {
            out.extend_from_slice(to);
            i += from.len();
        } else {
            out.push(haystack[i]);
            i += 1;
        }
    }
    out
}

#[test]
fn compiled_artifacts_are_cached_and_a_corrupt_one_is_recompiled() {
    let cache = tempfile::tempdir().unwrap();
    let cache_arg = cache.path().to_str().unwrap().to_string();
    let manifest = crate::example("hello");
    let artifacts = || -> Vec<std::path::PathBuf> {
        std::fs::read_dir(cache.path()).unwrap().map(|e| e.unwrap().path()).filter(|p| p.extension().is_some_and(|x| x == "cwasm")).collect()
    };
    {
        let kiln = Kiln::up(&crate::kiln_bin(), &manifest, &["--cache-dir", &cache_arg]);
        assert_eq!(kiln.get("/").status(), 200);
    }
    let cached = artifacts();
    assert_eq!(cached.len(), 1, "one artifact for one component");
    let modified = std::fs::metadata(&cached[0]).unwrap().modified().unwrap();
    {
        let kiln = Kiln::up(&crate::kiln_bin(), &manifest, &["--cache-dir", &cache_arg]);
        assert_eq!(kiln.get("/").status(), 200);
    }
    assert_eq!(std::fs::metadata(&cached[0]).unwrap().modified().unwrap(), modified, "a warm start must reuse the artifact");
    std::fs::write(&cached[0], b"garbage").unwrap();
    let kiln = Kiln::up(&crate::kiln_bin(), &manifest, &["--cache-dir", &cache_arg]);
    assert_eq!(body(kiln.get("/")), (200, "hello world".to_string()));
    assert!(std::fs::read(&cached[0]).unwrap().len() > 1000, "the corrupt artifact was replaced");
}
