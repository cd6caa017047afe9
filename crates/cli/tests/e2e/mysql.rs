//! Outbound MySQL, as apps use it, against a real MariaDB: `fermyon:spin/mysql@2.0.0` through
//! spin-sdk 5 (the `spin_mysql` guest) and `spin:mysql/mysql@3.0.0` through spin-sdk 7 (the
//! `spin4_outbound` guest, rows read from a stream). Values of every type the interfaces carry,
//! with and without parameters; the allow-list; the server's errors and a server that goes away
//! are the interface's errors, never a trap; a transaction left open never reaches another request.

use crate::key_value::{App, at};
use crate::single;
use kiln_e2e::services::MariaDbServer;

fn mysql_app(guest: &str, allowed: &str) -> App {
    App::start(&single(guest, "/...", &format!("allowed_outbound_hosts = {allowed}")), None, &[], &[])
}

fn granted(guest: &str, db: &MariaDbServer) -> App {
    mysql_app(guest, &format!("[\"mysql://127.0.0.1:{}\"]", db.port()))
}

fn path(guest: &str) -> &'static str {
    if guest == "spin4_outbound" { "/mysql" } else { "/" }
}

fn op(app: &App, guest: &str, addr: &str, pairs: &[(&str, &str)]) -> (u16, String) {
    let mut all = vec![("addr", addr)];
    all.extend_from_slice(pairs);
    app.get(&at(path(guest), &all))
}

const CREATE: &str = "CREATE TABLE v (id INT PRIMARY KEY, t8 TINYINT, t16 SMALLINT, t32 INT, t64 BIGINT, \
    u8 TINYINT UNSIGNED, u16 SMALLINT UNSIGNED, u32 INT UNSIGNED, u64 BIGINT UNSIGNED, f FLOAT, d DOUBLE, \
    s VARCHAR(20), tx TEXT, vb VARBINARY(8), bl BLOB, dec_ DECIMAL(10,3), flag BOOLEAN, day DATE)";

const INSERT: &str = "INSERT INTO v (id, t8, t16, t32, t64, u8, u16, u32, u64, f, d, s, tx, vb, bl, dec_, flag) \
    VALUES (1, -128, -32768, -2147483648, -9223372036854775808, 255, 65535, 4294967295, 18446744073709551615, \
    1.5, -2.25, 'héllo', 'long text', X'00FF', X'DEAD', 12.345, TRUE)";

/// The row as both guests print it: with parameters (binary protocol) and without (text).
const EXPECTED: &str = "columns: id:DbDataType::Int32, t8:DbDataType::Int8, t16:DbDataType::Int16, t32:DbDataType::Int32, \
t64:DbDataType::Int64, u8:DbDataType::Uint8, u16:DbDataType::Uint16, u32:DbDataType::Uint32, u64:DbDataType::Uint64, \
f:DbDataType::Floating32, d:DbDataType::Floating64, s:DbDataType::Str, tx:DbDataType::Str, vb:DbDataType::Binary, \
bl:DbDataType::Binary, dec_:DbDataType::Str, flag:DbDataType::Int8, day:DbDataType::Other\n\
DbValue::Int32(1) | DbValue::Int8(-128) | DbValue::Int16(-32768) | DbValue::Int32(-2147483648) | \
DbValue::Int64(-9223372036854775808) | DbValue::Uint8(255) | DbValue::Uint16(65535) | DbValue::Uint32(4294967295) | \
DbValue::Uint64(18446744073709551615) | DbValue::Floating32(1.5) | DbValue::Floating64(-2.25) | DbValue::Str(\"héllo\") | \
DbValue::Str(\"long text\") | DbValue::Binary([0, 255]) | DbValue::Binary([222, 173]) | DbValue::Str(\"12.345\") | \
DbValue::Int8(1) | DbValue::DbNull";

