//! The trigger with a real guest (`guests/msg_sub`, built if missing) on the in-process bus and on a
//! real `nats-server`.

use super::*;
use kiln_app::{Capability, LoadOptions};
use kiln_engine::{Engine, EngineConfig};
use kiln_messaging::{DLQ_DELIVERIES_HEADER, DLQ_REASON_HEADER, DLQ_SUBJECT_HEADER};
use kiln_test_support::NatsServer;
use std::path::PathBuf;
use std::process::Command;

fn guest() -> PathBuf {
    let guests = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../../guests");
    let wasm = guests.join("target/wasm32-wasip2/release/msg_sub.wasm");
    if !wasm.exists() {
        let status = Command::new("cargo")
            .args(["build", "--release", "--target", "wasm32-wasip2", "-p", "msg_sub"])
            .current_dir(&guests)
            .env_remove("CARGO_TARGET_DIR")
            .status()
            .expect("cargo");
        assert!(status.success(), "cannot build guests/msg_sub (rustup target add wasm32-wasip2?)");
    }
    wasm
}

struct TestApp {
    app: Arc<App>,
    broker: Broker,
    _dir: tempfile::TempDir,
}

fn load(triggers: &str, broker: Broker) -> TestApp {
    let dir = tempfile::tempdir().unwrap();
    let text = format!(
        "spin_manifest_version = 2\n[application]\nname = \"t\"\n{triggers}\n[component.sub]\nsource = {:?}\nkey_value_stores = [\"default\"]\n",
        guest().display().to_string()
    );
    let manifest = kiln_manifest::Manifest::parse(text, &dir.path().join("spin.toml")).unwrap();
    let capabilities: Vec<Box<dyn Capability>> = vec![Box::new(kiln_cap_messaging::Messaging::with_broker(broker.clone())), Box::new(kiln_cap_key_value::KeyValue)];
    let links: Vec<_> = capabilities.iter().map(|c| c.link()).collect();
    let config = EngineConfig { pooling: false, max_instances: 50, ..EngineConfig::default() };
    let engine = Engine::new(config, &links).unwrap();
    let mut options = LoadOptions::for_manifest(&manifest, Vec::new(), &capabilities);
    options.state_dir = dir.path().join(".kiln");
    let app = Arc::new(App::load(&engine, manifest, options).unwrap());
    TestApp { app, broker, _dir: dir }
}

/// Starts the app's NATS triggers with a per-instance `deadline`, 3 deliveries and fast redelivery.
fn start(t: &TestApp, deadline: Duration) -> Result<kiln_test_support::StartedTrigger> {
    let trigger = NatsTrigger { redelivery: Redelivery { max_deliver: 3, delay: Duration::from_millis(20) } };
    kiln_test_support::StartedTrigger::start(&trigger, t.app.clone(), deadline, 128 << 20, 100, Duration::from_secs(5))
}

fn runtime() -> tokio::runtime::Runtime {
    tokio::runtime::Builder::new_current_thread().enable_all().build().unwrap()
}

async fn recv(sub: &mut Subscription, within: Duration) -> Option<Message> {
    tokio::time::timeout(within, sub.next()).await.ok().flatten()
}

fn exercise_plain(t: &TestApp) {
    let running = start(t, Duration::from_secs(5)).unwrap();
    assert_eq!(running.running.describe().len(), 1);
    let broker = t.broker.clone();
    runtime().block_on(async {
        // Request/reply through the trigger: msg_sub replies upper-cased via request-reply.reply.
        let reply = broker.request("orders.created", "hello".into(), vec![("content-type".into(), "text/plain".into())], Duration::from_secs(10)).await.unwrap();
        assert_eq!(reply.payload, "HELLO");
        // The guest publishes through producer.send.
        let mut out = broker.subscribe("kiln.out", None).await.unwrap();
        broker.publish("orders.publish", "publish:kiln.out:done".into(), vec![], None).await.unwrap();
        let m = recv(&mut out, Duration::from_secs(10)).await.expect("the guest's publish");
        assert_eq!(m.payload, "done");
        // Not matched by `orders.*`: no instance.
        broker.publish("orders.a.b", "publish:kiln.out:wrong".into(), vec![], None).await.unwrap();
        assert!(recv(&mut out, Duration::from_millis(500)).await.is_none());
    });
    running.shutdown();
}

