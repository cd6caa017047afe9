//! Whether a WASI 0.2 guest finished its response body, so a body it never finished is never sent
//! as complete.
//!
//! wasmtime-wasi-http ends the response body when the guest calls `outgoing-body.finish` and
//! aborts it when the guest drops the body. But when the instance itself ends first (a trap while
//! it holds the body, its deadline, its memory limit), the body is dropped with the store, and
//! wasmtime-wasi-http's body then ends as if it had been finished: a client would take a truncated
//! response for a whole one. So Kiln notes which body is the response's
//! (`outgoing-response.body`) and whether the guest finished it; the HTTP trigger turns the end of
//! an unfinished body into an error (the connection is cut, the client sees an incomplete message).

use crate::KilnState;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use wasmtime::StoreContextMut;
use wasmtime::component::{Linker, Resource};
use wasmtime_wasi_http::WasiHttpView;
use wasmtime_wasi_http::p2::bindings::http::types::{ErrorCode, HostOutgoingBody as _, HostOutgoingResponse as _, Trailers};
use wasmtime_wasi_http::p2::body::HostOutgoingBody;
use wasmtime_wasi_http::p2::types::HostOutgoingResponse;

/// The WASI 0.2 interface wasmtime-wasi-http 48 defines (guests of any 0.2.x link to it).
const P2_TYPES: &str = "wasi:http/types@0.2.12";

/// The response body of one instance.
#[derive(Default)]
pub(crate) struct ResponseBody {
    /// The table index of the body `outgoing-response.body` gave the guest.
    rep: Option<u32>,
    /// Set when the guest finishes that body; read by the body sent to the client.
    finished: Arc<AtomicBool>,
}

impl ResponseBody {
    /// Whether the guest finished its response body (shared: read once the body has ended).
    pub(crate) fn finished(&self) -> Arc<AtomicBool> {
        self.finished.clone()
    }

    /// `outgoing-response.body` gave the guest the body at table index `body`.
    pub(crate) fn created(&mut self, body: u32) {
        self.rep = Some(body);
    }

    /// The guest is finishing the body at table index `body`: if it is the response's, the
    /// response is whole. Called before the finish (the client may see the end as soon as
    /// wasmtime sends it); a finish that fails (a body shorter than its content-length) is an
    /// abort, an error either way.
    pub(crate) fn finishing(&mut self, body: u32) {
        if self.rep == Some(body) {
            self.finished.store(true, Ordering::Release);
        }
    }
}

/// Replaces `[method]outgoing-response.body` and `[static]outgoing-body.finish` (already linked by
/// wasmtime-wasi-http) with wrappers that note the response body and its finish, then call
/// wasmtime's implementation unchanged.
pub(crate) fn shadow_p2_response_body(linker: &mut Linker<KilnState>) -> wasmtime::Result<()> {
    type BodyArgs = (Resource<HostOutgoingResponse>,);
    type BodyReturns = (Result<Resource<HostOutgoingBody>, ()>,);
    type FinishArgs = (Resource<HostOutgoingBody>, Option<Resource<Trailers>>);
    type FinishReturns = (Result<(), ErrorCode>,);
    linker.allow_shadowing(true);
    let mut types = linker.instance(P2_TYPES)?;
    types.func_wrap("[method]outgoing-response.body", |mut store: StoreContextMut<'_, KilnState>, (response,): BodyArgs| -> wasmtime::Result<BodyReturns> {
        let body = store.data_mut().http().body(response)?;
        if let Ok(body) = &body {
            store.data_mut().response_body.created(body.rep());
        }
        Ok((body,))
    })?;
    types.func_wrap(
        "[static]outgoing-body.finish",
        |mut store: StoreContextMut<'_, KilnState>, (body, trailers): FinishArgs| -> wasmtime::Result<FinishReturns> {
            let state = store.data_mut();
            state.response_body.finishing(body.rep());
            match state.http().finish(body, trailers) {
                Ok(()) => Ok((Ok(()),)),
                // An error code goes to the guest; anything else is a trap, as in wasmtime's binding.
                Err(err) => Ok((Err(err.downcast()?),)),
            }
        },
    )?;
    linker.allow_shadowing(false);
    Ok(())
}
