//! Cases mirror Spin's `outbound-networking-config/src/allowed_hosts.rs` tests, plus Kiln's API.

use super::*;
use std::net::{Ipv4Addr, Ipv6Addr};

fn one(p: &str) -> HostPattern {
    HostPattern::parse(p, p).unwrap_or_else(|e| panic!("{p}: {e}"))
}

fn err(p: &str) -> PatternError {
    match HostPattern::parse(p, p) {
        Ok(parsed) => panic!("{p} should be rejected, got {parsed:?}"),
        Err(e) => e,
    }
}

fn hosts(ps: &[&str]) -> AllowedHosts {
    AllowedHosts::parse(ps).unwrap_or_else(|e| panic!("{e}"))
}

fn url(u: &str) -> OutboundUrl {
    OutboundUrl::parse(u).unwrap_or_else(|e| panic!("{u}: {e}"))
}

fn named(s: &str) -> SchemePattern {
    SchemePattern::Named(s.into())
}

fn name(h: &str) -> HostMatcher {
    HostMatcher::Name(h.into())
}

fn parts(p: &HostPattern) -> (&SchemePattern, &HostMatcher, &PortPattern) {
    (&p.scheme, &p.host, &p.port)
}

#[test]
fn accepts_url_without_port() {
    assert_eq!(
        parts(&one("http://spin.fermyon.dev")),
        (
            &named("http"),
            &name("spin.fermyon.dev"),
            &PortPattern::One(80)
        )
    );
    // Trailing slash is removed
    assert_eq!(
        parts(&one("http://spin.fermyon.dev/")),
        (
            &named("http"),
            &name("spin.fermyon.dev"),
            &PortPattern::One(80)
        )
    );
    assert_eq!(
        parts(&one("https://spin.fermyon.dev")),
        (
            &named("https"),
            &name("spin.fermyon.dev"),
            &PortPattern::One(443)
        )
    );
}

#[test]
fn accepts_url_with_port() {
    assert_eq!(
        parts(&one("http://spin.fermyon.dev:4444")).2,
        &PortPattern::One(4444)
    );
    assert_eq!(
        parts(&one("http://spin.fermyon.dev:4444/")).2,
        &PortPattern::One(4444)
    );
    assert_eq!(
        parts(&one("https://spin.fermyon.dev:5555")),
        (
            &named("https"),
            &name("spin.fermyon.dev"),
            &PortPattern::One(5555)
        )
    );
}

#[test]
fn accepts_url_with_port_range() {
    assert_eq!(
        parts(&one("http://spin.fermyon.dev:4444..5555")).2,
        &PortPattern::Range(4444, 5555)
    );
    // Spin's ranges exclude the end
    let allowed = hosts(&["http://spin.fermyon.dev:4444..5555"]);
    assert!(allowed.allows(&url("http://spin.fermyon.dev:4444/x")));
    assert!(allowed.allows(&url("http://spin.fermyon.dev:5554")));
    assert!(!allowed.allows(&url("http://spin.fermyon.dev:5555")));
    assert!(!allowed.allows(&url("http://spin.fermyon.dev:4443")));
}

#[test]
fn dash_port_range_is_rejected_with_the_spin_syntax() {
    let e = err("http://localhost:8000-8080");
    assert!(e.to_string().contains("`:8000..8081`"), "{e}");
    assert!(
        err("http://localhost:80..x")
            .to_string()
            .contains("start..end")
    );
}

#[test]
fn does_not_accept_plain_host_without_scheme() {
    err("spin.fermyon.dev");
    err("spin.fermyon.dev:80");
    err("localhost");
    err("localhost:3001");
    let e = err("example.com");
    assert_eq!(
        e.to_string(),
        "invalid allowed_outbound_hosts entry `example.com`: it does not contain a scheme. \
         Add one, e.g. `https://example.com` (`*://` allows any scheme)"
    );
    for bare in ["*", ":", "", "?"] {
        assert!(err(bare).to_string().contains("`*://*:*`"));
    }
}

