use std::path::Path;

use super::*;

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
fn render_for_component_uses_component_variables() {
    let r = resolver(&[("KILN_VARIABLE_TOKEN", "t"), ("KILN_VARIABLE_PORT", "7000")]);
    assert_eq!(
        r.render_for_component("web", "redis://{{ host }}:{{redis_port}}")
            .unwrap(),
        "redis://api.example.com:7000"
    );
    assert_eq!(
        r.render_for_component("web", "https://{{ api_host }}"),
        Err(VariablesError::Undefined("api_host".into()))
    );
    assert!(matches!(
        r.render_for_component("web", "https://{{ host"),
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
