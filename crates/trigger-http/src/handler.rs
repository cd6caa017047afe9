use crate::gather::Gathered;
use crate::observe::ComponentObserver;
use crate::{ClientAddr, HttpOptions};
use crate::routing::{RouteMatch, Router, WELL_KNOWN_PREFIX, add_spin_headers, duplicates_warning, spin_header_count};
use anyhow::{Context, Result};
use bytes::Bytes;
use http::{HeaderValue, Request, Response, StatusCode};
use http_body_util::{BodyExt, Full};
use kiln_app::App;
use kiln_engine::{ComponentPre, InstanceFailure, InstanceLimits, KilnState, poll_once};
use kiln_manifest::{HttpExecutor, HttpRoute};
use kiln_outbound_http::OutboundHttp;
use std::collections::HashMap;
use std::net::SocketAddr;
use std::sync::Arc;
use std::marker::PhantomData;
use std::pin::Pin;
use std::task::{Context as TaskContext, Poll};
use std::time::Instant;
use tokio::sync::{Semaphore, oneshot};
use wasmtime::Store;
use wasmtime::component::{ComponentExportIndex, ComponentNamedList, InstancePre, Lift, Lower, Resource, TypedFunc};
use wasmtime_wasi_http::{FieldMap, WasiHttpView};
use wasmtime_wasi_http::p2::bindings::http::types::Scheme;
use wasmtime_wasi_http::p2::body::HyperOutgoingBody;
use wasmtime_wasi_http::p2::types::{HostIncomingRequest, HostResponseOutparam};
use wasmtime_wasi_http::p3;

/// The body of every response Kiln sends: the guest's streaming body, or a small host-made one.
pub type Body = HyperOutgoingBody;

/// How a component answers: its `wasi:http` handler, or (`executor = { type = "wagi" }`) its
/// `wasi:cli/run` as a CGI program.
enum Export {
    Http(HandlerPre),
    Wagi(crate::wagi::WagiPre),
}

/// A component's `wasi:http` handler export, located once.
enum HandlerPre {
    /// WASI 0.2's `incoming-handler@0.2.x`.
    P2(P2HandlerPre),
    /// WASI 0.3's `handler@0.3.x`.
    P3(P3HandlerPre),
    /// Spin 2's `wasi:http/incoming-handler@0.2.0-rc-2023-10-18` (spin-sdk 2.1 and 2.2).
    Rc20231018(kiln_wasi_rc::rc_2023_10_18::ProxyPre<KilnState>),
    /// `wasi:http/incoming-handler@0.2.0-rc-2023-11-10`.
    Rc20231110(kiln_wasi_rc::rc_2023_11_10::ProxyPre<KilnState>),
}

/// A handler's `handle` export, located and type-checked once when the component is loaded, then
/// called in every instance without being looked up or checked again. wasmtime-wasi-http's
/// `ProxyPre` and `ServicePre` do both in every instance they make; for WASI 0.3 the check compares
/// an error-code variant of some forty cases by name, a measurable part of a request.
struct CheckedHandle<Params, Results> {
    pre: InstancePre<KilnState>,
    index: ComponentExportIndex,
    interface: &'static str,
    _type: PhantomData<fn(Params) -> Results>,
}

/// `wasi:http/incoming-handler@0.2.x#handle`: takes a request and the place for its response.
type P2HandlerPre = CheckedHandle<(Resource<HostIncomingRequest>, Resource<HostResponseOutparam>), ()>;

/// `wasi:http/handler@0.3.x#handle`: takes a request, returns a response or an error code.
type P3HandlerPre = CheckedHandle<P3Params, P3Results>;
type P3Params = (Resource<p3::Request>,);
type P3Results = (Result<Resource<p3::Response>, p3::bindings::http::types::ErrorCode>,);

impl<Params, Results> CheckedHandle<Params, Results>
where
    Params: ComponentNamedList + Lower,
    Results: ComponentNamedList + Lift,
{
    /// `interface#handle` of the component.
    ///
    /// # Safety
    /// The caller has checked that the component's `interface#handle` has the type
    /// `TypedFunc<Params, Results>`.
    unsafe fn checked(pre: &InstancePre<KilnState>, interface: &'static str) -> Option<Self> {
        let component = pre.component();
        let exported = component.get_export_index(None, interface)?;
        let index = component.get_export_index(Some(&exported), "handle")?;
        Some(CheckedHandle { pre: pre.clone(), index, interface, _type: PhantomData })
    }

    async fn instantiate_async(&self, store: &mut Store<KilnState>) -> wasmtime::Result<TypedFunc<Params, Results>> {
        let instance = self.pre.instantiate_async(&mut *store).await?;
        let Some(func) = instance.get_func(&mut *store, self.index) else {
            wasmtime::bail!("the instance has no `{}#handle`", self.interface);
        };
        // SAFETY: `checked`'s caller checked this export of this component against these types when
        // it was loaded, and every instance of a component has the same export types.
        Ok(unsafe { TypedFunc::new_unchecked(func) })
    }
}