#[test]
fn accepts_host_with_glob_scheme() {
    assert_eq!(
        parts(&one("*://spin.fermyon.dev:7777")),
        (
            &SchemePattern::Any,
            &name("spin.fermyon.dev"),
            &PortPattern::One(7777)
        )
    );
}

#[test]
fn accepts_self() {
    assert_eq!(
        parts(&one("http://self")),
        (&named("http"), &HostMatcher::ToSelf, &PortPattern::One(80))
    );
    assert_eq!(parts(&one("http://self.alt")).1, &HostMatcher::ToSelf);
}

#[test]
fn accepts_localhost_addresses() {
    assert_eq!(
        parts(&one("http://localhost")),
        (&named("http"), &name("localhost"), &PortPattern::One(80))
    );
    assert_eq!(
        parts(&one("http://localhost:3001")),
        (&named("http"), &name("localhost"), &PortPattern::One(3001))
    );
}

#[test]
fn accepts_subdomain_wildcards() {
    assert_eq!(
        parts(&one("http://*.example.com")),
        (
            &named("http"),
            &HostMatcher::Subdomain(".example.com".into()),
            &PortPattern::One(80)
        )
    );
    err("http://*.*.example.com");
    err("http://a*.example.com");
    err("http://example.*");
}

#[test]
fn accepts_ip_addresses() {
    let v4 = HostMatcher::Ip(IpAddr::V4(Ipv4Addr::new(192, 168, 1, 1)));
    assert_eq!(
        parts(&one("http://192.168.1.1")),
        (&named("http"), &v4, &PortPattern::One(80))
    );
    assert_eq!(
        parts(&one("http://192.168.1.1:3002")),
        (&named("http"), &v4, &PortPattern::One(3002))
    );
    let v6 = HostMatcher::Ip(IpAddr::V6(Ipv6Addr::LOCALHOST));
    assert_eq!(
        parts(&one("http://[::1]:8001")),
        (&named("http"), &v6, &PortPattern::One(8001))
    );
    // Spin's parser rejects this by accident; Kiln reads it as port 80.
    assert_eq!(
        parts(&one("http://[::1]")),
        (&named("http"), &v6, &PortPattern::One(80))
    );
    err("http://[::1");
    err("http://[nope]:80");
}

#[test]
fn accepts_ip_cidr() {
    let v4: IpNet = "127.0.0.0/24".parse().unwrap();
    assert_eq!(
        parts(&one("*://127.0.0.0/24:80")),
        (
            &SchemePattern::Any,
            &HostMatcher::Cidr(v4),
            &PortPattern::One(80)
        )
    );
    // no port and scheme `*`
    err("*://127.0.0.0/24");
    let v6: IpNet = "ff00::/8".parse().unwrap();
    assert_eq!(
        parts(&one("*://ff00::/8:80")),
        (
            &SchemePattern::Any,
            &HostMatcher::Cidr(v6),
            &PortPattern::One(80)
        )
    );
    // host bits are truncated, as Spin's `from_str_truncate`
    assert_eq!(
        parts(&one("*://127.0.0.1/24:63551")).1,
        &HostMatcher::Cidr(v4)
    );
    assert!(err("*://127.0.0.0/33:80").to_string().contains("CIDR"));
}

#[test]
fn rejects_path() {
    // An empty path is allowed
    one("http://spin.fermyon.dev/");
    // All other paths are not allowed
    for p in [
        "http://spin.fermyon.dev/a",
        "http://spin.fermyon.dev:6666/a/b",
        "http://*.fermyon.dev/a",
    ] {
        assert!(err(p).to_string().contains("has a path"), "{p}");
    }
}

