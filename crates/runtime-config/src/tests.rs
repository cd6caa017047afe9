use super::*;

fn parse(text: &str) -> Result<RuntimeConfig, RuntimeConfigError> {
    RuntimeConfig::parse(text, Path::new("/app/conf/runtime-config.toml"))
}

/// The error, with its Display checked to be the one-line `file:line:col: message` form.
fn err(text: &str) -> RuntimeConfigError {
    let e = parse(text).unwrap_err();
    let (line, col) = e.line_col().expect("positioned error");
    assert!(
        e.to_string()
            .starts_with(&format!("/app/conf/runtime-config.toml:{line}:{col}: ")),
        "{e}"
    );
    assert!(!e.to_string().contains('\n'), "{e}");
    e
}

#[test]
fn empty_file_is_default() {
    let c = parse("").unwrap();
    assert!(c.key_value_stores.is_empty());
    assert!(c.sqlite_databases.is_empty());
    assert!(c.variables_providers.is_empty());
    assert_eq!(
        c.path.as_deref(),
        Some(Path::new("/app/conf/runtime-config.toml"))
    );
}

#[test]
fn key_value_stores() {
    let c = parse(
        r#"
[key_value_store.default]
type = "kiln"

[key_value_store.spin_style]
type = "spin"
path = "../data/kv.db"

[key_value_store.cache]
type = "redis"
url = "redis://localhost:6379"
"#,
    )
    .unwrap();
    let labels: Vec<&str> = c.key_value_stores.keys().map(String::as_str).collect();
    assert_eq!(labels, ["default", "spin_style", "cache"]);
    assert_eq!(
        c.key_value_stores["default"],
        KeyValueStoreConfig::Embedded { path: None }
    );
    assert_eq!(
        c.key_value_stores["spin_style"],
        KeyValueStoreConfig::Embedded {
            path: Some("/app/data/kv.db".into())
        }
    );
    assert_eq!(
        c.key_value_stores["cache"],
        KeyValueStoreConfig::Redis {
            url: "redis://localhost:6379".into()
        }
    );
}

#[test]
fn key_value_store_errors() {
    let e = err("[key_value_store.cache]\ntype = \"redis\"\n");
    assert!(e.message().contains("missing required key `url`"), "{e}");

    let e = err("[key_value_store.cache]\ntype = \"redis\"\nurl = \"http://:hunter2@host\"\n");
    assert_eq!(e.line_col(), Some((3, 7)));
    assert!(e.message().contains("scheme `http`"), "{e}");
    assert!(!format!("{e} {e:?}").contains("hunter2"));

    let e = err("[key_value_store.default]\npath = \"x\"\n");
    assert!(e.message().contains("missing required key `type`"), "{e}");

    let e = err("[key_value_store.default]\ntype = \"kiln\"\nurl = \"redis://x\"\n");
    assert_eq!(e.line_col(), Some((3, 1)));
    assert_eq!(
        e.message(),
        "unknown key `url` in [key_value_store.default]"
    );
    assert_eq!(
        e.help_text(),
        Some("remove or rename it; keys allowed here: type, path")
    );

    let e = err("[key_value_store.default]\ntype = \"memcached\"\n");
    assert_eq!(e.line_col(), Some((2, 8)));
    assert!(e.message().contains("unknown type \"memcached\""), "{e}");

    let e = err("[key_value_store.default]\ntype = \"azure_cosmos\"\n");
    assert!(e.message().contains("not supported by Kiln yet"), "{e}");

    let e = err("[key_value_store.default]\ntype = 3\n");
    assert!(e.message().contains("must be a string"), "{e}");

    let e = err("[key_value_store.\"Bad Label\"]\ntype = \"kiln\"\n");
    assert!(e.message().contains("invalid label"), "{e}");

    let e = err("[key_value_store.default]\ntype = \"kiln\"\npath = \"\"\n");
    assert!(e.message().contains("must not be empty"), "{e}");

    let e = err("key_value_store = 1\n");
    assert!(e.message().contains("must be a table"), "{e}");
}

#[test]
fn sqlite_databases() {
    let c = parse(
        "[sqlite_database.default]\ntype = \"spin\"\n[sqlite_database.other]\ntype = \"kiln\"\npath = \"./db/other.db\"\n",
    )
    .unwrap();
    assert_eq!(
        c.sqlite_databases["default"],
        SqliteDatabaseConfig::Embedded { path: None }
    );
    assert_eq!(
        c.sqlite_databases["other"],
        SqliteDatabaseConfig::Embedded {
            path: Some("/app/conf/db/other.db".into())
        }
    );
}

