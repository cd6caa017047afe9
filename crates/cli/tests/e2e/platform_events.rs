//! Platform mode with event apps: Redis-, NATS- (JetStream) and cron-triggered apps deployed into one
//! `kiln serve` beside each other, against a real `redis-server` and `nats-server`. Each app records
//! its events in its own `default` store, read back over HTTP through the `spin_kv` guest.

use crate::kiln_bin;
use crate::redis_trigger::wait_until;
use kiln_e2e::serve::{AppArchive, KilnServe};
use kiln_e2e::services::{NatsServer, RedisServer};
use serde_json::Value;
use std::time::Duration;

/// An app with `subscriber` (a guest) bound by `trigger` (a `[[trigger.*]]` table naming component
/// `sub`) and the `spin_kv` reader on `/kv/...`. `app_extra` goes at the application level.
fn event_app(subscriber: &str, app_extra: &str, trigger: &str, version: &str) -> Vec<u8> {
    let manifest = format!(
        r#"spin_manifest_version = 2

[application]
name = "events"
{app_extra}

{trigger}

[[trigger.http]]
route = "/kv/..."
component = "kv"

[component.sub]
source = "sub.wasm"
key_value_stores = ["default"]
environment = {{ VERSION = "{version}" }}

[component.kv]
source = "kv.wasm"
key_value_stores = ["default"]
"#
    );
    AppArchive::new(&manifest).guest("sub.wasm", subscriber).guest("kv.wasm", "spin_kv").build()
}

fn redis_app(redis: &RedisServer, channel: &str, version: &str) -> Vec<u8> {
    event_app(
        "redis_sub",
        &format!("[application.trigger.redis]\naddress = \"{}\"", redis.url()),
        &format!("[[trigger.redis]]\nchannel = \"{channel}\"\ncomponent = \"sub\""),
        version,
    )
}

fn nats_app(nats: &NatsServer, subject: &str, durable: &str, version: &str) -> Vec<u8> {
    event_app(
        "msg_sub",
        &format!("[application.trigger.nats]\nurl = \"{}\"", nats.url()),
        &format!("[[trigger.nats]]\nsubject = \"{subject}\"\ncomponent = \"sub\"\ndurable = \"{durable}\""),
        version,
    )
}

fn cron_app() -> Vec<u8> {
    event_app("cron_tick", "", "[[trigger.cron]]\ninterval = \"1s\"\ncomponent = \"sub\"", "1")
}

/// A key of app `app`'s `default` store, through its `spin_kv` reader.
fn kv_get(serve: &KilnServe, app: &str, key: &str) -> Option<String> {
    let response = serve.app_get(app, &format!("/kv?op=get&key={key}"));
    match response.status().as_u16() {
        200 => Some(response.text().unwrap_or_default()),
        404 => None,
        status => panic!("{app}: kv get {key}: {status} {}\n{}", response.text().unwrap_or_default(), serve.kiln.log()),
    }
}

fn kv_number(serve: &KilnServe, app: &str, key: &str) -> u64 {
    kv_get(serve, app, key).map(|v| v.trim().parse().unwrap_or_else(|_| panic!("{key} = {v:?} is not a number"))).unwrap_or(0)
}

fn numsub(redis: &RedisServer, channel: &str) -> u64 {
    let reply = redis.command(&["PUBSUB", "NUMSUB", channel]).expect("PUBSUB NUMSUB");
    // `*2 $len channel :N`: the last integer reply.
    reply.lines().filter_map(|line| line.strip_prefix(':')).next_back().and_then(|n| n.trim().parse().ok()).unwrap_or(0)
}

fn app_info(serve: &KilnServe, name: &str) -> Value {
    let (status, body) = serve.admin("GET", &format!("/v1/apps/{name}"));
    assert_eq!(status, 200, "{body}");
    body
}

