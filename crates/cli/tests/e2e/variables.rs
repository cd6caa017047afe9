//! Variables and secrets, as apps read them: `fermyon:spin/variables@2.0.0` (spin-sdk, the
//! `spin_variables` guest), `wasi:config/store@0.2.0-draft` (`wasi_kv_config`) and
//! `wasi:config/store@0.2.0-draft-2024-09-27` (`wasi_kv_draft2`). Templates, provider order, errors,
//! required variables and secrets kept out of the log.

use crate::key_value::App;
use crate::kiln_bin;
use kiln_e2e::kiln::{app_dir, free_addr, run_to_exit};
use std::time::Duration;

/// A manifest with application variables `app_vars` (TOML lines for `[variables]`) and one
/// component running `guest` with `variables = { <component_vars> }`.
fn manifest(guest: &str, app_vars: &str, component_vars: &str) -> String {
    format!(
        r#"spin_manifest_version = 2

[application]
name = "variables-test"

[variables]
{app_vars}

[[trigger.http]]
route = "/..."
component = "app"

[component.app]
source = "{source}"
variables = {{ {component_vars} }}
"#,
        source = kiln_e2e::guest(guest).display()
    )
}

const APP_VARS: &str = r#"plain = { default = "from-default" }
api_token = { required = true, secret = true }
empty = { default = "" }"#;

const COMPONENT_VARS: &str =
    r#"plain = "{{ plain }}", token = "{{ api_token }}", composed = "a-{{ plain }}-b", literal = "just text", empty = "{{ empty }}""#;

const SECRET: &str = "s3cr3t-V4lue-never-logged";

fn var_app(guest: &str, runtime_config: Option<&str>, files: &[(&str, &str)], env: &[(&str, &str)]) -> App {
    App::start_with_files(&manifest(guest, APP_VARS, COMPONENT_VARS), runtime_config, files, &[], env)
}

fn var(app: &App, name: &str) -> (u16, String) {
    app.q(&[("name", name)])
}

#[test]
fn component_variables_render_their_templates() {
    let app = var_app("spin_variables", None, &[], &[("KILN_VARIABLE_API_TOKEN", SECRET)]);
    assert_eq!(var(&app, "plain"), (200, "from-default".into()));
    assert_eq!(var(&app, "composed"), (200, "a-from-default-b".into()));
    assert_eq!(var(&app, "literal"), (200, "just text".into()));
    assert_eq!(var(&app, "empty"), (200, "".into()));
    // A secret is readable by the component it is given to.
    assert_eq!(var(&app, "token"), (200, SECRET.into()));
    let (status, text) = app.q(&[("names", "plain,composed,nope")]);
    assert_eq!(status, 200);
    let lines: Vec<&str> = text.lines().collect();
    assert_eq!(lines[..2], ["plain=from-default", "composed=a-from-default-b"], "{text}");
    assert!(lines[2].starts_with("nope: error: Undefined("), "{text}");
}

#[test]
fn undefined_and_invalid_names_are_errors_the_guest_sees() {
    let app = var_app("spin_variables", None, &[], &[("KILN_VARIABLE_API_TOKEN", SECRET)]);
    // Declared at the application level but not given to this component: undefined for it.
    for name in ["nope", "api_token", "not_declared_anywhere"] {
        let (status, text) = var(&app, name);
        assert_eq!(status, 500, "{name}: {text}");
        assert!(text.starts_with("error: Undefined("), "{name}: {text}");
    }
    for name in ["invalid-name", "invalid!name", "4invalidname", "Upper", "with space", ""] {
        let (status, text) = var(&app, name);
        assert_eq!(status, 500, "{name:?}: {text}");
        assert!(text.starts_with("error: InvalidName("), "{name:?}: {text}");
    }
}

#[test]
fn the_environment_provider_is_on_by_default_with_both_prefixes() {
    let app = var_app("spin_variables", None, &[], &[("KILN_VARIABLE_API_TOKEN", SECRET), ("KILN_VARIABLE_PLAIN", "from-kiln-env")]);
    assert_eq!(var(&app, "plain"), (200, "from-kiln-env".into()));
    assert_eq!(var(&app, "composed"), (200, "a-from-kiln-env-b".into()));
    let app = var_app("spin_variables", None, &[], &[("SPIN_VARIABLE_API_TOKEN", SECRET), ("SPIN_VARIABLE_PLAIN", "from-spin-env")]);
    assert_eq!(var(&app, "plain"), (200, "from-spin-env".into()));
    assert_eq!(var(&app, "token"), (200, SECRET.into()));
    // Only the prefixed form counts: a bare PLAIN is not a variable.
    let app = var_app("spin_variables", None, &[], &[("KILN_VARIABLE_API_TOKEN", SECRET), ("PLAIN", "bare")]);
    assert_eq!(var(&app, "plain"), (200, "from-default".into()));
}

