//! The Redis trigger (`[[trigger.redis]]`, Spin's shape) against a real `redis-server`: the
//! `redis_sub` guest (spin-sdk 5.x `#[redis_component]`, `fermyon:spin/inbound-redis`) records each
//! message in the embedded `default` store, which the tests read through the `spin_kv` guest.
//! Payloads and log lines, templates and per-trigger addresses, failures, the deadline, Redis
//! restarts and outages at start, a component without the export, and graceful shutdown.

use crate::key_value::{App, query};
use kiln_e2e::services::RedisServer;
use std::time::{Duration, Instant};

/// `redis_sub` as `sub` on `channel` plus the `spin_kv` reader on `/kv/...`; `app_extra` goes in
/// `[application]`-level sections (variables, `[application.trigger.redis]`).
fn manifest(app_extra: &str, triggers: &str) -> String {
    manifest_with("redis_sub", app_extra, triggers)
}

/// [`manifest`] with the guest `subscriber` as the `sub` and `sub2` components.
pub(crate) fn manifest_with(subscriber: &str, app_extra: &str, triggers: &str) -> String {
    format!(
        r#"spin_manifest_version = 2

[application]
name = "redis-trigger"

{app_extra}

{triggers}

[[trigger.http]]
route = "/kv/..."
component = "kv"

[component.sub]
source = "{sub}"
key_value_stores = ["default"]

[component.sub2]
source = "{sub}"
key_value_stores = ["default"]

[component.kv]
source = "{kv}"
key_value_stores = ["default"]
"#,
        sub = kiln_e2e::guest(subscriber).display(),
        kv = kiln_e2e::guest("spin_kv").display(),
    )
}

fn one_trigger(redis: &RedisServer, channel: &str) -> String {
    manifest(
        &format!("[application.trigger.redis]\naddress = \"{}\"", redis.url()),
        &format!("[[trigger.redis]]\nchannel = \"{channel}\"\ncomponent = \"sub\""),
    )
}

pub(crate) fn kv_get(app: &App, key: &str) -> Option<String> {
    match app.get(&format!("/kv{}", query(&[("op", "get"), ("key", key)]))) {
        (200, v) => Some(v),
        (404, _) => None,
        (status, body) => panic!("kv get {key}: {status} {body}\n{}", app.kiln.log()),
    }
}

pub(crate) fn kv_keys(app: &App) -> Vec<String> {
    let (status, body) = app.get(&format!("/kv{}", query(&[("op", "keys")])));
    assert_eq!(status, 200, "{body}");
    body.lines().map(str::to_string).collect()
}

/// Polls until `cond` holds; false after `timeout`.
pub(crate) fn wait_until(timeout: Duration, mut cond: impl FnMut() -> bool) -> bool {
    let started = Instant::now();
    while started.elapsed() < timeout {
        if cond() {
            return true;
        }
        std::thread::sleep(Duration::from_millis(50));
    }
    cond()
}

/// Waits until `key` reads `want`; panics with the log otherwise.
pub(crate) fn wait_kv(app: &App, key: &str, want: &str, timeout: Duration) {
    let ok = wait_until(timeout, || kv_get(app, key).as_deref() == Some(want));
    assert!(ok, "`{key}` is {:?}, not {want:?}, after {timeout:?}:\n{}", kv_get(app, key), app.kiln.log());
}

/// Waits until some log line contains every one of `parts`.
pub(crate) fn wait_log_line(app: &App, parts: &[&str], timeout: Duration) -> String {
    let mut found = None;
    wait_until(timeout, || {
        found = app.kiln.log().lines().find(|l| parts.iter().all(|p| l.contains(p))).map(str::to_string);
        found.is_some()
    });
    found.unwrap_or_else(|| panic!("no log line with {parts:?} within {timeout:?}:\n{}", app.kiln.log()))
}

/// `PUBSUB NUMSUB channel` (None if Redis does not answer).
fn numsub(redis: &RedisServer, channel: &str) -> Option<usize> {
    let reply = redis.command(&["PUBSUB", "NUMSUB", channel]).ok()?;
    reply.rsplit(':').next().and_then(|n| n.trim().parse::<usize>().ok())
}

/// Waits until `channel` has at least `n` subscribers.
pub(crate) fn wait_subscribed(redis: &RedisServer, channel: &str, n: usize, timeout: Duration) -> bool {
    wait_until(timeout, || numsub(redis, channel).is_some_and(|got| got >= n))
}