/// The WASI 0.2 handler, if the component exports `wasi:http/incoming-handler@0.2.x` with
/// `handle`'s type; why not otherwise.
fn p2_handler(pre: &InstancePre<KilnState>) -> Result<P2HandlerPre> {
    wasmtime_wasi_http::p2::bindings::ProxyPre::new(pre.clone())?;
    // SAFETY: `ProxyPre::new` checked the export against `P2HandlerPre`'s types.
    unsafe { P2HandlerPre::checked(pre, "wasi:http/incoming-handler@0.2.0") }.context("no `wasi:http/incoming-handler@0.2.x#handle` export")
}

/// The WASI 0.3 handler, if the component exports `wasi:http/handler@0.3.x` with `handle`'s type.
fn p3_handler(pre: &InstancePre<KilnState>) -> Option<P3HandlerPre> {
    p3::bindings::ServicePre::new(pre.clone()).ok()?;
    // SAFETY: `ServicePre::new` checked the export against `P3HandlerPre`'s types.
    unsafe { P3HandlerPre::checked(pre, "wasi:http/handler@0.3.0") }
}

impl Export {
    fn locate(component: &ComponentPre, executor: &HttpExecutor) -> Result<Export> {
        match executor {
            HttpExecutor::Http => handler_export(component).map(Export::Http),
            HttpExecutor::Wagi(wagi) => crate::wagi::WagiPre::new(component, wagi).map(Export::Wagi),
        }
    }
}

/// Where an instance sends its response, or the guest's error code (as text) if it answered with one.
type ResponseSender = oneshot::Sender<Result<Response<Body>, String>>;

/// One app's HTTP routes and components.
pub struct HttpTrigger {
    name: String,
    version: Option<String>,
    /// `/.well-known/spin/`, under the mount point in platform mode.
    well_known_prefix: String,
    router: Router,
    components: HashMap<String, Arc<HttpComponent>>,
    options: HttpOptions,
    permits: Arc<Semaphore>,
    /// This trigger itself, for in-process requests that must outlive the borrow they start from.
    me: std::sync::Weak<HttpTrigger>,
}

/// A component that can serve HTTP: linked, with its export located once.
pub(crate) struct HttpComponent {
    pub(crate) id: String,
    pre: ComponentPre,
    export: Export,
    outbound: Arc<OutboundHttp>,
    observer: Option<Arc<dyn ComponentObserver>>,
}

impl HttpTrigger {
    /// Builds the router and locates every HTTP component's handler export. Route errors point at the
    /// route in the manifest.
    pub fn new(app: &App, options: HttpOptions) -> Result<Arc<HttpTrigger>> {
        let manifest = &app.manifest;
        let base = mounted_base(&options.mount, &manifest.application.http.base);
        let mut routes = Vec::new();
        // Where each of `routes` is in the manifest.
        let mut spans = Vec::new();
        let mut components = HashMap::new();
        let mut executors = HashMap::new();
        check_routes(manifest)?;
        for trigger in &manifest.http_triggers {
            if let HttpRoute::Path { route, span } = &trigger.route {
                routes.push((trigger.component.clone(), route.clone()));
                spans.push(*span);
            }
            if let Some(executor) = executors.insert(trigger.component.clone(), &trigger.executor) {
                if executor != &trigger.executor {
                    anyhow::bail!("component `{}` is bound to HTTP routes with different executors; give each executor a component of its own", trigger.component);
                }
                continue;
            }
            let component = app
                .components
                .get(&trigger.component)
                .with_context(|| format!("component `{}` is not loaded", trigger.component))?;
            let export = Export::locate(&component.pre, &trigger.executor)?;
            components.insert(
                trigger.component.clone(),
                Arc::new(HttpComponent {
                    id: trigger.component.clone(),
                    pre: component.pre.clone(),
                    export,
                    outbound: component.outbound_http.clone(),
                    observer: options.observer.as_ref().map(|observer| observer.component(&trigger.component)),
                }),
            );
        }
        let router = Router::build(&base, routes).map_err(|err| anyhow::anyhow!("{}: {}", err.route, err.message))?;
        // As Spin does: the app runs, the replaced declarations are never reached.
        let locate = |i: usize| {
            let located = manifest.error_at(spans.get(i)?, "", "");
            let (line, column) = located.line_col()?;
            Some(format!("{}:{line}:{column}", located.file().unwrap_or("spin.toml")))
        };
        if let Some(warning) = duplicates_warning(router.duplicates(), locate) {
            tracing::warn!("{warning}");
        }
        let well_known_prefix = format!("{}{WELL_KNOWN_PREFIX}", options.mount.trim_end_matches('/'));
        if router.contains_reserved_route(&well_known_prefix) {
            tracing::warn!("Routes under {well_known_prefix} are answered by Kiln itself and will never be reached");
        }
        let trigger = Arc::new_cyclic(|me| HttpTrigger {
            name: manifest.application.name.clone(),
            version: manifest.application.version.clone(),
            well_known_prefix,
            router,
            components,
            permits: Arc::new(Semaphore::new(options.max_concurrency)),
            options,
            me: me.clone(),
        });
        // Service chaining from any component (HTTP or not) goes back through this trigger.
        let weak: std::sync::Weak<dyn kiln_outbound_http::InternalDispatch> = Arc::downgrade(&trigger) as _;
        for component in app.components.values() {
            component.outbound_http.set_dispatcher(weak.clone());
        }
        Ok(trigger)
    }

