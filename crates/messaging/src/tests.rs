use super::*;
use kiln_test_support::NatsServer;
use std::time::Instant;

fn h(pairs: &[(&str, &str)]) -> Vec<(String, String)> {
    pairs.iter().map(|(a, b)| (a.to_string(), b.to_string())).collect()
}

async fn recv(sub: &mut Subscription) -> Option<Message> {
    tokio::time::timeout(Duration::from_secs(5), sub.next()).await.ok().flatten()
}

async fn nothing(sub: &mut Subscription) -> bool {
    tokio::time::timeout(Duration::from_millis(150), sub.next()).await.is_err()
}

// ---- the in-process bus ----

#[tokio::test]
async fn in_process_wildcards_and_headers() {
    let broker = Broker::in_process();
    let mut star = broker.subscribe("orders.*", None).await.unwrap();
    let mut rest = broker.subscribe("orders.>", None).await.unwrap();
    let mut exact = broker.subscribe("orders.created", None).await.unwrap();
    broker.publish("orders.created", "a".into(), h(&[("k", "v")]), None).await.unwrap();
    broker.publish("orders.created.eu", "b".into(), vec![], Some("reply.here".into())).await.unwrap();
    let m = recv(&mut star).await.unwrap();
    assert_eq!((m.subject.as_str(), &m.payload[..], m.header("K")), ("orders.created", &b"a"[..], Some("v")));
    assert!(nothing(&mut star).await, "`*` is one token");
    assert_eq!(recv(&mut rest).await.unwrap().subject, "orders.created");
    let m = recv(&mut rest).await.unwrap();
    assert_eq!((m.subject.as_str(), m.reply_to.as_deref()), ("orders.created.eu", Some("reply.here")));
    assert_eq!(recv(&mut exact).await.unwrap().payload, "a");
    assert!(nothing(&mut exact).await);
}

#[tokio::test]
async fn in_process_queue_groups_deliver_each_message_once() {
    let broker = Broker::in_process();
    let mut a = broker.subscribe("jobs.*", Some("workers")).await.unwrap();
    let mut b = broker.subscribe("jobs.*", Some("workers")).await.unwrap();
    let mut watcher = broker.subscribe("jobs.>", None).await.unwrap();
    for i in 0..10 {
        broker.publish(&format!("jobs.{i}"), Bytes::new(), vec![], None).await.unwrap();
    }
    let mut got = Vec::new();
    for sub in [&mut a, &mut b] {
        while let Ok(Some(m)) = tokio::time::timeout(Duration::from_millis(100), sub.next()).await {
            got.push(m.subject);
        }
    }
    got.sort();
    let mut expected: Vec<String> = (0..10).map(|i| format!("jobs.{i}")).collect();
    expected.sort();
    assert_eq!(got, expected, "each message exactly once across the group");
    for _ in 0..10 {
        recv(&mut watcher).await.unwrap();
    }
    // Both members got some (round robin).
    broker.publish("jobs.x", Bytes::new(), vec![], None).await.unwrap();
    broker.publish("jobs.y", Bytes::new(), vec![], None).await.unwrap();
    assert!(recv(&mut a).await.is_some() && recv(&mut b).await.is_some());
}

/// A durable consumer that falls behind slows its publishers down instead of losing messages: a
/// publish beyond its queue waits for room, and every message published is delivered.
#[tokio::test]
async fn in_process_durable_consumers_push_back_instead_of_dropping() {
    let broker = Broker::in_process();
    let mut durable = broker.durable("slow.>", "slow", DurableOptions::default()).await.unwrap();
    let total = inprocess::CHANNEL_CAPACITY + 100;
    let publisher = {
        let broker = broker.clone();
        tokio::spawn(async move {
            for i in 0..total {
                broker.publish("slow.x", Bytes::from(i.to_string()), Vec::new(), None).await.unwrap();
            }
        })
    };
    tokio::time::sleep(Duration::from_millis(300)).await;
    assert!(!publisher.is_finished(), "the publisher waits while the consumer's queue is full");
    for i in 0..total {
        let delivery = tokio::time::timeout(Duration::from_secs(5), durable.next()).await.expect("a message").expect("open");
        assert_eq!(delivery.message.payload, Bytes::from(i.to_string()), "in order, none lost");
        delivery.ack().await.unwrap();
    }
    publisher.await.unwrap();
}

