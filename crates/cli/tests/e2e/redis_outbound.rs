//! Outbound Redis, as apps use it: `fermyon:spin/redis@2.0.0` through spin-sdk (the `spin_redis`
//! guest) against a real `redis-server`. Every operation, the allow-list (`invalid-address`), a
//! Redis outage and recovery, and the example.

use crate::key_value::{App, example_app, query};
use crate::single;
use kiln_e2e::services::RedisServer;
use std::io::{Read, Write};
use std::net::TcpStream;
use std::time::{Duration, Instant};

fn redis_app(allowed: &str) -> App {
    App::start(&single("spin_redis", "/...", &format!("allowed_outbound_hosts = {allowed}")), None, &[], &[])
}

fn granted(redis: &RedisServer) -> App {
    redis_app(&format!("[\"redis://127.0.0.1:{}\"]", redis.port()))
}

/// GET `/?addr=<addr>&<pairs>`.
fn op(app: &App, addr: &str, pairs: &[(&str, &str)]) -> (u16, String) {
    let mut all = vec![("addr", addr)];
    all.extend_from_slice(pairs);
    app.q(&all)
}

#[test]
fn every_redis_operation() {
    let redis = RedisServer::start();
    let app = granted(&redis);
    let url = redis.url();
    let r = |pairs: &[(&str, &str)]| op(&app, &url, pairs);
    assert_eq!(r(&[("op", "open")]), (200, "opened".into()));
    // get / set
    assert_eq!(r(&[("op", "get"), ("key", "greeting")]), (404, "none".into()));
    assert_eq!(r(&[("op", "set"), ("key", "greeting"), ("value", "hello redis")]), (200, "ok".into()));
    assert_eq!(r(&[("op", "get"), ("key", "greeting")]), (200, "hello redis".into()));
    assert_eq!(redis.get("greeting").as_deref(), Some("hello redis"));
    // incr
    assert_eq!(r(&[("op", "incr"), ("key", "counter")]), (200, "1".into()));
    assert_eq!(r(&[("op", "incr"), ("key", "counter")]), (200, "2".into()));
    assert_eq!(redis.get("counter").as_deref(), Some("2"));
    // del: how many existed
    assert_eq!(r(&[("op", "del"), ("keys", "greeting,counter,missing")]), (200, "2".into()));
    assert_eq!(r(&[("op", "get"), ("key", "greeting")]), (404, "none".into()));
    // sets
    assert_eq!(r(&[("op", "sadd"), ("key", "s"), ("values", "a,b,c")]), (200, "3".into()));
    assert_eq!(r(&[("op", "sadd"), ("key", "s"), ("values", "c,d")]), (200, "1".into()));
    assert_eq!(r(&[("op", "smembers"), ("key", "s")]), (200, "a\nb\nc\nd".into()));
    assert_eq!(r(&[("op", "srem"), ("key", "s"), ("values", "a,x")]), (200, "1".into()));
    assert_eq!(r(&[("op", "smembers"), ("key", "s")]), (200, "b\nc\nd".into()));
    assert_eq!(r(&[("op", "smembers"), ("key", "no-such-set")]), (200, "".into()));
    // execute: every result kind
    assert_eq!(r(&[("op", "execute"), ("cmd", "PING")]), (200, "Status(\"PONG\")".into()));
    assert_eq!(r(&[("op", "execute"), ("cmd", "SET"), ("a", "ek"), ("a", "ev")]), (200, "Status(\"OK\")".into()));
    assert_eq!(r(&[("op", "execute"), ("cmd", "GET"), ("a", "ek")]), (200, "Binary(\"ev\")".into()));
    assert_eq!(r(&[("op", "execute"), ("cmd", "GET"), ("a", "missing")]), (200, "Nil".into()));
    assert_eq!(r(&[("op", "execute"), ("cmd", "INCRBY"), ("a", "n"), ("a", "i:40")]), (200, "Int64(40)".into()));
    assert_eq!(r(&[("op", "execute"), ("cmd", "INCRBY"), ("a", "n"), ("a", "i:2")]), (200, "Int64(42)".into()));
    assert_eq!(redis.get("n").as_deref(), Some("42"));
    // A Redis error reply is an error value, and the connection stays usable.
    let (status, text) = r(&[("op", "incr"), ("key", "ek")]);
    assert_eq!(status, 500, "{text}");
    assert!(text.starts_with("error: "), "{text}");
    let (status, text) = r(&[("op", "execute"), ("cmd", "NOSUCHCOMMAND")]);
    assert_eq!(status, 500, "{text}");
    assert!(text.starts_with("error: "), "{text}");
    assert_eq!(r(&[("op", "get"), ("key", "ek")]), (200, "ev".into()));
}

/// Subscribes to `channel` on a raw connection; returns it once Redis confirmed the subscription.
pub(crate) fn subscribe(redis: &RedisServer, channel: &str) -> TcpStream {
    let mut stream = TcpStream::connect(redis.addr()).unwrap();
    stream.set_read_timeout(Some(Duration::from_secs(10))).unwrap();
    write!(stream, "*2\r\n$9\r\nSUBSCRIBE\r\n${}\r\n{channel}\r\n", channel.len()).unwrap();
    let text = read_until(&mut stream, ":1\r\n");
    assert!(text.contains("subscribe"), "{text}");
    stream
}

