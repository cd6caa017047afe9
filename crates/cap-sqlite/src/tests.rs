use super::*;
use kiln_runtime_config::SqliteDatabaseConfig;
use std::path::PathBuf;

fn borrow(r: &Resource<Connection>) -> Resource<Connection> {
    Resource::new_borrow(r.rep())
}

fn app(dir: &Path) -> SqliteApp {
    SqliteApp::new(&dir.join(".kiln"), &RuntimeConfig::default())
}

fn config_with(labels: &[(&str, Option<PathBuf>)], file: Option<PathBuf>) -> RuntimeConfig {
    let mut config = RuntimeConfig {
        path: file,
        ..RuntimeConfig::default()
    };
    for (label, path) in labels {
        config.sqlite_databases.insert(
            label.to_string(),
            SqliteDatabaseConfig::Embedded { path: path.clone() },
        );
    }
    config
}

async fn exec2(
    inst: &mut SqliteInstance,
    conn: &Resource<Connection>,
    sql: &str,
    params: Vec<v2::Value>,
) -> Result<v2::QueryResult, v2::Error> {
    v2::HostConnection::execute(inst, borrow(conn), sql.to_string(), params).await
}

async fn exec3(
    inst: &mut SqliteInstance,
    conn: &Resource<Connection>,
    sql: &str,
    params: Vec<v3::Value>,
) -> Result<v3::QueryResult, v3::Error> {
    v3::HostConnection::execute(inst, borrow(conn), sql.to_string(), params).await
}

#[tokio::test]
async fn v2_all_value_types_round_trip_through_parameters() {
    let dir = tempfile::tempdir().unwrap();
    let app = app(dir.path());
    let mut inst = app.component_state(&["default"]).instance();
    let conn = v2::HostConnection::open(&mut inst, "default".into())
        .await
        .unwrap();
    exec2(&mut inst, &conn, "CREATE TABLE t (i, r, s, b, n)", vec![])
        .await
        .unwrap();
    let row = vec![
        v2::Value::Integer(i64::MIN),
        v2::Value::Real(-1.5e300),
        v2::Value::Text("héllo 👋 'quoted'".into()),
        v2::Value::Blob(vec![0, 255, 1, 2]),
        v2::Value::Null,
    ];
    let inserted = exec2(
        &mut inst,
        &conn,
        "INSERT INTO t VALUES (?, ?, ?, ?, ?)",
        row.clone(),
    )
    .await
    .unwrap();
    assert!(inserted.columns.is_empty() && inserted.rows.is_empty());
    let result = exec2(
        &mut inst,
        &conn,
        "SELECT i, r, s, b, n FROM t WHERE i = ?",
        vec![v2::Value::Integer(i64::MIN)],
    )
    .await
    .unwrap();
    assert_eq!(result.columns, ["i", "r", "s", "b", "n"]);
    assert_eq!(result.rows.len(), 1);
    assert_eq!(format!("{:?}", result.rows[0].values), format!("{row:?}"));
    // Types come from the values, not the column declaration (SQLite's dynamic typing).
    let result = exec2(
        &mut inst,
        &conn,
        "SELECT 1, 2.5, 'x', x'00ff', NULL, ?1 + 1",
        vec![v2::Value::Integer(41)],
    )
    .await
    .unwrap();
    assert_eq!(
        format!("{:?}", result.rows[0].values),
        format!(
            "{:?}",
            vec![
                v2::Value::Integer(1),
                v2::Value::Real(2.5),
                v2::Value::Text("x".into()),
                v2::Value::Blob(vec![0, 255]),
                v2::Value::Null,
                v2::Value::Integer(42),
            ]
        )
    );
    assert!(
        dir.path()
            .join(".kiln")
            .join(DEFAULT_DATABASE_FILE)
            .is_file()
    );
}

