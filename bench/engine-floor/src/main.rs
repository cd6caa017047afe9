//! The engine's floor, in process: what wasmtime itself costs to serve one `wasi:http` request with a
//! fresh instance, on the engine Kiln builds, with no HTTP server around it.
//!
//! Loop N times: a new `Store` with fresh `WasiCtx` + `WasiHttpCtx`, instantiate from the
//! pre-instantiated component, build a GET request, call the handler (WASI 0.2:
//! `wasi:http/incoming-handler` through wasmtime-wasi-http's p2 `ProxyPre`; WASI 0.3 (`--p3`):
//! `wasi:http/handler` inside `run_concurrent`), read the whole response body, drop the store.
//!
//! The engine is `kiln_engine::Engine::new` with the `EngineConfig` `kiln up` gives an app (pooling
//! allocator of 2 × 1000 + 16 instances, copy-on-write images, epoch interruption and its ticker
//! thread, concurrency support for 0.3 apps): this harness uses its `wasmtime::Engine` as is. The linker
//! and the store data are the plain wasmtime ones (WASI 0.2 + wasi:http, and 0.3 with `--p3`), so
//! what Kiln adds on top (its `KilnState`, memory limiter, epoch callback, guest log pipes, the
//! shadowed imports) is not in the floor; `--kiln-store` measures Kiln's store and linker instead.
//!
//! CPU time of this thread (`CLOCK_THREAD_CPUTIME_ID`), in µs per iteration, median of the rounds.
//! Each round runs the loop twice: once untimed inside (the total), once with a clock read between
//! phases (the phases, each less one clock read, calibrated at start).
//!
//! `--trigger` measures Kiln's whole request path in process instead: the guest as a one-route app
//! loaded as `kiln up` loads it (its engine, capabilities, store and linker), and per iteration a
//! request as hyper hands it over (`GET /`, a `Host` header) given to the HTTP trigger, the response
//! body read whole. That is routing, Spin's headers, the instance permit, Kiln's store, the instance's
//! task and the floor, with no HTTP parsing and no socket: the trigger's total less the plain floor is
//! Kiln's own work a request, measured directly rather than left over from an HTTP benchmark.
//!
//! ```text
//! engine-floor --guest PATH [--iterations N] [--rounds R] [--p3] [--concurrency] [--kiln-store | --trigger]
//! ```
//! Last line of output: `FLOOR p3=0 floor_us=… store=… instantiate=… request=… handle_body=… drop=… …`.

use anyhow::{Context, Result, bail, ensure};
use bytes::Bytes;
use http_body_util::{BodyExt, Empty};
use kiln_engine::{ComponentPre, EngineConfig, InstanceOptions, KilnState, WasiTemplate};
use kiln_trigger_http::{ClientAddr, HttpTrigger};
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::{Duration, Instant};
use wasmtime::Store;
use wasmtime::component::{Linker, ResourceTable};
use wasmtime_wasi::{WasiCtx, WasiCtxView, WasiView};
use wasmtime_wasi_http::p2::bindings::ProxyPre;
use wasmtime_wasi_http::p2::bindings::http::types::Scheme;
use wasmtime_wasi_http::p3;
use wasmtime_wasi_http::{FieldMap, WasiHttpCtx, WasiHttpCtxView, WasiHttpView};

// The allocator `kiln` runs with (crates/cli/src/main.rs), so `--trigger` measures Kiln's path as it
// runs there, and the floor is measured with the same allocator it is compared against.
#[global_allocator]
static GLOBAL: mimalloc::MiMalloc = mimalloc::MiMalloc;

const BODY: &[u8] = b"hello world";
const PHASES: [&str; 5] = ["store", "instantiate", "request", "handle_body", "drop"];

struct Args {
    guest: PathBuf,
    iterations: u32,
    rounds: u32,
    p3: bool,
    concurrency: bool,
    kiln_store: bool,
    trigger: bool,
}

