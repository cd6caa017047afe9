//! `examples/momentum`: one `.wasm` run three ways — over HTTP (`kiln up`), on a file dropped into a
//! `[[trigger.directory]]`, and as a program (`kiln run`) — gives byte-identical output for the
//! same CSV, and the same line-numbered error for a malformed one in each.

use crate::{example, kiln_bin};
use kiln_e2e::kiln::{Kiln, client, shared_cache_dir};
use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};
use std::time::{Duration, Instant};

const BAD: &str = "mass,velocity\n1,2\n3,fast\n";
const BAD_LINE: &str = "line 3: velocity `fast` is not a number";

fn wasm() -> PathBuf {
    kiln_e2e::examples_dir().join("target/wasm32-wasip2/release/momentum.wasm")
}

fn sample() -> Vec<u8> {
    std::fs::read(example("momentum/sample.csv")).expect("examples/momentum/sample.csv")
}

/// `kiln run [flags] momentum.wasm [args]` with `stdin`.
fn kiln_run(flags: &[&str], args: &[&str], stdin: &[u8]) -> Output {
    use std::io::Write;
    let mut child = Command::new(kiln_bin())
        .arg("run")
        .args(flags)
        .arg(wasm())
        .args(args)
        .env("KILN_CACHE_DIR", shared_cache_dir())
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("start kiln run");
    child.stdin.take().expect("stdin").write_all(stdin).expect("write stdin");
    child.wait_with_output().expect("kiln run output")
}

/// The example's own manifest in a fresh directory, its `source` pointing at the built component.
fn app() -> (Kiln, tempfile::TempDir) {
    let dir = tempfile::tempdir().expect("temp dir");
    let manifest = std::fs::read_to_string(example("momentum/spin.toml")).expect("examples/momentum/spin.toml");
    let manifest = manifest.replace("../target/", &format!("{}/target/", kiln_e2e::examples_dir().display()));
    std::fs::write(dir.path().join("spin.toml"), manifest).expect("write manifest");
    let kiln = Kiln::up(&kiln_bin(), &dir.path().join("spin.toml"), &[]);
    (kiln, dir)
}

fn post(kiln: &Kiln, body: &[u8]) -> (u16, Vec<u8>) {
    let response = client().post(kiln.url("/")).body(body.to_vec()).send().expect("POST /");
    (response.status().as_u16(), response.bytes().expect("body").to_vec())
}

/// Drops `content` into `inbox/<name>` (written aside, then renamed in, as a user should) and waits
/// for `outbox/<expect>`.
fn drop_file(kiln: &Kiln, dir: &Path, name: &str, content: &[u8], expect: &str) -> Vec<u8> {
    let (inbox, outbox) = (dir.join("inbox"), dir.join("outbox"));
    std::fs::create_dir_all(&inbox).unwrap();
    let aside = dir.join(format!("{name}.tmp"));
    std::fs::write(&aside, content).unwrap();
    std::fs::rename(&aside, inbox.join(name)).unwrap();
    let started = Instant::now();
    while started.elapsed() < Duration::from_secs(60) {
        if let Ok(bytes) = std::fs::read(outbox.join(expect)) {
            return bytes;
        }
        std::thread::sleep(Duration::from_millis(50));
    }
    panic!("no outbox/{expect} within 60 s:\n{}", kiln.log());
}