pub(crate) fn read_until(stream: &mut TcpStream, needle: &str) -> String {
    let mut seen = Vec::new();
    let mut buf = [0u8; 1024];
    while !String::from_utf8_lossy(&seen).contains(needle) {
        let n = stream.read(&mut buf).unwrap_or_else(|e| panic!("waiting for {needle:?}: {e}; got {:?}", String::from_utf8_lossy(&seen)));
        assert!(n > 0, "connection closed; got {:?}", String::from_utf8_lossy(&seen));
        seen.extend_from_slice(&buf[..n]);
    }
    String::from_utf8_lossy(&seen).into_owned()
}

#[test]
fn publish_reaches_subscribers() {
    let redis = RedisServer::start();
    let app = granted(&redis);
    let mut subscriber = subscribe(&redis, "news");
    assert_eq!(op(&app, &redis.url(), &[("op", "publish"), ("channel", "news"), ("value", "extra extra")]), (200, "ok".into()));
    let text = read_until(&mut subscriber, "extra extra");
    assert!(text.contains("message") && text.contains("news"), "{text}");
}

#[test]
fn addresses_outside_allowed_outbound_hosts_are_invalid_addresses() {
    let redis = RedisServer::start();
    let other_port = format!("redis://127.0.0.1:{}", redis.port() as u32 + 1);
    // Granted exactly this server: another port is refused before any connection.
    let app = granted(&redis);
    assert_eq!(op(&app, &redis.url(), &[("op", "open")]), (200, "opened".into()));
    assert_eq!(op(&app, &other_port, &[("op", "open")]), (500, "error: InvalidAddress".into()));
    assert_eq!(op(&app, &format!("redis://127.0.0.2:{}", redis.port()), &[("op", "open")]), (500, "error: InvalidAddress".into()));
    assert_eq!(op(&app, "not a url", &[("op", "open")]), (500, "error: InvalidAddress".into()));
    // No grants at all.
    let app = redis_app("[]");
    assert_eq!(op(&app, &redis.url(), &[("op", "open")]), (500, "error: InvalidAddress".into()));
    assert_eq!(op(&app, &redis.url(), &[("op", "set"), ("key", "k"), ("value", "v")]), (500, "error: InvalidAddress".into()));
    assert_eq!(redis.get("k"), None, "a denied component wrote to Redis");
    // Another scheme for the same host and port does not grant redis.
    let app = redis_app(&format!("[\"http://127.0.0.1:{}\"]", redis.port()));
    assert_eq!(op(&app, &redis.url(), &[("op", "open")]), (500, "error: InvalidAddress".into()));
    // Wildcard ports, CIDR ranges and `*://` grant it.
    for allowed in ["[\"redis://127.0.0.1:*\"]", "[\"redis://127.0.0.0/24:*\"]", "[\"*://127.0.0.1:*\"]"] {
        let app = redis_app(allowed);
        assert_eq!(op(&app, &redis.url(), &[("op", "incr"), ("key", "granted")]).0, 200, "{allowed}");
    }
    assert_eq!(redis.get("granted").as_deref(), Some("3"));
}

#[test]
fn the_default_redis_port_applies_when_left_out() {
    // `redis://127.0.0.1` in allowed_outbound_hosts means port 6379, so a server elsewhere is refused.
    let redis = RedisServer::start();
    let app = redis_app("[\"redis://127.0.0.1\"]");
    assert_eq!(op(&app, &redis.url(), &[("op", "open")]), (500, "error: InvalidAddress".into()));
}

#[test]
fn allowed_hosts_from_a_variable_template() {
    let redis = RedisServer::start();
    let manifest = single(
        "spin_redis",
        "/...",
        "allowed_outbound_hosts = [\"redis://{{ redis_host }}\"]\nvariables = { redis_host = \"{{ redis_host }}\" }",
    )
    .replace("[[trigger.http]]", "[variables]\nredis_host = { required = true }\n\n[[trigger.http]]");
    let host = format!("127.0.0.1:{}", redis.port());
    let app = App::start(&manifest, None, &[], &[("KILN_VARIABLE_REDIS_HOST", &host)]);
    assert_eq!(op(&app, &redis.url(), &[("op", "set"), ("key", "t"), ("value", "templated")]), (200, "ok".into()));
    assert_eq!(redis.get("t").as_deref(), Some("templated"));
    let other = format!("redis://127.0.0.1:{}", redis.port() as u32 + 1);
    assert_eq!(op(&app, &other, &[("op", "open")]), (500, "error: InvalidAddress".into()));
}

