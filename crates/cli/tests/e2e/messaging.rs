//! `[[trigger.nats]]` and `wasi:messaging@0.2.0-draft`, on the in-process bus (no broker) and on a
//! real `nats-server` with JetStream. Guests: `msg_sub` (incoming-handler; records each message in
//! the embedded `default` store, read through `spin_kv` on `/kv/...`), `msg_pub` (HTTP on
//! `/pub/...`: `producer.send` and `request-reply.request`). Also the `events` example on both
//! setups.

use crate::key_value::{App, query};
use crate::redis_trigger::{kv_get, kv_keys, wait_kv, wait_log_line, wait_until};
use kiln_e2e::services::{NatsServer, RedisServer};
use std::collections::BTreeSet;
use std::time::{Duration, Instant};

/// An app with `sub` and `sub2` (`msg_sub`), `pub` (`msg_pub` on `/pub/...`) and `kv` (`spin_kv` on
/// `/kv/...`); `app_extra` is TOML after `[application]` (e.g. `[application.trigger.nats]`).
fn manifest(app_extra: &str, triggers: &str) -> String {
    format!(
        r#"spin_manifest_version = 2

[application]
name = "messaging"

{app_extra}

{triggers}

[[trigger.http]]
route = "/pub/..."
component = "pub"

[[trigger.http]]
route = "/kv/..."
component = "kv"

[component.sub]
source = "{sub}"
key_value_stores = ["default"]

[component.sub2]
source = "{sub}"
key_value_stores = ["default"]

[component.pub]
source = "{publ}"

[component.kv]
source = "{kv}"
key_value_stores = ["default"]
"#,
        sub = kiln_e2e::guest("msg_sub").display(),
        publ = kiln_e2e::guest("msg_pub").display(),
        kv = kiln_e2e::guest("spin_kv").display(),
    )
}

/// `[[trigger.nats]]` for `component` on `subject`, with extra lines (`queue_group = …`, `durable = …`).
fn trigger(subject: &str, component: &str, extra: &str) -> String {
    format!("[[trigger.nats]]\nsubject = \"{subject}\"\ncomponent = \"{component}\"\n{extra}\n")
}

fn nats_section(nats: &NatsServer) -> String {
    format!("[application.trigger.nats]\nurl = \"{}\"", nats.url())
}

/// GET `/pub/?<pairs>`.
fn publ(app: &App, pairs: &[(&str, &str)]) -> (u16, String) {
    app.get(&format!("/pub{}", query(pairs)))
}

fn send(app: &App, subject: &str, payload: &str) {
    assert_eq!(publ(app, &[("subject", subject), ("payload", payload)]), (200, "sent".into()), "{}", app.kiln.log());
}

fn num(app: &App, key: &str) -> u64 {
    kv_get(app, key).map(|v| v.parse().unwrap_or_else(|_| panic!("`{key}` = {v:?}"))).unwrap_or(0)
}

/// Every payload with a `seen:` key, and how many deliveries it had.
fn seen(app: &App) -> Vec<(String, u64)> {
    kv_keys(app)
        .into_iter()
        .filter_map(|k| k.strip_prefix("seen:").map(str::to_string))
        .map(|p| {
            let n = num(app, &format!("seen:{p}"));
            (p, n)
        })
        .collect()
}

// ---------------------------------------------------------------------------------------------
// In-process bus (no broker configured)
// ---------------------------------------------------------------------------------------------

