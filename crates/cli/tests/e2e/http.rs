//! Routing, Spin's headers, the well-known endpoints, streaming.

use crate::{body, example, serve, single};
use kiln_e2e::kiln::{Kiln, client};
use std::io::{BufRead, BufReader, Read, Write};
use std::net::TcpStream;
use std::time::Duration;

/// Response headers beyond these come from the guest, never from Kiln.
const HOST_HEADERS: [&str; 3] = ["date", "content-length", "transfer-encoding"];

#[test]
fn hello_example_answers_with_no_extra_headers() {
    let kiln = Kiln::up(&crate::kiln_bin(), &example("hello"), &[]);
    let response = kiln.get("/");
    let names: Vec<String> = response.headers().keys().map(|k| k.to_string()).collect();
    for name in &names {
        assert!(HOST_HEADERS.contains(&name.as_str()), "unexpected response header {name}: {names:?}");
    }
    assert_eq!(body(response), (200, "hello world".to_string()));
    assert_eq!(body(kiln.get("/any/path/at/all")).0, 200);
}

#[test]
fn routes_example_exact_wildcard_named_private_and_chaining() {
    let kiln = Kiln::up(&crate::kiln_bin(), &example("routes"), &[]);
    let (status, index) = body(kiln.get("/"));
    assert_eq!(status, 200, "{index}");
    let (status, api) = body(kiln.get("/api/orders/7"));
    assert_eq!(status, 200);
    assert!(api.contains("/orders/7"), "path info missing: {api}");
    assert_eq!(body(kiln.get("/users/42")), (200, "user 42".to_string()));
    // The private component has no public route …
    let (status, text) = body(kiln.get("/internal"));
    assert_ne!(text, "internal says hi", "private component reachable from outside (status {status})");
    // … but other components reach it in-process.
    assert_eq!(body(kiln.get("/chain")), (200, "internal says hi".to_string()));
}

fn echo(kiln: &Kiln, path: &str, host: &str) -> serde_json::Value {
    let response = client()
        .get(kiln.url(path))
        .header("host", host)
        .header("spin-client-addr", "6.6.6.6:666")
        .header("spin-bogus", "spoofed")
        .send()
        .expect("request");
    assert_eq!(response.status(), 200, "{}", kiln.log());
    serde_json::from_str(&response.text().unwrap()).expect("echo JSON")
}

fn header<'a>(echoed: &'a serde_json::Value, name: &str) -> Vec<&'a str> {
    echoed["headers"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|pair| pair[0].as_str() == Some(name))
        .map(|pair| pair[1].as_str().unwrap())
        .collect()
}

#[test]
fn spin_headers_exactly_as_spin_sets_them() {
    let manifest = single("echo_request", "/base/:path_segment/:path_end/...", "");
    let (kiln, _dir) = serve(&manifest, &[], &[]);
    let echoed = echo(&kiln, "/base/path/end/rest?key=value", "example.com");
    let expected = [
        ("spin-full-url", "http://example.com/base/path/end/rest?key=value"),
        ("spin-path-info", "/rest"),
        ("spin-matched-route", "/base/:path_segment/:path_end/..."),
        ("spin-base-path", "/"),
        ("spin-raw-component-route", "/base/:path_segment/:path_end/..."),
        ("spin-component-route", "/base/:path_segment/:path_end"),
        ("spin-path-match-path-segment", "path"),
        ("spin-path-match-path-end", "end"),
    ];
    for (name, value) in expected {
        assert_eq!(header(&echoed, name), vec![value], "header {name} in {echoed}");
    }
    let client_addr = header(&echoed, "spin-client-addr");
    assert_eq!(client_addr.len(), 1);
    assert!(client_addr[0].starts_with("127.0.0.1:"), "client addr was spoofable: {client_addr:?}");
    let spin_names: Vec<&str> = echoed["headers"]
        .as_array()
        .unwrap()
        .iter()
        .map(|pair| pair[0].as_str().unwrap())
        .filter(|name| name.starts_with("spin-"))
        .collect();
    assert_eq!(spin_names.len(), expected.len() + 1, "exactly Spin's spin-* headers: {spin_names:?}");
    assert_eq!(echoed["authority"], "example.com");
    assert_eq!(echoed["path_with_query"], "/base/path/end/rest?key=value");
}

