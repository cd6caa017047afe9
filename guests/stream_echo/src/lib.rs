//! Streams the request body back as it arrives: sends 200 (`content-type: application/octet-stream`,
//! no content-length, so the host chunks it) before reading the body, then writes and flushes each
//! chunk read from the request body immediately.

use std::io::Write as _;

use wasi::http::types::{
    Fields, IncomingBody, IncomingRequest, OutgoingBody, OutgoingResponse, ResponseOutparam,
};
use wasi::io::streams::StreamError;

struct Guest;
wasi::http::proxy::export!(Guest);

impl wasi::exports::http::incoming_handler::Guest for Guest {
    fn handle(req: IncomingRequest, out: ResponseOutparam) {
        let headers = Fields::from_list(&[(
            "content-type".to_string(),
            b"application/octet-stream".to_vec(),
        )])
        .unwrap();
        let resp = OutgoingResponse::new(headers);
        let outgoing = resp.body().unwrap();
        ResponseOutparam::set(out, Ok(resp));

        let incoming = req.consume().expect("request body");
        {
            let input = incoming.stream().expect("request body stream");
            let mut output = outgoing.write().expect("response body stream");
            loop {
                match input.blocking_read(64 * 1024) {
                    Ok(chunk) => {
                        if output.write_all(&chunk).is_err() || output.blocking_flush().is_err() {
                            // The client went away.
                            return;
                        }
                    }
                    Err(StreamError::Closed) => break,
                    Err(StreamError::LastOperationFailed(e)) => {
                        eprintln!("stream_echo: request body read failed: {}", e.to_debug_string());
                        return;
                    }
                }
            }
        }
        let _trailers = IncomingBody::finish(incoming);
        OutgoingBody::finish(outgoing, None).expect("finish response body");
    }
}