fn parse_args() -> Result<Args> {
    let mut args = Args { guest: PathBuf::new(), iterations: 20_000, rounds: 5, p3: false, concurrency: false, kiln_store: false, trigger: false };
    let mut it = std::env::args().skip(1);
    while let Some(arg) = it.next() {
        let mut value = |name: &str| it.next().with_context(|| format!("{name} needs a value"));
        match arg.as_str() {
            "--guest" => args.guest = value("--guest")?.into(),
            "--iterations" => args.iterations = value("--iterations")?.parse().context("--iterations")?,
            "--rounds" => args.rounds = value("--rounds")?.parse().context("--rounds")?,
            "--p3" => args.p3 = true,
            "--concurrency" => args.concurrency = true,
            "--kiln-store" => args.kiln_store = true,
            "--trigger" => args.trigger = true,
            "-h" | "--help" => {
                println!("engine-floor --guest PATH [--iterations N] [--rounds R] [--p3] [--concurrency] [--kiln-store | --trigger]");
                std::process::exit(0);
            }
            other => bail!("unknown argument `{other}` (see --help)"),
        }
    }
    ensure!(!args.guest.as_os_str().is_empty(), "--guest PATH is required");
    ensure!(args.iterations > 0 && args.rounds > 0, "--iterations and --rounds must be positive");
    ensure!(!(args.trigger && args.kiln_store), "--trigger already uses Kiln's store: give one of --trigger and --kiln-store");
    Ok(args)
}

/// CPU time consumed by this thread, in ns.
fn thread_cpu_ns() -> u64 {
    let mut ts = libc::timespec { tv_sec: 0, tv_nsec: 0 };
    // SAFETY: a valid out-pointer to a timespec.
    let rc = unsafe { libc::clock_gettime(libc::CLOCK_THREAD_CPUTIME_ID, &mut ts) };
    assert_eq!(rc, 0, "clock_gettime(CLOCK_THREAD_CPUTIME_ID)");
    ts.tv_sec as u64 * 1_000_000_000 + ts.tv_nsec as u64
}

/// What one clock read costs, in ns (median of 5 batches).
fn clock_cost_ns() -> f64 {
    let mut samples: Vec<f64> = (0..5)
        .map(|_| {
            const N: u64 = 100_000;
            let t0 = thread_cpu_ns();
            for _ in 0..N {
                std::hint::black_box(thread_cpu_ns());
            }
            (thread_cpu_ns() - t0) as f64 / N as f64
        })
        .collect();
    median(&mut samples)
}

fn median(v: &mut [f64]) -> f64 {
    v.sort_by(|a, b| a.total_cmp(b));
    let n = v.len();
    if n % 2 == 1 { v[n / 2] } else { (v[n / 2 - 1] + v[n / 2]) / 2.0 }
}

/// The store data: WASI and wasi:http contexts, as wasmtime's own examples have it.
struct State {
    table: ResourceTable,
    wasi: WasiCtx,
    http: WasiHttpCtx,
}

impl WasiView for State {
    fn ctx(&mut self) -> WasiCtxView<'_> {
        WasiCtxView { ctx: &mut self.wasi, table: &mut self.table }
    }
}

impl WasiHttpView for State {
    fn http(&mut self) -> WasiHttpCtxView<'_> {
        WasiHttpCtxView { ctx: &mut self.http, table: &mut self.table, hooks: Default::default() }
    }
}

/// One iteration's clock, optional: `Some` records the phases, `None` only runs them.
struct Stamps<'a> {
    acc: Option<&'a mut [u64; 5]>,
    last: u64,
    phase: usize,
}

impl Stamps<'_> {
    fn start(acc: Option<&mut [u64; 5]>) -> Stamps<'_> {
        let last = if acc.is_some() { thread_cpu_ns() } else { 0 };
        Stamps { acc, last, phase: 0 }
    }

    #[inline]
    fn mark(&mut self) {
        if let Some(acc) = self.acc.as_deref_mut() {
            let now = thread_cpu_ns();
            acc[self.phase] += now - self.last;
            self.last = now;
        }
        self.phase += 1;
    }
}

type FloorRequest = http::Request<http_body_util::combinators::BoxBody<Bytes, wasmtime_wasi_http::Error>>;

/// The floor's request: an absolute URI, as wasi-http's own request constructors take it.
fn get_request() -> FloorRequest {
    request_to("http://127.0.0.1/", &[(http::header::HOST, "127.0.0.1"), (http::header::USER_AGENT, "engine-floor")])
}