#[test]
fn sqlite_database_errors() {
    let e =
        err("[sqlite_database.default]\ntype = \"libsql\"\nurl = \"https://x\"\ntoken = \"t\"\n");
    assert_eq!(e.line_col(), Some((2, 8)));
    assert_eq!(
        e.message(),
        "[sqlite_database.default]: type \"libsql\" is not supported by Kiln yet"
    );
    let e = err("[sqlite_database.default]\ntype = \"postgres\"\n");
    assert!(e.message().contains("unknown type"), "{e}");
    let e = err("[sqlite_database.default]\ntype = \"spin\"\nurl = \"x\"\n");
    assert!(e.message().contains("unknown key `url`"), "{e}");
}

#[test]
fn variables_providers_in_file_order() {
    let c = parse(
        r#"
[[variables_provider]]
type = "dotenv"
path = "secrets.env"

[[variables_provider]]
type = "static"
values = { api_host = "example.com", token = "t" }

[[variables_provider]]
type = "env"

[[variables_provider]]
type = "env"
prefix = "MYAPP"
dotenv_path = ".env"
"#,
    )
    .unwrap();
    assert_eq!(
        c.variables_providers,
        vec![
            VariablesProviderConfig::Dotenv {
                path: "/app/conf/secrets.env".into()
            },
            VariablesProviderConfig::Static {
                values: [("api_host", "example.com"), ("token", "t")]
                    .into_iter()
                    .map(|(k, v)| (k.to_string(), v.to_string()))
                    .collect()
            },
            VariablesProviderConfig::Env {
                prefix: None,
                dotenv_path: None
            },
            VariablesProviderConfig::Env {
                prefix: Some("MYAPP".into()),
                dotenv_path: Some("/app/conf/.env".into())
            },
        ]
    );
}

#[test]
fn variables_provider_errors() {
    let e = err("[[variables_provider]]\ntype = \"static\"\nvalues = { Bad = \"x\" }\n");
    assert_eq!(e.line_col(), Some((3, 12)));
    assert!(e.message().contains("invalid variable name `Bad`"), "{e}");

    let e = err("[[variables_provider]]\ntype = \"static\"\nvalues = { token = 42 }\n");
    assert!(
        e.message().contains("value of `token` must be a string"),
        "{e}"
    );

    let e = err("[[variables_provider]]\ntype = \"static\"\n");
    assert!(e.message().contains("needs `values`"), "{e}");

    let e = err(
        "[[variables_provider]]\ntype = \"static\"\nvalues = { token = \"hunter2\" }\nextra = 1\n",
    );
    assert!(e.message().contains("unknown key `extra`"), "{e}");
    assert!(!format!("{e} {e:?}").contains("hunter2"));

    let e = err("[[variables_provider]]\ntype = \"dotenv\"\n");
    assert!(e.message().contains("needs `path`"), "{e}");

    for ty in ["vault", "azure_key_vault"] {
        let e = err(&format!(
            "[[variables_provider]]\ntype = \"{ty}\"\nurl = \"x\"\n"
        ));
        assert_eq!(e.line_col(), Some((2, 8)));
        assert!(e.message().contains("not supported by Kiln yet"), "{e}");
    }

    let e = err("[[variables_provider]]\ntype = \"consul\"\n");
    assert!(e.message().contains("unknown type \"consul\""), "{e}");

    let e = err("[[variables_provider]]\nprefix = \"X\"\n");
    assert!(e.message().contains("missing required key `type`"), "{e}");

    let e = err("[[variables_provider]]\ntype = \"env\"\nprefix = 1\n");
    assert!(e.message().contains("`prefix` must be a string"), "{e}");

    let e = err("[variables_provider]\ntype = \"env\"\n");
    assert!(e.message().contains("array of tables"), "{e}");
}

#[test]
fn top_level_errors() {
    let e = err("[key_value_stores.default]\ntype = \"kiln\"\n");
    assert_eq!(e.line_col(), Some((1, 2)));
    assert_eq!(e.message(), "unknown key `key_value_stores`");
    assert!(
        e.help_text()
            .unwrap()
            .contains("key_value_store, sqlite_database")
    );

    let e = err("[otel]\nendpoint = \"x\"\n");
    assert!(e.message().contains("not supported by Kiln yet"), "{e}");

    let e = err("[key_value_store.default\ntype = \"kiln\"\n");
    assert!(e.message().starts_with("invalid TOML"), "{e}");
}

