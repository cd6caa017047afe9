//! The containerd shim under a real containerd (Debian's 1.6.20 and runc), as a Kubernetes node
//! runs it: the app packed with `kiln k8s image`, imported with `ctr images import`, run with
//! `ctr run --runtime io.containerd.kiln.v1`, stopped with `ctr task kill` (SIGTERM).
//!
//! A test binary of its own (it needs root and takes the machine for a while). Where containerd
//! cannot run (not root, not installed) it says so and skips; `KILN_REQUIRE_CONTAINERD=1` (set by
//! `.ci/run`) turns the skip into a failure.

use kiln_e2e::guest;
use kiln_test_support::{Containerd, free_port};
use std::path::PathBuf;
use std::process::Child;
use std::time::{Duration, Instant};

const IMAGE: &str = "docker.io/kiln-test/sleepy:1";
const RUNTIME: &str = "io.containerd.kiln.v1";

fn kiln_bin() -> PathBuf {
    PathBuf::from(env!("CARGO_BIN_EXE_kiln"))
}

/// The shim is built beside `kiln` (`cargo build -p kiln-shim`, or any workspace build).
fn shim_dir() -> PathBuf {
    let dir = kiln_bin().parent().expect("the target directory").to_path_buf();
    assert!(
        dir.join("containerd-shim-kiln-v1").is_file(),
        "containerd-shim-kiln-v1 is not built in {}: run `cargo build -p kiln-shim` (a workspace test run builds it)",
        dir.display()
    );
    dir
}

fn containerd() -> Option<Containerd> {
    match Containerd::start(&shim_dir()) {
        Ok(containerd) => Some(containerd),
        Err(why) if std::env::var_os("KILN_REQUIRE_CONTAINERD").is_some() => panic!("containerd cannot run here: {why}"),
        Err(why) => {
            eprintln!("SKIPPED: the containerd shim test needs containerd, which cannot run here: {why}");
            None
        }
    }
}

/// `guests/sleep` (`/?ms=N` answers after N ms) as an image archive made by `kiln k8s image`.
fn sleepy_image(dir: &std::path::Path) -> PathBuf {
    let app = dir.join("app");
    std::fs::create_dir_all(&app).unwrap();
    std::fs::write(
        app.join("spin.toml"),
        "spin_manifest_version = 2\n[application]\nname = \"sleepy\"\n[[trigger.http]]\nroute = \"/...\"\ncomponent = \"sleep\"\n\
         [component.sleep]\nsource = \"sleep.wasm\"\n",
    )
    .unwrap();
    std::fs::copy(guest("sleep"), app.join("sleep.wasm")).unwrap();
    let image = dir.join("sleepy.tar");
    let output = std::process::Command::new(kiln_bin())
        .args(["k8s", "image", "--name", IMAGE, "-o"])
        .arg(&image)
        .arg("-f")
        .arg(&app)
        .output()
        .unwrap();
    assert!(output.status.success(), "kiln k8s image failed: {}", String::from_utf8_lossy(&output.stderr));
    image
}

/// A container of the image serving on `port`, run by `ctr run` in the foreground (which exits
/// with the task and copies its stdout and stderr into the returned log file).
fn run_container(containerd: &Containerd, id: &str, port: u16) -> (Child, PathBuf) {
    let log = containerd.dir().join(format!("{id}.log"));
    let file = std::fs::File::create(&log).unwrap();
    let ctr = containerd
        .ctr_command(&[
        "run",
        "--net-host",
        "--runtime",
        RUNTIME,
        "--env",
        &format!("KILN_HTTP_LISTEN_ADDR=127.0.0.1:{port}"),
        "--env",
        "KILN_SHUTDOWN_GRACE=5s",
        IMAGE,
        id,
    ])
        .stdout(file.try_clone().unwrap())
        .stderr(file)
        .spawn()
        .expect("run ctr");
    (ctr, log)
}

fn get(port: u16, path: &str) -> Option<(u16, String)> {
    let response = reqwest::blocking::Client::builder()
        .timeout(Duration::from_secs(10))
        .build()
        .unwrap()
        .get(format!("http://127.0.0.1:{port}{path}"))
        .send()
        .ok()?;
    let status = response.status().as_u16();
    Some((status, response.text().unwrap_or_default()))
}

