//! The listener and its workers.
//!
//! One current-thread tokio runtime per worker thread, each accepting on the same socket: a request
//! then lives on one thread from accept to response, with no cross-thread wakeups (measured markedly
//! cheaper than a multi-thread runtime for this workload, see shared notes). Guests yield at every
//! epoch tick, so a busy guest never starves the other connections of its worker.

use crate::{Body, HttpTrigger};
use anyhow::{Context, Result};
use hyper::service::service_fn;
use hyper_util::rt::{TokioExecutor, TokioIo};
use hyper_util::server::conn::auto;
use hyper_util::server::graceful::GracefulShutdown;
use http::{Request, Response};
use hyper::body::Incoming;
use std::future::Future;
use std::net::{SocketAddr, TcpListener};
use std::sync::Arc;
use std::time::Duration;
use tokio::sync::watch;

/// Binds the listening socket, with an error that says what to do when the port is taken.
pub fn bind(addr: SocketAddr) -> Result<TcpListener> {
    let listener = TcpListener::bind(addr).map_err(|err| match err.kind() {
        std::io::ErrorKind::AddrInUse => anyhow::anyhow!(
            "cannot listen on {addr}: the address is already in use (is another kiln or server running?); choose another with --listen"
        ),
        _ => anyhow::anyhow!("cannot listen on {addr}: {err}"),
    })?;
    listener.set_nonblocking(true)?;
    Ok(listener)
}

/// What the workers hand every request to: one app's trigger (`kiln up`) or the platform's front
/// that picks the app (`kiln serve`).
pub trait HttpService: Send + Sync + 'static {
    fn serve(self: Arc<Self>, request: Request<Incoming>, client: SocketAddr, local: SocketAddr) -> impl Future<Output = Response<Body>> + Send;
}

impl HttpService for HttpTrigger {
    fn serve(self: Arc<Self>, request: Request<Incoming>, client: SocketAddr, local: SocketAddr) -> impl Future<Output = Response<Body>> + Send {
        self.handle(request, client, local)
    }
}

/// A running HTTP server.
pub struct Server {
    workers: Vec<std::thread::JoinHandle<()>>,
    shutdown: watch::Sender<bool>,
    local_addr: SocketAddr,
}

impl Server {
    /// Starts `workers` threads serving `trigger` on `listener`.
    pub fn start<S: HttpService>(trigger: Arc<S>, listener: TcpListener, workers: usize, grace: Duration) -> Result<Server> {
        let local_addr = listener.local_addr()?;
        let (shutdown, stop) = watch::channel(false);
        let mut handles = Vec::new();
        for index in 0..workers.max(1) {
            let listener = listener.try_clone().context("failed to share the listening socket")?;
            let trigger = trigger.clone();
            let stop = stop.clone();
            let handle = std::thread::Builder::new()
                .name(format!("kiln-http-{index}"))
                .spawn(move || run_worker(trigger, listener, stop, grace))
                .context("failed to start a worker thread")?;
            handles.push(handle);
        }
        Ok(Server { workers: handles, shutdown, local_addr })
    }

    pub fn local_addr(&self) -> SocketAddr {
        self.local_addr
    }

    /// Stops accepting, lets in-flight requests finish (each worker waits up to the grace period),
    /// and returns when every worker has exited.
    pub fn shutdown(self) {
        let _ = self.shutdown.send(true);
        for worker in self.workers {
            let _ = worker.join();
        }
    }
}

fn run_worker<S: HttpService>(trigger: Arc<S>, listener: TcpListener, stop: watch::Receiver<bool>, grace: Duration) {
    let runtime = match tokio::runtime::Builder::new_current_thread().enable_all().build() {
        Ok(runtime) => runtime,
        Err(err) => {
            tracing::error!("cannot start a worker runtime: {err}");
            return;
        }
    };
    runtime.block_on(async move {
        let _heartbeat = AbortOnDrop(tokio::spawn(keep_a_timer_armed()));
        if let Err(err) = accept_loop(trigger, listener, stop, grace).await {
            tracing::error!("HTTP worker stopped: {err:#}");
        }
    });
}

/// Every instance arms a deadline timer. When it is the worker's earliest timer, tokio wakes its own
/// I/O driver to say so (an `eventfd` write, and a spurious `epoll` return), once per request. A timer
/// that is always due within a second keeps request deadlines (seconds away) from ever being the
/// earliest, for the cost of one wake-up a second.
async fn keep_a_timer_armed() {
    loop {
        tokio::time::sleep(Duration::from_secs(1)).await;
    }
}

struct AbortOnDrop(tokio::task::JoinHandle<()>);

impl Drop for AbortOnDrop {
    fn drop(&mut self) {
        self.0.abort();
    }
}

async fn accept_loop<S: HttpService>(trigger: Arc<S>, listener: TcpListener, mut stop: watch::Receiver<bool>, grace: Duration) -> Result<()> {
    let listener = tokio::net::TcpListener::from_std(listener)?;
    let local = listener.local_addr()?;
    let graceful = GracefulShutdown::new();
    let builder = auto::Builder::new(TokioExecutor::new());
    loop {
        tokio::select! {
            accepted = listener.accept() => {
                let (stream, client) = match accepted {
                    Ok(accepted) => accepted,
                    Err(err) => {
                        // Out of file descriptors and the like: back off instead of spinning.
                        tracing::warn!("accept failed: {err}");
                        tokio::time::sleep(Duration::from_millis(20)).await;
                        continue;
                    }
                };
                let _ = stream.set_nodelay(true);
                let trigger = trigger.clone();
                let service = service_fn(move |request| {
                    let trigger = trigger.clone();
                    async move { Ok::<_, std::convert::Infallible>(trigger.serve(request, client, local).await) }
                });
                let connection = builder.serve_connection(TokioIo::new(stream), service).into_owned();
                let connection = graceful.watch(connection);
                tokio::spawn(async move {
                    if let Err(err) = connection.await {
                        tracing::debug!("connection from {client} ended: {err}");
                    }
                });
            }
            _ = stop.changed() => break,
        }
    }
    drop(listener);
    if tokio::time::timeout(grace, graceful.shutdown()).await.is_err() {
        tracing::warn!("shutdown grace period of {grace:?} elapsed; cutting off the requests still running");
    }
    Ok(())
}
