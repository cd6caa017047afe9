//! Platform mode from the user's side: the real `kiln deploy` and `kiln apps` binaries against a
//! real `kiln serve`, resolving host and token the ways users do (flags, environment, config file,
//! `--data-dir`).

use crate::kiln_bin;
use kiln_e2e::serve::KilnServe;
use std::path::Path;
use std::process::{Command, Stdio};
use std::time::Duration;

/// What a finished `kiln` command printed.
struct Run {
    success: bool,
    stdout: String,
    stderr: String,
}

/// Runs `kiln <args>` with `env`, in a clean environment: no KILN_HOST/KILN_TOKEN of the machine's
/// user and a `HOME` without a config file, so only what the test passes counts.
fn kiln(args: &[&str], env: &[(&str, &str)]) -> Run {
    let home = tempfile::tempdir().expect("temp home");
    let mut command = Command::new(kiln_bin());
    command.args(args).env_remove("KILN_HOST").env_remove("KILN_TOKEN").env_remove("XDG_CONFIG_HOME").env("HOME", home.path());
    command.env("KILN_CACHE_DIR", kiln_e2e::kiln::shared_cache_dir());
    command.envs(env.iter().copied()).stdin(Stdio::null()).stdout(Stdio::piped()).stderr(Stdio::piped());
    let child = command.spawn().expect("start kiln");
    let pid = child.id();
    let (sender, receiver) = std::sync::mpsc::channel();
    std::thread::spawn(move || sender.send(child.wait_with_output()));
    let output = match receiver.recv_timeout(Duration::from_secs(300)) {
        Ok(output) => output.expect("kiln output"),
        Err(_) => {
            let _ = Command::new("kill").arg("-KILL").arg(pid.to_string()).status();
            panic!("kiln {args:?} did not finish within 300s");
        }
    };
    let text = |bytes: &[u8]| String::from_utf8_lossy(bytes).to_string();
    Run { success: output.status.success(), stdout: text(&output.stdout), stderr: text(&output.stderr) }
}

/// Runs `kiln <args>` and panics (with everything printed, and the server's log) unless it succeeded.
fn kiln_ok(serve: &KilnServe, args: &[&str], env: &[(&str, &str)]) -> String {
    let run = kiln(args, env);
    assert!(run.success, "kiln {args:?} failed:\n{}{}\nserver log:\n{}", run.stdout, run.stderr, serve.kiln.log());
    run.stdout
}

/// Runs `kiln <args>` and returns its stderr, panicking if it succeeded.
fn kiln_fails(args: &[&str], env: &[(&str, &str)]) -> String {
    let run = kiln(args, env);
    assert!(!run.success, "kiln {args:?} should have failed:\n{}{}", run.stdout, run.stderr);
    run.stderr
}

fn start() -> (KilnServe, tempfile::TempDir) {
    let dir = tempfile::tempdir().expect("temp dir");
    let serve = KilnServe::start(&kiln_bin(), &dir.path().join("data"), &[]);
    (serve, dir)
}

fn host(serve: &KilnServe) -> String {
    serve.admin_url("")
}

/// A copy of an example app whose component `source` is the built `.wasm`, copied into the app
/// directory (the examples point at their shared `../target`, which `kiln deploy` refuses).
fn example_copy(example: &str, wasm: &str) -> tempfile::TempDir {
    let from = kiln_e2e::examples_dir().join(example);
    let manifest = std::fs::read_to_string(from.join("kiln.toml")).expect("example manifest");
    let original_source = format!("../target/wasm32-wasip2/release/{wasm}.wasm");
    assert!(manifest.contains(&original_source), "{example}'s manifest changed:\n{manifest}");
    let dir = tempfile::tempdir().expect("temp dir");
    std::fs::write(dir.path().join("kiln.toml"), manifest.replace(&original_source, &format!("{wasm}.wasm"))).expect("write manifest");
    std::fs::copy(kiln_e2e::examples_dir().join(format!("target/wasm32-wasip2/release/{wasm}.wasm")), dir.path().join(format!("{wasm}.wasm")))
        .expect("the example is built");
    dir
}

fn path_str(path: &Path) -> &str {
    path.to_str().expect("UTF-8 temp path")
}

