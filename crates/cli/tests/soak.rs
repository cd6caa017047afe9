//! The soak test: a mixed load on one `kiln serve` — HTTP requests, key-value writes and reads,
//! events published and handled, and apps deployed and removed — while the host's resident memory,
//! open file descriptors and threads are sampled. None may keep growing: the peak resident memory
//! of the last third of the run may exceed the middle third's by at most [`MAX_RSS_GROWTH_MIB`] plus
//! [`MAX_RSS_GROWTH_PER_OPERATION`] for each operation of the last third (memory settles in steps —
//! pool slots and allocator segments first used under the load — and more slowly on a loaded
//! machine, so a plateau is fine and a leak of a kilobyte an operation is not; the 30-minute run of
//! `bench/soak.sh` is for slower leaks), and file descriptors and threads vary by no more than a few.
//!
//! A test binary of its own (cargo runs test binaries one after another, so the suite's parallel
//! load is not measured). `KILN_SOAK_SECS` (default 120) and `KILN_SOAK_SAMPLE_SECS` (default 5) set
//! its length; `bench/soak.sh` runs it for 30 minutes and plots the samples it writes
//! (`$KILN_SOAK_CSV`, default in the target's temporary directory).

use kiln_e2e::serve::{AppArchive, KilnServe, http_app};
use std::path::PathBuf;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::{Duration, Instant};

/// How much higher the last third's peak resident memory may be than the middle third's…
const MAX_RSS_GROWTH_MIB: f64 = 4.0;
/// …plus this many bytes for each operation done in the last third.
const MAX_RSS_GROWTH_PER_OPERATION: f64 = 256.0;
/// File descriptors and threads may vary with the load by this much after the warm-up, no more.
const MAX_FD_SPREAD: u64 = 64;
const MAX_THREAD_SPREAD: u64 = 16;

fn env_secs(name: &str, default: u64) -> Duration {
    Duration::from_secs(std::env::var(name).ok().and_then(|v| v.parse().ok()).unwrap_or(default))
}

#[derive(Clone, Copy, Debug)]
struct Sample {
    at: f64,
    /// Operations done so far.
    operations: u64,
    rss_kib: u64,
    fds: u64,
    threads: u64,
}

fn sample(pid: u32, started: Instant, operations: u64) -> Sample {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).unwrap_or_default();
    let field = |name: &str| status.lines().find_map(|l| l.strip_prefix(name)).and_then(|v| v.split_whitespace().next()?.parse().ok()).unwrap_or(0);
    let fds = std::fs::read_dir(format!("/proc/{pid}/fd")).map(|d| d.count() as u64).unwrap_or(0);
    Sample { at: started.elapsed().as_secs_f64(), operations, rss_kib: field("VmRSS:"), fds, threads: field("Threads:") }
}

/// Least-squares slope of `y` over `x`.
fn slope(points: &[(f64, f64)]) -> f64 {
    let n = points.len() as f64;
    let (mx, my) = (points.iter().map(|p| p.0).sum::<f64>() / n, points.iter().map(|p| p.1).sum::<f64>() / n);
    let (num, den) = points.iter().fold((0.0, 0.0), |(num, den), (x, y)| (num + (x - mx) * (y - my), den + (x - mx) * (x - mx)));
    if den == 0.0 { 0.0 } else { num / den }
}

fn event_app() -> Vec<u8> {
    let manifest = r#"spin_manifest_version = 2
[application]
name = "events"
[[trigger.nats]]
subject = "soak.*"
component = "sub"
[[trigger.http]]
route = "/pub/..."
component = "pub"
[[trigger.http]]
route = "/kv/..."
component = "kv"
[component.sub]
source = "sub.wasm"
key_value_stores = ["default"]
[component.pub]
source = "pub.wasm"
[component.pub.tool.kiln]
allowed_publish_subjects = ["soak.>"]
[component.kv]
source = "kv.wasm"
key_value_stores = ["default"]
"#;
    AppArchive::new(manifest).guest("sub.wasm", "msg_sub").guest("pub.wasm", "msg_pub").guest("kv.wasm", "spin_kv").build()
}

fn hello_app() -> Vec<u8> {
    AppArchive::new(&http_app("hello", "hello.wasm", "/...", "")).guest("hello.wasm", "echo_request").build()
}

/// GETs `path` of `app` and reads the whole answer, which must be a 200.
fn ok(serve: &KilnServe, app: &str, path: &str) {
    let response = serve.app_get(app, path);
    let status = response.status();
    let body = response.text().unwrap_or_default();
    assert_eq!(status, 200, "GET {app}{path}: {body}");
}

/// One kind of load, run in a loop until `stop`; counts what it did.
fn load(serve: &Arc<KilnServe>, stop: &Arc<AtomicBool>, done: &Arc<AtomicU64>, work: fn(&KilnServe, u64)) -> std::thread::JoinHandle<()> {
    let (serve, stop, done) = (serve.clone(), stop.clone(), done.clone());
    std::thread::spawn(move || {
        let mut i = 0;
        while !stop.load(Ordering::Relaxed) {
            work(&serve, i);
            i += 1;
            done.fetch_add(1, Ordering::Relaxed);
        }
    })
}