#[test]
fn providers_are_consulted_in_order_env_then_static_then_dotenv() {
    let vars = r#"a = { required = true }
b = { required = true }
c = { required = true }
d = { default = "manifest-d" }"#;
    let manifest = manifest("spin_variables", vars, r#"a = "{{ a }}", b = "{{ b }}", c = "{{ c }}", d = "{{ d }}""#);
    let rc = r#"[[variables_provider]]
type = "env"

[[variables_provider]]
type = "static"
values = { a = "static-a", b = "static-b" }

[[variables_provider]]
type = "dotenv"
path = "vars.env"
"#;
    let dotenv = "A=dotenv-a\nB=dotenv-b\nC=dotenv-c\nD=dotenv-d\n";
    let app = App::start_with_files(&manifest, Some(rc), &[("vars.env", dotenv)], &[], &[("KILN_VARIABLE_A", "env-a")]);
    assert_eq!(app.q(&[("names", "a,b,c,d")]), (200, "a=env-a\nb=static-b\nc=dotenv-c\nd=dotenv-d".into()));
    // A provider only given for some: the manifest default fills the rest.
    let dotenv = "C=dotenv-c\n";
    let app = App::start_with_files(&manifest, Some(rc), &[("vars.env", dotenv)], &[], &[("KILN_VARIABLE_A", "env-a")]);
    assert_eq!(app.q(&[("names", "a,b,c,d")]), (200, "a=env-a\nb=static-b\nc=dotenv-c\nd=manifest-d".into()));
    // A config that lists providers without `env` ignores the environment.
    let rc_no_env = rc.replacen("[[variables_provider]]\ntype = \"env\"\n\n", "", 1);
    let app = App::start_with_files(&manifest, Some(&rc_no_env), &[("vars.env", "C=dotenv-c\n")], &[], &[("KILN_VARIABLE_A", "env-a")]);
    assert_eq!(app.q(&[("names", "a,b,c,d")]), (200, "a=static-a\nb=static-b\nc=dotenv-c\nd=manifest-d".into()));
}

/// `kiln up` is expected to refuse; returns its output.
fn up_refuses(manifest: &str, files: &[(&str, &str)], extra: &[&str]) -> String {
    let dir = app_dir(manifest, files);
    let path = dir.path().join("kiln.toml");
    let addr = free_addr().to_string();
    let mut args = vec!["up", "-f", path.to_str().unwrap(), "--listen", &addr];
    let rc;
    if files.iter().any(|(name, _)| *name == "runtime-config.toml") {
        rc = dir.path().join("runtime-config.toml").display().to_string();
        args.extend(["--runtime-config-file", rc.as_str()]);
    }
    args.extend(extra);
    let (status, text) = run_to_exit(&kiln_bin(), &args, Duration::from_secs(60));
    assert!(!status.success(), "kiln up should refuse:\n{text}");
    assert!(std::net::TcpStream::connect(&addr).is_err(), "a server was started despite the error");
    text
}

#[test]
fn a_required_variable_without_a_value_stops_kiln_up_naming_it() {
    let text = up_refuses(&manifest("spin_variables", APP_VARS, COMPONENT_VARS), &[], &[]);
    assert!(text.contains("api_token"), "{text}");
    assert!(text.contains("KILN_VARIABLE_API_TOKEN"), "{text}");
    // Not even when nothing uses it.
    let text = up_refuses(&manifest("spin_variables", "unused_required = { required = true }", ""), &[], &[]);
    assert!(text.contains("unused_required"), "{text}");
}

#[test]
fn a_missing_dotenv_file_stops_kiln_up() {
    let rc = "[[variables_provider]]\ntype = \"dotenv\"\npath = \"missing.env\"\n";
    let text = up_refuses(&manifest("spin_variables", "x = { default = \"1\" }", "x = \"{{ x }}\""), &[("runtime-config.toml", rc)], &[]);
    assert!(text.contains("missing.env"), "{text}");
}

#[test]
fn secrets_never_reach_the_log() {
    // Debug logging, every provider kind carrying the secret, and the guest reading it.
    let rc = format!(
        "[[variables_provider]]\ntype = \"env\"\n\n[[variables_provider]]\ntype = \"static\"\nvalues = {{ api_token = \"{SECRET}-static\" }}\n\n[[variables_provider]]\ntype = \"dotenv\"\npath = \"s.env\"\n"
    );
    let dotenv = format!("API_TOKEN={SECRET}-dotenv\n");
    for env in [vec![("KILN_VARIABLE_API_TOKEN", SECRET)], vec![]] {
        let mut env = env;
        env.push(("KILN_LOG", "debug"));
        let app = App::start_with_files(&manifest("spin_variables", APP_VARS, COMPONENT_VARS), Some(&rc), &[("s.env", &dotenv)], &[], &env);
        let (status, text) = var(&app, "token");
        assert_eq!(status, 200);
        assert!(text.starts_with(SECRET), "{text}");
        // An error path that involves the secret's variable, too.
        assert_eq!(var(&app, "api_token").0, 500);
        std::thread::sleep(Duration::from_millis(300));
        let log = app.kiln.log();
        assert!(!log.contains(SECRET), "the secret leaked into the log:\n{log}");
    }
}

#[test]
fn secrets_in_allowed_outbound_hosts_templates_stay_out_of_the_log() {
    // The secret names a host in allowed_outbound_hosts; kiln logs routes and grants at debug level.
    let vars = "host = { required = true, secret = true }";
    let manifest = manifest("spin_variables", vars, r#"host = "{{ host }}""#)
        .replace("variables = {", "allowed_outbound_hosts = [\"http://{{ host }}\"]\nvariables = {");
    let secret_host = "secret-host-xq7.example.com";
    let app = App::start(&manifest, None, &[], &[("KILN_VARIABLE_HOST", secret_host), ("KILN_LOG", "debug")]);
    assert_eq!(var(&app, "host"), (200, secret_host.into()));
    std::thread::sleep(Duration::from_millis(300));
    assert!(!app.kiln.log().contains(secret_host), "{}", app.kiln.log());
}

fn wasi_config(guest: &str) {
    let app = var_app(guest, None, &[], &[("KILN_VARIABLE_API_TOKEN", SECRET)]);
    assert_eq!(app.q(&[("op", "config-get"), ("key", "plain")]), (200, "from-default".into()));
    assert_eq!(app.q(&[("op", "config-get"), ("key", "composed")]), (200, "a-from-default-b".into()));
    assert_eq!(app.q(&[("op", "config-get"), ("key", "token")]), (200, SECRET.into()));
    assert_eq!(app.q(&[("op", "config-get"), ("key", "empty")]), (200, "".into()));
    // Unknown: absent, not an error (wasi:config's `option`).
    assert_eq!(app.q(&[("op", "config-get"), ("key", "nope")]), (404, "none".into()));
    // Everything the component was given, and only that.
    assert_eq!(
        app.q(&[("op", "config-get-all")]),
        (200, format!("composed=a-from-default-b\nempty=\nliteral=just text\nplain=from-default\ntoken={SECRET}"))
    );
    // An invalid name is absent too, as Spin answers it (following wasi-runtime-config's guidance).
    assert_eq!(app.q(&[("op", "config-get"), ("key", "Invalid-Name")]), (404, "none".into()));
    // The environment provider reaches wasi:config too.
    let app = app_with_plain(guest, "from-env");
    assert_eq!(app.q(&[("op", "config-get"), ("key", "plain")]), (200, "from-env".into()));
}

fn app_with_plain(guest: &str, plain: &str) -> App {
    var_app(guest, None, &[], &[("KILN_VARIABLE_API_TOKEN", SECRET), ("KILN_VARIABLE_PLAIN", plain)])
}

#[test]
fn wasi_config_draft_reads_component_variables() {
    wasi_config("wasi_kv_config");
}

#[test]
fn wasi_config_draft_2024_09_27_reads_component_variables() {
    wasi_config("wasi_kv_draft2");
}

#[test]
fn a_component_without_variables_gets_undefined_and_an_empty_config() {
    let manifest = crate::single("spin_variables", "/...", "");
    let app = App::start(&manifest, None, &[], &[]);
    let (status, text) = app.q(&[("name", "anything")]);
    assert_eq!(status, 500, "{text}");
    assert!(text.starts_with("error: Undefined("), "{text}");
    let manifest = crate::single("wasi_kv_draft2", "/...", "");
    let app = App::start(&manifest, None, &[], &[]);
    assert_eq!(app.q(&[("op", "config-get-all")]), (200, "".into()));
    assert_eq!(app.q(&[("op", "config-get"), ("key", "anything")]), (404, "none".into()));
}

#[test]
fn spin_variables_3_0_async_interface() {
    // `spin:variables/variables@3.0.0` (Spin 4, `async func`), from the `spin3_p3` guest.
    let app = var_app("spin3_p3", None, &[], &[("KILN_VARIABLE_API_TOKEN", SECRET)]);
    assert_eq!(var(&app, "plain"), (200, "from-default".into()));
    assert_eq!(var(&app, "composed"), (200, "a-from-default-b".into()));
    assert_eq!(var(&app, "token"), (200, SECRET.into()));
    let (status, text) = var(&app, "nope");
    assert_eq!(status, 500, "{text}");
    assert!(text.starts_with("error: Undefined("), "{text}");
    let (status, text) = var(&app, "Invalid-Name");
    assert_eq!(status, 500, "{text}");
    assert!(text.starts_with("error: InvalidName("), "{text}");
}
