//! Spins forever in pure compute (no host calls) and never responds.

use std::hint::black_box;

use wasi::http::types::{IncomingRequest, ResponseOutparam};

struct Guest;
wasi::http::proxy::export!(Guest);

impl wasi::exports::http::incoming_handler::Guest for Guest {
    fn handle(_req: IncomingRequest, out: ResponseOutparam) {
        let mut x: u64 = black_box(0x9E37_79B9_7F4A_7C15);
        loop {
            x = black_box(x.rotate_left(5) ^ x.wrapping_mul(0x2545_F491_4F6C_DD1D));
            if black_box(false) {
                // Never taken; the optimizer cannot know that, so the loop and its result stay.
                break;
            }
        }
        guest_common::text(out, 200, format!("unreachable {x}"));
    }
}