pub(crate) fn publish(redis: &RedisServer, channel: &str, payload: &str) {
    let reply = redis.command(&["PUBLISH", channel, payload]).expect("PUBLISH");
    assert!(reply.starts_with(':'), "PUBLISH answered {reply:?}");
}

fn start(redis: &RedisServer, channel: &str, args: &[&str]) -> App {
    let app = App::start(&one_trigger(redis, channel), None, args, &[]);
    assert!(wait_subscribed(redis, channel, 1, Duration::from_secs(20)), "kiln never subscribed to {channel}:\n{}", app.kiln.log());
    app
}

#[test]
fn a_message_runs_the_component_with_its_payload() {
    let redis = RedisServer::start();
    let app = start(&redis, "messages", &[]);
    publish(&redis, "messages", "hello redis");
    wait_kv(&app, "count", "1", Duration::from_secs(20));
    assert_eq!(kv_get(&app, "last").as_deref(), Some("hello redis"));
    assert_eq!(kv_get(&app, "seen:hello redis").as_deref(), Some("1"));
    // Guest stdout, prefixed with the component, and the trigger's own line.
    assert!(app.kiln.wait_for_log("[sub] redis_sub got: hello redis", Duration::from_secs(5)), "{}", app.kiln.log());
    wait_log_line(&app, &["redis messages 11B [sub] ok"], Duration::from_secs(5));
    // Payloads are bytes: an empty one and a non-ASCII one arrive as they are.
    publish(&redis, "messages", "");
    publish(&redis, "messages", "grüße ✓");
    wait_kv(&app, "count", "3", Duration::from_secs(20));
    assert_eq!(kv_get(&app, "seen:").as_deref(), Some("1"));
    assert_eq!(kv_get(&app, "seen:grüße ✓").as_deref(), Some("1"));
    // Another channel is not subscribed.
    let other = redis.command(&["PUBLISH", "elsewhere", "x"]).unwrap();
    assert_eq!(other, ":0\r\n");
}

#[test]
fn every_message_runs_exactly_once() {
    let redis = RedisServer::start();
    let app = start(&redis, "burst", &[]);
    let n = 100;
    for i in 0..n {
        publish(&redis, "burst", &format!("m-{i}"));
    }
    wait_kv(&app, "count", &n.to_string(), Duration::from_secs(60));
    let seen: Vec<String> = kv_keys(&app).into_iter().filter(|k| k.starts_with("seen:")).collect();
    assert_eq!(seen.len(), n, "{seen:?}");
    for i in 0..n {
        assert_eq!(kv_get(&app, &format!("seen:m-{i}")).as_deref(), Some("1"), "m-{i}");
    }
}

#[test]
fn templates_per_trigger_addresses_and_several_components_on_one_channel() {
    let redis = RedisServer::start();
    // The application-level address points nowhere; each trigger overrides it with a template.
    let app_extra = format!(
        "[variables]\nredis_port = {{ default = \"{}\" }}\nchan = {{ default = \"news\" }}\n\n[application.trigger.redis]\naddress = \"redis://127.0.0.1:1\"",
        redis.port()
    );
    let triggers = "[[trigger.redis]]\naddress = \"redis://127.0.0.1:{{ redis_port }}\"\nchannel = \"{{ chan }}\"\ncomponent = \"sub\"\n\n\
                    [[trigger.redis]]\naddress = \"redis://127.0.0.1:{{ redis_port }}\"\nchannel = \"news\"\ncomponent = \"sub2\"";
    let app = App::start(&manifest(&app_extra, triggers), None, &[], &[]);
    assert!(wait_subscribed(&redis, "news", 1, Duration::from_secs(20)), "{}", app.kiln.log());
    publish(&redis, "news", "extra extra");
    // Both components run for the one message.
    wait_kv(&app, "count", "2", Duration::from_secs(20));
    assert_eq!(kv_get(&app, "seen:extra extra").as_deref(), Some("2"));
    assert!(app.kiln.wait_for_log("[sub] redis_sub got: extra extra", Duration::from_secs(5)), "{}", app.kiln.log());
    assert!(app.kiln.wait_for_log("[sub2] redis_sub got: extra extra", Duration::from_secs(5)), "{}", app.kiln.log());
}

