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

/// A runtime config putting the `default` key-value store on `redis`.
fn redis_store(redis: &RedisServer) -> String {
    format!("[key_value_store.default]\ntype = \"redis\"\nurl = \"{}\"\n", redis.url())
}

/// The `spin_kv` guest on `/...`, with its `default` store on `redis` (in `runtime-config.toml`).
fn kv_app(redis: &RedisServer) -> tempfile::TempDir {
    kiln_e2e::kiln::app_dir(
        &format!(
            "spin_manifest_version = 2\n[application]\nname = \"kv\"\n[[trigger.http]]\nroute = \"/...\"\ncomponent = \"kv\"\n[component.kv]\nsource = \"{}\"\nkey_value_stores = [\"default\"]\n",
            kiln_e2e::guest("spin_kv").display()
        ),
        &[("runtime-config.toml", &redis_store(redis))],
    )
}

/// `kiln deploy --from reference` to `host`, with the `runtime-config.toml` of `app_dir`.
fn deploy_with_runtime_config(host: &KilnServe, reference: &str, app_dir: &std::path::Path, extra: &[&str], config: &std::path::Path) {
    let (admin, runtime_config) = (format!("http://{}", host.admin), app_dir.join("runtime-config.toml"));
    let mut args = vec!["deploy", "--from", reference, "--insecure", "--runtime-config-file", runtime_config.to_str().unwrap(), "--host", &admin, "--token", &host.token];
    args.extend_from_slice(extra);
    let (ok, out) = kiln(&args, config, "");
    assert!(ok, "{out}\n{}", host.kiln.log());
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
    let kv_app = kv_app(&redis);
    let kv_reference = format!("{}/apps/kv:v1", registry.host());
    push(&kv_reference, kv_app.path(), config.path());
    deploy_with_runtime_config(&a, &kv_reference, kv_app.path(), &[], config.path());
    assert!(wait_until(Duration::from_secs(10), || c.app_get("kv", "/?op=exists&key=x").status() == 200), "{}", c.kiln.log());
    assert_eq!(a.app_text("kv", "/?op=set&key=shared&value=from-a"), "ok");
    assert_eq!(c.app_text("kv", "/?op=get&key=shared"), "from-a");

    // Removed on b: gone everywhere.
    let (status, body) = b.admin("DELETE", "/v1/apps/demo");
    assert_eq!(status, 204, "{body}");
    assert!(wait_until(Duration::from_secs(10), || gone(&a, "demo") && gone(&c, "demo") && gone(&d, "demo")), "{}", a.kiln.log());
    assert!(!gone(&a, "local"), "the host's own archive app stays");
}

/// Round-robin over the hosts still answering, as a load balancer with health checks would: a
/// request that cannot connect goes to the next host.
fn set_through_any(hosts: &[&KilnServe], start: usize, key: &str) -> Result<(), String> {
    let mut last = String::new();
    for offset in 0..hosts.len() {
        let host = hosts[(start + offset) % hosts.len()];
        match kiln_e2e::kiln::client().get(host.kiln.url(&format!("/?op=set&key={key}&value={key}"))).header("host", "kv.localhost").send() {
            Ok(response) if response.status() == 200 => return Ok(()),
            Ok(response) => return Err(format!("{}: {}", response.status(), response.text().unwrap_or_default())),
            Err(err) if err.is_connect() => last = err.to_string(),
            Err(err) => return Err(err.to_string()),
        }
    }
    Err(format!("no host answered: {last}"))
}

#[test]
fn a_host_killed_under_concurrent_writes_loses_no_acknowledged_write() {
    let redis = RedisServer::start();
    let registry = RegistryServer::start();
    let config = tempfile::tempdir().unwrap();
    let kv_app = kv_app(&redis);
    let reference = format!("{}/apps/kv:v1", registry.host());
    push(&reference, kv_app.path(), config.path());
    let dir = tempfile::tempdir().unwrap();
    let (a, b, c) = (host(&redis, &dir, "a"), host(&redis, &dir, "b"), host(&redis, &dir, "c"));
    deploy_with_runtime_config(&a, &reference, kv_app.path(), &[], config.path());
    assert!(wait_until(Duration::from_secs(10), || [&a, &b, &c].iter().all(|h| h.app_get("kv", "/?op=exists&key=x").status() == 200)), "not on every host");

    // Four writers spread their writes over the three hosts; b is killed (SIGKILL) meanwhile.
    let (acknowledged, failed) = std::thread::scope(|scope| {
        let hosts = [&a, &b, &c];
        let writers: Vec<_> = (0..4)
            .map(|writer| {
                scope.spawn(move || {
                    let (mut acknowledged, mut failed) = (Vec::new(), Vec::new());
                    for i in 0..75 {
                        let key = format!("k{writer}-{i}");
                        match set_through_any(&hosts, writer + i, &key) {
                            Ok(()) => acknowledged.push(key),
                            Err(err) => failed.push((key, err)),
                        }
                    }
                    (acknowledged, failed)
                })
            })
            .collect();
        std::thread::sleep(Duration::from_millis(150));
        b.kiln.signal("KILL");
        let (mut acknowledged, mut failed) = (Vec::new(), Vec::new());
        for writer in writers {
            let (ok, bad) = writer.join().expect("writer");
            acknowledged.extend(ok);
            failed.extend(bad);
        }
        (acknowledged, failed)
    });
    // Only requests in flight on b when it died may fail: at most one per writer.
    assert!(failed.len() <= 4, "failed writes: {failed:?}");
    assert!(acknowledged.len() >= 296, "{} acknowledged", acknowledged.len());
    for key in &acknowledged {
        assert_eq!(c.app_text("kv", &format!("/?op=get&key={key}")), *key, "an acknowledged write was lost");
    }
}

