//! Outbound PostgreSQL, as apps use it, against a real PostgreSQL: spin-sdk 5's `pg`
//! (`fermyon:spin/postgres@2.0.0`), `pg3` (`spin:postgres@3.0.0`) and `pg4`
//! (`spin:postgres@4.0.0`) in the `spin_pg` guest, and spin-sdk 7's `pg` (`spin:postgres@4.2.0`,
//! its `async` functions and connection builder) in the `spin4_outbound` guest. Every column type each version carries,
//! round-tripped through a table as parameters and back as values; the allow-list; the server's
//! errors, bad parameters and a server that goes away are the interface's errors, never a trap.

use crate::key_value::{App, at};
use crate::single;
use kiln_e2e::services::PostgresServer;

fn pg_app(allowed: &str) -> App {
    App::start(&single("spin_pg", "/...", &format!("allowed_outbound_hosts = {allowed}")), None, &[], &[])
}

fn granted(pg: &PostgresServer) -> App {
    pg_app(&format!("[\"postgres://127.0.0.1:{}\"]", pg.port()))
}

fn op(app: &App, v: &str, addr: &str, pairs: &[(&str, &str)]) -> (u16, String) {
    let mut all = vec![("v", v), ("addr", addr)];
    all.extend_from_slice(pairs);
    app.q(&all)
}

fn roundtrip(v: &str) -> String {
    let pg = PostgresServer::start();
    let app = granted(&pg);
    let (status, text) = op(&app, v, &pg.url(), &[("op", "roundtrip")]);
    assert_eq!(status, 200, "{text}");
    text
}

#[test]
fn postgres_4_every_type_round_trips() {
    let text = roundtrip("4");
    assert_eq!(text, ROUNDTRIP_4);
}

#[test]
fn postgres_3_every_type_round_trips() {
    let text = roundtrip("3");
    assert_eq!(text, ROUNDTRIP_3);
}

#[test]
fn postgres_2_every_type_round_trips() {
    let text = roundtrip("2");
    assert_eq!(text, ROUNDTRIP_2);
}

#[test]
fn postgres_parameters_and_the_server_s_errors() {
    let pg = PostgresServer::start();
    let app = granted(&pg);
    let url = pg.url();
    pg.psql("CREATE TABLE items (id int PRIMARY KEY, name text NOT NULL)");
    for v in ["2", "3", "4"] {
        let id = format!("i32:{v}");
        let name = format!("s:item {v}");
        let insert = [("op", "execute"), ("sql", "INSERT INTO items VALUES ($1, $2)"), ("p", id.as_str()), ("p", name.as_str())];
        assert_eq!(op(&app, v, &url, &insert), (200, "1".into()), "v{v}");
        let select = [("op", "query"), ("sql", "SELECT name FROM items WHERE id = $1"), ("p", id.as_str())];
        let (status, text) = op(&app, v, &url, &select);
        assert_eq!((status, text.lines().nth(1)), (200, Some(format!("DbValue::Str(\"item {v}\")").as_str())), "v{v}: {text}");
        // A parameter of the wrong type, or too few: bad-parameter, before anything runs.
        let wrong = [("op", "query"), ("sql", "SELECT name FROM items WHERE id = $1"), ("p", "s:one")];
        let (status, text) = op(&app, v, &url, &wrong);
        assert_eq!(status, 500, "{text}");
        assert!(text.starts_with("error: BadParameter("), "v{v}: {text}");
        let (status, text) = op(&app, v, &url, &[("op", "query"), ("sql", "SELECT $1::int")]);
        assert!(status == 500 && text.starts_with("error: BadParameter("), "v{v}: {text}");
        // The server's own errors: query-failed.
        let (status, text) = op(&app, v, &url, &[("op", "query"), ("sql", "SELECT * FROM nowhere")]);
        assert_eq!(status, 500, "{text}");
        assert!(text.starts_with("error: QueryFailed(") && text.contains("nowhere"), "v{v}: {text}");
        let (status, text) = op(&app, v, &url, &insert);
        assert!(status == 500 && text.contains("duplicate key"), "v{v}: {text}");
    }
    // 4.0.0 carries the structured error: SQLSTATE, severity, message.
    let (_, text) = op(&app, "4", &url, &[("op", "query"), ("sql", "SELECT * FROM nowhere")]);
    assert!(text.contains("code: \"42P01\"") && text.contains("severity: \"ERROR\""), "{text}");
    // 2.0.0's unsigned integers and 4.0.0's malformed values are bad parameters.
    let (_, text) = op(&app, "2", &url, &[("op", "query"), ("sql", "SELECT $1::int8"), ("p", "u32:1")]);
    assert!(text.starts_with("error: BadParameter(") && text.contains("unsigned"), "{text}");
    for bad in ["uuid:not-a-uuid", "dec:1.2.3", "json:{nope", "date:2023-02-29"] {
        let (status, text) = op(&app, "4", &url, &[("op", "query"), ("sql", "SELECT $1"), ("p", bad)]);
        assert!(status == 500 && text.starts_with("error: BadParameter("), "{bad}: {text}");
    }
    assert_eq!(pg.psql("SELECT count(*) FROM items"), "3");
}