#[test]
fn in_process_publish_reaches_the_subscriber_with_topic_content_type_and_metadata() {
    let app = App::start(&manifest("", &trigger("events.*", "sub", "")), None, &[], &[]);
    let (status, body) =
        publ(&app, &[("subject", "events.created"), ("payload", "hello bus"), ("content_type", "text/plain"), ("meta", "k1:v1,trace:abc")]);
    assert_eq!((status, body.as_str()), (200, "sent"), "{}", app.kiln.log());
    // `ok` is the last key msg_sub writes: every other key of this message is in place.
    wait_kv(&app, "ok", "1", Duration::from_secs(20));
    assert_eq!(num(&app, "count"), 1);
    assert_eq!(kv_get(&app, "last").as_deref(), Some("hello bus"));
    assert_eq!(kv_get(&app, "topic:hello bus").as_deref(), Some("events.created"));
    assert_eq!(kv_get(&app, "ct:hello bus").as_deref(), Some("text/plain"));
    let meta = kv_get(&app, "meta:hello bus").unwrap();
    assert!(meta.split(';').any(|kv| kv == "k1=v1") && meta.split(';').any(|kv| kv == "trace=abc"), "{meta}");
    assert!(app.kiln.wait_for_log("[sub] msg_sub got events.created: hello bus", Duration::from_secs(5)), "{}", app.kiln.log());
    wait_log_line(&app, &["nats events.created", "[sub]"], Duration::from_secs(5));
    // Subjects the trigger does not match are not delivered: `*` is one token.
    send(&app, "events.a.b", "too deep");
    send(&app, "other.x", "elsewhere");
    send(&app, "events.after", "after");
    wait_kv(&app, "last", "after", Duration::from_secs(20));
    assert_eq!(num(&app, "count"), 2);
    assert_eq!(kv_get(&app, "seen:too deep"), None);
}

#[test]
fn in_process_request_reply() {
    let app = App::start(&manifest("", &trigger("svc.upper", "sub", "")), None, &[], &[]);
    assert_eq!(publ(&app, &[("request", "svc.upper"), ("payload", "ping")]), (200, "PING".into()), "{}", app.kiln.log());
    // msg_sub sets `replied:` after sending the reply: it may land just after the reply did.
    wait_kv(&app, "replied:ping", "1", Duration::from_secs(10));
    // Nobody subscribed: no responders, at once (not a timeout).
    let started = Instant::now();
    let (status, body) = publ(&app, &[("request", "nobody.here"), ("payload", "x")]);
    assert_eq!(status, 500, "{body}");
    assert!(body.starts_with("error: Other(\"no responders for `nobody.here`"), "{body}");
    assert!(started.elapsed() < Duration::from_secs(5), "{:?}", started.elapsed());
    // A subscriber that does not answer: a timeout after timeout_ms.
    let started = Instant::now();
    assert_eq!(publ(&app, &[("request", "svc.upper"), ("payload", "fail"), ("timeout_ms", "500")]), (500, "error: Timeout".into()));
    assert!(started.elapsed() >= Duration::from_millis(450), "{:?}", started.elapsed());
}

#[test]
fn publishing_refuses_broker_apis_and_invalid_subjects() {
    let app = App::start(&manifest("", &trigger("events.*", "sub", "")), None, &[], &[]);
    for subject in ["$JS.API.INFO", "$SYS.REQ.SERVER.PING"] {
        let (status, body) = publ(&app, &[("subject", subject), ("payload", "x")]);
        assert_eq!(status, 500, "{subject}: {body}");
        assert!(body.starts_with("error: PermissionDenied("), "{subject}: {body}");
    }
    for subject in ["", "events.*", "events.>", "a..b", "has space"] {
        let (status, body) = publ(&app, &[("subject", subject), ("payload", "x")]);
        assert_eq!(status, 500, "{subject:?}: {body}");
        assert!(body.starts_with("error: Other(\"invalid subject"), "{subject:?}: {body}");
    }
}

#[test]
fn in_process_fan_out_and_queue_groups() {
    // `sub` and `sub2` both get every message of `fan.*`; of `work.*`, each message goes to one
    // member of the queue group.
    let triggers = trigger("fan.*", "sub", "")
        + &trigger("fan.*", "sub2", "")
        + &trigger("work.*", "sub", "queue_group = \"workers\"")
        + &trigger("work.*", "sub2", "queue_group = \"workers\"");
    let app = App::start(&manifest("", &triggers), None, &[], &[]);
    send(&app, "fan.out", "broadcast");
    wait_kv(&app, "seen:broadcast", "2", Duration::from_secs(20));
    let n = 20;
    assert_eq!(publ(&app, &[("subject", "work.item"), ("payload", "job"), ("count", &n.to_string())]), (200, format!("sent {n}")));
    assert!(wait_until(Duration::from_secs(30), || num(&app, "count") >= 2 + n), "{}", app.kiln.log());
    std::thread::sleep(Duration::from_millis(300));
    assert_eq!(num(&app, "count"), 2 + n);
    for i in 0..n {
        assert_eq!(num(&app, &format!("seen:job-{i}")), 1, "job-{i}");
    }
    let log = app.kiln.log();
    assert!(log.contains("[sub] msg_sub got work.item") && log.contains("[sub2] msg_sub got work.item"), "both members work:\n{log}");
}

