use super::*;
use kiln_app::LoadOptions;
use kiln_engine::{Engine, EngineConfig};
use kiln_manifest::Manifest;
use kiln_test_support::RedisServer;
use std::io::Write;
use std::path::Path;
use std::sync::{Mutex, OnceLock};
use std::time::Instant;

// ---------------------------------------------------------------------------------------------
// Test support: a real redis-server, a guest built from WAT + the WIT in wit/, captured logs.

/// A real `redis-server` (kiln-test-support), with what these tests do with it.
trait RedisChecks {
    /// Starts the server again, on the same port, after `stop`.
    fn spawn(&mut self);
    fn connection(&self) -> redis::Connection;
    /// Waits until `channel` has `n` subscribers.
    fn wait_subscribers(&self, channel: &str, n: i64);
    fn publish(&self, channel: &str, payload: &[u8]) -> i64;
}

impl RedisChecks for RedisServer {
    fn spawn(&mut self) {
        self.restart();
    }

    fn connection(&self) -> redis::Connection {
        redis::Client::open(self.url()).unwrap().get_connection().unwrap()
    }

    fn wait_subscribers(&self, channel: &str, n: i64) {
        let deadline = Instant::now() + Duration::from_secs(20);
        loop {
            let count = self.connection().and_then_numsub(channel);
            if count == n {
                return;
            }
            assert!(Instant::now() < deadline, "channel `{channel}` has {count} subscribers, expected {n}");
            std::thread::sleep(Duration::from_millis(20));
        }
    }

    fn publish(&self, channel: &str, payload: &[u8]) -> i64 {
        redis::cmd("PUBLISH").arg(channel).arg(payload).query(&mut self.connection()).unwrap()
    }
}

trait NumSub {
    fn and_then_numsub(self, channel: &str) -> i64;
}

impl NumSub for redis::Connection {
    fn and_then_numsub(mut self, channel: &str) -> i64 {
        let (_, count): (String, i64) = redis::cmd("PUBSUB").arg("NUMSUB").arg(channel).query(&mut self).unwrap();
        count
    }
}

/// A component exporting `fermyon:spin/inbound-redis`. The payload's first byte picks what it does:
/// `f` returns `Err(error)`, `t` traps, `l` loops forever, `m` grows memory to 256 MiB; anything
/// else returns `Ok`.
fn redis_guest() -> Vec<u8> {
    let wat = r#"
      (module
        (memory (export "memory") 1)
        (global $bump (mut i32) (i32.const 1024))
        (data (i32.const 16) "\00\00")
        (data (i32.const 32) "\01\01")
        (func (export "cabi_realloc") (param i32 i32 i32 i32) (result i32)
          (local $p i32)
          (local.set $p (global.get $bump))
          (global.set $bump (i32.add (global.get $bump) (local.get 3)))
          (local.get $p))
        (func (export "fermyon:spin/inbound-redis#handle-message") (param $ptr i32) (param $len i32) (result i32)
          (local $b i32)
          (if (i32.eqz (local.get $len)) (then (return (i32.const 16))))
          (local.set $b (i32.load8_u (local.get $ptr)))
          (if (i32.eq (local.get $b) (i32.const 102)) (then (return (i32.const 32))))
          (if (i32.eq (local.get $b) (i32.const 116)) (then unreachable))
          (if (i32.eq (local.get $b) (i32.const 108)) (then (loop $forever (br $forever))))
          (if (i32.eq (local.get $b) (i32.const 109))
            (then (if (i32.eq (memory.grow (i32.const 4096)) (i32.const -1)) (then unreachable))))
          (i32.const 16))
      )"#;
    componentize(wat, "spin@unversioned", "redis-trigger")
}

/// A component that exports nothing a trigger can call.
fn empty_guest() -> Vec<u8> {
    wat::parse_str("(component)").unwrap()
}