#[test]
fn rejects_insecure_allow_all() {
    for list in [
        &["insecure:allow-all"][..],
        &["spin.fermyon.dev", "insecure:allow-all"][..],
    ] {
        assert!(AllowedHosts::parse(list).is_err());
    }
    let e = AllowedHosts::parse(&["insecure:allow-all"]).unwrap_err();
    assert!(e.to_string().contains("`*://*:*`"), "{e}");
    assert!(validate_pattern("insecure:allow-all").is_err());
}

#[test]
fn allowed_all_globs() {
    assert_eq!(
        parts(&one("*://*:*")),
        (&SchemePattern::Any, &HostMatcher::Any, &PortPattern::Any)
    );
    let all = hosts(&["*://*:*"]);
    assert!(all.allows(&url("gopher://whatever.example:70")));
    assert!(all.allows(&url("http://10.0.0.1")));
    assert!(all.allows_self());
    assert!(all.allows_internal("anything"));
    assert!(all.allows_socket_addr("1.2.3.4:5".parse().unwrap()));
    assert!(all.allows_udp_addr("[::1]:53".parse().unwrap()));
}

#[test]
fn other_syntax_errors() {
    err("ht tp://example.com");
    err("h1://example.com:80");
    err("://example.com:80");
    err("{http,https}://example.com");
    err("http://{a,b}.example.com");
    err("http://example.com:{80,443}");
    err("http://example.com:http");
    err("http://example.com:65536");
    err("http://");
    err("http://:80");
    err("http://user@example.com");
    err("http://exa mple.com");
    // unknown scheme without port
    let e = err("tcp://example.com");
    assert!(
        e.to_string().contains("Add a port, e.g. `tcp://host:1234`"),
        "{e}"
    );
    one("tcp://example.com:5432");
    one("https://my-api_1.example.com:*");
}

#[test]
fn can_be_specific() {
    let allowed = hosts(&["*://spin.fermyon.dev:443", "http://example.com:8383"]);
    assert!(allowed.allows(&url("http://example.com:8383/foo/bar")));
    // Allow urls with and without a trailing slash
    assert!(allowed.allows(&url("https://spin.fermyon.dev")));
    assert!(allowed.allows(&url("https://spin.fermyon.dev/")));
    assert!(!allowed.allows(&url("http://example.com/")));
    assert!(!allowed.allows(&url("http://google.com/")));
    assert!(
        allowed.allows(
            &OutboundUrl::parse_with_default_scheme("spin.fermyon.dev:443", "https").unwrap()
        )
    );
    assert!(
        allowed
            .allows(&OutboundUrl::parse_with_default_scheme("example.com:8383", "http").unwrap())
    );
}

#[test]
fn with_trailing_slash() {
    let allowed = hosts(&["https://my.api.com/"]);
    assert!(allowed.allows(&url("https://my.api.com")));
    assert!(allowed.allows(&url("https://my.api.com/")));
}

#[test]
fn can_be_subdomain_wildcards() {
    let allowed = hosts(&["http://*.example.com", "http://*.example2.com:8383"]);
    assert!(allowed.allows(&url("http://a.example.com/foo/bar")));
    assert!(allowed.allows(&url("http://a.b.example.com/foo/bar")));
    assert!(allowed.allows(&url("http://a.b.example2.com:8383/foo/bar")));
    assert!(!allowed.allows(&url("http://a.b.example2.com/foo/bar")));
    assert!(!allowed.allows(&url("http://example.com/foo/bar")));
    assert!(!allowed.allows(&url("http://example.com:8383/foo/bar")));
    assert!(!allowed.allows(&url("http://myexample.com/foo/bar")));
}

#[test]
fn matching_is_case_insensitive() {
    let allowed = hosts(&["HTTPS://API.Example.com", "http://*.Example.ORG"]);
    assert!(allowed.allows(&url("https://api.example.com/x")));
    assert!(allowed.allows(&url("HTTPS://Api.EXAMPLE.com/x")));
    assert!(allowed.allows(&url("http://a.B.example.org")));
    let uri: http::Uri = "https://API.EXAMPLE.COM/path".parse().unwrap();
    assert!(allowed.allows(&OutboundUrl::from_uri(&uri).unwrap()));
}