#[test]
fn in_process_durable_redelivers_then_dead_letters() {
    let triggers = trigger("jobs.*", "sub", "durable = \"jobs\"") + &trigger("kiln.dlq.jobs", "sub2", "");
    let app = App::start(&manifest("", &triggers), None, &[], &[]);
    // Fails once, succeeds on the redelivery.
    send(&app, "jobs.a", "fail-once:1");
    wait_kv(&app, "seen:fail-once:1", "2", Duration::from_secs(30));
    wait_kv(&app, "ok", "1", Duration::from_secs(10));
    // Fails every time: 5 deliveries, then the dead-letter subject (where `sub2` records it).
    send(&app, "jobs.a", "fail");
    wait_kv(&app, "topic:fail", "kiln.dlq.jobs", Duration::from_secs(60));
    assert_eq!(num(&app, "seen:fail"), 6, "5 deliveries + the dead letter\n{}", app.kiln.log());
    wait_log_line(&app, &["nats jobs.a", "dead-lettered to kiln.dlq.jobs"], Duration::from_secs(5));
    // `meta:fail` of the dead letter is written just after its `topic:fail`.
    let mut meta = String::new();
    wait_until(Duration::from_secs(10), || {
        meta = kv_get(&app, "meta:fail").unwrap_or_default();
        meta.to_ascii_lowercase().contains("kiln-dlq-deliveries")
    });
    for want in ["Kiln-Dlq-Subject=jobs.a", "Kiln-Dlq-Durable=jobs", "Kiln-Dlq-Deliveries=5"] {
        assert!(meta.split(';').any(|kv| kv.eq_ignore_ascii_case(want)), "{want} in {meta}");
    }
    std::thread::sleep(Duration::from_secs(1));
    assert_eq!(num(&app, "seen:fail"), 6, "not redelivered after dead-lettering");
}

#[test]
fn an_endless_handler_is_cut_off_by_the_deadline_in_process() {
    let app = App::start(&manifest("", &trigger("events.*", "sub", "")), None, &["--request-timeout", "1s"], &[]);
    let started = Instant::now();
    send(&app, "events.slow", "hang");
    let line = wait_log_line(&app, &["nats events.slow", "[sub]", "error"], Duration::from_secs(20));
    assert!(started.elapsed() >= Duration::from_millis(900), "{line} after {:?}", started.elapsed());
    send(&app, "events.next", "next");
    wait_kv(&app, "last", "next", Duration::from_secs(20));
}

// ---------------------------------------------------------------------------------------------
// NATS
// ---------------------------------------------------------------------------------------------

/// Waits until kiln has a subscription on the server: a probe message on `subject` is handled
/// (`seen:<probe>` appears). Core NATS drops what is published before that.
fn wait_nats_ready(app: &App, nats: &NatsServer, subject: &str) {
    let client = nats.client();
    let probe = format!("probe-{}", std::process::id());
    let ok = wait_until(Duration::from_secs(30), || {
        client.publish(subject, probe.as_bytes());
        client.flush();
        std::thread::sleep(Duration::from_millis(100));
        kv_get(app, &format!("seen:{probe}")).is_some()
    });
    assert!(ok, "kiln never handled a message on {subject}:\n{}\n--- nats ---\n{}", app.kiln.log(), nats.log());
}