fn componentize(wat: &str, wit_dir: &str, world: &str) -> Vec<u8> {
    let mut module = wat::parse_str(wat).unwrap();
    let mut resolve = wit_parser::Resolve::default();
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../wit").join(wit_dir);
    let (package, _) = resolve.push_dir(&dir).unwrap();
    let world = resolve.select_world(&[package], Some(world)).unwrap();
    wit_component::embed_component_metadata(&mut module, &resolve, world, wit_component::StringEncoding::UTF8).unwrap();
    wit_component::ComponentEncoder::default().module(&module).unwrap().validate(true).encode().unwrap()
}

/// Loads an app from manifest text and component files, with no capabilities and no cache.
fn load_app(manifest: &str, components: &[(&str, Vec<u8>)], env: Vec<(String, String)>) -> (tempfile::TempDir, anyhow::Result<App>) {
    let dir = tempfile::tempdir().unwrap();
    for (name, bytes) in components {
        std::fs::write(dir.path().join(format!("{name}.wasm")), bytes).unwrap();
    }
    let path = dir.path().join("spin.toml");
    std::fs::write(&path, manifest).unwrap();
    let manifest = match Manifest::load(&path) {
        Ok(manifest) => manifest,
        Err(err) => return (dir, Err(err.into())),
    };
    let config = EngineConfig { cache_dir: None, max_instances: 50, ..EngineConfig::default() };
    let engine = Engine::new(config, &[]).unwrap();
    let mut options = LoadOptions::for_manifest(&manifest, env, &[]);
    options.state_dir = dir.path().join(".kiln");
    let app = App::load(&engine, manifest, options);
    (dir, app)
}

/// Every log line of the test process, captured once for all tests (they filter by channel name).
fn logs() -> &'static Mutex<Vec<u8>> {
    static LOGS: OnceLock<&'static Mutex<Vec<u8>>> = OnceLock::new();
    LOGS.get_or_init(|| {
        let buffer: &'static Mutex<Vec<u8>> = Box::leak(Box::new(Mutex::new(Vec::new())));
        let subscriber = tracing_subscriber::fmt()
            .with_ansi(false)
            .with_max_level(tracing::Level::INFO)
            .with_writer(move || LogWriter(buffer))
            .finish();
        let _ = tracing::subscriber::set_global_default(subscriber);
        buffer
    })
}

