//! Panics (so traps with `unreachable`) in the handler before responding.

use wasi::http::types::{IncomingRequest, ResponseOutparam};

struct Guest;
wasi::http::proxy::export!(Guest);

impl wasi::exports::http::incoming_handler::Guest for Guest {
    fn handle(_req: IncomingRequest, _out: ResponseOutparam) {
        panic!("trap guest: deliberate panic before responding");
    }
}