#[tokio::test]
async fn in_process_dropped_subscriptions_stop_receiving() {
    let broker = Broker::in_process();
    let sub = broker.subscribe("x", None).await.unwrap();
    drop(sub);
    assert!(matches!(broker.request("x", Bytes::new(), vec![], Duration::from_millis(100)).await, Err(MessagingError::NoResponders(_))));
}

#[tokio::test]
async fn in_process_request_reply() {
    let broker = Broker::in_process();
    let mut service = broker.subscribe("echo", None).await.unwrap();
    let responder = broker.clone();
    tokio::spawn(async move {
        while let Some(m) = service.next().await {
            let reply = m.reply_to.clone().unwrap();
            let mut body = b"echo: ".to_vec();
            body.extend_from_slice(&m.payload);
            responder.publish(&reply, body.into(), vec![], None).await.unwrap();
        }
    });
    let reply = broker.request("echo", "hi".into(), vec![], Duration::from_secs(2)).await.unwrap();
    assert_eq!(reply.payload, "echo: hi");
    assert!(reply.subject.starts_with("_INBOX."));
    assert_eq!(
        broker.request("nobody.home", Bytes::new(), vec![], Duration::from_secs(1)).await.unwrap_err(),
        MessagingError::NoResponders("nobody.home".into())
    );
    // A subscriber that never answers: timeout.
    let _silent = broker.subscribe("silent", None).await.unwrap();
    let started = Instant::now();
    assert_eq!(broker.request("silent", Bytes::new(), vec![], Duration::from_millis(200)).await.unwrap_err(), MessagingError::Timeout);
    assert!(started.elapsed() < Duration::from_secs(2));
}

#[tokio::test]
async fn in_process_request_many_collects_replies() {
    let broker = Broker::in_process();
    for i in 0..3 {
        let mut sub = broker.subscribe("poll", None).await.unwrap();
        let b = broker.clone();
        tokio::spawn(async move {
            while let Some(m) = sub.next().await {
                b.publish(m.reply_to.as_deref().unwrap(), format!("{i}").into(), vec![], None).await.unwrap();
            }
        });
    }
    let replies = broker.request_many("poll", Bytes::new(), vec![], Duration::from_millis(300), 10).await.unwrap();
    assert_eq!(replies.len(), 3);
    let replies = broker.request_many("poll", Bytes::new(), vec![], Duration::from_secs(5), 2).await.unwrap();
    assert_eq!(replies.len(), 2);
}

#[tokio::test]
async fn invalid_subjects_are_errors() {
    let broker = Broker::in_process();
    for bad in ["", "a..b", "a b", "orders.*", "orders.>"] {
        assert!(matches!(broker.publish(bad, Bytes::new(), vec![], None).await, Err(MessagingError::InvalidSubject(..))), "{bad:?}");
    }
    assert!(broker.subscribe("a.>.b", None).await.is_err());
    assert!(broker.subscribe("a.*", Some("bad group")).await.is_err());
    assert!(broker.durable("a.*", "bad.name", DurableOptions::default()).await.is_err());
}

#[tokio::test]
async fn in_process_durable_redelivers_then_dead_letters() {
    let broker = Broker::in_process();
    let options = DurableOptions { max_deliver: 3, redelivery_delay: Duration::from_millis(10), ..Default::default() };
    let mut consumer = broker.durable("orders.*", "orders", options).await.unwrap();
    let mut dlq = broker.subscribe(&dead_letter_subject("orders"), None).await.unwrap();
    broker.publish("orders.bad", "poison".into(), h(&[("x", "1")]), None).await.unwrap();
    for attempt in 1..=3 {
        let d = tokio::time::timeout(Duration::from_secs(5), consumer.next()).await.unwrap().unwrap();
        assert_eq!((d.attempt, &d.message.payload[..]), (attempt, &b"poison"[..]));
        let outcome = d.fail("boom\nsecond line").await.unwrap();
        if attempt < 3 {
            assert_eq!(outcome, FailOutcome::Redeliver { next_attempt: attempt + 1 });
        } else {
            assert_eq!(outcome, FailOutcome::DeadLettered { subject: "kiln.dlq.orders".into() });
        }
    }
    let dead = recv(&mut dlq).await.unwrap();
    assert_eq!(dead.payload, "poison");
    assert_eq!(dead.header("x"), Some("1"));
    assert_eq!(dead.header(DLQ_SUBJECT_HEADER), Some("orders.bad"));
    assert_eq!(dead.header(DLQ_DELIVERIES_HEADER), Some("3"));
    assert_eq!(dead.header(DLQ_REASON_HEADER), Some("boom"));
    assert!(tokio::time::timeout(Duration::from_millis(200), consumer.next()).await.is_err(), "not redelivered after dead-lettering");
    // A success is not redelivered.
    broker.publish("orders.good", "ok".into(), vec![], None).await.unwrap();
    let d = consumer.next().await.unwrap();
    d.ack().await.unwrap();
    assert!(tokio::time::timeout(Duration::from_millis(200), consumer.next()).await.is_err());
}

