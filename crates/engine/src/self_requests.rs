//! Outgoing requests to a relative URL (`/hello`: no authority) are requests to the app itself, as
//! in Spin: they are given the authority `self`, so the outbound policy treats them exactly as
//! `http://self/hello` — granted by `allowed_outbound_hosts = ["http://self"]`, routed by the app's
//! own router in process, with the `spin-*` headers and the caller's deadline; refused otherwise
//! with `HttpRequestDenied`.
//!
//! wasmtime-wasi-http refuses to build a URI without an authority (`HttpRequestUriInvalid`) before
//! any hook sees the request, so the outgoing functions of both WASI 0.2
//! (`wasi:http/outgoing-handler.handle`) and 0.3 (`wasi:http/client.send`) are wrapped here: the
//! request resource is completed in the table, then handed to wasmtime's implementation unchanged.

use wasmtime::StoreContextMut;
use wasmtime::component::{Accessor, HasData, Linker, Resource};
use wasmtime_wasi_http::{WasiHttp, WasiHttpCtxView, WasiHttpView};

/// The authority a relative request gets (see `kiln-outbound-http`: `http://self`).
pub(crate) const SELF_AUTHORITY: &str = "self";

/// The WASI 0.2 interface wasmtime-wasi-http 48 defines (guests of any 0.2.x link to it).
const P2_OUTGOING_HANDLER: &str = "wasi:http/outgoing-handler@0.2.12";

/// Replaces WASI 0.2 `wasi:http/outgoing-handler.handle` (already linked by wasmtime-wasi-http).
pub(crate) fn shadow_p2_handle<T: WasiHttpView + 'static>(linker: &mut Linker<T>) -> wasmtime::Result<()> {
    use wasmtime_wasi_http::p2::bindings::http::{outgoing_handler::Host as _, types::ErrorCode};
    use wasmtime_wasi_http::p2::types::{HostFutureIncomingResponse, HostOutgoingRequest};
    type Args = (Resource<HostOutgoingRequest>, Option<Resource<wasmtime_wasi_http::RequestOptions>>);
    type Returns = (Result<Resource<HostFutureIncomingResponse>, ErrorCode>,);
    linker.allow_shadowing(true);
    linker.instance(P2_OUTGOING_HANDLER)?.func_wrap(
        "handle",
        |mut store: StoreContextMut<'_, T>, (request, options): Args| -> wasmtime::Result<Returns> {
            let mut view = store.data_mut().http();
            if let Ok(outgoing) = view.table.get_mut(&request)
                && outgoing.authority.is_none()
            {
                outgoing.authority = Some(SELF_AUTHORITY.to_string());
            }
            match view.handle(request, options) {
                Ok(response) => Ok((Ok(response),)),
                // An error code goes to the guest; anything else is a trap, as in wasmtime's binding.
                Err(err) => Ok((Err(err.downcast()?),)),
            }
        },
    )?;
    linker.allow_shadowing(false);
    Ok(())
}

/// WASI 0.3 `wasi:http/client.send`, and its `wasi:http/types`.
pub(crate) fn add_p3_to_linker<T: WasiHttpView + 'static>(linker: &mut Linker<T>) -> wasmtime::Result<()> {
    use wasmtime_wasi_http::p3::bindings::http;
    http::client::add_to_linker::<_, SelfRequestsP3>(linker, T::http)?;
    http::types::add_to_linker::<_, WasiHttp>(linker, T::http)
}

struct SelfRequestsP3;

impl HasData for SelfRequestsP3 {
    type Data<'a> = WasiHttpCtxView<'a>;
}

impl<T> wasmtime_wasi_http::p3::bindings::http::client::HostWithStore<T> for SelfRequestsP3 {
    async fn send(
        store: &Accessor<T, Self>,
        request: Resource<wasmtime_wasi_http::p3::Request>,
    ) -> Result<Resource<wasmtime_wasi_http::p3::Response>, wasmtime_wasi::TrappableError<wasmtime_wasi_http::p3::bindings::http::types::ErrorCode>> {
        store.with(|mut access| {
            if let Ok(request) = access.get().table.get_mut(&request)
                && request.authority.is_none()
            {
                request.authority = Some(http::uri::Authority::from_static(SELF_AUTHORITY));
                request.scheme = Some(http::uri::Scheme::HTTP);
            }
        });
        let wasmtime_http = store.with_getter::<WasiHttp>(store.getter());
        <WasiHttp as wasmtime_wasi_http::p3::bindings::http::client::HostWithStore<T>>::send(&wasmtime_http, request).await
    }
}