#[test]
fn load_reads_the_file_and_resolves_relative_paths() {
    let dir = std::env::temp_dir().join(format!("kiln-rc-test-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let file = dir.join("rc.toml");
    std::fs::write(
        &file,
        "[key_value_store.default]\ntype = \"kiln\"\npath = \"kv.db\"\n",
    )
    .unwrap();
    let c = RuntimeConfig::load(&file).unwrap();
    assert_eq!(
        c.key_value_stores["default"],
        KeyValueStoreConfig::Embedded {
            path: Some(dir.join("kv.db"))
        }
    );
    let missing = RuntimeConfig::load(&dir.join("nope.toml")).unwrap_err();
    assert!(
        missing
            .to_string()
            .contains("nope.toml: cannot read runtime config file"),
        "{missing}"
    );
    assert_eq!(missing.line_col(), None);
    std::fs::remove_dir_all(&dir).unwrap();
}

#[test]
fn diagnostic_has_help_and_label() {
    use miette::Diagnostic;
    let e = err("[sqlite_database.default]\ntype = \"libsql\"\n");
    assert!(e.help().is_some());
    assert_eq!(e.labels().unwrap().count(), 1);
    assert!(e.source_code().is_some());
}

#[test]
fn llm_compute_remote_http() {
    let config = parse("[llm_compute]\ntype = \"remote_http\"\nurl = \"https://llm.example.com\"\nauth_token = \"secret\"\n").unwrap();
    assert_eq!(
        config.llm_compute,
        Some(LlmComputeConfig::RemoteHttp { url: "https://llm.example.com".into(), auth_token: "secret".into() })
    );
    assert!(!format!("{:?}", config.llm_compute).contains("secret"), "the token is never shown");

    let e = err("[llm_compute]\ntype = \"remote_http\"\nurl = \"https://llm.example.com\"\n");
    assert!(e.message().contains("missing required key `auth_token`"), "{e}");
    let e = err("[llm_compute]\ntype = \"remote_http\"\nurl = \"llm.example.com\"\nauth_token = \"t\"\n");
    assert!(e.message().contains("not an http:// or https:// URL"), "{e}");
    let config = parse("[llm_compute]\ntype = \"spin\"\n").unwrap();
    assert_eq!(config.llm_compute, Some(LlmComputeConfig::Local));
    let e = err("[llm_compute]\ntype = \"remote_http\"\nurl = \"http://x\"\nauth_token = \"t\"\nmodel = \"m\"\n");
    assert_eq!(e.message(), "unknown key `model` in [llm_compute]");
}

#[test]
fn messaging_brokers() {
    let broker = |text: &str| parse(text).unwrap().messaging.unwrap();
    let c = broker("[messaging]\ntype = \"nats\"\nurl = \"nats://127.0.0.1:4222\"\nmax_deliver = 3\n");
    assert_eq!(c, MessagingConfig { broker: BrokerConfig::Nats { url: "nats://127.0.0.1:4222".into() }, max_deliver: Some(3) });
    let c = broker("[messaging]\ntype = \"redis\"\nurl = \"redis://127.0.0.1:6379\"\n");
    assert_eq!(c, MessagingConfig { broker: BrokerConfig::Redis { url: "redis://127.0.0.1:6379".into() }, max_deliver: None });
    for ty in ["in-process", "in_process", "kiln"] {
        assert_eq!(broker(&format!("[messaging]\ntype = \"{ty}\"\n")).broker, BrokerConfig::InProcess);
    }
    assert_eq!(parse("[key_value_store.default]\ntype = \"spin\"\n").unwrap().messaging, None);
}

#[test]
fn messaging_errors_name_the_key() {
    for (text, message) in [
        ("[messaging]\ntype = \"nats\"\n", "[messaging] is missing required key `url`"),
        ("[messaging]\ntype = \"kafka\"\n", "[messaging]: unknown type \"kafka\""),
        ("[messaging]\ntype = \"redis\"\n", "[messaging] is missing required key `url`"),
        ("[messaging]\ntype = \"redis\"\nurl = \"nats://x:4222\"\n", "`url` has scheme `nats`, not a Redis URL"),
        ("[messaging]\nurl = \"nats://x\"\n", "[messaging] is missing required key `type`"),
        ("[messaging]\ntype = \"nats\"\nurl = \"nats://x\"\nmax_deliver = 0\n", "`max_deliver` must be a whole number of at least 1"),
        ("[messaging]\ntype = \"nats\"\nurl = \"nats://x\"\nmax_deliver = \"5\"\n", "`max_deliver` must be a whole number of at least 1"),
        ("[messaging]\ntype = \"nats\"\nurl = \"nats://x\"\nextra = 1\n", "unknown key `extra` in [messaging]"),
        ("[messaging]\ntype = \"in-process\"\nurl = \"nats://x\"\n", "unknown key `url` in [messaging]"),
        ("messaging = 3\n", "`messaging` must be a table"),
    ] {
        assert_eq!(err(text).message(), message, "{text}");
    }
}
