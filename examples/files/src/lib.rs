//! Serves files from the component's file system: the manifest mounts `static/` at `/`, so
//! `GET /index.html` answers 200 with `static/index.html` (and `GET /` the same file). Anything that
//! is not a readable file answers 404 `not found`.

use std::io::Write as _;

use wasi::http::types::{
    Fields, IncomingRequest, OutgoingBody, OutgoingResponse, ResponseOutparam,
};

struct Files;
wasi::http::proxy::export!(Files);

impl wasi::exports::http::incoming_handler::Guest for Files {
    fn handle(request: IncomingRequest, out: ResponseOutparam) {
        let path_with_query = request.path_with_query().unwrap_or_else(|| "/".to_string());
        let path = path_with_query.split('?').next().unwrap_or("/");
        let path = if path == "/" { "/index.html" } else { path };
        match std::fs::read(path) {
            Ok(contents) => respond(out, 200, content_type(path), &contents),
            Err(_) => respond(out, 404, "text/plain; charset=utf-8", b"not found"),
        }
    }
}

fn content_type(path: &str) -> &'static str {
    match path.rsplit('.').next() {
        Some("html") => "text/html; charset=utf-8",
        Some("css") => "text/css",
        Some("js") => "text/javascript",
        Some("json") => "application/json",
        Some("txt") => "text/plain; charset=utf-8",
        Some("png") => "image/png",
        Some("svg") => "image/svg+xml",
        _ => "application/octet-stream",
    }
}

fn respond(out: ResponseOutparam, status: u16, content_type: &str, body: &[u8]) {
    let headers = Fields::from_list(&[
        ("content-type".to_string(), content_type.as_bytes().to_vec()),
        ("content-length".to_string(), body.len().to_string().into_bytes()),
    ])
    .unwrap();
    let response = OutgoingResponse::new(headers);
    response.set_status_code(status).unwrap();
    let outgoing = response.body().unwrap();
    ResponseOutparam::set(out, Ok(response));
    let mut stream = outgoing.write().unwrap();
    stream.write_all(body).unwrap();
    stream.blocking_flush().unwrap();
    drop(stream);
    OutgoingBody::finish(outgoing, None).unwrap();
}
