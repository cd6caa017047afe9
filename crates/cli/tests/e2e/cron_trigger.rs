//! The cron trigger (`[[trigger.cron]]`: Spin's cron plugin interface `fermyon:spin-cron@2.0.0`,
//! `cron_expression`, plus `interval`): the `cron_tick` guest counts its runs in the embedded
//! `default` store (read through `spin_kv` on `/kv/...`). Fires on an interval and on a cron
//! expression with the tick's timestamp, never overlaps, logs failures, does not replay missed
//! ticks, and refuses bad expressions and components without the export.

use crate::key_value::App;
use crate::redis_trigger::{kv_get, kv_keys, wait_log_line, wait_until};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

fn manifest(schedule: &str, env: &str) -> String {
    format!(
        r#"spin_manifest_version = 2

[application]
name = "cron-trigger"

[[trigger.cron]]
{schedule}
component = "tick"

[[trigger.http]]
route = "/kv/..."
component = "kv"

[component.tick]
source = "{tick}"
key_value_stores = ["default"]
environment = {{ {env} }}

[component.kv]
source = "{kv}"
key_value_stores = ["default"]
"#,
        tick = kiln_e2e::guest("cron_tick").display(),
        kv = kiln_e2e::guest("spin_kv").display(),
    )
}

fn ticks(app: &App) -> u64 {
    kv_get(app, "ticks").map(|v| v.parse().expect("ticks is a number")).unwrap_or(0)
}

fn now_secs() -> u64 {
    SystemTime::now().duration_since(UNIX_EPOCH).unwrap().as_secs()
}

/// The `ts:<timestamp>` keys the runs left, as numbers, sorted.
fn timestamps(app: &App) -> Vec<u64> {
    let mut ts: Vec<u64> = kv_keys(app).iter().filter_map(|k| k.strip_prefix("ts:")?.parse().ok()).collect();
    ts.sort();
    ts
}

#[test]
fn an_interval_fires_repeatedly_with_the_tick_timestamp() {
    let before = now_secs();
    let app = App::start(&manifest("interval = \"1s\"", ""), None, &[], &[]);
    assert!(wait_until(Duration::from_secs(15), || ticks(&app) >= 3), "ticks: {}\n{}", ticks(&app), app.kiln.log());
    let after = now_secs();
    let ts = timestamps(&app);
    assert!(ts.len() >= 3, "{ts:?}");
    // Timestamps are seconds since the epoch, of this run.
    for t in &ts {
        assert!(*t >= before && *t <= after + 1, "timestamp {t} outside [{before}, {after}]");
    }
    let last: u64 = kv_get(&app, "last_timestamp").unwrap().parse().unwrap();
    assert!(last >= before && last <= after + 1, "{last}");
    assert_eq!(kv_get(&app, "overlaps"), None);
    assert!(app.kiln.log().contains("[tick] cron_tick run at "), "{}", app.kiln.log());
    wait_log_line(&app, &["[tick] ok"], Duration::from_secs(5));
}

#[test]
fn a_cron_expression_fires_on_its_seconds() {
    // Every second (the plugin's 6-field form, seconds first).
    let app = App::start(&manifest("cron_expression = \"*/1 * * * * *\"", ""), None, &[], &[]);
    assert!(wait_until(Duration::from_secs(15), || ticks(&app) >= 3), "ticks: {}\n{}", ticks(&app), app.kiln.log());
    // One run per second at most: every run had a second of its own.
    let runs = ticks(&app);
    let ts = timestamps(&app);
    assert!(ts.len() as u64 >= runs, "{runs} runs, timestamps {ts:?}");
    wait_log_line(&app, &["cron `*/1 * * * * *`", "[tick] ok"], Duration::from_secs(5));
}

#[test]
fn a_classic_five_field_expression_is_accepted() {
    // Every minute at second 0: the app starts (the expression is valid); no need to wait for it.
    let app = App::start(&manifest("cron_expression = \"* * * * *\"", ""), None, &[], &[]);
    assert_eq!(kv_get(&app, "overlaps"), None);
}

