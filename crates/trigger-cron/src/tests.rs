use super::*;
use chrono::TimeZone;
use kiln_app::LoadOptions;
use kiln_engine::{Engine, EngineConfig};
use std::io::Write;
use std::path::Path;
use std::sync::{Mutex, OnceLock};

fn utc(y: i32, mo: u32, d: u32, h: u32, mi: u32, s: u32) -> DateTime<Utc> {
    Utc.with_ymd_and_hms(y, mo, d, h, mi, s).unwrap()
}

fn cron(expression: &str) -> Plan {
    Plan::Cron { expression: expression.into(), cron: Box::new(parse_cron(expression).unwrap()) }
}

// ---------------------------------------------------------------------------------------------
// Schedules.

#[test]
fn six_field_expressions_have_seconds_first() {
    let plan = cron("*/15 * * * * *");
    assert_eq!(plan.next_after(utc(2026, 1, 1, 0, 0, 0)), Some(utc(2026, 1, 1, 0, 0, 15)));
    assert_eq!(plan.next_after(utc(2026, 1, 1, 0, 0, 14)), Some(utc(2026, 1, 1, 0, 0, 15)));
    assert_eq!(plan.next_after(utc(2026, 1, 1, 0, 0, 59)), Some(utc(2026, 1, 1, 0, 1, 0)));
    // The plugin README's example: second 0 of every 2nd minute from 1, 11:xx and 12:xx, days 5–10.
    let plan = cron("0 1/2 11,12 5-10 * * *");
    assert_eq!(plan.next_after(utc(2026, 3, 1, 0, 0, 0)), Some(utc(2026, 3, 5, 11, 1, 0)));
    assert_eq!(plan.next_after(utc(2026, 3, 5, 11, 1, 0)), Some(utc(2026, 3, 5, 11, 3, 0)));
    assert_eq!(plan.next_after(utc(2026, 3, 5, 12, 59, 0)), Some(utc(2026, 3, 6, 11, 1, 0)));
}

#[test]
fn seven_fields_have_a_year_and_five_fields_run_at_second_zero() {
    let plan = cron("0 0 12 1 1 * 2030");
    assert_eq!(plan.next_after(utc(2026, 6, 1, 0, 0, 0)), Some(utc(2030, 1, 1, 12, 0, 0)));
    assert_eq!(plan.next_after(utc(2030, 1, 1, 12, 0, 0)), None);
    let plan = cron("30 4 * * *");
    assert_eq!(plan.next_after(utc(2026, 6, 1, 5, 0, 0)), Some(utc(2026, 6, 2, 4, 30, 0)));
}

#[test]
fn day_of_month_and_day_of_week_both_apply_and_names_work() {
    // Friday the 13th (the plugin's croner is set to require both).
    let plan = cron("0 0 0 13 * FRI");
    assert_eq!(plan.next_after(utc(2026, 1, 1, 0, 0, 0)), Some(utc(2026, 2, 13, 0, 0, 0)));
    assert_eq!(plan.next_after(utc(2026, 2, 13, 0, 0, 0)), Some(utc(2026, 3, 13, 0, 0, 0)));
    let plan = cron("0 0 9 * JAN MON");
    assert_eq!(plan.next_after(utc(2026, 1, 1, 0, 0, 0)), Some(utc(2026, 1, 5, 9, 0, 0)));
}

#[test]
fn intervals_tick_one_interval_apart() {
    let plan = Plan::Interval(Duration::from_secs(30));
    assert_eq!(plan.next_after(utc(2026, 1, 1, 0, 0, 10)), Some(utc(2026, 1, 1, 0, 0, 40)));
    assert_eq!(plan.to_string(), "every 30s");
    assert_eq!(Plan::Interval(Duration::from_millis(1500)).to_string(), "every 1500ms");
    assert_eq!(cron("* * * * * *").to_string(), "`* * * * * *`");
}

#[test]
fn bad_expressions_are_refused() {
    for bad in ["* * * *", "61 * * * * *", "* * * * * * * *", "0 0 25 * * *", "nonsense here and there too"] {
        assert!(parse_cron(bad).is_err(), "{bad}");
    }
}

