//! Clients that try to hold the server: slowloris, oversized heads, piles of idle connections,
//! conflicting framing. Each is bounded (closed, refused with a status) and the server keeps serving
//! everyone else.

use crate::{body, serve_guest};
use kiln_e2e::kiln::Kiln;
use std::io::{Read, Write};
use std::net::TcpStream;
use std::time::{Duration, Instant};

/// Sends `request` on a fresh connection and returns the status line of the answer ("" if the
/// server closed it without one).
fn raw(kiln: &Kiln, request: &[u8]) -> String {
    raw_answer(kiln, request).lines().next().unwrap_or_default().to_string()
}

/// Everything the server sends back for `request` until it closes the connection.
fn raw_answer(kiln: &Kiln, request: &[u8]) -> String {
    let mut stream = TcpStream::connect(kiln.addr).expect("connect");
    stream.set_read_timeout(Some(Duration::from_secs(30))).unwrap();
    // The server may answer (and close) before it has read all of an oversized head.
    let _ = stream.write_all(request);
    let mut answer = Vec::new();
    let _ = stream.read_to_end(&mut answer);
    String::from_utf8_lossy(&answer).to_string()
}

/// Whether the server has closed `stream` (EOF or reset) within `within`.
fn closed_within(stream: &mut TcpStream, within: Duration) -> bool {
    stream.set_read_timeout(Some(within)).unwrap();
    let mut byte = [0u8; 1];
    match stream.read(&mut byte) {
        Ok(0) => true,
        Ok(_) => false,
        Err(err) => !matches!(err.kind(), std::io::ErrorKind::WouldBlock | std::io::ErrorKind::TimedOut),
    }
}

fn still_serves(kiln: &Kiln) {
    assert_eq!(body(kiln.get("/ok")).0, 200, "the server stopped serving\n{}", kiln.log());
}

#[test]
fn slowloris_connections_are_closed_at_the_header_timeout() {
    let (kiln, _dir) = serve_guest("echo_request", &["--header-read-timeout", "1s"]);
    let mut slow: Vec<TcpStream> = (0..50)
        .map(|_| {
            let mut stream = TcpStream::connect(kiln.addr).expect("connect");
            stream.write_all(b"GET / HTTP/1.1\r\nHost: x\r\n").unwrap();
            stream
        })
        .collect();
    let started = Instant::now();
    // Keep dribbling header bytes: they do not reset the clock.
    for _ in 0..3 {
        std::thread::sleep(Duration::from_millis(200));
        for stream in &mut slow {
            let _ = stream.write_all(b"X-A: b\r\n");
        }
        still_serves(&kiln);
    }
    for stream in &mut slow {
        assert!(closed_within(stream, Duration::from_secs(5)), "a slow connection is still open after {:?}", started.elapsed());
    }
    assert!(started.elapsed() < Duration::from_secs(6));
    // An idle keep-alive connection ends the same way.
    let mut idle = TcpStream::connect(kiln.addr).unwrap();
    idle.write_all(b"GET /ok HTTP/1.1\r\nHost: x\r\n\r\n").unwrap();
    let mut first = [0u8; 12];
    idle.read_exact(&mut first).unwrap();
    assert_eq!(&first, b"HTTP/1.1 200");
    let mut rest = Vec::new();
    idle.set_read_timeout(Some(Duration::from_secs(5))).unwrap();
    let _ = idle.read_to_end(&mut rest);
    assert!(!rest.is_empty(), "the connection closed after the idle timeout");
    still_serves(&kiln);
}

