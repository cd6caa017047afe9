//! Platform mode: `kiln serve` with apps deployed, updated and removed over the admin API.

use crate::kiln_bin;
use kiln_e2e::kiln::client;
use kiln_e2e::serve::{AppArchive, KilnServe, http_app};
use serde_json::Value;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::time::{Duration, Instant};

fn start(extra: &[&str]) -> (KilnServe, tempfile::TempDir) {
    let dir = tempfile::tempdir().expect("temp dir");
    let serve = KilnServe::start(&kiln_bin(), &dir.path().join("data"), extra);
    (serve, dir)
}

/// The echo guest with `VERSION` in its environment: its JSON answer names the version.
fn echo_app(version: &str) -> Vec<u8> {
    let manifest = http_app("echo", "echo.wasm", "/...", &format!("environment = {{ VERSION = \"{version}\" }}"));
    AppArchive::new(&manifest).guest("echo.wasm", "echo_request").build()
}

/// The README's hello example: answers `hello world`.
fn hello_app() -> Vec<u8> {
    let wasm = std::fs::read(kiln_e2e::examples_dir().join("target/wasm32-wasip2/release/hello.wasm")).expect("the hello example is built");
    AppArchive::new(&http_app("hello", "hello.wasm", "/...", "")).file("hello.wasm", wasm).build()
}

/// `"VERSION","<version>"`: how the echo guest's JSON shows its environment variable.
fn version_is(text: &str, version: &str) -> bool {
    text.contains(&format!("[\"VERSION\",\"{version}\"]"))
}

/// A header from the echo guest's JSON (`headers` is a list of `[name, value]` pairs).
fn echoed_header<'a>(echoed: &'a Value, name: &str) -> Option<&'a str> {
    echoed["headers"].as_array()?.iter().find(|pair| pair[0] == name)?[1].as_str()
}

fn names(list: &Value) -> Vec<String> {
    list["apps"].as_array().expect("apps array").iter().map(|app| app["name"].as_str().unwrap_or_default().to_string()).collect()
}

#[test]
fn deploy_call_update_and_remove() {
    let (serve, _dir) = start(&[]);
    let created = serve.deploy_ok("echo", "", echo_app("one"));
    assert_eq!(created["version"], 1, "{created}");
    assert_eq!(created["routes"][0]["route"], "/...", "{created}");
    assert!(version_is(&serve.app_text("echo", "/hi"), "one"));

    let (status, updated) = serve.deploy("echo", "", echo_app("two"));
    assert_eq!(status, 200, "an update answers 200: {updated}");
    assert_eq!(updated["version"], 2);
    assert!(version_is(&serve.app_text("echo", "/hi"), "two"), "new requests get the new version");

    serve.deploy_ok("hello", "", hello_app());
    let (_, list) = serve.admin("GET", "/v1/apps");
    assert_eq!(names(&list), ["echo", "hello"]);
    let (status, shown) = serve.admin("GET", "/v1/apps/echo");
    assert_eq!(status, 200);
    assert!(shown["requests_total"].as_u64().unwrap_or(0) >= 2, "{shown}");

    let (status, _) = serve.admin("DELETE", "/v1/apps/echo");
    assert_eq!(status, 204);
    assert_eq!(serve.app_get("echo", "/hi").status(), 404, "a removed app answers no more");
    assert!(!serve.data_dir.join("apps/echo").exists(), "its files and state are deleted");
    assert_eq!(serve.app_text("hello", "/"), "hello world", "the other app is untouched");
    assert_eq!(serve.admin("DELETE", "/v1/apps/echo").0, 404);
}