#[test]
fn nats_messages_arrive_with_subject_headers_and_payload() {
    let nats = NatsServer::start();
    let app = App::start(&manifest(&nats_section(&nats), &trigger("events.*", "sub", "")), None, &[], &[]);
    wait_nats_ready(&app, &nats, "events.probe");
    let client = nats.client();
    client.publish_full("events.created", None, &[("content-type", "application/json"), ("X-Trace", "abc")], b"{\"id\":1}");
    client.flush();
    // `ct:` is the last key msg_sub writes before `ok`: `last`, `topic:`, `meta:` are in place.
    wait_kv(&app, "ct:{\"id\":1}", "application/json", Duration::from_secs(20));
    assert_eq!(kv_get(&app, "last").as_deref(), Some("{\"id\":1}"));
    assert_eq!(kv_get(&app, "topic:{\"id\":1}").as_deref(), Some("events.created"));
    let meta = kv_get(&app, "meta:{\"id\":1}").unwrap();
    assert!(meta.split(';').any(|kv| kv.eq_ignore_ascii_case("x-trace=abc")), "{meta}");
    assert!(!meta.contains("reply-to"), "{meta}");
    // A request from a NATS client gets the handler's reply.
    let reply = client.request("events.ask", b"shout", Duration::from_secs(10)).expect("a reply");
    assert_eq!(reply.text(), "SHOUT");
    let meta = kv_get(&app, "meta:shout").unwrap();
    assert!(meta.contains("reply-to=_INBOX.e2e."), "{meta}");
    wait_log_line(&app, &["nats events.created", "[sub]"], Duration::from_secs(5));
}

#[test]
fn components_publish_and_request_through_nats() {
    let nats = NatsServer::start();
    let app = App::start(&manifest(&nats_section(&nats), ""), None, &[], &[]);
    let client = nats.client();
    let out = client.subscribe("out.>", None);
    assert_eq!(
        publ(&app, &[("subject", "out.x"), ("payload", "hi nats"), ("content_type", "text/plain"), ("meta", "k:v")]),
        (200, "sent".into()),
        "{}",
        app.kiln.log()
    );
    let m = out.next(Duration::from_secs(10)).expect("the published message");
    assert_eq!((m.subject.as_str(), m.text().as_str()), ("out.x", "hi nats"));
    assert_eq!(m.header("content-type"), Some("text/plain"));
    assert_eq!(m.header("k"), Some("v"));
    // Request/reply to a responder on the test's connection.
    let responder = nats.client();
    let requests = responder.subscribe("svc.echo", None);
    let handle = std::thread::spawn(move || {
        let m = requests.next(Duration::from_secs(20)).expect("the request");
        responder.publish(m.reply.as_deref().expect("a reply subject"), format!("echo {}", m.text()).as_bytes());
        responder.flush();
    });
    assert_eq!(publ(&app, &[("request", "svc.echo"), ("payload", "abc")]), (200, "echo abc".into()));
    handle.join().unwrap();
    let (status, body) = publ(&app, &[("request", "svc.nobody"), ("payload", "x")]);
    assert_eq!(status, 500, "{body}");
    assert!(body.starts_with("error: Other(\"no responders for `svc.nobody`"), "{body}");
}

#[test]
fn the_runtime_config_names_the_nats_server() {
    let nats = NatsServer::start();
    let rc = format!("[messaging]\ntype = \"nats\"\nurl = \"{}\"\n", nats.url());
    let app = App::start(&manifest("", &trigger("events.*", "sub", "")), Some(&rc), &[], &[]);
    wait_nats_ready(&app, &nats, "events.probe");
    let out = nats.client().subscribe("out.rc", None);
    send(&app, "out.rc", "via runtime config");
    assert_eq!(out.next(Duration::from_secs(10)).expect("published to NATS").text(), "via runtime config");
}

#[test]
fn an_endless_handler_is_cut_off_by_the_deadline_on_nats() {
    let nats = NatsServer::start();
    let app = App::start(&manifest(&nats_section(&nats), &trigger("events.*", "sub", "")), None, &["--request-timeout", "1s"], &[]);
    wait_nats_ready(&app, &nats, "events.probe");
    let started = Instant::now();
    nats.publish("events.slow", b"hang");
    wait_log_line(&app, &["nats events.slow", "[sub]", "error"], Duration::from_secs(20));
    assert!(started.elapsed() >= Duration::from_millis(900), "{:?}", started.elapsed());
    nats.publish("events.next", b"next");
    wait_kv(&app, "last", "next", Duration::from_secs(20));
}

