//! `?ms=N`: sleeps N ms with `monotonic-clock.subscribe-duration` + `pollable.block`, then answers
//! 200 `slept N`. No or bad `ms` → 400 `bad ms`.

use guest_common::{path_with_query, query_param, text};
use wasi::http::types::{IncomingRequest, ResponseOutparam};

struct Guest;
wasi::http::proxy::export!(Guest);

impl wasi::exports::http::incoming_handler::Guest for Guest {
    fn handle(req: IncomingRequest, out: ResponseOutparam) {
        let Some(ms) = query_param(&path_with_query(&req), "ms").and_then(|v| v.parse::<u64>().ok())
        else {
            return text(out, 400, "bad ms");
        };
        wasi::clocks::monotonic_clock::subscribe_duration(ms.saturating_mul(1_000_000)).block();
        text(out, 200, format!("slept {ms}"));
    }
}