#[test]
fn an_update_under_load_fails_no_request() {
    let (serve, _dir) = start(&["-q"]);
    serve.deploy_ok("echo", "", echo_app("v0"));
    let serve = Arc::new(serve);
    let stop = Arc::new(AtomicBool::new(false));
    let (ok, failed) = (Arc::new(AtomicUsize::new(0)), Arc::new(AtomicUsize::new(0)));
    let load: Vec<_> = (0..4)
        .map(|_| {
            let (serve, stop, ok, failed) = (serve.clone(), stop.clone(), ok.clone(), failed.clone());
            std::thread::spawn(move || {
                let mut failures = Vec::new();
                while !stop.load(Ordering::Relaxed) {
                    let response = serve.app_get("echo", "/load");
                    let status = response.status().as_u16();
                    let text = response.text().unwrap_or_default();
                    if status == 200 && text.contains("[\"VERSION\",\"v") {
                        ok.fetch_add(1, Ordering::Relaxed);
                    } else {
                        failed.fetch_add(1, Ordering::Relaxed);
                        failures.push(format!("{status} {text}"));
                    }
                }
                failures
            })
        })
        .collect();
    for version in 1..=4 {
        std::thread::sleep(Duration::from_millis(300));
        let deployed = serve.deploy_ok("echo", "", echo_app(&format!("v{version}")));
        assert_eq!(deployed["version"], version + 1);
        // From the moment the deploy returned, new requests get the new version.
        assert!(version_is(&serve.app_text("echo", "/after"), &format!("v{version}")));
    }
    std::thread::sleep(Duration::from_millis(300));
    stop.store(true, Ordering::Relaxed);
    let failures: Vec<String> = load.into_iter().flat_map(|thread| thread.join().expect("load thread")).collect();
    assert!(failures.is_empty(), "{} of {} requests failed during updates: {:?}", failures.len(), ok.load(Ordering::Relaxed) + failures.len(), &failures[..failures.len().min(5)]);
    assert!(ok.load(Ordering::Relaxed) > 50, "the load ran ({} requests)", ok.load(Ordering::Relaxed));
}

#[test]
fn requests_in_flight_finish_on_the_version_they_started_on() {
    let (serve, _dir) = start(&[]);
    serve.deploy_ok("swap", "", AppArchive::new(&http_app("swap", "sleep.wasm", "/...", "")).guest("sleep.wasm", "sleep").build());
    let serve = Arc::new(serve);
    let slow = {
        let serve = serve.clone();
        std::thread::spawn(move || {
            let response = serve.app_get("swap", "/?ms=1500");
            (response.status().as_u16(), response.text().unwrap_or_default())
        })
    };
    std::thread::sleep(Duration::from_millis(300));
    serve.deploy_ok("swap", "", hello_app());
    assert_eq!(serve.app_text("swap", "/?ms=1500"), "hello world", "new requests get the new version at once");
    assert_eq!(slow.join().expect("slow request"), (200, "slept 1500".to_string()), "the running request finished on the old version");
    let started = Instant::now();
    while std::fs::read_dir(serve.data_dir.join("apps/swap")).unwrap().flatten().any(|e| e.file_name() == "v1") {
        assert!(started.elapsed() < Duration::from_secs(10), "the old version is deleted once drained");
        std::thread::sleep(Duration::from_millis(50));
    }
}

#[test]
fn apps_survive_a_restart_of_the_host() {
    let dir = tempfile::tempdir().expect("temp dir");
    let data = dir.path().join("data");
    let mut first = KilnServe::start(&kiln_bin(), &data, &[]);
    first.deploy_ok("hello", "", hello_app());
    first.deploy_ok("echo", "max_concurrency=3&route_prefix=/e", echo_app("kept"));
    first.deploy_ok("echo", "max_concurrency=3&route_prefix=/e", echo_app("kept-2"));
    let token = first.token.clone();
    first.kiln.signal("TERM");
    let status = first.kiln.wait_exit(Duration::from_secs(15)).expect("kiln serve stops on SIGTERM");
    assert!(status.success(), "a graceful stop exits 0: {status}\n{}", first.kiln.log());
    drop(first);

    let second = KilnServe::start(&kiln_bin(), &data, &[]);
    assert_eq!(second.token, token, "the token is made once and kept");
    let (_, list) = second.admin("GET", "/v1/apps");
    assert_eq!(names(&list), ["echo", "hello"]);
    let echo = &list["apps"][0];
    assert_eq!(echo["version"], 2, "{echo}");
    assert_eq!(echo["limits"]["max_concurrency"], 3, "{echo}");
    assert_eq!(echo["status"], "idle", "restored apps are loaded on their first request: {echo}");
    assert_eq!(second.app_text("hello", "/"), "hello world");
    assert!(version_is(&second.app_text("echo", "/e/x"), "kept-2"));
    let versions: Vec<_> = std::fs::read_dir(data.join("apps/echo")).unwrap().map(|e| e.unwrap().file_name().to_string_lossy().into_owned()).collect();
    assert!(!versions.contains(&"v1".to_string()), "the replaced version was deleted: {versions:?}");
}

