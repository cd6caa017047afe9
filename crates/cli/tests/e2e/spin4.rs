//! Spin 4 apps as users build them with spin-sdk 7 from crates.io: the `spin4_http` guest (an
//! `async` `#[http_service]`, exporting `wasi:http/handler@0.3.0`) and the `spin4_redis_sub` guest
//! (`#[redis_subscriber]`, exporting `spin:redis/inbound-redis@3.0.0`), unchanged. Streaming bodies
//! and Spin's headers through a WASI 0.3 handler; `spin:key-value@3.0.0`, `spin:variables@3.0.0`,
//! `spin:sqlite@3.1.0` and `spin:redis@3.0.0` (every function, every denial, embedded and Redis);
//! outbound HTTP through `wasi:http/client@0.3.0`; traps and the deadline; the Redis trigger.

use crate::key_value::{App, Backend, at, kv_manifest, spin_kv_denials, spin_kv_every_function};
use crate::redis_outbound::{read_until, subscribe};
use crate::redis_trigger::{manifest_with, publish, wait_kv, wait_log_line, wait_subscribed};
use crate::single;
use crate::sqlite::{every_value_type_round_trips_at, sql_at};
use kiln_e2e::kiln::client;
use kiln_e2e::serve::{AppArchive, KilnServe};
use kiln_e2e::services::RedisServer;
use std::time::Duration;

const GUEST: &str = "spin4_http";

fn spin4_app(extra: &str, args: &[&str]) -> App {
    App::start(&single(GUEST, "/...", extra), None, args, &[])
}

#[test]
fn a_wasi_0_3_handler_streams_both_bodies_and_sees_spin_s_headers() {
    let app = App::start(&single(GUEST, "/app/...", ""), None, &[], &[]);
    // 4 MiB, sent chunked (no declared length): streamed through the guest and back.
    let payload: Vec<u8> = (0..4u32 << 20).map(|i| (i % 251) as u8).collect();
    let body = reqwest::blocking::Body::new(std::io::Cursor::new(payload.clone()));
    let response = client().post(app.kiln.url("/app/echo")).body(body).send().expect("POST /app/echo");
    assert_eq!(response.status().as_u16(), 200, "{}", app.kiln.log());
    let header = |name: &str| response.headers().get(name).and_then(|v| v.to_str().ok()).map(str::to_string);
    assert_eq!(header("x-method").as_deref(), Some("POST"));
    assert_eq!(header("x-path-info").as_deref(), Some("/echo"));
    assert_eq!(header("x-matched-route").as_deref(), Some("/app/..."));
    assert_eq!(header("x-full-url"), Some(app.kiln.url("/app/echo")));
    let echoed = response.bytes().expect("echoed body");
    assert!(echoed.as_ref() == payload.as_slice(), "echoed {} bytes, sent {}", echoed.len(), payload.len());
    // Guest stdout goes to the log, prefixed by the component id.
    assert_eq!(app.get("/app/stdout"), (200, "ok".into()));
    assert!(app.kiln.wait_for_log("[app] spin4 stdout line", Duration::from_secs(5)), "{}", app.kiln.log());
}

#[test]
fn a_wasi_0_3_handler_that_traps_or_loops_gets_an_error_and_the_host_keeps_serving() {
    let app = spin4_app("", &["--request-timeout", "1s"]);
    let (status, text) = app.get("/trap");
    assert_eq!(status, 500, "{text}");
    assert_eq!(app.get("/hang"), (504, "504 Gateway Timeout: the component ran past its deadline of 1s\n".into()));
    assert_eq!(app.get("/stdout"), (200, "ok".into()));
}

#[test]
fn key_value_3_every_function_embedded() {
    spin_kv_every_function(GUEST, "/kv", Backend::Embedded);
}

#[test]
fn key_value_3_every_function_redis() {
    let redis = RedisServer::start();
    spin_kv_every_function(GUEST, "/kv", Backend::Redis(&redis));
    let keys = redis.command(&["KEYS", "*"]).unwrap();
    assert!(keys.contains("empty") && keys.contains("big"), "{keys}");
}

#[test]
fn key_value_3_denials() {
    spin_kv_denials(GUEST, "/kv");
}

#[test]
fn key_value_3_shares_the_store_with_key_value_2() {
    // One app, two components granted `default`: Spin 4's interface and Spin 2's see the same data.
    let manifest = format!(
        "{}\n[[trigger.http]]\nroute = \"/v2/...\"\ncomponent = \"old\"\n\n[component.old]\nsource = \"{}\"\nkey_value_stores = [\"default\"]\n",
        kv_manifest(GUEST, "[\"default\"]", ""),
        kiln_e2e::guest("spin_kv").display()
    );
    let app = App::start(&manifest, None, &[], &[]);
    assert_eq!(app.get(&at("/kv", &[("op", "set"), ("key", "shared"), ("value", "from v3")])), (200, "ok".into()));
    assert_eq!(app.get(&at("/v2/", &[("op", "get"), ("key", "shared")])), (200, "from v3".into()));
}

