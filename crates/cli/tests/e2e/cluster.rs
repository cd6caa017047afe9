//! Several `kiln serve` hosts sharing a Redis server (`--cluster-redis`): an app deployed by
//! reference on one host is served by all, a host started later catches up, a removal on any host
//! removes it everywhere, and an uploaded archive stays on the host it was sent to.

use crate::kiln_bin;
use crate::redis_trigger::wait_until;
use crate::registry::{BIG, demo_app, kiln, push};
use kiln_e2e::serve::{AppArchive, KilnServe, http_app};
use kiln_e2e::services::{RedisServer, RegistryServer};
use std::time::{Duration, Instant};

fn host(redis: &RedisServer, dir: &tempfile::TempDir, name: &str) -> KilnServe {
    KilnServe::start(&kiln_bin(), &dir.path().join(name), &["--cluster-redis", &redis.url()])
}

fn serves(host: &KilnServe, app: &str) -> bool {
    let response = host.app_get(app, "/files/?path=/big.txt");
    response.status() == 200 && response.text().unwrap_or_default() == BIG
}

fn gone(host: &KilnServe, app: &str) -> bool {
    host.admin("GET", &format!("/v1/apps/{app}")).0 == 404
}

#[test]
fn hosts_sharing_redis_serve_the_apps_deployed_by_reference() {
    let redis = RedisServer::start();
    let registry = RegistryServer::start();
    let config = tempfile::tempdir().unwrap();
    let reference = format!("{}/apps/demo:v1", registry.host());
    push(&reference, demo_app().path(), config.path());
    let dir = tempfile::tempdir().unwrap();
    let (a, b, c) = (host(&redis, &dir, "a"), host(&redis, &dir, "b"), host(&redis, &dir, "c"));

    // Deployed on a: served by b and c too.
    let admin = format!("http://{}", a.admin);
    let started = Instant::now();
    let (ok, out) = kiln(&["deploy", "--from", &reference, "--insecure", "--host", &admin, "--token", &a.token], config.path(), "");
    assert!(ok, "{out}\n{}", a.kiln.log());
    assert!(serves(&a, "demo"));
    assert!(wait_until(Duration::from_secs(10), || serves(&b, "demo") && serves(&c, "demo")), "b:\n{}\nc:\n{}", b.kiln.log(), c.kiln.log());
    eprintln!("a deploy reached all three hosts in {:?}", started.elapsed());
    assert_eq!(b.admin("GET", "/v1/apps/demo").1["version"], 1, "each host deploys it once");

    // A host started later catches up at start.
    let d = host(&redis, &dir, "d");
    assert!(wait_until(Duration::from_secs(10), || serves(&d, "demo")), "{}", d.kiln.log());

    // An uploaded archive stays on the host it was sent to.
    let archive = AppArchive::new(&http_app("local", "e.wasm", "/...", "")).guest("e.wasm", "echo_request").build();
    a.deploy_ok("local", "", archive);
    std::thread::sleep(Duration::from_millis(500));
    assert!(gone(&b, "local"), "an archive deploy is not shared");

    // State shared through the runtime config sent with the reference: a key set on one host is
    // read on another.
    let kv_app = kiln_e2e::kiln::app_dir(
        &format!(
            "spin_manifest_version = 2\n[application]\nname = \"kv\"\n[[trigger.http]]\nroute = \"/...\"\ncomponent = \"kv\"\n[component.kv]\nsource = \"{}\"\nkey_value_stores = [\"default\"]\n",
            kiln_e2e::guest("spin_kv").display()
        ),
        &[("runtime-config.toml", &format!("[key_value_store.default]\ntype = \"redis\"\nurl = \"{}\"\n", redis.url()))],
    );
    let kv_reference = format!("{}/apps/kv:v1", registry.host());
    push(&kv_reference, kv_app.path(), config.path());
    let runtime_config = kv_app.path().join("runtime-config.toml");
    let (ok, out) = kiln(&["deploy", "--from", &kv_reference, "--insecure", "--runtime-config-file", runtime_config.to_str().unwrap(), "--host", &admin, "--token", &a.token], config.path(), "");
    assert!(ok, "{out}\n{}", a.kiln.log());
    assert!(wait_until(Duration::from_secs(10), || c.app_get("kv", "/?op=exists&key=x").status() == 200), "{}", c.kiln.log());
    assert_eq!(a.app_text("kv", "/?op=set&key=shared&value=from-a"), "ok");
    assert_eq!(c.app_text("kv", "/?op=get&key=shared"), "from-a");

    // Removed on b: gone everywhere.
    let (status, body) = b.admin("DELETE", "/v1/apps/demo");
    assert_eq!(status, 204, "{body}");
    assert!(wait_until(Duration::from_secs(10), || gone(&a, "demo") && gone(&c, "demo") && gone(&d, "demo")), "{}", a.kiln.log());
    assert!(!gone(&a, "local"), "the host's own archive app stays");
}