#[test]
fn a_bad_token_is_refused_and_changes_nothing() {
    let (serve, _dir) = start(&[]);
    serve.deploy_ok("hello", "", hello_app());
    let wrong = "0".repeat(64);
    for (method, path) in [("PUT", "/v1/apps/evil"), ("DELETE", "/v1/apps/hello"), ("GET", "/v1/apps"), ("GET", "/metrics")] {
        let request = client().request(reqwest::Method::from_bytes(method.as_bytes()).unwrap(), serve.admin_url(path));
        for request in [request.try_clone().unwrap().bearer_auth(&wrong), request] {
            let response = request.body(hello_app()).send().expect("request");
            assert_eq!(response.status(), 401, "{method} {path}");
            assert_eq!(response.headers().get("www-authenticate").map(|v| v.to_str().unwrap()), Some("Bearer"));
            let body: Value = serde_json::from_str(&response.text().unwrap()).expect("JSON error");
            assert!(body["error"].as_str().unwrap_or_default().contains("bearer token"), "{body}");
        }
    }
    let (_, list) = serve.admin("GET", "/v1/apps");
    assert_eq!(names(&list), ["hello"], "nothing was deployed or removed");
    assert!(!serve.data_dir.join("apps/evil").exists());
    let token_mode = std::fs::metadata(serve.data_dir.join("admin-token")).unwrap();
    use std::os::unix::fs::PermissionsExt;
    assert_eq!(token_mode.permissions().mode() & 0o777, 0o600);
}

#[test]
fn bad_uploads_get_precise_errors_and_change_nothing() {
    let (serve, _dir) = start(&["--max-upload", "2000000"]);
    serve.deploy_ok("echo", "", echo_app("good"));
    let broken_manifest = "spin_manifest_version = 2\n[application]\nname = \"x\"\n[[trigger.http]]\nroute = \"/...\"\ncomponent = \"nope\"\n";
    let cases: Vec<(&str, Vec<u8>, &str, u16, &str)> = vec![
        ("echo", b"not an archive".to_vec(), "", 400, "not a gzip-compressed tar"),
        ("echo", AppArchive::new("x").build(), "", 400, "kiln.toml:1:"),
        ("echo", AppArchive::new(broken_manifest).build(), "", 400, "kiln.toml:"),
        ("echo", AppArchive::new(&http_app("echo", "missing.wasm", "/...", "")).build(), "", 400, "kiln.toml:8:10"),
        ("echo", AppArchive::new(&http_app("echo", "../../echo/v1/echo.wasm", "/...", "")).build(), "", 400, "must be a file in the uploaded archive"),
        ("echo", AppArchive::new(&http_app("echo", "e.wasm", "/...", "files = [{ source = \"../../echo/state\", destination = \"/s\" }]")).guest("e.wasm", "echo_request").build(), "", 400, "inside the application directory"),
        ("echo", echo_app("x"), "max_concurrency=0", 400, "max_concurrency"),
        ("echo", echo_app("x"), "memory_limit_mib=100000", 400, "memory_limit_mib"),
        ("Bad_Name", echo_app("x"), "", 400, "not a valid app name"),
    ];
    for (name, archive, query, status, message) in cases {
        let (got, body) = serve.deploy(name, query, archive);
        assert_eq!(got, status, "{name}?{query}: {body}");
        assert!(body["error"].as_str().unwrap_or_default().contains(message), "{name}?{query}: expected `{message}` in {body}");
    }
    // An upload declared larger than --max-upload is refused before its body is read.
    let head = format!("PUT /v1/apps/echo HTTP/1.1\r\nhost: admin\r\nauthorization: Bearer {}\r\ncontent-length: 2100000\r\n\r\n", serve.token);
    let answer = raw_exchange(serve.admin, head.as_bytes());
    assert!(answer.starts_with("HTTP/1.1 413") && answer.contains("larger than this host's limit"), "{answer}");

    let (_, shown) = serve.admin("GET", "/v1/apps/echo");
    assert_eq!(shown["version"], 1, "failed deploys changed nothing: {shown}");
    assert!(version_is(&serve.app_text("echo", "/"), "good"));
    let (_, list) = serve.admin("GET", "/v1/apps");
    assert_eq!(names(&list), ["echo"]);
    let left: Vec<_> = std::fs::read_dir(serve.data_dir.join("apps/echo")).unwrap().map(|e| e.unwrap().file_name().to_string_lossy().into_owned()).collect();
    assert!(left.iter().all(|name| ["app.json", "state", "v1"].contains(&name.as_str())), "failed deploys left files behind: {left:?}");
}