#[tokio::test]
async fn v3_values_rowid_and_changes() {
    let dir = tempfile::tempdir().unwrap();
    let app = app(dir.path());
    let mut inst = app.component_state(&["default"]).instance();
    let conn = v3::HostConnection::open(&mut inst, "default".into())
        .await
        .unwrap();
    assert_eq!(
        v3::HostConnection::last_insert_rowid(&mut inst, borrow(&conn)).await,
        0
    );
    assert_eq!(
        v3::HostConnection::changes(&mut inst, borrow(&conn)).await,
        0
    );
    exec3(
        &mut inst,
        &conn,
        "CREATE TABLE t (id INTEGER PRIMARY KEY, v)",
        vec![],
    )
    .await
    .unwrap();
    for v in [
        v3::Value::Real(0.25),
        v3::Value::Text(String::new()),
        v3::Value::Blob(vec![]),
        v3::Value::Null,
        v3::Value::Integer(i64::MAX),
    ] {
        exec3(&mut inst, &conn, "INSERT INTO t (v) VALUES (?)", vec![v])
            .await
            .unwrap();
    }
    assert_eq!(
        v3::HostConnection::last_insert_rowid(&mut inst, borrow(&conn)).await,
        5
    );
    exec3(&mut inst, &conn, "UPDATE t SET v = 1 WHERE id > 2", vec![])
        .await
        .unwrap();
    assert_eq!(
        v3::HostConnection::changes(&mut inst, borrow(&conn)).await,
        3
    );
    let rows = exec3(
        &mut inst,
        &conn,
        "SELECT v FROM t WHERE id <= 2 ORDER BY id",
        vec![],
    )
    .await
    .unwrap();
    assert_eq!(
        format!("{:?}", rows.rows),
        format!(
            "{:?}",
            vec![
                v3::RowResult {
                    values: vec![v3::Value::Real(0.25)]
                },
                v3::RowResult {
                    values: vec![v3::Value::Text(String::new())]
                },
            ]
        )
    );
    v3::HostConnection::drop(&mut inst, conn).await.unwrap();

    // The pooled connection comes back, but a new handle does not see the old rowid/changes.
    let conn = v3::HostConnection::open(&mut inst, "default".into())
        .await
        .unwrap();
    assert_eq!(
        v3::HostConnection::last_insert_rowid(&mut inst, borrow(&conn)).await,
        0
    );
    assert_eq!(
        v3::HostConnection::changes(&mut inst, borrow(&conn)).await,
        0
    );
}

#[tokio::test]
async fn grants_map_to_access_denied_and_no_such_database() {
    let dir = tempfile::tempdir().unwrap();
    let config = config_with(&[("other", None)], None);
    let app = SqliteApp::new(&dir.path().join(".kiln"), &config);

    // No grants at all: everything, even `default` and unknown labels, is access-denied.
    let mut none = app.component_state::<&str>(&[]).instance();
    for label in ["default", "other", "nope"] {
        let e = v2::HostConnection::open(&mut none, label.into())
            .await
            .unwrap_err();
        assert!(matches!(e, v2::Error::AccessDenied), "{label}: {e:?}");
        let e = v3::HostConnection::open(&mut none, label.into())
            .await
            .unwrap_err();
        assert!(matches!(e, v3::Error::AccessDenied), "{label}: {e:?}");
    }

    // Granted but not defined anywhere: no-such-database.
    let mut inst = app.component_state(&["nope", "other"]).instance();
    let e = v2::HostConnection::open(&mut inst, "nope".into())
        .await
        .unwrap_err();
    assert!(matches!(e, v2::Error::NoSuchDatabase), "{e:?}");
    let e = v3::HostConnection::open(&mut inst, "nope".into())
        .await
        .unwrap_err();
    assert!(matches!(e, v3::Error::NoSuchDatabase), "{e:?}");
    // Granted `other` but not `default`.
    let e = v2::HostConnection::open(&mut inst, "default".into())
        .await
        .unwrap_err();
    assert!(matches!(e, v2::Error::AccessDenied), "{e:?}");
    // Granted and configured: opens, in its own file.
    let conn = v2::HostConnection::open(&mut inst, "other".into())
        .await
        .unwrap();
    exec2(&mut inst, &conn, "CREATE TABLE x (a)", vec![])
        .await
        .unwrap();
    assert!(dir.path().join(".kiln/sqlite_db_other.db").is_file());
    assert!(
        !dir.path()
            .join(".kiln")
            .join(DEFAULT_DATABASE_FILE)
            .exists()
    );
}

