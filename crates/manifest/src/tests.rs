//! Manifest loading tests: the happy path and every error path, with positions.

use std::path::{Path, PathBuf};
use std::time::Duration;

use super::*;

const HEADER: &str = "spin_manifest_version = 2\n[application]\nname = \"app\"\n";

fn parse(text: &str) -> Result<Manifest, ManifestError> {
    Manifest::parse(text, Path::new("/app/spin.toml"))
}

fn ok(body: &str) -> Manifest {
    parse(&format!("{HEADER}{body}")).unwrap()
}

fn err(body: &str) -> ManifestError {
    parse(&format!("{HEADER}{body}")).unwrap_err()
}

/// Asserts the message contains `needle` and the error is at `line:col`.
#[track_caller]
fn assert_err(e: &ManifestError, needle: &str, line: usize, col: usize) {
    assert!(
        e.message().contains(needle),
        "{e:?} does not mention {needle:?}"
    );
    assert_eq!(e.line_col(), Some((line, col)), "{e:?}");
    assert!(e.help_text().is_some(), "{e:?} has no help");
}

const SHOP: &str = r#"spin_manifest_version = 2

[application]
name = "shop"
version = "1.0.0"
description = "A shop"
authors = ["Ann <ann@example.com>"]

[application.trigger.http]
base = "/"

[application.trigger.redis]
address = "redis://localhost:6379"

[variables]
api_host = { default = "api.example.com" }
api_token = { required = true, secret = true }

[[trigger.http]]
route = "/hello"
component = "hello"

[[trigger.http]]
route = "/api/..."
component = "api"
executor = { type = "http" }

[[trigger.http]]
route = { private = true }
component = "internal"

[[trigger.http]]
id = "static"
route = "/static/..."
component = { source = "static.wasm", files = [{ source = "assets", destination = "/" }] }

[[trigger.redis]]
channel = "orders"
component = "api"

[[trigger.redis]]
channel = "audit"
address = "redis://audit:6379"
component = { source = "audit.wasm" }

[component.hello]
source = "target/wasm32-wasip1/release/hello.wasm"
description = "Says hello"
allowed_outbound_hosts = ["https://{{ host }}", "redis://localhost:6379", "*://127.0.0.0/24:7", "http://self"]
key_value_stores = ["default", "my-store"]
sqlite_databases = ["default"]
ai_models = ["llama2-chat", "all-minilm-l6-v2"]
environment = { GREETING = "hi", LANG = "en" }
files = ["static/**/*.html", { source = "data", destination = "/data" }]
exclude_files = ["static/secret.html"]

[component.hello.variables]
host = "{{ api_host }}"
token = "Bearer {{api_token}}"

[component.hello.build]
command = "cargo build --target wasm32-wasip1 --release"
workdir = "hello"
watch = ["src/**/*.rs", "Cargo.toml"]

[component.hello.tool.spin-test]
source = "tests.wasm"

[component.api]
source = { url = "https://example.com/api.wasm", digest = "sha256:0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef" }

[component.internal]
source = { registry = "ttl.sh", package = "acme:internal", version = "1.0.0" }

[component.internal.build]
command = ["npm install", "npm run build"]
"#;

