//! `kiln new` templates end to end: each test creates an app with the real `kiln new`, builds it
//! with `kiln build` and the real toolchain, serves it with `kiln up`, and exercises it (HTTP,
//! key-value, variables, outbound HTTP, and its trigger's service).

use crate::kiln_bin;
use kiln_e2e::kiln::{Kiln, run_to_exit};
use kiln_e2e::services::{NatsServer, RedisServer};
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Duration;

/// Every Rust template builds into one target directory kept between runs (under cargo's
/// `target/tmp`), so their shared dependencies (spin-sdk, wit-bindgen) compile once, not per test.
fn shared_rust_target() -> PathBuf {
    let dir = Path::new(env!("CARGO_TARGET_TMPDIR")).join("kiln-templates-target");
    std::fs::create_dir_all(&dir).expect("create the templates' target directory");
    dir
}

/// `kiln new TEMPLATE NAME` in a fresh temp dir; returns the temp dir and the app's directory.
pub(crate) fn new_app(template: &str, name: &str) -> (tempfile::TempDir, PathBuf) {
    let temp = tempfile::tempdir().expect("temp dir");
    let dir = temp.path().join(name);
    let (status, output) = run_to_exit(&kiln_bin(), &["new", template, name, "--dir", dir.to_str().expect("UTF-8 temp path")], Duration::from_secs(30));
    assert!(status.success(), "kiln new {template} {name} failed:\n{output}");
    assert!(output.contains(&format!("Created `{name}`")), "{output}");
    if template.ends_with("-rust") {
        // The build command names `--target-dir target`: a link makes that the shared directory.
        std::os::unix::fs::symlink(shared_rust_target(), dir.join("target")).expect("link target/");
    }
    (temp, dir)
}

/// `kiln build -f DIR`, which must succeed.
pub(crate) fn build(dir: &Path) {
    let output = Command::new(kiln_bin())
        .args(["build", "-f"])
        .arg(dir)
        // The template's build command pins its own target dir; the outer cargo's must not leak in.
        .env_remove("CARGO_TARGET_DIR")
        .output()
        .expect("run kiln build");
    let log = String::from_utf8_lossy(&output.stderr);
    assert!(output.status.success(), "kiln build failed:\n{log}");
    assert!(log.contains("done in"), "no progress line:\n{log}");
}

fn up(dir: &Path, extra: &[&str], env: &[(&str, &str)]) -> Kiln {
    Kiln::up_with_env(&kiln_bin(), &dir.join("spin.toml"), extra, env)
}

fn wait_for(kiln: &Kiln, needle: &str, timeout: Duration) {
    assert!(kiln.wait_for_log(needle, timeout), "no `{needle}` in the log:\n{}", kiln.log());
}

fn text(response: reqwest::blocking::Response) -> (u16, String) {
    (response.status().as_u16(), response.text().expect("body"))
}

#[test]
fn http_rust_serves_key_value_variables_and_outbound_http() {
    let (_temp, dir) = new_app("http-rust", "hello-rust");
    build(&dir);
    let kiln = up(&dir, &[], &[("KILN_VARIABLE_GREETING", "Howdy")]);
    assert_eq!(text(kiln.get("/")), (200, "Howdy from hello-rust! Visit number 1.\n".into()));
    assert_eq!(text(kiln.get("/")), (200, "Howdy from hello-rust! Visit number 2.\n".into()));
    let client = kiln_e2e::kiln::client();
    let put = client.put(kiln.url("/kv/colour")).body("blue").send().expect("PUT");
    assert_eq!(text(put), (200, "stored\n".into()));
    assert_eq!(text(kiln.get("/kv/colour")), (200, "blue".into()));
    // Outbound HTTP to the app itself (`http://self` is granted by the template).
    assert_eq!(text(kiln.get("/fetch?url=http://self/kv/colour")), (200, "200 blue".into()));
    let delete = client.delete(kiln.url("/kv/colour")).send().expect("DELETE");
    assert_eq!(text(delete).0, 200);
    assert_eq!(text(kiln.get("/kv/colour")).0, 404);
}

/// componentize-py must be on PATH (`.ci/run` installs it into a virtualenv); a machine without it
/// fails here, with what to install, rather than skipping.
fn require_componentize_py() {
    let found = Command::new("componentize-py").arg("--version").output().is_ok_and(|output| output.status.success());
    assert!(found, "componentize-py is not on PATH: `python3 -m venv /var/tmp/kiln-toolchains/venv && /var/tmp/kiln-toolchains/venv/bin/pip install componentize-py==0.25.1`, then put its bin/ on PATH (.ci/run does)");
}