#[test]
fn a_host_killed_mid_stream_leaves_no_jetstream_message_unhandled() {
    let redis = RedisServer::start();
    let nats = kiln_e2e::services::NatsServer::start();
    let nats_section = format!("[application.trigger.nats]\nurl = \"{}\"\n", nats.url());
    killed_host_leaves_no_message_unhandled(&redis, &nats_section, &redis_store(&redis), |i| {
        nats.js_publish("jobs.x", format!("m-{i}").as_bytes());
    });
}

/// The same with Redis as the broker, named by the app's own runtime config, and the messages added
/// to the durable's stream by another program (`XADD … subject … payload …`).
#[test]
fn a_host_killed_mid_stream_leaves_no_redis_stream_message_unhandled() {
    let redis = RedisServer::start();
    let runtime_config = format!("{}[messaging]\ntype = \"redis\"\nurl = \"{}\"\n", redis_store(&redis), redis.url());
    killed_host_leaves_no_message_unhandled(&redis, "", &runtime_config, |i| {
        let reply = redis.command(&["XADD", "kiln:msg:durable:jobs", "*", "subject", "jobs.x", "payload", &format!("m-{i}")]).unwrap();
        assert!(reply.starts_with('$'), "XADD: {reply}");
    });
}

/// Three hosts share one durable consumer (`jobs`, each message to one of them); one is killed -9
/// while `publish(i)` sends 100 messages: every message is still handled, the killed host's after
/// its ack wait.
fn killed_host_leaves_no_message_unhandled(redis: &RedisServer, broker_section: &str, runtime_config: &str, publish: impl Fn(usize)) {
    let registry = RegistryServer::start();
    let config = tempfile::tempdir().unwrap();
    let app = kiln_e2e::kiln::app_dir(
        &format!(
            "spin_manifest_version = 2\n[application]\nname = \"jobs\"\n{broker_section}\
             [[trigger.nats]]\nsubject = \"jobs.*\"\ncomponent = \"sub\"\ndurable = \"jobs\"\n\
             [[trigger.http]]\nroute = \"/kv/...\"\ncomponent = \"kv\"\n\
             [component.sub]\nsource = \"{}\"\nkey_value_stores = [\"default\"]\n[component.kv]\nsource = \"{}\"\nkey_value_stores = [\"default\"]\n",
            kiln_e2e::guest("msg_sub").display(),
            kiln_e2e::guest("spin_kv").display()
        ),
        &[("runtime-config.toml", runtime_config)],
    );
    let reference = format!("{}/apps/jobs:v1", registry.host());
    push(&reference, app.path(), config.path());
    let dir = tempfile::tempdir().unwrap();
    let (a, b, c) = (host(redis, &dir, "a"), host(redis, &dir, "b"), host(redis, &dir, "c"));
    // A short deadline: a message a killed host took is redelivered after deadline + 30 s.
    deploy_with_runtime_config(&a, &reference, app.path(), &["--request-timeout", "1s"], config.path());
    let subscribed = |host: &KilnServe| host.admin("GET", "/v1/apps/jobs").1["triggers"][0]["state"] == "ok";
    assert!(wait_until(Duration::from_secs(10), || subscribed(&a) && subscribed(&b) && subscribed(&c)), "not subscribed everywhere");

    const MESSAGES: usize = 100;
    for i in 0..MESSAGES {
        if i == 30 {
            c.kiln.signal("KILL");
        }
        publish(i);
        std::thread::sleep(Duration::from_millis(5));
    }
    // A key not written yet answers 404: not handled yet (a message the killed host took comes back
    // after its ack wait), so keep waiting.
    let count = |key: &str| {
        let response = a.app_get("jobs", &format!("/kv?op=get&key={key}"));
        let handled = response.status() == 200;
        if handled { response.text().unwrap_or_default().trim().parse::<u64>().unwrap_or(0) } else { 0 }
    };
    assert!(
        wait_until(Duration::from_secs(60), || (0..MESSAGES).all(|i| count(&format!("seen:m-{i}")) >= 1)),
        "unhandled: {:?}\n{}",
        (0..MESSAGES).filter(|i| count(&format!("seen:m-{i}")) == 0).collect::<Vec<_>>(),
        a.kiln.log()
    );
}
