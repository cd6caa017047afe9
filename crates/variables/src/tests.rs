use std::path::Path;

use super::*;
use kiln_runtime_config::RuntimeConfig;

const MANIFEST: &str = r#"spin_manifest_version = 2
[application]
name = "app"

[variables]
api_host = { default = "api.example.com" }
token = { required = true, secret = true }
port = { default = "6379" }

[component.web]
source = "web.wasm"
allowed_outbound_hosts = ["https://{{ host }}", "redis://{{ host }}:{{ redis_port }}"]
[component.web.variables]
host = "{{ api_host }}"
redis_port = "{{ port }}"
auth = "Bearer {{ token }}"
plain = "static"
"#;

fn manifest() -> Manifest {
    Manifest::parse(MANIFEST, Path::new("/app/spin.toml")).unwrap()
}

fn env(pairs: &[(&str, &str)]) -> Box<dyn Provider> {
    Box::new(EnvProvider::new(
        pairs.iter().map(|(k, v)| (k.to_string(), v.to_string())),
    ))
}

fn resolver(pairs: &[(&str, &str)]) -> Resolver {
    Resolver::new(&manifest(), vec![env(pairs)]).unwrap()
}

#[test]
fn env_provider_prefers_kiln_over_spin() {
    let p = EnvProvider::new([
        ("SPIN_VARIABLE_TOKEN".to_string(), "spin".to_string()),
        ("KILN_VARIABLE_TOKEN".to_string(), "kiln".to_string()),
        ("SPIN_VARIABLE_PORT".to_string(), "1".to_string()),
        ("TOKEN".to_string(), "plain".to_string()),
    ]);
    assert_eq!(p.get("token").as_deref(), Some("kiln"));
    assert_eq!(p.get("port").as_deref(), Some("1"));
    assert_eq!(p.get("api_host"), None);
}

#[test]
fn providers_in_order_then_default() {
    let first = Box::new(StaticProvider::new([(
        "api_host".to_string(),
        "first".to_string(),
    )]));
    let r = Resolver::new(
        &manifest(),
        vec![
            first,
            env(&[
                ("KILN_VARIABLE_API_HOST", "env"),
                ("KILN_VARIABLE_TOKEN", "t"),
            ]),
        ],
    )
    .unwrap();
    assert_eq!(r.app_variable("api_host").unwrap(), "first");
    assert_eq!(r.app_variable("token").unwrap(), "t");
    assert_eq!(r.app_variable("port").unwrap(), "6379");
}

#[test]
fn missing_required_variable() {
    let e = Resolver::new(&manifest(), vec![env(&[])]).unwrap_err();
    assert_eq!(
        e,
        VariablesError::MissingRequired {
            name: "token".into()
        }
    );
    assert!(e.to_string().contains("KILN_VARIABLE_TOKEN="), "{e}");
}

#[test]
fn component_variables_render_templates() {
    let r = resolver(&[("SPIN_VARIABLE_TOKEN", "s3cret")]);
    assert_eq!(
        r.component_variable("web", "auth").unwrap(),
        "Bearer s3cret"
    );
    assert_eq!(r.component_variable("web", "plain").unwrap(), "static");
    assert_eq!(
        r.component_variable("web", "host").unwrap(),
        "api.example.com"
    );
}

#[test]
fn undefined_and_invalid_names() {
    let r = resolver(&[("KILN_VARIABLE_TOKEN", "t")]);
    assert_eq!(
        r.component_variable("web", "nope"),
        Err(VariablesError::Undefined("nope".into()))
    );
    assert_eq!(
        r.component_variable("other", "host"),
        Err(VariablesError::Undefined("host".into()))
    );
    // Application variables are not visible to a component unless it maps them.
    assert_eq!(
        r.component_variable("web", "api_host"),
        Err(VariablesError::Undefined("api_host".into()))
    );
    assert_eq!(
        r.app_variable("nope"),
        Err(VariablesError::Undefined("nope".into()))
    );
    for bad in ["invalid-name", "invalid!name", "4invalidname", "", "Upper"] {
        assert!(!is_valid_name(bad), "{bad}");
        assert_eq!(
            r.component_variable("web", bad),
            Err(VariablesError::InvalidName(bad.into()))
        );
        assert_eq!(
            r.app_variable(bad),
            Err(VariablesError::InvalidName(bad.into()))
        );
    }
    assert!(is_valid_name("api_host"));
}