// ---- a real nats-server (kiln-test-support) ----

trait Connect {
    /// A broker connected to this server.
    fn broker(&self) -> Broker;
}

impl Connect for NatsServer {
    fn broker(&self) -> Broker {
        Broker::connect_nats(&self.url(), Duration::from_secs(5)).unwrap()
    }
}

/// A broker that is not there: a clear error naming it, without its credentials (NATS and Redis).
/// Answers every request on `echo` with its payload, through `host`.
async fn serve_echo(host: &Broker) {
    let mut service = host.subscribe("echo", None).await.unwrap();
    let responder = host.clone();
    tokio::spawn(async move {
        while let Some(m) = service.next().await {
            responder.publish(m.reply_to.as_deref().unwrap(), m.payload.clone(), vec![], None).await.unwrap();
        }
    });
}

/// A header name with `:`, a header value of two lines and a 2 MiB payload are each refused.
async fn bad_publishes_are_refused(broker: &Broker) {
    let bad = broker.publish("x", Bytes::new(), h(&[("bad:name", "v")]), None).await;
    assert!(matches!(bad, Err(MessagingError::Other(_))), "{bad:?}");
    let bad = broker.publish("x", Bytes::new(), h(&[("n", "two\nlines")]), None).await;
    assert!(matches!(bad, Err(MessagingError::Other(_))), "{bad:?}");
    let big = broker.publish("x", vec![0u8; 2 << 20].into(), vec![], None).await;
    assert!(matches!(big, Err(MessagingError::Other(_))), "{big:?}");
}

