//! A guest that attacks its host, one attack per route (`/<attack>?n=<size>`). Each must end in a
//! bounded, documented failure while other apps keep being served (crates/cli/tests/e2e/adversary.rs).
//!
//! - `/stack-overflow`: unbounded recursion.
//! - `/trap-mid-stream`: a 200 and 64 KiB of body, then a trap.
//! - `/endless-body`: a body that never ends.
//! - `/stdout-flood?n=MiB`: `n` MiB on stdout and on stderr.
//! - `/outbound-flood?n=N`: `N` outbound requests to a host it was not granted.
//! - `/self-recursion`: requests itself (`/self-recursion`) from every instance, without end.
//! - `/huge-headers?n=KiB`: a response with `n` KiB of headers.
//! - `/read?path=P`: reads a file outside its mounts.
//! - `/hold-outbound?url=U`: an outbound request to a server that never answers, held until the
//!   host stops the instance.

use guest_common::{Fetch, fetch, path_with_query, query_param, text};
use std::hint::black_box;
use wasi::http::types::{Fields, IncomingRequest, OutgoingBody, OutgoingResponse, ResponseOutparam};
use wasi::io::streams::OutputStream;

struct Guest;
wasi::http::proxy::export!(Guest);

impl wasi::exports::http::incoming_handler::Guest for Guest {
    fn handle(request: IncomingRequest, out: ResponseOutparam) {
        let pq = path_with_query(&request);
        let path = pq.split('?').next().unwrap_or_default().to_string();
        let n: usize = query_param(&pq, "n").and_then(|n| n.parse().ok()).unwrap_or(1);
        match path.as_str() {
            "/stack-overflow" => text(out, 200, format!("depth {}", recurse(black_box(0)))),
            "/trap-mid-stream" => {
                let (body, stream) = start(out, &[]);
                write(&stream, &vec![b'x'; 64 << 10]);
                drop(stream);
                drop(body);
                panic!("trapping in the middle of a streamed response");
            }
            "/endless-body" => {
                let (_body, stream) = start(out, &[]);
                let chunk = vec![b'y'; 16 << 10];
                loop {
                    write(&stream, &chunk);
                }
            }
            "/stdout-flood" => {
                let line = format!("{}\n", "z".repeat(1023));
                let (stdout, stderr) = (wasi::cli::stdout::get_stdout(), wasi::cli::stderr::get_stderr());
                for _ in 0..n * 1024 {
                    let _ = stdout.blocking_write_and_flush(line.as_bytes());
                    let _ = stderr.blocking_write_and_flush(line.as_bytes());
                }
                text(out, 200, format!("wrote {n} MiB to stdout and stderr"));
            }
            "/outbound-flood" => {
                let denied = (0..n).filter(|_| !matches!(fetch("http://not-granted.example/"), Fetch::Response { .. })).count();
                text(out, 200, format!("{denied} of {n} refused"));
            }
            "/self-recursion" => match fetch("/self-recursion") {
                Fetch::Response { status, body } => text(out, status, body),
                Fetch::HandleError(e) | Fetch::ResponseError(e) => text(out, 502, guest_common::error_code(&e)),
                Fetch::Other(message) => text(out, 502, message),
            },
            "/huge-headers" => {
                let value = "h".repeat(1000);
                let headers: Vec<(String, String)> = (0..n).map(|i| (format!("x-big-{i}"), value.clone())).collect();
                let borrowed: Vec<(&str, &str)> = headers.iter().map(|(k, v)| (k.as_str(), v.as_str())).collect();
                let (body, stream) = start(out, &borrowed);
                write(&stream, b"ok");
                drop(stream);
                let _ = OutgoingBody::finish(body, None);
            }
            "/hold-outbound" => match fetch(&query_param(&pq, "url").unwrap_or_default()) {
                Fetch::Response { status, body } => text(out, status, body),
                Fetch::HandleError(e) | Fetch::ResponseError(e) => text(out, 502, guest_common::error_code(&e)),
                Fetch::Other(message) => text(out, 502, message),
            },
            "/read" => {
                let target = query_param(&pq, "path").unwrap_or_default();
                match std::fs::read(&target) {
                    Ok(bytes) => text(out, 200, bytes),
                    Err(err) => text(out, 404, format!("cannot read {target}: {err}")),
                }
            }
            _ => text(out, 404, "no such attack"),
        }
    }
}

#[inline(never)]
fn recurse(depth: u64) -> u64 {
    let local = black_box([depth; 16]);
    if black_box(true) { recurse(depth + 1) + local[3] } else { depth }
}

/// Sends a 200 with `headers` and returns its body and stream.
fn start(out: ResponseOutparam, headers: &[(&str, &str)]) -> (OutgoingBody, OutputStream) {
    let fields = Fields::new();
    for (name, value) in headers {
        let _ = fields.append(&name.to_string(), &value.as_bytes().to_vec());
    }
    let response = OutgoingResponse::new(fields);
    let body = response.body().expect("response body");
    ResponseOutparam::set(out, Ok(response));
    let stream = body.write().expect("body stream");
    (body, stream)
}

fn write(stream: &OutputStream, bytes: &[u8]) {
    for chunk in bytes.chunks(4096) {
        if stream.blocking_write_and_flush(chunk).is_err() {
            // The client or the host closed the body: nothing more to do than spin, as an attacker would.
            return;
        }
    }
}
