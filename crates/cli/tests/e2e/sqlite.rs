//! SQLite, as apps use it: `fermyon:spin/sqlite@2.0.0` and `spin:sqlite/sqlite@3.0.0` through
//! spin-sdk (the `spin_sqlite` guest; `v=3` selects the 3.0 interface). Every value type, parameters,
//! `--sqlite` before serving, grants, durability, parallel writers, isolation, and the example.

use crate::key_value::{App, at, example_app, par, query};
use crate::{body, kiln_bin, single};
use kiln_e2e::kiln::{app_dir, client, free_addr, run_to_exit};
use std::time::Duration;

fn db_manifest(databases: &str) -> String {
    single("spin_sqlite", "/...", &format!("sqlite_databases = {databases}"))
}

fn default_db(args: &[&str]) -> App {
    App::start(&db_manifest("[\"default\"]"), None, args, &[])
}

/// Runs `sql` with the parameters `ps` (`i:1`, `r:1.5`, `t:text`, `b:hex`, `n`) on `db`, through
/// the given interface version (`"2"` or `"3"`).
fn sql(app: &App, version: &str, db: &str, sql: &str, ps: &[&str]) -> (u16, String) {
    sql_at(app, "/", version, db, sql, ps)
}

/// [`sql`] through a guest answering the `spin_sqlite` grammar at `path`.
pub(crate) fn sql_at(app: &App, path: &str, version: &str, db: &str, sql: &str, ps: &[&str]) -> (u16, String) {
    let mut pairs = vec![("db", db), ("sql", sql), ("v", version)];
    pairs.extend(ps.iter().map(|p| ("p", *p)));
    app.get(&at(path, &pairs))
}

fn ok(result: (u16, String)) -> String {
    assert_eq!(result.0, 200, "{}", result.1);
    result.1
}

fn every_value_type_round_trips(version: &str) {
    every_value_type_round_trips_at(&default_db(&[]), "/", version);
}

/// Every SQLite value type and parameter form, through a guest answering the `spin_sqlite` grammar
/// at `path` on `app` (granted `default`).
pub(crate) fn every_value_type_round_trips_at(app: &App, path: &str, version: &str) {
    let sql = |app: &App, version: &str, db: &str, statement: &str, ps: &[&str]| sql_at(app, path, version, db, statement, ps);
    ok(sql(app, version, "default", "CREATE TABLE t (id INTEGER PRIMARY KEY, i INTEGER, r REAL, s TEXT, b BLOB, n)", &[]));
    assert_eq!(
        sql(app, version, "default", "INSERT INTO t (i, r, s, b, n) VALUES (?, ?, ?, ?, ?)", &["i:-42", "r:3.25", "t:héllo 'quoted' \"x\"", "b:00ff10", "n"]),
        (200, "columns: ".into())
    );
    ok(sql(app, version, "default", "INSERT INTO t (i, r, s, b, n) VALUES (?, ?, ?, ?, ?)", &["i:9223372036854775807", "r:-1e300", "t:", "b:", "i:0"]));
    ok(sql(app, version, "default", "INSERT INTO t (i, r, s, b, n) VALUES (?, ?, ?, ?, ?)", &["i:-9223372036854775808", "r:0.1", "t:multi\nline", "b:deadbeef", "r:2.5"]));
    assert_eq!(
        sql(app, version, "default", "SELECT i, r, s, b, n FROM t ORDER BY id", &[]),
        (
            200,
            "columns: i, r, s, b, n\n\
             Integer(-42), Real(3.25), Text(\"héllo 'quoted' \\\"x\\\"\"), Blob(00ff10), Null\n\
             Integer(9223372036854775807), Real(-1e300), Text(\"\"), Blob(), Integer(0)\n\
             Integer(-9223372036854775808), Real(0.1), Text(\"multi\\nline\"), Blob(deadbeef), Real(2.5)"
                .into()
        )
    );
    // Types as SQLite computes them, without parameters.
    assert_eq!(
        sql(app, version, "default", "SELECT 1 AS one, 'x' AS s, NULL AS z, 2.5 AS f, x'0102' AS b, typeof(x'') AS tb", &[]),
        (200, "columns: one, s, z, f, b, tb\nInteger(1), Text(\"x\"), Null, Real(2.5), Blob(0102), Text(\"blob\")".into())
    );
    // Parameters are values, never SQL.
    assert_eq!(sql(app, version, "default", "SELECT ? + ?, ? || ?", &["i:2", "i:3", "t:a", "t:b"]), (200, "columns: ? + ?, ? || ?\nInteger(5), Text(\"ab\")".into()));
    ok(sql(app, version, "default", "INSERT INTO t (s) VALUES (?)", &["t:'); DROP TABLE t; --"]));
    assert_eq!(
        sql(app, version, "default", "SELECT count(*) AS c FROM t WHERE s = ?", &["t:'); DROP TABLE t; --"]),
        (200, "columns: c\nInteger(1)".into())
    );
    // Numbered parameters.
    assert_eq!(sql(app, version, "default", "SELECT ?2, ?1", &["t:first", "t:second"]), (200, "columns: ?2, ?1\nText(\"second\"), Text(\"first\")".into()));
    // No rows: just the columns.
    assert_eq!(sql(app, version, "default", "SELECT i FROM t WHERE id < 0", &[]), (200, "columns: i".into()));
}

