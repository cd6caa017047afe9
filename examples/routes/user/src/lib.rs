//! `/users/:id` (named segment): answers `user <id>` from the `spin-path-match-id` header.

use std::io::Write as _;

use wasi::http::types::{
    Fields, IncomingRequest, OutgoingBody, OutgoingResponse, ResponseOutparam,
};

struct User;
wasi::http::proxy::export!(User);

impl wasi::exports::http::incoming_handler::Guest for User {
    fn handle(request: IncomingRequest, out: ResponseOutparam) {
        let values = request.headers().get(&"spin-path-match-id".to_string());
        match values.first() {
            Some(id) => respond(out, 200, &format!("user {}", String::from_utf8_lossy(id))),
            None => respond(out, 500, "no spin-path-match-id header"),
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