struct LogWriter(&'static Mutex<Vec<u8>>);

impl Write for LogWriter {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        self.0.lock().unwrap().extend_from_slice(buf);
        std::io::stderr().write_all(buf)?;
        Ok(buf.len())
    }
    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

fn log_lines(needle: &str) -> Vec<String> {
    let text = String::from_utf8_lossy(&logs().lock().unwrap()).to_string();
    text.lines().filter(|l| l.contains(needle)).map(str::to_string).collect()
}

fn wait_for_log(needle: &str, count: usize, timeout: Duration) -> Vec<String> {
    let deadline = Instant::now() + timeout;
    loop {
        let lines = log_lines(needle);
        if lines.len() >= count {
            return lines;
        }
        assert!(Instant::now() < deadline, "expected {count} log lines containing {needle:?}, got {lines:#?}");
        std::thread::sleep(Duration::from_millis(20));
    }
}

fn manifest(app_address: Option<&str>, triggers: &str, extra: &str) -> String {
    let app_trigger = app_address.map(|a| format!("[application.trigger.redis]\naddress = \"{a}\"\n")).unwrap_or_default();
    format!(
        "spin_manifest_version = 2\n[application]\nname = \"t\"\n{app_trigger}\n{extra}\n{triggers}\n[component.handler]\nsource = \"handler.wasm\"\n"
    )
}

/// What `kiln up` would set for the trigger.
#[derive(Clone, Copy)]
struct Options {
    deadline: Duration,
    memory_limit: usize,
    max_concurrency: usize,
    grace: Duration,
}

fn options() -> Options {
    Options { deadline: Duration::from_millis(1500), memory_limit: 16 << 20, max_concurrency: 10, grace: Duration::from_secs(5) }
}

fn start(app: App, options: Options) -> Result<kiln_test_support::StartedTrigger> {
    kiln_test_support::StartedTrigger::start(&RedisTrigger, Arc::new(app), options.deadline, options.memory_limit, options.max_concurrency, options.grace)
}

// ---------------------------------------------------------------------------------------------
// Pure logic.

fn resolver(manifest_text: &str, env: Vec<(String, String)>) -> (Manifest, Resolver) {
    let manifest = Manifest::parse(manifest_text, Path::new("/app/spin.toml")).unwrap();
    let resolver = Resolver::new(&manifest, vec![Box::new(kiln_variables::EnvProvider::new(env))]).unwrap();
    (manifest, resolver)
}

use kiln_variables::Resolver;

#[test]
fn templates_render_against_application_variables() {
    let text = manifest(
        Some("redis://{{ host }}:{{port}}"),
        "[[trigger.redis]]\nchannel = \"{{ prefix }}-orders\"\ncomponent = \"handler\"\n\n[[trigger.redis]]\nchannel = \"plain\"\naddress = \"redis://other:6380\"\ncomponent = \"handler\"\n\n[[trigger.redis]]\nchannel = \"{{ prefix }}-orders\"\ncomponent = \"handler\"\n",
        "[variables]\nhost = { default = \"db.local\" }\nport = { required = true }\nprefix = { default = \"app\" }\n",
    );
    let (manifest, resolver) = resolver(&text, vec![("KILN_VARIABLE_PORT".into(), "7000".into()), ("SPIN_VARIABLE_PREFIX".into(), "env".into())]);
    let servers = plan(&manifest, &resolver).unwrap();
    assert_eq!(servers.len(), 2);
    assert_eq!(servers[0].address, "redis://db.local:7000");
    // The same channel twice for one component: one subscription, one handler per message.
    assert_eq!(servers[0].channels.iter().collect::<Vec<_>>(), vec![(&"env-orders".to_string(), &vec!["handler".to_string()])]);
    assert_eq!(servers[1].address, "redis://other:6380");
    assert_eq!(servers[1].channels.keys().collect::<Vec<_>>(), vec!["plain"]);
}

#[test]
fn address_problems_are_located_errors() {
    let trigger = "[[trigger.redis]]\nchannel = \"c\"\ncomponent = \"handler\"\n";
    let (m, r) = resolver(&manifest(None, trigger, ""), vec![]);
    let err = format!("{:?}", plan(&m, &r).unwrap_err());
    assert!(err.contains("has no Redis address") && err.contains("spin.toml:"), "{err}");

    let (m, r) = resolver(&manifest(Some("redis://{{ missing }}"), trigger, ""), vec![]);
    let err = format!("{:?}", plan(&m, &r).unwrap_err());
    assert!(err.contains("cannot resolve the Redis address") && err.contains("missing"), "{err}");

    let (m, r) = resolver(&manifest(Some("http://:secret@example.com"), trigger, ""), vec![]);
    let err = format!("{:?}", plan(&m, &r).unwrap_err());
    assert!(err.contains("is not valid") && !err.contains("secret"), "{err}");
}

#[test]
fn secrets_are_redacted_from_addresses() {
    assert_eq!(redact("redis://:hunter2@db:6379/0"), "redis://db:6379/0");
    assert_eq!(redact("rediss://user:pw@db:6380"), "rediss://db:6380");
    assert_eq!(redact("redis://db:6379?password=pw"), "redis://db:6379");
    assert_eq!(redact("redis+unix:///run/redis.sock?pass=pw"), "redis+unix:///run/redis.sock");
    assert_eq!(redact("not an address"), "<redis address>");
}

// ---------------------------------------------------------------------------------------------
// Against a real redis-server.

#[test]
fn components_without_the_export_are_refused_at_start() {
    let text = manifest(Some("redis://127.0.0.1:1"), "[[trigger.redis]]\nchannel = \"c\"\ncomponent = \"handler\"\n", "");
    let (_dir, app) = load_app(&text, &[("handler", empty_guest())], vec![]);
    let Err(err) = start(app.unwrap(), options()) else { panic!("start must fail") };
    let err = format!("{err:?}");
    assert!(err.contains("component `handler` is bound to a Redis trigger but exports neither `fermyon:spin/inbound-redis` nor `spin:redis/inbound-redis@3.0.0`"), "{err}");
}

#[test]
fn no_redis_triggers_start_nothing() {
    let text = "spin_manifest_version = 2\n[application]\nname = \"t\"\n";
    let (_dir, app) = load_app(text, &[], vec![]);
    assert!(!RedisTrigger.is_used_by(&app.unwrap().manifest));
}

#[test]
fn messages_run_the_component_and_failures_are_logged() {
    logs();
    let redis = RedisServer::start();
    let text = manifest(
        Some("{{ url }}"),
        "[[trigger.redis]]\nchannel = \"msgs-a\"\ncomponent = \"handler\"\n",
        &format!("[variables]\nurl = {{ default = \"{}\" }}\n", redis.url()),
    );
    let (_dir, app) = load_app(&text, &[("handler", redis_guest())], vec![]);
    let running = start(app.unwrap(), options()).unwrap();
    assert_eq!(running.running.describe(), vec![format!("handler: redis channel `msgs-a` on {}", redis.url())]);
    redis.wait_subscribers("msgs-a", 1);

    assert_eq!(redis.publish("msgs-a", b"hello"), 1);
    wait_for_log("redis msgs-a 5B [handler] ok", 1, Duration::from_secs(10));
    redis.publish("msgs-a", b"fail");
    wait_for_log("[handler] redis channel `msgs-a`: the handler returned an error", 1, Duration::from_secs(10));
    redis.publish("msgs-a", b"trap");
    wait_for_log("[handler] redis channel `msgs-a`: the component trapped", 1, Duration::from_secs(10));
    redis.publish("msgs-a", b"memory");
    wait_for_log("[handler] redis channel `msgs-a`: the component exceeded its memory limit of 16 MiB", 1, Duration::from_secs(10));
    let started = Instant::now();
    redis.publish("msgs-a", b"loop");
    wait_for_log("[handler] redis channel `msgs-a`: the component ran past its deadline of 1500ms", 1, Duration::from_secs(10));
    assert!(started.elapsed() < Duration::from_secs(5));
    // Still serving after every kind of failure.
    redis.publish("msgs-a", b"again!");
    wait_for_log("redis msgs-a 6B [handler] ok", 1, Duration::from_secs(10));

    running.shutdown();
    // Unsubscribed on shutdown.
    redis.wait_subscribers("msgs-a", 0);
}

#[test]
fn messages_are_handled_concurrently_up_to_the_limit() {
    logs();
    let redis = RedisServer::start();
    let text = manifest(Some(&redis.url()), "[[trigger.redis]]\nchannel = \"msgs-c\"\ncomponent = \"handler\"\n", "");
    let (_dir, app) = load_app(&text, &[("handler", redis_guest())], vec![]);
    let running = start(app.unwrap(), Options { max_concurrency: 4, ..options() }).unwrap();
    redis.wait_subscribers("msgs-c", 1);
    let started = Instant::now();
    for _ in 0..4 {
        redis.publish("msgs-c", b"loop");
    }
    let lines = wait_for_log("redis channel `msgs-c`: the component ran past its deadline", 4, Duration::from_secs(10));
    assert_eq!(lines.len(), 4);
    // Four endless handlers at once: all cut off after one deadline, not four in a row.
    assert!(started.elapsed() < Duration::from_secs(4), "{:?}", started.elapsed());
    running.shutdown();
}

#[test]
fn redis_restart_resubscribes_and_logs_the_gap() {
    logs();
    let mut redis = RedisServer::start();
    let text = manifest(Some(&redis.url()), "[[trigger.redis]]\nchannel = \"msgs-r\"\ncomponent = \"handler\"\n", "");
    let (_dir, app) = load_app(&text, &[("handler", redis_guest())], vec![]);
    let running = start(app.unwrap(), options()).unwrap();
    redis.wait_subscribers("msgs-r", 1);
    redis.publish("msgs-r", b"before");
    wait_for_log("redis msgs-r 6B [handler] ok", 1, Duration::from_secs(10));

    let shown = redis.url();
    redis.stop();
    wait_for_log(&format!("redis {shown}: connection lost"), 1, Duration::from_secs(20));
    std::thread::sleep(Duration::from_millis(500));
    redis.spawn();
    redis.wait_subscribers("msgs-r", 1);
    wait_for_log(&format!("redis {shown}: resubscribed to `msgs-r`; messages published during the"), 1, Duration::from_secs(10));
    redis.publish("msgs-r", b"after!!");
    wait_for_log("redis msgs-r 7B [handler] ok", 1, Duration::from_secs(10));
    running.shutdown();
}

#[test]
fn redis_down_at_start_is_retried() {
    logs();
    // A port with nothing listening yet.
    let mut redis = RedisServer::start();
    redis.stop();
    let text = manifest(Some(&redis.url()), "[[trigger.redis]]\nchannel = \"msgs-d\"\ncomponent = \"handler\"\n", "");
    let (_dir, app) = load_app(&text, &[("handler", redis_guest())], vec![]);
    let running = start(app.unwrap(), options()).unwrap();
    wait_for_log(&format!("redis {}: cannot subscribe", redis.url()), 1, Duration::from_secs(10));
    redis.spawn();
    redis.wait_subscribers("msgs-d", 1);
    wait_for_log(&format!("redis {}: subscribed to `msgs-d`", redis.url()), 1, Duration::from_secs(10));
    redis.publish("msgs-d", b"ok!!");
    wait_for_log("redis msgs-d 4B [handler] ok", 1, Duration::from_secs(10));
    running.shutdown();
}

#[test]
fn shutdown_lets_in_flight_handlers_finish_up_to_the_grace() {
    logs();
    let redis = RedisServer::start();
    let text = manifest(Some(&redis.url()), "[[trigger.redis]]\nchannel = \"msgs-s\"\ncomponent = \"handler\"\n", "");
    let (_dir, app) = load_app(&text, &[("handler", redis_guest())], vec![]);
    // The handler loops until its 1.5 s deadline; a 5 s grace lets it reach that end.
    let running = start(app.unwrap(), options()).unwrap();
    redis.wait_subscribers("msgs-s", 1);
    redis.publish("msgs-s", b"loop");
    std::thread::sleep(Duration::from_millis(300));
    let started = Instant::now();
    running.shutdown();
    assert!(started.elapsed() >= Duration::from_millis(800), "shutdown returned before the handler ended: {:?}", started.elapsed());
    assert_eq!(log_lines("redis channel `msgs-s`: the component ran past its deadline").len(), 1);

    // A grace shorter than the handler: shutdown returns at the grace.
    let (_dir2, app) = load_app(&text, &[("handler", redis_guest())], vec![]);
    let running = start(app.unwrap(), Options { deadline: Duration::from_secs(30), grace: Duration::from_millis(300), ..options() }).unwrap();
    redis.wait_subscribers("msgs-s", 1);
    redis.publish("msgs-s", b"loop");
    std::thread::sleep(Duration::from_millis(300));
    let started = Instant::now();
    running.shutdown();
    assert!(started.elapsed() < Duration::from_secs(3), "{:?}", started.elapsed());
}