#[test]
fn every_value_type_round_trips_v2() {
    every_value_type_round_trips("2");
}

#[test]
fn every_value_type_round_trips_v3() {
    every_value_type_round_trips("3");
}

#[test]
fn v3_reports_changes_and_last_insert_rowid() {
    let app = default_db(&[]);
    ok(sql(&app, "3", "default", "CREATE TABLE t (id INTEGER PRIMARY KEY, s TEXT)", &[]));
    let (status, text) = app.q(&[("sql", "INSERT INTO t (id, s) VALUES (41, 'a'), (42, 'b')"), ("v", "3"), ("meta", "1")]);
    assert_eq!((status, text.as_str()), (200, "columns: \nchanges: 2\nlast-insert-rowid: 42"));
    let (status, text) = app.q(&[("sql", "UPDATE t SET s = 'c' WHERE id = 41"), ("v", "3"), ("meta", "1")]);
    assert_eq!((status, text.as_str()), (200, "columns: \nchanges: 1\nlast-insert-rowid: 42"));
}

#[test]
fn both_interface_versions_see_the_same_database() {
    let app = default_db(&[]);
    ok(sql(&app, "2", "default", "CREATE TABLE t (s TEXT)", &[]));
    ok(sql(&app, "2", "default", "INSERT INTO t VALUES (?)", &["t:from v2"]));
    ok(sql(&app, "3", "default", "INSERT INTO t VALUES (?)", &["t:from v3"]));
    let expected = "columns: s\nText(\"from v2\")\nText(\"from v3\")";
    assert_eq!(sql(&app, "3", "default", "SELECT s FROM t ORDER BY rowid", &[]), (200, expected.into()));
    assert_eq!(sql(&app, "2", "default", "SELECT s FROM t ORDER BY rowid", &[]), (200, expected.into()));
}

#[test]
fn sql_errors_are_io_errors_with_sqlite_s_message() {
    let app = default_db(&[]);
    for v in ["2", "3"] {
        let (status, text) = sql(&app, v, "default", "SELECT * FROM missing_table", &[]);
        assert_eq!(status, 500, "{text}");
        assert!(text.starts_with("error: Io(") && text.contains("no such table: missing_table"), "{text}");
        let (status, text) = sql(&app, v, "default", "THIS IS NOT SQL", &[]);
        assert_eq!(status, 500, "{text}");
        assert!(text.starts_with("error: Io(") && text.contains("syntax error"), "{text}");
        // Wrong parameter count is an error value, not a trap.
        let (status, text) = sql(&app, v, "default", "SELECT ?", &[]);
        assert!(status == 200 || text.starts_with("error: Io("), "{status} {text}");
        let (status, text) = sql(&app, v, "default", "SELECT ?", &["i:1", "i:2"]);
        assert_eq!(status, 500, "{text}");
        assert!(text.starts_with("error: Io("), "{text}");
    }
    // The instance and the host are fine afterwards.
    assert_eq!(sql(&app, "2", "default", "SELECT 1", &[]), (200, "columns: 1\nInteger(1)".into()));
}

