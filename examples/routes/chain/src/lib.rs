//! `/chain`: calls the private component through service chaining
//! (`GET http://internal.spin.internal/`, dispatched in-process by the host) and answers with its
//! body (`internal says hi`). If the call fails: 502 `chain failed: <error>`.

use std::io::Write as _;

use wasi::http::outgoing_handler;
use wasi::http::types::{
    Fields, IncomingRequest, Method, OutgoingBody, OutgoingRequest, OutgoingResponse,
    ResponseOutparam, Scheme,
};
use wasi::io::streams::StreamError;

struct Chain;
wasi::http::proxy::export!(Chain);

impl wasi::exports::http::incoming_handler::Guest for Chain {
    fn handle(_request: IncomingRequest, out: ResponseOutparam) {
        match call_internal() {
            Ok(body) => respond(out, 200, &body),
            Err(e) => respond(out, 502, &format!("chain failed: {e}")),
        }
    }
}

fn call_internal() -> Result<String, String> {
    let request = OutgoingRequest::new(Fields::new());
    request.set_method(&Method::Get).unwrap();
    request.set_scheme(Some(&Scheme::Http)).unwrap();
    request.set_authority(Some("internal.spin.internal")).unwrap();
    request.set_path_with_query(Some("/")).unwrap();
    OutgoingBody::finish(request.body().unwrap(), None).unwrap();

    let future = outgoing_handler::handle(request, None).map_err(|e| format!("{e:?}"))?;
    future.subscribe().block();
    let response = future
        .get()
        .expect("ready after block")
        .expect("taken once")
        .map_err(|e| format!("{e:?}"))?;
    if response.status() != 200 {
        return Err(format!("internal answered {}", response.status()));
    }
    let body = response.consume().unwrap();
    let stream = body.stream().unwrap();
    let mut data = Vec::new();
    loop {
        match stream.blocking_read(64 * 1024) {
            Ok(chunk) => data.extend_from_slice(&chunk),
            Err(StreamError::Closed) => break,
            Err(StreamError::LastOperationFailed(e)) => return Err(e.to_debug_string()),
        }
    }
    Ok(String::from_utf8_lossy(&data).into_owned())
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
