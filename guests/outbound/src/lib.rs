//! `?url=<percent-encoded URL>`: GETs it through `wasi:http/outgoing-handler`. Answers
//! 200 `upstream-status: <code>\n<upstream body>`; 502 `handle error: <ErrorCode>` when `handle`
//! fails; 502 `response error: <ErrorCode>` when the response future resolves to an error
//! (e.g. `response error: HttpRequestDenied`); 502 `error: <message>` otherwise; 400 `missing url`.

use guest_common::{fetch, path_with_query, query_param, respond_fetch, text};
use wasi::http::types::{IncomingRequest, ResponseOutparam};

struct Guest;
wasi::http::proxy::export!(Guest);

impl wasi::exports::http::incoming_handler::Guest for Guest {
    fn handle(req: IncomingRequest, out: ResponseOutparam) {
        let Some(url) = query_param(&path_with_query(&req), "url") else {
            return text(out, 400, "missing url");
        };
        respond_fetch(out, fetch(&url));
    }
}