#[test]
fn variables_3() {
    let manifest = format!(
        "{}\n[variables]\nwho = {{ default = \"world\" }}\ntoken = {{ required = true, secret = true }}\n",
        single(GUEST, "/...", "variables = { greeting = \"hello {{ who }}\", token = \"{{ token }}\" }")
    );
    let app = App::start(&manifest, None, &[], &[("KILN_VARIABLE_TOKEN", "t0ken-from-env")]);
    let var = |name: &str| app.get(&at("/variables", &[("name", name)]));
    assert_eq!(var("greeting"), (200, "hello world".into()));
    assert_eq!(var("token"), (200, "t0ken-from-env".into()));
    let (status, text) = var("missing");
    assert_eq!(status, 500);
    assert!(text.starts_with("error: Undefined("), "{text}");
    let (status, text) = var("Not-Valid");
    assert_eq!(status, 500);
    assert!(text.starts_with("error: InvalidName("), "{text}");
    assert!(!app.kiln.log().contains("t0ken-from-env"), "a secret reached the log:\n{}", app.kiln.log());
}

#[test]
fn sqlite_3_1_every_value_type_and_metadata() {
    let app = spin4_app("sqlite_databases = [\"default\"]", &[]);
    every_value_type_round_trips_at(&app, "/sqlite", "3");
    let meta = |sql: &str| app.get(&at("/sqlite", &[("sql", sql), ("meta", "1")]));
    assert_eq!(sql_at(&app, "/sqlite", "3", "default", "CREATE TABLE m (id INTEGER PRIMARY KEY, s TEXT)", &[]).0, 200);
    assert_eq!(meta("INSERT INTO m (id, s) VALUES (41, 'a'), (42, 'b')"), (200, "columns: \nchanges: 2\nlast-insert-rowid: 42".into()));
    assert_eq!(meta("UPDATE m SET s = 'c' WHERE id = 41"), (200, "columns: \nchanges: 1\nlast-insert-rowid: 42".into()));
    let (status, text) = sql_at(&app, "/sqlite", "3", "default", "SELECT * FROM missing_table", &[]);
    assert_eq!(status, 500);
    assert!(text.starts_with("error: Io(") && text.contains("no such table"), "{text}");
}

#[test]
fn sqlite_3_1_denials() {
    let app = spin4_app("sqlite_databases = [\"default\", \"other\"]", &[]);
    assert_eq!(sql_at(&app, "/sqlite", "3", "other", "SELECT 1", &[]), (500, "error: NoSuchDatabase".into()));
    let app = spin4_app("", &[]);
    assert_eq!(sql_at(&app, "/sqlite", "3", "default", "SELECT 1", &[]), (500, "error: AccessDenied".into()));
}

#[test]
fn redis_3_every_operation() {
    let redis = RedisServer::start();
    let app = spin4_app(&format!("allowed_outbound_hosts = [\"redis://127.0.0.1:{}\"]", redis.port()), &[]);
    let url = redis.url();
    let r = |pairs: &[(&str, &str)]| {
        let mut all = vec![("addr", url.as_str())];
        all.extend_from_slice(pairs);
        app.get(&at("/redis", &all))
    };
    assert_eq!(r(&[("op", "open")]), (200, "opened".into()));
    assert_eq!(r(&[("op", "get"), ("key", "k")]), (404, "none".into()));
    assert_eq!(r(&[("op", "set"), ("key", "k"), ("value", "v3")]), (200, "ok".into()));
    assert_eq!(r(&[("op", "get"), ("key", "k")]), (200, "v3".into()));
    assert_eq!(r(&[("op", "incr"), ("key", "n")]), (200, "1".into()));
    assert_eq!(r(&[("op", "sadd"), ("key", "s"), ("values", "x,y")]), (200, "2".into()));
    assert_eq!(r(&[("op", "srem"), ("key", "s"), ("values", "x")]), (200, "1".into()));
    assert_eq!(r(&[("op", "smembers"), ("key", "s")]), (200, "y".into()));
    assert_eq!(r(&[("op", "del"), ("keys", "k,n")]), (200, "2".into()));
    assert_eq!(r(&[("op", "execute"), ("cmd", "INCRBY"), ("a", "m"), ("a", "i:7")]), (200, "Int64(7)".into()));
    assert_eq!(r(&[("op", "execute"), ("cmd", "PING")]), (200, "Status(\"PONG\")".into()));
    let (status, text) = r(&[("op", "incr"), ("key", "s")]);
    assert_eq!((status, text.as_str()), (500, "error: TypeError"), "incr of a set");
    let mut subscriber = subscribe(&redis, "spin4");
    assert_eq!(r(&[("op", "publish"), ("channel", "spin4"), ("value", "async hello")]), (200, "ok".into()));
    read_until(&mut subscriber, "async hello");
    // An address not in allowed_outbound_hosts.
    let other = format!("redis://127.0.0.1:{}", redis.port() as u32 + 1);
    assert_eq!(app.get(&at("/redis", &[("addr", &other), ("op", "open")])), (500, "error: InvalidAddress".into()));
}

