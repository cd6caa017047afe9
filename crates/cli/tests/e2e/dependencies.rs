//! Component dependencies (`[component.<id>.dependencies]`, Spin 3): the middleware pattern on WASI
//! 0.3 (`http_middleware_p3`, importing and exporting `wasi:http/handler@0.3.0`, composed with the
//! spin-sdk 7 app `spin4_http`) and on WASI 0.2 (`http_middleware_p2`, importing and exporting
//! `wasi:http/incoming-handler@0.2.4`, composed with `echo_request`); dependencies given by
//! `{ component }`, `{ path }`, `{ url, digest }` and `{ registry, package, version }`; the rule
//! that a dependency that does not inherit configuration must not import a configuration-bearing
//! interface; under `kiln up` and `kiln serve`.

use crate::kiln_bin;
use crate::registry::push;
use kiln_e2e::guest;
use kiln_e2e::kiln::{Kiln, app_dir, client, run_to_exit};
use kiln_e2e::serve::{AppArchive, KilnServe};
use kiln_e2e::services::{RegistryServer, StaticServer};
use sha2::{Digest, Sha256};
use std::time::Duration;

/// `mw` (the middleware guest `middleware`) on `/...`, with `dependencies` (lines of its
/// `[component.mw.dependencies]` table) and `mw_extra` (lines of `[component.mw]`); `app` (the
/// guest `app_guest`) on `/app/...` as well.
fn middleware_app(middleware: &str, app_guest: &str, mw_extra: &str, dependencies: &str) -> String {
    format!(
        "spin_manifest_version = 2\n[application]\nname = \"deps\"\n\
         [[trigger.http]]\nroute = \"/...\"\ncomponent = \"mw\"\n\
         [[trigger.http]]\nroute = \"/app/...\"\ncomponent = \"app\"\n\
         [component.app]\nsource = \"{app}\"\nkey_value_stores = [\"default\"]\n\
         [component.mw]\nsource = \"{mw}\"\n{mw_extra}\n\
         [component.mw.dependencies]\n{dependencies}\n",
        app = guest(app_guest).display(),
        mw = guest(middleware).display(),
    )
}

fn header(response: &reqwest::blocking::Response, name: &str) -> Option<String> {
    response.headers().get(name).and_then(|v| v.to_str().ok()).map(str::to_string)
}

/// `kiln up` must refuse the app; returns what it printed.
fn refused(manifest: &str, extra: &[&str]) -> String {
    let app = app_dir(manifest, &[]);
    let manifest_path = app.path().join("kiln.toml");
    let mut args = vec!["up", "-f", manifest_path.to_str().unwrap(), "--listen", "127.0.0.1:0"];
    args.extend_from_slice(extra);
    let (status, output) = run_to_exit(&kiln_bin(), &args, Duration::from_secs(60));
    assert!(!status.success(), "kiln up should have refused the app:\n{output}");
    output
}

#[test]
fn wasi_0_3_middleware_composed_with_an_app_component() {
    let manifest = middleware_app(
        "http_middleware_p3",
        "spin4_http",
        "key_value_stores = [\"default\"]\ndependencies_inherit_configuration = true",
        "\"wasi:http/handler@0.3.0\" = { component = \"app\" }",
    );
    let app = app_dir(&manifest, &[]);
    let kiln = Kiln::up(&kiln_bin(), &app.path().join("kiln.toml"), &[]);
    // Through the middleware: the inner handler's answer (its body streamed through), plus the
    // middleware's header.
    let response = client().post(kiln.url("/echo")).body("through the middleware").send().expect("POST /echo");
    assert_eq!(response.status().as_u16(), 200, "{}", kiln.log());
    assert_eq!(header(&response, "x-middleware").as_deref(), Some("p3"));
    assert_eq!(header(&response, "x-method").as_deref(), Some("POST"), "the inner handler answered");
    assert_eq!(response.text().unwrap(), "through the middleware");
    // The dependency inherits the component's grants: its key-value calls use `mw`'s store.
    let set = client().get(kiln.url("/kv?op=set&key=k&value=v")).send().unwrap();
    assert_eq!((set.status().as_u16(), header(&set, "x-middleware")), (200, Some("p3".into())));
    assert_eq!(client().get(kiln.url("/kv?op=get&key=k")).send().unwrap().text().unwrap(), "v");
    // The app component still runs on its own, without the middleware.
    let direct = client().get(kiln.url("/app/echo")).send().unwrap();
    assert_eq!((direct.status().as_u16(), header(&direct, "x-middleware")), (200, None));
}

