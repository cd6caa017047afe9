//! The admin dashboard (`GET /dashboard`), rendered by a real headless Chromium against a running
//! `kiln serve`: the apps table, the request totals, the 401 and missing-token messages, and a
//! screenshot.

use kiln_e2e::serve::{AppArchive, KilnServe, http_app};
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

const INSTALL: &str = "sudo apt-get install chromium   (Debian/Ubuntu; .ci/run installs it in CI)";

/// Debian's `chromium` from PATH; fails the test (never skips it) when it is not installed.
fn chromium() -> PathBuf {
    let found = std::env::var_os("PATH").and_then(|paths| std::env::split_paths(&paths).map(|dir| dir.join("chromium")).find(|path| path.is_file()));
    found.unwrap_or_else(|| panic!("the dashboard test needs a headless Chromium and `chromium` is not on PATH.\nInstall it: {INSTALL}"))
}

/// Runs headless Chromium on `url` with `args`; returns its stdout. Panics with its stderr if it
/// fails or takes longer than a minute.
fn run_chromium(url: &str, args: &[&str]) -> String {
    let profile = tempfile::tempdir().expect("chromium profile dir");
    let mut child = Command::new(chromium())
        .args(["--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking", "--disable-dev-shm-usage", "--no-first-run"])
        .arg(format!("--user-data-dir={}", profile.path().display()))
        .arg("--virtual-time-budget=5000")
        .args(args)
        .arg(url)
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap_or_else(|err| panic!("cannot start chromium: {err}\nInstall it: {INSTALL}"));
    let started = Instant::now();
    while child.try_wait().expect("wait for chromium").is_none() {
        if started.elapsed() > Duration::from_secs(60) {
            let _ = child.kill();
            let output = child.wait_with_output().expect("chromium output");
            panic!("chromium did not finish within 60 s:\n{}", String::from_utf8_lossy(&output.stderr));
        }
        std::thread::sleep(Duration::from_millis(50));
    }
    let output = child.wait_with_output().expect("chromium output");
    assert!(output.status.success(), "chromium failed ({}):\n{}", output.status, String::from_utf8_lossy(&output.stderr));
    String::from_utf8_lossy(&output.stdout).into_owned()
}

/// The `<tr data-app="NAME">…</tr>` element of the dumped DOM.
fn app_row<'a>(dom: &'a str, name: &str) -> &'a str {
    let start = dom.find(&format!("<tr data-app=\"{name}\"")).unwrap_or_else(|| panic!("no row for app {name} in the dashboard:\n{dom}"));
    let end = dom[start..].find("</tr>").expect("row end") + start;
    &dom[start..end]
}

/// The text of the cell with class `class` in `row` (cells are `<td class="… CLASS">text</td>`).
fn cell<'a>(row: &'a str, class: &str) -> &'a str {
    let at = row.find(&format!(" {class}\">")).or_else(|| row.find(&format!("\"{class}\">"))).unwrap_or_else(|| panic!("no `{class}` cell in {row}"));
    let text = &row[at..];
    let text = &text[text.find('>').expect("cell start") + 1..];
    &text[..text.find("</td>").expect("cell end")]
}

fn hello_wasm() -> Vec<u8> {
    std::fs::read(kiln_e2e::examples_dir().join("target/wasm32-wasip2/release/hello.wasm")).expect("the hello example is built")
}

#[test]
fn dashboard_lists_apps_with_totals_and_rejects_a_wrong_token() {
    let chromium = chromium(); // fail first, and loudly, without it
    let data = tempfile::tempdir().unwrap();
    let serve = KilnServe::start(&crate::kiln_bin(), data.path(), &[]);
    serve.deploy_ok("hello", "", AppArchive::new(&http_app("hello", "hello.wasm", "/...", "")).file("hello.wasm", hello_wasm()).build());
    serve.deploy_ok("echo", "route_prefix=/shop", AppArchive::new(&http_app("echo", "echo.wasm", "/echo/...", "")).guest("echo.wasm", "echo_request").build());
    for _ in 0..5 {
        assert_eq!(serve.app_text("hello", "/"), "hello world");
    }

    let dashboard = serve.admin_url("/dashboard");
    let dom = run_chromium(&format!("{dashboard}#token={}", serve.token), &["--dump-dom"]);
    assert!(dom.contains("data-state=\"ok\""), "the dashboard did not load the apps:\n{dom}");
    let hello = app_row(&dom, "hello");
    assert!(hello.contains(&format!("href=\"http://hello.localhost:{}/\"", serve.kiln.addr.port())), "{hello}");
    assert!(hello.contains("data-status=\"loaded\""), "{hello}");
    assert!(cell(hello, "routes").contains("/..."), "{hello}");
    assert_eq!(cell(hello, "requests"), "5", "{hello}");
    assert_eq!(cell(hello, "errors"), "0", "{hello}");
    assert_eq!(cell(hello, "version"), "1", "{hello}");
    // Several polls ran (virtual time), so rates are computed from deltas, not shown as "–".
    assert!(cell(hello, "rate").parse::<f64>().is_ok(), "no request rate after several polls: {hello}");
    assert!(cell(hello, "error-rate").parse::<f64>().is_ok(), "{hello}");
    let echo = app_row(&dom, "echo");
    assert!(echo.contains("data-status=\"idle\""), "{echo}");
    assert!(cell(echo, "routes").contains("/shop/echo/..."), "{echo}");
    assert_eq!(cell(echo, "requests"), "0", "{echo}");
    assert!(dom.find("data-app=\"echo\"") < dom.find("data-app=\"hello\""), "apps are listed by name");

    let wrong = run_chromium(&format!("{dashboard}#token=0123456789abcdef"), &["--dump-dom"]);
    assert!(wrong.contains("data-state=\"unauthorized\""), "{wrong}");
    assert!(wrong.contains("401 Unauthorized: the admin token was rejected"), "{wrong}");
    assert!(!wrong.contains("data-app="), "{wrong}");
    let missing = run_chromium(&dashboard, &["--dump-dom"]);
    assert!(missing.contains("data-state=\"no-token\"") && missing.contains("No admin token"), "{missing}");

    let png = Path::new(env!("CARGO_TARGET_TMPDIR")).join("kiln-dashboard.png");
    let _ = std::fs::remove_file(&png);
    let screenshot = format!("--screenshot={}", png.display());
    run_chromium(&format!("{dashboard}#token={}", serve.token), &[screenshot.as_str(), "--window-size=1280,800"]);
    let bytes = std::fs::read(&png).unwrap_or_else(|err| panic!("{} --screenshot wrote nothing at {}: {err}", chromium.display(), png.display()));
    assert!(bytes.starts_with(b"\x89PNG\r\n\x1a\n"), "not a PNG: {}", png.display());
    assert!(bytes.len() > 5000, "the screenshot is suspiciously small ({} bytes): {}", bytes.len(), png.display());
    println!("dashboard screenshot: {}", png.display());
}
