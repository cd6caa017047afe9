//! wasmCloud's everyday interfaces, under `kiln up` and `kiln serve`: `wasi:logging@0.1.0-draft`,
//! `wasmcloud:bus/lattice@1.0.0`/`@2.0.0`, `wasmcloud:messaging@0.2.0` (consumer and handler),
//! `wasi:config/runtime@0.2.0-draft`, and the bucket `""`. Guests: `wasmcloud_counter` (HTTP: a
//! wasmCloud-style counter over bus + keyvalue + logging, and a messaging consumer),
//! `wasmcloud_msg` (a `handle-message` handler recording what it gets in its `""` store, read back
//! through `spin_kv` on `/kv/...`).

use crate::key_value::{App, at, query};
use crate::kiln_bin;
use crate::redis_trigger::{kv_get, wait_kv, wait_log_line, wait_until};
use kiln_e2e::serve::{AppArchive, KilnServe};
use kiln_e2e::services::NatsServer;
use std::time::{Duration, Instant};

const CACHE_STORE: &str = "[key_value_store.cache]\ntype = \"kiln\"\n";

/// `counter` on `/...` (granted `default` and `cache`), `nogrant` on `/nogrant/...` (no store).
fn counter_manifest() -> String {
    let counter = kiln_e2e::guest("wasmcloud_counter");
    format!(
        r#"spin_manifest_version = 2

[application]
name = "wasmcloud-counter"

[[trigger.http]]
route = "/..."
component = "counter"

[[trigger.http]]
route = "/nogrant/..."
component = "nogrant"

[component.counter]
source = "{counter}"
key_value_stores = ["default", "cache"]
variables = {{ greeting = "hello from config" }}

[component.nogrant]
source = "{counter}"
"#,
        counter = counter.display()
    )
}

#[test]
fn counter_opens_bucket_empty_as_its_default_store_and_link_names_select_granted_stores() {
    let app = App::start(&counter_manifest(), Some(CACHE_STORE), &[], &[]);
    // `""` is the `default` store: the same counter as opening `default` by name.
    assert_eq!(app.get("/"), (200, "1".into()), "{}", app.kiln.log());
    assert_eq!(app.get("/"), (200, "2".into()));
    assert_eq!(app.get(&query(&[("bucket", "default")])), (200, "3".into()));
    // wasi:logging: level, context and the component's name in Kiln's log.
    wait_log_line(&app, &["INFO", "[counter] counter: counter = 3"], Duration::from_secs(5));
    assert_eq!(app.get(&query(&[("log", "warn"), ("msg", "careful")])), (200, "4".into()));
    wait_log_line(&app, &["WARN", "[counter] test: careful"], Duration::from_secs(5));
    assert_eq!(app.get(&query(&[("log", "critical"), ("msg", "on fire")])), (200, "5".into()));
    wait_log_line(&app, &["ERROR", "[counter] critical test: on fire"], Duration::from_secs(5));

    // A granted label as link name: `""` opens that store, at both bus versions.
    assert_eq!(app.get(&query(&[("link", "cache"), ("bus", "2")])), (200, "1".into()));
    assert_eq!(app.get(&query(&[("link", "cache"), ("bus", "1")])), (200, "2".into()));
    // The link lasts one instance: the next request is on `default` again; `default` always works.
    assert_eq!(app.get("/"), (200, "6".into()));
    assert_eq!(app.get(&query(&[("link", "default"), ("bus", "2")])), (200, "7".into()));

    // Ungranted link names: 2.0.0 answers its error; 1.0.0 selects it and the store is denied on use.
    let (status, body) = app.get(&query(&[("link", "secret"), ("bus", "2")]));
    assert_eq!(status, 409, "{body}");
    assert!(body.starts_with("link error: interface `wasi:keyvalue/store` does not have an existing link with name `secret`"), "{body}");
    assert_eq!(app.get(&query(&[("link", "secret"), ("bus", "1")])), (500, "error: AccessDenied".into()));
    // Messaging has one broker per app: only `default`.
    let (status, body) = app.get(&query(&[("link", "cache"), ("bus", "2"), ("link_messaging", "1")]));
    assert_eq!(status, 409, "{body}");
    assert!(body.contains("`wasmcloud:messaging/consumer`") && body.contains("one broker"), "{body}");

    // Grants are enforced for every other name, and `""` is no way around them.
    assert_eq!(app.get(&query(&[("bucket", "secret")])), (500, "error: AccessDenied".into()));
    assert_eq!(app.get("/nogrant/"), (500, "error: AccessDenied".into()));
    assert!(!app.kiln.log().contains("panicked"), "{}", app.kiln.log());

    // wasi:config/runtime@0.2.0-draft, the older name of wasi:config/store.
    assert_eq!(app.get(&query(&[("config", "greeting")])), (200, "hello from config".into()));
    assert_eq!(app.get(&query(&[("config", "missing")])), (404, "none".into()));
}