#[test]
fn runs_never_overlap_and_skipped_ticks_are_logged() {
    // Each run takes 1.2 s; the interval is 300 ms.
    let app = App::start(&manifest("interval = \"300ms\"", "CRON_TICK_SLEEP_MS = \"1200\""), None, &[], &[]);
    let started = Instant::now();
    assert!(wait_until(Duration::from_secs(20), || ticks(&app) >= 3), "ticks: {}\n{}", ticks(&app), app.kiln.log());
    let elapsed = started.elapsed();
    assert_eq!(kv_get(&app, "overlaps"), None, "runs overlapped:\n{}", app.kiln.log());
    // Sequential runs: 3 of them take at least 3 × 1.2 s.
    assert!(elapsed >= Duration::from_millis(3300), "3 runs in {elapsed:?}");
    wait_log_line(&app, &["[tick] cron", "skipped, the previous run is still going"], Duration::from_secs(5));
    let running = kv_get(&app, "running").unwrap_or_default();
    assert!(running == "0" || running == "1", "running = {running}");
}

#[test]
fn a_failing_run_is_logged_and_the_schedule_goes_on() {
    let app = App::start(&manifest("interval = \"500ms\"", "CRON_TICK_FAIL = \"1\""), None, &[], &[]);
    assert!(wait_until(Duration::from_secs(15), || ticks(&app) >= 2), "{}", app.kiln.log());
    wait_log_line(&app, &["[tick] cron", "cron_tick was told to fail"], Duration::from_secs(5));
}

#[test]
fn missed_ticks_are_not_replayed_after_a_restart() {
    let mut app = App::start(&manifest("interval = \"1s\"", ""), None, &[], &[]);
    assert!(wait_until(Duration::from_secs(15), || ticks(&app) >= 1), "{}", app.kiln.log());
    app.kill9();
    std::thread::sleep(Duration::from_secs(4));
    let before = {
        app.restart();
        ticks(&app)
    };
    // Right after the restart no burst of catch-up runs: at most the ones due since.
    std::thread::sleep(Duration::from_millis(1600));
    let after = ticks(&app);
    assert!(after - before <= 2, "{before} → {after} ticks in 1.6 s after a restart:\n{}", app.kiln.log());
}

#[test]
fn a_bad_expression_fails_at_start() {
    let manifest = manifest("cron_expression = \"61 * * * * *\"", "");
    let dir = kiln_e2e::kiln::app_dir(&manifest, &[]);
    let (status, output) = kiln_e2e::kiln::run_to_exit(
        &crate::kiln_bin(),
        &["up", "-f", &dir.path().join("kiln.toml").display().to_string(), "--listen", &kiln_e2e::kiln::free_addr().to_string()],
        Duration::from_secs(120),
    );
    assert!(!status.success(), "{output}");
    assert!(output.contains("61 * * * * *"), "{output}");
    assert!(output.contains("kiln.toml"), "{output}");
}

#[test]
fn a_component_without_the_cron_export_fails_at_start() {
    let manifest = manifest("interval = \"1s\"", "").replacen("component = \"tick\"", "component = \"kv\"", 1);
    let dir = kiln_e2e::kiln::app_dir(&manifest, &[]);
    let (status, output) = kiln_e2e::kiln::run_to_exit(
        &crate::kiln_bin(),
        &["up", "-f", &dir.path().join("kiln.toml").display().to_string(), "--listen", &kiln_e2e::kiln::free_addr().to_string()],
        Duration::from_secs(120),
    );
    assert!(!status.success(), "{output}");
    assert!(output.contains("handle-cron-event"), "{output}");
    assert!(output.contains("`kv`"), "{output}");
}

#[test]
fn an_app_without_http_routes_still_answers_its_health_check() {
    let manifest = format!(
        "spin_manifest_version = 2\n[application]\nname = \"ticks-only\"\n[[trigger.cron]]\ninterval = \"1s\"\ncomponent = \"tick\"\n[component.tick]\nsource = \"{}\"\nkey_value_stores = [\"default\"]\n",
        kiln_e2e::guest("cron_tick").display()
    );
    let dir = kiln_e2e::kiln::app_dir(&manifest, &[]);
    // `Kiln::up` waits for /.well-known/spin/health.
    let kiln = kiln_e2e::kiln::Kiln::up(&crate::kiln_bin(), &dir.path().join("kiln.toml"), &[]);
    assert!(kiln.wait_for_log("cron_tick run at", Duration::from_secs(10)), "{}", kiln.log());
    assert_eq!(kiln.get("/anything").status(), 404);
}