#[test]
fn oversized_heads_get_431_and_the_limit_is_configurable() {
    let (kiln, _dir) = serve_guest("echo_request", &[]);
    let headers = |bytes: usize| -> String {
        (0..bytes / 1000).map(|i| format!("X-Filler-{i}: {}\r\n", "a".repeat(980))).collect()
    };
    let request = |extra: &str, path: &str| format!("GET {path} HTTP/1.1\r\nHost: x\r\nConnection: close\r\n{extra}\r\n").into_bytes();
    assert!(raw(&kiln, &request(&headers(40_000), "/")).starts_with("HTTP/1.1 200"), "40 KB of headers are within the 64 KiB default");
    assert!(raw(&kiln, &request(&headers(200_000), "/")).starts_with("HTTP/1.1 431"), "200 KB of headers");
    let long_uri = format!("/{}", "a".repeat(100_000));
    assert!(raw(&kiln, &request("", &long_uri)).starts_with("HTTP/1.1 431"), "a 100 KB URI");
    still_serves(&kiln);

    let (small, _dir) = serve_guest("echo_request", &["--max-request-headers", "16384"]);
    assert!(raw(&small, &request(&headers(20_000), "/")).starts_with("HTTP/1.1 431"));
    assert!(raw(&small, &request(&headers(8_000), "/")).starts_with("HTTP/1.1 200"));
}

#[test]
fn idle_connections_past_the_limit_close_oldest_first() {
    let (kiln, _dir) = serve_guest("echo_request", &["--max-connections", "20", "--workers", "1"]);
    // 40 keep-alive connections, each idle after one request.
    let mut idle: Vec<TcpStream> = (0..40)
        .map(|_| {
            let mut stream = TcpStream::connect(kiln.addr).expect("connect");
            stream.write_all(b"GET /ok HTTP/1.1\r\nHost: x\r\n\r\n").unwrap();
            let mut status = [0u8; 12];
            stream.read_exact(&mut status).unwrap();
            assert_eq!(&status, b"HTTP/1.1 200");
            stream
        })
        .collect();
    std::thread::sleep(Duration::from_millis(300));
    let open: Vec<bool> = idle.iter_mut().map(|s| !closed_within_draining(s)).collect();
    let kept = open.iter().filter(|o| **o).count();
    assert!(kept <= 21, "{kept} of 40 idle connections still open with --max-connections 20");
    assert!(open[39] && open[30], "the newest connections are kept: {open:?}");
    assert!(!open[0] && !open[10], "the oldest are closed first: {open:?}");
    still_serves(&kiln);
}

/// Reads what is left of the response, then whether the server closed the connection.
fn closed_within_draining(stream: &mut TcpStream) -> bool {
    stream.set_read_timeout(Some(Duration::from_millis(300))).unwrap();
    let mut buf = [0u8; 4096];
    loop {
        match stream.read(&mut buf) {
            Ok(0) => return true,
            Ok(_) => continue,
            Err(err) => return !matches!(err.kind(), std::io::ErrorKind::WouldBlock | std::io::ErrorKind::TimedOut),
        }
    }
}

#[test]
fn conflicting_framing_cannot_smuggle_a_request() {
    let (kiln, _dir) = serve_guest("echo_request", &[]);
    // Content-Length and Transfer-Encoding together: the body is framed by Transfer-Encoding alone
    // and the connection is closed after the answer (RFC 9112 §6.3), so what follows the chunked
    // body is never read as a second request.
    let smuggle = b"POST / HTTP/1.1\r\nHost: x\r\nContent-Length: 4\r\nTransfer-Encoding: chunked\r\n\r\n0\r\n\r\nGET /smuggled HTTP/1.1\r\nHost: x\r\n\r\n";
    let answer = raw_answer(&kiln, smuggle);
    assert!(answer.starts_with("HTTP/1.1 200"), "{answer:?}");
    assert_eq!(answer.matches("HTTP/1.1 ").count(), 1, "one answer, then the connection closed: {answer:?}");
    // Two different Content-Lengths.
    let status = raw(&kiln, b"POST / HTTP/1.1\r\nHost: x\r\nContent-Length: 3\r\nContent-Length: 5\r\n\r\nabcde");
    assert!(status.starts_with("HTTP/1.1 400"), "{status:?}");
    assert!(!kiln.log().contains("/smuggled"), "the smuggled request never reached the app\n{}", kiln.log());
    still_serves(&kiln);
}