#[test]
fn core_nats_trigger_resumes_after_the_server_restarts() {
    let mut nats = NatsServer::start();
    let app = App::start(&manifest(&nats_section(&nats), &trigger("events.*", "sub", "")), None, &[], &[]);
    wait_nats_ready(&app, &nats, "events.probe");
    nats.publish("events.a", b"before");
    wait_kv(&app, "last", "before", Duration::from_secs(20));
    nats.restart();
    // Core NATS keeps nothing for absent subscribers: publish until the resubscribed trigger runs.
    let client = nats.client();
    let mut i = 0;
    let ok = wait_until(Duration::from_secs(30), || {
        i += 1;
        client.publish("events.a", format!("after-{i}").as_bytes());
        client.flush();
        std::thread::sleep(Duration::from_millis(200));
        kv_get(&app, "last").is_some_and(|l| l.starts_with("after-"))
    });
    assert!(ok, "no message handled after the restart:\n{}", app.kiln.log());
    // Publishing from a component works again too.
    let out = client.subscribe("out.again", None);
    let ok = wait_until(Duration::from_secs(20), || publ(&app, &[("subject", "out.again"), ("payload", "again")]).0 == 200);
    assert!(ok, "{}", app.kiln.log());
    assert_eq!(out.next(Duration::from_secs(10)).map(|m| m.text()).as_deref(), Some("again"));
}

#[test]
fn two_hosts_in_one_queue_group_share_the_messages() {
    let nats = NatsServer::start();
    let manifest = manifest(&nats_section(&nats), &trigger("work.*", "sub", "queue_group = \"workers\""));
    // Two kiln processes, each with its own directory (and so its own embedded store).
    let a = App::start(&manifest, None, &[], &[]);
    let b = App::start(&manifest, None, &[], &[]);
    // Both subscribed: the server reports two queue subscribers on `work.*`... probed by traffic:
    let client = nats.client();
    let ok = wait_until(Duration::from_secs(30), || {
        for i in 0..10 {
            client.publish("work.probe", format!("probe-{i}").as_bytes());
        }
        client.flush();
        std::thread::sleep(Duration::from_millis(200));
        num(&a, "count") > 0 && num(&b, "count") > 0
    });
    assert!(ok, "both hosts handle messages:\n--- a ---\n{}\n--- b ---\n{}", a.kiln.log(), b.kiln.log());
    let probes = num(&a, "count") + num(&b, "count");
    let n = 200;
    for i in 0..n {
        client.publish("work.item", format!("item-{i}").as_bytes());
    }
    client.flush();
    let ok = wait_until(Duration::from_secs(60), || num(&a, "count") + num(&b, "count") >= probes + n);
    assert!(ok, "{} + {} of {}", num(&a, "count"), num(&b, "count"), probes + n);
    std::thread::sleep(Duration::from_millis(500));
    let seen_a: BTreeSet<String> = seen(&a).into_iter().filter(|(p, _)| p.starts_with("item-")).map(|(p, c)| {
        assert_eq!(c, 1, "{p} twice on a");
        p
    }).collect();
    let seen_b: BTreeSet<String> = seen(&b).into_iter().filter(|(p, _)| p.starts_with("item-")).map(|(p, c)| {
        assert_eq!(c, 1, "{p} twice on b");
        p
    }).collect();
    assert!(seen_a.is_disjoint(&seen_b), "handled on both hosts: {:?}", seen_a.intersection(&seen_b).collect::<Vec<_>>());
    assert_eq!(seen_a.len() + seen_b.len(), n as usize);
    assert!(!seen_a.is_empty() && !seen_b.is_empty(), "a: {}, b: {}", seen_a.len(), seen_b.len());
}

// ---------------------------------------------------------------------------------------------
// JetStream (`durable = "…"`)
// ---------------------------------------------------------------------------------------------

/// The stream kiln made (or found) for `subject`.
fn stream_for(nats: &NatsServer, subject: &str) -> String {
    let mut name = None;
    wait_until(Duration::from_secs(30), || {
        name = nats
            .js_api("STREAM.NAMES", &format!("{{\"subject\":\"{subject}\"}}"))
            .and_then(|v| v["streams"].as_array()?.first()?.as_str().map(str::to_string));
        name.is_some()
    });
    name.unwrap_or_else(|| panic!("no stream covers {subject}: {:?}\n{}", nats.stream_names(), nats.log()))
}