#[test]
fn full_spin_example() {
    let m = Manifest::parse(SHOP, Path::new("/srv/shop/spin.toml")).unwrap();
    assert_eq!(m.path, PathBuf::from("/srv/shop/spin.toml"));
    assert_eq!(m.dir, PathBuf::from("/srv/shop"));
    assert_eq!(m.application.name, "shop");
    assert_eq!(m.application.version.as_deref(), Some("1.0.0"));
    assert_eq!(m.application.authors, ["Ann <ann@example.com>"]);
    assert_eq!(m.application.http.base, "/");
    assert_eq!(
        m.application.redis_address.as_deref(),
        Some("redis://localhost:6379")
    );

    let token = &m.variables["api_token"];
    assert!(token.required && token.secret && token.default.is_none());
    assert_eq!(
        m.variables["api_host"].default.as_deref(),
        Some("api.example.com")
    );

    let routes: Vec<_> = m
        .http_triggers
        .iter()
        .map(|t| (&t.route, t.component.as_str()))
        .collect();
    assert!(matches!(routes[0], (HttpRoute::Path { route, .. }, "hello") if route == "/hello"));
    assert!(matches!(routes[1], (HttpRoute::Path { route, .. }, "api") if route == "/api/..."));
    assert!(matches!(routes[2], (HttpRoute::Private, "internal")));
    // Spin's naming: `<trigger id>-component`, and `<type>-trigger<N>` for triggers without id.
    assert_eq!(m.http_triggers[3].component, "static-component");
    assert_eq!(m.http_triggers[3].id.as_deref(), Some("static"));
    assert_eq!(m.redis_triggers[0].channel, "orders");
    assert_eq!(m.redis_triggers[1].component, "redis-trigger1-component");
    assert_eq!(
        m.redis_triggers[1].address.as_deref(),
        Some("redis://audit:6379")
    );

    let ids: Vec<_> = m.components.keys().map(String::as_str).collect();
    assert_eq!(
        ids,
        [
            "hello",
            "api",
            "internal",
            "static-component",
            "redis-trigger1-component"
        ]
    );

    let hello = &m.components["hello"];
    assert_eq!(
        hello.source,
        ComponentSource::Local("/srv/shop/target/wasm32-wasip1/release/hello.wasm".into())
    );
    assert_eq!(
        hello.environment,
        [
            ("GREETING".into(), "hi".into()),
            ("LANG".into(), "en".into())
        ]
    );
    assert_eq!(
        hello.files[0],
        FileMount::Glob {
            pattern: "static/**/*.html".into()
        }
    );
    assert_eq!(
        hello.files[1],
        FileMount::Directory {
            source: "/srv/shop/data".into(),
            destination: "/data".into()
        }
    );
    assert_eq!(hello.exclude_files, ["static/secret.html"]);
    assert_eq!(hello.allowed_outbound_hosts.len(), 4);
    assert_eq!(
        hello.allowed_outbound_hosts[0].pattern,
        "https://{{ host }}"
    );
    assert_eq!(hello.key_value_stores, ["default", "my-store"]);
    assert_eq!(hello.sqlite_databases, ["default"]);
    assert_eq!(hello.ai_models, ["llama2-chat", "all-minilm-l6-v2"]);
    assert_eq!(
        hello.variables["token"].variables().collect::<Vec<_>>(),
        ["api_token"]
    );
    let build = hello.build.as_ref().unwrap();
    assert_eq!(
        build.command,
        ["cargo build --target wasm32-wasip1 --release"]
    );
    assert_eq!(build.workdir, PathBuf::from("/srv/shop/hello"));
    assert_eq!(build.watch, ["src/**/*.rs", "Cargo.toml"]);

    assert!(
        matches!(&m.components["api"].source, ComponentSource::Remote { url, .. } if url == "https://example.com/api.wasm")
    );
    assert_eq!(
        m.components["internal"].source,
        ComponentSource::Registry {
            registry: Some("ttl.sh".into()),
            package: "acme:internal".into(),
            version: "1.0.0".into()
        }
    );
    assert_eq!(
        m.components["internal"].build.as_ref().unwrap().command,
        ["npm install", "npm run build"]
    );
    assert_eq!(
        m.components["static-component"].files[0],
        FileMount::Directory {
            source: "/srv/shop/assets".into(),
            destination: "/".into()
        }
    );
}

#[test]
fn spans_point_at_values() {
    let m = Manifest::parse(SHOP, Path::new("/srv/shop/spin.toml")).unwrap();
    let text = m.source_text();
    let HttpRoute::Path { span, .. } = &m.http_triggers[1].route else {
        panic!()
    };
    assert_eq!(&text[span.start..span.end], "\"/api/...\"");
    let t = &m.http_triggers[0];
    assert_eq!(
        &text[t.component_span.start..t.component_span.end],
        "\"hello\""
    );
    let hello = &m.components["hello"];
    assert_eq!(
        &text[hello.source_span.start..hello.source_span.end],
        "\"target/wasm32-wasip1/release/hello.wasm\""
    );
    let host = &hello.allowed_outbound_hosts[1].span;
    assert_eq!(&text[host.start..host.end], "\"redis://localhost:6379\"");
    let var = hello.variable_spans["host"];
    assert_eq!(&text[var.start..var.end], "\"{{ api_host }}\"");
}

#[test]
fn error_at_reports_file_line_column() {
    let m = Manifest::parse(SHOP, Path::new("spin.toml")).unwrap();
    let HttpRoute::Path { span, .. } = &m.http_triggers[1].route else {
        panic!()
    };
    let e = m.error_at(span, "bad route", "fix it");
    assert_eq!(e.to_string(), "spin.toml:24:9: bad route");
    assert_eq!(e.help_text(), Some("fix it"));
    let labels: Vec<_> = miette::Diagnostic::labels(&e).unwrap().collect();
    assert_eq!(labels[0].offset(), span.start);
    assert!(miette::Diagnostic::source_code(&e).is_some());
}