/// Pieces of HTTP/1 requests, well-formed and not, for the fuzz target below.
const HTTP_FRAGMENTS: &[&str] = &[
    "GET ", "POST ", "PUT ", "CONNECT ", "BREW ", "/", "/ok", "/%00", "/..%2f", "?a=b", "*", " HTTP/1.1\r\n", " HTTP/1.0\r\n",
    " HTTP/2.0\r\n", "HTTP/9\r\n", "Host: x\r\n", "Host: \r\n", "Content-Length: 5\r\n", "Content-Length: -1\r\n",
    "Content-Length: 99999999999999999999\r\n", "Transfer-Encoding: chunked\r\n", "Transfer-Encoding: gzip, chunked\r\n",
    "Expect: 100-continue\r\n", "Connection: close\r\n", "Connection: upgrade\r\nUpgrade: h2c\r\n", "X: \u{1}\r\n",
    "\r\n", "\n", "5\r\nhello\r\n", "0\r\n\r\n", "ffffffffffffffff\r\n", "hello", " ", ":", "\t", "PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n",
];

/// Fuzz target: whatever bytes a client sends, the host answers or closes the connection within
/// the header timeout and keeps serving everyone else. Random requests under `cargo test`.
#[test]
fn any_bytes_from_a_client_leave_the_host_serving() {
    let (kiln, _dir) = serve_guest("echo_request", &["--header-read-timeout", "2s"]);
    bolero::check!().with_test_time(Duration::from_secs(2)).for_each(|input: &[u8]| {
        let request = kiln_fuzz_input::assemble(input, HTTP_FRAGMENTS);
        let mut stream = TcpStream::connect(kiln.addr).expect("connect");
        stream.set_read_timeout(Some(Duration::from_secs(10))).unwrap();
        let _ = stream.write_all(request.as_bytes());
        let _ = stream.shutdown(std::net::Shutdown::Write);
        let mut answer = Vec::new();
        match stream.read_to_end(&mut answer) {
            Ok(_) => {}
            Err(err) => assert!(!matches!(err.kind(), std::io::ErrorKind::WouldBlock | std::io::ErrorKind::TimedOut), "no answer and no close within 10 s for {request:?}"),
        }
        // A request that opens with HTTP/2's preface is answered in HTTP/2 frames.
        if !answer.is_empty() && !request.starts_with("PRI * HTTP/2.0") {
            assert!(answer.starts_with(b"HTTP/1."), "not an HTTP answer to {request:?}: {:?}", String::from_utf8_lossy(&answer));
        }
    });
    still_serves(&kiln);
}

/// HTTP/2 rapid reset (CVE-2023-44487): a client opens streams and cancels each at once, so the
/// server starts work it never gets to finish. The host must bound it (hyper's h2 server refuses a
/// connection that resets streams faster than they are accepted, with GOAWAY) and keep serving
/// everyone else meanwhile.
#[test]
fn http2_rapid_reset_is_bounded() {
    let (kiln, _dir) = serve_guest("echo_request", &[]);
    let runtime = tokio::runtime::Builder::new_current_thread().enable_all().build().expect("runtime");
    let (reset, cut_off) = runtime.block_on(async {
        let tcp = tokio::net::TcpStream::connect(kiln.addr).await.expect("connect");
        let (mut client, connection) = h2::client::handshake(tcp).await.expect("h2 handshake (prior knowledge)");
        let driver = tokio::spawn(connection);
        let (mut reset, mut cut_off) = (0u32, false);
        for _ in 0..20_000 {
            client = match client.ready().await {
                Ok(client) => client,
                Err(_) => {
                    cut_off = true;
                    break;
                }
            };
            let request = http::Request::get(format!("http://{}/", kiln.addr)).body(()).expect("request");
            match client.send_request(request, true) {
                Ok((_response, mut stream)) => {
                    stream.send_reset(h2::Reason::CANCEL);
                    reset += 1;
                }
                Err(_) => {
                    cut_off = true;
                    break;
                }
            }
        }
        driver.abort();
        (reset, cut_off)
    });
    eprintln!("rapid reset: {reset} streams reset, connection cut off by the server: {cut_off}");
    still_serves(&kiln);
    assert!(cut_off || reset == 20_000, "the burst ended neither by the server's GOAWAY nor by running out");
    // Whatever it started has ended: no instance is left running for the cancelled streams.
    let started = Instant::now();
    while kiln.get("/ok").status() != 200 && started.elapsed() < Duration::from_secs(10) {}
    assert_eq!(body(kiln.get("/ok")).0, 200);
}
