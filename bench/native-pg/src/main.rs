//! The native baseline for Kiln's PostgreSQL benchmark (`bench/pg.sh`): hyper 1 on a tokio
//! current-thread runtime (one thread), answering `GET /?id=N` with the `name` of row N of
//! `items`, read with one query by primary key through a deadpool-postgres pool — what the
//! `spin_pg` guest does through Kiln (a pooled connection, the statement prepared and run, the
//! value sent back as text).
//!
//! Usage: native-pg --listen ADDR --db POSTGRES_URL

use std::convert::Infallible;
use std::net::SocketAddr;
use std::str::FromStr;

use bytes::Bytes;
use deadpool_postgres::{Manager, ManagerConfig, Pool, RecyclingMethod};
use http_body_util::Full;
use hyper::server::conn::http1;
use hyper::service::service_fn;
use hyper::{Request, Response, StatusCode};
use hyper_util::rt::TokioIo;
use tokio::net::TcpListener;

fn main() -> std::io::Result<()> {
    let mut addr = None;
    let mut db = None;
    let mut args = std::env::args().skip(1);
    while let Some(arg) = args.next() {
        match arg.as_str() {
            "--listen" => addr = args.next().and_then(|a| a.parse::<SocketAddr>().ok()),
            "--db" => db = args.next(),
            other => usage(&format!("unknown argument {other:?}")),
        }
    }
    let (Some(addr), Some(db)) = (addr, db) else { usage("--listen and --db are required") };
    let config = tokio_postgres::Config::from_str(&db).unwrap_or_else(|e| usage(&format!("bad --db: {e}")));
    let manager = Manager::from_config(config, tokio_postgres::NoTls, ManagerConfig { recycling_method: RecyclingMethod::Fast });
    let pool = Pool::builder(manager).max_size(32).build().unwrap_or_else(|e| usage(&format!("pool: {e}")));
    tokio::runtime::Builder::new_current_thread().enable_all().build()?.block_on(serve(addr, pool))
}

fn usage(msg: &str) -> ! {
    eprintln!("native-pg: {msg}\nusage: native-pg --listen ADDR --db POSTGRES_URL");
    std::process::exit(2)
}

async fn answer(pool: Pool, req: Request<hyper::body::Incoming>) -> Response<Full<Bytes>> {
    let id: i32 = req
        .uri()
        .query()
        .and_then(|q| q.split('&').find_map(|p| p.strip_prefix("id=")))
        .and_then(|n| n.parse().ok())
        .unwrap_or(1);
    let result = async {
        let client = pool.get().await.map_err(|e| e.to_string())?;
        let rows = client.query("SELECT name FROM items WHERE id = $1", &[&id]).await.map_err(|e| e.to_string())?;
        rows.first().map(|row| row.get::<_, String>(0)).ok_or_else(|| "no such row".to_string())
    };
    match result.await {
        Ok(name) => Response::new(Full::new(Bytes::from(name))),
        Err(e) => {
            let mut response = Response::new(Full::new(Bytes::from(e)));
            *response.status_mut() = StatusCode::INTERNAL_SERVER_ERROR;
            response
        }
    }
}

async fn serve(addr: SocketAddr, pool: Pool) -> std::io::Result<()> {
    let listener = TcpListener::bind(addr).await?;
    eprintln!("native-pg listening on http://{}", listener.local_addr()?);
    loop {
        let (stream, _) = match listener.accept().await {
            Ok(conn) => conn,
            Err(e) => {
                eprintln!("native-pg: accept failed: {e}");
                continue;
            }
        };
        let _ = stream.set_nodelay(true);
        let pool = pool.clone();
        tokio::spawn(async move {
            let service = service_fn(move |req| {
                let pool = pool.clone();
                async move { Ok::<_, Infallible>(answer(pool, req).await) }
            });
            let _ = http1::Builder::new().serve_connection(TokioIo::new(stream), service).await;
        });
    }
}
