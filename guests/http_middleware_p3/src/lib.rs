//! An HTTP middleware on WASI 0.3: the `wasi:http/middleware@0.3.0` world, which exports
//! `wasi:http/handler@0.3.0` and imports it too; the app satisfies the import with its handler
//! component through `[component.<id>.dependencies]`.
//!
//! Every request goes to the imported handler; its response comes back with one more header,
//! `x-middleware: p3`, its status, body and trailers untouched (the body streams through).

extern crate wit_bindgen_057 as wit_bindgen;

mod bindings {
    wit_bindgen::generate!({ world: "middleware", path: "wit", generate_all });
}

use bindings::exports::wasi::http::handler::Guest as Handler;
use bindings::wasi::http::handler;
use bindings::wasi::http::types::{ErrorCode, Request, Response};

struct Middleware;
bindings::export!(Middleware with_types_in bindings);

impl Handler for Middleware {
    async fn handle(request: Request) -> Result<Response, ErrorCode> {
        let inner = handler::handle(request).await?;
        with_header(inner)
    }
}

/// The same response with `x-middleware: p3` added: a response's headers are immutable, so the
/// response is rebuilt around the inner one's body and trailers.
fn with_header(inner: Response) -> Result<Response, ErrorCode> {
    let status = inner.get_status_code();
    let headers = inner.get_headers().clone();
    headers
        .append("x-middleware", b"p3")
        .map_err(|err| ErrorCode::InternalError(Some(format!("{err:?}"))))?;
    // The inner body's transmission outcome is ours to report; nothing failed on this side.
    let (_done_writer, done) = bindings::wit_future::new::<Result<(), ErrorCode>>(|| Ok(()));
    let (body, trailers) = Response::consume_body(inner, done);
    let (response, _sent) = Response::new(headers, Some(body), trailers);
    response
        .set_status_code(status)
        .map_err(|()| ErrorCode::InternalError(Some("bad status".into())))?;
    Ok(response)
}