#[test]
fn sqlite_flag_runs_statements_before_serving() {
    let app = default_db(&[
        "--sqlite",
        "CREATE TABLE seeded (id INTEGER PRIMARY KEY, name TEXT)",
        "--sqlite",
        "INSERT INTO seeded (name) VALUES ('alpha'), ('beta')",
    ]);
    assert_eq!(
        sql(&app, "2", "default", "SELECT id, name FROM seeded ORDER BY id", &[]),
        (200, "columns: id, name\nInteger(1), Text(\"alpha\")\nInteger(2), Text(\"beta\")".into())
    );
}

#[test]
fn a_failing_sqlite_flag_stops_kiln_up() {
    let dir = app_dir(&db_manifest("[\"default\"]"), &[]);
    let manifest = dir.path().join("kiln.toml");
    let addr = free_addr().to_string();
    let (status, stderr) = run_to_exit(
        &kiln_bin(),
        &["up", "-f", manifest.to_str().unwrap(), "--listen", &addr, "--sqlite", "CREATE TABLE ok_table (x)", "--sqlite", "NOT VALID SQL"],
        Duration::from_secs(60),
    );
    assert!(!status.success(), "kiln up should refuse:\n{stderr}");
    assert!(stderr.contains("NOT VALID SQL") || stderr.contains("syntax error"), "{stderr}");
    assert!(std::net::TcpStream::connect(&addr).is_err(), "a server was started despite the error");
}

#[test]
fn sqlite_denials() {
    for v in ["2", "3"] {
        // Not granted.
        let app = App::start(&single("spin_sqlite", "/...", ""), None, &[], &[]);
        assert_eq!(sql(&app, v, "default", "SELECT 1", &[]), (500, "error: AccessDenied".into()), "v{v}");
        // Granted `default` only.
        let app = default_db(&[]);
        assert_eq!(sql(&app, v, "other", "SELECT 1", &[]), (500, "error: AccessDenied".into()), "v{v}");
        // Granted, but configured nowhere.
        let app = App::start(&db_manifest("[\"default\", \"reports\"]"), None, &[], &[]);
        assert_eq!(sql(&app, v, "reports", "SELECT 1", &[]), (500, "error: NoSuchDatabase".into()), "v{v}");
        assert_eq!(sql(&app, v, "default", "SELECT 1", &[]), (200, "columns: 1\nInteger(1)".into()), "v{v}");
    }
}

#[test]
fn named_databases_from_the_runtime_config() {
    let rc = "[sqlite_database.reports]\ntype = \"spin\"\npath = \"db/reports.db\"\n";
    let app = App::start(&db_manifest("[\"default\", \"reports\"]"), Some(rc), &[], &[]);
    ok(sql(&app, "2", "reports", "CREATE TABLE r (x)", &[]));
    ok(sql(&app, "2", "reports", "INSERT INTO r VALUES (7)", &[]));
    assert_eq!(sql(&app, "3", "reports", "SELECT x FROM r", &[]), (200, "columns: x\nInteger(7)".into()));
    // A separate database: `default` has no table r.
    let (status, text) = sql(&app, "2", "default", "SELECT x FROM r", &[]);
    assert!(status == 500 && text.contains("no such table"), "{status} {text}");
    // `path` is relative to the runtime config file.
    assert!(app.dir.path().join("db/reports.db").is_file(), "no db/reports.db in {}", app.dir.path().display());
}