    /// `(component, route)` pairs, for the startup banner.
    pub fn routes(&self) -> impl Iterator<Item = (&str, &str)> {
        self.router.routes()
    }

    /// Instances of this app running now (including ones still streaming a response body).
    pub fn in_flight(&self) -> usize {
        self.options.max_concurrency.saturating_sub(self.permits.available_permits())
    }

    /// Handles one request from the network.
    pub async fn handle<B>(self: Arc<Self>, request: Request<B>, client: ClientAddr, local: SocketAddr) -> Response<Body>
    where
        B: http_body::Body<Data = Bytes> + Send + Unpin + 'static,
        B::Error: Into<wasmtime_wasi_http::Error>,
    {
        if !tracing::enabled!(target: "kiln::http", tracing::Level::INFO) {
            return self.route_request(request, &client, local).await.1;
        }
        let started = Instant::now();
        let method = request.method().clone();
        let path = request.uri().path().to_string();
        let (component, response) = self.route_request(request, &client, local).await;
        let (status, ms) = (response.status().as_u16(), started.elapsed().as_secs_f64() * 1000.0);
        let app = self.options.app_label.as_deref().unwrap_or(&self.name);
        let component = component.as_deref().unwrap_or("");
        if crate::STRUCTURED_LOGS.load(std::sync::atomic::Ordering::Relaxed) {
            tracing::info!(target: "kiln::http", %method, %path, status, ms, app, component, "request");
            return response;
        }
        let shown = match (&self.options.app_label, component) {
            (_, "") => String::new(),
            (Some(label), component) => format!(" [{label}/{component}]"),
            (None, component) => format!(" [{component}]"),
        };
        tracing::info!(target: "kiln::http", "{method} {path} {status} {ms:.2}ms{shown}");
        response
    }

    async fn route_request<B>(&self, request: Request<B>, client: &ClientAddr, local: SocketAddr) -> (Option<String>, Response<Body>)
    where
        B: http_body::Body<Data = Bytes> + Send + Unpin + 'static,
        B::Error: Into<wasmtime_wasi_http::Error>,
    {
        let path = request.uri().path();
        if let Some(name) = path.strip_prefix(self.well_known_prefix.as_str()) {
            return (None, self.well_known(name));
        }
        let Some(matched) = self.router.route(path) else {
            return (None, self.not_found(path));
        };
        let component = match self.components.get(matched.component_id()) {
            Some(component) => component.clone(),
            None => return (None, host_error(StatusCode::INTERNAL_SERVER_ERROR, "route has no component")),
        };
        let started = component.observer.is_some().then(Instant::now);
        let route = matched.raw_route();
        let response = match self.reject_oversized_body(&request) {
            Some(too_large) => too_large,
            None => {
                let limit = self.options.max_request_body;
                let mut request = request.map(|body| LimitedBody { inner: body, remaining: limit, limit });
                set_request_headers(&mut request, &matched, client, local);
                self.run(&component, request, FirstPoll::Inline).await
            }
        };
        if let (Some(observer), Some(started)) = (&component.observer, started) {
            observer.responded(route, response.status(), started.elapsed());
        }
        (Some(component.id.clone()), response)
    }

    /// 413 for a request whose declared length is over the app's limit, before any instance is made.
    fn reject_oversized_body<B>(&self, request: &Request<B>) -> Option<Response<Body>> {
        let limit = self.options.max_request_body?;
        let declared = request.headers().get(http::header::CONTENT_LENGTH)?.to_str().ok()?.parse::<u64>().ok()?;
        (declared > limit).then(|| host_error(StatusCode::PAYLOAD_TOO_LARGE, &format!("the request body of {declared} bytes is over this app's limit of {limit} bytes")))
    }