#[test]
fn archives_cannot_escape_the_app_directory() {
    let (serve, _dir) = start(&[]);
    let archive = AppArchive::new(&http_app("evil", "e.wasm", "/...", "")).file("../../escaped", "evil").build();
    let (status, body) = serve.deploy("evil", "", archive);
    assert_eq!(status, 400, "{body}");
    assert!(body["error"].as_str().unwrap_or_default().contains("`..` is not allowed"), "{body}");
    assert!(!serve.data_dir.join("escaped").exists() && !serve.data_dir.join("apps/escaped").exists());
    assert!(!serve.data_dir.join("apps/evil").exists(), "a failed first deploy leaves nothing");
    // A directory trigger would watch and write the host's directories: refused on a shared host.
    let manifest = format!("{}[[trigger.directory]]\npath = \"../../../etc\"\noutput = \"out\"\ncomponent = \"evil\"\n", http_app("evil", "e.wasm", "/...", ""));
    let (status, body) = serve.deploy("evil", "", AppArchive::new(&manifest).guest("e.wasm", "echo_request").build());
    assert_eq!(status, 400, "{body}");
    assert!(body["error"].as_str().unwrap_or_default().contains("`[[trigger.directory]]` runs under `kiln up`"), "{body}");
}

#[test]
fn apps_are_isolated_from_each_other() {
    let (serve, _dir) = start(&[]);
    let kv = |name: &str| {
        let manifest = http_app(name, "kv.wasm", "/...", "key_value_stores = [\"default\"]");
        AppArchive::new(&manifest).guest("kv.wasm", "spin_kv").build()
    };
    serve.deploy_ok("alpha", "", kv("alpha"));
    serve.deploy_ok("beta", "", kv("beta"));
    assert_eq!(serve.app_text("alpha", "/?op=set&key=shared&value=alpha-data"), "ok");
    assert_eq!(serve.app_get("beta", "/?op=get&key=shared").status(), 404, "beta's `default` store is its own");
    assert_eq!(serve.app_text("alpha", "/?op=get&key=shared"), "alpha-data");

    // Files: each app sees only the files it uploaded.
    let files = |name: &str, secret: &str| {
        let manifest = http_app(name, "files.wasm", "/...", "files = [{ source = \"secret\", destination = \"/secret\" }]");
        AppArchive::new(&manifest).guest("files.wasm", "files").file("secret/token.txt", secret.to_string()).build()
    };
    serve.deploy_ok("filesa", "", files("filesa", "A's secret"));
    serve.deploy_ok("filesb", "", files("filesb", "B's secret"));
    assert_eq!(serve.app_text("filesa", "/?path=/secret/token.txt"), "A's secret");
    assert_eq!(serve.app_text("filesb", "/?path=/secret/token.txt"), "B's secret");
    assert_eq!(serve.app_get("filesb", "/?path=/../../filesa/v1/secret/token.txt").status(), 404);

    // Variables: the same name resolves in each app's own scope.
    let variables = |name: &str| {
        let manifest = format!(
            "spin_manifest_version = 2\n[application]\nname = \"{name}\"\n[variables]\ntoken = {{ default = \"{name}-token\" }}\n[[trigger.http]]\nroute = \"/...\"\ncomponent = \"v\"\n[component.v]\nsource = \"v.wasm\"\nvariables = {{ token = \"{{{{ token }}}}\" }}\n"
        );
        AppArchive::new(&manifest).guest("v.wasm", "spin_variables").build()
    };
    serve.deploy_ok("vara", "", variables("vara"));
    serve.deploy_ok("varb", "", variables("varb"));
    assert_eq!(serve.app_text("vara", "/?name=token"), "vara-token");
    assert_eq!(serve.app_text("varb", "/?name=token"), "varb-token");

    // Private routes: reachable in-process from the same app only.
    let private = "spin_manifest_version = 2\n[application]\nname = \"priv\"\n[[trigger.http]]\nroute = { private = true }\ncomponent = \"inner\"\n[[trigger.http]]\nroute = \"/...\"\ncomponent = \"front\"\n[component.inner]\nsource = \"echo.wasm\"\n[component.front]\nsource = \"outbound.wasm\"\nallowed_outbound_hosts = [\"http://*.spin.internal\"]\n".to_string();
    let private = AppArchive::new(&private).guest("echo.wasm", "echo_request").guest("outbound.wasm", "outbound").build();
    serve.deploy_ok("priv", "", private);
    let prober = http_app("prober", "outbound.wasm", "/...", "allowed_outbound_hosts = [\"http://*.spin.internal\"]");
    serve.deploy_ok("prober", "", AppArchive::new(&prober).guest("outbound.wasm", "outbound").build());
    assert!(serve.app_text("priv", "/?url=http://inner.spin.internal/x").contains("\"method\":\"GET\""), "the app reaches its own private component");
    let probe = serve.app_get("prober", "/?url=http://inner.spin.internal/x");
    let (status, text) = (probe.status(), probe.text().unwrap_or_default());
    assert!(status != 200 || !text.contains("\"method\""), "another app must not reach `priv`'s private route: {status} {text}");
}

