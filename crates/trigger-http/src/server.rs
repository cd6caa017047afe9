//! The listener and its workers.
//!
//! One current-thread tokio runtime per worker thread, each accepting on the same socket: a request
//! then lives on one thread from accept to response, with no cross-thread wakeups (measured markedly
//! cheaper than a multi-thread runtime for this workload, see shared notes). Guests yield at every
//! epoch tick, so a busy guest never starves the other connections of its worker.

use crate::{Body, HttpTrigger};
use anyhow::{Context, Result};
use hyper::service::service_fn;
use hyper_util::rt::{TokioExecutor, TokioIo, TokioTimer};
use hyper_util::server::conn::auto;
use http::{HeaderValue, Request, Response};
use hyper::body::Incoming;
use std::collections::BTreeMap;
use std::future::Future;
use std::net::{SocketAddr, TcpListener};
use std::sync::{Arc, Mutex};
use std::time::Duration;
use tokio::sync::{Notify, watch};

/// What one client connection may hold of the server: how long it may take to send a request head
/// (and how long it may sit idle between requests), how large the head may be, and how many
/// connections there may be at once.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct ConnectionLimits {
    /// A connection that has not sent a whole request line and headers this long after it opened,
    /// or after its previous response, is closed: slowloris clients and idle keep-alive connections
    /// both end. (HTTP/1; an HTTP/2 connection is bounded by its keep-alive pings.)
    pub header_read_timeout: Duration,
    /// Request line and headers larger than this (in all) get `431 Request Header Fields Too Large`
    /// (HTTP/1; for HTTP/2 the header list is bounded to it).
    pub max_header_bytes: usize,
    /// Open connections, across the workers. At the limit, each new connection asks the oldest to
    /// close (at once if idle, after its response otherwise); at twice the limit new ones are refused.
    pub max_connections: usize,
}

impl Default for ConnectionLimits {
    fn default() -> Self {
        ConnectionLimits { header_read_timeout: Duration::from_secs(30), max_header_bytes: 64 << 10, max_connections: 10_000 }
    }
}

/// hyper's smallest read buffer; the header limit cannot be lower.
const MIN_HEADER_BUFFER: usize = 8192;

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

/// A connection's peer: its address, and its `spin-client-addr` header value, made once per
/// connection rather than for each of its requests.
#[derive(Clone, Debug)]
pub struct ClientAddr {
    addr: SocketAddr,
    header: HeaderValue,
}

impl ClientAddr {
    pub fn new(addr: SocketAddr) -> ClientAddr {
        let header = HeaderValue::try_from(addr.to_string()).unwrap_or_else(|_| HeaderValue::from_static(""));
        ClientAddr { addr, header }
    }

    pub fn addr(&self) -> SocketAddr {
        self.addr
    }

    /// The address as Spin's `spin-client-addr` value, `ip:port`.
    pub(crate) fn header(&self) -> &HeaderValue {
        &self.header
    }
}

/// What the workers hand every request to: one app's trigger (`kiln up`) or the platform's front
/// that picks the app (`kiln serve`).
pub trait HttpService: Send + Sync + 'static {
    fn serve(self: Arc<Self>, request: Request<Incoming>, client: ClientAddr, local: SocketAddr) -> impl Future<Output = Response<Body>> + Send;
}