    /// Runs one instance of `component` for `request`, its first poll where `first_poll` says.
    pub(crate) async fn run<B>(&self, component: &Arc<HttpComponent>, request: Request<B>, first_poll: FirstPoll) -> Response<Body>
    where
        B: http_body::Body<Data = Bytes> + Send + 'static,
        B::Error: Into<wasmtime_wasi_http::Error>,
    {
        let Some(permit) = self.acquire_permit().await else {
            tracing::warn!("[{}] no instance free within {:?}: 503", component.id, self.options.queue_timeout);
            return host_error(StatusCode::SERVICE_UNAVAILABLE, "server busy: too many requests in flight, retry later");
        };
        let (sender, receiver) = oneshot::channel();
        let limits = InstanceLimits { deadline: self.options.deadline, memory_limit: self.options.memory_limit };
        // Boxed first: the instance's future is ~2 KB, which moving into a task (or polling it in
        // place inside hyper's connection future) would otherwise copy several times.
        let mut instance = Box::pin(run_instance(component.clone(), limits, request, sender, permit));
        let ended = match first_poll {
            FirstPoll::Inline => poll_once(instance.as_mut()).await,
            FirstPoll::OnItsTask => None,
        };
        let instance = match ended {
            Some(outcome) => {
                behind_ready_tasks().await;
                Instance::Ended(outcome)
            }
            None => Instance::Running(AbortOnDrop(Some(tokio::spawn(instance)))),
        };
        match receiver.await {
            Ok(Ok(response)) => {
                // The guest goes on writing the body on its task; it stops at its deadline at the latest.
                instance.detach();
                response
            }
            Ok(Err(code)) => {
                tracing::warn!("[{}] the component answered with an error: {code}", component.id);
                host_error(StatusCode::INTERNAL_SERVER_ERROR, &format!("the component failed: {code}"))
            }
            Err(_) => match instance.outcome().await {
                Some(failure @ InstanceFailure::Deadline(_)) => host_error(StatusCode::GATEWAY_TIMEOUT, &failure.to_string()),
                Some(failure) => host_error(StatusCode::INTERNAL_SERVER_ERROR, &failure.to_string()),
                None => {
                    tracing::warn!("[{}] the component returned without sending a response", component.id);
                    host_error(StatusCode::INTERNAL_SERVER_ERROR, "the component did not send a response")
                }
            },
        }
    }

    /// An instance permit: at once when one is free (no timer armed), else waiting up to the queue
    /// timeout.
    async fn acquire_permit(&self) -> Option<tokio::sync::OwnedSemaphorePermit> {
        if let Ok(permit) = self.permits.clone().try_acquire_owned() {
            return Some(permit);
        }
        tokio::time::timeout(self.options.queue_timeout, self.permits.clone().acquire_owned()).await.ok()?.ok()
    }

    pub(crate) fn self_arc(&self) -> Option<Arc<HttpTrigger>> {
        self.me.upgrade()
    }

    pub(crate) fn component(&self, id: &str) -> Option<&Arc<HttpComponent>> {
        self.components.get(id)
    }

    pub(crate) fn router(&self) -> &Router {
        &self.router
    }

    fn well_known(&self, name: &str) -> Response<Body> {
        match name {
            "health" => text_response(StatusCode::OK, "OK"),
            "info" => {
                let info = serde_json::json!({
                    "name": self.name,
                    "version": self.version,
                    "host": "kiln",
                    "host_version": env!("CARGO_PKG_VERSION"),
                });
                let mut response = text_response(StatusCode::OK, &info.to_string());
                response.headers_mut().insert(http::header::CONTENT_TYPE, HeaderValue::from_static("application/json"));
                response
            }
            _ => text_response(StatusCode::NOT_FOUND, "not found"),
        }
    }

    fn not_found(&self, path: &str) -> Response<Body> {
        let routes: Vec<&str> = self.router.routes().map(|(_, route)| route).collect();
        let hint = if routes.is_empty() { "this app has no public routes".to_string() } else { format!("routes: {}", routes.join(", ")) };
        text_response(StatusCode::NOT_FOUND, &format!("no route matches {path}; {hint}\n"))
    }
}

/// Locates the component's HTTP handler: `wasi:http/incoming-handler@0.2.x`, WASI 0.3's
/// `wasi:http/handler@0.3.x` (an `async` export, which needs the engine's component-model
/// concurrency), or, for Spin 2 components, `wasi:http/incoming-handler` of the WASI 0.2 release
/// candidates `0.2.0-rc-2023-11-10` and `0.2.0-rc-2023-10-18`.
fn handler_export(component: &ComponentPre) -> Result<HandlerPre> {
    let pre = component.instance_pre();
    let p2_error = match p2_handler(pre) {
        Ok(handler) => return Ok(HandlerPre::P2(handler)),
        Err(err) => err,
    };
    if let Some(handler) = p3_handler(pre) {
        return Ok(HandlerPre::P3(handler));
    }
    if let Ok(proxy) = kiln_wasi_rc::rc_2023_11_10::ProxyPre::new(pre.clone()) {
        return Ok(HandlerPre::Rc20231110(proxy));
    }
    if let Ok(proxy) = kiln_wasi_rc::rc_2023_10_18::ProxyPre::new(pre.clone()) {
        return Ok(HandlerPre::Rc20231018(proxy));
    }
    anyhow::bail!(
        "component `{}` is bound to an HTTP route but exports no HTTP handler: neither `wasi:http/incoming-handler@0.2.x`, `wasi:http/handler@0.3.x`, nor Spin 2's `wasi:http/incoming-handler@0.2.0-rc-2023-10-18` or `@0.2.0-rc-2023-11-10`: {p2_error:#}",
        component.id()
    )
}