#[test]
fn a_dependency_that_does_not_inherit_configuration_may_not_import_it() {
    // spin4_http imports spin:key-value and friends: without `dependencies_inherit_configuration` it
    // would use `mw`'s grants unasked.
    let manifest = middleware_app("http_middleware_p3", "spin4_http", "", "\"wasi:http/handler@0.3.0\" = { component = \"app\" }");
    let output = refused(&manifest, &[]);
    assert!(output.contains("kiln.toml:17:1"), "at the dependency's entry: {output}");
    assert!(output.contains("dependency `wasi:http/handler@0.3.0`") && output.contains("imports `wasi:http/client@0.3.0`"), "{output}");
    assert!(output.contains("dependencies_inherit_configuration = true"), "the fix: {output}");

    // The same for outbound HTTP on WASI 0.2.
    let manifest = middleware_app("http_middleware_p2", "outbound", "", "\"wasi:http/incoming-handler\" = { component = \"app\" }");
    let output = refused(&manifest, &[]);
    assert!(output.contains("imports `wasi:http/outgoing-handler@"), "{output}");
}

/// Asserts the WASI 0.2 middleware answers by itself without the token and hands the request to
/// `echo_request` with it.
fn assert_p2_middleware(get: impl Fn(Option<&str>) -> reqwest::blocking::Response) {
    let denied = get(None);
    assert_eq!(denied.status().as_u16(), 401);
    assert_eq!(header(&denied, "x-middleware").as_deref(), Some("p2"));
    assert_eq!(denied.text().unwrap(), "unauthorized by middleware");
    let passed = get(Some("letmein"));
    assert_eq!(passed.status().as_u16(), 200);
    let echo: serde_json::Value = serde_json::from_str(&passed.text().unwrap()).expect("echo_request's JSON");
    let headers = echo["headers"].as_array().expect("headers").iter().map(|h| (h[0].as_str().unwrap_or(""), h[1].as_str().unwrap_or(""))).collect::<Vec<_>>();
    assert!(headers.contains(&("x-token", "letmein")), "{echo}");
}

fn start_p2(manifest: &str, files: &[(&str, &[u8])], extra: &[&str]) -> (tempfile::TempDir, Kiln) {
    let app = app_dir(manifest, &[]);
    for (name, bytes) in files {
        std::fs::write(app.path().join(name), bytes).unwrap();
    }
    let kiln = Kiln::up(&kiln_bin(), &app.path().join("kiln.toml"), extra);
    (app, kiln)
}

fn p2_get(kiln: &Kiln) -> impl Fn(Option<&str>) -> reqwest::blocking::Response + '_ {
    |token| {
        let request = client().get(kiln.url("/hello"));
        let request = match token {
            Some(token) => request.header("x-token", token),
            None => request,
        };
        request.send().expect("GET /hello")
    }
}

#[test]
fn wasi_0_2_middleware_with_a_dependency_from_a_path() {
    let echo = std::fs::read(guest("echo_request")).unwrap();
    let manifest = middleware_app("http_middleware_p2", "echo_request", "", "\"wasi:http/incoming-handler@0.2.4\" = { path = \"deps/inner.wasm\" }");
    let app = app_dir(&manifest, &[]);
    std::fs::create_dir_all(app.path().join("deps")).unwrap();
    std::fs::write(app.path().join("deps/inner.wasm"), &echo).unwrap();
    let kiln = Kiln::up(&kiln_bin(), &app.path().join("kiln.toml"), &[]);
    assert_p2_middleware(p2_get(&kiln));
}