#[test]
fn hash_char_in_db_password() {
    let allowed = hosts(&["mysql://xyz.com"]);
    assert!(allowed.allows(&url("mysql://user:pass#word@xyz.com")));
    assert!(allowed.allows(&url("mysql://user%3Apass%23word@xyz.com")));
    assert!(allowed.allows(
        &OutboundUrl::parse_with_default_scheme("user%3Apass%23word@xyz.com", "mysql").unwrap()
    ));
}

#[test]
fn outbound_url_handles_at_in_paths() {
    assert_eq!(
        url("https://example.com/file@0.1.0.json").host,
        "example.com"
    );
    assert_eq!(
        url("https://user:password@example.com/file@0.1.0.json").host,
        "example.com"
    );
    assert_eq!(
        url("https://user:pass#word@example.com/file@0.1.0.json").host,
        "example.com"
    );
    assert_eq!(url("https://user:password@example.com").host, "example.com");
}

#[test]
fn outbound_url_default_ports() {
    for (u, port) in [
        ("http://h", 80),
        ("https://h", 443),
        ("redis://h", 6379),
        ("mysql://h/db", 3306),
        ("postgres://u:p@h/db", 5432),
        ("mqtt://h", 1883),
        ("http://h:8080/x?y#z", 8080),
        ("http://h?x=1", 80),
        ("http://[::1]/x", 80),
        ("http://[::1]:81/x", 81),
    ] {
        assert_eq!(url(u).port, port, "{u}");
    }
    assert_eq!(url("http://[::1]:81").host, "::1");
    // no well-known port: Spin never matches these unless the port is `*`; Kiln can't represent them
    assert!(OutboundUrl::parse("nats://h").is_err());
    assert!(OutboundUrl::parse("rediss://h").is_err());
    assert!(OutboundUrl::parse("http://h:x").is_err());
    assert!(OutboundUrl::parse("h:80").is_err());
    assert!(OutboundUrl::parse("http://").is_err());
    let uri: http::Uri = "http://[::1]:8080/a".parse().unwrap();
    assert_eq!(
        OutboundUrl::from_uri(&uri).unwrap(),
        OutboundUrl {
            scheme: "http".into(),
            host: "::1".into(),
            port: 8080
        }
    );
    let uri: http::Uri = "/relative".parse().unwrap();
    assert!(OutboundUrl::from_uri(&uri).is_none());
}

#[test]
fn cidr() {
    let allowed = hosts(&["*://127.0.0.1/24:63551"]);
    assert!(allowed.allows(&url("tcp://127.0.0.1:63551")));
    assert!(allowed.allows(&url("tcp://127.0.0.200:63551")));
    assert!(!allowed.allows(&url("tcp://127.0.1.1:63551")));
    assert!(!allowed.allows(&url("tcp://127.0.0.1:63552")));
    assert!(!allowed.allows(&url("tcp://localhost:63551")));
    let v6 = hosts(&["https://[fd00::/8]", "*://fe80::/10:*"]);
    assert!(v6.allows(&url("https://[fd12::1]/")));
    assert!(v6.allows(&url("http://[fe80::1]:1")));
    assert!(!v6.allows(&url("https://[::1]/")));
}

#[test]
fn cidr_rendered_from_variables() {
    // What `*://{{ addr_prefix }}/{{ prefix_len }}:7` becomes with 127.0.0.0 and 8.
    let allowed = hosts(&["*://127.0.0.0/8:7"]);
    assert!(allowed.allows_socket_addr("127.0.0.1:7".parse().unwrap()));
    assert!(allowed.allows_socket_addr("127.200.1.1:7".parse().unwrap()));
    assert!(!allowed.allows_socket_addr("10.0.0.1:7".parse().unwrap()));
    assert!(!allowed.allows_socket_addr("127.0.0.1:8".parse().unwrap()));
}