#[test]
fn http_python_serves_key_value_variables_and_outbound_http() {
    require_componentize_py();
    let (_temp, dir) = new_app("http-python", "hello-py");
    build(&dir);
    let kiln = Kiln::up_with_env_timeout(&kiln_bin(), &dir.join("spin.toml"), &[], &[("KILN_VARIABLE_GREETING", "Howdy")], Duration::from_secs(300));
    assert_eq!(text(kiln.get("/")), (200, "Howdy from hello-py! Visit number 1.\n".into()));
    assert_eq!(text(kiln.get("/")), (200, "Howdy from hello-py! Visit number 2.\n".into()));
    let client = kiln_e2e::kiln::client();
    let put = client.put(kiln.url("/kv/colour")).body("blue").send().expect("PUT");
    assert_eq!(text(put), (200, "stored\n".into()));
    assert_eq!(text(kiln.get("/kv/colour")), (200, "blue".into()));
    assert_eq!(text(kiln.get("/fetch?url=http://self/kv/colour")), (200, "200 blue".into()));
    assert_eq!(text(kiln.get("/fetch?url=/kv/colour")), (200, "200 blue".into()));
    let delete = client.delete(kiln.url("/kv/colour")).send().expect("DELETE");
    assert_eq!(text(delete).0, 200);
    assert_eq!(text(kiln.get("/kv/colour")).0, 404);
    // Not granted: the guest's outbound request is denied, and the app keeps serving.
    assert_eq!(text(kiln.get("/fetch?url=https://example.com/")).0, 500);
    assert_eq!(text(kiln.get("/")).0, 200);
}

#[test]
fn http_js_serves_key_value_variables_and_outbound_http() {
    let found = Command::new("npm").arg("--version").output().is_ok_and(|output| output.status.success());
    assert!(found, "npm is not on PATH: install Node.js and npm (`apt-get install -y nodejs npm`; .ci/run does)");
    let (_temp, dir) = new_app("http-js", "hello-js");
    build(&dir);
    let kiln = Kiln::up_with_env_timeout(&kiln_bin(), &dir.join("spin.toml"), &[], &[("KILN_VARIABLE_GREETING", "Howdy")], Duration::from_secs(300));
    assert_eq!(text(kiln.get("/")), (200, "Howdy from hello-js! Visit number 1.\n".into()));
    assert_eq!(text(kiln.get("/")), (200, "Howdy from hello-js! Visit number 2.\n".into()));
    let client = kiln_e2e::kiln::client();
    let put = client.put(kiln.url("/kv/colour")).body("blue").send().expect("PUT");
    assert_eq!(text(put).0, 200);
    assert_eq!(text(kiln.get("/kv/colour")), (200, "blue".into()));
    assert_eq!(text(kiln.get("/fetch?url=http://self/kv/colour")), (200, "200 blue".into()));
    let delete = client.delete(kiln.url("/kv/colour")).send().expect("DELETE");
    assert_eq!(text(delete).0, 200);
    assert_eq!(text(kiln.get("/kv/colour")).0, 404);
    // Not granted: `fetch` fails inside the guest (the template answers 502), and the app keeps serving.
    assert_eq!(text(kiln.get("/fetch?url=https://example.com/")).0, 502);
    assert_eq!(text(kiln.get("/")).0, 200);
}

#[test]
fn redis_rust_records_published_messages() {
    let redis = RedisServer::start();
    let (_temp, dir) = new_app("redis-rust", "redis-app");
    build(&dir);
    let kiln = up(&dir, &[], &[("KILN_VARIABLE_REDIS_ADDRESS", &redis.url())]);
    assert!(crate::redis_trigger::wait_subscribed(&redis, "redis-app", 1, Duration::from_secs(20)), "never subscribed:\n{}", kiln.log());
    crate::redis_trigger::publish(&redis, "redis-app", "hello templates");
    wait_for(&kiln, "redis-app got: hello templates", Duration::from_secs(20));
}

#[test]
fn nats_rust_answers_requests() {
    let nats = NatsServer::start();
    let (_temp, dir) = new_app("nats-rust", "nats-app");
    build(&dir);
    let rc = dir.join("runtime-config.toml");
    std::fs::write(&rc, format!("[messaging]\ntype = \"nats\"\nurl = \"{}\"\n", nats.url())).expect("write runtime config");
    let kiln = up(&dir, &["--runtime-config-file", rc.to_str().expect("UTF-8 path")], &[]);
    let client = nats.client();
    // The subscription is made as the app starts; retry until it answers.
    let reply = (0..50).find_map(|_| client.request("nats-app.greet", b"hello", Duration::from_millis(200)));
    assert_eq!(reply.unwrap_or_else(|| panic!("no reply:\n{}", kiln.log())).text(), "HELLO");
    wait_for(&kiln, "nats-app got nats-app.greet: hello", Duration::from_secs(10));
}

#[test]
fn cron_rust_runs_on_schedule() {
    let (_temp, dir) = new_app("cron-rust", "cron-app");
    build(&dir);
    let kiln = up(&dir, &[], &[]);
    // Every 5 seconds.
    wait_for(&kiln, "cron-app: run 1 at", Duration::from_secs(15));
}

