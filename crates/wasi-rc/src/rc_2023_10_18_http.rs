//! `wasi:http@0.2.0-rc-2023-10-18` (`types` and `outgoing-handler`) over wasmtime-wasi-http's
//! final WASI 0.2 host, on the same table entries.
//!
//! This candidate's `fields` functions and the `outgoing-request`/`outgoing-response`
//! constructors have no error to return: a header the final host refuses (bad syntax, forbidden,
//! immutable) or a bad method, path, scheme, authority or status code traps with the reason.
//! `outgoing-body.finish` has no error either: a body the final host cannot finish (shorter or
//! longer than its `content-length`) ends in an error for its reader (the client, or the server an
//! outgoing request goes to). Its one `error` variant carries the final error code as text.

use crate::rc_2023_10_18::{bindings_rc_2023_10_18, http};
use crate::{HasRc, RcCtx, RcHooks, RcView, rc};
use http::types::{
    Error as HttpError, Fields, FutureIncomingResponse, FutureTrailers, IncomingResponse, Method, OutgoingBody, OutgoingRequest,
    OutgoingResponse, RequestOptions, ResponseOutparam, Scheme, StatusCode,
};
use wasmtime::component::{Linker, Resource};
use wasmtime_wasi::p2::DynPollable;
use wasmtime_wasi_http::p2::bindings::http as p2;
use wasmtime_wasi_http::p2::HeaderError;
use wasmtime_wasi_http::p2::bindings::http::types::{
    HostFields as P2Fields, HostOutgoingRequest as P2OutgoingRequest, HostOutgoingResponse as P2OutgoingResponse,
    HostRequestOptions as P2RequestOptions,
};

pub(crate) fn add_to_linker<T: RcView>(linker: &mut Linker<T>) -> wasmtime::Result<()> {
    http::types::add_to_linker::<T, HasRc<T>>(linker, rc)?;
    http::outgoing_handler::add_to_linker::<T, HasRc<T>>(linker, rc)
}

/// A header change the final host refused, as a trap (this candidate has no error to return).
pub(crate) fn header_trap(err: HeaderError) -> wasmtime::Error {
    match err.downcast() {
        Ok(code) => wasmtime::format_err!("the header change is refused: {code:?}"),
        Err(trap) => trap,
    }
}

impl<T: RcView> http::types::Host for RcCtx<'_, T> {}

impl<T: RcView> http::types::HostFields for RcCtx<'_, T> {
    fn new(&mut self, entries: Vec<(String, Vec<u8>)>) -> wasmtime::Result<Resource<Fields>> {
        P2Fields::from_list(&mut self.http(), entries).map_err(header_trap)
    }

    fn get(&mut self, fields: Resource<Fields>, name: String) -> wasmtime::Result<Vec<Vec<u8>>> {
        P2Fields::get(&mut self.http(), fields, name)
    }

    fn set(&mut self, fields: Resource<Fields>, name: String, values: Vec<Vec<u8>>) -> wasmtime::Result<()> {
        P2Fields::set(&mut self.http(), fields, name, values).map_err(header_trap)
    }

    fn delete(&mut self, fields: Resource<Fields>, name: String) -> wasmtime::Result<()> {
        P2Fields::delete(&mut self.http(), fields, name).map_err(header_trap)
    }

    fn append(&mut self, fields: Resource<Fields>, name: String, value: Vec<u8>) -> wasmtime::Result<()> {
        P2Fields::append(&mut self.http(), fields, name, value).map_err(header_trap)
    }

    fn entries(&mut self, fields: Resource<Fields>) -> wasmtime::Result<Vec<(String, Vec<u8>)>> {
        P2Fields::entries(&mut self.http(), fields)
    }

    fn clone(&mut self, fields: Resource<Fields>) -> wasmtime::Result<Resource<Fields>> {
        p2::types::HostFields::clone(&mut self.http(), fields)
    }

    fn drop(&mut self, fields: Resource<Fields>) -> wasmtime::Result<()> {
        p2::types::HostFields::drop(&mut self.http(), fields)
    }
}

crate::shared::wasi_http_incoming!(bindings_rc_2023_10_18);