#[tokio::test]
async fn statement_errors_are_io_errors_and_bad_handles_invalid_connection() {
    let dir = tempfile::tempdir().unwrap();
    let app = app(dir.path());
    let mut inst = app.component_state(&["default"]).instance();
    let conn = v2::HostConnection::open(&mut inst, "default".into())
        .await
        .unwrap();
    for (sql, params, needle) in [
        ("SELEC 1", vec![], "syntax error"),
        ("SELECT * FROM missing", vec![], "no such table"),
        ("SELECT ?", vec![], "1 parameter(s) but 0"),
        ("SELECT 1", vec![v2::Value::Null], "0 parameter(s) but 1"),
        ("SELECT 1; SELECT 2", vec![], "ultiple"),
        ("", vec![], ""),
    ] {
        match exec2(&mut inst, &conn, sql, params).await {
            Err(v2::Error::Io(msg)) => assert!(msg.contains(needle), "{sql}: {msg}"),
            // An empty statement is no statement: SQLite accepts it with no rows.
            Ok(r) if sql.is_empty() => assert!(r.rows.is_empty()),
            other => panic!("{sql}: {other:?}"),
        }
    }
    let bogus = Resource::<Connection>::new_borrow(9999);
    let e = exec2(&mut inst, &bogus, "SELECT 1", vec![])
        .await
        .unwrap_err();
    assert!(matches!(e, v2::Error::InvalidConnection), "{e:?}");
    let e = exec3(&mut inst, &bogus, "SELECT 1", vec![])
        .await
        .unwrap_err();
    assert!(matches!(e, v3::Error::InvalidConnection), "{e:?}");
    assert_eq!(
        v3::HostConnection::changes(&mut inst, borrow(&bogus)).await,
        0
    );
    // The connection still works after errors.
    exec2(&mut inst, &conn, "SELECT 1", vec![]).await.unwrap();
}

#[tokio::test]
async fn guests_cannot_attach_other_files() {
    let dir = tempfile::tempdir().unwrap();
    let app = app(dir.path());
    let mut inst = app.component_state(&["default"]).instance();
    let conn = v2::HostConnection::open(&mut inst, "default".into())
        .await
        .unwrap();
    exec2(&mut inst, &conn, "CREATE TABLE t (a)", vec![])
        .await
        .unwrap();
    let outside = dir.path().join("outside.db");
    for sql in [
        format!("ATTACH DATABASE '{}' AS x", outside.display()),
        format!("VACUUM INTO '{}'", outside.display()),
    ] {
        let e = exec2(&mut inst, &conn, &sql, vec![]).await.unwrap_err();
        assert!(matches!(e, v2::Error::Io(_)), "{sql}: {e:?}");
    }
    assert!(!outside.exists());
}

#[tokio::test]
async fn pooled_connections_carry_no_transaction_or_session_state() {
    let dir = tempfile::tempdir().unwrap();
    let app = app(dir.path());
    let component = app.component_state(&["default"]);
    let mut first = component.instance();
    let conn = v2::HostConnection::open(&mut first, "default".into())
        .await
        .unwrap();
    exec2(&mut first, &conn, "CREATE TABLE t (a)", vec![])
        .await
        .unwrap();
    exec2(&mut first, &conn, "BEGIN", vec![]).await.unwrap();
    exec2(&mut first, &conn, "INSERT INTO t VALUES (1)", vec![])
        .await
        .unwrap();
    let conn2 = v2::HostConnection::open(&mut first, "default".into())
        .await
        .unwrap();
    exec2(&mut first, &conn2, "CREATE TEMP TABLE mine (a)", vec![])
        .await
        .unwrap();
    drop(first); // the instance ends mid-transaction

    let mut second = component.instance();
    for _ in 0..3 {
        let conn = v2::HostConnection::open(&mut second, "default".into())
            .await
            .unwrap();
        let rows = exec2(&mut second, &conn, "SELECT count(*) FROM t", vec![])
            .await
            .unwrap();
        assert_eq!(format!("{:?}", rows.rows[0].values), "[Value::Integer(0)]");
        let e = exec2(&mut second, &conn, "SELECT * FROM mine", vec![])
            .await
            .unwrap_err();
        assert!(
            matches!(e, v2::Error::Io(ref m) if m.contains("no such table")),
            "{e:?}"
        );
        // Writing works: no lock is left behind.
        exec2(&mut second, &conn, "INSERT INTO t VALUES (2)", vec![])
            .await
            .unwrap();
        exec2(&mut second, &conn, "DELETE FROM t", vec![])
            .await
            .unwrap();
        v2::HostConnection::drop(&mut second, conn).await.unwrap();
    }
}

#[tokio::test]
async fn instances_share_the_database_concurrently() {
    let dir = tempfile::tempdir().unwrap();
    let app = app(dir.path());
    let component = app.component_state(&["default"]);
    {
        let mut inst = component.instance();
        let conn = v2::HostConnection::open(&mut inst, "default".into())
            .await
            .unwrap();
        exec2(&mut inst, &conn, "CREATE TABLE c (n INTEGER)", vec![])
            .await
            .unwrap();
    }
    let mut tasks = Vec::new();
    for i in 0..8 {
        let mut inst = component.instance();
        tasks.push(tokio::spawn(async move {
            let conn = v2::HostConnection::open(&mut inst, "default".into())
                .await
                .unwrap();
            for j in 0..20 {
                exec2(
                    &mut inst,
                    &conn,
                    "INSERT INTO c VALUES (?)",
                    vec![v2::Value::Integer(i * 100 + j)],
                )
                .await
                .unwrap();
            }
        }));
    }
    for t in tasks {
        t.await.unwrap();
    }
    let mut inst = component.instance();
    let conn = v2::HostConnection::open(&mut inst, "default".into())
        .await
        .unwrap();
    let rows = exec2(&mut inst, &conn, "SELECT count(*) FROM c", vec![])
        .await
        .unwrap();
    assert_eq!(
        format!("{:?}", rows.rows[0].values),
        "[Value::Integer(160)]"
    );
}