#[test]
fn per_app_limits_apply() {
    let (serve, _dir) = start(&[]);
    serve.deploy_ok("small", "max_request_body=100&request_timeout_ms=500", AppArchive::new(&http_app("small", "echo.wasm", "/...", "")).guest("echo.wasm", "echo_request").build());
    let response = client().post(serve.kiln.url("/")).header("host", "small.localhost").body(vec![b'x'; 101]).send().unwrap();
    assert_eq!(response.status(), 413);
    let response = client().post(serve.kiln.url("/")).header("host", "small.localhost").body(vec![b'x'; 100]).send().unwrap();
    assert_eq!(response.status(), 200);

    serve.deploy_ok("slow", "request_timeout_ms=300", AppArchive::new(&http_app("slow", "busy.wasm", "/...", "")).guest("busy.wasm", "busy_loop").build());
    let started = Instant::now();
    assert_eq!(serve.app_get("slow", "/").status(), 504);
    assert!(started.elapsed() < Duration::from_secs(5), "cut off at the app's deadline, not the host's 30 s");

    serve.deploy_ok("hungry", "memory_limit_mib=16", AppArchive::new(&http_app("hungry", "bomb.wasm", "/...", "")).guest("bomb.wasm", "memory_bomb").build());
    let response = serve.app_get("hungry", "/");
    assert_eq!(response.status(), 500);
    assert!(response.text().unwrap_or_default().contains("memory limit of 16 MiB"));
}

#[test]
fn route_prefixes_mount_apps_under_a_path() {
    let (serve, _dir) = start(&[]);
    serve.deploy_ok("shop", "route_prefix=/shop", AppArchive::new(&http_app("shop", "echo.wasm", "/api/...", "")).guest("echo.wasm", "echo_request").build());
    let response = client().get(serve.kiln.url("/shop/api/cart?x=1")).send().unwrap();
    assert_eq!(response.status(), 200);
    let echoed: Value = serde_json::from_str(&response.text().unwrap()).unwrap();
    assert_eq!(echoed_header(&echoed, "spin-path-info"), Some("/cart"), "{echoed}");
    assert_eq!(echoed_header(&echoed, "spin-base-path"), Some("/shop"), "{echoed}");
    assert_eq!(echoed_header(&echoed, "spin-matched-route"), Some("/shop/api/..."), "{echoed}");
    assert_eq!(client().get(serve.kiln.url("/shopping")).send().unwrap().status(), 404);
    let (status, body) = serve.deploy("other", "route_prefix=/shop/eu", hello_app());
    assert_eq!(status, 409, "{body}");
}

#[test]
fn idle_apps_are_unloaded_and_come_back_on_the_next_request() {
    let (serve, _dir) = start(&["--idle-timeout", "300ms"]);
    serve.deploy_ok("hello", "", hello_app());
    assert_eq!(serve.admin("GET", "/v1/apps/hello").1["status"], "idle", "a deploy leaves a new app idle");
    assert_eq!(serve.app_text("hello", "/"), "hello world");
    assert_eq!(serve.admin("GET", "/v1/apps/hello").1["status"], "loaded");
    let started = Instant::now();
    while serve.admin("GET", "/v1/apps/hello").1["status"] != "idle" {
        assert!(started.elapsed() < Duration::from_secs(10), "the app was never unloaded");
        std::thread::sleep(Duration::from_millis(50));
    }
    assert_eq!(serve.app_text("hello", "/"), "hello world");
    let metrics = client().get(serve.admin_url("/metrics")).bearer_auth(&serve.token).send().unwrap().text().unwrap();
    let cold_loads = metric(&metrics, "kiln_cold_loads_total{app=\"hello\"}");
    assert_eq!(cold_loads, Some(2.0), "{metrics}");
}