/// An outgoing request from its parts, as the final host builds it (`new`, then each `set-*`).
/// `Err` names the part the final host refused; the request is dropped then.
pub(crate) fn new_outgoing_request<T: RcView>(
    ctx: &mut RcCtx<'_, T>,
    headers: Resource<Fields>,
    method: p2::types::Method,
    path_with_query: Option<String>,
    scheme: Option<p2::types::Scheme>,
    authority: Option<String>,
) -> wasmtime::Result<Result<Resource<OutgoingRequest>, &'static str>> {
    let mut http = ctx.http();
    let request = P2OutgoingRequest::new(&mut http, headers)?;
    let this = || Resource::new_borrow(request.rep());
    let refused = if P2OutgoingRequest::set_method(&mut http, this(), method)?.is_err() {
        Some("method")
    } else if P2OutgoingRequest::set_path_with_query(&mut http, this(), path_with_query)?.is_err() {
        Some("path with query")
    } else if P2OutgoingRequest::set_scheme(&mut http, this(), scheme)?.is_err() {
        Some("scheme")
    } else if authority.is_some() && P2OutgoingRequest::set_authority(&mut http, this(), authority)?.is_err() {
        Some("authority")
    } else {
        None
    };
    match refused {
        Some(part) => {
            p2::types::HostOutgoingRequest::drop(&mut http, request)?;
            Ok(Err(part))
        }
        None => Ok(Ok(request)),
    }
}

impl<T: RcView> http::types::HostOutgoingRequest for RcCtx<'_, T> {
    fn new(
        &mut self,
        method: Method,
        path_with_query: Option<String>,
        scheme: Option<Scheme>,
        authority: Option<String>,
        headers: Resource<Fields>,
    ) -> wasmtime::Result<Resource<OutgoingRequest>> {
        // The candidate borrows the headers; the final host takes them.
        let headers = p2::types::HostFields::clone(&mut self.http(), headers)?;
        match new_outgoing_request(self, headers, method.into(), path_with_query, scheme.map(Into::into), authority)? {
            Ok(request) => Ok(request),
            Err(part) => Err(wasmtime::format_err!("outgoing-request: the {part} is invalid")),
        }
    }

    fn write(&mut self, request: Resource<OutgoingRequest>) -> wasmtime::Result<Result<Resource<OutgoingBody>, ()>> {
        p2::types::HostOutgoingRequest::body(&mut self.http(), request)
    }

    fn drop(&mut self, request: Resource<OutgoingRequest>) -> wasmtime::Result<()> {
        p2::types::HostOutgoingRequest::drop(&mut self.http(), request)
    }
}

/// `outgoing-response.body`/`.write`, telling the embedder which body is the response's.
pub(crate) fn response_body<T: RcView>(ctx: &mut RcCtx<'_, T>, response: Resource<OutgoingResponse>) -> wasmtime::Result<Result<Resource<OutgoingBody>, ()>> {
    let body = p2::types::HostOutgoingResponse::body(&mut ctx.http(), response)?;
    if let Ok(body) = &body {
        RcHooks::response_body_created(ctx.0, body.rep());
    }
    Ok(body)
}

/// `outgoing-body.finish`, telling the embedder first; the final host's error code, if any.
pub(crate) fn finish_body<T: RcView>(
    ctx: &mut RcCtx<'_, T>,
    body: Resource<OutgoingBody>,
    trailers: Option<Resource<Fields>>,
) -> wasmtime::Result<Result<(), p2::types::ErrorCode>> {
    RcHooks::outgoing_body_finishing(ctx.0, body.rep());
    match p2::types::HostOutgoingBody::finish(&mut ctx.http(), body, trailers) {
        Ok(()) => Ok(Ok(())),
        Err(err) => Ok(Err(err.downcast()?)),
    }
}

impl<T: RcView> http::types::HostOutgoingResponse for RcCtx<'_, T> {
    fn new(&mut self, status: StatusCode, headers: Resource<Fields>) -> wasmtime::Result<Resource<OutgoingResponse>> {
        let mut http = self.http();
        let headers = p2::types::HostFields::clone(&mut http, headers)?;
        let response = p2::types::HostOutgoingResponse::new(&mut http, headers)?;
        if P2OutgoingResponse::set_status_code(&mut http, Resource::new_borrow(response.rep()), status)?.is_err() {
            p2::types::HostOutgoingResponse::drop(&mut http, response)?;
            wasmtime::bail!("outgoing-response: {status} is not a valid status code");
        }
        Ok(response)
    }

    fn write(&mut self, response: Resource<OutgoingResponse>) -> wasmtime::Result<Result<Resource<OutgoingBody>, ()>> {
        response_body(self, response)
    }

    fn drop(&mut self, response: Resource<OutgoingResponse>) -> wasmtime::Result<()> {
        p2::types::HostOutgoingResponse::drop(&mut self.http(), response)
    }
}