#[test]
fn render_for_component_uses_application_then_component_variables() {
    let r = resolver(&[("KILN_VARIABLE_TOKEN", "t"), ("KILN_VARIABLE_PORT", "7000")]);
    assert_eq!(
        r.render_for_component("web", "redis://{{ host }}:{{redis_port}}")
            .unwrap(),
        "redis://api.example.com:7000"
    );
    assert_eq!(
        r.render_for_component("web", "https://{{ api_host }}:{{ port }}")
            .unwrap(),
        "https://api.example.com:7000"
    );
    assert_eq!(
        r.render_for_component("web", "https://{{ nowhere }}"),
        Err(VariablesError::Undefined("nowhere".into()))
    );
    assert!(matches!(
        r.render_for_component("web", "https://{{ host"),
        Err(VariablesError::Template(_))
    ));
}

#[test]
fn render_app_template_uses_application_variables() {
    let r = resolver(&[("KILN_VARIABLE_TOKEN", "t"), ("SPIN_VARIABLE_PORT", "7000")]);
    assert_eq!(
        r.render_app_template("redis://{{ api_host }}:{{port}}/{{ token }}")
            .unwrap(),
        "redis://api.example.com:7000/t"
    );
    assert_eq!(r.render_app_template("plain").unwrap(), "plain");
    // component variables are not application variables
    assert_eq!(
        r.render_app_template("{{ host }}"),
        Err(VariablesError::Undefined("host".into()))
    );
    assert_eq!(
        r.render_app_template("{{ port }}-{{ nope }}-{{ also_nope }}"),
        Err(VariablesError::Undefined("nope".into()))
    );
    assert!(matches!(
        r.render_app_template("{{ port"),
        Err(VariablesError::Template(_))
    ));
}

#[test]
fn secrets_never_printed() {
    let r = resolver(&[("KILN_VARIABLE_TOKEN", "hunter2")]);
    assert!(r.is_secret("token"));
    assert!(!r.is_secret("api_host"));
    assert!(!r.is_secret("nope"));
    assert!(!format!("{r:?}").contains("hunter2"));
    let p = EnvProvider::new([("KILN_VARIABLE_TOKEN".to_string(), "hunter2".to_string())]);
    assert!(!format!("{p:?}").contains("hunter2"));
}

fn kv(pairs: &[(&str, &str)]) -> Vec<(String, String)> {
    pairs
        .iter()
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .collect()
}

#[test]
fn env_provider_with_prefix() {
    let env = kv(&[
        ("MYAPP_TOKEN", "mine"),
        ("KILN_VARIABLE_TOKEN", "kiln"),
        ("API_HOST", "bare"),
    ]);
    let p = EnvProvider::with_prefix("MYAPP", env.clone());
    assert_eq!(p.get("token").as_deref(), Some("mine"));
    assert_eq!(p.get("api_host"), None);
    let p = EnvProvider::with_prefix("", env);
    assert_eq!(p.get("api_host").as_deref(), Some("bare"));
}

#[test]
fn env_provider_dotenv_entries_lose_to_the_environment() {
    let p = EnvProvider::new(kv(&[("SPIN_VARIABLE_TOKEN", "env")])).with_dotenv_entries(kv(&[
        ("SPIN_VARIABLE_TOKEN", "file"),
        ("SPIN_VARIABLE_PORT", "1"),
        ("OTHER", "x"),
    ]));
    assert_eq!(p.get("token").as_deref(), Some("env"));
    assert_eq!(p.get("port").as_deref(), Some("1"));
    assert_eq!(p.get("other"), None);
}

