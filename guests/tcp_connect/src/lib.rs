//! Outbound TCP through `wasi:sockets` (Rust std's `TcpStream` on wasm32-wasip2).
//!
//! `?addr=<ip:port>`: connects, writes `PING\r\n`, half-closes, reads to the end and answers 200
//! `read: <what it read, lossy UTF-8>`. On failure 502 `error: <io::ErrorKind Debug>: <message>`,
//! e.g. `error: PermissionDenied: …` when the address is not allowed. 400 `missing addr`.

use guest_common::{path_with_query, query_param, text};
use std::io::{Read, Write};
use std::net::{Shutdown, SocketAddr, TcpStream};
use std::time::Duration;
use wasi::http::types::{IncomingRequest, ResponseOutparam};

struct Guest;
wasi::http::proxy::export!(Guest);

fn ping(addr: &str) -> std::io::Result<Vec<u8>> {
    let addr: SocketAddr = addr
        .parse()
        .map_err(|e| std::io::Error::new(std::io::ErrorKind::InvalidInput, format!("{e}")))?;
    let mut stream = TcpStream::connect(addr)?;
    let _ = stream.set_read_timeout(Some(Duration::from_secs(10)));
    stream.write_all(b"PING\r\n")?;
    stream.flush()?;
    let _ = stream.shutdown(Shutdown::Write);
    let mut buf = Vec::new();
    stream.read_to_end(&mut buf)?;
    Ok(buf)
}

impl wasi::exports::http::incoming_handler::Guest for Guest {
    fn handle(req: IncomingRequest, out: ResponseOutparam) {
        let Some(addr) = query_param(&path_with_query(&req), "addr") else {
            return text(out, 400, "missing addr");
        };
        match ping(&addr) {
            Ok(read) => text(out, 200, format!("read: {}", String::from_utf8_lossy(&read))),
            Err(e) => text(out, 502, format!("error: {:?}: {e}", e.kind())),
        }
    }
}
