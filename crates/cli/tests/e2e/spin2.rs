//! Spin 2.x apps as users built them with spin-sdk 2.2 from crates.io: the `spin2_http` guest, a
//! `wasm32-wasip1` module (as `spin build` made them then) that Kiln componentizes at load. It
//! imports WASI `0.2.0-rc-2023-10-18` (`wasi:io`, `wasi:http` types and outgoing handler) and
//! exports `wasi:http/incoming-handler@0.2.0-rc-2023-10-18`, which Kiln serves by forwarding to
//! its WASI 0.2 host (`kiln-wasi-rc`). Spin 2's own interfaces (`fermyon:spin/key-value@2.0.0`,
//! `variables@2.0.0`) are the ones Spin 3 guests use.

use crate::key_value::{App, at};
use crate::single;
use kiln_e2e::kiln::{Kiln, client};
use kiln_e2e::serve::{AppArchive, KilnServe};

const GUEST: &str = "spin2_http";

fn spin2_app(extra: &str) -> App {
    App::start(&single(GUEST, "/...", extra), None, &[], &[])
}

#[test]
fn a_spin_2_app_answers_and_echoes_a_body() {
    let app = spin2_app("");
    assert_eq!(app.get("/hello"), (200, "hello from spin-sdk 2.2".into()));
    assert_eq!(app.get("/nested/path/hello"), (200, "hello from spin-sdk 2.2".into()));
    // 300 kB both ways: through the candidate's input and output streams.
    let payload: Vec<u8> = (0..300_000u32).map(|i| (i % 251) as u8).collect();
    let response = client().post(app.kiln.url("/echo")).body(payload.clone()).send().expect("POST /echo");
    assert_eq!(response.status().as_u16(), 200, "{}", app.kiln.log());
    let echoed = response.bytes().expect("echoed body");
    assert!(echoed.as_ref() == payload.as_slice(), "echoed {} bytes, sent {}", echoed.len(), payload.len());
    let empty = client().post(app.kiln.url("/echo")).send().expect("POST /echo");
    assert_eq!(empty.status().as_u16(), 200);
    assert_eq!(empty.bytes().expect("body").len(), 0);
}

#[test]
fn a_spin_2_app_uses_key_value() {
    let app = spin2_app("key_value_stores = [\"default\"]");
    assert_eq!(app.get(&at("/kv", &[("op", "get"), ("key", "greeting")])), (404, "none".into()));
    assert_eq!(app.get(&at("/kv", &[("op", "set"), ("key", "greeting"), ("value", "hi there")])), (200, "ok".into()));
    assert_eq!(app.get(&at("/kv", &[("op", "get"), ("key", "greeting")])), (200, "hi there".into()));
    // Not granted: the store does not open.
    let denied = spin2_app("");
    let (status, text) = denied.get(&at("/kv", &[("op", "get"), ("key", "greeting")]));
    assert_eq!(status, 500, "{text}");
    assert!(text.starts_with("open: "), "{text}");
}

#[test]
fn a_spin_2_app_reads_variables() {
    let app = spin2_app("[component.app.variables]\ngreeting = \"hello {{ who }}\"\n\n[variables]\nwho = { default = \"world\" }\n");
    assert_eq!(app.get(&at("/variables", &[("name", "greeting")])), (200, "hello world".into()));
    let (status, text) = app.get(&at("/variables", &[("name", "missing")]));
    assert_eq!(status, 500, "{text}");
    assert!(text.starts_with("variable error: "), "{text}");
}

#[test]
fn a_spin_2_app_sends_outbound_requests_where_allowed() {
    let upstream = Kiln::up(&crate::kiln_bin(), &crate::example("hello"), &[]);
    let app = spin2_app(&format!("allowed_outbound_hosts = [\"http://{}\", \"http://self\"]", upstream.addr));
    let (status, text) = app.get(&at("/outbound", &[("url", &upstream.url("/"))]));
    assert_eq!(status, 200, "{text}\n{}", app.kiln.log());
    assert!(text.starts_with("200 ") && text.contains("hello"), "{text}");
    // A relative URL is a request to the app itself (`http://self`), as for a WASI 0.2 guest.
    assert_eq!(app.get(&at("/outbound", &[("url", "/hello")])), (200, "200 hello from spin-sdk 2.2".into()));
    // Not allowed: refused when the guest awaits the response, with the reason.
    let (status, text) = app.get(&at("/outbound", &[("url", "http://example.com/")]));
    assert_eq!(status, 502, "{text}");
    assert!(text.starts_with("outbound error: ") && text.contains("HttpRequestDenied"), "{text}");
    let none = spin2_app("");
    let (status, text) = none.get(&at("/outbound", &[("url", &upstream.url("/"))]));
    assert_eq!(status, 502, "{text}");
    assert!(text.contains("HttpRequestDenied"), "{text}");
    assert_eq!(none.get(&at("/outbound", &[("url", "/hello")])).0, 502);
}

/// A Spin 2 app deployed to `kiln serve`: the same forwarding in platform mode.
#[test]
fn a_spin_2_app_under_kiln_serve() {
    let manifest = "spin_manifest_version = 2\n[application]\nname = \"spin2\"\n[[trigger.http]]\nroute = \"/...\"\ncomponent = \"app\"\n\
        [component.app]\nsource = \"app.wasm\"\nkey_value_stores = [\"default\"]\nallowed_outbound_hosts = [\"http://self\"]\n";
    let dir = tempfile::tempdir().expect("temp dir");
    let serve = KilnServe::start(&crate::kiln_bin(), &dir.path().join("data"), &[]);
    serve.deploy_ok("spin2", "", AppArchive::new(manifest).guest("app.wasm", GUEST).build());
    assert_eq!(serve.app_text("spin2", "/hello"), "hello from spin-sdk 2.2");
    assert_eq!(serve.app_text("spin2", &at("/kv", &[("op", "set"), ("key", "k"), ("value", "v")])), "ok");
    assert_eq!(serve.app_text("spin2", &at("/kv", &[("op", "get"), ("key", "k")])), "v");
    assert_eq!(serve.app_text("spin2", &at("/outbound", &[("url", "/hello")])), "200 hello from spin-sdk 2.2");
}
