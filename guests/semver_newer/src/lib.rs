//! A hello guest built with `wasip2` 2.0.1+wasi-0.2.12: it imports `wasi:*@0.2.12` interfaces and
//! exports `wasi:http/incoming-handler@0.2.12`. Answers 200 `semver ok`.

use std::io::Write as _;

use wasip2::http::types::{
    Fields, IncomingRequest, OutgoingBody, OutgoingResponse, ResponseOutparam,
};

struct Guest;
wasip2::http::proxy::export!(Guest);

impl wasip2::exports::http::incoming_handler::Guest for Guest {
    fn handle(_req: IncomingRequest, out: ResponseOutparam) {
        let body = b"semver ok";
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
