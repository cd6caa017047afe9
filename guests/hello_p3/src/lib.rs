//! The WASI 0.3 twin of examples/hello (bench/run.sh's `kiln-p3` kind and bench/engine-floor --p3):
//! answers every request with 200 `hello world`, with a `content-length` header and no other, the
//! same bytes and headers as examples/hello and the native baseline in bench/native-hello.

use wasip3::http::types::{ErrorCode, Fields, Request, Response};
use wasip3::{wit_future, wit_stream};

struct Hello;
wasip3::http::service::export!(Hello);

const BODY: &[u8] = b"hello world";

impl wasip3::exports::http::handler::Guest for Hello {
    async fn handle(_request: Request) -> Result<Response, ErrorCode> {
        let headers = Fields::from_list(&[(
            "content-length".to_string(),
            BODY.len().to_string().into_bytes(),
        )])
        .map_err(|e| ErrorCode::InternalError(Some(format!("{e:?}"))))?;
        let (mut body_tx, body_rx) = wit_stream::new();
        // No trailers: the future resolves to `Ok(None)` when its writer is dropped.
        let (trailers_tx, trailers_rx) = wit_future::new(|| Ok(None));
        drop(trailers_tx);
        let (response, _sent) = Response::new(headers, Some(body_rx), trailers_rx);
        // The host reads the body once it has the response: write it from a task of its own.
        wasip3::spawn(async move {
            let rest = body_tx.write_all(BODY.to_vec()).await;
            debug_assert!(rest.is_empty());
        });
        Ok(response)
    }
}
