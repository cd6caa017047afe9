use super::*;
use kiln_test_support::{MosquittoServer, free_port};

fn app() -> MqttApp {
    MqttApp::new(MqttTimeouts {
        connect: Duration::from_secs(2),
        call: Duration::from_secs(2),
    })
}

fn instance(app: &MqttApp, allowed: &[&str]) -> MqttInstance {
    let allowed = AllowedHosts::parse(allowed).unwrap();
    app.component_state(&allowed).instance()
}

fn borrow(r: &Resource<MqttConnection>) -> Resource<MqttConnection> {
    Resource::new_borrow(r.rep())
}

use v2::HostConnection as H;

#[tokio::test]
async fn open_checks_the_address_and_the_grant() {
    let broker = MosquittoServer::start();
    let app = app();
    let url = format!("{}?client_id=t1", broker.url());
    let mut none = instance(&app, &[]);
    let e = H::open(&mut none, url.clone(), "".into(), "".into(), 30).await.unwrap_err();
    assert!(matches!(&e, v2::Error::ConnectionFailed(m) if m.contains("not permitted")), "{e:?}");

    let mut inst = instance(&app, &[&broker.url()]);
    for bad in ["not a url", "mqtt://", "http://127.0.0.1:1883?client_id=x"] {
        let e = H::open(&mut inst, bad.into(), "".into(), "".into(), 30).await.unwrap_err();
        assert!(
            matches!(e, v2::Error::InvalidAddress | v2::Error::ConnectionFailed(_)),
            "{bad}: {e:?}"
        );
    }
    // Allowed, but without the client id rumqttc needs.
    let e = H::open(&mut inst, broker.url(), "".into(), "".into(), 30).await.unwrap_err();
    assert!(matches!(e, v2::Error::InvalidAddress), "{e:?}");
    H::open(&mut inst, url, "".into(), "".into(), 30).await.unwrap();
}

#[tokio::test]
async fn publish_at_every_qos_reaches_a_subscriber() {
    let broker = MosquittoServer::start();
    let app = app();
    let mut inst = instance(&app, &[&broker.url()]);
    let mut sub = broker.subscribe("kiln/#");
    let url = format!("{}?client_id=pub", broker.url());
    let c = H::open(&mut inst, url, "".into(), "".into(), 30).await.unwrap();
    for (qos, n) in [(v2::Qos::AtMostOnce, 0), (v2::Qos::AtLeastOnce, 1), (v2::Qos::ExactlyOnce, 2)] {
        let payload = format!("message {n}").into_bytes();
        H::publish(&mut inst, borrow(&c), format!("kiln/{n}"), payload, qos).await.unwrap();
        let got = sub.next(Duration::from_secs(10));
        assert_eq!((got.topic.as_str(), got.qos, got.payload.as_str()), (format!("kiln/{n}").as_str(), n, format!("message {n}").as_str()));
    }
    // A topic with a wildcard cannot be published to: an error value, not a trap.
    let e = H::publish(&mut inst, borrow(&c), "kiln/+".into(), b"x".to_vec(), v2::Qos::AtMostOnce)
        .await
        .unwrap_err();
    assert!(matches!(e, v2::Error::Other(_)), "{e:?}");
}

#[tokio::test]
async fn credentials_and_unreachable_brokers_are_connection_failures() {
    let broker = MosquittoServer::start_with_user("kiln", "s3cret");
    let app = app();
    let mut inst = instance(&app, &["mqtt://127.0.0.1:*"]);
    let url = format!("{}?client_id=auth", broker.url());
    let e = H::open(&mut inst, url.clone(), "kiln".into(), "wrong".into(), 30).await.unwrap_err();
    assert!(matches!(e, v2::Error::ConnectionFailed(_)), "{e:?}");
    let mut sub = broker.subscribe_as("auth/t", "kiln", "s3cret");
    let c = H::open(&mut inst, url, "kiln".into(), "s3cret".into(), 30).await.unwrap();
    H::publish(&mut inst, borrow(&c), "auth/t".into(), b"in".to_vec(), v2::Qos::AtLeastOnce).await.unwrap();
    assert_eq!(sub.next(Duration::from_secs(10)).payload, "in");

    let nobody = format!("mqtt://127.0.0.1:{}?client_id=x", free_port());
    let e = H::open(&mut inst, nobody, "".into(), "".into(), 30).await.unwrap_err();
    assert!(matches!(e, v2::Error::ConnectionFailed(_)), "{e:?}");
}

#[tokio::test]
async fn dropped_connections_are_pooled_and_reused() {
    let mut broker = MosquittoServer::start();
    let app = app();
    let url = format!("{}?client_id=pooled", broker.url());
    let mut first = instance(&app, &[&broker.url()]);
    let c = H::open(&mut first, url.clone(), "".into(), "".into(), 30).await.unwrap();
    H::publish(&mut first, borrow(&c), "p".into(), b"1".to_vec(), v2::Qos::AtLeastOnce).await.unwrap();
    H::drop(&mut first, c).await.unwrap();
    assert_eq!(app.pool.idle_count(), 1);
    // The next instance takes it; the broker saw one client connect.
    let mut second = instance(&app, &[&broker.url()]);
    let c = H::open(&mut second, url.clone(), "".into(), "".into(), 30).await.unwrap();
    assert_eq!(app.pool.idle_count(), 0);
    H::publish(&mut second, borrow(&c), "p".into(), b"2".to_vec(), v2::Qos::AtLeastOnce).await.unwrap();
    drop(second);
    assert_eq!(app.pool.idle_count(), 1, "an instance's end returns its connections too");
    // Mosquitto writes its log asynchronously: wait for the line before counting.
    let logged = std::time::Instant::now();
    while !broker.log().contains("New client connected") && logged.elapsed() < std::time::Duration::from_secs(5) {
        tokio::time::sleep(std::time::Duration::from_millis(20)).await;
    }
    assert_eq!(broker.log().matches("New client connected").count(), 1, "{}", broker.log());
    // A broker gone: the pooled connection is noticed dead and `open` fails cleanly.
    broker.stop();
    let mut third = instance(&app, &[&broker.url()]);
    let e = H::open(&mut third, url, "".into(), "".into(), 30).await.unwrap_err();
    assert!(matches!(e, v2::Error::ConnectionFailed(_)), "{e:?}");
}
