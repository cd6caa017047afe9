use super::*;

#[test]
fn addresses_are_checked_against_allowed_outbound_hosts() {
    let allowed = AllowedHosts::parse(&["mysql://db.example.com", "mysql://127.0.0.1:3307"]).unwrap();
    for ok in [
        "mysql://db.example.com/app",
        "mysql://user:pw@db.example.com:3306/app",
        "mysql://root@127.0.0.1:3307/app?require_ssl=true",
    ] {
        assert!(ops::check_address(&allowed, ok).is_ok(), "{ok}");
    }
    for denied in [
        "mysql://db.example.com:3307/app",
        "mysql://127.0.0.1/app",
        "mysql://other.example.com/app",
        "postgres://db.example.com/app",
        "not a url",
        "",
    ] {
        let e = ops::check_address(&allowed, denied).unwrap_err();
        assert!(matches!(e, DbError::ConnectionFailed(_)), "{denied}: {e:?}");
    }
}

#[test]
fn an_instance_refuses_addresses_before_any_connection() {
    let app = MysqlApp::new(Duration::from_millis(200));
    let none = app.component_state(&AllowedHosts::none()).instance();
    let Err(DbError::ConnectionFailed(msg)) = none.check_open("mysql://127.0.0.1:3306/x".into()) else {
        panic!("an address was allowed with no grants");
    };
    assert!(msg.contains("not permitted"), "{msg}");
}