#[test]
fn ip_literals_match_semantically() {
    let allowed = hosts(&["http://[::1]:8080", "http://127.0.0.1:3000"]);
    assert!(allowed.allows(&url("http://[0:0:0:0:0:0:0:1]:8080")));
    assert!(allowed.allows(&url("http://127.0.0.1:3000")));
    assert!(!allowed.allows(&url("http://localhost:3000")));
    let by_name = hosts(&["http://localhost:3000"]);
    assert!(!by_name.allows(&url("http://127.0.0.1:3000")));
}

#[test]
fn schemes_and_ports_must_match() {
    let allowed = hosts(&["https://example.com", "redis://cache:*"]);
    assert!(allowed.allows(&url("https://example.com:443")));
    assert!(!allowed.allows(&url("http://example.com")));
    assert!(!allowed.allows(&url("https://example.com:8443")));
    assert!(allowed.allows(&url("redis://cache:7000")));
    assert!(allowed.allows(&url("redis://cache")));
    assert!(!allowed.allows(&url("rediss://cache:6380")));
    assert!(allowed.allows_url("https://example.com/a"));
    assert!(!allowed.allows_url("not a url"));
}

#[test]
fn none_allows_nothing() {
    let none = AllowedHosts::none();
    assert!(none.is_empty());
    assert!(!none.allows(&url("http://example.com")));
    assert!(!none.allows_self());
    assert!(!none.allows_internal("a"));
    assert!(!none.allows_socket_addr("127.0.0.1:80".parse().unwrap()));
    let empty = AllowedHosts::parse::<&str>(&[]).unwrap();
    assert!(!empty.allows(&url("http://example.com")));
}

#[test]
fn self_requests() {
    assert!(hosts(&["http://self"]).allows_self());
    assert!(hosts(&["https://self"]).allows_self());
    assert!(hosts(&["http://self.alt"]).allows_self());
    assert!(hosts(&["*://self:*"]).allows_self());
    assert!(hosts(&["http://*:*"]).allows_self());
    assert!(!hosts(&["redis://self"]).allows_self());
    assert!(!hosts(&["http://example.com"]).allows_self());
    assert!(!hosts(&["http://*.example.com"]).allows_self());
    // `self` is not a host name a URL can match
    assert!(!hosts(&["http://self"]).allows(&url("http://self/")));
}

#[test]
fn service_chaining() {
    let one = hosts(&["http://backend.spin.internal"]);
    assert!(one.allows_internal("backend"));
    assert!(!one.allows_internal("other"));
    assert!(!one.allows_internal(""));
    let all = hosts(&["http://*.spin.internal"]);
    assert!(all.allows_internal("backend"));
    assert!(all.allows_internal("other"));
    // https-only entries don't allow http://<id>.spin.internal
    assert!(!hosts(&["https://backend.spin.internal"]).allows_internal("backend"));
    assert!(!hosts(&["http://*.example.com"]).allows_internal("backend"));
    assert!(!hosts(&["http://self"]).allows_internal("backend"));

    assert_eq!(
        service_chaining_target("backend.spin.internal"),
        Some("backend")
    );
    assert_eq!(
        service_chaining_target("backend.spin.internal:80"),
        Some("backend")
    );
    assert_eq!(service_chaining_target("*.spin.internal"), Some("*"));
    assert_eq!(service_chaining_target("a.b.spin.internal"), None);
    assert_eq!(service_chaining_target("spin.internal"), None);
    assert_eq!(service_chaining_target("example.com"), None);
}

