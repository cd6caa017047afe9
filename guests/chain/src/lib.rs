//! `?target=<component-id>&path=/x`: GETs `http://<component-id>.spin.internal/x` (service
//! chaining) and answers like `outbound`: 200 `upstream-status: <code>\n<body>`, 502
//! `handle error: ...` / `response error: ...` / `error: ...`; 400 `missing target`.

use guest_common::{fetch, path_with_query, query_param, respond_fetch, text};
use wasi::http::types::{IncomingRequest, ResponseOutparam};

struct Guest;
wasi::http::proxy::export!(Guest);

impl wasi::exports::http::incoming_handler::Guest for Guest {
    fn handle(req: IncomingRequest, out: ResponseOutparam) {
        let pq = path_with_query(&req);
        let Some(target) = query_param(&pq, "target") else {
            return text(out, 400, "missing target");
        };
        let mut path = query_param(&pq, "path").unwrap_or_else(|| "/".into());
        if !path.starts_with('/') {
            path.insert(0, '/');
        }
        respond_fetch(out, fetch(&format!("http://{target}.spin.internal{path}")));
    }
}