#[test]
fn committed_rows_survive_kill_9() {
    let mut app = default_db(&[]);
    ok(sql(&app, "2", "default", "CREATE TABLE t (i INTEGER)", &[]));
    for i in 0..30 {
        ok(sql(&app, if i % 2 == 0 { "2" } else { "3" }, "default", "INSERT INTO t VALUES (?)", &[&format!("i:{i}")]));
    }
    app.kill9_and_restart();
    assert_eq!(
        sql(&app, "2", "default", "SELECT count(*), sum(i) FROM t", &[]),
        (200, "columns: count(*), sum(i)\nInteger(30), Integer(435)".into())
    );
}

#[test]
fn parallel_writers_all_commit() {
    let app = default_db(&["--sqlite", "CREATE TABLE hits (n INTEGER)"]);
    let results = par(&app.kiln, 100, 20, |i| {
        query(&[("sql", "INSERT INTO hits VALUES (?)"), ("p", &format!("i:{i}")), ("v", if i % 2 == 0 { "2" } else { "3" })])
    });
    for (status, text) in &results {
        assert_eq!(*status, 200, "a parallel insert failed (database locked?): {text}");
    }
    assert_eq!(
        sql(&app, "2", "default", "SELECT count(*), count(DISTINCT n) FROM hits", &[]),
        (200, "columns: count(*), count(DISTINCT n)\nInteger(100), Integer(100)".into())
    );
    // Read-modify-write in one statement, in parallel: no lost updates.
    ok(sql(&app, "2", "default", "CREATE TABLE counter (n INTEGER)", &[]));
    ok(sql(&app, "2", "default", "INSERT INTO counter VALUES (0)", &[]));
    let results = par(&app.kiln, 100, 20, |_| query(&[("sql", "UPDATE counter SET n = n + 1")]));
    assert!(results.iter().all(|(s, _)| *s == 200), "{results:?}");
    assert_eq!(sql(&app, "2", "default", "SELECT n FROM counter", &[]), (200, "columns: n\nInteger(100)".into()));
}

#[test]
fn two_apps_have_separate_default_databases() {
    let a = default_db(&[]);
    let b = default_db(&[]);
    ok(sql(&a, "2", "default", "CREATE TABLE only_in_a (x)", &[]));
    let (status, text) = sql(&b, "2", "default", "SELECT * FROM only_in_a", &[]);
    assert!(status == 500 && text.contains("no such table"), "{status} {text}");
}

fn send(kiln: &kiln_e2e::kiln::Kiln, method: &str, path: &str, data: &str) -> (u16, String) {
    let method = reqwest::Method::from_bytes(method.as_bytes()).unwrap();
    body(client().request(method, kiln.url(path)).body(data.to_string()).send().expect("request"))
}

#[test]
fn spin_sqlite_example_runs_unchanged() {
    let migration = std::fs::read_to_string(crate::example("spin-sqlite").join("migration.sql")).unwrap();
    for args in [vec!["--sqlite", migration.trim()], vec![]] {
        let (kiln, _state) = example_app("spin-sqlite", &args, &[]);
        assert_eq!(body(kiln.get("/notes")), (200, "".into()));
        assert_eq!(send(&kiln, "POST", "/notes", "water the plants"), (201, "1\n".into()));
        assert_eq!(send(&kiln, "POST", "/notes", "call mum"), (201, "2\n".into()));
        assert_eq!(send(&kiln, "POST", "/notes/1/star", ""), (200, "1\n".into()));
        assert_eq!(send(&kiln, "POST", "/notes/1/star", ""), (200, "2\n".into()));
        assert_eq!(send(&kiln, "POST", "/notes/9/star", ""), (404, "no such note\n".into()));
        assert_eq!(body(kiln.get("/notes")), (200, "1: water the plants (2 stars)\n2: call mum (0 stars)\n".into()));
        assert_eq!(send(&kiln, "DELETE", "/notes/2", ""), (200, "deleted\n".into()));
        assert_eq!(send(&kiln, "DELETE", "/notes/2", ""), (404, "no such note\n".into()));
        assert_eq!(body(kiln.get("/notes")), (200, "1: water the plants (2 stars)\n".into()));
    }
}