#[test]
fn kiln_triggers() {
    let m = ok(r#"
[application.trigger.nats]
url = "nats://localhost:4222"

[[trigger.nats]]
subject = "orders.>"
queue_group = "workers"
durable = "orders"
component = "worker"

[[trigger.cron]]
interval = "5m"
component = "worker"

[[trigger.cron]]
id = "nightly"
cron_expression = "0 0 3 * * *"
component = "worker"

[component.worker]
source = "worker.wasm"
"#);
    assert_eq!(
        m.application.nats_url.as_deref(),
        Some("nats://localhost:4222")
    );
    let n = &m.nats_triggers[0];
    assert_eq!(
        (
            n.subject.as_str(),
            n.queue_group.as_deref(),
            n.durable.as_deref()
        ),
        ("orders.>", Some("workers"), Some("orders"))
    );
    assert_eq!(
        m.cron_triggers[0].schedule,
        Schedule::Interval(Duration::from_secs(300))
    );
    assert_eq!(
        m.cron_triggers[1].schedule,
        Schedule::Cron("0 0 3 * * *".into())
    );
    assert_eq!(m.cron_triggers[1].id.as_deref(), Some("nightly"));
}

#[test]
fn one_line_display_and_syntax_error_position() {
    let e = parse("spin_manifest_version = 2\n[application]\nname = \n").unwrap_err();
    let shown = e.to_string();
    assert!(shown.starts_with("/app/spin.toml:3:"), "{shown}");
    assert!(!shown.contains('\n'), "{shown}");
}

#[test]
fn version_errors() {
    let e = parse("spin_manifest_version = 1\n[application]\nname = \"x\"\n").unwrap_err();
    assert_err(&e, "only version 2 is supported", 1, 25);
    // A real v1 manifest: the version error wins over its unknown keys.
    let e = parse("spin_manifest_version = \"1\"\nname = \"x\"\ntrigger = { type = \"http\" }\n")
        .unwrap_err();
    assert_err(&e, "only version 2 is supported", 1, 25);
    let e = parse("[application]\nname = \"x\"\n").unwrap_err();
    assert_err(&e, "missing `spin_manifest_version`", 1, 1);
}

#[test]
fn unknown_keys_everywhere() {
    let e =
        parse("spin_manifest_version = 2\nnmae = 1\n[application]\nname = \"x\"\n").unwrap_err();
    assert_err(&e, "unknown key `nmae`", 2, 1);
    assert!(e.help_text().unwrap().contains("application"), "{e:?}");
    assert_err(&err("color = \"red\"\n"), "unknown key `color`", 4, 1);
    let e = err(
        "[component.a]\nsource = \"a.wasm\"\n[component.a.build]\ncommand = \"make\"\nwrkdir = \"x\"\n",
    );
    assert_err(&e, "unknown key `wrkdir`", 8, 1);
    let e = err(
        "[[trigger.http]]\nroute = \"/\"\ncomponent = { source = \"a.wasm\", sorce = \"b\" }\n",
    );
    assert_err(&e, "unknown key `sorce`", 6, 34);
    let e = err("[variables]\nx = { default = \"1\", secrett = true }\n");
    assert_err(&e, "unknown key `secrett`", 5, 22);
    let e = err(
        "[[trigger.http]]\nroute = \"/\"\ncomponent = \"a\"\nchannel = \"x\"\n[component.a]\nsource = \"a.wasm\"\n",
    );
    assert_err(&e, "unknown key `channel`", 7, 1);
    let e = err("[component.a]\nsource = { url = \"u\", digest = \"d\", sha = \"x\" }\n");
    assert_err(&e, "unknown key `sha`", 5, 37);
}

#[test]
fn missing_application_name() {
    let e = parse("spin_manifest_version = 2\n[application]\nversion = \"1\"\n").unwrap_err();
    assert!(e.message().contains("missing required key `name`"), "{e:?}");
    let e = parse("spin_manifest_version = 2\n[application]\nname = \"\"\n").unwrap_err();
    assert_err(&e, "name must not be empty", 3, 8);
}

#[test]
fn bad_component_id() {
    let e = err("[component.my_component]\nsource = \"a.wasm\"\n");
    assert_err(&e, "invalid component id `my_component`", 4, 12);
    assert_err(
        &err("[component.Mixed]\nsource = \"a.wasm\"\n"),
        "invalid component id",
        4,
        12,
    );
}

#[test]
fn bad_variable_names() {
    for bad in ["invalid-name", "\"invalid!name\"", "4invalidname"] {
        let e = err(&format!("[variables]\n{bad} = {{ default = \"x\" }}\n"));
        assert_err(&e, "invalid variable name", 5, 1);
    }
    let e = err(
        "[variables]\nx = { default = \"1\" }\n[component.a]\nsource = \"a.wasm\"\nvariables = { Bad = \"{{ x }}\" }\n",
    );
    assert_err(&e, "component `a`: invalid variable name `Bad`", 8, 15);
}

#[test]
fn variable_required_and_default() {
    let e = err("[variables]\nx = { required = true, default = \"1\" }\n");
    assert_err(&e, "both required and has a default", 5, 5);
    let e = err("[variables]\nx = { secret = true }\n");
    assert_err(&e, "neither a default nor `required = true`", 5, 5);
}

#[test]
fn unknown_component_reference() {
    let e = err(
        "[[trigger.http]]\nroute = \"/\"\ncomponent = \"nope\"\n[component.a]\nsource = \"a.wasm\"\n",
    );
    assert_err(&e, "component `nope`, which is not defined", 6, 13);
    assert!(e.help_text().unwrap().contains("a"), "{e:?}");
}

#[test]
fn inline_components_do_not_collide() {
    let m = ok(r#"
[[trigger.http]]
id = "web"
route = "/a"
component = { source = "a.wasm" }

[[trigger.http]]
route = "/b"
component = { source = "b.wasm" }

[[trigger.http]]
route = "/c"
component = "web-component"

[component.web-component]
source = "declared.wasm"
"#);
    // `web-component` is taken by a declared component, so the fallback counter is used.
    let ids: Vec<_> = m
        .http_triggers
        .iter()
        .map(|t| t.component.as_str())
        .collect();
    assert_eq!(
        ids,
        [
            "inline-component1",
            "http-trigger1-component",
            "web-component"
        ]
    );
    assert_eq!(
        m.components["inline-component1"].source,
        ComponentSource::Local("/app/a.wasm".into())
    );
}

#[test]
fn duplicate_trigger_ids() {
    let e = err(
        "[[trigger.http]]\nid = \"t\"\nroute = \"/\"\ncomponent = \"a\"\n[[trigger.redis]]\nid = \"t\"\nchannel = \"c\"\ncomponent = \"a\"\n[component.a]\nsource = \"a.wasm\"\n",
    );
    assert_err(&e, "duplicate trigger id `t`", 9, 6);
}

/// Trigger types other than Kiln's are Spin plugins: the error says so where the type is named,
/// and lists what Kiln runs.
#[track_caller]
fn assert_plugin_trigger(e: &ManifestError, kind: &str, line: usize, col: usize) {
    let message = format!(
        "unsupported trigger type `{kind}`: Spin runs it through a trigger plugin, and Kiln does not run Spin trigger plugins"
    );
    assert_err(e, &message, line, col);
    let help = e.help_text().unwrap().to_string();
    assert!(help.contains("Kiln runs these trigger types: http, redis, nats, cron"), "{e:?}");
}

#[test]
fn plugin_trigger_types_are_refused_by_name() {
    let component = "[component.x]\nsource = \"x.wasm\"\n";
    let timer = "[[trigger.timer]]\ncomponent = \"x\"\ninterval_secs = 5\n";
    assert_plugin_trigger(&err(&format!("{timer}{component}")), "timer", 4, 11);
    assert_plugin_trigger(&err(&format!("{component}{timer}")), "timer", 6, 11);
    // After a trigger Kiln runs, too.
    let http = "[[trigger.http]]\nroute = \"/\"\ncomponent = \"x\"\n";
    assert_plugin_trigger(&err(&format!("{component}{http}{timer}")), "timer", 9, 11);
    // A plugin's settings table, which comes first in most manifests, gets the same error.
    let e = err(&format!("[application.trigger.timer]\nfoo = 1\n{timer}{component}"));
    assert_plugin_trigger(&e, "timer", 4, 22);
    // cron runs, but has no application settings.
    let e = err("[application.trigger.cron]\n");
    assert_err(&e, "unknown key `cron`", 4, 22);
}

#[test]
fn unsupported_trigger_type_and_executor() {
    assert_plugin_trigger(&err("[[trigger.sqs]]\nqueue = \"q\"\n"), "sqs", 4, 11);
    let wagi = |executor: &str| {
        format!("[[trigger.http]]\nroute = \"/\"\ncomponent = \"a\"\nexecutor = {executor}\n[component.a]\nsource = \"a.wasm\"\n")
    };
    assert_err(&err(&wagi("{ type = \"wagi\", entrypoint = \"main\" }")), "entrypoint `main` is not supported", 7, 12);
    assert_err(&err(&wagi("{ type = \"wasip3-unstable\" }")), "the `wasip3-unstable` executor", 7, 12);
    assert_err(&err(&wagi("{ type = \"cgi\" }")), "unknown executor type `cgi`", 7, 12);
    assert_err(&err(&wagi("{ type = \"wagi\", argv = 3 }")), "`argv` must be a string", 7, 12);
    assert_err(&err(&wagi("{ type = \"spin\", argv = \"x\" }")), "the `spin` executor takes no `argv`", 7, 12);
}

#[test]
fn executors_as_spin_has_them() {
    let executor = |line: &str| {
        let m = ok(&format!("[[trigger.http]]\nroute = \"/\"\ncomponent = \"a\"\n{line}\n[component.a]\nsource = \"a.wasm\"\n"));
        m.http_triggers[0].executor.clone()
    };
    assert_eq!(executor(""), HttpExecutor::Http);
    assert_eq!(executor("executor = { type = \"spin\" }"), HttpExecutor::Http);
    assert_eq!(executor("executor = { type = \"wagi\" }"), HttpExecutor::Wagi(WagiExecutor::default()));
    let custom = executor("executor = { type = \"wagi\", entrypoint = \"_start\", argv = \"${SCRIPT_NAME} -v ${ARGS}\" }");
    assert_eq!(custom, HttpExecutor::Wagi(WagiExecutor { entrypoint: "_start".into(), argv: "${SCRIPT_NAME} -v ${ARGS}".into() }));
}

#[test]
fn route_must_start_with_slash() {
    let e = err(
        "[[trigger.http]]\nroute = \"hello\"\ncomponent = \"a\"\n[component.a]\nsource = \"a.wasm\"\n",
    );
    assert_err(&e, "route `hello` must start with `/`", 5, 9);
}

#[test]
fn bad_files_paths() {
    let cases = [
        (
            "files = [\"../secrets/*\"]",
            "files must stay inside the application directory",
        ),
        (
            "files = [\"/etc/*\"]",
            "files must stay inside the application directory",
        ),
        (
            "files = [{ source = \"../x\", destination = \"/\" }]",
            "files must stay inside the application directory",
        ),
        (
            "files = [{ source = \"/etc\", destination = \"/\" }]",
            "files must stay inside the application directory",
        ),
        (
            "files = [{ source = \"x\", destination = \"rel\" }]",
            "must be an absolute guest path",
        ),
        (
            "exclude_files = [\"a/../../b\"]",
            "files must stay inside the application directory",
        ),
        ("files = [\"[unclosed\"]", "invalid glob"),
    ];
    for (line, needle) in cases {
        let e = err(&format!("[component.a]\nsource = \"a.wasm\"\n{line}\n"));
        assert_err(&e, needle, 6, line.find('[').unwrap() + 2);
    }
}

#[test]
fn bad_templates() {
    let vars = "[variables]\nhost = { default = \"h\" }\n";
    let e = err(&format!(
        "{vars}[component.a]\nsource = \"a.wasm\"\nvariables = {{ x = \"{{{{ host\" }}\n"
    ));
    assert_err(&e, "invalid template", 8, 19);
    let e = err(&format!(
        "{vars}[component.a]\nsource = \"a.wasm\"\nvariables = {{ x = \"{{{{ nope }}}}\" }}\n"
    ));
    assert_err(&e, "not an application variable", 8, 19);
}

#[test]
fn bad_allowed_hosts() {
    let e = err("[component.a]\nsource = \"a.wasm\"\nallowed_outbound_hosts = [\"example.com\"]\n");
    assert_err(&e, "component `a`: ", 6, 27);
    assert!(e.message().contains("example.com"), "{e:?}");
    // A template naming a variable declared nowhere is refused where it is written.
    let e = err(
        "[variables]\nh = { default = \"x\" }\n[component.a]\nsource = \"a.wasm\"\nallowed_outbound_hosts = [\"https://{{ nope }}\"]\nvariables = { c = \"{{ h }}\" }\n",
    );
    assert_err(
        &e,
        "uses `{{ nope }}`, which is neither an application variable nor one of this component's variables",
        8,
        27,
    );
    assert!(e.help_text().unwrap().contains("nope = { default"), "{e:?}");
    // A component variable alone still works (Kiln accepted only these before).
    let m = ok(
        "[component.a]\nsource = \"a.wasm\"\nallowed_outbound_hosts = [\"https://{{ c }}\"]\nvariables = { c = \"x\" }\n",
    );
    assert_eq!(
        m.components["a"].allowed_outbound_hosts[0].pattern,
        "https://{{ c }}"
    );
}

/// Spin resolves `allowed_outbound_hosts` templates against the application's variables, so they
/// need not be repeated as component variables; a CIDR range may be built from them.
pub(crate) const APP_VARIABLE_HOSTS: &str = r#"spin_manifest_version = 2
[application]
name = "t"
[variables]
redis_host = { default = "localhost" }
addr_prefix = { default = "127.0.0.0" }
prefix_len = { default = "8" }
[[trigger.http]]
route = "/..."
component = "test"
[component.test]
source = "test.wasm"
allowed_outbound_hosts = ["redis://{{ redis_host }}:6379", "*://{{ addr_prefix }}/{{ prefix_len }}:7"]
"#;

#[test]
fn allowed_hosts_may_use_application_variables() {
    let m = parse(APP_VARIABLE_HOSTS).unwrap();
    let patterns: Vec<&str> = m.components["test"]
        .allowed_outbound_hosts
        .iter()
        .map(|h| h.pattern.as_str())
        .collect();
    assert_eq!(
        patterns,
        ["redis://{{ redis_host }}:6379", "*://{{ addr_prefix }}/{{ prefix_len }}:7"]
    );
}

#[test]
fn bad_labels_and_sources() {
    let e = err("[component.a]\nsource = \"a.wasm\"\nkey_value_stores = [\"my store\"]\n");
    assert_err(&e, "invalid key_value_stores label `my store`", 6, 21);
    let e = err("[component.a]\nsource = { url = \"https://x\", digest = \"md5:1\" }\n");
    assert_err(&e, "is not a sha256 digest", 5, 40);
    let e = err("[component.a]\nsource = { url = \"https://x\" }\n");
    assert_err(&e, "`source` table", 5, 10);
}

#[test]
fn cron_schedule_errors() {
    let c = "[component.w]\nsource = \"w.wasm\"\n[[trigger.cron]]\ncomponent = \"w\"\n";
    assert_err(
        &err(&format!("{c}interval = \"5 minutes\"\n")),
        "invalid interval",
        8,
        12,
    );
    assert_err(
        &err(&format!("{c}interval = \"0s\"\n")),
        "invalid interval",
        8,
        12,
    );
    assert_err(
        &err(&format!("{c}cron_expression = \"* *\"\n")),
        "expected 5 to 7",
        8,
        19,
    );
    assert_err(
        &err(&format!(
            "{c}interval = \"1s\"\ncron_expression = \"* * * * *\"\n"
        )),
        "both",
        8,
        12,
    );
    assert!(
        err(c)
            .message()
            .contains("needs `cron_expression` or `interval`")
    );
}

#[test]
fn check_sources_reports_missing_files() {
    let dir = std::env::temp_dir().join(format!("kiln-manifest-test-{}", std::process::id()));
    std::fs::create_dir_all(dir.join("target")).unwrap();
    let text = format!(
        "{HEADER}[component.a]\nsource = \"target/a.wasm\"\n[component.a.build]\ncommand = \"make\"\n"
    );
    std::fs::write(dir.join("spin.toml"), &text).unwrap();
    let m = Manifest::load(&dir.join("spin.toml")).unwrap();
    let e = m.check_sources().unwrap_err();
    assert!(
        e.message()
            .contains("component `a`: source file `target/a.wasm` does not exist"),
        "{e:?}"
    );
    assert_eq!(e.line_col(), Some((5, 10)));
    std::fs::write(dir.join("target/a.wasm"), b"\0asm").unwrap();
    m.check_sources().unwrap();

    assert_eq!(find_manifest(Some(&dir)).unwrap(), dir.join("spin.toml"));
    std::fs::write(dir.join("kiln.toml"), &text).unwrap();
    assert_eq!(find_manifest(Some(&dir)).unwrap(), dir.join("kiln.toml"));
    assert_eq!(
        find_manifest(Some(&dir.join("spin.toml"))).unwrap(),
        dir.join("spin.toml")
    );
    let empty = dir.join("target");
    let e = find_manifest(Some(&empty)).unwrap_err();
    assert!(
        e.to_string().contains("no kiln.toml or spin.toml in")
            && e.to_string().ends_with("pass -f PATH"),
        "{e}"
    );
    std::fs::remove_dir_all(&dir).unwrap();
}

#[test]
fn secret_defaults_are_not_debug_printed() {
    let m = ok("[variables]\npw = { default = \"hunter2\", secret = true }\n");
    assert!(!format!("{m:?}").contains("hunter2"));
}

#[test]
fn miette_renders_snippet_and_help() {
    let e = err(
        "[[trigger.http]]\nroute = \"hello\"\ncomponent = \"a\"\n[component.a]\nsource = \"a.wasm\"\n",
    );
    let handler =
        miette::GraphicalReportHandler::new_themed(miette::GraphicalTheme::unicode_nocolor());
    let mut out = String::new();
    handler.render_report(&mut out, &e).unwrap();
    assert!(out.contains("/app/spin.toml:5:9"), "{out}");
    assert!(out.contains("route = \"hello\""), "{out}");
    assert!(out.contains("write it as \"/hello\""), "{out}");
}

#[test]
fn kiln_limits_live_in_a_tool_table_spin_ignores() {
    let manifest = ok("[application.tool.kiln]\nmax_concurrency = 20\nmemory_limit_mib = 64\nrequest_timeout_ms = 5000\nmax_request_body = 0\n[application.tool.spin-test]\nsource = \"x.wasm\"\n");
    let limits = &manifest.application.limits;
    assert_eq!(
        (limits.max_concurrency, limits.memory_limit_mib, limits.request_timeout_ms, limits.max_request_body),
        (Some(20), Some(64), Some(5000), Some(0))
    );
    assert!(limits.span.is_some());
    assert_eq!(ok("").application.limits, AppLimitsSpec::default());
}

#[test]
fn kiln_limits_are_checked_where_they_are_written() {
    assert_err(&err("[application.tool.kiln]\nmax_concurrency = 0\n"), "`max_concurrency` must be between 1", 5, 19);
    assert_err(&err("[application.tool.kiln]\nmemory_limit_mib = 99999999999\n"), "`memory_limit_mib` must be between 1", 5, 20);
    let unknown = err("[application.tool.kiln]\nmax_memory = 5\n");
    assert!(unknown.message().contains("max_memory"), "{unknown:?}");
}


// ---------------------------------------------------------------------------------------------
// [component.<id>.dependencies]

const DEPS_APP: &str = "[[trigger.http]]\nroute = \"/...\"\ncomponent = \"mw\"\n[component.inner]\nsource = \"inner.wasm\"\n[component.mw]\nsource = \"mw.wasm\"\n";

#[test]
fn dependencies_every_shape() {
    let digest = format!("sha256:{}", "a".repeat(64));
    let m = ok(&format!(
        "{DEPS_APP}dependencies_inherit_configuration = true\n[component.mw.dependencies]\n\
         \"wasi:http/handler@0.3.0\" = {{ component = \"inner\", export = \"wasi:http/handler@0.3.0\" }}\n\
         \"a:b/c\" = {{ path = \"deps/../d.wasm\", inherit_configuration = false }}\n\
         \"a:e@1.0.0\" = {{ url = \"https://example.com/e.wasm\", digest = \"{digest}\" }}\n\
         \"a:f/g\" = {{ registry = \"localhost:5000\", version = \"1.2.3\" }}\n\
         \"a:h/i\" = {{ registry = \"ghcr.io\", package = \"x:y\", version = \"0.1.0\" }}\n"
    ));
    let deps = &m.components["mw"].dependencies;
    assert_eq!(deps.len(), 5);
    assert_eq!(deps[0].source, DependencySource::AppComponent("inner".into()));
    assert_eq!(deps[0].export.as_deref(), Some("wasi:http/handler@0.3.0"));
    assert!(deps[0].inherit_configuration, "the component's default");
    assert_eq!(deps[1].source, DependencySource::Local(PathBuf::from("/app/d.wasm")));
    assert!(!deps[1].inherit_configuration, "the entry's own value wins");
    assert_eq!(deps[2].source, DependencySource::Remote { url: "https://example.com/e.wasm".into(), digest });
    assert_eq!(
        deps[3].source,
        DependencySource::Registry { registry: "localhost:5000".into(), package: "a:f".into(), version: "1.2.3".into() }
    );
    assert_eq!(
        deps[4].source,
        DependencySource::Registry { registry: "ghcr.io".into(), package: "x:y".into(), version: "0.1.0".into() }
    );
    assert!(m.components["inner"].dependencies.is_empty());
}

#[test]
fn dependencies_do_not_inherit_by_default() {
    let m = ok(&format!("{DEPS_APP}[component.mw.dependencies]\n\"a:b/c\" = {{ path = \"d.wasm\" }}\n"));
    assert!(!m.components["mw"].dependencies[0].inherit_configuration);
}

#[test]
fn dependency_names_match_imports_as_spin_does() {
    let name = |s: &str| super::convert::dependencies_parse_name_for_tests(s).unwrap();
    for (dep, import) in [
        ("foo:bar/baz@0.1.0", "foo:bar/baz@0.1.0"),
        ("foo:bar/baz", "foo:bar/baz@0.1.0"),
        ("foo:bar/baz", "foo:bar/baz"),
        ("foo:bar", "foo:bar/baz@0.1.0"),
        ("foo:bar@0.1.0", "foo:bar/baz@0.1.0"),
        ("foo-bar", "foo-bar"),
    ] {
        assert!(name(dep).matches(import), "{dep} should match {import}");
    }
    for (dep, import) in [
        ("foo:bar/baz@0.1.0", "foo:bar/baz"),
        ("foo:bar/baz", "foo:bar/bub@0.1.0"),
        ("foo:bar", "foo:bub/bib"),
        ("foo:bar@0.1.0", "foo:bar/baz"),
        ("foo:bar/baz", "foo:bar/baz-bub"),
        ("foo:bar/baz", "foo-bar"),
    ] {
        assert!(!name(dep).matches(import), "{dep} should not match {import}");
    }
}

#[test]
fn dependency_errors() {
    let at = |entry: &str| err(&format!("{DEPS_APP}[component.mw.dependencies]\n{entry}\n"));
    // Line 12 holds the entry.
    assert_err(&at("\"a:b/c\" = \"1.0.0\""), "Kiln has no default registry", 12, 11);
    assert_err(&at("\"a:b/c\" = { version = \"1.0.0\" }"), "Kiln has no default registry", 12, 11);
    assert_err(&at("\"a:b/c\" = { registry = \"r\", version = \">= 1.0\" }"), "not an exact version", 12, 11);
    assert_err(&at("\"a:b/c\" = { path = \"d.wasm\", url = \"https://x\" }"), "mixes or misses keys", 12, 11);
    assert_err(&at("\"a:b/c\" = { url = \"https://x\", digest = \"md5:1\" }"), "not a sha256 digest", 12, 41);
    assert_err(&at("\"a:b/c\" = { path = \"d.wasm\", inherit_configuration = [\"allowed_outbound_hosts\"] }"), "cannot grant part", 12, 54);
    assert_err(&at("\"a:b/c\" = { path = \"d.wasm\", colour = 1 }"), "unknown key `colour`", 12, 30);
    assert_err(&at("\"A:b/c\" = { path = \"d.wasm\" }"), "invalid dependency name", 12, 1);
    assert_err(&at("\"a:b/c@latest\" = { path = \"d.wasm\" }"), "not a semantic version", 12, 1);
    assert_err(&at("\"a:b/c\" = { component = \"nope\" }"), "does not exist: `nope`", 12, 1);
    assert_err(&at("\"a:b/c\" = { component = \"mw\" }"), "names itself", 12, 1);
    assert_err(&at("my-dep = { registry = \"r\", version = \"1.0.0\" }"), "needs `package`", 12, 10);
}

#[test]
fn directory_triggers() {
    let m = ok("[component.m]\nsource = \"m.wasm\"\n[[trigger.directory]]\npath = \"in\"\npattern = \"*.csv\"\noutput = \"data/out\"\ncomponent = \"m\"\n");
    let t = &m.directory_triggers[0];
    assert_eq!(t.path, PathBuf::from("/app/in"));
    assert_eq!(t.output, PathBuf::from("/app/data/out"));
    assert_eq!(t.pattern.as_deref(), Some("*.csv"));
    assert_eq!(t.component, "m");

    let c = "[component.m]\nsource = \"m.wasm\"\n[[trigger.directory]]\ncomponent = \"m\"\n";
    assert_err(&err(&format!("{c}path = \"in\"\noutput = \"in/out\"\n")), "apart from its watched `path`", 9, 10);
    assert_err(&err(&format!("{c}path = \".\"\noutput = \"out\"\n")), "the manifest's own directory", 8, 8);
    assert_err(&err(&format!("{c}path = \"in\"\noutput = \"out\"\npattern = \"a/*.csv\"\n")), "file names, not paths", 10, 11);
    assert_err(&err(&format!("{c}path = \"in\"\noutput = \"out\"\npattern = \"[\"\n")), "invalid file name pattern", 10, 11);
    assert!(err(&format!("{c}path = \"in\"\n")).message().contains("output"), "output is required");
    let e = err("[application.trigger.directory]\n");
    assert!(e.message().contains("unknown key `directory`"), "{e:?}");
}
