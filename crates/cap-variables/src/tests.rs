use super::*;
use kiln_manifest::Manifest;
use kiln_variables::{EnvProvider, Provider};
use std::path::Path;

const MANIFEST: &str = r#"spin_manifest_version = 2
[application]
name = "app"

[variables]
api_host = { default = "api.example.com" }
token = { required = true, secret = true }

[component.web]
source = "web.wasm"
[component.web.variables]
host = "{{ api_host }}"
auth = "Bearer {{ token }}"

[component.other]
source = "other.wasm"
"#;

fn resolver(env: &[(&str, &str)]) -> Arc<Resolver> {
    let manifest = Manifest::parse(MANIFEST, Path::new("/app/spin.toml")).unwrap();
    let env = EnvProvider::new(env.iter().map(|(k, v)| (k.to_string(), v.to_string())));
    Arc::new(Resolver::new(&manifest, vec![Box::new(env) as Box<dyn Provider>]).unwrap())
}

fn state(component: &str) -> VariablesState {
    VariablesState::new(
        resolver(&[("KILN_VARIABLE_TOKEN", "hunter2")]),
        Arc::from(component),
    )
}

#[test]
fn spin2_get_resolves_component_templates() {
    let mut s = state("web");
    assert_eq!(
        v2::Host::get(&mut s, "host".into()),
        Ok("api.example.com".into())
    );
    assert_eq!(
        v2::Host::get(&mut s, "auth".into()),
        Ok("Bearer hunter2".into())
    );
}

#[test]
fn spin2_errors() {
    let mut s = state("web");
    for bad in ["invalid-name", "invalid!name", "4invalidname", ""] {
        assert!(
            matches!(
                v2::Host::get(&mut s, bad.into()),
                Err(v2::Error::InvalidName(_))
            ),
            "{bad}"
        );
    }
    // Application variables are not visible unless the component maps them.
    assert!(matches!(
        v2::Host::get(&mut s, "api_host".into()),
        Err(v2::Error::Undefined(_))
    ));
    assert!(matches!(
        v2::Host::get(&mut s, "nope".into()),
        Err(v2::Error::Undefined(_))
    ));
    // A component sees only its own table.
    let mut other = state("other");
    assert!(matches!(
        v2::Host::get(&mut other, "host".into()),
        Err(v2::Error::Undefined(_))
    ));
}

#[test]
fn wasi_config_get_maps_unknown_and_invalid_to_none() {
    let mut s = state("web");
    assert_eq!(
        store_2024_09_27::Host::get(&mut s, "auth".into()),
        Ok(Some("Bearer hunter2".into()))
    );
    assert_eq!(store_2024_09_27::Host::get(&mut s, "nope".into()), Ok(None));
    assert_eq!(
        store_2024_09_27::Host::get(&mut s, "Bad-Name".into()),
        Ok(None)
    );
    assert_eq!(
        store_draft::Host::get(&mut s, "host".into()),
        Ok(Some("api.example.com".into()))
    );
    assert_eq!(store_draft::Host::get(&mut s, "nope".into()), Ok(None));
}

#[test]
fn wasi_config_get_all_lists_the_component_table() {
    let mut s = state("web");
    let expected = vec![
        ("host".to_string(), "api.example.com".to_string()),
        ("auth".to_string(), "Bearer hunter2".to_string()),
    ];
    assert_eq!(
        store_2024_09_27::Host::get_all(&mut s),
        Ok(expected.clone())
    );
    assert_eq!(store_draft::Host::get_all(&mut s), Ok(expected));
    let mut other = state("other");
    assert_eq!(store_draft::Host::get_all(&mut other), Ok(vec![]));
}

#[test]
fn failure_mapping() {
    assert!(matches!(
        Failure::from(VariablesError::InvalidName("x-y".into())),
        Failure::InvalidName(_)
    ));
    assert!(matches!(
        Failure::from(VariablesError::Undefined("x".into())),
        Failure::Undefined(_)
    ));
    assert!(matches!(
        Failure::from(VariablesError::MissingRequired { name: "x".into() }),
        Failure::Undefined(_)
    ));
    assert!(matches!(
        Failure::from(VariablesError::Dotenv {
            path: "/x/.env".into(),
            line: Some(2),
            message: "bad".into()
        }),
        Failure::Provider(_)
    ));
    assert_eq!(
        to_v3(Failure::InvalidName("m".into())),
        v3::Error::InvalidName("m".into())
    );
    assert_eq!(
        config_get_all_error(Failure::Provider("p".into())),
        (true, "p".into())
    );
    assert_eq!(
        config_get_all_error(Failure::Other("o".into())),
        (false, "o".into())
    );
}