/// `GET uri` with `headers` and no body.
fn request_to(uri: &str, headers: &[(http::header::HeaderName, &'static str)]) -> FloorRequest {
    let mut request = http::Request::builder().method(http::Method::GET).uri(uri);
    for (name, value) in headers {
        request = request.header(name, *value);
    }
    request.body(Empty::<Bytes>::new().map_err(|never| match never {}).boxed()).expect("a valid request")
}

/// What the loop needs: the engine, one way to make a store, one way to serve a request.
enum Guest {
    P2 { proxy: ProxyPre<State> },
    P3 { service: p3::bindings::ServicePre<State> },
    KilnP2 { pre: ComponentPre, proxy: ProxyPre<KilnState> },
    KilnP3 { pre: ComponentPre, service: p3::bindings::ServicePre<KilnState> },
}

/// The guest as a one-route app under `kiln up`'s host, and the HTTP trigger the loop hands requests
/// to (a second trigger over the same loaded app, beside the host's own, which takes no requests).
struct TriggerApp {
    trigger: Arc<HttpTrigger>,
    client: ClientAddr,
    local: SocketAddr,
    host: kiln_host::Host,
    _dir: TempDir,
}

impl TriggerApp {
    fn load(guest: &Path) -> Result<TriggerApp> {
        let guest = std::fs::canonicalize(guest).with_context(|| format!("{}", guest.display()))?;
        let source = guest.to_str().filter(|path| !path.contains('\'')).with_context(|| format!("{}: a path in UTF-8 without `'` is needed", guest.display()))?;
        let dir = TempDir::new()?;
        let manifest_path = dir.0.join("kiln.toml");
        // A TOML literal string: the path as it is, no escapes.
        let text = format!(
            "spin_manifest_version = 2\n[application]\nname = \"floor\"\n[[trigger.http]]\nroute = \"/...\"\ncomponent = \"hello\"\n[component.hello]\nsource = '{source}'\n"
        );
        std::fs::write(&manifest_path, &text)?;
        let manifest = kiln_manifest::Manifest::parse(text, &manifest_path)?;
        let mut settings = kiln_host::Settings::new(SocketAddr::from(([127, 0, 0, 1], 0)));
        settings.workers = 1;
        settings.cache_dir = None;
        settings.state_dir = Some(dir.0.join(".kiln"));
        let host = kiln_host::prepare(manifest, settings)?.start(|_| Ok(()))?;
        let trigger = HttpTrigger::new(host.app(), kiln_trigger_http::HttpOptions::default())?;
        let local = host.addr();
        Ok(TriggerApp { trigger, client: ClientAddr::new(SocketAddr::from(([127, 0, 0, 1], 40000))), local, host, _dir: dir })
    }

    /// `n` requests one after another on a task of their own, as hyper serves a connection's
    /// requests on the connection's task: a request that goes to the back of the run queue then
    /// stays on the worker's queue, as in `kiln`, rather than waking the runtime's driver as a
    /// `block_on` future would.
    async fn serve_on_task(&self, n: u32) -> Result<()> {
        let (trigger, client, local) = (self.trigger.clone(), self.client.clone(), self.local);
        tokio::spawn(async move {
            for _ in 0..n {
                serve(&trigger, &client, local).await?;
            }
            anyhow::Ok(())
        })
        .await?
    }

    fn shutdown(self) {
        drop(self.trigger);
        self.host.shutdown();
    }
}

/// One request to `trigger`: `GET /` as hyper hands a `wrk` request over (origin-form URI, the `Host`
/// header), the whole body read.
async fn serve(trigger: &Arc<HttpTrigger>, client: &ClientAddr, local: SocketAddr) -> Result<()> {
    let request = request_to("/", &[(http::header::HOST, "127.0.0.1:3000")]);
    let response = trigger.clone().handle(request, client.clone(), local).await;
    ensure!(response.status() == 200, "status {}", response.status());
    let body = response.into_body().collect().await.map_err(|err| anyhow::anyhow!("reading the body: {err}"))?.to_bytes();
    check_body(&body)
}

/// A directory removed when dropped.
struct TempDir(PathBuf);

impl TempDir {
    fn new() -> Result<TempDir> {
        let dir = std::env::temp_dir().join(format!("engine-floor-{}", std::process::id()));
        std::fs::create_dir_all(&dir).with_context(|| format!("creating {}", dir.display()))?;
        Ok(TempDir(dir))
    }
}

impl Drop for TempDir {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

struct Floor {
    engine: wasmtime::Engine,
    guest: Guest,
    /// `--trigger`: Kiln's request path, measured alternately with the floor.
    trigger: Option<TriggerApp>,
}

fn plain_store(engine: &wasmtime::Engine) -> Store<State> {
    let state = State { table: ResourceTable::new(), wasi: WasiCtx::builder().build(), http: WasiHttpCtx::new() };
    let mut store = Store::new(engine, state);
    // Epoch interruption is on in Kiln's engine (and the ticker runs): give the instance a deadline
    // far enough never to fire, with no callback.
    store.set_epoch_deadline(1 << 40);
    store
}

fn kiln_store(pre: &ComponentPre) -> Result<Store<KilnState>> {
    pre.new_store(InstanceOptions {
        deadline: Instant::now() + Duration::from_secs(60),
        memory_limit: 128 << 20,
        http_hooks: Box::new([(); 0]),
        command: None,
    })
}

fn check_body(body: &Bytes) -> Result<()> {
    ensure!(body.as_ref() == BODY, "the guest answered {body:?}, not `hello world`");
    Ok(())
}

async fn serve_p2<T: WasiHttpView + Send + 'static>(
    mut store: Store<T>,
    proxy: &ProxyPre<T>,
    stamps: &mut Stamps<'_>,
) -> Result<()> {
    let instance = proxy.instantiate_async(&mut store).await?;
    stamps.mark();
    let request = store.data_mut().http().new_incoming_request(Scheme::Http, get_request())?;
    let (sender, receiver) = tokio::sync::oneshot::channel();
    let outparam = store.data_mut().http().new_response_outparam(sender)?;
    stamps.mark();
    instance.wasi_http_incoming_handler().call_handle(&mut store, request, outparam).await?;
    let response = receiver.await.context("no response")?.map_err(|code| anyhow::anyhow!("error code {code:?}"))?;
    ensure!(response.status() == 200, "status {}", response.status());
    let body = response.into_body().collect().await?.to_bytes();
    check_body(&body)?;
    stamps.mark();
    drop(store);
    stamps.mark();
    Ok(())
}

async fn serve_p3<T: WasiHttpView + Send + 'static>(
    mut store: Store<T>,
    service: &p3::bindings::ServicePre<T>,
    stamps: &mut Stamps<'_>,
) -> Result<()> {
    let instance = service.instantiate_async(&mut store).await?;
    stamps.mark();
    let (parts, body) = get_request().into_parts();
    let headers = FieldMap::new_immutable(store.data_mut().http().hooks, parts.headers);
    let uri = parts.uri.into_parts();
    let (request, request_io) = p3::Request::new(parts.method, uri.scheme, uri.authority, uri.path_and_query, headers, None, body);
    stamps.mark();
    let body = store
        .run_concurrent(async move |accessor| -> Result<Bytes> {
            let response = instance.handle(accessor, request).await?.map_err(|code| anyhow::anyhow!("error code {code:?}"))?;
            let response = accessor.with(|mut access| response.into_http(&mut access, request_io))?;
            ensure!(response.status() == 200, "status {}", response.status());
            Ok(response.into_body().collect().await?.to_bytes())
        })
        .await??;
    check_body(&body)?;
    stamps.mark();
    drop(store);
    stamps.mark();
    Ok(())
}

impl Floor {
    async fn iteration(&self, acc: Option<&mut [u64; 5]>) -> Result<()> {
        let mut stamps = Stamps::start(acc);
        match &self.guest {
            Guest::P2 { proxy } => {
                let store = plain_store(&self.engine);
                stamps.mark();
                serve_p2(store, proxy, &mut stamps).await
            }
            Guest::P3 { service } => {
                let store = plain_store(&self.engine);
                stamps.mark();
                serve_p3(store, service, &mut stamps).await
            }
            Guest::KilnP2 { pre, proxy } => {
                let store = kiln_store(pre)?;
                stamps.mark();
                serve_p2(store, proxy, &mut stamps).await
            }
            Guest::KilnP3 { pre, service } => {
                let store = kiln_store(pre)?;
                stamps.mark();
                serve_p3(store, service, &mut stamps).await
            }
        }
    }
}

fn build(args: &Args) -> Result<(kiln_engine::Engine, Floor)> {
    // As kiln-host's `engine_config` for `kiln up` with the default limits (max_concurrency 1000,
    // memory 128 MiB ≤ the engine's 256 MiB), without a compile cache (compiled once here).
    let config = EngineConfig {
        max_instances: 1000 * 2 + 16,
        cache_dir: None,
        concurrency: args.p3 || args.concurrency,
        ..EngineConfig::default()
    };
    let kiln = kiln_engine::Engine::new(config, &[]).context("building Kiln's engine")?;
    let engine = kiln.wasmtime().clone();
    let guest = if args.kiln_store {
        let pre = ComponentPre::load(&kiln, "hello", &args.guest, WasiTemplate::default(), Vec::new())?;
        if args.p3 {
            let service = p3::bindings::ServicePre::new(pre.instance_pre().clone())?;
            Guest::KilnP3 { pre, service }
        } else {
            let proxy = ProxyPre::new(pre.instance_pre().clone())?;
            Guest::KilnP2 { pre, proxy }
        }
    } else {
        let component = kiln.load_component(&args.guest)?;
        let mut linker: Linker<State> = Linker::new(&engine);
        wasmtime_wasi::p2::add_to_linker_async(&mut linker)?;
        wasmtime_wasi_http::p2::add_only_http_to_linker_async(&mut linker)?;
        if args.p3 || args.concurrency {
            wasmtime_wasi::p3::add_to_linker(&mut linker)?;
            wasmtime_wasi_http::p3::add_to_linker(&mut linker)?;
        }
        let pre = linker.instantiate_pre(&component).map_err(anyhow::Error::from).context("linking the guest")?;
        if args.p3 {
            Guest::P3 { service: p3::bindings::ServicePre::new(pre).map_err(anyhow::Error::from).context("the guest does not export wasi:http/handler@0.3")? }
        } else {
            Guest::P2 { proxy: ProxyPre::new(pre).map_err(anyhow::Error::from).context("the guest does not export wasi:http/incoming-handler@0.2")? }
        }
    };
    let trigger = if args.trigger { Some(TriggerApp::load(&args.guest)?) } else { None };
    Ok((kiln, Floor { engine, guest, trigger }))
}

fn main() -> Result<()> {
    // As `kiln` does (crates/cli/src/main.rs): with RUST_BACKTRACE set, wasmtime captures a backtrace
    // per error, and dropping a WASI 0.3 store makes one (several µs each).
    if std::env::var_os("RUST_LIB_BACKTRACE").is_none() {
        // SAFETY: no other thread exists yet.
        unsafe { std::env::set_var("RUST_LIB_BACKTRACE", "0") };
    }
    let args = parse_args()?;
    let (_kiln, mut floor) = build(&args)?;
    let runtime = tokio::runtime::Builder::new_current_thread().enable_all().build()?;
    let clock_ns = clock_cost_ns();
    let n = args.iterations;
    let (totals, phases, own) = runtime.block_on(async {
        // Warm-up: pool slots, allocator, caches.
        for _ in 0..n.min(2_000) {
            floor.iteration(None).await?;
        }
        let mut totals = Vec::new();
        let mut phases: Vec<[f64; 5]> = Vec::new();
        for round in 0..args.rounds {
            let t0 = thread_cpu_ns();
            for _ in 0..n {
                floor.iteration(None).await?;
            }
            let total = (thread_cpu_ns() - t0) as f64 / n as f64 / 1000.0;
            let mut acc = [0u64; 5];
            for _ in 0..n {
                floor.iteration(Some(&mut acc)).await?;
            }
            let per = acc.map(|ns| ((ns as f64 / n as f64) - clock_ns).max(0.0) / 1000.0);
            eprintln!(
                "round {}: total {:.2} µs; {}",
                round + 1,
                total,
                PHASES.iter().zip(per).map(|(p, v)| format!("{p} {v:.2}")).collect::<Vec<_>>().join(", ")
            );
            totals.push(total);
            phases.push(per);
        }
        let own = match &floor.trigger {
            Some(app) => Some(trigger_rounds(&floor, app, n, args.rounds).await?),
            None => None,
        };
        anyhow::Ok((totals, phases, own))
    })?;
    if let Some(app) = floor.trigger.take() {
        app.shutdown();
    }
    let mut totals = totals;
    let total = median(&mut totals);
    let phase_medians: Vec<f64> = (0..5).map(|i| median(&mut phases.iter().map(|p| p[i]).collect::<Vec<_>>())).collect();
    let sum: f64 = phase_medians.iter().sum();
    let kind = if args.p3 { "0.3 (wasi:http/handler, run_concurrent)" } else { "0.2 (wasi:http/incoming-handler)" };
    println!(
        "engine floor, {kind}, {}{}: {n} iterations × {} rounds, CPU µs per iteration (medians)",
        args.guest.display(),
        if args.kiln_store { ", Kiln's store and linker" } else { "" },
        args.rounds
    );
    println!("| phase | µs |\n|---|---|");
    for (p, v) in PHASES.iter().zip(&phase_medians) {
        println!("| {p} | {v:.2} |");
    }
    println!("| sum of phases | {sum:.2} |\n| **total (untimed loop)** | **{total:.2}** |");
    let own_fields = match own {
        Some(own) => {
            println!(
                "\nKiln's request path in process (`--trigger`), alternating with the floor in blocks of {} iterations, medians over the blocks:",
                (n / TRIGGER_BLOCKS).max(1)
            );
            println!("| path | µs |\n|---|---|");
            println!("| the floor, in these blocks | {:.2} |\n| Kiln's trigger: routing, Spin's headers, Kiln's store, the instance's task, the floor | {:.2} |", own.floor, own.trigger);
            println!("| **Kiln's own = trigger − floor (median of the blocks' differences)** | **{:.2}** |", own.own);
            format!(" trigger_floor_us={:.2} trigger_us={:.2} own_us={:.2}", own.floor, own.trigger, own.own)
        }
        None => String::new(),
    };
    println!(
        "FLOOR p3={} concurrency={} kiln_store={} iterations={n} rounds={} floor_us={total:.2} {} phases_sum={sum:.2} clock_ns={clock_ns:.0}{own_fields}",
        u8::from(args.p3),
        u8::from(args.p3 || args.concurrency),
        u8::from(args.kiln_store),
        args.rounds,
        PHASES.iter().zip(&phase_medians).map(|(p, v)| format!("{p}={v:.2}")).collect::<Vec<_>>().join(" "),
    );
    Ok(())
}

/// Blocks per round of `--trigger`: the floor and the trigger take turns this many times a round.
const TRIGGER_BLOCKS: u32 = 10;

/// Medians of `--trigger`'s blocks, µs per request.
struct Own {
    floor: f64,
    trigger: f64,
    own: f64,
}

/// Kiln's trigger against the floor. The machine's speed drifts (other tenants): blocks of each,
/// taking turns, put the same drift on both, and each block pair gives one difference.
async fn trigger_rounds(floor: &Floor, app: &TriggerApp, n: u32, rounds: u32) -> Result<Own> {
    let block = (n / TRIGGER_BLOCKS).max(1);
    app.serve_on_task(n.min(2_000)).await?;
    let (mut floors, mut triggers, mut owns) = (Vec::new(), Vec::new(), Vec::new());
    for round in 0..rounds {
        for _ in 0..TRIGGER_BLOCKS {
            let t0 = thread_cpu_ns();
            for _ in 0..block {
                floor.iteration(None).await?;
            }
            let t1 = thread_cpu_ns();
            app.serve_on_task(block).await?;
            let t2 = thread_cpu_ns();
            let (f, t) = ((t1 - t0) as f64 / block as f64 / 1000.0, (t2 - t1) as f64 / block as f64 / 1000.0);
            floors.push(f);
            triggers.push(t);
            owns.push(t - f);
        }
        let last = owns.len() - TRIGGER_BLOCKS as usize;
        eprintln!("trigger round {}: own {:.2} µs (median of the round's blocks)", round + 1, median(&mut owns[last..].to_vec()));
    }
    Ok(Own { floor: median(&mut floors), trigger: median(&mut triggers), own: median(&mut owns) })
}