#[test]
fn metrics_count_requests_by_app_component_and_status() {
    let (serve, _dir) = start(&[]);
    serve.deploy_ok("hello", "", hello_app());
    serve.deploy_ok("slow", "request_timeout_ms=200", AppArchive::new(&http_app("slow", "busy.wasm", "/...", "")).guest("busy.wasm", "busy_loop").build());
    for _ in 0..3 {
        serve.app_text("hello", "/");
    }
    assert_eq!(serve.app_get("slow", "/").status(), 504);
    let response = client().get(serve.admin_url("/metrics")).bearer_auth(&serve.token).send().unwrap();
    assert!(response.headers()["content-type"].to_str().unwrap().starts_with("application/openmetrics-text"));
    let metrics = response.text().unwrap();
    assert_eq!(metric(&metrics, "kiln_requests_total{app=\"hello\",component=\"hello\",status=\"200\"}"), Some(3.0), "{metrics}");
    assert_eq!(metric(&metrics, "kiln_requests_total{app=\"slow\",component=\"slow\",status=\"504\"}"), Some(1.0), "{metrics}");
    assert_eq!(metric(&metrics, "kiln_instance_kills_total{app=\"slow\",component=\"slow\",reason=\"deadline\"}"), Some(1.0), "{metrics}");
    assert_eq!(metric(&metrics, "kiln_request_duration_seconds_count{app=\"hello\",component=\"hello\"}"), Some(3.0), "{metrics}");
    assert!(metric(&metrics, "kiln_instantiation_duration_seconds_count{app=\"hello\",component=\"hello\"}").unwrap_or(0.0) >= 3.0, "{metrics}");
    assert_eq!(metric(&metrics, "kiln_apps"), Some(2.0), "{metrics}");
    let (_, shown) = serve.admin("GET", "/v1/apps/slow");
    assert_eq!((shown["requests_total"].as_u64(), shown["errors_total"].as_u64()), (Some(1), Some(1)), "{shown}");
}

/// The value of the sample whose name and labels are exactly `series`.
fn metric(text: &str, series: &str) -> Option<f64> {
    text.lines().find_map(|line| line.strip_prefix(series)?.strip_prefix(' ')?.split(' ').next()?.parse().ok())
}


#[test]
fn the_openapi_document_matches_the_api() {
    let (serve, _dir) = start(&[]);
    let doc: Value = serde_json::from_str(&client().get(serve.admin_url("/openapi.json")).send().unwrap().text().unwrap()).expect("OpenAPI JSON");
    serve.deploy_ok("hello", "", hello_app());
    // Every documented operation answers with one of its documented statuses, and JSON bodies carry
    // the documented required fields.
    for (path, item) in doc["paths"].as_object().unwrap() {
        for (method, operation) in item.as_object().unwrap().iter().filter(|(m, _)| ["get", "put", "delete"].contains(&m.as_str())) {
            if method == "delete" || method == "put" {
                continue; // exercised by the deploy tests; keep the app for the GETs
            }
            let concrete = path.replace("{name}", "hello");
            let response = client().get(serve.admin_url(&concrete)).bearer_auth(&serve.token).send().unwrap();
            let status = response.status().as_u16().to_string();
            let documented = &operation["responses"][&status];
            assert!(documented.is_object(), "{method} {path} answered {status}, which the document does not list");
            let Some(schema) = documented["content"]["application/json"]["schema"].as_object() else { continue };
            let body: Value = serde_json::from_str(&response.text().unwrap()).unwrap();
            let schema = resolve(&doc, schema);
            let object = if schema.get("properties").and_then(|p| p.get("apps")).is_some() { body["apps"][0].clone() } else { body.clone() };
            let app_schema = resolve(&doc, doc["components"]["schemas"]["App"].as_object().unwrap());
            let required = if object.get("routes").is_some() { app_schema.get("required").cloned() } else { schema.get("required").cloned() };
            for field in required.iter().filter_map(Value::as_array).flatten() {
                let field = field.as_str().unwrap();
                assert!(object.get(field).is_some(), "{method} {path}: `{field}` is documented as required but missing from {object}");
            }
        }
    }
    let (status, body) = serve.admin("GET", "/v1/apps/nope");
    assert_eq!(status, 404);
    assert!(doc["paths"]["/v1/apps/{name}"]["get"]["responses"]["404"].is_object() && body["error"].is_string());
}