#[test]
fn postgres_addresses_outside_allowed_outbound_hosts_are_refused() {
    let pg = PostgresServer::start();
    let other = format!("[\"postgres://127.0.0.1:{}\"]", pg.port() as u32 + 1);
    for allowed in ["[]", other.as_str(), "[\"mysql://127.0.0.1:*\"]"] {
        let app = pg_app(allowed);
        for v in ["2", "3", "4"] {
            let (status, text) = op(&app, v, &pg.url(), &[("op", "open")]);
            assert_eq!(status, 500, "{allowed} v{v}: {text}");
            assert!(text.starts_with("error: ConnectionFailed(") && text.contains("not permitted"), "{allowed} v{v}: {text}");
        }
        // The key=value form names the same host and is refused the same way.
        let pairs = format!("host=127.0.0.1 port={} user=postgres", pg.port());
        let (_, text) = op(&app, "4", &pairs, &[("op", "open")]);
        assert!(text.contains("not permitted"), "{text}");
    }
    for allowed in ["[\"postgres://127.0.0.1:*\"]", "[\"postgres://127.0.0.0/8:*\"]", "[\"*://*:*\"]"] {
        let app = pg_app(allowed);
        assert_eq!(op(&app, "4", &pg.url(), &[("op", "open")]), (200, "opened".into()), "{allowed}");
        let pairs = format!("host=127.0.0.1 port={} user=postgres dbname=postgres", pg.port());
        assert_eq!(op(&app, "4", &pairs, &[("op", "open")]), (200, "opened".into()), "{allowed}");
    }
    // The default port applies when the grant leaves it out.
    let app = pg_app("[\"postgres://127.0.0.1\"]");
    let (_, text) = op(&app, "4", &pg.url(), &[("op", "open")]);
    assert!(text.contains("not permitted"), "{text}");
    let (_, text) = op(&app, "4", "not an address", &[("op", "open")]);
    assert!(text.starts_with("error: ConnectionFailed("), "{text}");
}

#[test]
fn postgres_a_transaction_left_open_never_reaches_another_request() {
    let pg = PostgresServer::start();
    let app = granted(&pg);
    let url = pg.url();
    pg.psql("CREATE TABLE t (n int)");
    // Each request opens its own connection; the first leaves a transaction open and ends.
    assert_eq!(op(&app, "4", &url, &[("op", "execute"), ("sql", "BEGIN")]), (200, "0".into()));
    for _ in 0..5 {
        assert_eq!(op(&app, "4", &url, &[("op", "execute"), ("sql", "INSERT INTO t VALUES (1)")]), (200, "1".into()));
    }
    // Every insert was committed on its own: none sat in the first request's transaction.
    assert_eq!(pg.psql("SELECT count(*) FROM t"), "5");
}

#[test]
fn postgres_a_server_that_goes_away_is_an_error_value() {
    let mut pg = PostgresServer::start();
    let app = granted(&pg);
    let url = pg.url();
    assert_eq!(op(&app, "4", &url, &[("op", "query"), ("sql", "SELECT 1")]).0, 200);
    pg.stop();
    for v in ["2", "3", "4"] {
        let (status, text) = op(&app, v, &url, &[("op", "query"), ("sql", "SELECT 1")]);
        assert_eq!(status, 500, "v{v}: {text}");
        assert!(text.starts_with("error: ConnectionFailed(") || text.starts_with("error: QueryFailed("), "v{v}: {text}");
    }
    // The app itself keeps serving.
    assert_eq!(app.get("/.well-known/spin/health").0, 200);
}