fn consumer_info(nats: &NatsServer, stream: &str, durable: &str) -> serde_json::Value {
    nats.js_api(&format!("CONSUMER.INFO.{stream}.{durable}"), "").expect("consumer info")
}

/// Waits until the durable consumer has acked `n` messages and has none pending.
fn wait_acked(nats: &NatsServer, stream: &str, durable: &str, n: u64, timeout: Duration) -> serde_json::Value {
    let mut info = serde_json::Value::Null;
    let ok = wait_until(timeout, || {
        info = consumer_info(nats, stream, durable);
        info["ack_floor"]["consumer_seq"].as_u64() >= Some(n) && info["num_ack_pending"] == 0 && info["num_pending"] == 0
    });
    assert!(ok, "consumer {durable} did not ack {n}: {info}");
    info
}

fn js_app(nats: &NatsServer, durable: &str, args: &[&str], rc_extra: &str) -> App {
    let rc = format!("[messaging]\ntype = \"nats\"\nurl = \"{}\"\n{rc_extra}", nats.url());
    App::start(&manifest("", &trigger("jobs.*", "sub", &format!("durable = \"{durable}\""))), Some(&rc), args, &[])
}

#[test]
fn jetstream_acks_redelivers_and_dead_letters() {
    let nats = NatsServer::start();
    let app = js_app(&nats, "jd", &[], "max_deliver = 3\n");
    let stream = stream_for(&nats, "jobs.a");
    let dlq = nats.client().subscribe("kiln.dlq.jd", None);
    nats.js_publish("jobs.a", b"plain");
    nats.js_publish("jobs.a", b"fail-once:x");
    nats.js_publish("jobs.a", b"fail");
    wait_kv(&app, "seen:plain", "1", Duration::from_secs(30));
    wait_kv(&app, "seen:fail-once:x", "2", Duration::from_secs(60));
    let dead = dlq.next(Duration::from_secs(60)).unwrap_or_else(|| panic!("no dead letter:\n{}", app.kiln.log()));
    assert_eq!(dead.text(), "fail");
    assert_eq!(dead.header("Kiln-Dlq-Subject"), Some("jobs.a"));
    assert_eq!(dead.header("Kiln-Dlq-Durable"), Some("jd"));
    assert_eq!(dead.header("Kiln-Dlq-Deliveries"), Some("3"));
    assert!(dead.header("Kiln-Dlq-Reason").is_some_and(|r| r.contains("msg_sub was told to fail")), "{:?}", dead.headers);
    assert_eq!(num(&app, "seen:fail"), 3);
    wait_log_line(&app, &["nats jobs.a", "will be redelivered: delivery 2"], Duration::from_secs(5));
    wait_log_line(&app, &["nats jobs.a", "dead-lettered to kiln.dlq.jd"], Duration::from_secs(5));
    // Everything is settled on the server: nothing pending, nothing redelivered later.
    wait_acked(&nats, &stream, "jd", 3, Duration::from_secs(30));
    std::thread::sleep(Duration::from_secs(2));
    assert_eq!((num(&app, "seen:fail"), num(&app, "seen:fail-once:x"), num(&app, "seen:plain")), (3, 2, 1));
}

#[test]
fn jetstream_redelivers_a_message_whose_handler_hit_the_deadline() {
    let nats = NatsServer::start();
    let app = js_app(&nats, "jh", &["--request-timeout", "1s"], "max_deliver = 2\n");
    let dlq = nats.client().subscribe("kiln.dlq.jh", None);
    stream_for(&nats, "jobs.a");
    nats.js_publish("jobs.a", b"hang");
    let dead = dlq.next(Duration::from_secs(60)).unwrap_or_else(|| panic!("no dead letter:\n{}", app.kiln.log()));
    assert_eq!(dead.text(), "hang");
    assert_eq!(num(&app, "seen:hang"), 2);
    nats.js_publish("jobs.a", b"fine");
    wait_kv(&app, "seen:fine", "1", Duration::from_secs(30));
}

