//! `/` (exact route): lists the app's routes.

use std::io::Write as _;

use wasi::http::types::{
    Fields, IncomingRequest, OutgoingBody, OutgoingResponse, ResponseOutparam,
};

struct Index;
wasi::http::proxy::export!(Index);

const ROUTES: &str = "\
routes:
  /            this index (exact route)
  /api/...     wildcard: echoes the spin-path-info header it received
  /users/:id   named segment: answers \"user <id>\"
  /chain       calls the private component \"internal\" at http://internal.spin.internal/
";

impl wasi::exports::http::incoming_handler::Guest for Index {
    fn handle(_request: IncomingRequest, out: ResponseOutparam) {
        respond(out, 200, ROUTES);
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