#[test]
fn a_failing_handler_is_logged_and_the_next_message_still_runs() {
    let redis = RedisServer::start();
    let app = start(&redis, "messages", &[]);
    publish(&redis, "messages", "fail");
    let line = wait_log_line(&app, &["[sub] redis channel `messages`:"], Duration::from_secs(20));
    assert!(!line.contains(" ok "), "{line}");
    assert!(app.kiln.log().contains("[sub] redis_sub failing"), "{}", app.kiln.log());
    publish(&redis, "messages", "after");
    wait_kv(&app, "count", "2", Duration::from_secs(20));
    assert_eq!(kv_get(&app, "last").as_deref(), Some("after"));
}

#[test]
fn an_endless_handler_is_cut_off_by_the_deadline() {
    let redis = RedisServer::start();
    let app = start(&redis, "messages", &["--request-timeout", "1s"]);
    let started = Instant::now();
    publish(&redis, "messages", "hang");
    wait_log_line(&app, &["[sub] redis channel `messages`:"], Duration::from_secs(20));
    let took = started.elapsed();
    assert!(took >= Duration::from_millis(900) && took < Duration::from_secs(15), "cut off after {took:?}");
    // The host is fine and handles the next message.
    publish(&redis, "messages", "after");
    wait_kv(&app, "last", "after", Duration::from_secs(20));
    assert_eq!(kv_get(&app, "count").as_deref(), Some("2"));
}

#[test]
fn the_trigger_resubscribes_after_redis_restarts() {
    let mut redis = RedisServer::start();
    let app = start(&redis, "messages", &[]);
    publish(&redis, "messages", "before");
    wait_kv(&app, "count", "1", Duration::from_secs(20));
    redis.restart();
    assert!(wait_subscribed(&redis, "messages", 1, Duration::from_secs(30)), "no resubscription after the restart:\n{}", app.kiln.log());
    wait_log_line(&app, &["resubscribed"], Duration::from_secs(10));
    publish(&redis, "messages", "after");
    wait_kv(&app, "last", "after", Duration::from_secs(20));
    assert_eq!(kv_get(&app, "count").as_deref(), Some("2"));
    // Twice in a row, too.
    redis.restart();
    assert!(wait_subscribed(&redis, "messages", 1, Duration::from_secs(30)), "{}", app.kiln.log());
    publish(&redis, "messages", "third");
    wait_kv(&app, "last", "third", Duration::from_secs(20));
}

#[test]
fn redis_down_at_start_is_not_fatal() {
    let mut redis = RedisServer::start();
    redis.stop();
    let app = App::start(&one_trigger(&redis, "messages"), None, &[], &[]);
    // Kiln serves HTTP meanwhile.
    assert_eq!(kv_get(&app, "count"), None);
    std::thread::sleep(Duration::from_millis(500));
    redis.restart();
    assert!(wait_subscribed(&redis, "messages", 1, Duration::from_secs(30)), "{}", app.kiln.log());
    publish(&redis, "messages", "late");
    wait_kv(&app, "last", "late", Duration::from_secs(20));
}

#[test]
fn a_component_without_the_redis_export_fails_at_start() {
    let redis = RedisServer::start();
    let manifest = one_trigger(&redis, "messages").replace("component = \"sub\"", "component = \"kv\"");
    let dir = kiln_e2e::kiln::app_dir(&manifest, &[]);
    let (status, output) = kiln_e2e::kiln::run_to_exit(
        &crate::kiln_bin(),
        &["up", "-f", &dir.path().join("kiln.toml").display().to_string(), "--listen", &kiln_e2e::kiln::free_addr().to_string()],
        Duration::from_secs(120),
    );
    assert!(!status.success(), "{output}");
    assert!(output.contains("exports neither `fermyon:spin/inbound-redis` nor `spin:redis/inbound-redis@3.0.0`"), "{output}");
    assert!(output.contains("`kv`"), "{output}");
}

#[test]
fn graceful_shutdown_lets_the_running_handler_finish() {
    let redis = RedisServer::start();
    let mut app = start(&redis, "messages", &["--shutdown-grace", "10s"]);
    publish(&redis, "messages", "sleep:1500");
    assert!(app.kiln.wait_for_log("[sub] redis_sub got: sleep:1500", Duration::from_secs(20)), "{}", app.kiln.log());
    app.kiln.signal("TERM");
    let status = app.kiln.wait_exit(Duration::from_secs(20)).expect("kiln exits after SIGTERM");
    assert!(status.success(), "{status:?}\n{}", app.kiln.log());
    // Unsubscribed at shutdown.
    assert_eq!(numsub(&redis, "messages"), Some(0));
    app.restart();
    assert_eq!(kv_get(&app, "slept:1500").as_deref(), Some("done"), "{}", app.kiln.log());
}