/// `handler` (`wasmcloud_msg`, bound to `wc.>`), `counter` on `/wc/...` as a consumer, `kv` on
/// `/kv/...`; `app_extra` goes after `[application]`.
fn messaging_manifest(app_extra: &str, counter_extra: &str) -> String {
    format!(
        r#"spin_manifest_version = 2

[application]
name = "wasmcloud-messaging"

{app_extra}

[[trigger.nats]]
subject = "wc.>"
component = "handler"

[[trigger.http]]
route = "/wc/..."
component = "counter"

[[trigger.http]]
route = "/kv/..."
component = "kv"

[component.handler]
source = "{handler}"
key_value_stores = ["default"]

[component.counter]
source = "{counter}"
{counter_extra}

[component.kv]
source = "{kv}"
key_value_stores = ["default"]
"#,
        handler = kiln_e2e::guest("wasmcloud_msg").display(),
        counter = kiln_e2e::guest("wasmcloud_counter").display(),
        kv = kiln_e2e::guest("spin_kv").display(),
    )
}

fn consumer_get(app: &App, pairs: &[(&str, &str)]) -> (u16, String) {
    app.get(&at("/wc/", pairs))
}

/// What both brokers must do: publish reaches the handler, request gets its reply, a handler that
/// fails gives no reply (timeout), and the handler's own requests work.
fn check_consumer_and_handler(app: &App) {
    assert_eq!(consumer_get(app, &[("publish", "wc.in"), ("payload", "hello")]), (200, "published".into()), "{}", app.kiln.log());
    wait_kv(app, "last", "hello", Duration::from_secs(20));
    assert_eq!(kv_get(app, "subject:hello").as_deref(), Some("wc.in"));
    wait_log_line(app, &["INFO", "[handler] wasmcloud_msg: got wc.in: hello"], Duration::from_secs(5));
    wait_log_line(app, &["nats wc.in", "[handler]"], Duration::from_secs(5));

    // request → the handler replies with a plain publish to `reply-to`.
    assert_eq!(consumer_get(app, &[("request", "wc.upper"), ("payload", "ping"), ("timeout_ms", "5000")]), (200, "PING".into()), "{}", app.kiln.log());
    wait_kv(app, "replied:ping", "1", Duration::from_secs(10));

    // A failing handler: no reply, so the request times out after its timeout; the failure is logged.
    let started = Instant::now();
    assert_eq!(consumer_get(app, &[("request", "wc.fails"), ("payload", "fail"), ("timeout_ms", "400")]), (500, "error: timeout".into()));
    assert!(started.elapsed() >= Duration::from_millis(350), "{:?}", started.elapsed());
    wait_log_line(app, &["nats wc.fails", "[handler]", "wasmcloud_msg was told to fail"], Duration::from_secs(5));

    // The handler's own request, answered by another instance of itself.
    assert_eq!(consumer_get(app, &[("publish", "wc.in"), ("payload", "request:wc.upper:abc")]), (200, "published".into()));
    wait_kv(app, "reply:request:wc.upper:abc", "ABC", Duration::from_secs(20));
}

#[test]
fn wasmcloud_handler_and_consumer_on_the_in_process_broker() {
    let app = App::start(&messaging_manifest("", ""), None, &[], &[]);
    check_consumer_and_handler(&app);
    // Nobody subscribed: an error string, at once.
    let (status, body) = consumer_get(&app, &[("request", "nobody.here"), ("payload", "x")]);
    assert_eq!(status, 500, "{body}");
    assert!(body.starts_with("error: no responders for `nobody.here`"), "{body}");
    // Broker APIs stay closed.
    let (status, body) = consumer_get(&app, &[("publish", "$JS.API.INFO"), ("payload", "x")]);
    assert_eq!(status, 500, "{body}");
    assert!(body.starts_with("error: permission denied:"), "{body}");
}

#[test]
fn wasmcloud_handler_and_consumer_on_nats() {
    let nats = NatsServer::start();
    let app = App::start(&messaging_manifest(&format!("[application.trigger.nats]\nurl = \"{}\"", nats.url()), ""), None, &[], &[]);
    let client = nats.client();
    // Core NATS drops what is published before kiln subscribed: probe until one arrives.
    let ready = wait_until(Duration::from_secs(30), || {
        client.publish("wc.probe", b"probe");
        client.flush();
        std::thread::sleep(Duration::from_millis(100));
        kv_get(&app, "subject:probe").is_some()
    });
    assert!(ready, "no message reached the handler:\n{}\n--- nats ---\n{}", app.kiln.log(), nats.log());
    client.publish("wc.from-nats", b"from a nats client");
    client.flush();
    wait_kv(&app, "subject:from a nats client", "wc.from-nats", Duration::from_secs(20));
    let reply = client.request("wc.ask", b"shout", Duration::from_secs(10)).expect("a reply");
    assert_eq!(reply.text(), "SHOUT");
    check_consumer_and_handler(&app);
}