/// Checks every HTTP route of `manifest`, reporting the first bad one at its place in the file. Cheap:
/// call it before compiling anything.
pub fn check_routes(manifest: &kiln_manifest::Manifest) -> Result<()> {
    let base = &manifest.application.http.base;
    for trigger in &manifest.http_triggers {
        if let HttpRoute::Path { route, span } = &trigger.route {
            Router::build(base, [(trigger.component.clone(), route.clone())])
                .map_err(|err| manifest.error_at(span, err.message.clone(), "routes look like `/exact`, `/prefix/...`, or `/users/:id`"))?;
        }
    }
    Ok(())
}

/// Replaces whatever `spin-*` headers the client sent with Spin's own, and gives the request an
/// authority (from `Host`, else the listening address) so the guest always sees one.
pub(crate) fn set_request_headers<B>(request: &mut Request<B>, matched: &RouteMatch<'_>, client: &ClientAddr, local: SocketAddr) {
    // Out of the request while Spin's headers go in, so the URI can be read meanwhile.
    let mut headers = std::mem::take(request.headers_mut());
    let host = headers.get(http::header::HOST).cloned();
    let authority: std::borrow::Cow<'_, str> = match request.uri().authority() {
        Some(authority) => authority.as_str().into(),
        None => match host.as_ref().and_then(|h| h.to_str().ok()) {
            Some(host) => host.into(),
            None => local.to_string().into(),
        },
    };
    // Room for Spin's headers at once, rather than the map growing (and rehashing) as they go in.
    headers.reserve(spin_header_count(matched) + 1);
    let spoofed: Vec<_> = headers.keys().filter(|name| name.as_str().starts_with("spin-")).cloned().collect();
    for name in spoofed {
        headers.remove(&name);
    }
    // HTTP/2 and HTTP/1.0 requests may come without `Host`.
    if host.is_none()
        && let Ok(host) = HeaderValue::from_str(&authority)
    {
        headers.insert(http::header::HOST, host);
    }
    let path_and_query = request.uri().path_and_query().map(|p| p.as_str()).unwrap_or("/");
    add_spin_headers(matched, "http", &authority, path_and_query, client.header(), |name, value| {
        headers.insert(name, value);
    });
    *request.headers_mut() = headers;
}

/// One instance, start to end. Returns why it failed, if it did; failures after the response was
/// sent are only logged.
async fn run_instance<B>(
    component: Arc<HttpComponent>,
    options: InstanceLimits,
    request: Request<B>,
    sender: ResponseSender,
    _permit: tokio::sync::OwnedSemaphorePermit,
) -> Option<InstanceFailure>
where
    B: http_body::Body<Data = Bytes> + Send + 'static,
    B::Error: Into<wasmtime_wasi_http::Error>,
{
    let Some(observer) = component.observer.clone() else {
        return run_instance_unobserved(&component, options, request, sender).await;
    };
    observer.instance_started();
    let mut ended = InstanceEnded { observer, reported: false };
    let failure = run_instance_unobserved(&component, options, request, sender).await;
    ended.report(failure.as_ref());
    failure
}

/// Tells the observer an instance ended, also when its task is aborted (the client went away before
/// the response started), so the in-flight count never stays raised.
struct InstanceEnded {
    observer: Arc<dyn ComponentObserver>,
    reported: bool,
}

impl InstanceEnded {
    fn report(&mut self, failure: Option<&InstanceFailure>) {
        self.reported = true;
        self.observer.instance_ended(failure);
    }
}

impl Drop for InstanceEnded {
    fn drop(&mut self) {
        if !self.reported {
            self.observer.instance_ended(None);
        }
    }
}