fn config_get_all_error(f: Failure) -> (bool, String) {
    match f {
        Failure::Provider(m) => (true, m),
        Failure::InvalidName(m) | Failure::Undefined(m) | Failure::Other(m) => (false, m),
    }
}

#[test]
fn errors_never_carry_values() {
    let mut s = state("web");
    let Err(e) = v2::Host::get(&mut s, "nope".into()) else {
        panic!()
    };
    assert!(!format!("{e:?}").contains("hunter2"));
    let debug = format!("{:?}", s.resolver);
    assert!(!debug.contains("hunter2"), "{debug}");
}

#[test]
fn instance_state_is_per_component() {
    let component = ComponentVariables {
        resolver: resolver(&[("KILN_VARIABLE_TOKEN", "t")]),
        component_id: Arc::from("web"),
    };
    let boxed = component.instance_state();
    let mut s = boxed.downcast::<VariablesState>().unwrap();
    assert_eq!(v2::Host::get(&mut *s, "auth".into()), Ok("Bearer t".into()));
}

fn linker(concurrency: bool) -> Linker<KilnState> {
    let mut config = wasmtime::Config::new();
    config.wasm_component_model(true);
    config.concurrency_support(concurrency);
    let engine = wasmtime::Engine::new(&config).unwrap();
    Linker::new(&engine)
}

#[test]
fn links_every_interface() {
    // Without concurrency support: the sync interfaces only.
    let mut l = linker(false);
    link(&mut l).unwrap();
    // With it: spin:variables@3.0.0 too (and no duplicate definitions).
    let mut l = linker(true);
    link(&mut l).unwrap();
    assert_eq!(Variables.name(), "variables");
}

/// A component importing `wasi:config/store@0.2.0-draft` and
/// `fermyon:spin/variables@2.0.0` type-checks against the linker (the WIT matches what guests
/// built for these packages import).
#[test]
fn guest_imports_type_check() {
    let wat = r#"
(component
  (type $store (instance
    (type $err (variant (case "upstream" string) (case "io" string)))
    (export "error" (type $e (eq $err)))
    (type $opt (option string))
    (type $r (result $opt (error $e)))
    (export "get" (func (param "key" string) (result $r)))
    (type $pair (tuple string string))
    (type $list (list $pair))
    (type $r2 (result $list (error $e)))
    (export "get-all" (func (result $r2)))
  ))
  (import "wasi:config/store@0.2.0-draft" (instance (type $store)))
  (import "wasi:config/store@0.2.0-draft-2024-09-27" (instance (type $store)))
  (type $vars (instance
    (type $err (variant (case "invalid-name" string) (case "undefined" string) (case "provider" string) (case "other" string)))
    (export "error" (type $e (eq $err)))
    (type $r (result string (error $e)))
    (export "get" (func (param "name" string) (result $r)))
  ))
  (import "fermyon:spin/variables@2.0.0" (instance (type $vars)))
)
"#;
    let l = {
        let mut l = linker(false);
        link(&mut l).unwrap();
        l
    };
    let component = wasmtime::component::Component::new(l.engine(), wat).unwrap();
    l.instantiate_pre(&component).unwrap();
}

/// A component importing `spin:variables/variables@3.0.0` (`get` as an `async func`) links when
/// the engine has concurrency support.
#[test]
fn spin3_async_import_type_checks_with_concurrency() {
    let wat = r#"
(component
  (type $vars (instance
    (type $err (variant (case "invalid-name" string) (case "undefined" string) (case "provider" string) (case "other" string)))
    (export "error" (type $e (eq $err)))
    (type $r (result string (error $e)))
    (export "get" (func async (param "name" string) (result $r)))
  ))
  (import "spin:variables/variables@3.0.0" (instance (type $vars)))
)
"#;
    let mut l = linker(true);
    link(&mut l).unwrap();
    let component = wasmtime::component::Component::new(l.engine(), wat).unwrap();
    l.instantiate_pre(&component).unwrap();

    // Without concurrency support wasmtime refuses the component itself (async func types need
    // it), so not linking the interface there loses nothing.
    let l = linker(false);
    assert!(wasmtime::component::Component::new(l.engine(), wat).is_err());
}