fn resolve(doc: &Value, schema: &serde_json::Map<String, Value>) -> serde_json::Map<String, Value> {
    match schema.get("$ref").and_then(Value::as_str) {
        Some(reference) => {
            let name = reference.trim_start_matches("#/components/schemas/");
            doc["components"]["schemas"][name].as_object().cloned().unwrap_or_default()
        }
        None => schema.clone(),
    }
}

/// With `--otlp-endpoint`, every request becomes a span exported over OTLP/HTTP, carrying the app,
/// component and route. The receiver here is a plain HTTP listener that accepts the exporter's
/// POSTs; span fields are protobuf strings, so they can be found in the raw bodies.
#[test]
fn requests_are_traced_over_otlp() {
    let collector = std::net::TcpListener::bind("127.0.0.1:0").expect("bind the collector");
    let endpoint = format!("http://{}", collector.local_addr().unwrap());
    let bodies = Arc::new(std::sync::Mutex::new(Vec::<Vec<u8>>::new()));
    let received = bodies.clone();
    std::thread::spawn(move || {
        for stream in collector.incoming().flatten() {
            if let Some(body) = read_post(stream) {
                received.lock().unwrap().push(body);
            }
        }
    });
    let (serve, _dir) = start(&["--otlp-endpoint", &endpoint]);
    serve.deploy_ok("traced", "", AppArchive::new(&http_app("web", "echo.wasm", "/api/...", "")).guest("echo.wasm", "echo_request").build());
    assert_eq!(serve.app_get("traced", "/api/items").status(), 200);
    let started = Instant::now();
    let found = loop {
        let all: Vec<u8> = bodies.lock().unwrap().concat();
        let has = |needle: &str| all.windows(needle.len()).any(|window| window == needle.as_bytes());
        if ["traced /api/...", "http.route", "/api/...", "component", "web", "http.response.status_code"].iter().all(|needle| has(needle)) {
            break true;
        }
        if started.elapsed() > Duration::from_secs(20) {
            break false;
        }
        std::thread::sleep(Duration::from_millis(100));
    };
    assert!(found, "no span with app, component and route arrived at the collector ({} exports)\n{}", bodies.lock().unwrap().len(), serve.kiln.log());
}

/// Reads one HTTP/1.1 request with a `content-length` body from `stream`, answers 200, returns the body.
fn read_post(mut stream: std::net::TcpStream) -> Option<Vec<u8>> {
    use std::io::{Read, Write};
    let mut buffer = Vec::new();
    let mut chunk = [0u8; 8192];
    let header_end = loop {
        let read = stream.read(&mut chunk).ok()?;
        if read == 0 {
            return None;
        }
        buffer.extend_from_slice(&chunk[..read]);
        if let Some(end) = buffer.windows(4).position(|w| w == b"\r\n\r\n") {
            break end + 4;
        }
    };
    let head = String::from_utf8_lossy(&buffer[..header_end]).to_ascii_lowercase();
    let length: usize = head.lines().find_map(|line| line.strip_prefix("content-length:"))?.trim().parse().ok()?;
    while buffer.len() < header_end + length {
        let read = stream.read(&mut chunk).ok()?;
        if read == 0 {
            break;
        }
        buffer.extend_from_slice(&chunk[..read]);
    }
    let _ = stream.write_all(b"HTTP/1.1 200 OK\r\ncontent-type: application/x-protobuf\r\ncontent-length: 0\r\nconnection: close\r\n\r\n");
    Some(buffer[header_end..].to_vec())
}