#[test]
fn the_cli_deploys_updates_lists_shows_and_removes_an_app() {
    let (serve, _dir) = start();
    let app = example_copy("hello", "hello");
    let (host, data_dir) = (host(&serve), serve.data_dir.clone());
    let with_data_dir = ["--host", &host, "--data-dir", path_str(&data_dir)];

    let deploy = [&["deploy", "-f", path_str(app.path())][..], &with_data_dir].concat();
    let printed = kiln_ok(&serve, &deploy, &[]);
    let url = format!("http://hello.localhost:{}/", serve.kiln.addr.port());
    assert!(printed.starts_with(&format!("Deployed `hello` (version 1): {url}\n")), "{printed}");
    assert!(printed.contains(&format!("  {url}...  → hello")), "routes missing:\n{printed}");
    assert_eq!(serve.app_text("hello", "/"), "hello world");

    // Host and token from the environment; limits on the command line.
    let env = [("KILN_HOST", host.as_str()), ("KILN_TOKEN", serve.token.as_str())];
    let printed = kiln_ok(&serve, &["deploy", "-f", path_str(app.path()), "--max-concurrency", "5", "--request-timeout", "2s"], &env);
    assert!(printed.starts_with("Updated `hello` (version 2)"), "{printed}");
    let shown: serde_json::Value = serde_json::from_str(&kiln_ok(&serve, &["apps", "show", "hello", "--json"], &env)).expect("show --json is JSON");
    assert_eq!((shown["version"].as_u64(), shown["limits"]["max_concurrency"].as_u64()), (Some(2), Some(5)), "{shown}");
    assert_eq!(shown["limits"]["request_timeout_ms"].as_u64(), Some(2000), "{shown}");
    assert_eq!(serve.app_text("hello", "/again"), "hello world");

    // Host and token from the config file.
    let config_home = tempfile::tempdir().expect("temp dir");
    std::fs::create_dir_all(config_home.path().join("kiln")).expect("config dir");
    std::fs::write(config_home.path().join("kiln/config.toml"), format!("host = \"{host}\"\ntoken = \"{}\"\n", serve.token)).expect("config");
    let config = [("XDG_CONFIG_HOME", path_str(config_home.path()))];
    let table = kiln_ok(&serve, &["apps", "list"], &config);
    let mut lines = table.lines();
    assert_eq!(lines.next().map(|header| header.split_whitespace().collect::<Vec<_>>()), Some(vec!["NAME", "VERSION", "STATUS", "URL", "REQUESTS", "ERRORS"]), "{table}");
    let row: Vec<&str> = lines.next().expect("a row for hello").split_whitespace().collect();
    assert_eq!((row[0], row[1], row[3]), ("hello", "2", url.as_str()), "{table}");
    assert!(row[4].parse::<u64>().expect("requests is a number") >= 2, "{table}");
    let listed: serde_json::Value = serde_json::from_str(&kiln_ok(&serve, &["apps", "list", "--json"], &config)).expect("list --json is JSON");
    assert_eq!(listed["apps"][0]["name"], "hello", "{listed}");
    let details = kiln_ok(&serve, &["apps", "show", "hello"], &config);
    for needle in ["Name:", "hello", "Version:", "URL:", &url, "Limits:", "5 at once", "2s timeout", "Routes:"] {
        assert!(details.contains(needle), "{needle:?} missing from:\n{details}");
    }

    assert_eq!(kiln_ok(&serve, &["apps", "rm", "hello"], &config), "Removed `hello`.\n");
    assert_eq!(serve.app_get("hello", "/").status(), 404, "a removed app answers no more");
    assert!(kiln_ok(&serve, &["apps", "list"], &config).starts_with("No apps deployed"));
    let err = kiln_fails(&["apps", "show", "hello"], &config);
    assert!(err.contains("showing `hello` failed") && err.contains("404") && err.contains("`kiln apps list` shows"), "{err}");
}

