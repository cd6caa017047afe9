//! Start, log, stop.

use crate::{body, example, serve_guest};
use kiln_e2e::kiln::{Kiln, client};
use std::time::Duration;

#[test]
fn sigterm_finishes_in_flight_requests_then_exits_0() {
    let (mut kiln, _dir) = serve_guest("sleep", &[]);
    let url = kiln.url("/?ms=1500");
    let in_flight = std::thread::spawn(move || client().get(url).send().map(|r| (r.status().as_u16(), r.text().unwrap_or_default())));
    std::thread::sleep(Duration::from_millis(300));
    kiln.signal("TERM");
    let (status, text) = in_flight.join().unwrap().expect("the in-flight request completes");
    assert_eq!((status, text.as_str()), (200, "slept 1500"));
    let exit = kiln.wait_exit(Duration::from_secs(15)).expect("kiln exits after SIGTERM");
    assert!(exit.success(), "exit status {exit}:\n{}", kiln.log());
    assert!(std::net::TcpStream::connect(kiln.addr).is_err(), "still accepting after shutdown");
}

#[test]
fn sigint_exits_0() {
    let (mut kiln, _dir) = serve_guest("echo_request", &[]);
    kiln.signal("INT");
    let exit = kiln.wait_exit(Duration::from_secs(15)).expect("kiln exits after SIGINT");
    assert!(exit.success(), "exit status {exit}");
}

#[test]
fn one_log_line_per_request_and_quiet_silences_them() {
    let (kiln, _dir) = serve_guest("echo_request", &[]);
    assert_eq!(kiln.get("/logged/path").status(), 200);
    assert!(kiln.wait_for_log("GET /logged/path 200", Duration::from_secs(5)), "{}", kiln.log());
    let (quiet, _dir2) = serve_guest("echo_request", &["--quiet"]);
    assert_eq!(quiet.get("/quiet/path").status(), 200);
    std::thread::sleep(Duration::from_millis(300));
    assert!(!quiet.log().contains("/quiet/path"), "{}", quiet.log());
}

#[test]
fn up_with_build_runs_the_build_command_first() {
    let kiln = Kiln::up(&crate::kiln_bin(), &example("hello"), &["--build"]);
    assert_eq!(body(kiln.get("/")), (200, "hello world".to_string()));
    assert!(kiln.log().contains("[1/1] hello: done in"), "{}", kiln.log());
}
