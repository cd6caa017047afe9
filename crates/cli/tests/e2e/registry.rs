//! Apps as OCI artifacts against a real registry (Debian's `docker-registry`, with and without
//! htpasswd auth): push an app with two components and static files, check Spin's layout layer by
//! layer, pull into a fresh cache, run it with `kiln up --from`, deploy it into `kiln serve` with
//! `kiln deploy --from`, and refuse a tampered blob, wrong credentials and unknown references.

use crate::kiln_bin;
use kiln_e2e::kiln::{Kiln, client};
use kiln_e2e::serve::KilnServe;
use kiln_e2e::services::RegistryServer;
use serde_json::Value;
use std::io::Write;
use std::path::Path;
use std::process::{Command, Stdio};

/// More than 128 bytes: a layer of its own.
pub(crate) const BIG: &str = "a static file large enough to be a layer of its own in the artifact, rather than inlined in the locked app; it is repeated twice under two names.";

/// The app: `files` (reads its files) on `/files/...` with three static files (two identical, one
/// small enough to be inlined), and `echo` on `/echo/...`.
pub(crate) fn demo_app() -> tempfile::TempDir {
    let manifest = format!(
        r#"spin_manifest_version = 2
[application]
name = "demo"
version = "1.2.0"
authors = ["Kiln tests"]

[[trigger.http]]
route = "/files/..."
component = "files"

[[trigger.http]]
route = "/echo/..."
component = "echo"

[component.files]
source = "{files}"
files = [{{ source = "static", destination = "/" }}]

[component.echo]
source = "{echo}"
environment = {{ GREETING = "hello" }}
"#,
        files = kiln_e2e::guest("files").display(),
        echo = kiln_e2e::guest("echo_request").display(),
    );
    kiln_e2e::kiln::app_dir(&manifest, &[("static/big.txt", BIG), ("static/copy/big-again.txt", BIG), ("static/small.txt", "small")])
}

/// `kiln <args>` with `XDG_CONFIG_HOME` (credentials) in `config`, `stdin` fed; (success, output).
pub(crate) fn kiln(args: &[&str], config: &Path, stdin: &str) -> (bool, String) {
    let mut child = Command::new(kiln_bin())
        .args(args)
        .env("XDG_CONFIG_HOME", config)
        .env("KILN_CACHE_DIR", config.join("cache"))
        .env("HOME", config)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("start kiln");
    child.stdin.take().expect("stdin").write_all(stdin.as_bytes()).expect("write stdin");
    let output = child.wait_with_output().expect("kiln output");
    let text = String::from_utf8_lossy(&output.stdout).to_string() + &String::from_utf8_lossy(&output.stderr);
    (output.status.success(), text)
}

pub(crate) fn push(reference: &str, app: &Path, config: &Path) -> String {
    let (ok, out) = kiln(&["registry", "push", reference, "-f", app.to_str().unwrap(), "--insecure"], config, "");
    assert!(ok, "push failed: {out}");
    let digest = out.split('@').nth(1).and_then(|rest| rest.split_whitespace().next()).unwrap_or_else(|| panic!("no digest in: {out}"));
    assert!(digest.starts_with("sha256:") && digest.len() == 71, "{out}");
    digest.to_string()
}

/// `GET /v2/<path>` on the registry, as JSON.
fn registry_get(registry: &RegistryServer, path: &str) -> Value {
    let response = client()
        .get(format!("http://{}/v2/{path}", registry.host()))
        .header("accept", "application/vnd.oci.image.manifest.v1+json")
        .send()
        .expect("registry GET");
    let text = response.text().expect("registry body");
    serde_json::from_str(&text).unwrap_or_else(|e| panic!("GET /v2/{path}: not JSON ({e}): {text}"))
}

