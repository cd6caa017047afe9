//! `/api/...` (wildcard route): answers with the value of the `spin-path-info` header the host
//! added, i.e. the part of the path after `/api` (`GET /api/a/b` → `/a/b`).

use std::io::Write as _;

use wasi::http::types::{
    Fields, IncomingRequest, OutgoingBody, OutgoingResponse, ResponseOutparam,
};

struct Api;
wasi::http::proxy::export!(Api);

impl wasi::exports::http::incoming_handler::Guest for Api {
    fn handle(request: IncomingRequest, out: ResponseOutparam) {
        let values = request.headers().get(&"spin-path-info".to_string());
        match values.first() {
            Some(v) => respond(out, 200, &String::from_utf8_lossy(v)),
            None => respond(out, 500, "no spin-path-info header"),
        }
    }
}

/// Sends a complete `text/plain` response.
fn respond(out: ResponseOutparam, status: u16, body: &str) {
    let headers = Fields::from_list(&[
        ("content-type".to_string(), b"text/plain; charset=utf-8".to_vec()),
        ("content-length".to_string(), body.len().to_string().into_bytes()),
    ])
    .unwrap();
    let response = OutgoingResponse::new(headers);
    response.set_status_code(status).unwrap();
    let outgoing = response.body().unwrap();
    ResponseOutparam::set(out, Ok(response));
    let mut stream = outgoing.write().unwrap();
    stream.write_all(body.as_bytes()).unwrap();
    stream.blocking_flush().unwrap();
    drop(stream);
    OutgoingBody::finish(outgoing, None).unwrap();
}