/// spin-sdk 7: `spin:postgres@4.2.0` at `/pg` of the `spin4_outbound` guest.
fn pg42_app(allowed: &str) -> App {
    App::start(&single("spin4_outbound", "/...", &format!("allowed_outbound_hosts = {allowed}")), None, &[], &[])
}

fn op42(app: &App, addr: &str, pairs: &[(&str, &str)]) -> (u16, String) {
    let mut all = vec![("addr", addr)];
    all.extend_from_slice(pairs);
    app.get(&at("/pg", &all))
}

#[test]
fn postgres_4_2_every_type_round_trips_through_the_async_functions() {
    let pg = PostgresServer::start();
    let app = pg42_app(&format!("[\"postgres://127.0.0.1:{}\"]", pg.port()));
    let (status, text) = op42(&app, &pg.url(), &[("op", "roundtrip")]);
    assert_eq!(status, 200, "{text}");
    assert_eq!(text, ROUNDTRIP_4);
}

#[test]
fn postgres_4_2_parameters_errors_grants_and_transactions() {
    let pg = PostgresServer::start();
    let app = pg42_app(&format!("[\"postgres://127.0.0.1:{}\"]", pg.port()));
    let url = pg.url();
    pg.psql("CREATE TABLE items (id int PRIMARY KEY, name text NOT NULL)");
    let insert = [("op", "execute"), ("sql", "INSERT INTO items VALUES ($1, $2)"), ("p", "i32:7"), ("p", "s:seven")];
    assert_eq!(op42(&app, &url, &insert), (200, "1".into()));
    let (status, text) = op42(&app, &url, &[("op", "query"), ("sql", "SELECT name FROM items WHERE id = $1"), ("p", "i32:7")]);
    assert_eq!((status, text.as_str()), (200, "columns: name:DbDataType::Str\nDbValue::Str(\"seven\")"));
    let (status, text) = op42(&app, &url, &[("op", "query"), ("sql", "SELECT name FROM items WHERE id = $1"), ("p", "s:one")]);
    assert!(status == 500 && text.starts_with("error: BadParameter("), "{text}");
    let (status, text) = op42(&app, &url, &[("op", "query"), ("sql", "SELECT * FROM nowhere")]);
    assert!(status == 500 && text.contains("code: \"42P01\""), "{text}");
    let (status, text) = op42(&app, &url, &insert);
    assert!(status == 500 && text.contains("duplicate key"), "{text}");
    // A transaction left open by one request's connection never reaches the next request.
    assert_eq!(op42(&app, &url, &[("op", "execute"), ("sql", "BEGIN"), ("sql", "INSERT INTO items VALUES (8, 'eight')")]), (200, "1".into()));
    assert_eq!(op42(&app, &url, &[("op", "execute"), ("sql", "INSERT INTO items VALUES (9, 'nine')")]), (200, "1".into()));
    assert_eq!(pg.psql("SELECT string_agg(id::text, ',' ORDER BY id) FROM items"), "7,9");
    // Outside the grant, through `open-async` and through a builder: connection-failed.
    let denied = pg42_app("[\"postgres://127.0.0.1:1\"]");
    for pairs in [&[("op", "open")][..], &[("op", "ca"), ("ca", TEST_CA_ROOT)][..]] {
        let (status, text) = op42(&denied, &url, pairs);
        assert!(status == 500 && text.starts_with("error: ConnectionFailed(") && text.contains("not permitted"), "{text}");
    }
}

#[test]
fn postgres_4_2_a_connection_builder_takes_a_ca_root() {
    let pg = PostgresServer::start();
    let app = pg42_app(&format!("[\"postgres://127.0.0.1:{}\"]", pg.port()));
    // The test server offers no TLS, so the extra root is accepted and not needed.
    assert_eq!(op42(&app, &pg.url(), &[("op", "ca"), ("ca", TEST_CA_ROOT)]), (200, "opened".into()));
    let (status, text) = op42(&app, &pg.url(), &[("op", "ca"), ("ca", "not a certificate")]);
    assert!(status == 500 && text.starts_with("error: Other(\"invalid CA root certificate"), "{text}");
}

