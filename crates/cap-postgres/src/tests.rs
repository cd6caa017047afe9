use super::*;

#[test]
fn only_statements_that_leave_the_session_clean_keep_the_connection_pooled() {
    for clean in ["SELECT 1", "  select * from t", "(SELECT 1)", "INSERT INTO t VALUES (1)", "update t set n = 1", "DELETE FROM t", "WITH x AS (SELECT 1) SELECT * FROM x", "VALUES (1)", "TABLE t"] {
        assert!(pool::keeps_session_clean(clean), "{clean}");
    }
    for dirty in ["BEGIN", "begin; select 1", "START TRANSACTION", "SET search_path = x", "LISTEN c", "CREATE TEMP TABLE t (n int)", "PREPARE p AS SELECT 1", "", "  "] {
        assert!(!pool::keeps_session_clean(dirty), "{dirty}");
    }
}

#[test]
fn every_host_of_an_address_must_be_allowed() {
    let allowed = AllowedHosts::parse(&["postgres://db.example.com", "postgres://127.0.0.1:6543"]).unwrap();
    for ok in [
        "postgres://db.example.com/app",
        "postgres://user:pw@db.example.com:5432/app?sslmode=require",
        "postgresql://127.0.0.1:6543",
        "host=db.example.com user=app",
        "host=127.0.0.1 port=6543",
        "postgres://db.example.com:5432,127.0.0.1:6543/app",
    ] {
        assert!(pool::address_allowed(&allowed, ok).is_ok(), "{ok}");
    }
    for denied in [
        "postgres://db.example.com:5433/app",
        "postgres://127.0.0.1/app",
        "postgres://db.example.com,other.example.com/app",
        "host=/var/run/postgresql user=app",
        "postgres:///app",
        "user=app",
        "not an address",
        "",
    ] {
        let e = pool::address_allowed(&allowed, denied).unwrap_err();
        assert!(matches!(e, v4::Error::ConnectionFailed(_)), "{denied}: {e:?}");
    }
}

#[test]
fn a_ca_root_must_be_pem_certificates() {
    for bad in ["", "not a certificate", "-----BEGIN CERTIFICATE-----\nAAAA\n-----END CERTIFICATE-----\n"] {
        let e = pool::parse_ca_root(bad).unwrap_err();
        assert!(matches!(&e, v4::Error::Other(m) if m.starts_with("invalid CA root certificate")), "{bad:?}: {e:?}");
    }
}