#[test]
fn the_three_ways_give_the_same_bytes() {
    let input = sample();
    let expected = "mass,velocity,momentum\n2,3,6\n0.5,-4,-2\n1e3,2.5,2500\n70,1.25,87.5\n";

    let run = kiln_run(&[], &[], &input);
    assert!(run.status.success(), "kiln run: {:?}\n{}", run.status, String::from_utf8_lossy(&run.stderr));
    assert_eq!(String::from_utf8_lossy(&run.stdout), expected);

    let (kiln, dir) = app();
    assert_eq!(post(&kiln, &input), (200, run.stdout.clone()), "HTTP\n{}", kiln.log());
    let from_file = drop_file(&kiln, dir.path(), "sample.csv", &input, "sample.csv");
    assert_eq!(from_file, run.stdout, "directory trigger");
    assert!(dir.path().join("inbox/.done/sample.csv").is_file(), "the input is kept in inbox/.done");
    assert!(!dir.path().join("inbox/sample.csv").exists());

    // File arguments in a granted directory (read-write, as `wasmtime run --dir`).
    let data = tempfile::tempdir().unwrap();
    std::fs::write(data.path().join("in.csv"), &input).unwrap();
    let grant = format!("{}::/data", data.path().display());
    let run = kiln_run(&["--dir", &grant], &["/data/in.csv", "/data/out.csv"], b"");
    assert!(run.status.success(), "{}", String::from_utf8_lossy(&run.stderr));
    assert_eq!(std::fs::read_to_string(data.path().join("out.csv")).unwrap(), expected);
    // Without the grant the program sees no file system.
    let run = kiln_run(&[], &["/data/in.csv"], b"");
    assert_eq!(run.status.code(), Some(1));
    assert!(String::from_utf8_lossy(&run.stderr).contains("cannot read `/data/in.csv`"), "{}", String::from_utf8_lossy(&run.stderr));
}

#[test]
fn a_malformed_csv_gets_its_line_number_every_way() {
    let run = kiln_run(&[], &[], BAD.as_bytes());
    assert_eq!(run.status.code(), Some(1), "kiln run exits with the program's failure");
    assert_eq!(String::from_utf8_lossy(&run.stderr), format!("momentum: {BAD_LINE}\n"));
    assert!(run.stdout.is_empty());

    let (kiln, dir) = app();
    let (status, body) = post(&kiln, BAD.as_bytes());
    assert_eq!((status, String::from_utf8_lossy(&body).to_string()), (400, format!("{BAD_LINE}\n")));

    let error = drop_file(&kiln, dir.path(), "bad.csv", BAD.as_bytes(), "bad.csv.error");
    let error = String::from_utf8_lossy(&error);
    assert!(error.starts_with("the program exited with 1\n"), "{error}");
    assert!(error.contains(&format!("momentum: {BAD_LINE}")), "{error}");
    assert!(!dir.path().join("outbox/bad.csv").exists(), "no result for a bad file");
    assert_eq!(std::fs::read_to_string(dir.path().join("inbox/.failed/bad.csv")).unwrap(), BAD, "the input is kept");
    // A file that does not match the pattern is left alone.
    std::fs::write(dir.path().join("inbox/notes.txt"), "x").unwrap();
    std::thread::sleep(Duration::from_millis(1500));
    assert!(dir.path().join("inbox/notes.txt").is_file());
    assert!(kiln.log().contains("bad.csv"), "{}", kiln.log());
}

#[test]
fn kiln_run_reports_bad_programs_and_bad_flags() {
    // Not a program: a clear error, not a trap.
    let hello = kiln_e2e::examples_dir().join("target/wasm32-wasip2/release/hello.wasm");
    let out = Command::new(kiln_bin()).arg("run").arg(&hello).env("KILN_CACHE_DIR", shared_cache_dir()).output().unwrap();
    assert_eq!(out.status.code(), Some(1));
    assert!(String::from_utf8_lossy(&out.stderr).contains("is not a program"), "{}", String::from_utf8_lossy(&out.stderr));
    // Usage errors are the program's own, with its exit code.
    let run = kiln_run(&["--env", "A=1"], &["a", "b", "c"], b"");
    assert_eq!(run.status.code(), Some(1));
    assert!(String::from_utf8_lossy(&run.stderr).contains("usage: momentum"));
    // Kiln's own flags are checked before anything runs.
    let out = Command::new(kiln_bin()).args(["run", "--dir", "/no/such/dir"]).arg(wasm()).output().unwrap();
    assert!(String::from_utf8_lossy(&out.stderr).contains("is not a directory"), "{}", String::from_utf8_lossy(&out.stderr));
    let out = Command::new(kiln_bin()).args(["run", "--env", "KILN_NO_SUCH_VARIABLE_X"]).arg(wasm()).output().unwrap();
    assert!(String::from_utf8_lossy(&out.stderr).contains("no such variable"), "{}", String::from_utf8_lossy(&out.stderr));
}