#[tokio::test]
async fn connections_per_instance_are_limited() {
    let dir = tempfile::tempdir().unwrap();
    let app = app(dir.path());
    let mut inst = app.component_state(&["default"]).instance();
    let mut open = Vec::new();
    for _ in 0..MAX_CONNECTIONS_PER_INSTANCE {
        open.push(
            v2::HostConnection::open(&mut inst, "default".into())
                .await
                .unwrap(),
        );
    }
    let e = v2::HostConnection::open(&mut inst, "default".into())
        .await
        .unwrap_err();
    assert!(
        matches!(e, v2::Error::Io(ref m) if m.contains("too many")),
        "{e:?}"
    );
    v2::HostConnection::drop(&mut inst, open.pop().unwrap())
        .await
        .unwrap();
    v2::HostConnection::open(&mut inst, "default".into())
        .await
        .unwrap();
}

#[test]
fn invalid_utf8_text_is_returned_lossily_and_results_are_bounded() {
    let dir = tempfile::tempdir().unwrap();
    let db = Arc::new(Database::new("default".into(), dir.path().join("x.db")));
    let mut conn = db.connect().unwrap();
    let shared = conn.shared().unwrap();
    let r = db::execute(&shared, "SELECT CAST(x'ff41' AS TEXT)", vec![], 1 << 20).unwrap();
    assert_eq!(r.rows, vec![vec![Value::Text("\u{fffd}A".into())]]);
    let e = db::execute(&shared, "SELECT zeroblob(2000)", vec![], 1000).unwrap_err();
    assert!(
        matches!(e, DbError::Io(ref m) if m.contains("exceeds limit")),
        "{e:?}"
    );
}

#[test]
fn a_full_database_is_database_full() {
    let dir = tempfile::tempdir().unwrap();
    let db = Arc::new(Database::new("default".into(), dir.path().join("x.db")));
    let mut conn = db.connect().unwrap();
    let shared = conn.shared().unwrap();
    db::execute(&shared, "CREATE TABLE t (b)", vec![], 1 << 20).unwrap();
    db::execute(&shared, "PRAGMA max_page_count = 20", vec![], 1 << 20).unwrap();
    let e = db::execute(
        &shared,
        "INSERT INTO t VALUES (zeroblob(1000000))",
        vec![],
        1 << 20,
    )
    .unwrap_err();
    assert_eq!(e, DbError::DatabaseFull);
}

#[test]
fn database_paths_follow_the_runtime_config() {
    let state = Path::new("/app/.kiln");
    let none = RuntimeConfig::default();
    assert_eq!(
        database_path("default", state, &none).unwrap(),
        state.join("sqlite_db.db")
    );
    assert_eq!(database_path("other", state, &none), None);

    let config = config_with(
        &[
            ("default", Some(PathBuf::from("data/main.db"))),
            ("abs", Some(PathBuf::from("/var/db/abs.db"))),
            ("bare", None),
        ],
        Some(PathBuf::from("/etc/kiln/runtime-config.toml")),
    );
    assert_eq!(
        database_path("default", state, &config).unwrap(),
        Path::new("/etc/kiln/data/main.db")
    );
    assert_eq!(
        database_path("abs", state, &config).unwrap(),
        Path::new("/var/db/abs.db")
    );
    assert_eq!(
        database_path("bare", state, &config).unwrap(),
        state.join("sqlite_db_bare.db")
    );
    let app = SqliteApp::new(state, &config);
    assert_eq!(
        app.database_file("default").unwrap(),
        Path::new("/etc/kiln/data/main.db")
    );
    assert!(app.database_file("missing").is_none());
}