#[test]
fn a_mixed_load_does_not_grow_the_host() {
    let duration = env_secs("KILN_SOAK_SECS", 120);
    let every = env_secs("KILN_SOAK_SAMPLE_SECS", 5);
    let dir = tempfile::tempdir().expect("temp dir");
    let serve = Arc::new(KilnServe::start(&PathBuf::from(env!("CARGO_BIN_EXE_kiln")), &dir.path().join("data"), &["-q", "--idle-timeout", "5s"]));
    serve.deploy_ok("hello", "", hello_app());
    serve.deploy_ok("kv", "", AppArchive::new(&http_app("kv", "kv.wasm", "/...", "key_value_stores = [\"default\"]")).guest("kv.wasm", "spin_kv").build());
    serve.deploy_ok("events", "", event_app());

    let stop = Arc::new(AtomicBool::new(false));
    let done = Arc::new(AtomicU64::new(0));
    let loads = vec![
        load(&serve, &stop, &done, |s, _| ok(s, "hello", "/")),
        load(&serve, &stop, &done, |s, _| ok(s, "hello", "/")),
        load(&serve, &stop, &done, |s, i| {
            // A bounded key space: the store stays the same size, so its growth is not the host's.
            let key = format!("k{}", i % 500);
            ok(s, "kv", &format!("/?op=set&key={key}&value={i}"));
            ok(s, "kv", &format!("/?op=get&key={key}"));
        }),
        load(&serve, &stop, &done, |s, i| {
            ok(s, "events", &format!("/pub/?subject=soak.e&payload=p{}", i % 500));
        }),
        load(&serve, &stop, &done, |s, i| {
            // Deploys and removes: a new app every round, called, then removed.
            let name = format!("churn{}", i % 3);
            s.deploy_ok(&name, "", hello_app());
            ok(s, &name, "/");
            let (status, body) = s.admin("DELETE", &format!("/v1/apps/{name}"));
            assert!(status == 200 || status == 204, "{status} {body}");
            std::thread::sleep(Duration::from_millis(200));
        }),
    ];

    let pid = serve.kiln.pid();
    let started = Instant::now();
    let mut samples = vec![sample(pid, started, done.load(Ordering::Relaxed))];
    while started.elapsed() < duration {
        std::thread::sleep(every);
        samples.push(sample(pid, started, done.load(Ordering::Relaxed)));
        assert!(loads.iter().all(|l| !l.is_finished()), "a load thread failed\n{}", serve.kiln.log());
    }
    stop.store(true, Ordering::Relaxed);
    for l in loads {
        l.join().unwrap_or_else(|_| panic!("a load thread failed\n{}", serve.kiln.log()));
    }

    let csv_path = std::env::var_os("KILN_SOAK_CSV").map(PathBuf::from).unwrap_or_else(|| PathBuf::from(env!("CARGO_TARGET_TMPDIR")).join("soak.csv"));
    let csv: String = std::iter::once("seconds,rss_kib,fds,threads\n".to_string())
        .chain(samples.iter().map(|s| format!("{:.1},{},{},{}\n", s.at, s.rss_kib, s.fds, s.threads)))
        .collect();
    std::fs::write(&csv_path, csv).expect("write the samples");
    let operations = done.load(Ordering::Relaxed);
    eprintln!("soak: {operations} operations in {:?}; samples in {}", started.elapsed(), csv_path.display());

    // After a warm-up (the first third: caches, pools and stores fill), nothing keeps growing.
    let third = samples.len() / 3;
    let settled = &samples[third..];
    let peak_mib = |part: &[Sample]| part.iter().map(|s| s.rss_kib).max().unwrap_or(0) as f64 / 1024.0;
    let growth = peak_mib(&samples[2 * third..]) - peak_mib(&samples[third..2 * third]);
    let last_third_operations = samples[samples.len() - 1].operations - samples[2 * third].operations;
    let allowed = MAX_RSS_GROWTH_MIB + last_third_operations as f64 * MAX_RSS_GROWTH_PER_OPERATION / (1024.0 * 1024.0);
    let rss_slope = slope(&settled.iter().map(|s| (s.at / 60.0, s.rss_kib as f64 / 1024.0)).collect::<Vec<_>>());
    let spread = |f: fn(&Sample) -> u64| settled.iter().map(f).max().unwrap_or(0) - settled.iter().map(f).min().unwrap_or(0);
    eprintln!(
        "soak: RSS {} → {} MiB (last third's peak {growth:+.1} MiB over the middle third's, {allowed:.1} allowed for its {last_third_operations} operations; slope {rss_slope:.2} MiB/min after the warm-up), fds {} → {}, threads {} → {}",
        samples[0].rss_kib / 1024,
        samples[samples.len() - 1].rss_kib / 1024,
        samples[0].fds,
        samples[samples.len() - 1].fds,
        samples[0].threads,
        samples[samples.len() - 1].threads
    );
    assert!(operations > 100, "the load barely ran: {operations} operations");
    assert!(
        growth <= allowed,
        "resident memory keeps growing: the last third's peak is {growth:.1} MiB above the middle third's (limit {allowed:.1} MiB: {MAX_RSS_GROWTH_MIB} + {MAX_RSS_GROWTH_PER_OPERATION} B × {last_third_operations} operations); slope {rss_slope:.2} MiB/min"
    );
    assert!(spread(|s| s.fds) <= MAX_FD_SPREAD, "file descriptors vary by {} after the warm-up", spread(|s| s.fds));
    assert!(spread(|s| s.threads) <= MAX_THREAD_SPREAD, "threads vary by {} after the warm-up", spread(|s| s.threads));
}
