//! The native baseline for Kiln's benchmark: hyper 1 on a tokio current-thread runtime (one
//! thread), answering every request with 200 `hello world` — the same bytes and headers as the
//! `examples/hello` guest served by Kiln (`content-length: 11` plus hyper's `date`).
//!
//! Usage: native-hello [--listen ADDR]   (default 127.0.0.1:3001)

use std::convert::Infallible;
use std::net::SocketAddr;

use bytes::Bytes;
use http_body_util::Full;
use hyper::server::conn::http1;
use hyper::service::service_fn;
use hyper::{Request, Response};
use hyper_util::rt::TokioIo;
use tokio::net::TcpListener;

const BODY: &[u8] = b"hello world";

fn main() -> std::io::Result<()> {
    let mut addr: SocketAddr = "127.0.0.1:3001".parse().unwrap();
    let mut args = std::env::args().skip(1);
    while let Some(arg) = args.next() {
        match arg.as_str() {
            "--listen" | "-l" => {
                let value = args.next().unwrap_or_default();
                addr = value.parse().unwrap_or_else(|e| usage(&format!("bad --listen {value:?}: {e}")));
            }
            other => {
                if let Some(value) = other.strip_prefix("--listen=") {
                    addr = value.parse().unwrap_or_else(|e| usage(&format!("bad --listen {value:?}: {e}")));
                } else {
                    usage(&format!("unknown argument {other:?}"));
                }
            }
        }
    }

    tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()?
        .block_on(serve(addr))
}

fn usage(msg: &str) -> ! {
    eprintln!("native-hello: {msg}\nusage: native-hello [--listen ADDR]");
    std::process::exit(2)
}

async fn serve(addr: SocketAddr) -> std::io::Result<()> {
    let listener = TcpListener::bind(addr).await?;
    eprintln!("native-hello listening on http://{}", listener.local_addr()?);
    loop {
        let (stream, _) = match listener.accept().await {
            Ok(conn) => conn,
            Err(e) => {
                eprintln!("native-hello: accept failed: {e}");
                continue;
            }
        };
        let _ = stream.set_nodelay(true);
        tokio::spawn(async move {
            let service = service_fn(|_req: Request<hyper::body::Incoming>| async {
                Ok::<_, Infallible>(Response::new(Full::new(Bytes::from_static(BODY))))
            });
            let _ = http1::Builder::new()
                .serve_connection(TokioIo::new(stream), service)
                .await;
        });
    }
}
