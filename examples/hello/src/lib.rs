//! Answers every request with 200 `hello world`, with a `content-length` header and no other:
//! the same bytes and headers as the native baseline in bench/native-hello.

use std::io::Write as _;

use wasi::http::types::{
    Fields, IncomingRequest, OutgoingBody, OutgoingResponse, ResponseOutparam,
};

struct Hello;
wasi::http::proxy::export!(Hello);

const BODY: &[u8] = b"hello world";

impl wasi::exports::http::incoming_handler::Guest for Hello {
    fn handle(_request: IncomingRequest, response_out: ResponseOutparam) {
        let headers = Fields::from_list(&[(
            "content-length".to_string(),
            BODY.len().to_string().into_bytes(),
        )])
        .unwrap();
        let response = OutgoingResponse::new(headers);
        let body = response.body().unwrap();
        ResponseOutparam::set(response_out, Ok(response));

        let mut out = body.write().unwrap();
        out.write_all(BODY).unwrap();
        out.blocking_flush().unwrap();
        drop(out);
        OutgoingBody::finish(body, None).unwrap();
    }
}