/// The messaging app as an archive for `kiln serve`: the consumer may publish to `wc.>` only.
fn serve_archive(app_extra: &str) -> Vec<u8> {
    // The counter opens `""`, its granted default store, and publishes within its grant.
    let counter = "key_value_stores = [\"default\"]\n[component.counter.tool.kiln]\nallowed_publish_subjects = [\"wc.>\"]\n";
    let manifest = messaging_manifest(app_extra, counter)
        .replace(&kiln_e2e::guest("wasmcloud_msg").display().to_string(), "handler.wasm")
        .replace(&kiln_e2e::guest("wasmcloud_counter").display().to_string(), "counter.wasm")
        .replace(&kiln_e2e::guest("spin_kv").display().to_string(), "kv.wasm");
    AppArchive::new(&manifest).guest("handler.wasm", "wasmcloud_msg").guest("counter.wasm", "wasmcloud_counter").guest("kv.wasm", "spin_kv").build()
}

fn serve_kv(serve: &KilnServe, app: &str, key: &str) -> Option<String> {
    let response = serve.app_get(app, &format!("/kv{}", query(&[("op", "get"), ("key", key)])));
    match response.status().as_u16() {
        200 => Some(response.text().unwrap_or_default()),
        _ => None,
    }
}

#[test]
fn wasmcloud_apps_under_kiln_serve_in_process_and_on_nats() {
    let nats = NatsServer::start();
    let dir = tempfile::tempdir().expect("temp dir");
    let serve = KilnServe::start(&kiln_bin(), &dir.path().join("data"), &[]);
    serve.deploy_ok("wcbus", "", serve_archive(""));
    serve.deploy_ok("wcnats", "", serve_archive(&format!("[application.trigger.nats]\nurl = \"{}\"", nats.url())));

    // The counter: `""` is the app's default store, logged with its component's name.
    assert_eq!(serve.app_text("wcbus", "/wc/"), "1");
    assert_eq!(serve.app_text("wcbus", "/wc/"), "2");
    assert!(serve.kiln.wait_for_log("[counter] counter: counter = 2", Duration::from_secs(5)), "{}", serve.kiln.log());
    let response = serve.app_get("wcbus", &at("/wc/", &[("link", "secret"), ("bus", "2")]));
    assert_eq!(response.status().as_u16(), 409);
    // Each wasi:logging call is counted per level in the admin API's metrics.
    assert_eq!(serve.app_text("wcbus", &at("/wc/", &[("log", "warn"), ("msg", "careful")])), "3");
    let metrics = serve.metrics();
    let series = |level: &str| format!("kiln_guest_logs_total{{app=\"wcbus\",component=\"counter\",level=\"{level}\"}} ");
    assert!(metrics.contains(&format!("{}3", series("info"))), "{metrics}");
    assert!(metrics.contains(&format!("{}1", series("warn"))), "{metrics}");

    // In process: request and reply (the handler's reply needs no publish grant), and publish.
    let ping = at("/wc/", &[("request", "wc.upper"), ("payload", "ping"), ("timeout_ms", "5000")]);
    assert_eq!(serve.app_text("wcbus", &ping), "PING");
    assert_eq!(serve.app_text("wcbus", &at("/wc/", &[("publish", "wc.in"), ("payload", "hi")])), "published");
    assert!(wait_until(Duration::from_secs(20), || serve_kv(&serve, "wcbus", "last").as_deref() == Some("hi")), "{}", serve.kiln.log());
    // Outside its grant, the consumer is denied.
    let response = serve.app_get("wcbus", &at("/wc/", &[("publish", "other.x"), ("payload", "x")]));
    assert_eq!(response.status().as_u16(), 500);
    assert!(response.text().unwrap_or_default().starts_with("error: permission denied:"));

    // NATS: a message from a NATS client reaches the handler; a request from one gets its reply.
    let client = nats.client();
    let ready = wait_until(Duration::from_secs(30), || {
        client.publish("wc.probe", b"probe");
        client.flush();
        std::thread::sleep(Duration::from_millis(100));
        serve_kv(&serve, "wcnats", "subject:probe").is_some()
    });
    assert!(ready, "no NATS message reached the handler:\n{}", serve.kiln.log());
    let reply = client.request("wc.ask", b"shout", Duration::from_secs(10)).expect("a reply");
    assert_eq!(reply.text(), "SHOUT");
    assert_eq!(serve.app_text("wcnats", &ping), "PING");
    assert!(serve.kiln.wait_for_log("[handler] wasmcloud_msg: got wc.ask: shout", Duration::from_secs(5)), "{}", serve.kiln.log());
}