/// Polls until the app answers; returns how long that took.
fn wait_until_serving(containerd: &Containerd, id: &str, port: u16, log: &std::path::Path) -> Duration {
    let started = Instant::now();
    while started.elapsed() < Duration::from_secs(120) {
        if let Some((200, body)) = get(port, "/?ms=0") {
            assert_eq!(body, "slept 0");
            return started.elapsed();
        }
        std::thread::sleep(Duration::from_millis(20));
    }
    panic!(
        "container {id} never answered; its log:\n{}\ncontainerd's log:\n{}",
        std::fs::read_to_string(log).unwrap_or_default(),
        containerd.log()
    );
}

/// Waits for `ctr run` to exit with the task; the task's exit status must be 0.
fn wait_until_stopped(containerd: &Containerd, id: &str, ctr: &mut Child, log: &std::path::Path, within: Duration) -> Duration {
    let started = Instant::now();
    while started.elapsed() < within {
        if let Some(status) = ctr.try_wait().unwrap() {
            assert!(status.success(), "task {id} exited with {status}");
            return started.elapsed();
        }
        std::thread::sleep(Duration::from_millis(20));
    }
    let _ = ctr.kill();
    panic!(
        "task {id} still {:?} after {within:?}; its log:\n{}\ncontainerd's log:\n{}",
        containerd.task_status(id),
        std::fs::read_to_string(log).unwrap_or_default(),
        containerd.log()
    );
}

#[test]
fn an_app_image_runs_under_containerd_and_drains_on_sigterm() {
    let Some(containerd) = containerd() else { return };
    let image = sleepy_image(containerd.dir());
    containerd.ctr_ok(&["images", "import", image.to_str().unwrap()]);

    // First start: the shim compiles the app once, before the container starts.
    let port = free_port();
    let (mut ctr, log) = run_container(&containerd, "first", port);
    wait_until_serving(&containerd, "first", port, &log);
    // The container's output reaches the log file through ctr's copy of its pipe: it may come a
    // moment after the first answer.
    let serving = format!("Serving http://127.0.0.1:{port} (sleepy");
    let started = Instant::now();
    let mut logged = std::fs::read_to_string(&log).unwrap_or_default();
    while !logged.contains(&serving) && started.elapsed() < Duration::from_secs(10) {
        std::thread::sleep(Duration::from_millis(50));
        logged = std::fs::read_to_string(&log).unwrap_or_default();
    }
    assert!(logged.contains(&serving), "{logged}");
    assert!(logged.contains("using 1 precompiled component(s)"), "{logged}\ncontainerd's log:\n{}", containerd.log());

    // SIGTERM while a request is in flight: it finishes, then the task exits well within the grace.
    let slow = std::thread::spawn(move || get(port, "/?ms=1500"));
    std::thread::sleep(Duration::from_millis(300));
    let killed = Instant::now();
    containerd.ctr_ok(&["task", "kill", "first"]);
    assert_eq!(slow.join().unwrap(), Some((200, "slept 1500".to_string())), "the in-flight request was cut off");
    wait_until_stopped(&containerd, "first", &mut ctr, &log, Duration::from_secs(5));
    let stopped = killed.elapsed();
    assert!(get(port, "/?ms=0").is_none(), "still serving after SIGTERM");
    eprintln!("SIGTERM to exit: {:.0} ms (with a 1.2 s request in flight)", stopped.as_secs_f64() * 1000.0);
    assert!(std::fs::read_to_string(&log).unwrap().contains("received signal 15"));
    containerd.ctr_ok(&["container", "delete", "first"]);

    // A second container of the image uses the artifacts kept beside it: nothing is compiled again.
    let port = free_port();
    let (mut ctr, log) = run_container(&containerd, "second", port);
    let first_200 = wait_until_serving(&containerd, "second", port, &log);
    eprintln!("second container: first 200 after {:.0} ms", first_200.as_secs_f64() * 1000.0);
    let compiled = containerd.log().matches("kiln: precompiled the app").count();
    assert_eq!(compiled, 1, "the app was compiled {compiled} times; containerd's log:\n{}", containerd.log());
    assert!(std::fs::read_to_string(&log).unwrap().contains("using 1 precompiled component(s)"));
    containerd.ctr_ok(&["task", "kill", "second"]);
    wait_until_stopped(&containerd, "second", &mut ctr, &log, Duration::from_secs(5));
}