#[test]
fn push_pull_run_and_deploy_from_a_registry() {
    let registry = RegistryServer::start();
    let config = tempfile::tempdir().unwrap();
    let app = demo_app();
    let reference = format!("{}/apps/demo:v1", registry.host());
    let digest = push(&reference, app.path(), config.path());

    // Spin's layout, layer by layer.
    let manifest: Value = registry_get(&registry, "apps/demo/manifests/v1");
    assert_eq!(manifest["config"]["mediaType"], "application/vnd.oci.image.config.v1+json", "{manifest}");
    assert_eq!(manifest["annotations"]["org.opencontainers.image.title"], "demo");
    assert_eq!(manifest["annotations"]["org.opencontainers.image.version"], "1.2.0");
    let layers = manifest["layers"].as_array().unwrap();
    let types: Vec<&str> = layers.iter().map(|l| l["mediaType"].as_str().unwrap()).collect();
    assert_eq!(
        types,
        [
            "application/vnd.wasm.content.layer.v1+wasm",
            "application/vnd.wasm.content.layer.v1+data",
            "application/vnd.wasm.content.layer.v1+wasm",
            "application/vnd.fermyon.spin.application.v1+config"
        ],
        "two components, the big file once (its copy deduplicated), the small file inlined, the locked app last: {manifest}"
    );
    let locked_digest = layers[3]["digest"].as_str().unwrap();
    let config_blob: Value = registry_get(&registry, &format!("apps/demo/blobs/{}", manifest["config"]["digest"].as_str().unwrap()));
    assert_eq!(config_blob["config"]["Labels"]["com.fermyon.spin.lockedAppDigest"], locked_digest);
    let locked: Value = registry_get(&registry, &format!("apps/demo/blobs/{locked_digest}"));
    assert_eq!(locked["spin_lock_version"], 0);
    assert_eq!(locked["metadata"]["name"], "demo");
    let files = &locked["components"][0];
    assert_eq!(files["id"], "files");
    assert_eq!(files["source"]["digest"], layers[0]["digest"], "{locked}");
    let entries = files["files"].as_array().unwrap();
    let paths: Vec<&str> = entries.iter().map(|f| f["path"].as_str().unwrap()).collect();
    assert_eq!(paths, ["big.txt", "copy/big-again.txt", "small.txt"]);
    assert_eq!(entries[0]["digest"], layers[1]["digest"]);
    assert_eq!(entries[1]["digest"], layers[1]["digest"]);
    assert_eq!(entries[2]["inline"], "c21hbGw", "small files are inlined (base64, no padding)");
    assert_eq!(locked["components"][1]["env"]["GREETING"], "hello");
    let triggers: Vec<(&str, &str)> = locked["triggers"].as_array().unwrap().iter().map(|t| (t["trigger_type"].as_str().unwrap(), t["trigger_config"]["component"].as_str().unwrap())).collect();
    assert_eq!(triggers, [("http", "files"), ("http", "echo")]);

    // Pull into a fresh cache.
    let cache = tempfile::tempdir().unwrap();
    let (ok, out) = kiln(&["registry", "pull", &reference, "--insecure", "--cache-dir", cache.path().to_str().unwrap()], config.path(), "");
    assert!(ok && out.contains(&digest), "{out}");

    // Run it straight from its reference, pinned by digest, on another fresh cache.
    let pinned = format!("{}/apps/demo@{digest}", registry.host());
    let run_cache = tempfile::tempdir().unwrap();
    let kiln_up = Kiln::up(&kiln_bin(), Path::new(&pinned), &["--insecure", "--cache-dir", run_cache.path().to_str().unwrap(), "--state-dir", run_cache.path().join("state").to_str().unwrap()]);
    assert_eq!(kiln_up.get("/files/?path=/big.txt").text().unwrap(), BIG);
    assert_eq!(kiln_up.get("/files/?path=/copy/big-again.txt").text().unwrap(), BIG);
    assert_eq!(kiln_up.get("/files/?path=/small.txt").text().unwrap(), "small");
    assert!(kiln_up.get("/echo/x").text().unwrap().contains("GREETING"));
    drop(kiln_up);

    // Deploy it into kiln serve: the host pulls, verifies and deploys.
    let data = tempfile::tempdir().unwrap();
    let serve = KilnServe::start(&kiln_bin(), &data.path().join("data"), &[]);
    let admin = format!("http://{}", serve.admin);
    let deploy = ["deploy", "--from", reference.as_str(), "--insecure", "--host", admin.as_str(), "--token", serve.token.as_str()];
    let (ok, out) = kiln(&deploy, config.path(), "");
    assert!(ok, "deploy --from failed: {out}\n{}", serve.kiln.log());
    assert!(out.contains("Deployed `demo`"), "{out}");
    assert_eq!(serve.app_text("demo", "/files/?path=/big.txt"), BIG);
    // An update from the same reference swaps versions as an archive deploy does.
    let (ok, out) = kiln(&deploy, config.path(), "");
    assert!(ok && out.contains("Updated `demo` (version 2)"), "{out}");

    // Not found, and a registry that is not there.
    let (ok, out) = kiln(&["registry", "pull", &format!("{}/apps/nope:v1", registry.host()), "--insecure"], config.path(), "");
    assert!(!ok && out.contains("apps/nope:v1") && out.contains("not found"), "{out}");
    let (ok, out) = kiln(&["registry", "pull", "127.0.0.1:1/apps/demo:v1", "--insecure"], config.path(), "");
    assert!(!ok && out.contains("127.0.0.1:1"), "{out}");

    // A tampered blob is refused, naming the layer, and nothing is kept or run.
    let big_layer = layers[1]["digest"].as_str().unwrap();
    std::fs::write(registry.blob_file(big_layer), BIG.replace("static", "STATIC")).unwrap();
    let tampered_cache = tempfile::tempdir().unwrap();
    let (ok, out) = kiln(&["registry", "pull", &reference, "--insecure", "--cache-dir", tampered_cache.path().to_str().unwrap()], config.path(), "");
    assert!(!ok && out.contains(big_layer) && out.contains("does not match its digest"), "{out}");
    assert!(!tampered_cache.path().join("registry/apps").exists(), "a refused pull materialized nothing");
}