#[test]
fn dotenv_parsing() {
    let text = r#"
# comment
API_HOST=example.com
export TOKEN = "a \"quoted\" value\n" # trailing comment
single='no $expansion \n here'
EMPTY=
unquoted = value with spaces # comment
hash=a#b
"#;
    assert_eq!(
        parse_dotenv(text).unwrap(),
        kv(&[
            ("API_HOST", "example.com"),
            ("TOKEN", "a \"quoted\" value\n"),
            ("single", "no $expansion \\n here"),
            ("EMPTY", ""),
            ("unquoted", "value with spaces"),
            ("hash", "a#b"),
        ])
    );
    assert_eq!(parse_dotenv("A=1\nnot a pair\n").unwrap_err().0, 2);
    assert_eq!(parse_dotenv("=x").unwrap_err().0, 1);
    assert_eq!(parse_dotenv("A B=x").unwrap_err().0, 1);
    let e = parse_dotenv("A=\"hunter2").unwrap_err();
    assert!(e.1.contains("unterminated"), "{e:?}");
    assert!(!e.1.contains("hunter2"));
    assert!(parse_dotenv("A='x' y").is_err());
}

#[test]
fn dotenv_provider_matches_names_case_insensitively() {
    let p = DotenvProvider::from_entries(kv(&[
        ("API_HOST", "upper"),
        ("port", "lower"),
        ("SPIN_VARIABLE_TOKEN", "spin"),
        ("token", "bare"),
        ("KILN_VARIABLE_PORT", "kiln"),
    ]));
    assert_eq!(p.get("api_host").as_deref(), Some("upper"));
    assert_eq!(p.get("token").as_deref(), Some("spin"));
    assert_eq!(p.get("port").as_deref(), Some("kiln"));
    assert_eq!(p.get("nope"), None);
    assert!(!format!("{p:?}").contains("spin\""));
}

