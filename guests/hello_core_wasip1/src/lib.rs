//! A core module (built for `wasm32-wasip1`, not a component) answering 200 `hello from a core module`.

use std::io::Write as _;

use wasi::http::types::{
    Fields, IncomingRequest, OutgoingBody, OutgoingResponse, ResponseOutparam,
};

struct Guest;
wasi::http::proxy::export!(Guest);

impl wasi::exports::http::incoming_handler::Guest for Guest {
    fn handle(_req: IncomingRequest, out: ResponseOutparam) {
        let body = b"hello from a core module";
        let headers = Fields::from_list(&[
            ("content-type".to_string(), b"text/plain; charset=utf-8".to_vec()),
            ("content-length".to_string(), body.len().to_string().into_bytes()),
        ])
        .unwrap();
        let resp = OutgoingResponse::new(headers);
        let outgoing = resp.body().unwrap();
        ResponseOutparam::set(out, Ok(resp));
        {
            let mut stream = outgoing.write().unwrap();
            stream.write_all(body).unwrap();
            stream.blocking_flush().unwrap();
        }
        OutgoingBody::finish(outgoing, None).unwrap();
    }
}