#[test]
fn kiln_new_refuses_bad_names_unknown_templates_and_existing_directories() {
    let temp = tempfile::tempdir().expect("temp dir");
    let run = |args: &[&str]| run_to_exit(&kiln_bin(), args, Duration::from_secs(30));
    let (_, list) = run(&["templates", "list"]);
    for template in ["http-rust", "redis-rust", "nats-rust", "cron-rust", "http-python", "http-js"] {
        assert!(list.contains(template), "{template} missing from:\n{list}");
    }
    for bad in ["My_App", "2fast", "a--b", "../escape", "test"] {
        let target = temp.path().join("bad");
        let (status, output) = run(&["new", "http-rust", bad, "--dir", target.to_str().expect("UTF-8")]);
        assert!(!status.success() && output.contains("error:") && output.contains(bad), "{bad}: {output}");
        assert!(!target.exists(), "{bad}: a refused name wrote files");
    }
    let (status, output) = run(&["new", "http-cobol", "app"]);
    assert!(!status.success() && output.contains("no template `http-cobol`") && output.contains("http-rust"), "{output}");
    let existing = temp.path().join("taken");
    std::fs::create_dir_all(&existing).expect("mkdir");
    std::fs::write(existing.join("keep.txt"), "mine").expect("write");
    let (status, output) = run(&["new", "http-rust", "taken", "--dir", existing.to_str().expect("UTF-8")]);
    assert!(!status.success() && output.contains("not empty"), "{output}");
    assert_eq!(std::fs::read_to_string(existing.join("keep.txt")).expect("still there"), "mine");
}

/// `kiln watch` on the Rust HTTP template: an edit is rebuilt and swapped in while a small load runs,
/// and not one request fails; a broken edit leaves the working version serving.
#[test]
fn kiln_watch_rebuilds_an_edit_and_swaps_it_in_without_failing_a_request() {
    use std::sync::Arc;
    use std::sync::atomic::{AtomicBool, Ordering};
    let (_temp, dir) = new_app("http-rust", "watched");
    let addr = kiln_e2e::kiln::free_addr();
    let mut command = Command::new(kiln_bin());
    command.args(["watch", "-f"]).arg(&dir).args(["--listen", &addr.to_string()]);
    command.env_remove("CARGO_TARGET_DIR").env("KILN_CACHE_DIR", kiln_e2e::kiln::shared_cache_dir());
    let kiln = Kiln::spawn(command, addr);
    kiln.wait_healthy(Duration::from_secs(900));
    assert_eq!(text(kiln.get("/")), (200, "Hello from watched! Visit number 1.\n".into()));

    let stop = Arc::new(AtomicBool::new(false));
    let load = {
        let (stop, url) = (stop.clone(), kiln.url("/kv/missing"));
        std::thread::spawn(move || {
            let client = kiln_e2e::kiln::client();
            let (mut served, mut failures) = (0, Vec::new());
            while !stop.load(Ordering::Relaxed) {
                // An HTTP/1 server that closes an idle keep-alive connection (the old version,
                // draining) can cross a request the client has just written on it: the client sees
                // the connection closed, not an answer, and retries it as browsers and HTTP
                // libraries do for idempotent requests. Once; an error status is never retried.
                let sent = client.get(&url).send().or_else(|_| client.get(&url).send());
                match sent {
                    Ok(response) if response.status() == 404 => served += 1,
                    Ok(response) => failures.push(format!("status {}", response.status())),
                    Err(err) => failures.push(err.to_string()),
                }
                std::thread::sleep(Duration::from_millis(10));
            }
            (served, failures)
        })
    };
    let lib = dir.join("src/lib.rs");
    let source = std::fs::read_to_string(&lib).expect("read src/lib.rs");
    std::fs::write(&lib, source.replace("} from ", "} (edited) from ")).expect("edit src/lib.rs");
    let edited = crate::redis_trigger::wait_until(Duration::from_secs(900), || text(kiln.get("/")).1.contains("(edited) from watched!"));
    assert!(edited, "the edit was never served:\n{}", kiln.log());
    assert!(kiln.log().contains("changed: rebuilding watched") && kiln.log().contains("reloaded in"), "{}", kiln.log());

    // A change that does not build: the error is printed and the edited version keeps serving.
    std::fs::write(&lib, "this is not Rust").expect("break src/lib.rs");
    wait_for(&kiln, "waiting for a change to try again", Duration::from_secs(600));
    let (status, body) = text(kiln.get("/"));
    assert!(status == 200 && body.contains("(edited) from watched!"), "{status} {body}");

    stop.store(true, Ordering::Relaxed);
    let (served, failures) = load.join().expect("load thread");
    assert!(served > 0 && failures.is_empty(), "{served} served, failures: {failures:?}\n{}", kiln.log());
}