impl<T: RcView> http::types::HostOutgoingBody for RcCtx<'_, T> {
    fn write(&mut self, body: Resource<OutgoingBody>) -> wasmtime::Result<Result<Resource<wasmtime_wasi::p2::DynOutputStream>, ()>> {
        p2::types::HostOutgoingBody::write(&mut self.http(), body)
    }

    fn finish(&mut self, body: Resource<OutgoingBody>, trailers: Option<Resource<Fields>>) -> wasmtime::Result<()> {
        if let Err(code) = finish_body(self, body, trailers)? {
            tracing::debug!("a WASI 0.2.0-rc-2023-10-18 guest's body could not be finished: {code}");
        }
        Ok(())
    }

    fn drop(&mut self, body: Resource<OutgoingBody>) -> wasmtime::Result<()> {
        p2::types::HostOutgoingBody::drop(&mut self.http(), body)
    }
}

impl<T: RcView> http::types::HostResponseOutparam for RcCtx<'_, T> {
    fn set(&mut self, param: Resource<ResponseOutparam>, response: Result<Resource<OutgoingResponse>, HttpError>) -> wasmtime::Result<()> {
        let response = response.map(Ok).unwrap_or_else(|err| Err(p2::types::ErrorCode::InternalError(Some(error_text(&err)))));
        p2::types::HostResponseOutparam::set(&mut self.http(), param, response)
    }

    fn drop(&mut self, param: Resource<ResponseOutparam>) -> wasmtime::Result<()> {
        p2::types::HostResponseOutparam::drop(&mut self.http(), param)
    }
}

impl<T: RcView> http::types::HostFutureTrailers for RcCtx<'_, T> {
    fn subscribe(&mut self, trailers: Resource<FutureTrailers>) -> wasmtime::Result<Resource<DynPollable>> {
        p2::types::HostFutureTrailers::subscribe(&mut self.http(), trailers)
    }

    /// No trailers are an empty `fields` (this candidate cannot say "none").
    fn get(&mut self, trailers: Resource<FutureTrailers>) -> wasmtime::Result<Option<Result<Resource<Fields>, HttpError>>> {
        let mut http = self.http();
        Ok(match p2::types::HostFutureTrailers::get(&mut http, trailers)? {
            None => None,
            Some(Ok(Ok(Some(trailers)))) => Some(Ok(trailers)),
            Some(Ok(Ok(None))) => Some(Ok(p2::types::HostFields::new(&mut http)?)),
            Some(Ok(Err(code))) => Some(Err(code.into())),
            Some(Err(())) => Some(Err(HttpError::UnexpectedError("the trailers were already taken".to_string()))),
        })
    }

    fn drop(&mut self, trailers: Resource<FutureTrailers>) -> wasmtime::Result<()> {
        p2::types::HostFutureTrailers::drop(&mut self.http(), trailers)
    }
}

impl<T: RcView> http::types::HostFutureIncomingResponse for RcCtx<'_, T> {
    fn get(&mut self, future: Resource<FutureIncomingResponse>) -> wasmtime::Result<Option<Result<Result<Resource<IncomingResponse>, HttpError>, ()>>> {
        let response = p2::types::HostFutureIncomingResponse::get(&mut self.http(), future)?;
        Ok(response.map(|taken| taken.map(|response| response.map_err(HttpError::from))))
    }

    fn subscribe(&mut self, future: Resource<FutureIncomingResponse>) -> wasmtime::Result<Resource<DynPollable>> {
        p2::types::HostFutureIncomingResponse::subscribe(&mut self.http(), future)
    }

    fn drop(&mut self, future: Resource<FutureIncomingResponse>) -> wasmtime::Result<()> {
        p2::types::HostFutureIncomingResponse::drop(&mut self.http(), future)
    }
}

/// The final `wasi:http/outgoing-handler.handle` on `request`, given the embedder's authority
/// when it has none (a relative URL; see [`RcHooks::relative_request_authority`]).
pub(crate) fn send<T: RcView>(
    ctx: &mut RcCtx<'_, T>,
    request: Resource<OutgoingRequest>,
    options: Option<Resource<p2::types::RequestOptions>>,
) -> wasmtime::Result<Result<Resource<FutureIncomingResponse>, p2::types::ErrorCode>> {
    let authority = ctx.0.relative_request_authority();
    let mut http = ctx.0.http();
    if let (Some(authority), Ok(outgoing)) = (authority, http.table.get_mut(&request))
        && outgoing.authority.is_none()
    {
        outgoing.authority = Some(authority.to_string());
    }
    match p2::outgoing_handler::Host::handle(&mut http, request, options) {
        Ok(response) => Ok(Ok(response)),
        Err(err) => Ok(Err(err.downcast()?)),
    }
}