/// Sends `request` as is and returns everything the server answers before closing.
fn raw_exchange(addr: std::net::SocketAddr, request: &[u8]) -> String {
    use std::io::{Read, Write};
    let mut stream = std::net::TcpStream::connect(addr).expect("connect");
    stream.set_read_timeout(Some(Duration::from_secs(10))).unwrap();
    stream.write_all(request).expect("send");
    let mut answer = Vec::new();
    let mut chunk = [0u8; 4096];
    while let Ok(read) = stream.read(&mut chunk) {
        if read == 0 {
            break;
        }
        answer.extend_from_slice(&chunk[..read]);
        if answer.windows(4).any(|w| w == b"\r\n\r\n") && String::from_utf8_lossy(&answer).contains("}") {
            break;
        }
    }
    String::from_utf8_lossy(&answer).into_owned()
}

/// An app that cannot be loaded gets 500s, and the host does not retry the load on every request
/// (a broken app hammered by clients must not eat the host's CPU).
#[test]
fn a_broken_app_fails_fast_without_reloading_on_every_request() {
    let (serve, _dir) = start(&[]);
    serve.deploy_ok("broken", "", hello_app());
    serve.deploy_ok("fine", "", echo_app("ok"));
    std::fs::remove_file(serve.data_dir.join("apps/broken/v1/hello.wasm")).expect("remove the component");
    for _ in 0..5 {
        let response = serve.app_get("broken", "/");
        assert_eq!(response.status(), 500);
        assert!(response.text().unwrap_or_default().contains("cannot be loaded"));
    }
    let log = serve.kiln.log();
    let attempts = log.lines().filter(|line| line.contains("cannot load the app") && !line.contains("retried after")).count();
    assert_eq!(attempts, 1, "one load attempt, then the remembered failure:\n{log}");
    assert!(version_is(&serve.app_text("fine", "/"), "ok"), "other apps are unaffected");
}

/// `[application.tool.kiln]` in the manifest (a table Spin ignores) sets the app's limits; the
/// deploy request's parameters override it, and the host's ceilings bound it.
#[test]
fn manifest_limits_apply_and_the_request_overrides_them() {
    let (serve, _dir) = start(&[]);
    let manifest = |tool: &str| format!("{}[application.tool.kiln]\n{tool}\n", http_app("limited", "busy.wasm", "/...", ""));
    let archive = |tool: &str| AppArchive::new(&manifest(tool)).guest("busy.wasm", "busy_loop").build();
    let shown = serve.deploy_ok("limited", "", archive("max_concurrency = 3\nrequest_timeout_ms = 300"));
    assert_eq!((shown["limits"]["max_concurrency"].as_u64(), shown["limits"]["request_timeout_ms"].as_u64()), (Some(3), Some(300)), "{shown}");
    let started = Instant::now();
    assert_eq!(serve.app_get("limited", "/").status(), 504);
    assert!(started.elapsed() < Duration::from_secs(5), "cut off at the manifest's 300 ms");
    let shown = serve.deploy_ok("limited", "max_concurrency=5", archive("max_concurrency = 3\nrequest_timeout_ms = 300"));
    assert_eq!((shown["limits"]["max_concurrency"].as_u64(), shown["limits"]["request_timeout_ms"].as_u64()), (Some(5), Some(300)), "{shown}");
    let (status, body) = serve.deploy("limited", "", archive("memory_limit_mib = 100000"));
    assert_eq!(status, 400, "{body}");
    assert!(body["error"].as_str().unwrap_or_default().contains("kiln.toml:10:1: `memory_limit_mib = 100000` is more than this host allows"), "{body}");
}

#[test]
fn a_spin_4_app_runs_beside_wasi_0_2_apps() {
    // A WASI 0.3 component (spin-sdk 7) needs component-model concurrency, which the host keeps to
    // the apps that need it: both kinds are served from one `kiln serve`.
    let (serve, _dir) = start(&[]);
    let manifest = http_app("spin4", "spin4.wasm", "/...", "key_value_stores = [\"default\"]");
    serve.deploy_ok("spin4", "", AppArchive::new(&manifest).guest("spin4.wasm", "spin4_http").build());
    serve.deploy_ok("echo", "", echo_app("1"));
    assert_eq!(serve.app_text("spin4", "/kv?op=set&key=k&value=from-p3"), "ok");
    assert_eq!(serve.app_text("spin4", "/kv?op=get&key=k"), "from-p3");
    assert!(version_is(&serve.app_text("echo", "/"), "1"));
}
