//! Spin's `wagi` executor: a wasm32-wasip1 program (`guests/wagi_hello`) answering CGI-style, beside
//! a wasi:http component, under `kiln up` and `kiln serve`.

use crate::{body, kiln_bin, serve};
use kiln_e2e::kiln::client;
use kiln_e2e::serve::{AppArchive, KilnServe};

fn manifest(wagi_source: &str, echo_source: &str) -> String {
    format!(
        r#"spin_manifest_version = 2
[application]
name = "wagi"
[[trigger.http]]
route = "/cgi/..."
component = "cgi"
executor = {{ type = "wagi" }}
[[trigger.http]]
route = "/echo/..."
component = "echo"
executor = {{ type = "spin" }}
[component.cgi]
source = "{wagi_source}"
environment = {{ GREETING = "hi" }}
[component.echo]
source = "{echo_source}"
"#
    )
}

fn line<'a>(text: &'a str, name: &str) -> &'a str {
    text.lines().find_map(|line| line.strip_prefix(&format!("{name}="))).unwrap_or_else(|| panic!("no {name} in {text}"))
}

#[test]
fn a_wagi_program_gets_the_request_as_cgi_and_answers_on_stdout() {
    let wagi = kiln_e2e::guest("wagi_hello");
    let echo = kiln_e2e::guest("echo_request");
    let (kiln, _dir) = serve(&manifest(&wagi.display().to_string(), &echo.display().to_string()), &[], &[]);
    let response = client().post(kiln.url("/cgi/run/there?name=Ada%20L&flag")).header("x-custom", "v").body("the body").send().unwrap();
    assert_eq!(response.status().as_u16(), 200, "{}", kiln.log());
    assert_eq!(response.headers()["content-type"], "text/plain");
    assert_eq!(response.headers()["x-wagi"], "yes");
    let text = response.text().unwrap();
    assert_eq!(line(&text, "args"), "/cgi/run/there name Ada L flag");
    assert_eq!(line(&text, "REQUEST_METHOD"), "POST");
    assert_eq!(line(&text, "QUERY_STRING"), "name=Ada%20L&flag");
    assert_eq!(line(&text, "SCRIPT_NAME"), "/cgi");
    assert_eq!(line(&text, "PATH_INFO"), "/run/there");
    assert_eq!(line(&text, "X_MATCHED_ROUTE"), "/cgi/...");
    assert_eq!(line(&text, "X_FULL_URL"), kiln.url("/cgi/run/there?name=Ada%20L&flag"));
    assert_eq!(line(&text, "HTTP_X_CUSTOM"), "v");
    assert_eq!(line(&text, "CONTENT_LENGTH"), "8");
    assert_eq!(line(&text, "GREETING"), "hi");
    assert_eq!(line(&text, "body"), "the body");

    let teapot = kiln.get("/cgi/teapot");
    assert_eq!(body(teapot), (418, "short and stout".into()));
    let redirect = client().get(kiln.url("/cgi/redirect")).send().unwrap();
    // reqwest follows the 302 to /elsewhere, which no route serves.
    assert_eq!(redirect.url().path(), "/elsewhere");
    let (status, text) = body(kiln.get("/cgi/silent"));
    assert_eq!((status, text.contains("the WAGI program printed nothing")), (500, true), "{text}");
    let (status, text) = body(kiln.get("/cgi/fail"));
    assert_eq!(status, 500, "{text}");
    // The wasi:http component beside it is unaffected.
    assert_eq!(kiln.get("/echo/x").status().as_u16(), 200);
}

#[test]
fn a_wasi_http_component_under_the_wagi_executor_is_refused_at_load() {
    let echo = kiln_e2e::guest("echo_request").display().to_string();
    let dir = kiln_e2e::kiln::app_dir(&manifest(&echo, &echo), &[]);
    let (status, output) = kiln_e2e::kiln::run_to_exit(&kiln_bin(), &["up", "-f", dir.path().join("kiln.toml").to_str().unwrap(), "--listen", "127.0.0.1:0"], std::time::Duration::from_secs(60));
    assert!(!status.success());
    assert!(output.contains("component `cgi` uses the `wagi` executor but is not a program"), "{output}");
}

#[test]
fn a_wagi_app_runs_under_kiln_serve() {
    let dir = tempfile::tempdir().unwrap();
    let serve = KilnServe::start(&kiln_bin(), &dir.path().join("data"), &[]);
    let archive = AppArchive::new(&manifest("cgi.wasm", "echo.wasm")).guest("cgi.wasm", "wagi_hello").guest("echo.wasm", "echo_request").build();
    serve.deploy_ok("wagi", "", archive);
    let text = serve.app_text("wagi", "/cgi/x?y=1");
    assert_eq!(line(&text, "args"), "/cgi/x y 1");
    assert_eq!(line(&text, "PATH_INFO"), "/x");
    assert_eq!(serve.app_get("wagi", "/cgi/teapot").status().as_u16(), 418);
}
