//! WASI 0.2 release candidates forwarded to the final WASI 0.2 host.
//!
//! Spin 2.x built its components against two WASI 0.2 release candidates: `0.2.0-rc-2023-10-18`
//! (spin-sdk 2.1 and 2.2) and `0.2.0-rc-2023-11-10`. Their types differ from the final 0.2
//! (functions were renamed, split or removed, records became resources), so they cannot be renamed
//! to the final version at load; instead every release-candidate function is served here by
//! calling wasmtime-wasi's (and wasmtime-wasi-http's) final WASI 0.2 implementation, converting
//! the arguments and results. The resources are wasmtime's own table entries (`with:` in each
//! `bindgen!`), so a stream, a request or a pollable is the same object under either version, and
//! the request and response of an rc handler are made and sent exactly as for a 0.2 one.
//!
//! A function whose release-candidate meaning the final host cannot give returns its interface's
//! error (`unsupported` for the file system, `not-supported` for sockets), never a trap, unless
//! its signature has no error to return (then the trap says why).

use std::marker::PhantomData;
use wasmtime::component::{HasData, Linker, ResourceTable};
use wasmtime_wasi::{TrappableError, WasiView};
use wasmtime_wasi_http::{WasiHttpCtxView, WasiHttpView};

mod convert;
pub mod rc_2023_10_18;
mod rc_2023_10_18_http;
pub mod rc_2023_11_10;
mod rc_2023_11_10_http;
mod shared;

/// What the embedder learns from a release-candidate guest, as it does from a WASI 0.2 guest whose
/// calls it shadows (Kiln: `kiln-engine`'s `response_body.rs` and `self_requests.rs`).
pub trait RcHooks: Send {
    /// The guest was given the body (table index `body`) of an `outgoing-response`.
    fn response_body_created(&mut self, body: u32) {
        let _ = body;
    }

    /// The guest is finishing the outgoing body `body` (called before wasmtime finishes it).
    fn outgoing_body_finishing(&mut self, body: u32) {
        let _ = body;
    }

    /// The authority an outgoing request without one is sent to (Kiln: `self`, the app itself).
    /// `None`: the scheme's default port on no host (`:80`, `:443`), as Spin 2 did, which the
    /// final host then refuses as an invalid URI.
    fn relative_request_authority(&self) -> Option<&'static str> {
        None
    }
}

/// The store data every release-candidate host function runs on.
pub trait RcView: WasiView + WasiHttpView + RcHooks + 'static {}

impl<T: WasiView + WasiHttpView + RcHooks + 'static> RcView for T {}

/// Adds every interface of both release candidates (`wasi:io`, `wasi:clocks`, `wasi:random`,
/// `wasi:cli`, `wasi:filesystem`, `wasi:sockets`, `wasi:http` types and outgoing handler) to
/// `linker`, each function calling the final WASI 0.2 host.
pub fn add_to_linker<T: RcView>(linker: &mut Linker<T>) -> wasmtime::Result<()> {
    rc_2023_10_18::add_to_linker(linker)?;
    rc_2023_11_10::add_to_linker(linker)
}

/// The view the host traits of both candidates are implemented on: the whole store data, from
/// which each function takes the final host's view it forwards to.
pub struct RcCtx<'a, T>(&'a mut T);

impl<T: RcView> RcCtx<'_, T> {
    fn table(&mut self) -> &mut ResourceTable {
        self.0.ctx().table
    }

    fn http(&mut self) -> WasiHttpCtxView<'_> {
        self.0.http()
    }
}

/// `HasData` for [`RcCtx`].
struct HasRc<T>(PhantomData<T>);

impl<T: 'static> HasData for HasRc<T> {
    type Data<'a> = RcCtx<'a, T>;
}

fn rc<T>(data: &mut T) -> RcCtx<'_, T> {
    RcCtx(data)
}

/// A final-host result whose error is an interface's error code, as the candidate's types: the
/// error code goes to the guest, anything else (a bad resource, a host failure) traps, as in
/// wasmtime's own bindings.
fn forward<T, U, E, F>(result: Result<T, TrappableError<E>>) -> wasmtime::Result<Result<U, F>>
where
    U: From<T>,
    E: std::error::Error + Send + Sync + 'static,
    F: From<E>,
{
    match result {
        Ok(value) => Ok(Ok(value.into())),
        Err(err) => Ok(Err(err.downcast()?.into())),
    }
}
