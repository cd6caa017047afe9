//! An HTTP middleware on WASI 0.2, as Spin's `http-middleware` example has it: it exports
//! `wasi:http/incoming-handler@0.2.4` and imports the same interface, which the app satisfies with
//! its handler component through `[component.<id>.dependencies]`.
//!
//! A request without `x-token: letmein` is answered here: 401 `unauthorized by middleware`, header
//! `x-middleware: p2`. Any other is handed, with its response outparam, to the imported handler
//! (WASI 0.2 gives a guest no way to make an outparam, so the inner handler answers the client).

mod bindings {
    wit_bindgen::generate!({ world: "middleware", path: "wit", generate_all });
}

use bindings::exports::wasi::http::incoming_handler::Guest as Handler;
use bindings::wasi::http::types::{Fields, IncomingRequest, OutgoingBody, OutgoingResponse, ResponseOutparam};

struct Middleware;
bindings::export!(Middleware with_types_in bindings);

impl Handler for Middleware {
    fn handle(request: IncomingRequest, out: ResponseOutparam) {
        let authorized = request.headers().get("x-token").iter().any(|value| value == b"letmein");
        if authorized {
            bindings::wasi::http::incoming_handler::handle(request, out);
        } else {
            unauthorized(out);
        }
    }
}

fn unauthorized(out: ResponseOutparam) {
    let headers = Fields::from_list(&[("x-middleware".to_string(), b"p2".to_vec())]).unwrap_or_else(|_| Fields::new());
    let response = OutgoingResponse::new(headers);
    let _ = response.set_status_code(401);
    let Ok(body) = response.body() else { return };
    ResponseOutparam::set(out, Ok(response));
    if let Ok(stream) = body.write() {
        let _ = stream.blocking_write_and_flush(b"unauthorized by middleware");
    }
    let _ = OutgoingBody::finish(body, None);
}
