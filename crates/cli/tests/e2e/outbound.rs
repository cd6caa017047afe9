//! Outbound HTTP: allowed_outbound_hosts as Spin enforces it, and in-process service chaining.

use crate::{body, example, serve};
use kiln_e2e::kiln::Kiln;
use kiln_e2e::serve::{AppArchive, KilnServe};

fn encode(url: &str) -> String {
    url.bytes()
        .map(|b| match b {
            b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' | b'-' | b'_' | b'.' | b'~' => (b as char).to_string(),
            _ => format!("%{b:02X}"),
        })
        .collect()
}

/// An upstream server for outbound requests: the hello example, served by another kiln.
fn upstream() -> Kiln {
    Kiln::up(&crate::kiln_bin(), &example("hello"), &[])
}

fn outbound_app(allowed: &str, extra: &str) -> (Kiln, tempfile::TempDir) {
    let manifest = crate::single("outbound", "/...", &format!("allowed_outbound_hosts = {allowed}\n{extra}"));
    serve(&manifest, &[], &[])
}

fn fetch(kiln: &Kiln, url: &str) -> (u16, String) {
    body(kiln.get(&format!("/?url={}", encode(url))))
}

#[test]
fn an_allowed_host_is_reached() {
    let upstream = upstream();
    let (kiln, _dir) = outbound_app(&format!("[\"http://{}\"]", upstream.addr), "");
    let (status, text) = fetch(&kiln, &upstream.url("/"));
    assert_eq!(status, 200, "{text}");
    assert!(text.contains("upstream-status: 200") && text.contains("hello world"), "{text}");
}

#[test]
fn a_host_not_allowed_is_denied_when_the_response_is_awaited() {
    let upstream = upstream();
    let (kiln, _dir) = outbound_app("[\"http://example.com\"]", "");
    let (status, text) = fetch(&kiln, &upstream.url("/"));
    assert_eq!(status, 502);
    assert_eq!(text.trim(), "response error: HttpRequestDenied");
    // Same host, other port: denied too.
    let (kiln, _dir) = outbound_app(&format!("[\"http://127.0.0.1:{}\"]", upstream.addr.port() as u32 + 1), "");
    assert_eq!(fetch(&kiln, &upstream.url("/")).1.trim(), "response error: HttpRequestDenied");
}

#[test]
fn no_allowed_hosts_means_no_network() {
    let upstream = upstream();
    let (kiln, _dir) = outbound_app("[]", "");
    assert_eq!(fetch(&kiln, &upstream.url("/")).1.trim(), "response error: HttpRequestDenied");
}

#[test]
fn cidr_wildcard_ports_and_templates_are_honoured() {
    let upstream = upstream();
    let port = upstream.addr.port();
    let (kiln, _dir) = outbound_app("[\"http://127.0.0.0/24:*\"]", "");
    assert_eq!(fetch(&kiln, &upstream.url("/")).0, 200);
    let (kiln, _dir) = outbound_app("[\"*://127.0.0.1:*\"]", "");
    assert_eq!(fetch(&kiln, &upstream.url("/")).0, 200);
    // A template resolved from a component variable, itself from an application variable.
    let manifest = crate::single(
        "outbound",
        "/...",
        "allowed_outbound_hosts = [\"http://127.0.0.1:{{ upstream_port }}\"]\nvariables = { upstream_port = \"{{ port }}\" }",
    )
    .replace("[[trigger.http]]", &format!("[variables]\nport = {{ default = \"{port}\" }}\n\n[[trigger.http]]"));
    let (kiln, _dir) = serve(&manifest, &[], &[]);
    assert_eq!(fetch(&kiln, &upstream.url("/")).0, 200, "{}", kiln.log());
}

#[test]
fn service_chaining_needs_its_own_grant() {
    let manifest = format!(
        r#"spin_manifest_version = 2
[application]
name = "chaining"
[[trigger.http]]
route = "/..."
component = "front"
[[trigger.http]]
route = {{ private = true }}
component = "back"
[component.front]
source = "{outbound}"
allowed_outbound_hosts = ["http://back.spin.internal"]
[component.back]
source = "{echo}"
"#,
        outbound = kiln_e2e::guest("outbound").display(),
        echo = kiln_e2e::guest("echo_request").display()
    );
    let (kiln, _dir) = serve(&manifest, &[], &[]);
    let (status, text) = fetch(&kiln, "http://back.spin.internal/inner?x=1");
    assert_eq!(status, 200, "{text}");
    assert!(text.contains("/inner?x=1"), "{text}");
    // A component not granted is refused.
    let (_, text) = fetch(&kiln, "http://front.spin.internal/");
    assert_eq!(text.trim(), "response error: HttpRequestDenied");
}

