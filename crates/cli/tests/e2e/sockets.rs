//! Outbound TCP through `wasi:sockets` (the `tcp_connect` guest, Rust std's `TcpStream`), allowed
//! only to the `tcp://ip:port` (or `*://ip:port`) entries of `allowed_outbound_hosts`.

use crate::key_value::App;
use crate::single;
use kiln_e2e::services::EchoServer;

fn tcp_app(allowed: Option<&str>) -> App {
    let extra = allowed.map(|a| format!("allowed_outbound_hosts = {a}")).unwrap_or_default();
    App::start(&single("tcp_connect", "/...", &extra), None, &[], &[])
}

fn connect(app: &App, addr: &str) -> (u16, String) {
    app.q(&[("addr", addr)])
}

fn assert_denied(result: (u16, String), what: &str) {
    assert_eq!(result.0, 502, "{what}: {}", result.1);
    assert!(result.1.starts_with("error: PermissionDenied"), "{what}: {}", result.1);
}

#[test]
fn an_allowed_address_connects() {
    let echo = EchoServer::start();
    let addr = echo.addr.to_string();
    for allowed in [
        format!("[\"tcp://{addr}\"]"),
        format!("[\"*://{addr}\"]"),
        format!("[\"tcp://127.0.0.0/24:{}\"]", echo.addr.port()),
        "[\"tcp://127.0.0.1:*\"]".to_string(),
        format!("[\"tcp://127.0.0.1:{}..{}\"]", echo.addr.port(), echo.addr.port() as u32 + 1),
        "[\"*://*:*\"]".to_string(),
    ] {
        let app = tcp_app(Some(&allowed));
        assert_eq!(connect(&app, &addr), (200, "read: PING\r\n".into()), "{allowed}");
    }
}

#[test]
fn other_ports_and_hosts_are_denied() {
    let echo = EchoServer::start();
    let addr = echo.addr.to_string();
    let port = echo.addr.port();
    let other = EchoServer::start();
    let app = tcp_app(Some(&format!("[\"tcp://{addr}\"]")));
    assert_eq!(connect(&app, &addr), (200, "read: PING\r\n".into()));
    // Another port with a live listener: denied, not connected.
    assert_denied(connect(&app, &other.addr.to_string()), "other port");
    // Another host, same port: denied (not "connection refused").
    assert_denied(connect(&app, &format!("127.0.0.2:{port}")), "other host");
    // A port range's end is excluded.
    let app = tcp_app(Some(&format!("[\"tcp://127.0.0.1:{}..{port}\"]", port - 1)));
    assert_denied(connect(&app, &addr), "range end");
}

#[test]
fn no_grants_means_no_sockets() {
    let echo = EchoServer::start();
    assert_denied(connect(&tcp_app(None), &echo.addr.to_string()), "no allowed_outbound_hosts");
    assert_denied(connect(&tcp_app(Some("[]")), &echo.addr.to_string()), "empty allowed_outbound_hosts");
}

#[test]
fn a_grant_for_another_scheme_does_not_open_raw_tcp() {
    // Spin checks sockets as `tcp://ip:port`: an http grant for the same address is not a TCP grant.
    let echo = EchoServer::start();
    let app = tcp_app(Some(&format!("[\"http://{}\"]", echo.addr)));
    assert_denied(connect(&app, &echo.addr.to_string()), "http:// grant");
    // Host names never match a raw IP connection.
    let app = tcp_app(Some(&format!("[\"tcp://localhost:{}\"]", echo.addr.port())));
    assert_denied(connect(&app, &echo.addr.to_string()), "host name grant");
}