fn temp_file(name: &str, text: &str) -> std::path::PathBuf {
    let dir = std::env::temp_dir().join(format!("kiln-vars-{}-{name}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let path = dir.join(".env");
    std::fs::write(&path, text).unwrap();
    path
}

#[test]
fn dotenv_load_errors_name_file_and_line() {
    let path = temp_file("bad", "OK=1\nTOKEN=\"hunter2\n");
    let e = DotenvProvider::load(&path).unwrap_err();
    let shown = e.to_string();
    assert!(shown.contains(&format!("{}:2:", path.display())), "{shown}");
    assert!(!shown.contains("hunter2"), "{shown}");
    let e = DotenvProvider::load(&path.with_file_name("missing.env")).unwrap_err();
    assert!(e.to_string().contains("cannot read"), "{e}");
    std::fs::remove_dir_all(path.parent().unwrap()).unwrap();
}

#[test]
fn providers_from_config_default_is_env_only() {
    let providers = providers_from_config(
        &RuntimeConfig::default(),
        kv(&[("KILN_VARIABLE_TOKEN", "t")]),
    )
    .unwrap();
    assert_eq!(providers.len(), 1);
    assert_eq!(providers[0].get("token").as_deref(), Some("t"));
}

#[test]
fn providers_from_config_in_file_order() {
    let dotenv = temp_file("order", "TOKEN=from-dotenv\nAPI_HOST=dotenv-host\nPORT=1\n");
    let rc = RuntimeConfig::parse(
        format!(
            r#"
[[variables_provider]]
type = "env"

[[variables_provider]]
type = "static"
values = {{ api_host = "static-host", token = "from-static" }}

[[variables_provider]]
type = "dotenv"
path = "{}"
"#,
            dotenv.display()
        ),
        Path::new("/app/runtime-config.toml"),
    )
    .unwrap();
    let providers = providers_from_config(&rc, kv(&[("SPIN_VARIABLE_TOKEN", "from-env")])).unwrap();
    assert_eq!(providers.len(), 3);
    let r = Resolver::new(&manifest(), providers).unwrap();
    assert_eq!(r.app_variable("token").unwrap(), "from-env");
    assert_eq!(r.app_variable("api_host").unwrap(), "static-host");
    assert_eq!(r.app_variable("port").unwrap(), "1");

    // A missing dotenv file fails when providers are made, at startup.
    std::fs::remove_dir_all(dotenv.parent().unwrap()).unwrap();
    let Err(e) = providers_from_config(&rc, Vec::new()) else {
        panic!("expected an error")
    };
    assert!(matches!(e, VariablesError::Dotenv { .. }), "{e}");
}

#[test]
fn providers_from_config_env_prefix_and_dotenv_path() {
    let dotenv = temp_file("envdot", "MYAPP_PORT=7000\nMYAPP_TOKEN=file\n");
    let rc = RuntimeConfig::parse(
        format!(
            "[[variables_provider]]\ntype = \"env\"\nprefix = \"MYAPP\"\ndotenv_path = \"{}\"\n",
            dotenv.display()
        ),
        Path::new("/app/runtime-config.toml"),
    )
    .unwrap();
    let providers = providers_from_config(
        &rc,
        kv(&[
            ("MYAPP_TOKEN", "env"),
            ("KILN_VARIABLE_API_HOST", "ignored"),
        ]),
    )
    .unwrap();
    let r = Resolver::new(&manifest(), providers).unwrap();
    assert_eq!(r.app_variable("token").unwrap(), "env");
    assert_eq!(r.app_variable("port").unwrap(), "7000");
    assert_eq!(r.app_variable("api_host").unwrap(), "api.example.com");
    std::fs::remove_dir_all(dotenv.parent().unwrap()).unwrap();
}

#[test]
fn component_variables_lists_all_in_order() {
    let r = resolver(&[("KILN_VARIABLE_TOKEN", "t")]);
    let all = r.component_variables("web").unwrap();
    let names: Vec<&str> = all.iter().map(|(k, _)| k.as_str()).collect();
    assert_eq!(names, ["host", "redis_port", "auth", "plain"]);
    assert_eq!(all[2].1, "Bearer t");
    assert!(r.component_variables("nope").unwrap().is_empty());
}

/// The manifest from Spin's outbound-networking tests: templates over application variables only.
const APP_VARIABLE_HOSTS: &str = r#"spin_manifest_version = 2
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

fn rendered_hosts(manifest: &str, component: &str) -> Vec<String> {
    let m = Manifest::parse(manifest, Path::new("/app/spin.toml")).unwrap();
    let r = Resolver::new(&m, vec![env(&[])]).unwrap();
    m.components[component]
        .allowed_outbound_hosts
        .iter()
        .map(|h| r.render_for_component(component, &h.pattern).unwrap())
        .collect()
}

#[test]
fn allowed_hosts_render_from_application_variables() {
    let rendered = rendered_hosts(APP_VARIABLE_HOSTS, "test");
    assert_eq!(rendered, ["redis://localhost:6379", "*://127.0.0.0/8:7"]);
    let allowed = kiln_outbound::AllowedHosts::parse(&rendered).unwrap();
    assert!(allowed.allows_url("redis://localhost:6379"));
    assert!(allowed.allows_socket_addr("127.0.0.1:7".parse().unwrap()));
    assert!(!allowed.allows_socket_addr("10.0.0.1:7".parse().unwrap()));
}

#[test]
fn allowed_hosts_prefer_the_application_variable_as_spin_does() {
    // Spin never consults component variables here, so a component variable of the same name
    // does not change what the entry allows.
    let manifest = APP_VARIABLE_HOSTS.replace(
        "source = \"test.wasm\"",
        "source = \"test.wasm\"\nvariables = { redis_host = \"elsewhere\", only_here = \"h\" }",
    )
    .replace("6379\", ", "6379\", \"http://{{ only_here }}\", ");
    assert_eq!(
        rendered_hosts(&manifest, "test"),
        ["redis://localhost:6379", "http://h", "*://127.0.0.0/8:7"]
    );
}