fn manifest_text(schedule: &str) -> String {
    format!("spin_manifest_version = 2\n[application]\nname = \"t\"\n\n[[trigger.cron]]\n{schedule}\ncomponent = \"tick\"\n\n[component.tick]\nsource = \"tick.wasm\"\n")
}

#[test]
fn bad_schedules_are_located_in_the_manifest() {
    let manifest = Manifest::parse(manifest_text("cron_expression = \"0 0 25 * * *\""), Path::new("/app/spin.toml")).unwrap();
    let err = format!("{:?}", check_schedules(&manifest).unwrap_err());
    assert!(err.contains("invalid cron expression `0 0 25 * * *`") && err.contains("spin.toml:6:"), "{err}");
    let manifest = Manifest::parse(manifest_text("cron_expression = \"*/5 * * * * *\""), Path::new("/app/spin.toml")).unwrap();
    check_schedules(&manifest).unwrap();
}

#[test]
fn overlapping_ticks_are_skipped() {
    let busy = Arc::new(AtomicBool::new(false));
    assert_eq!(claim(&busy), TickAction::Run);
    let held = Claim(busy.clone());
    assert_eq!(claim(&busy), TickAction::Skip);
    assert_eq!(claim(&busy), TickAction::Skip);
    drop(held);
    assert_eq!(claim(&busy), TickAction::Run);
}

// ---------------------------------------------------------------------------------------------
// Running real components.

/// A component exporting the plugin's `handle-cron-event`. `body` is the function's body: it leaves
/// the address of the result on the stack (16: `Ok`, 32: `Err(other("boom"))`). The timestamp is
/// local 0.
fn cron_guest(body: &str) -> Vec<u8> {
    let wat = format!(
        r#"(module
          (memory (export "memory") 1)
          (data (i32.const 16) "\00")
          (data (i32.const 32) "\01\00\00\00\00\00\00\00\40\00\00\00\04\00\00\00")
          (data (i32.const 64) "boom")
          (func (export "handle-cron-event") (param i64) (result i32) {body}))"#
    );
    let mut module = wat::parse_str(&wat).unwrap();
    let mut resolve = wit_parser::Resolve::default();
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../wit/spin-cron@2.0.0");
    let (package, _) = resolve.push_dir(&dir).unwrap();
    let world = resolve.select_world(&[package], Some("spin-cron")).unwrap();
    wit_component::embed_component_metadata(&mut module, &resolve, world, wit_component::StringEncoding::UTF8).unwrap();
    wit_component::ComponentEncoder::default().module(&module).unwrap().validate(true).encode().unwrap()
}

/// `Ok` when the timestamp is a plausible "now" (2023–2100), else `Err`.
const OK_BODY: &str = "(if (result i32) (i32.and (i64.gt_u (local.get 0) (i64.const 1700000000)) (i64.lt_u (local.get 0) (i64.const 4102444800))) (then (i32.const 16)) (else (i32.const 32)))";
const FAIL_BODY: &str = "(i32.const 32)";
const LOOP_BODY: &str = "(loop $l (br $l)) (i32.const 16)";

fn load_app(schedules: &[(&str, &str)], guests: &[(&str, Vec<u8>)]) -> (tempfile::TempDir, anyhow::Result<App>) {
    let dir = tempfile::tempdir().unwrap();
    let mut text = String::from("spin_manifest_version = 2\n[application]\nname = \"t\"\n");
    for (component, schedule) in schedules {
        text.push_str(&format!("\n[[trigger.cron]]\n{schedule}\ncomponent = \"{component}\"\n"));
    }
    for (name, bytes) in guests {
        std::fs::write(dir.path().join(format!("{name}.wasm")), bytes).unwrap();
        text.push_str(&format!("\n[component.{name}]\nsource = \"{name}.wasm\"\n"));
    }
    let path = dir.path().join("spin.toml");
    std::fs::write(&path, text).unwrap();
    let manifest = Manifest::load(&path).unwrap();
    let config = EngineConfig { cache_dir: None, max_instances: 20, ..EngineConfig::default() };
    let engine = Engine::new(config, &[]).unwrap();
    let mut options = LoadOptions::for_manifest(&manifest, Vec::new(), &[]);
    options.state_dir = dir.path().join(".kiln");
    let app = App::load(&engine, manifest, options);
    (dir, app)
}

