//! Per-request isolation: traps, deadlines, memory bombs and floods stay with their own request.

use crate::{body, serve, serve_guest};
use kiln_e2e::kiln::{Kiln, client};
use std::time::{Duration, Instant};

/// Two components: `/bad/...` runs `guest`, everything else the echo guest.
fn with_neighbour(guest: &str, args: &[&str]) -> (Kiln, tempfile::TempDir) {
    let manifest = format!(
        r#"spin_manifest_version = 2
[application]
name = "neighbours"
[[trigger.http]]
route = "/bad/..."
component = "bad"
[[trigger.http]]
route = "/..."
component = "good"
[component.bad]
source = "{bad}"
[component.good]
source = "{good}"
"#,
        bad = kiln_e2e::guest(guest).display(),
        good = kiln_e2e::guest("echo_request").display()
    );
    serve(&manifest, &[], args)
}

#[test]
fn a_trap_gets_500_and_the_host_keeps_serving() {
    let (kiln, _dir) = with_neighbour("trap", &[]);
    let (status, text) = body(kiln.get("/bad/x"));
    assert_eq!(status, 500, "{text}");
    assert!(text.contains("trapped"), "{text}");
    assert!(kiln.wait_for_log("[bad] the component trapped", Duration::from_secs(5)), "{}", kiln.log());
    assert_eq!(body(kiln.get("/fine")).0, 200);
    assert_eq!(body(kiln.get("/bad/again")).0, 500);
}

#[test]
fn an_endless_loop_gets_504_at_its_deadline_without_blocking_others() {
    let (kiln, _dir) = with_neighbour("busy_loop", &["--request-timeout", "2s", "--workers", "1"]);
    let url = kiln.url("/bad/spin");
    let looping = std::thread::spawn(move || {
        let started = Instant::now();
        let response = client().get(url).send().expect("loop request");
        (response.status().as_u16(), started.elapsed())
    });
    std::thread::sleep(Duration::from_millis(300));
    // With a single worker thread, the loop must yield for these to be served while it runs.
    for _ in 0..5 {
        assert_eq!(body(kiln.get("/ok")).0, 200);
    }
    let (status, elapsed) = looping.join().unwrap();
    assert_eq!(status, 504);
    assert!(elapsed >= Duration::from_secs(2), "cut off before its deadline: {elapsed:?}");
    assert!(kiln.wait_for_log("deadline", Duration::from_secs(5)), "{}", kiln.log());
}

#[test]
fn a_guest_waiting_on_the_host_is_also_cut_off_at_its_deadline() {
    let (kiln, _dir) = serve_guest("sleep", &["--request-timeout", "1s"]);
    let (status, _) = body(kiln.get("/?ms=10000"));
    assert_eq!(status, 504);
    assert_eq!(body(kiln.get("/?ms=10")), (200, "slept 10".to_string()));
}

#[test]
fn a_memory_bomb_gets_500_naming_the_limit() {
    let (kiln, _dir) = with_neighbour("memory_bomb", &["--memory-limit", "64"]);
    let (status, text) = body(kiln.get("/bad/boom"));
    assert_eq!(status, 500, "{text}");
    assert!(text.contains("memory limit of 64 MiB"), "{text}");
    assert_eq!(body(kiln.get("/fine")).0, 200);
}

#[test]
fn requests_wait_for_a_free_instance_then_get_503() {
    let (kiln, _dir) = serve_guest("sleep", &["--max-concurrency", "1", "--queue-timeout", "300ms"]);
    let url = kiln.url("/?ms=2000");
    let slow = std::thread::spawn(move || client().get(url).send().map(|r| r.status().as_u16()));
    std::thread::sleep(Duration::from_millis(300));
    let (status, text) = body(kiln.get("/?ms=1"));
    assert_eq!(status, 503, "{text}");
    assert_eq!(slow.join().unwrap().unwrap(), 200);
    // Once the instance is free, requests are served again.
    assert_eq!(body(kiln.get("/?ms=1")).0, 200);
}

#[test]
fn a_queued_request_is_served_when_an_instance_frees_up() {
    let (kiln, _dir) = serve_guest("sleep", &["--max-concurrency", "1", "--queue-timeout", "10s"]);
    let url = kiln.url("/?ms=500");
    let slow = std::thread::spawn(move || client().get(url).send().map(|r| r.status().as_u16()));
    std::thread::sleep(Duration::from_millis(100));
    assert_eq!(body(kiln.get("/?ms=1")).0, 200);
    assert_eq!(slow.join().unwrap().unwrap(), 200);
}

#[test]
fn every_request_gets_a_fresh_instance() {
    let (kiln, _dir) = serve_guest("counter", &[]);
    for i in 0..20 {
        assert_eq!(body(kiln.get(&format!("/{i}"))), (200, "count 1; saw earlier data: no".to_string()));
    }
    // Also under concurrency: no instance is ever reused.
    let handles: Vec<_> = (0..8)
        .map(|i| {
            let url = kiln.url(&format!("/parallel/{i}"));
            std::thread::spawn(move || client().get(url).send().unwrap().text().unwrap())
        })
        .collect();
    for handle in handles {
        assert_eq!(handle.join().unwrap(), "count 1; saw earlier data: no");
    }
}

#[test]
fn kiln_up_takes_limits_from_the_manifest_unless_flags_say_otherwise() {
    let manifest = format!("{}\n[application.tool.kiln]\nrequest_timeout_ms = 300\n", crate::single("busy_loop", "/...", ""));
    let (kiln, _dir) = serve(&manifest, &[], &[]);
    let started = Instant::now();
    assert_eq!(body(kiln.get("/")).0, 504);
    assert!(started.elapsed() < Duration::from_secs(5), "cut off at the manifest's 300 ms, not 30 s");
}