fn exercise_durable(t: &TestApp) {
    let running = start(t, Duration::from_millis(500)).unwrap();
    let broker = t.broker.clone();
    runtime().block_on(async {
        let mut dlq = broker.subscribe("kiln.dlq.orders", None).await.unwrap();
        let mut out = broker.subscribe("kiln.out", None).await.unwrap();
        broker.publish("orders.x", "fail".into(), vec![], None).await.unwrap();
        let dead = recv(&mut dlq, Duration::from_secs(20)).await.expect("dead letter");
        assert_eq!(dead.payload, "fail");
        assert_eq!(dead.header(DLQ_SUBJECT_HEADER), Some("orders.x"));
        assert_eq!(dead.header(DLQ_DELIVERIES_HEADER), Some("3"));
        assert!(dead.header(DLQ_REASON_HEADER).unwrap().contains("told to fail"), "{dead:?}");
        // The deadline counts as a failure: redelivered, then dead-lettered.
        broker.publish("orders.y", "hang".into(), vec![], None).await.unwrap();
        let dead = recv(&mut dlq, Duration::from_secs(20)).await.expect("dead letter after deadlines");
        assert_eq!(dead.payload, "hang");
        assert!(dead.header(DLQ_REASON_HEADER).unwrap().contains("deadline"), "{dead:?}");
        // Fails once, then succeeds on redelivery: no dead letter, and its publish happens once.
        broker.publish("orders.z", "fail-once:publish".into(), vec![], None).await.unwrap();
        broker.publish("orders.z", "publish:kiln.out:after".into(), vec![], None).await.unwrap();
        assert_eq!(recv(&mut out, Duration::from_secs(10)).await.unwrap().payload, "after");
        assert!(recv(&mut dlq, Duration::from_millis(800)).await.is_none());
        assert!(recv(&mut out, Duration::from_millis(200)).await.is_none(), "acked once, not redelivered");
    });
    running.shutdown();
}

const PLAIN: &str = "[[trigger.nats]]\nsubject = \"orders.*\"\ncomponent = \"sub\"\n";
const DURABLE: &str = "[[trigger.nats]]\nsubject = \"orders.*\"\ncomponent = \"sub\"\ndurable = \"orders\"\n";

#[test]
fn in_process_messages_run_the_component_and_replies_come_back() {
    exercise_plain(&load(PLAIN, Broker::in_process()));
}

#[test]
fn in_process_durable_redelivers_and_dead_letters() {
    exercise_durable(&load(DURABLE, Broker::in_process()));
}

#[test]
fn shutdown_lets_in_flight_handlers_finish() {
    let t = load(PLAIN, Broker::in_process());
    let running = start(&t, Duration::from_secs(5)).unwrap();
    let broker = t.broker.clone();
    let rt = runtime();
    let mut out = rt.block_on(broker.subscribe("kiln.out", None)).unwrap();
    rt.block_on(broker.publish("orders.s", "sleep:700".into(), vec![], None)).unwrap();
    std::thread::sleep(Duration::from_millis(300));
    let started = Instant::now();
    running.shutdown();
    assert!(started.elapsed() >= Duration::from_millis(300), "waited for the sleeping handler");
    // No instance runs after shutdown.
    rt.block_on(broker.publish("orders.p", "publish:kiln.out:late".into(), vec![], None)).unwrap();
    assert!(rt.block_on(recv(&mut out, Duration::from_millis(500))).is_none());
}

#[test]
fn a_component_without_the_export_is_refused() {
    let dir = tempfile::tempdir().unwrap();
    let _ = dir;
    let t = load("[[trigger.nats]]\nsubject = \"a.>.b\"\ncomponent = \"sub\"\n", Broker::in_process());
    let err = start(&t, Duration::from_secs(5)).err().unwrap();
    assert!(format!("{err:#}").contains("`>` may only be the last token"), "{err:#}");
}

/// A real `nats-server` with JetStream (kiln-test-support).
trait Connect {
    /// A broker connected to this server.
    fn broker(&self) -> Broker;
}

impl Connect for NatsServer {
    fn broker(&self) -> Broker {
        Broker::connect_nats(&self.url(), Duration::from_secs(5)).unwrap()
    }
}

#[test]
fn nats_messages_run_the_component_and_replies_come_back() {
    let server = NatsServer::start();
    exercise_plain(&load(PLAIN, server.broker()));
}

#[test]
fn jetstream_durable_redelivers_and_dead_letters() {
    let server = NatsServer::start();
    exercise_durable(&load(DURABLE, server.broker()));
}