/// A self-signed CA certificate made for this test (its key was never kept).
const TEST_CA_ROOT: &str = "-----BEGIN CERTIFICATE-----
MIIBhjCCASugAwIBAgIUYtmSg6hLpoKMYnVgnlbrphWmMLowCgYIKoZIzj0EAwIw
FzEVMBMGA1UEAwwMa2lsbi10ZXN0LWNhMCAXDTI2MTIwNjIwMTUyOVoYDzIxMjYx
MTEyMjAxNTI5WjAXMRUwEwYDVQQDDAxraWxuLXRlc3QtY2EwWTATBgcqhkjOPQIB
BggqhkjOPQMBBwNCAAQx+kS2k7ww2+R+D9ay+LZgnsAA11cqHYofAScPsMjLhT8p
N+XuaBgxmXWb+HhhQ2AYGhEHN40PTW4wJwBhSe+xo1MwUTAdBgNVHQ4EFgQUeqvD
tnV/L0ALqs9ambZJUMtVGKcwHwYDVR0jBBgwFoAUeqvDtnV/L0ALqs9ambZJUMtV
GKcwDwYDVR0TAQH/BAUwAwEB/zAKBggqhkjOPQQDAgNJADBGAiEA6CBPgRJOcPe5
4sv0YfX+4Th+g3crwW7Qd1vYhi6+ZtcCIQC0BLuxmmqo5MUV99OYv1i8z4u04N3Q
nmsXbou9DLFYyQ==
-----END CERTIFICATE-----
";