#[test]
fn deploy_uploads_mapped_directories_and_globs_but_not_excluded_files() {
    let (serve, _dir) = start();
    let app = example_copy("files", "files_example");
    let manifest_path = app.path().join("kiln.toml");
    let manifest = std::fs::read_to_string(&manifest_path).expect("manifest");
    let files = r#"files = [{ source = "static", destination = "/site" }, "notes/*.txt"]
exclude_files = ["notes/secret.txt"]"#;
    let manifest = manifest.replace(r#"files = [{ source = "static", destination = "/" }]"#, files);
    assert!(manifest.contains("notes/*.txt"), "the files example's manifest changed:\n{manifest}");
    std::fs::write(&manifest_path, manifest).expect("write manifest");
    std::fs::create_dir_all(app.path().join("static")).expect("static dir");
    std::fs::write(app.path().join("static/index.html"), "<h1>site</h1>").expect("index");
    std::fs::create_dir_all(app.path().join("notes")).expect("notes dir");
    std::fs::write(app.path().join("notes/public.txt"), "public").expect("note");
    std::fs::write(app.path().join("notes/secret.txt"), "secret").expect("note");

    let host = host(&serve);
    let args = ["deploy", "-f", path_str(&manifest_path), "--name", "site", "--host", &host, "--token", &serve.token];
    let printed = kiln_ok(&serve, &args, &[]);
    assert!(printed.starts_with("Deployed `site` (version 1)"), "{printed}");
    assert_eq!(serve.app_text("site", "/site/index.html"), "<h1>site</h1>");
    assert_eq!(serve.app_text("site", "/notes/public.txt"), "public");
    assert_eq!(serve.app_get("site", "/notes/secret.txt").status(), 404, "an excluded file is not uploaded");
}

#[test]
fn failures_print_what_went_wrong_and_exit_non_zero() {
    let (serve, _dir) = start();
    let app = example_copy("hello", "hello");
    let host = host(&serve);
    let deploy = |name: &str, extra: &[&str], token: &str| {
        let args = [&["deploy", "-f", path_str(app.path()), "--name", name, "--host", &host, "--token", token][..], extra].concat();
        kiln(&args, &[])
    };

    let refused = deploy("a", &[], "wrong-token");
    assert!(!refused.success);
    assert!(refused.stderr.contains("401") && refused.stderr.contains("refused the admin token from --token"), "{}", refused.stderr);

    let first = deploy("a", &["--route-prefix", "/shop"], &serve.token);
    assert!(first.success, "{}{}\n{}", first.stdout, first.stderr, serve.kiln.log());
    assert!(first.stdout.contains("Also served under /shop"), "{}", first.stdout);
    let conflict = deploy("b", &["--route-prefix", "/shop"], &serve.token);
    assert!(!conflict.success, "a route prefix is one app's: {}", conflict.stdout);
    assert!(conflict.stderr.contains("deploying `b` failed") && conflict.stderr.contains("409"), "{}", conflict.stderr);

    let bad_name = kiln_fails(&["apps", "show", "Not_A_Name", "--host", &host, "--token", &serve.token], &[]);
    assert!(bad_name.contains("not a valid app name"), "{bad_name}");

    let apps_address = format!("http://{}", serve.kiln.addr);
    let wrong_port = kiln_fails(&["apps", "list", "--host", &apps_address, "--token", &serve.token], &[]);
    assert!(wrong_port.contains("404") && wrong_port.contains("the admin address of `kiln serve`"), "{wrong_port}");

    let no_token = kiln_fails(&["apps", "list", "--host", &host], &[]);
    assert!(no_token.contains("no admin token given") && no_token.contains("admin-token"), "{no_token}");

    let nobody = format!("http://{}", kiln_e2e::kiln::free_addr());
    let unreachable = kiln_fails(&["apps", "list", "--host", &nobody, "--token", "t"], &[]);
    assert!(unreachable.contains("cannot reach the admin API") && unreachable.contains("is `kiln serve` running"), "{unreachable}");
}

#[test]
fn the_hello_example_deploys_as_it_is() {
    // The examples share one Cargo target directory beside them: their `source` is `../target/…`,
    // which `kiln deploy` packs under `kiln-sources/` and points the uploaded manifest at.
    let (serve, _dir) = start();
    let hello = kiln_e2e::examples_dir().join("hello");
    let out = kiln_ok(&serve, &["deploy", "-f", path_str(&hello), "--host", &host(&serve), "--token", &serve.token], &[]);
    assert!(out.contains("hello.localhost"), "{out}");
    assert_eq!(serve.app_text("hello", "/"), "hello world");
}
