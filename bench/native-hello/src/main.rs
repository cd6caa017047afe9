//! The native baseline for Kiln's benchmark: hyper 1 on a tokio current-thread runtime (one
//! thread), answering every request with 200 `hello world` — the same bytes and headers as the
//! `examples/hello` guest served by Kiln (`content-length: 11` plus hyper's `date`).
//!
//! Usage: native-hello [--listen ADDR] [--busy-ns N]   (default 127.0.0.1:3001, 0)
//!
//! `--busy-ns N` computes for about N ns of CPU before each answer (registers only: no syscall, no
//! memory traffic). With N the engine's floor, this server runs at about Kiln's request rate, and
//! shows what the same HTTP work costs at that rate: fewer requests a second mean fewer events per
//! `epoll_wait` and more client wake-ups per request, which a faster server does not pay.

use std::convert::Infallible;
use std::net::SocketAddr;
use std::time::{Duration, Instant};

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
    let mut busy_ns = 0u64;
    let mut args = std::env::args().skip(1);
    while let Some(arg) = args.next() {
        match arg.as_str() {
            "--listen" | "-l" => {
                let value = args.next().unwrap_or_default();
                addr = value.parse().unwrap_or_else(|e| usage(&format!("bad --listen {value:?}: {e}")));
            }
            "--busy-ns" => {
                let value = args.next().unwrap_or_default();
                busy_ns = value.parse().unwrap_or_else(|e| usage(&format!("bad --busy-ns {value:?}: {e}")));
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
        .block_on(serve(addr, busy_rounds(busy_ns)))
}

/// Rounds of [`busy`] that take about `ns` of CPU, calibrated over 50 ms.
fn busy_rounds(ns: u64) -> u64 {
    if ns == 0 {
        return 0;
    }
    const TRIAL: u64 = 1 << 16;
    let started = Instant::now();
    let mut trials = 0u64;
    while started.elapsed() < Duration::from_millis(50) {
        busy(TRIAL);
        trials += 1;
    }
    let ns_per_round = started.elapsed().as_nanos() as f64 / (trials * TRIAL) as f64;
    (ns as f64 / ns_per_round).round() as u64
}

/// Dependent integer arithmetic, `rounds` times, that the optimiser cannot remove.
fn busy(rounds: u64) -> u64 {
    let mut x = std::hint::black_box(0x9e37_79b9_7f4a_7c15u64);
    for _ in 0..rounds {
        x = x.rotate_left(7).wrapping_mul(0x2545_f491_4f6c_dd1d) ^ 1;
    }
    std::hint::black_box(x)
}

fn usage(msg: &str) -> ! {
    eprintln!("native-hello: {msg}\nusage: native-hello [--listen ADDR] [--busy-ns N]");
    std::process::exit(2)
}

async fn serve(addr: SocketAddr, busy_rounds: u64) -> std::io::Result<()> {
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
            let service = service_fn(move |_req: Request<hyper::body::Incoming>| async move {
                if busy_rounds > 0 {
                    busy(busy_rounds);
                }
                Ok::<_, Infallible>(Response::new(Full::new(Bytes::from_static(BODY))))
            });
            let _ = http1::Builder::new()
                .serve_connection(TokioIo::new(stream), service)
                .await;
        });
    }
}