#[test]
fn event_apps_are_deployed_updated_restored_and_removed() {
    let redis = RedisServer::start();
    let nats = NatsServer::start();
    let dir = tempfile::tempdir().expect("temp dir");
    let data = dir.path().join("data");
    let mut serve = KilnServe::start(&kiln_bin(), &data, &["--idle-timeout", "1s"]);

    serve.deploy_ok("orders", "", redis_app(&redis, "orders", "1"));
    serve.deploy_ok("jobs", "", nats_app(&nats, "jobs.*", "jobs", "1"));
    serve.deploy_ok("ticker", "", cron_app());

    // Redis: a message reaches the app and its effect is read back over HTTP.
    assert!(wait_until(Duration::from_secs(10), || numsub(&redis, "orders") == 1), "subscribed");
    redis.command(&["PUBLISH", "orders", "first"]).unwrap();
    assert!(wait_until(Duration::from_secs(10), || kv_get(&serve, "orders", "last").as_deref() == Some("first")), "{}", serve.kiln.log());
    // NATS (JetStream): the same.
    nats.js_publish("jobs.a", b"job-1");
    assert!(wait_until(Duration::from_secs(10), || kv_number(&serve, "jobs", "ok") == 1), "{}", serve.kiln.log());
    // Cron: it ticks.
    assert!(wait_until(Duration::from_secs(10), || kv_number(&serve, "ticker", "ticks") >= 2), "{}", serve.kiln.log());

    // The API shows each app's triggers and counts its events; so do the metrics.
    let orders = app_info(&serve, "orders");
    assert_eq!(orders["triggers"][0]["kind"], "redis", "{orders}");
    assert_eq!(orders["triggers"][0]["state"], "ok", "{orders}");
    assert!(orders["triggers"][0]["subscriptions"][0].as_str().unwrap().contains("redis channel `orders`"), "{orders}");
    assert_eq!(orders["events_total"], 1, "{orders}");
    let metrics = kiln_e2e::kiln::client().get(serve.admin_url("/metrics")).bearer_auth(&serve.token).send().unwrap().text().unwrap();
    assert!(metrics.contains(r#"kiln_events_total{app="jobs",trigger="nats",component="sub",outcome="ok"} 1"#), "{metrics}");
    assert!(metrics.contains(r#"kiln_trigger_up{app="orders",trigger="redis"} 1"#), "{metrics}");

    // Scale to zero: idle event apps hold no loaded version, only their subscriptions, and the next
    // event loads them again.
    assert!(wait_until(Duration::from_secs(10), || app_info(&serve, "jobs")["status"] == "idle"), "{}", app_info(&serve, "jobs"));
    nats.js_publish("jobs.a", b"job-2");
    assert!(wait_until(Duration::from_secs(10), || kv_number(&serve, "jobs", "ok") == 2), "{}", serve.kiln.log());

    // Updates under a steady stream: JetStream loses nothing and handles nothing twice; Redis, with
    // its subscription kept across the update, loses nothing either.
    const STREAM: usize = 200;
    let publisher = {
        let (redis_url, nats_addr) = (redis.addr(), nats.addr());
        std::thread::spawn(move || {
            let client = kiln_e2e::services::NatsClient::connect(nats_addr).expect("nats client");
            let mut redis = std::net::TcpStream::connect(redis_url).expect("redis");
            for i in 0..STREAM {
                let payload = format!("m-{i}");
                client.publish("jobs.stream", payload.as_bytes());
                use std::io::Write;
                let command = format!("*3\r\n$7\r\nPUBLISH\r\n$6\r\norders\r\n${}\r\n{payload}\r\n", payload.len());
                redis.write_all(command.as_bytes()).expect("publish to redis");
                std::thread::sleep(Duration::from_millis(10));
            }
            client.flush();
        })
    };
    for version in ["2", "3"] {
        std::thread::sleep(Duration::from_millis(400));
        serve.deploy_ok("jobs", "", nats_app(&nats, "jobs.*", "jobs", version));
        serve.deploy_ok("orders", "", redis_app(&redis, "orders", version));
    }
    publisher.join().expect("publisher");
    let handled = |app: &str, key: &str, before: u64| wait_until(Duration::from_secs(30), || kv_number(&serve, app, key) >= before + STREAM as u64);
    assert!(handled("jobs", "ok", 2), "jobs handled {} of {STREAM}\n{}", kv_number(&serve, "jobs", "ok") - 2, serve.kiln.log());
    assert!(handled("orders", "count", 1), "orders handled {} of {STREAM}\n{}", kv_number(&serve, "orders", "count") - 1, serve.kiln.log());
    std::thread::sleep(Duration::from_millis(500));
    assert_eq!(kv_number(&serve, "jobs", "ok"), 2 + STREAM as u64, "JetStream handled a message twice");
    for i in (0..STREAM).step_by(7) {
        assert_eq!(kv_number(&serve, "jobs", &format!("seen:m-{i}")), 1, "m-{i} handled once");
    }
    assert_eq!(app_info(&serve, "jobs")["version"], 3);

    // A new version that changes the trigger restarts it on the new channel.
    serve.deploy_ok("orders", "", redis_app(&redis, "orders-v4", "4"));
    assert!(wait_until(Duration::from_secs(10), || numsub(&redis, "orders-v4") == 1 && numsub(&redis, "orders") == 0), "resubscribed");
    // The gap without a subscription is measured and logged.
    assert!(wait_until(Duration::from_secs(5), || serve.kiln.log().contains("app `orders`: redis trigger(s) changed and were restarted, ")), "{}", serve.kiln.log());

    // A restart of the host restores the subscriptions and schedules.
    let token = serve.token.clone();
    serve.kiln.signal("TERM");
    let status = serve.kiln.wait_exit(Duration::from_secs(20)).expect("kiln serve stops on SIGTERM");
    assert!(status.success(), "a graceful stop exits 0: {status}\n{}", serve.kiln.log());
    drop(serve);
    let serve = KilnServe::start(&kiln_bin(), &data, &["--idle-timeout", "1s"]);
    assert_eq!(serve.token, token);
    assert!(wait_until(Duration::from_secs(10), || numsub(&redis, "orders-v4") == 1), "restored subscription");
    redis.command(&["PUBLISH", "orders-v4", "after-restart"]).unwrap();
    assert!(wait_until(Duration::from_secs(10), || kv_get(&serve, "orders", "last").as_deref() == Some("after-restart")), "{}", serve.kiln.log());
    nats.js_publish("jobs.b", b"job-after-restart");
    assert!(wait_until(Duration::from_secs(10), || kv_number(&serve, "jobs", "ok") == 3 + STREAM as u64), "{}", serve.kiln.log());
    let ticks = kv_number(&serve, "ticker", "ticks");
    assert!(wait_until(Duration::from_secs(10), || kv_number(&serve, "ticker", "ticks") > ticks), "the cron app ticks again");

    // Removal stops the subscriptions.
    let (status, body) = serve.admin("DELETE", "/v1/apps/orders");
    assert_eq!(status, 204, "{body}");
    assert!(wait_until(Duration::from_secs(10), || numsub(&redis, "orders-v4") == 0), "unsubscribed on removal");
    let (status, _) = serve.admin("DELETE", "/v1/apps/ticker");
    assert_eq!(status, 204);
}

#[test]
fn an_unreachable_redis_or_nats_at_deploy_is_refused_and_changes_nothing() {
    let mut redis = RedisServer::start();
    redis.stop();
    let dir = tempfile::tempdir().expect("temp dir");
    let serve = KilnServe::start(&kiln_bin(), &dir.path().join("data"), &[]);
    let (status, body) = serve.deploy("orders", "", redis_app(&redis, "orders", "1"));
    assert_eq!(status, 400, "{body}");
    assert!(body["error"].as_str().unwrap_or_default().contains("cannot reach"), "{body}");
    let (status, _) = serve.admin("GET", "/v1/apps/orders");
    assert_eq!(status, 404, "nothing was deployed");

    // So is an unreachable NATS server.
    let archive = event_app("msg_sub", "[application.trigger.nats]\nurl = \"nats://127.0.0.1:1\"", "[[trigger.nats]]\nsubject = \"jobs.*\"\ncomponent = \"sub\"", "1");
    let (status, body) = serve.deploy("jobs", "", archive);
    assert_eq!(status, 400, "{body}");
    assert!(body["error"].as_str().unwrap_or_default().contains("127.0.0.1:1"), "{body}");
    let (status, _) = serve.admin("GET", "/v1/apps/jobs");
    assert_eq!(status, 404, "nothing was deployed");

    // A component without the export is refused at its place in the manifest.
    redis.restart();
    let archive = event_app("spin_kv", &format!("[application.trigger.redis]\naddress = \"{}\"", redis.url()), "[[trigger.redis]]\nchannel = \"c\"\ncomponent = \"sub\"", "1");
    let (status, body) = serve.deploy("orders", "", archive);
    assert_eq!(status, 400, "{body}");
    assert!(body["error"].as_str().unwrap_or_default().contains("kiln.toml:"), "{body}");
}

/// `guests/msg_pub` on `/...` as app component `pub`, with `grant` lines in its
/// `[component.pub.tool.kiln]` table.
fn publisher_app(grant: &str) -> Vec<u8> {
    let manifest = kiln_e2e::serve::http_app("pub", "pub.wasm", "/...", &format!("[component.pub.tool.kiln]\n{grant}"));
    AppArchive::new(&manifest).guest("pub.wasm", "msg_pub").build()
}

#[test]
fn apps_message_each_other_within_their_grants() {
    let dir = tempfile::tempdir().expect("temp dir");
    let serve = KilnServe::start(&kiln_bin(), &dir.path().join("data"), &[]);
    // No NATS server: the apps share the host's in-process bus.
    serve.deploy_ok("billing", "", event_app("msg_sub", "", "[[trigger.nats]]\nsubject = \"billing.>\"\ncomponent = \"sub\"", "1"));
    serve.deploy_ok("shop", "", publisher_app("allowed_publish_subjects = [\"billing.>\"]"));
    serve.deploy_ok("rogue", "", publisher_app(""));

    let sent = serve.app_get("shop", "/?subject=billing.invoice&payload=inv-1");
    assert_eq!(sent.status(), 200);
    assert!(wait_until(Duration::from_secs(10), || kv_get(&serve, "billing", "last").as_deref() == Some("inv-1")), "{}", serve.kiln.log());
    // A request across apps: billing's reply goes back to the requester's inbox (replies need no grant).
    let replied = serve.app_text("shop", "/?request=billing.lookup&payload=hello&timeout_ms=5000");
    assert_eq!(replied.trim(), "HELLO");

    // Outside the grant, and with no grant at all: permission-denied, and nothing reaches billing.
    let denied = serve.app_get("shop", "/?subject=audit.log&payload=x");
    assert_eq!(denied.status(), 500);
    assert!(denied.text().unwrap().contains("PermissionDenied(\"publishing to `audit.log` is not granted"));
    let denied = serve.app_get("rogue", "/?subject=billing.invoice&payload=evil");
    assert_eq!(denied.status(), 500);
    assert!(denied.text().unwrap().contains("PermissionDenied"));
    std::thread::sleep(Duration::from_millis(300));
    assert_eq!(kv_number(&serve, "billing", "count"), 2, "only the granted message and the request arrived");

    // A malformed grant is refused at its place in the manifest.
    let (status, body) = serve.deploy("bad", "", publisher_app("allowed_publish_subjects = [\"a.>.b\"]"));
    assert_eq!(status, 400, "{body}");
    let error = body["error"].as_str().unwrap_or_default();
    assert!(error.contains("kiln.toml:") && error.contains("`>` may only be the last token"), "{body}");
}

#[test]
fn a_restored_app_whose_broker_is_down_says_why_its_trigger_is_not_running() {
    let mut nats = NatsServer::start();
    let dir = tempfile::tempdir().expect("temp dir");
    let data = dir.path().join("data");
    let mut serve = KilnServe::start(&kiln_bin(), &data, &[]);
    serve.deploy_ok("jobs", "", nats_app(&nats, "jobs.*", "jobs", "1"));
    serve.kiln.signal("TERM");
    serve.kiln.wait_exit(Duration::from_secs(20)).expect("kiln serve stops");
    drop(serve);
    nats.stop();
    let serve = KilnServe::start(&kiln_bin(), &data, &[]);
    let jobs = app_info(&serve, "jobs");
    let state = jobs["triggers"][0]["state"].as_str().unwrap_or_default().to_string();
    assert!(jobs["triggers"][0]["kind"] == "nats" && state.starts_with("not running:"), "{jobs}");
    // Its requests cannot load it either (the broker is part of the app): a clear error, no hang.
    let response = serve.app_get("jobs", "/kv?op=get&key=ok");
    let (status, body) = (response.status().as_u16(), response.text().unwrap_or_default());
    assert!(status == 500 && body.contains("cannot be loaded"), "{status} {body}");
    let metrics = kiln_e2e::kiln::client().get(serve.admin_url("/metrics")).bearer_auth(&serve.token).send().unwrap().text().unwrap();
    assert!(metrics.contains(r#"kiln_trigger_up{app="jobs",trigger="nats"} 0"#), "{metrics}");
}

/// The value of the sample `series` (full name with labels) in `/metrics`, if it is there.
fn sample(serve: &KilnServe, series: &str) -> Option<f64> {
    serve.metrics().lines().find_map(|line| line.strip_prefix(series)?.trim().parse().ok())
}

/// A Redis the app depends on (its Redis trigger, its message broker and its key-value store) goes
/// away: while it is gone the metrics say so (`kiln_trigger_up` 0 for both triggers,
/// `kiln_backend_errors_total` rising), and once it is back they show it recovered, without a
/// restart.
#[test]
fn a_backend_outage_shows_in_the_metrics_while_it_lasts() {
    let mut redis = RedisServer::start();
    let dir = tempfile::tempdir().expect("temp dir");
    let serve = KilnServe::start(&kiln_bin(), &dir.path().join("data"), &[]);
    let manifest = format!(
        "spin_manifest_version = 2\n[application]\nname = \"events\"\n[application.trigger.redis]\naddress = \"{}\"\n\
         [[trigger.redis]]\nchannel = \"orders\"\ncomponent = \"sub\"\n[[trigger.nats]]\nsubject = \"jobs.*\"\ncomponent = \"jobs\"\ndurable = \"jobs\"\n\
         [[trigger.http]]\nroute = \"/kv/...\"\ncomponent = \"kv\"\n\
         [component.sub]\nsource = \"sub.wasm\"\nkey_value_stores = [\"default\"]\n[component.jobs]\nsource = \"jobs.wasm\"\nkey_value_stores = [\"default\"]\n\
         [component.kv]\nsource = \"kv.wasm\"\nkey_value_stores = [\"default\"]\n",
        redis.url()
    );
    let runtime_config = format!("[key_value_store.default]\ntype = \"redis\"\nurl = \"{0}\"\n[messaging]\ntype = \"redis\"\nurl = \"{0}\"\n", redis.url());
    let archive = AppArchive::new(&manifest)
        .guest("sub.wasm", "redis_sub")
        .guest("jobs.wasm", "msg_sub")
        .guest("kv.wasm", "spin_kv")
        .file("runtime-config.toml", runtime_config)
        .build();
    serve.deploy_ok("events", "", archive);
    let (up, errors) = (r#"kiln_trigger_up{app="events",trigger="redis"}"#, r#"kiln_backend_errors_total{app="events",capability="key_value",backend="redis"}"#);
    let broker_up = r#"kiln_trigger_up{app="events",trigger="nats"}"#;
    assert!(wait_until(Duration::from_secs(10), || sample(&serve, up) == Some(1.0) && sample(&serve, broker_up) == Some(1.0)), "{}", serve.metrics());
    assert_eq!(serve.app_get("events", "/kv?op=set&key=k&value=v").status(), 200);
    assert_eq!(sample(&serve, errors), None, "no backend error yet");

    redis.stop();
    let response = serve.app_get("events", "/kv?op=get&key=k");
    assert_eq!(response.status(), 500, "{}", response.text().unwrap_or_default());
    assert!(wait_until(Duration::from_secs(15), || sample(&serve, up) == Some(0.0)), "the trigger shows down: {}", serve.metrics());
    assert!(wait_until(Duration::from_secs(15), || sample(&serve, broker_up) == Some(0.0)), "the broker's trigger shows down: {}", serve.metrics());
    let during = sample(&serve, errors).unwrap_or(0.0);
    assert!(during >= 1.0, "the failed call is counted: {}", serve.metrics());
    assert_eq!(serve.app_get("events", "/kv?op=get&key=k").status(), 500);
    assert!(sample(&serve, errors).unwrap_or(0.0) > during, "and counted while the outage lasts");

    redis.restart();
    assert!(wait_until(Duration::from_secs(20), || sample(&serve, up) == Some(1.0)), "the trigger shows up again: {}", serve.metrics());
    assert!(wait_until(Duration::from_secs(20), || sample(&serve, broker_up) == Some(1.0)), "the broker's trigger shows up again: {}", serve.metrics());
    assert!(wait_until(Duration::from_secs(10), || serve.app_get("events", "/kv?op=set&key=k&value=w").status() == 200), "writes work again");
    let after = sample(&serve, errors);
    assert_eq!(serve.app_get("events", "/kv?op=get&key=k").text().unwrap_or_default(), "w");
    assert_eq!(sample(&serve, errors), after, "no more errors once Redis is back");
}