#[test]
fn connecting_to_nothing_fails_loudly() {
    let port = std::net::TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port();
    type ConnectFn = fn(&str, Duration) -> anyhow::Result<Broker>;
    let connects: [(&str, ConnectFn, &str); 2] = [("nats", Broker::connect_nats, "cannot connect to NATS"), ("redis", Broker::connect_redis, "cannot connect to Redis")];
    for (scheme, connect, says) in connects {
        let err = connect(&format!("{scheme}://user:secret@127.0.0.1:{port}"), Duration::from_millis(500)).err().unwrap().to_string();
        assert!(err.contains(says), "{err}");
        assert!(!err.contains("secret"), "credentials are not shown: {err}");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn nats_publish_subscribe_queue_groups_request_reply() {
    let server = NatsServer::start();
    let broker = server.broker();
    assert_eq!(broker.describe(), server.url());
    let mut star = broker.subscribe("orders.*", None).await.unwrap();
    let mut a = broker.subscribe("jobs.*", Some("workers")).await.unwrap();
    // A second "host": its own connection in the same queue group.
    let other_host = server.broker();
    let mut b = other_host.subscribe("jobs.*", Some("workers")).await.unwrap();
    broker.publish("orders.created", "payload".into(), h(&[("content-type", "text/plain")]), Some("replies.x".into())).await.unwrap();
    let m = recv(&mut star).await.unwrap();
    assert_eq!((m.subject.as_str(), &m.payload[..], m.reply_to.as_deref()), ("orders.created", &b"payload"[..], Some("replies.x")));
    assert_eq!(m.header("content-type"), Some("text/plain"));
    broker.publish("orders.created.eu", Bytes::new(), vec![], None).await.unwrap();
    assert!(nothing(&mut star).await);

    for i in 0..20 {
        broker.publish(&format!("jobs.{i}"), Bytes::new(), vec![], None).await.unwrap();
    }
    let mut got = Vec::new();
    for sub in [&mut a, &mut b] {
        while let Ok(Some(m)) = tokio::time::timeout(Duration::from_millis(300), sub.next()).await {
            got.push(m.subject);
        }
    }
    got.sort();
    got.dedup();
    assert_eq!(got.len(), 20, "each job once across both hosts");

    serve_echo(&other_host).await;
    // Interest registered on one connection reaches the server's routing a moment after it is sent, so
    // a request from another connection right away may still find no responder.
    let mut attempts = 0;
    let reply = loop {
        match broker.request("echo", "ping".into(), vec![], Duration::from_secs(2)).await {
            Err(MessagingError::NoResponders(_)) if attempts < 100 => attempts += 1,
            other => break other.unwrap(),
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    };
    assert_eq!(reply.payload, "ping");
    assert_eq!(broker.request("nobody", Bytes::new(), vec![], Duration::from_secs(2)).await.unwrap_err(), MessagingError::NoResponders("nobody".into()));
    bad_publishes_are_refused(&broker).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn nats_subscription_resumes_after_server_restart() {
    let mut server = NatsServer::start();
    let broker = server.broker();
    let mut sub = broker.subscribe("events.>", Some("g")).await.unwrap();
    broker.publish("events.one", "1".into(), vec![], None).await.unwrap();
    assert_eq!(recv(&mut sub).await.unwrap().payload, "1");
    assert_eq!(broker.health(), Ok(()));
    server.stop();
    // While the server is down, publishing is an error (not a silent success).
    tokio::time::sleep(Duration::from_millis(300)).await;
    assert!(matches!(broker.publish("events.lost", Bytes::new(), vec![], None).await, Err(MessagingError::Connection(_))));
    assert!(broker.health().is_err_and(|why| why.contains("NATS")), "{:?}", broker.health());
    server.restart();
    let deadline = Instant::now() + Duration::from_secs(15);
    loop {
        assert!(Instant::now() < deadline, "no message after the restart");
        if broker.publish("events.two", "2".into(), vec![], None).await.is_ok()
            && let Ok(Some(m)) = tokio::time::timeout(Duration::from_millis(300), sub.next()).await {
                assert_eq!(m.payload, "2");
                break;
            }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

async fn next_delivery(consumer: &mut DurableConsumer) -> Delivery {
    tokio::time::timeout(Duration::from_secs(10), consumer.next()).await.expect("a delivery within 10 s").unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn jetstream_durable_ack_redelivery_dead_letter() {
    let server = NatsServer::start();
    let broker = server.broker();
    let options = DurableOptions { max_deliver: 3, redelivery_delay: Duration::from_millis(50), ack_wait: Duration::from_secs(2), batch: 8 };
    let mut consumer = broker.durable("orders.*", "orders", options.clone()).await.unwrap();
    let mut dlq = broker.subscribe("kiln.dlq.orders", None).await.unwrap();
    // Published before anyone pulls: kept by the stream Kiln created.
    broker.publish("orders.ok", "fine".into(), vec![], None).await.unwrap();
    let d = next_delivery(&mut consumer).await;
    assert_eq!((d.message.subject.as_str(), &d.message.payload[..], d.attempt), ("orders.ok", &b"fine"[..], 1));
    d.ack().await.unwrap();

    broker.publish("orders.bad", "poison".into(), h(&[("trace", "t1")]), None).await.unwrap();
    for attempt in 1..=3u32 {
        let d = next_delivery(&mut consumer).await;
        assert_eq!((&d.message.payload[..], d.attempt), (&b"poison"[..], attempt));
        d.fail("handler error").await.unwrap();
    }
    let dead = recv(&mut dlq).await.expect("dead letter");
    assert_eq!(dead.payload, "poison");
    assert_eq!(dead.header("trace"), Some("t1"));
    assert_eq!(dead.header(DLQ_SUBJECT_HEADER), Some("orders.bad"));
    assert_eq!(dead.header(DLQ_DELIVERIES_HEADER), Some("3"));
    assert!(tokio::time::timeout(Duration::from_millis(500), consumer.next()).await.is_err(), "nothing left after ack and dead letter");

    // Unsettled (host died mid-handler): redelivered to the next consumer with the same durable name.
    broker.publish("orders.crash", "c".into(), vec![], None).await.unwrap();
    let d = next_delivery(&mut consumer).await;
    assert_eq!(d.message.subject, "orders.crash");
    drop(d);
    drop(consumer);
    let mut again = broker.durable("orders.*", "orders", options).await.unwrap();
    let d = tokio::time::timeout(Duration::from_secs(10), again.next()).await.unwrap().unwrap();
    assert_eq!((d.message.subject.as_str(), d.attempt), ("orders.crash", 2));
    d.ack().await.unwrap();
}

/// Durable consumer `shop` of `shop.orders.*` on two hosts (`here`, `there`): 10 messages are each
/// delivered once across them. Returns both consumers.
async fn two_hosts_share_a_durable(here: &Broker, there: &Broker, options: DurableOptions) -> (DurableConsumer, DurableConsumer) {
    let mut a = here.durable("shop.orders.*", "shop", options.clone()).await.unwrap();
    let mut b = there.durable("shop.orders.*", "shop", options).await.unwrap();
    for i in 0..10 {
        here.publish(&format!("shop.orders.{i}"), Bytes::new(), vec![], None).await.unwrap();
    }
    let mut seen = Vec::new();
    let deadline = Instant::now() + Duration::from_secs(10);
    while seen.len() < 10 && Instant::now() < deadline {
        tokio::select! {
            Some(d) = a.next() => { seen.push(d.message.subject.clone()); d.ack().await.unwrap(); }
            Some(d) = b.next() => { seen.push(d.message.subject.clone()); d.ack().await.unwrap(); }
            _ = tokio::time::sleep(Duration::from_millis(200)) => {}
        }
    }
    seen.sort();
    let before = seen.len();
    seen.dedup();
    assert_eq!((before, seen.len()), (10, 10), "each message once: {seen:?}");
    (a, b)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn jetstream_uses_an_existing_stream_and_shares_between_consumers() {
    let server = NatsServer::start();
    let broker = server.broker();
    // A stream the operator made, covering more than the trigger's subject.
    let client = async_nats::connect(server.url()).await.unwrap();
    let js = async_nats::jetstream::new(client);
    js.create_stream(async_nats::jetstream::stream::Config { name: "ALL".into(), subjects: vec!["shop.>".into()], ..Default::default() }).await.unwrap();
    let options = DurableOptions { redelivery_delay: Duration::from_millis(20), ..Default::default() };
    let _hosts = two_hosts_share_a_durable(&broker, &server.broker(), options).await;
    assert!(js.get_stream("KILN_SHOP").await.is_err(), "no stream of its own when one covers the subject");
    // A stream that overlaps but does not cover is an error that says so.
    let err = broker.durable("*.orders.*", "wide", DurableOptions::default()).await;
    assert!(err.is_err());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn jetstream_consumer_resumes_after_server_restart_without_losing_messages() {
    let mut server = NatsServer::start();
    let broker = server.broker();
    let options = DurableOptions { redelivery_delay: Duration::from_millis(20), ..Default::default() };
    let mut consumer = broker.durable("pay.*", "pay", options).await.unwrap();
    broker.publish("pay.1", "1".into(), vec![], None).await.unwrap();
    let d = next_delivery(&mut consumer).await;
    d.ack().await.unwrap();
    server.stop();
    tokio::time::sleep(Duration::from_millis(300)).await;
    server.restart();
    // Publish through a fresh connection as soon as the server is back: JetStream persists it.
    let client = async_nats::connect(server.url()).await.unwrap();
    let js = async_nats::jetstream::new(client);
    for i in 2..=4 {
        js.publish(format!("pay.{i}"), format!("{i}").into()).await.unwrap().await.unwrap();
    }
    let mut got = Vec::new();
    let deadline = Instant::now() + Duration::from_secs(30);
    while got.len() < 3 {
        assert!(Instant::now() < deadline, "only {got:?} after the restart");
        if let Ok(Some(d)) = tokio::time::timeout(Duration::from_secs(1), consumer.next()).await {
            got.push(String::from_utf8_lossy(&d.message.payload).to_string());
            d.ack().await.unwrap();
        }
    }
    got.sort();
    assert_eq!(got, ["2", "3", "4"], "no acked message again, none lost");
}

// ---- a real redis-server (kiln-test-support) ----

impl Connect for kiln_test_support::RedisServer {
    fn broker(&self) -> Broker {
        Broker::connect_redis(&self.url(), Duration::from_secs(5)).unwrap()
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn redis_publish_subscribe_queue_groups_request_reply() {
    let server = kiln_test_support::RedisServer::start();
    let broker = server.broker();
    assert_eq!(broker.describe(), server.url());
    let mut star = broker.subscribe("orders.*", None).await.unwrap();
    let mut exact = broker.subscribe("orders.created", None).await.unwrap();
    let mut a = broker.subscribe("jobs.*", Some("workers")).await.unwrap();
    // A second "host": its own connections in the same queue group.
    let other_host = server.broker();
    let mut b = other_host.subscribe("jobs.*", Some("workers")).await.unwrap();
    broker.publish("orders.created", "payload".into(), h(&[("content-type", "text/plain")]), Some("replies.x".into())).await.unwrap();
    let m = recv(&mut star).await.unwrap();
    assert_eq!((m.subject.as_str(), &m.payload[..], m.reply_to.as_deref()), ("orders.created", &b"payload"[..], Some("replies.x")));
    assert_eq!(m.header("content-type"), Some("text/plain"));
    assert_eq!(recv(&mut exact).await.unwrap().payload, "payload");
    // `*` is one token, though Redis's glob spans dots.
    broker.publish("orders.created.eu", Bytes::new(), vec![], None).await.unwrap();
    assert!(nothing(&mut star).await);
    // Another Redis client's bare PUBLISH reaches a Kiln subscriber as its payload.
    server.command(&["PUBLISH", "orders.external", "from redis-cli"]).unwrap();
    let m = recv(&mut star).await.unwrap();
    assert_eq!((m.subject.as_str(), &m.payload[..], m.headers.len()), ("orders.external", &b"from redis-cli"[..], 0));

    for i in 0..20 {
        broker.publish(&format!("jobs.{i}"), Bytes::from(i.to_string()), vec![], None).await.unwrap();
    }
    let mut got = Vec::new();
    let (mut from_a, mut from_b) = (0, 0);
    let deadline = Instant::now() + Duration::from_secs(10);
    while got.len() < 20 && Instant::now() < deadline {
        tokio::select! {
            Some(m) = a.next() => { got.push(m.subject); from_a += 1; }
            Some(m) = b.next() => { got.push(m.subject); from_b += 1; }
            _ = tokio::time::sleep(Duration::from_millis(300)) => {}
        }
    }
    assert!(nothing(&mut a).await && nothing(&mut b).await, "no job twice");
    got.sort();
    got.dedup();
    assert_eq!(got.len(), 20, "each job once across both hosts");
    assert!(from_a > 0 && from_b > 0, "both hosts took jobs: {from_a} and {from_b}");

    serve_echo(&other_host).await;
    let reply = broker.request("echo", "ping".into(), vec![], Duration::from_secs(2)).await.unwrap();
    assert_eq!(reply.payload, "ping");
    assert_eq!(broker.request("nobody", Bytes::new(), vec![], Duration::from_secs(2)).await.unwrap_err(), MessagingError::NoResponders("nobody".into()));
    bad_publishes_are_refused(&broker).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn redis_subscription_resumes_after_server_restart() {
    let mut server = kiln_test_support::RedisServer::start();
    let broker = server.broker();
    let mut sub = broker.subscribe("events.>", None).await.unwrap();
    broker.publish("events.one", "1".into(), vec![], None).await.unwrap();
    assert_eq!(recv(&mut sub).await.unwrap().payload, "1");
    assert_eq!(broker.health(), Ok(()));
    server.stop();
    // While the server is down, publishing is an error (not a silent success), and the broker says
    // it is unhealthy (the trigger's state, `kiln_trigger_up`).
    assert!(matches!(broker.publish("events.lost", Bytes::new(), vec![], None).await, Err(MessagingError::Connection(_))));
    assert!(broker.health().is_err_and(|why| why.contains("Redis")), "{:?}", broker.health());
    server.restart();
    let deadline = Instant::now() + Duration::from_secs(20);
    loop {
        assert!(Instant::now() < deadline, "no message after the restart");
        if broker.publish("events.two", "2".into(), vec![], None).await.is_ok()
            && let Ok(Some(m)) = tokio::time::timeout(Duration::from_millis(300), sub.next()).await
        {
            assert_eq!(m.payload, "2");
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    assert_eq!(broker.health(), Ok(()), "healthy again");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn redis_durable_ack_redelivery_dead_letter_and_takeover() {
    let server = kiln_test_support::RedisServer::start();
    let broker = server.broker();
    let options = DurableOptions { max_deliver: 3, redelivery_delay: Duration::from_millis(50), ack_wait: Duration::from_secs(2), batch: 8 };
    let mut consumer = broker.durable("orders.*", "orders", options.clone()).await.unwrap();
    let mut dlq = broker.subscribe("kiln.dlq.orders", None).await.unwrap();
    // Published before anyone reads: kept by the stream.
    broker.publish("orders.ok", "fine".into(), vec![], None).await.unwrap();
    broker.publish("elsewhere.ok", "not for it".into(), vec![], None).await.unwrap();
    let d = next_delivery(&mut consumer).await;
    assert_eq!((d.message.subject.as_str(), &d.message.payload[..], d.attempt), ("orders.ok", &b"fine"[..], 1));
    d.ack().await.unwrap();
    assert_eq!(server.command(&["XLEN", "kiln:msg:durable:orders"]).unwrap(), ":0\r\n", "a settled message leaves the stream");

    broker.publish("orders.bad", "poison".into(), h(&[("trace", "t1")]), None).await.unwrap();
    for attempt in 1..=3u32 {
        let d = next_delivery(&mut consumer).await;
        assert_eq!((&d.message.payload[..], d.attempt, d.message.header("trace")), (&b"poison"[..], attempt, Some("t1")));
        d.fail("handler error").await.unwrap();
    }
    let dead = recv(&mut dlq).await.expect("dead letter");
    assert_eq!(dead.payload, "poison");
    assert_eq!(dead.header("trace"), Some("t1"));
    assert_eq!(dead.header(DLQ_SUBJECT_HEADER), Some("orders.bad"));
    assert_eq!(dead.header(DLQ_DELIVERIES_HEADER), Some("3"));
    assert!(tokio::time::timeout(Duration::from_millis(500), consumer.next()).await.is_err(), "nothing left after ack and dead letter");

    // Another program's XADD with `subject` and `payload` is a delivery too.
    server.command(&["XADD", "kiln:msg:durable:orders", "*", "subject", "orders.imported", "payload", "from elsewhere"]).unwrap();
    let d = next_delivery(&mut consumer).await;
    assert_eq!((d.message.subject.as_str(), &d.message.payload[..]), ("orders.imported", &b"from elsewhere"[..]));
    d.ack().await.unwrap();

    // Unsettled (its host died mid-handler): another consumer of the same durable takes it over
    // after `ack_wait`, as its second delivery.
    broker.publish("orders.crash", "c".into(), vec![], None).await.unwrap();
    let d = next_delivery(&mut consumer).await;
    assert_eq!(d.message.subject, "orders.crash");
    drop(d);
    drop(consumer);
    let other_host = server.broker();
    let mut again = other_host.durable("orders.*", "orders", options).await.unwrap();
    let d = next_delivery(&mut again).await;
    assert_eq!((d.message.subject.as_str(), d.attempt), ("orders.crash", 2));
    d.ack().await.unwrap();
    assert!(tokio::time::timeout(Duration::from_secs(3), again.next()).await.is_err(), "settled once, delivered no more");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn redis_durable_shares_between_hosts_and_survives_a_server_kill() {
    let mut server = kiln_test_support::RedisServer::start_persistent();
    let broker = server.broker();
    let options = DurableOptions { redelivery_delay: Duration::from_millis(20), ack_wait: Duration::from_secs(2), ..Default::default() };
    let (mut a, b) = two_hosts_share_a_durable(&broker, &server.broker(), options).await;
    drop(b);

    // Published (acknowledged by Redis) while nobody reads, then Redis is killed: kept.
    for i in 10..15 {
        broker.publish(&format!("shop.orders.{i}"), Bytes::from(i.to_string()), vec![], None).await.unwrap();
    }
    server.stop();
    server.restart();
    let mut got = Vec::new();
    let deadline = Instant::now() + Duration::from_secs(30);
    while got.len() < 5 {
        assert!(Instant::now() < deadline, "only {got:?} after the restart");
        if let Ok(Some(d)) = tokio::time::timeout(Duration::from_secs(1), a.next()).await {
            got.push(String::from_utf8_lossy(&d.message.payload).to_string());
            d.ack().await.unwrap();
        }
    }
    got.sort();
    assert_eq!(got, ["10", "11", "12", "13", "14"], "no acked message again, none lost");
    assert!(tokio::time::timeout(Duration::from_secs(3), a.next()).await.is_err(), "nothing more");
}