#[tokio::test]
async fn run_statements_seeds_the_databases_guests_use() {
    let dir = tempfile::tempdir().unwrap();
    let state = dir.path().join(".kiln");
    let config = config_with(&[("other", None)], None);

    run_statements(
        &state,
        &config,
        "CREATE TABLE t (a); INSERT INTO t VALUES ('x');",
    )
    .unwrap();
    // Statements that return rows are fine (read and discarded).
    run_statements(&state, &config, "SELECT * FROM t").unwrap();
    let file = dir.path().join("seed.sql");
    std::fs::write(
        &file,
        "CREATE TABLE o (b);\nINSERT INTO o VALUES (1), (2);\n",
    )
    .unwrap();
    run_statements(&state, &config, &format!("@{}:other", file.display())).unwrap();
    std::fs::write(&file, "INSERT INTO t VALUES ('from file');").unwrap();
    run_statements(&state, &config, &format!("@{}", file.display())).unwrap();

    let app = SqliteApp::new(&state, &config);
    let mut inst = app.component_state(&["default", "other"]).instance();
    let conn = v2::HostConnection::open(&mut inst, "default".into())
        .await
        .unwrap();
    let rows = exec2(&mut inst, &conn, "SELECT a FROM t ORDER BY rowid", vec![])
        .await
        .unwrap();
    assert_eq!(
        format!("{:?}", rows.rows),
        format!(
            "{:?}",
            vec![
                v2::RowResult {
                    values: vec![v2::Value::Text("x".into())]
                },
                v2::RowResult {
                    values: vec![v2::Value::Text("from file".into())]
                },
            ]
        )
    );
    let conn = v2::HostConnection::open(&mut inst, "other".into())
        .await
        .unwrap();
    let rows = exec2(&mut inst, &conn, "SELECT count(*) FROM o", vec![])
        .await
        .unwrap();
    assert_eq!(format!("{:?}", rows.rows[0].values), "[Value::Integer(2)]");

    // Failures name the problem.
    let e = run_statements(&state, &config, "CREATE TABLE t (a)").unwrap_err();
    assert!(format!("{e:#}").contains("already exists"), "{e:#}");
    let e = run_statements(&state, &config, &format!("@{}:nope", file.display())).unwrap_err();
    assert!(
        format!("{e:#}").contains("no SQLite database `nope`"),
        "{e:#}"
    );
    let e = run_statements(&state, &config, "@/does/not/exist.sql").unwrap_err();
    assert!(format!("{e:#}").contains("cannot read"), "{e:#}");
    assert!(run_statements(&state, &config, "@").is_err());
}

#[test]
fn file_and_label_parse_like_spin() {
    let p = db::parse_file_and_label_for_test;
    assert_eq!(p("file").unwrap(), ("file", "default"));
    assert_eq!(p("file:label").unwrap(), ("file", "label"));
    assert_eq!(p(" file : label ").unwrap(), ("file", "label"));
    assert!(p("file:").is_err());
    assert!(p(":label").is_err());
    assert!(p("").is_err());
}

#[tokio::test]
async fn configure_app_and_link() {
    let dir = tempfile::tempdir().unwrap();
    let manifest_path = dir.path().join("spin.toml");
    let manifest = kiln_manifest::Manifest::parse(
        r#"
spin_manifest_version = 2
[application]
name = "t"
[[trigger.http]]
route = "/..."
component = "c"
[component.c]
source = "c.wasm"
sqlite_databases = ["default", "unconfigured"]
[component.d]
source = "d.wasm"
"#,
        &manifest_path,
    )
    .unwrap();
    let variables = Arc::new(kiln_variables::Resolver::new(&manifest, vec![]).unwrap());
    let state_dir = dir.path().join(".kiln");
    let runtime_config = RuntimeConfig::default();
    let ctx = AppContext {
        manifest: &manifest,
        runtime_config: &runtime_config,
        variables: &variables,
        state_dir: &state_dir,
        observer: None,
    };
    let app = Sqlite.configure_app(&ctx).unwrap();
    let allowed = kiln_outbound::AllowedHosts::none();
    for (id, expect_default) in [("c", true), ("d", false)] {
        let component = manifest.component(id).unwrap();
        let prepared = app
            .component(&ComponentContext {
                manifest: &manifest,
                component,
                allowed_hosts: &allowed,
            })
            .unwrap();
        let mut state = prepared.instance_state();
        let inst = state.downcast_mut::<SqliteInstance>().unwrap();
        let result = v2::HostConnection::open(inst, "default".into()).await;
        assert_eq!(result.is_ok(), expect_default, "{id}");
        if id == "c" {
            let e = v2::HostConnection::open(inst, "unconfigured".into())
                .await
                .unwrap_err();
            assert!(matches!(e, v2::Error::NoSuchDatabase));
        }
    }

    let mut config = wasmtime::Config::new();
    config.wasm_component_model(true);
    let engine = wasmtime::Engine::new(&config).unwrap();
    let mut linker = Linker::<KilnState>::new(&engine);
    (Sqlite.link())(&mut linker).unwrap();
}