#[test]
fn a_redis_outage_fails_fast_and_recovers_without_a_restart() {
    let mut redis = RedisServer::start();
    // `/redis/...` talks to Redis; `/...` is the echo guest.
    let manifest = format!(
        r#"spin_manifest_version = 2
[application]
name = "redis-outage"
[[trigger.http]]
route = "/redis/..."
component = "redis"
[[trigger.http]]
route = "/..."
component = "echo"
[component.redis]
source = "{redis_guest}"
allowed_outbound_hosts = ["redis://127.0.0.1:{port}"]
[component.echo]
source = "{echo}"
"#,
        redis_guest = kiln_e2e::guest("spin_redis").display(),
        echo = kiln_e2e::guest("echo_request").display(),
        port = redis.port(),
    );
    let app = App::start(&manifest, None, &[], &[]);
    let url = redis.url();
    let incr = || app.get(&format!("/redis/{}", query(&[("addr", &url), ("op", "incr"), ("key", "c")])));
    assert_eq!(incr(), (200, "1".into()));

    redis.stop();
    for _ in 0..3 {
        let started = Instant::now();
        let (status, text) = incr();
        let elapsed = started.elapsed();
        assert!(elapsed < Duration::from_secs(10), "a request to a stopped Redis took {elapsed:?}");
        assert_eq!(status, 500, "{text}");
        assert!(text.starts_with("error: "), "{text}");
        assert_eq!(app.get("/still-here").0, 200);
    }

    redis.restart();
    let started = Instant::now();
    loop {
        let (status, text) = incr();
        if status == 200 {
            // A fresh server: the counter starts again.
            assert_eq!(text, "1");
            break;
        }
        assert!(started.elapsed() < Duration::from_secs(20), "no recovery after Redis came back: {status} {text}\n{}", app.kiln.log());
        std::thread::sleep(Duration::from_millis(250));
    }
}

fn send(kiln: &kiln_e2e::kiln::Kiln, method: &str, path: &str, data: &str) -> (u16, String) {
    let method = reqwest::Method::from_bytes(method.as_bytes()).unwrap();
    crate::body(kiln_e2e::kiln::client().request(method, kiln.url(path)).body(data.to_string()).send().expect("request"))
}

#[test]
fn spin_redis_example_runs_unchanged() {
    let redis = RedisServer::start();
    let host = format!("127.0.0.1:{}", redis.port());
    let (kiln, _state) = example_app("spin-redis", &[], &[("SPIN_VARIABLE_REDIS_HOST", &host)]);
    assert_eq!(crate::body(kiln.get("/")), (200, "hits: 1\n".into()));
    assert_eq!(crate::body(kiln.get("/")), (200, "hits: 2\n".into()));
    assert_eq!(send(&kiln, "POST", "/visitors/ada", ""), (200, "1\n".into()));
    assert_eq!(send(&kiln, "POST", "/visitors/grace", ""), (200, "1\n".into()));
    assert_eq!(send(&kiln, "POST", "/visitors/ada", ""), (200, "0\n".into()));
    assert_eq!(crate::body(kiln.get("/visitors")), (200, "ada\ngrace\n".into()));
    assert_eq!(send(&kiln, "DELETE", "/visitors/ada", ""), (200, "1\n".into()));
    assert_eq!(crate::body(kiln.get("/visitors")), (200, "grace\n".into()));
    assert_eq!(crate::body(kiln.get("/ping")), (200, "PONG\n".into()));
    let mut subscriber = subscribe(&redis, "messages");
    assert_eq!(send(&kiln, "POST", "/publish", "hello subscribers"), (200, "published\n".into()));
    read_until(&mut subscriber, "hello subscribers");
    assert_eq!(redis.get("hits").as_deref(), Some("2"));
}

#[test]
fn spin_redis_example_with_its_runtime_config() {
    let redis = RedisServer::start();
    let shipped = std::fs::read_to_string(crate::example("spin-redis").join("runtime-config.toml")).unwrap();
    let rc = shipped.replace("127.0.0.1:6379", &format!("127.0.0.1:{}", redis.port()));
    assert_ne!(rc, shipped, "the example's runtime-config.toml no longer names 127.0.0.1:6379");
    let dir = kiln_e2e::kiln::app_dir("", &[("runtime-config.toml", &rc)]);
    let rc_path = dir.path().join("runtime-config.toml").display().to_string();
    // The static provider supplies redis_host (the environment has none for it).
    let (kiln, _state) = example_app("spin-redis", &["--runtime-config-file", &rc_path], &[]);
    assert_eq!(crate::body(kiln.get("/")), (200, "hits: 1\n".into()));
    assert_eq!(redis.get("hits").as_deref(), Some("1"));
}

#[test]
fn spin_redis_3_0_refuses_addresses_not_allowed() {
    // From a wasi:http@0.2 handler (plain wit-bindgen): the grant check answers at once, so `open`
    // of an address not allowed is `invalid-address`. The Spin SDK 7 guest's full use of the
    // interface is in `spin4.rs`.
    let redis = RedisServer::start();
    let app = App::start(&single("spin3_p3", "/...", "allowed_outbound_hosts = [\"redis://127.0.0.1:1\"]"), None, &[], &[]);
    assert_eq!(op(&app, &redis.url(), &[("op", "open")]), (500, "error: InvalidAddress".into()));
    let app = App::start(&single("spin3_p3", "/...", ""), None, &[], &[]);
    assert_eq!(op(&app, &redis.url(), &[("op", "open")]), (500, "error: InvalidAddress".into()));
}
