//! Allocates 1 MiB chunks (touching every page) in a loop and never responds, until the host's
//! memory limit stops it (allocation failure aborts, i.e. traps).

use std::hint::black_box;

use wasi::http::types::{IncomingRequest, ResponseOutparam};

struct Guest;
wasi::http::proxy::export!(Guest);

const CHUNK: usize = 1 << 20;

impl wasi::exports::http::incoming_handler::Guest for Guest {
    fn handle(_req: IncomingRequest, _out: ResponseOutparam) {
        let mut chunks: Vec<Vec<u8>> = Vec::new();
        loop {
            let mut chunk = vec![0u8; CHUNK];
            for page in chunk.chunks_mut(4096) {
                page[0] = 0xA5;
            }
            chunks.push(black_box(chunk));
            if chunks.len() % 64 == 0 {
                eprintln!("memory_bomb: {} MiB allocated", chunks.len());
            }
        }
    }
}
