//! One app's message storm must not starve another app's HTTP requests or events, in a test binary
//! of its own (cargo runs test binaries one after another, so this latency measurement never shares
//! the machine with the parallel end-to-end suite).

use kiln_e2e::serve::{AppArchive, KilnServe};
use kiln_e2e::services::NatsServer;
use std::path::PathBuf;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

/// `guests/msg_sub` on NATS `subject`, plus the `spin_kv` reader on `/kv/...`.
fn subscriber_app(nats: &NatsServer, subject: &str) -> Vec<u8> {
    let manifest = format!(
        "spin_manifest_version = 2\n[application]\nname = \"events\"\n[application.trigger.nats]\nurl = \"{}\"\n\
         [[trigger.nats]]\nsubject = \"{subject}\"\ncomponent = \"sub\"\n[[trigger.http]]\nroute = \"/kv/...\"\ncomponent = \"kv\"\n\
         [component.sub]\nsource = \"sub.wasm\"\nkey_value_stores = [\"default\"]\n[component.kv]\nsource = \"kv.wasm\"\nkey_value_stores = [\"default\"]\n",
        nats.url()
    );
    AppArchive::new(&manifest).guest("sub.wasm", "msg_sub").guest("kv.wasm", "spin_kv").build()
}

fn percentile(sorted: &[Duration], p: usize) -> Duration {
    sorted[(sorted.len() * p / 100).min(sorted.len() - 1)]
}

/// A storm of messages whose handlers each loop for 2 s, at the noisy app's concurrency limit, while
/// the quiet app's events and requests are timed. Bounds: the quiet app's HTTP p95 under 100 ms (as
/// for an HTTP neighbour, README), its events handled within 500 ms p95 (publish to the effect being
/// readable over HTTP).
#[test]
fn a_message_storm_does_not_starve_other_apps() {
    let nats = NatsServer::start();
    let dir = tempfile::tempdir().expect("temp dir");
    let serve = KilnServe::start(&PathBuf::from(env!("CARGO_BIN_EXE_kiln")), &dir.path().join("data"), &["-q"]);
    serve.deploy_ok("storm", "max_concurrency=2&request_timeout_ms=2000", subscriber_app(&nats, "storm.>"));
    serve.deploy_ok("quiet", "", subscriber_app(&nats, "quiet.>"));
    let seen = |key: &str| {
        let response = serve.app_get("quiet", &format!("/kv?op=get&key=seen:{key}"));
        response.status() == 200
    };
    nats.publish("quiet.warm", b"warm");
    let started = Instant::now();
    while !seen("warm") {
        assert!(started.elapsed() < Duration::from_secs(10), "the quiet app never handled its first event:\n{}", serve.kiln.log());
        std::thread::sleep(Duration::from_millis(10));
    }

    let stop = Arc::new(AtomicBool::new(false));
    let storm = {
        let (stop, client) = (stop.clone(), nats.client());
        std::thread::spawn(move || {
            while !stop.load(Ordering::Relaxed) {
                for _ in 0..20 {
                    client.publish("storm.load", b"hang");
                }
                client.flush();
                std::thread::sleep(Duration::from_millis(20));
            }
        })
    };
    std::thread::sleep(Duration::from_millis(500));
    let (mut events, mut requests) = (Vec::new(), Vec::new());
    for i in 0..40 {
        let key = format!("q-{i}");
        let published = Instant::now();
        nats.publish("quiet.x", key.as_bytes());
        loop {
            let asked = Instant::now();
            let handled = seen(&key);
            requests.push(asked.elapsed());
            if handled {
                break;
            }
            assert!(published.elapsed() < Duration::from_secs(10), "event {key} not handled within 10 s under the storm:\n{}", serve.kiln.log());
            std::thread::sleep(Duration::from_millis(5));
        }
        events.push(published.elapsed());
        std::thread::sleep(Duration::from_millis(20));
    }
    stop.store(true, Ordering::Relaxed);
    let _ = storm.join();
    events.sort();
    requests.sort();
    let (event_p95, request_p95) = (percentile(&events, 95), percentile(&requests, 95));
    eprintln!(
        "quiet app under a message storm: events median {:?}, p95 {event_p95:?}; HTTP median {:?}, p95 {request_p95:?} ({} requests)",
        percentile(&events, 50),
        percentile(&requests, 50),
        requests.len()
    );
    // The storm's handlers each run into their 2 s deadline: they are counted as they end.
    let started = Instant::now();
    loop {
        let (_, storm_app) = serve.admin("GET", "/v1/apps/storm");
        if storm_app["event_errors_total"].as_u64().unwrap_or(0) > 0 {
            break;
        }
        assert!(started.elapsed() < Duration::from_secs(10), "the storm never ran: {storm_app}");
        std::thread::sleep(Duration::from_millis(100));
    }
    assert!(request_p95 < Duration::from_millis(100), "the quiet app's HTTP p95 was {request_p95:?}");
    assert!(event_p95 < Duration::from_millis(500), "the quiet app's event p95 was {event_p95:?}");
}