async fn run_instance_unobserved<B>(
    component: &Arc<HttpComponent>,
    limits: InstanceLimits,
    request: Request<B>,
    sender: ResponseSender,
) -> Option<InstanceFailure>
where
    B: http_body::Body<Data = Bytes> + Send + 'static,
    B::Error: Into<wasmtime_wasi_http::Error>,
{
    if let Export::Wagi(wagi) = &component.export {
        return run_wagi(component, wagi, limits, request, sender).await;
    }
    // Only an observer (platform mode's metrics) reads the clock here.
    let started = component.observer.is_some().then(Instant::now);
    let this = component.clone();
    let outcome = component
        .pre
        .run(limits, component.outbound.hooks(), move |store| {
            Box::pin(async move {
                let Export::Http(handler) = &this.export else { unreachable!("WAGI components run above") };
                let instantiated = || {
                    if let (Some(observer), Some(started)) = (&this.observer, started) {
                        observer.instantiated(started.elapsed());
                    }
                };
                match handler {
                    HandlerPre::P2(handler) => {
                        let handle = handler.instantiate_async(store).await?;
                        instantiated();
                        let (request, outparam) = p2_request(store, request, sender)?;
                        handle.call_async(&mut *store, (request, outparam)).await
                    }
                    HandlerPre::P3(handler) => {
                        let handle = handler.instantiate_async(store).await?;
                        instantiated();
                        handle_p3(store, handle, request, sender).await
                    }
                    // The release candidates' request and response are wasmtime-wasi-http's 0.2
                    // table entries: the response goes the same way as a 0.2 guest's.
                    HandlerPre::Rc20231018(proxy) => {
                        let proxy = proxy.instantiate_async(&mut *store).await?;
                        instantiated();
                        let (request, outparam) = p2_request(store, request, sender)?;
                        proxy.wasi_http_incoming_handler().call_handle(&mut *store, request, outparam).await
                    }
                    HandlerPre::Rc20231110(proxy) => {
                        let proxy = proxy.instantiate_async(&mut *store).await?;
                        instantiated();
                        let (request, outparam) = p2_request(store, request, sender)?;
                        proxy.wasi_http_incoming_handler().call_handle(&mut *store, request, outparam).await
                    }
                }
            })
        })
        .await;
    let failure = outcome.err()?;
    tracing::warn!("[{}] {failure}", component.id);
    Some(failure)
}

/// The incoming request and the response outparam of a WASI 0.2 (or release-candidate) handler,
/// in the store's table; the response goes to `sender`, its body ending cleanly only if the guest
/// finished it.
fn p2_request<B>(
    store: &mut Store<KilnState>,
    request: Request<B>,
    sender: ResponseSender,
) -> wasmtime::Result<(Resource<HostIncomingRequest>, Resource<HostResponseOutparam>)>
where
    B: http_body::Body<Data = Bytes> + Send + 'static,
    B::Error: Into<wasmtime_wasi_http::Error>,
{
    let request = store.data_mut().http().new_incoming_request(Scheme::Http, request)?;
    let finished = store.data().response_finished();
    let outparam = store.data_mut().http().new_response_outparam_from_callback(move |response| {
        let response = response.map(|response| response.map(|body| UnlessFinished::wrap(body, finished)));
        _ = sender.send(response.map_err(|code| format!("{code:?}")));
    })?;
    Ok((request, outparam))
}

/// A WAGI program: the whole body read first (it is the program's stdin), one run to the end, the
/// response composed from what it printed.
async fn run_wagi<B>(component: &Arc<HttpComponent>, wagi: &crate::wagi::WagiPre, limits: InstanceLimits, request: Request<B>, sender: ResponseSender) -> Option<InstanceFailure>
where
    B: http_body::Body<Data = Bytes> + Send + 'static,
    B::Error: Into<wasmtime_wasi_http::Error>,
{
    let started = Instant::now();
    let (parts, body) = request.into_parts();
    let body = match crate::wagi::collect(body).await {
        Ok(body) => body,
        Err(err) => {
            _ = sender.send(Err(format!("reading the request body: {err}")));
            return None;
        }
    };
    let stdout = crate::wagi::output_pipe();
    let io = wagi.command_io(&parts, body, stdout.clone());
    let this = component.clone();
    let outcome = component
        .pre
        .run_command(limits, component.outbound.hooks(), io, move |store| {
            Box::pin(async move {
                let Export::Wagi(wagi) = &this.export else { unreachable!("only WAGI components get here") };
                let ran = wagi.run(store).await;
                if let Some(observer) = &this.observer {
                    observer.instantiated(started.elapsed());
                }
                ran
            })
        })
        .await;
    match outcome {
        Ok(()) => {
            _ = sender.send(Ok(crate::wagi::compose_response(&component.id, &stdout.contents())));
            None
        }
        Err(failure) => {
            tracing::warn!("[{}] {failure}", component.id);
            Some(failure)
        }
    }
}