#[test]
fn outbound_http_through_wasi_0_3_is_allowed_only_to_listed_hosts() {
    let app = spin4_app("allowed_outbound_hosts = [\"http://self\"]", &[]);
    assert_eq!(app.get(&at("/outbound", &[("url", "http://self/stdout")])), (200, "200\nok".into()));
    // A relative URL is a request to the app itself, granted by `http://self` (as in Spin).
    assert_eq!(app.get(&at("/outbound", &[("url", "/stdout")])), (200, "200\nok".into()));
    assert_eq!(app.get(&at("/outbound", &[("url", "http://example.com/")])), (502, "error: HttpRequestDenied".into()));
    // Service chaining to a component by id, in-process.
    assert_eq!(app.get(&at("/outbound", &[("url", "http://app.spin.internal/stdout")])), (502, "error: HttpRequestDenied".into()));
    let app = spin4_app("allowed_outbound_hosts = [\"http://app.spin.internal\"]", &[]);
    assert_eq!(app.get(&at("/outbound", &[("url", "http://app.spin.internal/stdout")])), (200, "200\nok".into()));
    assert_eq!(app.get(&at("/outbound", &[("url", "/stdout")])), (502, "error: HttpRequestDenied".into()));
}

/// A WASI 0.3 app deployed to `kiln serve` (its own engine with concurrency): a relative URL
/// reaches the deployed app itself.
#[test]
fn a_relative_url_through_wasi_0_3_under_kiln_serve() {
    let manifest = "spin_manifest_version = 2\n[application]\nname = \"rel3\"\n[[trigger.http]]\nroute = \"/...\"\ncomponent = \"app\"\n\
        [component.app]\nsource = \"app.wasm\"\nallowed_outbound_hosts = [\"http://self\"]\n";
    let dir = tempfile::tempdir().expect("temp dir");
    let serve = KilnServe::start(&crate::kiln_bin(), &dir.path().join("data"), &[]);
    serve.deploy_ok("rel3", "", AppArchive::new(manifest).guest("app.wasm", GUEST).build());
    assert_eq!(serve.app_text("rel3", &at("/outbound", &[("url", "/stdout")])), "200\nok");
}

fn trigger_manifest(redis: &RedisServer) -> String {
    manifest_with(
        "spin4_redis_sub",
        &format!("[application.trigger.redis]\naddress = \"{}\"", redis.url()),
        "[[trigger.redis]]\nchannel = \"events\"\ncomponent = \"sub\"",
    )
}

#[test]
fn the_redis_trigger_runs_a_spin_4_subscriber() {
    let redis = RedisServer::start();
    let app = App::start(&trigger_manifest(&redis), None, &["--request-timeout", "1s"], &[]);
    assert!(wait_subscribed(&redis, "events", 1, Duration::from_secs(20)), "kiln never subscribed:\n{}", app.kiln.log());
    publish(&redis, "events", "first event");
    wait_kv(&app, "last", "first event", Duration::from_secs(10));
    wait_log_line(&app, &["[sub]", "spin4_redis_sub got: first event"], Duration::from_secs(5));
    // A handler that returns an error is logged with the error; the next message is handled.
    publish(&redis, "events", "fail");
    wait_log_line(&app, &["[sub] redis channel `events`: the handler returned an error", "told to fail"], Duration::from_secs(10));
    // A handler that never returns is cut off at the deadline.
    publish(&redis, "events", "hang");
    wait_log_line(&app, &["[sub] redis channel `events`: the component ran past its deadline of 1s"], Duration::from_secs(10));
    publish(&redis, "events", "after");
    wait_kv(&app, "last", "after", Duration::from_secs(10));
    assert_eq!(crate::redis_trigger::kv_get(&app, "seen:first event").as_deref(), Some("1"));
}

#[test]
fn sqlite_3_1_serves_3_0_guests_of_the_same_app() {
    // With concurrency on, 3.1.0 alone is linked; a spin-sdk 5 guest importing 3.0.0 links to it.
    let manifest = format!(
        "{}\n[[trigger.http]]\nroute = \"/v3/...\"\ncomponent = \"old\"\n\n[component.old]\nsource = \"{}\"\nsqlite_databases = [\"default\"]\n",
        single(GUEST, "/...", "sqlite_databases = [\"default\"]"),
        kiln_e2e::guest("spin_sqlite").display()
    );
    let app = App::start(&manifest, None, &[], &[]);
    assert_eq!(sql_at(&app, "/sqlite", "3", "default", "CREATE TABLE t (s TEXT)", &[]).0, 200);
    assert_eq!(sql_at(&app, "/v3/", "3", "default", "INSERT INTO t VALUES (?)", &["t:from 3.0"]).0, 200);
    assert_eq!(sql_at(&app, "/sqlite", "3", "default", "SELECT s FROM t", &[]), (200, "columns: s\nText(\"from 3.0\")".into()));
}