#[test]
fn exact_routes_beat_wildcards_and_longest_prefix_wins() {
    let echo = kiln_e2e::guest("echo_request").display().to_string();
    let manifest = format!(
        r#"spin_manifest_version = 2
[application]
name = "precedence"
[[trigger.http]]
route = "/..."
component = "catch-all"
[[trigger.http]]
route = "/a/..."
component = "a"
[[trigger.http]]
route = "/a/b/..."
component = "ab"
[[trigger.http]]
route = "/a/b/exact"
component = "exact"
[component.catch-all]
source = "{echo}"
environment = {{ WHO = "catch-all" }}
[component.a]
source = "{echo}"
environment = {{ WHO = "a" }}
[component.ab]
source = "{echo}"
environment = {{ WHO = "ab" }}
[component.exact]
source = "{echo}"
environment = {{ WHO = "exact" }}
"#
    );
    let (kiln, _dir) = serve(&manifest, &[], &[]);
    let who = |path: &str| {
        let echoed: serde_json::Value = serde_json::from_str(&kiln.get(path).text().unwrap()).unwrap();
        echoed["env"].as_array().unwrap().iter().find(|p| p[0] == "WHO").map(|p| p[1].as_str().unwrap().to_string()).unwrap()
    };
    assert_eq!(who("/a/b/exact"), "exact");
    assert_eq!(who("/a/b/exact/more"), "ab");
    assert_eq!(who("/a/b/c"), "ab");
    assert_eq!(who("/a/x"), "a");
    assert_eq!(who("/z"), "catch-all");
}

#[test]
fn unmatched_path_gets_404_with_a_hint() {
    let (kiln, _dir) = serve(&single("echo_request", "/only", ""), &[], &[]);
    let (status, text) = body(kiln.get("/elsewhere"));
    assert_eq!(status, 404);
    assert!(text.contains("/only"), "404 should list the routes: {text}");
}

#[test]
fn well_known_health_and_info() {
    let (kiln, _dir) = serve(&single("echo_request", "/...", ""), &[], &[]);
    assert_eq!(body(kiln.get("/.well-known/spin/health")).0, 200);
    let (status, info) = body(kiln.get("/.well-known/spin/info"));
    assert_eq!(status, 200);
    let info: serde_json::Value = serde_json::from_str(&info).unwrap();
    assert_eq!(info["name"], "test-echo_request");
}

#[test]
fn environment_reaches_the_guest_and_its_output_reaches_the_log() {
    let manifest = single("echo_request", "/...", "environment = { GREETING = \"hi there\" }");
    let (kiln, _dir) = serve(&manifest, &[], &[]);
    let echoed = echo(&kiln, "/", "localhost");
    let env = echoed["env"].as_array().unwrap();
    assert!(env.iter().any(|p| p[0] == "GREETING" && p[1] == "hi there"), "{env:?}");
    assert!(env.iter().all(|p| p[0] != "PATH"), "host environment leaked into the guest: {env:?}");
    assert!(kiln.wait_for_log("[app] echo stdout line", Duration::from_secs(5)), "{}", kiln.log());
    assert!(kiln.wait_for_log("[app] echo stderr line", Duration::from_secs(5)), "{}", kiln.log());
}

#[test]
fn request_and_response_bodies_stream() {
    let (kiln, _dir) = serve(&single("stream_echo", "/...", ""), &[], &[]);
    let mut stream = TcpStream::connect(kiln.addr).unwrap();
    stream.set_read_timeout(Some(Duration::from_secs(20))).unwrap();
    write!(stream, "POST /echo HTTP/1.1\r\nhost: x\r\ntransfer-encoding: chunked\r\n\r\n").unwrap();
    let mut reader = BufReader::new(stream.try_clone().unwrap());
    // Response headers arrive before the request body has ended.
    write!(stream, "5\r\nfirst\r\n").unwrap();
    let mut status = String::new();
    reader.read_line(&mut status).unwrap();
    assert!(status.starts_with("HTTP/1.1 200"), "{status}");
    loop {
        let mut line = String::new();
        reader.read_line(&mut line).unwrap();
        if line == "\r\n" {
            break;
        }
    }
    // Each piece comes back while the request is still open.
    assert_eq!(read_chunk(&mut reader), "first");
    write!(stream, "6\r\nsecond\r\n").unwrap();
    assert_eq!(read_chunk(&mut reader), "second");
    write!(stream, "0\r\n\r\n").unwrap();
    assert_eq!(read_chunk(&mut reader), "", "body ends after the request body ends");
}

/// Reads one chunk of a chunked body (the empty string for the last, zero-length chunk).
fn read_chunk(reader: &mut BufReader<TcpStream>) -> String {
    let mut size = String::new();
    reader.read_line(&mut size).unwrap();
    let size = usize::from_str_radix(size.trim(), 16).unwrap_or_else(|_| panic!("bad chunk size {size:?}"));
    let mut data = vec![0; size + 2];
    reader.read_exact(&mut data).unwrap();
    data.truncate(size);
    String::from_utf8(data).unwrap()
}