/// A WASI 0.3 handler returns its response and may go on writing the body afterwards, from the
/// same store. What it writes within a few rounds of the store's event loop goes out with the head
/// (`gather.rs`); a body still being written keeps the event loop running until hyper has sent (or
/// dropped) it.
async fn handle_p3<B>(store: &mut Store<KilnState>, handle: TypedFunc<P3Params, P3Results>, request: Request<B>, sender: ResponseSender) -> wasmtime::Result<()>
where
    B: http_body::Body<Data = Bytes> + Send + 'static,
    B::Error: Into<wasmtime_wasi_http::Error>,
{
    let (parts, body) = with_absolute_uri(request).into_parts();
    let headers = FieldMap::new_immutable(store.data_mut().http().hooks, parts.headers);
    let uri = parts.uri.into_parts();
    let (request, request_io) = p3::Request::new(parts.method, uri.scheme, uri.authority, uri.path_and_query, headers, None, body);
    store
        .run_concurrent(async move |accessor| -> wasmtime::Result<()> {
            let request = accessor.with(|mut access| access.data_mut().http().table.push(request))?;
            let (result,) = handle.call_concurrent(accessor, (request,)).await?;
            let response = match result {
                Ok(response) => accessor.with(|mut access| access.data_mut().http().table.delete(response))?,
                Err(code) => {
                    _ = sender.send(Err(format!("{code:?}")));
                    return Ok(());
                }
            };
            let (head, body) = accessor.with(|mut access| response.into_http(&mut access, request_io))?.into_parts();
            let body = match crate::gather::gather(body).await {
                // Sent whole: the instance is done with it.
                Gathered::Whole(body) => {
                    _ = sender.send(Ok(Response::from_parts(head, body)));
                    return Ok(());
                }
                Gathered::Streaming(body) => body,
                Gathered::Failed(code) => {
                    _ = sender.send(Err(format!("its response body failed: {code:?}")));
                    return Ok(());
                }
            };
            let (body_dropped, body_done) = oneshot::channel::<()>();
            let response = Response::from_parts(head, NotifyOnDrop { body, _dropped: body_dropped }.boxed_unsync());
            if sender.send(Ok(response)).is_ok() {
                _ = body_done.await;
            }
            Ok(())
        })
        .await?
}

/// The guest sees the request's scheme and authority (from `Host`, which the router made sure of),
/// as a WASI 0.2 guest does.
fn with_absolute_uri<B>(mut request: Request<B>) -> Request<B> {
    if request.uri().scheme().is_some() {
        return request;
    }
    let Some(authority) = request.headers().get(http::header::HOST).and_then(|host| host.to_str().ok()).and_then(|host| host.parse().ok()) else {
        return request;
    };
    let mut parts = request.uri().clone().into_parts();
    parts.scheme = Some(http::uri::Scheme::HTTP);
    parts.authority = Some(authority);
    if parts.path_and_query.is_none() {
        parts.path_and_query = Some(http::uri::PathAndQuery::from_static("/"));
    }
    if let Ok(uri) = http::Uri::from_parts(parts) {
        *request.uri_mut() = uri;
    }
    request
}

/// A response body that tells the store it came from when hyper is done with it (sent, or dropped
/// because the client went away), so the store stops only then.
struct NotifyOnDrop {
    body: Body,
    _dropped: oneshot::Sender<()>,
}

impl http_body::Body for NotifyOnDrop {
    type Data = Bytes;
    type Error = wasmtime_wasi_http::Error;

    fn poll_frame(mut self: Pin<&mut Self>, cx: &mut TaskContext<'_>) -> Poll<Option<Result<http_body::Frame<Bytes>, Self::Error>>> {
        Pin::new(&mut self.body).poll_frame(cx)
    }

    fn is_end_stream(&self) -> bool {
        self.body.is_end_stream()
    }

    fn size_hint(&self) -> http_body::SizeHint {
        self.body.size_hint()
    }
}

/// A path prefix in front of the manifest's `base`: `/shop` + `/` is `/shop`, `/shop` + `/v1` is
/// `/shop/v1`.
fn mounted_base(mount: &str, base: &str) -> String {
    let mount = mount.trim_end_matches('/');
    if mount.is_empty() {
        return base.to_string();
    }
    match base.trim_matches('/') {
        "" => mount.to_string(),
        rest => format!("{mount}/{rest}"),
    }
}

/// A request body that ends in `HttpRequestBodySize` once more than `limit` bytes arrived (a body
/// without a declared length can only be stopped while it streams).
struct LimitedBody<B> {
    inner: B,
    remaining: Option<u64>,
    limit: Option<u64>,
}

impl<B> http_body::Body for LimitedBody<B>
where
    B: http_body::Body<Data = Bytes> + Unpin,
    B::Error: Into<wasmtime_wasi_http::Error>,
{
    type Data = Bytes;
    type Error = wasmtime_wasi_http::Error;

    fn poll_frame(mut self: Pin<&mut Self>, cx: &mut TaskContext<'_>) -> Poll<Option<Result<http_body::Frame<Bytes>, Self::Error>>> {
        let frame = match Pin::new(&mut self.inner).poll_frame(cx) {
            Poll::Ready(Some(Ok(frame))) => frame,
            Poll::Ready(Some(Err(err))) => return Poll::Ready(Some(Err(err.into()))),
            Poll::Ready(None) => return Poll::Ready(None),
            Poll::Pending => return Poll::Pending,
        };
        if let (Some(remaining), Some(data)) = (self.remaining, frame.data_ref()) {
            let Some(left) = remaining.checked_sub(data.len() as u64) else {
                return Poll::Ready(Some(Err(wasmtime_wasi_http::Error::HttpRequestBodySize(self.limit))));
            };
            self.remaining = Some(left);
        }
        Poll::Ready(Some(Ok(frame)))
    }

    fn is_end_stream(&self) -> bool {
        self.inner.is_end_stream()
    }

    fn size_hint(&self) -> http_body::SizeHint {
        self.inner.size_hint()
    }
}