fn logs() -> &'static Mutex<Vec<u8>> {
    static LOGS: OnceLock<&'static Mutex<Vec<u8>>> = OnceLock::new();
    LOGS.get_or_init(|| {
        let buffer: &'static Mutex<Vec<u8>> = Box::leak(Box::new(Mutex::new(Vec::new())));
        let subscriber = tracing_subscriber::fmt().with_ansi(false).with_max_level(tracing::Level::INFO).with_writer(move || LogWriter(buffer)).finish();
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

/// What `kiln up` would set for the trigger.
#[derive(Clone, Copy)]
struct Options {
    deadline: Duration,
    memory_limit: usize,
    grace: Duration,
}

fn options() -> Options {
    Options { deadline: Duration::from_millis(2500), memory_limit: 16 << 20, grace: Duration::from_secs(5) }
}

fn start(app: App, options: Options) -> Result<kiln_test_support::StartedTrigger> {
    kiln_test_support::StartedTrigger::start(&CronTrigger, Arc::new(app), options.deadline, options.memory_limit, 100, options.grace)
}

#[test]
fn components_without_the_export_are_refused_at_start() {
    let (_dir, app) = load_app(&[("tick", "interval = \"1s\"")], &[("tick", wat::parse_str("(component)").unwrap())]);
    let Err(err) = start(app.unwrap(), options()) else { panic!("start must fail") };
    let err = format!("{err:?}");
    assert!(err.contains("component `tick` is bound to a cron trigger but does not export `handle-cron-event`"), "{err}");
}

#[test]
fn ticks_run_components_and_overlapping_ticks_are_skipped() {
    logs();
    let (_dir, app) = load_app(
        &[("ok-every-second", "cron_expression = \"* * * * * *\""), ("fails", "interval = \"700ms\""), ("endless", "interval = \"1s\"")],
        &[("ok-every-second", cron_guest(OK_BODY)), ("fails", cron_guest(FAIL_BODY)), ("endless", cron_guest(LOOP_BODY))],
    );
    let running = start(app.unwrap(), options()).unwrap();
    assert_eq!(running.running.describe().len(), 3);
    std::thread::sleep(Duration::from_millis(4600));
    running.shutdown();

    let ok = log_lines("cron `* * * * * *` [ok-every-second] ok");
    assert!((3..=5).contains(&ok.len()), "{ok:#?}");
    let failed = log_lines("[fails] cron every 700ms: the handler returned an error: boom");
    assert!((5..=7).contains(&failed.len()), "{failed:#?}");
    // endless: run 1 from t=1s to its deadline at 3.5s; the ticks at 2s and 3s are skipped; run 2
    // starts at 4s and is still going at shutdown (t≈4.6s), so it is let finish within the grace.
    let cut = log_lines("[endless] cron every 1s: the component ran past its deadline of 2500ms");
    assert_eq!(cut.len(), 2, "{cut:#?}");
    let skipped = log_lines("[endless] cron every 1s: tick at");
    assert_eq!(skipped.len(), 2, "{skipped:#?}");
    assert!(skipped.iter().all(|l| l.contains("skipped, the previous run is still going")), "{skipped:#?}");
}

#[test]
fn shutdown_is_prompt_with_no_run_going_and_bounded_by_the_grace() {
    logs();
    let (_dir, app) = load_app(&[("hourly", "cron_expression = \"0 0 * * * *\"")], &[("hourly", cron_guest(OK_BODY))]);
    let running = start(app.unwrap(), options()).unwrap();
    let started = Instant::now();
    running.shutdown();
    assert!(started.elapsed() < Duration::from_millis(500), "{:?}", started.elapsed());

    let (_dir, app) = load_app(&[("forever", "interval = \"200ms\"")], &[("forever", cron_guest(LOOP_BODY))]);
    let running = start(app.unwrap(), Options { deadline: Duration::from_secs(60), grace: Duration::from_millis(500), ..options() }).unwrap();
    std::thread::sleep(Duration::from_millis(400));
    let started = Instant::now();
    running.shutdown();
    assert!(started.elapsed() < Duration::from_secs(3), "{:?}", started.elapsed());
}
