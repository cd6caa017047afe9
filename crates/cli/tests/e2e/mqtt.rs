//! Outbound MQTT, as apps use it, against a real `mosquitto`: `fermyon:spin/mqtt@2.0.0` through
//! spin-sdk 5 (the `spin_mqtt` guest) and `spin:mqtt/mqtt@3.0.0` through spin-sdk 7 (the
//! `spin4_outbound` guest). A subscriber in the test sees every message at the QoS it was
//! published with; the allow-list, bad addresses, wrong credentials and a broker that is down are
//! the interface's errors, never a trap.

use crate::key_value::{App, at};
use crate::single;
use kiln_e2e::services::MosquittoServer;
use std::time::Duration;

fn mqtt_app(guest: &str, allowed: &str) -> App {
    App::start(&single(guest, "/...", &format!("allowed_outbound_hosts = {allowed}")), None, &[], &[])
}

fn granted(guest: &str, broker: &MosquittoServer) -> App {
    mqtt_app(guest, &format!("[\"mqtt://127.0.0.1:{}\"]", broker.port()))
}

/// The guest's path: `spin_mqtt` answers at the root, `spin4_outbound` at `/mqtt`.
fn path(guest: &str) -> &'static str {
    if guest == "spin4_outbound" { "/mqtt" } else { "/" }
}

fn op(app: &App, guest: &str, addr: &str, pairs: &[(&str, &str)]) -> (u16, String) {
    let mut all = vec![("addr", addr)];
    all.extend_from_slice(pairs);
    app.get(&at(path(guest), &all))
}

fn publish_at_every_qos(guest: &str) {
    let broker = MosquittoServer::start();
    let app = granted(guest, &broker);
    let mut sub = broker.subscribe("orders/#");
    let addr = format!("{}?client_id={guest}", broker.url());
    assert_eq!(op(&app, guest, &addr, &[("op", "open")]), (200, "opened".into()));
    for qos in ["0", "1", "2"] {
        let topic = format!("orders/q{qos}");
        let value = format!("order at qos {qos}");
        let pairs = [("op", "publish"), ("topic", topic.as_str()), ("value", value.as_str()), ("qos", qos)];
        assert_eq!(op(&app, guest, &addr, &pairs), (200, "ok".into()), "qos {qos}");
        let got = sub.next(Duration::from_secs(10));
        assert_eq!((got.topic, got.qos.to_string(), got.payload), (topic, qos.to_string(), value));
    }
    // A topic with a wildcard is an error value; the app keeps serving.
    let (status, text) = op(&app, guest, &addr, &[("op", "publish"), ("topic", "orders/#"), ("value", "x"), ("qos", "1")]);
    assert_eq!(status, 500, "{text}");
    assert!(text.starts_with("error: Other("), "{text}");
    assert_eq!(op(&app, guest, &addr, &[("op", "publish"), ("topic", "orders/again"), ("value", "y"), ("qos", "1")]), (200, "ok".into()));
    assert_eq!(sub.next(Duration::from_secs(10)).payload, "y");
}

#[test]
fn mqtt_2_publishes_at_every_qos() {
    publish_at_every_qos("spin_mqtt");
}

#[test]
fn mqtt_3_publishes_at_every_qos() {
    publish_at_every_qos("spin4_outbound");
}

fn denials(guest: &str) {
    let broker = MosquittoServer::start();
    let addr = format!("{}?client_id=denied", broker.url());
    let mut sub = broker.subscribe("#");
    let publish = [("op", "publish"), ("topic", "t"), ("value", "v"), ("qos", "1")];
    // Not granted at all, another port, another scheme: connection-failed, nothing published.
    for allowed in ["[]".to_string(), format!("[\"mqtt://127.0.0.1:{}\"]", broker.port() as u32 + 1), format!("[\"redis://127.0.0.1:{}\"]", broker.port())] {
        let app = mqtt_app(guest, &allowed);
        let (status, text) = op(&app, guest, &addr, &publish);
        assert_eq!(status, 500, "{allowed}: {text}");
        assert!(text.starts_with("error: ConnectionFailed(") && text.contains("not permitted"), "{allowed}: {text}");
    }
    assert!(sub.nothing_within(Duration::from_millis(300)), "a denied component published");
    // Wildcards and CIDR ranges grant it.
    for allowed in ["[\"mqtt://127.0.0.1:*\"]", "[\"mqtt://127.0.0.0/24:*\"]", "[\"*://*:*\"]"] {
        let app = mqtt_app(guest, allowed);
        assert_eq!(op(&app, guest, &addr, &publish), (200, "ok".into()), "{allowed}");
        assert_eq!(sub.next(Duration::from_secs(10)).payload, "v");
    }
    let app = granted(guest, &broker);
    // Not an MQTT URL the client takes (no client_id): invalid-address.
    assert_eq!(op(&app, guest, &broker.url(), &[("op", "open")]), (500, "error: InvalidAddress".into()));
    assert_eq!(op(&app, guest, "not a url", &[("op", "open")]), (500, "error: InvalidAddress".into()));
}

#[test]
fn mqtt_2_denials_and_bad_addresses() {
    denials("spin_mqtt");
}

#[test]
fn mqtt_3_denials_and_bad_addresses() {
    denials("spin4_outbound");
}

#[test]
fn mqtt_credentials_and_a_broker_that_is_down() {
    let guest = "spin_mqtt";
    let mut broker = MosquittoServer::start_with_user("kiln", "s3cret");
    let app = mqtt_app(guest, "[\"mqtt://127.0.0.1:*\"]");
    let addr = format!("{}?client_id=auth", broker.url());
    let mut sub = broker.subscribe_as("secure", "kiln", "s3cret");
    let publish = |user: &str, pass: &str| {
        op(&app, guest, &addr, &[("user", user), ("pass", pass), ("op", "publish"), ("topic", "secure"), ("value", "v"), ("qos", "2")])
    };
    let (status, text) = publish("kiln", "wrong");
    assert_eq!(status, 500, "{text}");
    assert!(text.starts_with("error: ConnectionFailed("), "{text}");
    assert_eq!(publish("kiln", "s3cret"), (200, "ok".into()));
    assert_eq!(sub.next(Duration::from_secs(10)).payload, "v");
    drop(sub);
    // The broker goes away: connection-failed (the pooled connection is found dead), no trap.
    broker.stop();
    let (status, text) = publish("kiln", "s3cret");
    assert_eq!(status, 500, "{text}");
    assert!(text.starts_with("error: ConnectionFailed("), "{text}");
}

#[test]
fn mqtt_many_messages_reuse_pooled_connections() {
    let guest = "spin_mqtt";
    let broker = MosquittoServer::start();
    let app = granted(guest, &broker);
    let addr = format!("{}?client_id=pool", broker.url());
    let mut sub = broker.subscribe("bulk");
    for i in 0..20 {
        let value = format!("m{i}");
        assert_eq!(op(&app, guest, &addr, &[("op", "publish"), ("topic", "bulk"), ("value", &value), ("qos", "1"), ("count", "2")]), (200, "ok".into()));
    }
    for i in 0..40 {
        assert_eq!(sub.next(Duration::from_secs(10)).payload, format!("m{}", i / 2));
    }
    // Sequential requests share one connection: the broker saw the subscriber and one publisher.
    assert_eq!(broker.log().matches("New client connected").count(), 2, "{}", broker.log());
}