#[test]
fn sockets() {
    let addr = |s: &str| s.parse::<SocketAddr>().unwrap();
    let allowed = hosts(&[
        "*://127.0.0.1:5432",
        "tcp://10.0.0.0/8:6379",
        "postgres://192.168.1.1:5432",
        "*://localhost:8080",
        "tcp://*:9000..9010",
        "udp://[::1]:53",
    ]);
    assert!(allowed.allows_socket_addr(addr("127.0.0.1:5432")));
    assert!(!allowed.allows_socket_addr(addr("127.0.0.1:5433")));
    assert!(allowed.allows_socket_addr(addr("10.1.2.3:6379")));
    assert!(!allowed.allows_socket_addr(addr("11.1.2.3:6379")));
    // scheme must be `*` or `tcp`, as Spin checks `tcp://ip:port`
    assert!(!allowed.allows_socket_addr(addr("192.168.1.1:5432")));
    // host names never match IP addresses
    assert!(!allowed.allows_socket_addr(addr("127.0.0.1:8080")));
    assert!(allowed.allows_socket_addr(addr("8.8.8.8:9005")));
    assert!(!allowed.allows_socket_addr(addr("8.8.8.8:9010")));
    assert!(allowed.allows_udp_addr(addr("[::1]:53")));
    assert!(!allowed.allows_socket_addr(addr("[::1]:53")));
    assert!(!allowed.allows_udp_addr(addr("10.1.2.3:6379")));
    assert!(allowed.allows_udp_addr(addr("127.0.0.1:5432")));
}

#[test]
fn validate_accepts_templates() {
    for ok in [
        "redis://{{ host }}:6379",
        "redis://{{host}}",
        "https://{{ host }}",
        "https://{{ sub }}.example.com",
        "{{ scheme }}://example.com",
        "{{ scheme }}://{{ host }}:{{ port }}",
        "http://example.com:{{ port }}",
        "{{ url }}",
        "{{ host }}:6379",
        "http://{{ id }}.spin.internal",
        "https://{{ host }}/",
        // CIDR ranges built from variables
        "*://{{ addr_prefix }}/{{ prefix_len }}:7",
        "*://10.0.0.0/{{ prefix_len }}:*",
        "tcp://{{ addr_prefix }}/24:{{ port }}",
        "*://*:*",
        "https://example.com",
    ] {
        validate_pattern(ok).unwrap_or_else(|e| panic!("{ok}: {e}"));
    }
    for bad in [
        "https://{{ host }}/path",
        "https://{{ host }}/{{ path }}/x",
        "https://example.com/{{ len }}",
        "https://{{ host }}/24x",
        "https://{{ host",
        "https://{{ }}",
        "tcp://{{ host }}",
        "*://{{ host }}",
        "example.com/{{ x }}",
        "https://{{ host }}:x",
        "ht1p://{{ host }}",
        "example.com",
        "http://example.com/a",
    ] {
        assert!(validate_pattern(bad).is_err(), "{bad} should be rejected");
    }
}

#[test]
fn parse_rejects_leftover_templates() {
    let e = AllowedHosts::parse(&["redis://{{ host }}:6379"]).unwrap_err();
    assert!(
        e.to_string()
            .starts_with("invalid allowed_outbound_hosts entry `redis://{{ host }}:6379`: "),
        "{e}"
    );
    assert!(AllowedHosts::parse(&["https://a.com", "bad"]).is_err());
}

#[test]
fn error_display_format() {
    let e = AllowedHosts::parse(&["https://example.com/api"]).unwrap_err();
    assert_eq!(e.pattern(), "https://example.com/api");
    let s = e.to_string();
    assert!(
        s.starts_with(
            "invalid allowed_outbound_hosts entry `https://example.com/api`: it has a path"
        ),
        "{s}"
    );
    assert!(
        s.contains(". Remove everything after the host and port"),
        "{s}"
    );
}

#[test]
fn allowed_hosts_is_cheap_to_share() {
    fn assert_send_sync<T: Send + Sync + Clone + fmt::Debug>() {}
    assert_send_sync::<AllowedHosts>();
    let a = hosts(&["https://a.com", "https://b.com"]);
    let b = a.clone();
    assert!(Arc::ptr_eq(&a.patterns, &b.patterns));
    assert_eq!(
        b.entries().collect::<Vec<_>>(),
        ["https://a.com", "https://b.com"]
    );
}