#[test]
fn credentials_are_required_stored_privately_and_used() {
    let registry = RegistryServer::start_with_auth("alice", "wonderland");
    let config = tempfile::tempdir().unwrap();
    let app = demo_app();
    let reference = format!("{}/private/demo:v1", registry.host());
    let (ok, out) = kiln(&["registry", "push", &reference, "-f", app.path().to_str().unwrap(), "--insecure"], config.path(), "");
    assert!(!ok && out.contains("kiln registry login"), "pushing without credentials is explained: {out}");

    let (ok, out) = kiln(&["registry", "login", &registry.host(), "-u", "alice", "--password-stdin", "--insecure"], config.path(), "not-the-password\n");
    assert!(!ok && out.contains("refused the credentials"), "{out}");
    let (ok, out) = kiln(&["registry", "login", &registry.host(), "-u", "alice", "--password-stdin", "--insecure"], config.path(), "wonderland\n");
    assert!(ok, "{out}");
    let stored = config.path().join("kiln/registry-auth.json");
    use std::os::unix::fs::PermissionsExt;
    assert_eq!(std::fs::metadata(&stored).unwrap().permissions().mode() & 0o777, 0o600);
    assert!(!std::fs::read_to_string(&stored).unwrap().contains("wonderland"), "the password is not stored in the clear");

    push(&reference, app.path(), config.path());
    let (ok, out) = kiln(&["registry", "pull", &reference, "--insecure"], config.path(), "");
    assert!(ok, "{out}");
}

#[test]
fn component_sources_from_a_url_and_from_a_registry_package() {
    let registry = RegistryServer::start();
    let config = tempfile::tempdir().unwrap();
    // A one-component app in the registry is a package with one Wasm layer.
    let package = kiln_e2e::kiln::app_dir(
        &format!("spin_manifest_version = 2\n[application]\nname = \"echo\"\n[[trigger.http]]\nroute = \"/...\"\ncomponent = \"echo\"\n[component.echo]\nsource = \"{}\"\n", kiln_e2e::guest("echo_request").display()),
        &[],
    );
    push(&format!("{}/kiln/echo:1.0.0", registry.host()), package.path(), config.path());
    let manifest = registry_get(&registry, "kiln/echo/manifests/1.0.0");
    let wasm = manifest["layers"][0]["digest"].as_str().unwrap().to_string();
    let app_manifest = |digest: &str| {
        format!(
            "spin_manifest_version = 2\n[application]\nname = \"sources\"\n\
             [[trigger.http]]\nroute = \"/url/...\"\ncomponent = \"by-url\"\n\
             [[trigger.http]]\nroute = \"/package/...\"\ncomponent = \"by-package\"\n\
             [component.by-url]\nsource = {{ url = \"http://{host}/v2/kiln/echo/blobs/{wasm}\", digest = \"{digest}\" }}\n\
             [component.by-package]\nsource = {{ registry = \"{host}\", package = \"kiln:echo\", version = \"1.0.0\" }}\n",
            host = registry.host()
        )
    };
    let app = kiln_e2e::kiln::app_dir(&app_manifest(&wasm), &[]);
    let cache = tempfile::tempdir().unwrap();
    let cache_dir = cache.path().to_str().unwrap();
    let kiln_up = Kiln::up(&kiln_bin(), &app.path().join("kiln.toml"), &["--insecure", "--cache-dir", cache_dir]);
    assert_eq!(kiln_up.get("/url/x").status(), 200);
    assert_eq!(kiln_up.get("/package/x").status(), 200);
    drop(kiln_up);

    // A digest that does not match what the URL serves: refused at the source's line.
    let wrong = format!("sha256:{}", "0".repeat(64));
    let app = kiln_e2e::kiln::app_dir(&app_manifest(&wrong), &[]);
    let (ok, out) = kiln(&["up", "-f", app.path().to_str().unwrap(), "--insecure", "--cache-dir", cache_dir], config.path(), "");
    assert!(!ok && out.contains("kiln.toml:") && out.contains("match its digest"), "{out}");
}