#[test]
fn jetstream_loses_no_acked_message_and_repeats_none_across_restarts() {
    let mut nats = NatsServer::start();
    let mut app = js_app(&nats, "jr", &[], "");
    let stream = stream_for(&nats, "jobs.a");
    // Batch 1, all acked.
    for i in 0..50 {
        nats.js_publish("jobs.a", format!("one-{i}").as_bytes());
    }
    wait_acked(&nats, &stream, "jr", 50, Duration::from_secs(60));
    // The NATS server restarts: the trigger reconnects and goes on with batch 2.
    nats.restart();
    for i in 0..50 {
        nats.js_publish("jobs.a", format!("two-{i}").as_bytes());
    }
    wait_acked(&nats, &stream, "jr", 100, Duration::from_secs(90));
    // Kiln is killed; batch 3 is published while it is down; it gets them after its restart.
    app.kill9();
    for i in 0..50 {
        nats.js_publish("jobs.a", format!("three-{i}").as_bytes());
    }
    app.restart();
    wait_acked(&nats, &stream, "jr", 150, Duration::from_secs(90));
    std::thread::sleep(Duration::from_secs(1));
    let seen = seen(&app);
    let batches: Vec<(String, u64)> = seen.into_iter().filter(|(p, _)| !p.starts_with("probe")).collect();
    let twice: Vec<&(String, u64)> = batches.iter().filter(|(_, n)| *n != 1).collect();
    assert!(twice.is_empty(), "handled more than once after an ack: {twice:?}");
    assert_eq!(batches.len(), 150, "every acked message was handled once");
    for batch in ["one", "two", "three"] {
        for i in 0..50 {
            assert_eq!(num(&app, &format!("seen:{batch}-{i}")), 1, "{batch}-{i}");
        }
    }
}

#[test]
fn jetstream_shutdown_acks_what_finished_and_not_what_did_not() {
    let nats = NatsServer::start();
    let mut app = js_app(&nats, "js", &["--shutdown-grace", "1s", "--request-timeout", "20s"], "");
    let stream = stream_for(&nats, "jobs.a");
    nats.js_publish("jobs.a", b"sleep:300");
    nats.js_publish("jobs.a", b"sleep:8000");
    assert!(app.kiln.wait_for_log("[sub] msg_sub got jobs.a: sleep:8000", Duration::from_secs(30)), "{}", app.kiln.log());
    assert!(app.kiln.wait_for_log("[sub] msg_sub got jobs.a: sleep:300", Duration::from_secs(30)), "{}", app.kiln.log());
    wait_kv(&app, "slept:sleep:300", "done", Duration::from_secs(10));
    app.kiln.signal("TERM");
    let status = app.kiln.wait_exit(Duration::from_secs(20)).expect("kiln exits after SIGTERM within the grace");
    assert!(status.success(), "{status:?}\n{}", app.kiln.log());
    // The finished one is acked; the cut-off one is not (it will be redelivered).
    let info = consumer_info(&nats, &stream, "js");
    assert_eq!(info["ack_floor"]["consumer_seq"], 1, "{info}");
    assert_eq!(info["num_ack_pending"], 1, "{info}");
}

#[test]
fn two_hosts_with_one_durable_share_the_messages() {
    let nats = NatsServer::start();
    let a = js_app(&nats, "shared", &[], "");
    let b = js_app(&nats, "shared", &[], "");
    let stream = stream_for(&nats, "jobs.a");
    let n = 200;
    for i in 0..n {
        nats.js_publish("jobs.a", format!("item-{i}").as_bytes());
    }
    wait_acked(&nats, &stream, "shared", n, Duration::from_secs(120));
    let seen_a: BTreeSet<String> = seen(&a).into_iter().map(|(p, c)| {
        assert_eq!(c, 1, "{p} twice on a");
        p
    }).collect();
    let seen_b: BTreeSet<String> = seen(&b).into_iter().map(|(p, c)| {
        assert_eq!(c, 1, "{p} twice on b");
        p
    }).collect();
    assert!(seen_a.is_disjoint(&seen_b), "on both: {:?}", seen_a.intersection(&seen_b).collect::<Vec<_>>());
    assert_eq!(seen_a.len() + seen_b.len(), n as usize);
    assert!(!seen_a.is_empty() && !seen_b.is_empty(), "a: {}, b: {}", seen_a.len(), seen_b.len());
}