/// spin-sdk's `http-outbound` example: `send("/hello")` with `allowed_outbound_hosts = ["http://self"]`.
#[test]
fn a_relative_url_is_a_request_to_the_app_itself() {
    let manifest = |allowed: &str| {
        format!(
            "spin_manifest_version = 2\n[application]\nname = \"relative\"\n[[trigger.http]]\nroute = \"/...\"\ncomponent = \"front\"\n\
             [[trigger.http]]\nroute = \"/hello/...\"\ncomponent = \"hello\"\n[component.front]\nsource = \"{}\"\n\
             allowed_outbound_hosts = {allowed}\n[component.hello]\nsource = \"{}\"\n",
            kiln_e2e::guest("outbound").display(),
            kiln_e2e::guest("echo_request").display()
        )
    };
    let (kiln, _dir) = serve(&manifest("[\"http://self\"]"), &[], &[]);
    let (status, text) = fetch(&kiln, "/hello/there?x=1");
    assert_eq!(status, 200, "{text}");
    assert!(text.contains("upstream-status: 200") && text.contains("\"path_with_query\":\"/hello/there?x=1\""), "{text}");
    // Routed by the app's own router, with Spin's headers for the route it matched.
    assert!(text.contains("[\"spin-matched-route\",\"/hello/...\"]") && text.contains("[\"spin-path-info\",\"/there\"]"), "{text}");
    // As spin-sdk sends a relative URL: a port but no host.
    let (status, sdk) = fetch(&kiln, "http://:80/hello/sdk");
    assert!(status == 200 && sdk.contains("\"path_with_query\":\"/hello/sdk\""), "{sdk}");
    // Without the grant: denied, as for `http://self/...`.
    let (kiln, _dir) = serve(&manifest("[\"http://example.com\"]"), &[], &[]);
    let (status, text) = fetch(&kiln, "/hello/there");
    assert_eq!((status, text.trim()), (502, "response error: HttpRequestDenied"));
}

/// The same app deployed to `kiln serve`: a relative URL reaches the deployed app itself.
#[test]
fn a_relative_url_is_a_request_to_the_app_itself_under_kiln_serve() {
    let manifest = "spin_manifest_version = 2\n[application]\nname = \"relative\"\n[[trigger.http]]\nroute = \"/...\"\ncomponent = \"front\"\n\
        [[trigger.http]]\nroute = \"/hello/...\"\ncomponent = \"hello\"\n[component.front]\nsource = \"front.wasm\"\n\
        allowed_outbound_hosts = [\"http://self\"]\n[component.hello]\nsource = \"hello.wasm\"\n";
    let dir = tempfile::tempdir().expect("temp dir");
    let serve = KilnServe::start(&crate::kiln_bin(), &dir.path().join("data"), &[]);
    let archive = AppArchive::new(manifest).guest("front.wasm", "outbound").guest("hello.wasm", "echo_request").build();
    serve.deploy_ok("relative", "", archive);
    let text = serve.app_text("relative", &format!("/?url={}", encode("/hello/there?x=1")));
    assert!(text.contains("upstream-status: 200") && text.contains("\"path_with_query\":\"/hello/there?x=1\""), "{text}");
    assert!(text.contains("[\"spin-matched-route\",\"/hello/...\"]"), "{text}");
}

#[test]
fn http_self_reaches_the_app_in_process() {
    let (kiln, _dir) = outbound_app("[\"http://self\"]", "");
    // The outbound guest itself answers at every path: ask it for a URL that is not allowed.
    let inner = format!("http://self/?url={}", encode("http://example.com/"));
    let (status, text) = fetch(&kiln, &inner);
    assert_eq!(status, 200, "{text}");
    assert!(text.contains("upstream-status: 502") && text.contains("HttpRequestDenied"), "{text}");
}