const ROUNDTRIP_4: &str = "columns: id:DbDataType::Int32, b:DbDataType::Boolean, c:DbDataType::Int8, i2:DbDataType::Int16, i4:DbDataType::Int32, i8:DbDataType::Int64, f4:DbDataType::Floating32, f8:DbDataType::Floating64, t:DbDataType::Str, vc:DbDataType::Str, by:DbDataType::Binary, d:DbDataType::Date, tm:DbDataType::Time, ts:DbDataType::Datetime, tstz:DbDataType::Datetime, epoch:DbDataType::Datetime, u:DbDataType::Uuid, j:DbDataType::Jsonb, n:DbDataType::Decimal, r4:DbDataType::RangeInt32, r8:DbDataType::RangeInt64, rn:DbDataType::RangeDecimal, a4:DbDataType::ArrayInt32, a8:DbDataType::ArrayInt64, an:DbDataType::ArrayDecimal, at:DbDataType::ArrayStr, iv:DbDataType::Interval, other:DbDataType::Other(\"inet\")\n\
DbValue::Int32(1) | DbValue::Boolean(true) | DbValue::Int8(65) | DbValue::Int16(-2) | DbValue::Int32(42) | DbValue::Int64(1099511627776) | DbValue::Floating32(0.25) | DbValue::Floating64(-1e-300) | DbValue::Str(\"✓ text\") | DbValue::Str(\"varchar\") | DbValue::Binary([1, 2, 3]) | DbValue::Date((-44, 3, 15)) | DbValue::Time((0, 0, 0, 1000)) | DbValue::Datetime((2024, 2, 29, 12, 30, 45, 123456000)) | DbValue::Datetime((1970, 1, 1, 0, 0, 0, 0)) | DbValue::Datetime((1969, 12, 31, 0, 0, 0, 0)) | DbValue::Uuid(\"a0eebc99-9c0b-4ef8-bb6d-6bb9bd380a11\") | DbValue::Jsonb([123, 34, 97, 34, 58, 34, 120, 34, 44, 34, 98, 34, 58, 91, 49, 44, 50, 46, 53, 44, 110, 117, 108, 108, 93, 125]) | DbValue::Decimal(\"-12345678901234567890.123456789\") | DbValue::RangeInt32((Some((1, RangeBoundKind::Inclusive)), Some((11, RangeBoundKind::Exclusive)))) | DbValue::RangeInt64((None, Some((-5, RangeBoundKind::Exclusive)))) | DbValue::RangeDecimal((Some((\"0.5\", RangeBoundKind::Exclusive)), None)) | DbValue::ArrayInt32([Some(1), None, Some(-3)]) | DbValue::ArrayInt64([Some(9223372036854775807)]) | DbValue::ArrayDecimal([Some(\"1.10\"), None]) | DbValue::ArrayStr([Some(\"a\"), None, Some(\"c d\")]) | DbValue::Interval(Interval { micros: 3723000004, days: -2, months: 14 }) | DbValue::Unsupported([2, 32, 0, 4, 10, 1, 2, 3])\n\
DbValue::Int32(2) | DbValue::DbNull | DbValue::DbNull | DbValue::DbNull | DbValue::DbNull | DbValue::DbNull | DbValue::DbNull | DbValue::DbNull | DbValue::DbNull | DbValue::DbNull | DbValue::DbNull | DbValue::DbNull | DbValue::DbNull | DbValue::DbNull | DbValue::DbNull | DbValue::DbNull | DbValue::DbNull | DbValue::DbNull | DbValue::DbNull | DbValue::DbNull | DbValue::DbNull | DbValue::DbNull | DbValue::DbNull | DbValue::DbNull | DbValue::DbNull | DbValue::DbNull | DbValue::DbNull | DbValue::DbNull";
const ROUNDTRIP_3: &str = "columns: id:DbDataType::Int32, b:DbDataType::Boolean, i2:DbDataType::Int16, i4:DbDataType::Int32, i8:DbDataType::Int64, f4:DbDataType::Floating32, f8:DbDataType::Floating64, t:DbDataType::Str, by:DbDataType::Binary, d:DbDataType::Date, tm:DbDataType::Time, ts:DbDataType::Datetime, tstz:DbDataType::Datetime, epoch:DbDataType::Datetime, u:DbDataType::Other\n\
DbValue::Int32(1) | DbValue::Boolean(false) | DbValue::Int16(32767) | DbValue::Int32(-2147483648) | DbValue::Int64(9223372036854775807) | DbValue::Floating32(-0.5) | DbValue::Floating64(3.125) | DbValue::Str(\"text\") | DbValue::Binary([222, 173]) | DbValue::Date((2024, 2, 29)) | DbValue::Time((23, 59, 58, 123456000)) | DbValue::Datetime((1999, 12, 31, 23, 59, 59, 999999000)) | DbValue::Datetime((2038, 1, 19, 3, 14, 8, 0)) | DbValue::Datetime((2023, 11, 14, 22, 13, 20, 0)) | DbValue::Unsupported\n\
DbValue::Int32(2) | DbValue::DbNull | DbValue::DbNull | DbValue::DbNull | DbValue::DbNull | DbValue::DbNull | DbValue::DbNull | DbValue::DbNull | DbValue::DbNull | DbValue::DbNull | DbValue::DbNull | DbValue::DbNull | DbValue::DbNull | DbValue::DbNull | DbValue::DbNull";
const ROUNDTRIP_2: &str = "columns: id:DbDataType::Int32, b:DbDataType::Boolean, c:DbDataType::Int8, i2:DbDataType::Int16, i4:DbDataType::Int32, i8:DbDataType::Int64, f4:DbDataType::Floating32, f8:DbDataType::Floating64, t:DbDataType::Str, vc:DbDataType::Str, bp:DbDataType::Str, by:DbDataType::Binary, d:DbDataType::Other\n\
DbValue::Int32(1) | DbValue::Boolean(true) | DbValue::Int8(-7) | DbValue::Int16(-32768) | DbValue::Int32(2147483647) | DbValue::Int64(-9223372036854775808) | DbValue::Floating32(1.5) | DbValue::Floating64(-2.25e100) | DbValue::Str(\"héllo ✓\") | DbValue::Str(\"short\") | DbValue::Str(\"ab \") | DbValue::Binary([0, 1, 255]) | DbValue::Unsupported\n\
DbValue::Int32(2) | DbValue::DbNull | DbValue::DbNull | DbValue::DbNull | DbValue::DbNull | DbValue::DbNull | DbValue::DbNull | DbValue::DbNull | DbValue::DbNull | DbValue::DbNull | DbValue::DbNull | DbValue::DbNull | DbValue::DbNull";