/// A guest's response body that ends cleanly only if the guest finished it: one that stops because
/// the instance ended first (a trap, the deadline) ends in an error, so hyper cuts the connection
/// (or resets the stream) and the client sees an incomplete message, never a short body it would
/// take for whole. See kiln-engine's `response_body`.
struct UnlessFinished {
    inner: Body,
    finished: Arc<std::sync::atomic::AtomicBool>,
}

impl UnlessFinished {
    fn wrap(inner: Body, finished: Arc<std::sync::atomic::AtomicBool>) -> Body {
        UnlessFinished { inner, finished }.boxed_unsync()
    }
}

impl http_body::Body for UnlessFinished {
    type Data = Bytes;
    type Error = wasmtime_wasi_http::Error;

    fn poll_frame(mut self: Pin<&mut Self>, cx: &mut TaskContext<'_>) -> Poll<Option<Result<http_body::Frame<Bytes>, Self::Error>>> {
        match Pin::new(&mut self.inner).poll_frame(cx) {
            Poll::Ready(None) if !self.finished.load(std::sync::atomic::Ordering::Acquire) => {
                Poll::Ready(Some(Err(wasmtime_wasi_http::Error::InternalError(Some("the component ended before finishing its response body".into())))))
            }
            other => other,
        }
    }

    fn is_end_stream(&self) -> bool {
        self.inner.is_end_stream() && self.finished.load(std::sync::atomic::Ordering::Acquire)
    }

    fn size_hint(&self) -> http_body::SizeHint {
        self.inner.size_hint()
    }
}

/// A small host-made response: plain text, no headers beyond what hyper adds.
pub fn text_response(status: StatusCode, text: &str) -> Response<Body> {
    let body = Full::new(Bytes::from(text.to_string())).map_err(|never| match never {}).boxed_unsync();
    let mut response = Response::new(body);
    *response.status_mut() = status;
    response
}

fn host_error(status: StatusCode, reason: &str) -> Response<Body> {
    text_response(status, &format!("{} {}: {reason}\n", status.as_u16(), status.canonical_reason().unwrap_or("")))
}

/// Goes to the back of the worker's run queue once: the connections that are ready now run their
/// instances before this response is written, so responses leave in a burst and a client woken by
/// the first finds the rest already there: measured over loopback, writing each response as soon as
/// it was ready woke a sleeping `wrk` for each one, about 4 µs of the server's CPU a request, and
/// a task spawned per instance (which ordered the writes the same way) costs more than this.
/// Unlike tokio's `yield_now`, it does not make the worker poll its sockets first (a syscall).
async fn behind_ready_tasks() {
    let mut queued = false;
    std::future::poll_fn(|cx| {
        if std::mem::replace(&mut queued, true) {
            return Poll::Ready(());
        }
        cx.waker().wake_by_ref();
        Poll::Pending
    })
    .await
}

/// Where an instance's first poll runs.
#[derive(Clone, Copy)]
pub(crate) enum FirstPoll {
    /// On the task that asks (a connection's, for a request from the network): most instances end
    /// in their first poll (they wait on no I/O), with no task spawned, scheduled and woken for
    /// them; their response then waits behind the connections that are ready
    /// ([`behind_ready_tasks`]). One still waiting goes on on a task of its own.
    Inline,
    /// On a task of its own from the start: for requests from a guest (service chaining), which a
    /// WASI 0.3 caller polls inside its store's event loop, where wasmtime refuses a second store's
    /// event loop nested in it.
    OnItsTask,
}

/// An instance after its first poll: ended there, or running on its task.
enum Instance {
    Ended(Option<InstanceFailure>),
    Running(AbortOnDrop),
}

impl Instance {
    /// Leaves a running instance to finish the response body on its own.
    fn detach(self) {
        if let Instance::Running(task) = self {
            task.detach();
        }
    }

    /// Why the instance failed, if it did, once it has ended.
    async fn outcome(self) -> Option<InstanceFailure> {
        match self {
            Instance::Ended(outcome) => outcome,
            Instance::Running(task) => task.join().await,
        }
    }
}

/// Aborts the guest's task if the request is dropped (client gone) before a response arrived.
struct AbortOnDrop(Option<tokio::task::JoinHandle<Option<InstanceFailure>>>);

impl AbortOnDrop {
    fn detach(mut self) {
        self.0 = None;
    }

    async fn join(mut self) -> Option<InstanceFailure> {
        let handle = self.0.take()?;
        match handle.await {
            Ok(outcome) => outcome,
            Err(err) => Some(InstanceFailure::Trap(format!("the instance task failed: {err}"))),
        }
    }
}

impl Drop for AbortOnDrop {
    fn drop(&mut self) {
        if let Some(handle) = self.0.take() {
            handle.abort();
        }
    }
}