fn every_value(guest: &str) {
    let db = MariaDbServer::start();
    db.sql(CREATE);
    db.sql(INSERT);
    let app = granted(guest, &db);
    let url = db.url();
    assert_eq!(op(&app, guest, &url, &[("op", "open")]), (200, "opened".into()));
    let text_protocol = op(&app, guest, &url, &[("op", "query"), ("sql", "SELECT * FROM v")]);
    assert_eq!(text_protocol, (200, EXPECTED.to_string()));
    let binary_protocol = op(&app, guest, &url, &[("op", "query"), ("sql", "SELECT * FROM v WHERE id = ?"), ("p", "i32:1")]);
    assert_eq!(binary_protocol, (200, EXPECTED.to_string()));
    // Parameters of each kind go in and come back.
    let insert = [("op", "execute"), ("sql", "INSERT INTO v (id, u32, d, s, vb, t8) VALUES (?, ?, ?, ?, ?, ?)"),
        ("p", "i64:2"), ("p", "u32:7"), ("p", "f64:0.5"), ("p", "s:x y"), ("p", "b:0102"), ("p", "null")];
    assert_eq!(op(&app, guest, &url, &insert), (200, "ok".into()));
    assert_eq!(db.sql("SELECT id, u32, d, s, HEX(vb), t8 IS NULL FROM v WHERE id = 2"), "2\t7\t0.5\tx y\t0102\t1");
    // The server's errors are query-failed; the app keeps serving.
    let (status, text) = op(&app, guest, &url, &[("op", "query"), ("sql", "SELECT * FROM nowhere")]);
    assert_eq!(status, 500, "{text}");
    assert!(text.starts_with("error: QueryFailed(") && text.contains("nowhere"), "{text}");
    let (status, text) = op(&app, guest, &url, &insert);
    assert!(status == 500 && text.starts_with("error: QueryFailed(") && text.contains("Duplicate"), "{text}");
}

#[test]
fn mysql_2_every_value() {
    every_value("spin_mysql");
}

#[test]
fn mysql_3_every_value() {
    every_value("spin4_outbound");
}

fn denials(guest: &str) {
    let db = MariaDbServer::start();
    let other = format!("[\"mysql://127.0.0.1:{}\"]", db.port() as u32 + 1);
    for allowed in ["[]", other.as_str(), "[\"postgres://127.0.0.1:*\"]"] {
        let app = mysql_app(guest, allowed);
        let (status, text) = op(&app, guest, &db.url(), &[("op", "open")]);
        assert_eq!(status, 500, "{allowed}: {text}");
        assert!(text.starts_with("error: ConnectionFailed(") && text.contains("not permitted"), "{allowed}: {text}");
    }
    for allowed in ["[\"mysql://127.0.0.1:*\"]", "[\"*://127.0.0.0/8:*\"]"] {
        let app = mysql_app(guest, allowed);
        assert_eq!(op(&app, guest, &db.url(), &[("op", "open")]), (200, "opened".into()), "{allowed}");
    }
    let app = granted(guest, &db);
    let (_, text) = op(&app, guest, "not a url", &[("op", "open")]);
    assert!(text.starts_with("error: ConnectionFailed("), "{text}");
    let wrong_password = format!("mysql://kiln:nope@127.0.0.1:{}/kiln", db.port());
    let (_, text) = op(&app, guest, &wrong_password, &[("op", "open")]);
    assert!(text.starts_with("error: ConnectionFailed(") && text.contains("denied"), "{text}");
}

#[test]
fn mysql_2_denials() {
    denials("spin_mysql");
}

#[test]
fn mysql_3_denials() {
    denials("spin4_outbound");
}

#[test]
fn mysql_a_transaction_left_open_never_reaches_another_request() {
    let guest = "spin_mysql";
    let db = MariaDbServer::start();
    db.sql("CREATE TABLE t (n INT) ENGINE=InnoDB");
    let app = granted(guest, &db);
    let url = db.url();
    let begin = [("op", "execute"), ("sql", "START TRANSACTION"), ("sql", "INSERT INTO t VALUES (0)")];
    assert_eq!(op(&app, guest, &url, &begin), (200, "ok".into()));
    for _ in 0..5 {
        assert_eq!(op(&app, guest, &url, &[("op", "execute"), ("sql", "INSERT INTO t VALUES (1)")]), (200, "ok".into()));
    }
    // The pooled connection was reset: the first request's insert was rolled back, the others committed.
    assert_eq!(db.sql("SELECT COUNT(*), SUM(n) FROM t"), "5\t5");
}

#[test]
fn mysql_a_server_that_goes_away_is_an_error_value() {
    let guest = "spin_mysql";
    let mut db = MariaDbServer::start();
    let app = granted(guest, &db);
    let url = db.url();
    assert_eq!(op(&app, guest, &url, &[("op", "query"), ("sql", "SELECT 1")]).0, 200);
    db.stop();
    let (status, text) = op(&app, guest, &url, &[("op", "query"), ("sql", "SELECT 1")]);
    assert_eq!(status, 500, "{text}");
    assert!(text.starts_with("error: ConnectionFailed(") || text.starts_with("error: QueryFailed("), "{text}");
    assert_eq!(app.get("/.well-known/spin/health").0, 200);
}