// ---------------------------------------------------------------------------------------------
// The events example
// ---------------------------------------------------------------------------------------------

fn post(kiln: &kiln_e2e::kiln::Kiln, path: &str, body: &str) -> (u16, String) {
    crate::body(kiln_e2e::kiln::client().post(kiln.url(path)).body(body.to_string()).send().expect("POST"))
}

fn events_flow(kiln: &kiln_e2e::kiln::Kiln) {
    assert_eq!(crate::body(kiln.get("/stats")), (200, "{\"orders\":0,\"total_cents\":0}".into()), "{}", kiln.log());
    let (status, body) = post(kiln, "/orders", "{\"id\":\"A-1\",\"amount_cents\":1250}");
    assert_eq!(status, 202, "{body}\n{}", kiln.log());
    let v: serde_json::Value = serde_json::from_str(&body).unwrap();
    assert_eq!((v["published"].as_str(), v["id"].as_str()), (Some("orders.created"), Some("A-1")));
    assert_eq!(post(kiln, "/orders", "{\"id\":\"A-2\",\"amount_cents\":799}").0, 202);
    assert_eq!(post(kiln, "/orders", "{\"id\":\"A-3\",\"amount_cents\":1}").0, 202);
    let (status, body) = post(kiln, "/orders", "not json");
    assert_eq!(status, 400, "{body}");
    let want = "{\"orders\":3,\"total_cents\":2050}";
    let ok = wait_until(Duration::from_secs(30), || crate::body(kiln.get("/stats")).1 == want);
    assert!(ok, "stats: {:?}\n{}", crate::body(kiln.get("/stats")), kiln.log());
    // The same order again (as a redelivery would bring it) is not counted twice.
    assert_eq!(post(kiln, "/orders", "{\"id\":\"A-1\",\"amount_cents\":1250}").0, 202);
    assert_eq!(post(kiln, "/orders", "{\"id\":\"A-4\",\"amount_cents\":50}").0, 202);
    let want = "{\"orders\":4,\"total_cents\":2100}";
    let ok = wait_until(Duration::from_secs(30), || crate::body(kiln.get("/stats")).1 == want);
    assert!(ok, "stats: {:?}\n{}", crate::body(kiln.get("/stats")), kiln.log());
    assert!(wait_until(Duration::from_secs(10), || kiln.log().contains("order A-1 already counted")), "{}", kiln.log());
    assert_eq!(crate::body(kiln.get("/stats")).1, want, "{}", kiln.log());
}

#[test]
fn events_example_with_embedded_defaults() {
    let (kiln, _state) = crate::key_value::example_app("events", &[], &[]);
    events_flow(&kiln);
}

#[test]
fn events_example_on_redis_and_nats() {
    let nats = NatsServer::start();
    let redis = RedisServer::start();
    let shipped = std::fs::read_to_string(crate::example("events").join("runtime-config.toml")).unwrap();
    let rc = shipped
        .replace("nats://127.0.0.1:4222", &nats.url())
        .replace("redis://127.0.0.1:6379", &redis.url());
    assert!(rc.contains(&nats.url()) && rc.contains(&redis.url()), "the example's runtime-config.toml changed:\n{shipped}");
    let dir = kiln_e2e::kiln::app_dir("", &[("runtime-config.toml", &rc)]);
    let rc_path = dir.path().join("runtime-config.toml").display().to_string();
    let (kiln, _state) = crate::key_value::example_app("events", &["--runtime-config-file", &rc_path], &[]);
    events_flow(&kiln);
    // The events went through JetStream, the totals are in Redis.
    let stream = stream_for(&nats, "orders.created");
    let info = nats.js_api(&format!("STREAM.INFO.{stream}"), "").unwrap();
    assert_eq!(info["state"]["messages"], 5, "{info}");
    assert!(redis.command(&["KEYS", "*"]).unwrap().contains("orders:totals"), "{:?}", redis.command(&["KEYS", "*"]));
}
