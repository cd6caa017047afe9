//! The private component `internal` (`route = { private = true }`): reachable only from other
//! components of the app, at `http://internal.spin.internal/`. Answers `internal says hi`.

use std::io::Write as _;

use wasi::http::types::{
    Fields, IncomingRequest, OutgoingBody, OutgoingResponse, ResponseOutparam,
};

struct Internal;
wasi::http::proxy::export!(Internal);

impl wasi::exports::http::incoming_handler::Guest for Internal {
    fn handle(_request: IncomingRequest, out: ResponseOutparam) {
        respond(out, 200, "internal says hi");
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