impl HttpService for HttpTrigger {
    fn serve(self: Arc<Self>, request: Request<Incoming>, client: ClientAddr, local: SocketAddr) -> impl Future<Output = Response<Body>> + Send {
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
    pub fn start<S: HttpService>(trigger: Arc<S>, listener: TcpListener, workers: usize, grace: Duration, limits: ConnectionLimits) -> Result<Server> {
        let local_addr = listener.local_addr()?;
        let (shutdown, stop) = watch::channel(false);
        let mut handles = Vec::new();
        let workers = workers.max(1);
        // Each worker keeps its share of the connection limit (the kernel spreads accepts evenly).
        let per_worker = limits.max_connections.div_ceil(workers).max(1);
        for index in 0..workers {
            let listener = listener.try_clone().context("failed to share the listening socket")?;
            let trigger = trigger.clone();
            let stop = stop.clone();
            let handle = std::thread::Builder::new()
                .name(format!("kiln-http-{index}"))
                .spawn(move || run_worker(trigger, listener, stop, grace, limits, per_worker))
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

fn run_worker<S: HttpService>(trigger: Arc<S>, listener: TcpListener, stop: watch::Receiver<bool>, grace: Duration, limits: ConnectionLimits, max_connections: usize) {
    let runtime = match tokio::runtime::Builder::new_current_thread().enable_all().build() {
        Ok(runtime) => runtime,
        Err(err) => {
            tracing::error!("cannot start a worker runtime: {err}");
            return;
        }
    };
    runtime.block_on(async move {
        let _heartbeat = AbortOnDrop(tokio::spawn(keep_a_timer_armed()));
        if let Err(err) = accept_loop(trigger, listener, stop, grace, limits, max_connections).await {
            tracing::error!("HTTP worker stopped: {err:#}");
        }
    });
}

/// An instance that waits (on I/O, or a WASI 0.3 guest's event loop) arms a deadline timer. When it
/// is the worker's earliest timer, tokio wakes its own I/O driver to say so (an `eventfd` write, and
/// a spurious `epoll` return), once per request. A timer that is always due within a second keeps
/// request deadlines (seconds away) from ever being the earliest, for the cost of one wake-up a
/// second.
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

/// The open connections of one worker, oldest first, each with the signal that asks it to close.
#[derive(Clone, Default)]
struct Connections {
    open: Arc<Mutex<BTreeMap<u64, Arc<Notify>>>>,
    /// Told when the last connection ends (shutdown waits for it).
    emptied: Arc<Notify>,
}

impl Connections {
    fn len(&self) -> usize {
        self.open.lock().unwrap_or_else(|p| p.into_inner()).len()
    }

    /// Registers connection `id`; it stays registered until the returned entry is dropped.
    fn add(&self, id: u64) -> (ConnectionEntry, Arc<Notify>) {
        let close = Arc::new(Notify::new());
        self.open.lock().unwrap_or_else(|p| p.into_inner()).insert(id, close.clone());
        (ConnectionEntry { connections: self.clone(), id }, close)
    }

    /// Asks the oldest connection to close.
    fn close_oldest(&self) {
        if let Some((_, close)) = self.open.lock().unwrap_or_else(|p| p.into_inner()).first_key_value() {
            close.notify_one();
        }
    }
}

struct ConnectionEntry {
    connections: Connections,
    id: u64,
}

impl Drop for ConnectionEntry {
    fn drop(&mut self) {
        let mut open = self.connections.open.lock().unwrap_or_else(|p| p.into_inner());
        open.remove(&self.id);
        if open.is_empty() {
            self.connections.emptied.notify_waiters();
        }
    }
}

fn connection_builder(limits: &ConnectionLimits) -> auto::Builder<TokioExecutor> {
    let mut builder = auto::Builder::new(TokioExecutor::new());
    builder
        .http1()
        .timer(TokioTimer::new())
        .header_read_timeout(limits.header_read_timeout)
        .max_buf_size(limits.max_header_bytes.max(MIN_HEADER_BUFFER));
    builder
        .http2()
        .timer(TokioTimer::new())
        .max_header_list_size(u32::try_from(limits.max_header_bytes).unwrap_or(u32::MAX))
        // A peer that stops answering pings is gone; its streams and buffers are freed.
        .keep_alive_interval(Some(Duration::from_secs(20)))
        .keep_alive_timeout(Duration::from_secs(20));
    builder
}

async fn accept_loop<S: HttpService>(
    trigger: Arc<S>,
    listener: TcpListener,
    mut stop: watch::Receiver<bool>,
    grace: Duration,
    limits: ConnectionLimits,
    max_connections: usize,
) -> Result<()> {
    let listener = tokio::net::TcpListener::from_std(listener)?;
    let local = listener.local_addr()?;
    let builder = connection_builder(&limits);
    let connections = Connections::default();
    let mut next_id = 0u64;
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
                let open = connections.len();
                if open >= max_connections.saturating_mul(2) {
                    tracing::warn!("refused a connection from {client}: {open} connections open on this worker (limit {max_connections}, none idle)");
                    continue;
                }
                if open >= max_connections {
                    connections.close_oldest();
                }
                let _ = stream.set_nodelay(true);
                let trigger = trigger.clone();
                let peer = ClientAddr::new(client);
                let service = service_fn(move |request| {
                    let trigger = trigger.clone();
                    let peer = peer.clone();
                    async move { Ok::<_, std::convert::Infallible>(trigger.serve(request, peer, local).await) }
                });
                let connection = builder.serve_connection(TokioIo::new(stream), service).into_owned();
                next_id += 1;
                let (entry, close) = connections.add(next_id);
                let stop = stop.clone();
                tokio::spawn(async move {
                    let _entry = entry;
                    let mut connection = std::pin::pin!(connection);
                    let result = tokio::select! {
                        result = connection.as_mut() => result,
                        () = closing(stop, &close) => {
                            // Closes at once if idle, after the response in flight otherwise.
                            connection.as_mut().graceful_shutdown();
                            connection.await
                        }
                    };
                    if let Err(err) = result {
                        tracing::debug!("connection from {client} ended: {err}");
                    }
                });
            }
            _ = stop.changed() => break,
        }
    }
    drop(listener);
    // Registered before the count is read, so the last connection's end cannot slip in between.
    let mut emptied = std::pin::pin!(connections.emptied.notified());
    emptied.as_mut().enable();
    if connections.len() > 0 && tokio::time::timeout(grace, emptied).await.is_err() {
        tracing::warn!("shutdown grace period of {grace:?} elapsed; cutting off the requests still running");
    }
    Ok(())
}

/// Resolves when the server shuts down or the connection is asked to make room.
async fn closing(mut stop: watch::Receiver<bool>, close: &Notify) {
    tokio::select! {
        _ = stop.wait_for(|stopped| *stopped) => {}
        () = close.notified() => {}
    }
}
