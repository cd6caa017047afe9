//! Spin 4.0.x apps built with spin-sdk 6 from crates.io, unchanged: the `spin6_http` guest imports and
//! exports WASI `0.3.0-rc-2026-03-15` (through `wasip3` 0.6), whose interfaces Kiln serves under
//! their final `0.3.0` names (crates/engine/src/release_candidates.rs), with Spin's async
//! `spin:key-value@3.0.0` and `spin:variables@3.0.0`.

use crate::key_value::App;
use crate::single;
use kiln_e2e::serve::{AppArchive, KilnServe, http_app};

const GUEST: &str = "spin6_http";

fn spin6_app(extra: &str, env: &[(&str, &str)]) -> App {
    App::start(&single(GUEST, "/...", extra), None, &[], env)
}

#[test]
fn a_spin_sdk_6_app_is_served_unchanged_under_kiln_up() {
    let manifest = format!(
        "{}\n[variables]\ngreeting = {{ default = \"hi from variables\" }}\n\n[component.app.variables]\ngreeting = \"{{{{ greeting }}}}\"\n",
        single(GUEST, "/...", "key_value_stores = [\"default\"]\nallowed_outbound_hosts = [\"http://self\"]")
    );
    let app = App::start(&manifest, None, &[], &[]);
    assert_eq!(app.get("/hello"), (200, "hello from spin-sdk 6".into()), "{}", app.kiln.log());
    assert_eq!(app.get("/kv?op=set&key=colour&value=blue"), (200, "ok".into()));
    assert_eq!(app.get("/kv?op=set&key=shape&value=round"), (200, "ok".into()));
    assert_eq!(app.get("/kv?op=get&key=colour"), (200, "blue".into()));
    assert_eq!(app.get("/kv?op=get&key=missing"), (404, "none".into()));
    assert_eq!(app.get("/kv?op=keys"), (200, "colour\nshape".into()));
    assert_eq!(app.get("/variables?name=greeting"), (200, "hi from variables".into()));
    let (status, text) = app.get("/variables?name=nope");
    assert_eq!(status, 500, "{text}");
    assert!(text.starts_with("error: Undefined"), "{text}");
    // Outbound HTTP through the candidate's `wasi:http/client`, to this app itself, and a denial.
    assert_eq!(app.get("/outbound?url=/hello"), (200, "200\nhello from spin-sdk 6".into()));
    assert_eq!(app.get("/outbound?url=http://example.com/"), (502, "error: HttpRequestDenied".into()));
    // The request body streamed back through the candidate's `wasi:http/types` streams.
    let payload: Vec<u8> = (0..1u32 << 20).map(|i| (i % 251) as u8).collect();
    let response = kiln_e2e::kiln::client().post(app.kiln.url("/echo")).body(payload.clone()).send().expect("POST /echo");
    assert_eq!(response.status().as_u16(), 200);
    assert_eq!(response.headers().get("x-method").and_then(|v| v.to_str().ok()), Some("POST"));
    assert!(response.bytes().expect("echoed body").as_ref() == payload.as_slice());
}

#[test]
fn a_spin_sdk_6_app_without_grants_is_denied_and_a_trap_is_a_500() {
    let app = spin6_app("", &[]);
    assert_eq!(app.get("/kv?op=get&key=k"), (500, "error: AccessDenied".into()));
    let (status, text) = app.get("/trap");
    assert_eq!(status, 500, "{text}");
    assert_eq!(app.get("/hello"), (200, "hello from spin-sdk 6".into()));
}

#[test]
fn a_spin_sdk_6_app_runs_under_kiln_serve_beside_a_spin_sdk_7_one() {
    let dir = tempfile::tempdir().expect("temp dir");
    let serve = KilnServe::start(&crate::kiln_bin(), &dir.path().join("data"), &[]);
    let manifest = http_app("spin6", "spin6.wasm", "/...", "key_value_stores = [\"default\"]");
    serve.deploy_ok("spin6", "", AppArchive::new(&manifest).guest("spin6.wasm", GUEST).build());
    let spin7 = http_app("spin7", "spin7.wasm", "/...", "key_value_stores = [\"default\"]");
    serve.deploy_ok("spin7", "", AppArchive::new(&spin7).guest("spin7.wasm", "spin4_http").build());
    assert_eq!(serve.app_text("spin6", "/kv?op=set&key=k&value=from-rc"), "ok");
    assert_eq!(serve.app_text("spin6", "/kv?op=get&key=k"), "from-rc");
    assert_eq!(serve.app_text("spin6", "/hello"), "hello from spin-sdk 6");
    assert_eq!(serve.app_text("spin7", "/kv?op=set&key=k&value=from-final"), "ok");
    assert_eq!(serve.app_text("spin7", "/kv?op=get&key=k"), "from-final");
}

#[test]
fn a_release_candidate_kiln_does_not_serve_is_refused_with_what_to_rebuild_with() {
    // The same guest as built against an earlier candidate, whose types differ from 0.3.0 (the
    // version string has the same length, so the binary stays valid).
    let built = std::fs::read(kiln_e2e::guest(GUEST)).expect("read guest");
    let earlier = crate::engine::replace_all(&built, b"0.3.0-rc-2026-03-15", b"0.3.0-rc-2026-01-06");
    assert_ne!(earlier, built);
    let dir = tempfile::tempdir().expect("temp dir");
    let path = dir.path().join("earlier.wasm");
    std::fs::write(&path, earlier).expect("write guest");
    let manifest = single(GUEST, "/...", "").replace(&kiln_e2e::guest(GUEST).display().to_string(), &path.display().to_string());
    let stderr = crate::manifest::up_fails(&manifest);
    assert!(stderr.contains("component `app` cannot run on Kiln"), "{stderr}");
    assert!(stderr.contains("`wasi:http/handler@0.3.0-rc-2026-01-06`") || stderr.contains("`wasi:http/types@0.3.0-rc-2026-01-06`"), "{stderr}");
    assert!(stderr.contains("0.3.0-rc-2026-03-15") && stderr.contains("spin-sdk 7"), "{stderr}");
}