impl<T: RcView> http::outgoing_handler::Host for RcCtx<'_, T> {
    fn handle(&mut self, request: Resource<OutgoingRequest>, options: Option<RequestOptions>) -> wasmtime::Result<Result<Resource<FutureIncomingResponse>, HttpError>> {
        let options = match options {
            None => None,
            Some(options) => {
                let mut http = self.http();
                let made = P2RequestOptions::new(&mut http)?;
                let this = || Resource::new_borrow(made.rep());
                let ms = |ms: Option<u32>| ms.map(|ms| u64::from(ms) * 1_000_000);
                let accepted = P2RequestOptions::set_connect_timeout(&mut http, this(), ms(options.connect_timeout_ms))?.is_ok()
                    && P2RequestOptions::set_first_byte_timeout(&mut http, this(), ms(options.first_byte_timeout_ms))?.is_ok()
                    && P2RequestOptions::set_between_bytes_timeout(&mut http, this(), ms(options.between_bytes_timeout_ms))?.is_ok();
                if !accepted {
                    p2::types::HostRequestOptions::drop(&mut http, made)?;
                    p2::types::HostOutgoingRequest::drop(&mut http, request)?;
                    return Ok(Err(HttpError::InvalidUrl("the request options are refused".to_string())));
                }
                Some(made)
            }
        };
        Ok(send(self, request, options)?.map_err(HttpError::from))
    }
}

/// The final error code as this candidate's four-way `error`.
impl From<p2::types::ErrorCode> for HttpError {
    fn from(code: p2::types::ErrorCode) -> HttpError {
        use p2::types::ErrorCode as Code;
        let text = code.to_string();
        match code {
            Code::HttpRequestUriInvalid | Code::HttpRequestUriTooLong | Code::DnsError(_) | Code::DestinationNotFound => HttpError::InvalidUrl(text),
            Code::DnsTimeout
            | Code::ConnectionTimeout
            | Code::ConnectionReadTimeout
            | Code::ConnectionWriteTimeout
            | Code::HttpResponseTimeout => HttpError::TimeoutError(text),
            Code::HttpProtocolError
            | Code::HttpResponseIncomplete
            | Code::HttpResponseTransferCoding(_)
            | Code::HttpResponseContentCoding(_)
            | Code::HttpUpgradeFailed
            | Code::TlsProtocolError
            | Code::TlsCertificateError
            | Code::TlsAlertReceived(_) => HttpError::ProtocolError(text),
            _ => HttpError::UnexpectedError(text),
        }
    }
}

fn error_text(err: &HttpError) -> String {
    match err {
        HttpError::InvalidUrl(text) => format!("invalid URL: {text}"),
        HttpError::TimeoutError(text) => format!("timeout: {text}"),
        HttpError::ProtocolError(text) => format!("protocol error: {text}"),
        HttpError::UnexpectedError(text) => format!("unexpected error: {text}"),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn error_codes_keep_their_kind_and_text() {
        let denied = HttpError::from(p2::types::ErrorCode::HttpRequestDenied);
        assert!(matches!(&denied, HttpError::UnexpectedError(text) if text.contains("HttpRequestDenied") || text.to_lowercase().contains("denied")), "{denied:?}");
        assert!(matches!(HttpError::from(p2::types::ErrorCode::HttpRequestUriInvalid), HttpError::InvalidUrl(_)));
        assert!(matches!(HttpError::from(p2::types::ErrorCode::ConnectionTimeout), HttpError::TimeoutError(_)));
        assert!(matches!(HttpError::from(p2::types::ErrorCode::HttpProtocolError), HttpError::ProtocolError(_)));
    }

    #[test]
    fn methods_and_schemes_round_trip() {
        for method in [Method::Get, Method::Patch, Method::Other("PURGE".to_string())] {
            let back: Method = p2::types::Method::from(method.clone()).into();
            assert_eq!(format!("{back:?}"), format!("{method:?}"));
        }
        let scheme: p2::types::Scheme = Scheme::Https.into();
        assert!(matches!(scheme, p2::types::Scheme::Https));
    }
}