#[test]
fn dependency_from_a_url_with_its_digest() {
    let echo = std::fs::read(guest("echo_request")).unwrap();
    let digest = format!("sha256:{}", hex::encode(Sha256::digest(&echo)));
    let server = StaticServer::start(vec![("/inner.wasm".into(), echo)]);
    let cache = tempfile::tempdir().unwrap();
    let cache_dir = cache.path().to_str().unwrap();
    let entry = |digest: &str| format!("\"wasi:http/incoming-handler\" = {{ url = \"{}\", digest = \"{digest}\" }}", server.url("/inner.wasm"));
    let manifest = middleware_app("http_middleware_p2", "echo_request", "", &entry(&digest));
    let (_app, kiln) = start_p2(&manifest, &[], &["--cache-dir", cache_dir]);
    assert_p2_middleware(p2_get(&kiln));
    drop(kiln);

    // A digest that does not match what the URL serves: refused at the dependency.
    let wrong = format!("sha256:{}", "0".repeat(64));
    let output = refused(&middleware_app("http_middleware_p2", "echo_request", "", &entry(&wrong)), &["--cache-dir", cache_dir]);
    assert!(output.contains("kiln.toml:17:1") && output.contains("match its digest"), "{output}");
}

#[test]
fn dependency_from_a_registry_package() {
    let registry = RegistryServer::start();
    let config = tempfile::tempdir().unwrap();
    // A package is pushed as component sources are: a one-component app, one Wasm layer.
    let package = app_dir(
        &format!("spin_manifest_version = 2\n[application]\nname = \"echo\"\n[[trigger.http]]\nroute = \"/...\"\ncomponent = \"echo\"\n[component.echo]\nsource = \"{}\"\n", guest("echo_request").display()),
        &[],
    );
    push(&format!("{}/kiln/echo:1.0.0", registry.host()), package.path(), config.path());
    let cache = tempfile::tempdir().unwrap();
    let entry = format!("\"wasi:http/incoming-handler\" = {{ registry = \"{}\", package = \"kiln:echo\", version = \"1.0.0\" }}", registry.host());
    let manifest = middleware_app("http_middleware_p2", "echo_request", "", &entry);
    let (_app, kiln) = start_p2(&manifest, &[], &["--insecure", "--cache-dir", cache.path().to_str().unwrap()]);
    assert_p2_middleware(p2_get(&kiln));
}

#[test]
fn under_kiln_serve() {
    let data = tempfile::tempdir().unwrap();
    let serve = KilnServe::start(&kiln_bin(), data.path(), &[]);
    let manifest = "spin_manifest_version = 2\n[application]\nname = \"deps\"\n\
                    [[trigger.http]]\nroute = \"/...\"\ncomponent = \"mw\"\n\
                    [component.app]\nsource = \"app.wasm\"\n\
                    [component.mw]\nsource = \"mw.wasm\"\ndependencies_inherit_configuration = true\n\
                    [component.mw.dependencies]\n\"wasi:http/handler@0.3.0\" = { component = \"app\" }\n\
                    [component.p2]\nsource = \"p2.wasm\"\n\
                    [component.p2.dependencies]\n\"wasi:http/incoming-handler\" = { path = \"deps/echo.wasm\" }\n\
                    [[trigger.http]]\nroute = \"/p2/...\"\ncomponent = \"p2\"\n";
    let archive = AppArchive::new(manifest)
        .guest("app.wasm", "spin4_http")
        .guest("mw.wasm", "http_middleware_p3")
        .guest("p2.wasm", "http_middleware_p2")
        .guest("deps/echo.wasm", "echo_request")
        .build();
    serve.deploy_ok("deps", "", archive);
    let response = serve.app_get("deps", "/echo");
    assert_eq!(response.status().as_u16(), 200);
    assert_eq!(header(&response, "x-middleware").as_deref(), Some("p3"));
    assert_eq!(header(&response, "x-method").as_deref(), Some("GET"));
    assert_eq!(serve.app_get("deps", "/p2/x").status().as_u16(), 401);
}
