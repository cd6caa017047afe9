//! `wasi:http@0.2.0-rc-2023-11-10` (`types` and `outgoing-handler`) over wasmtime-wasi-http's
//! final WASI 0.2 host, on the same table entries.
//!
//! This candidate is the final `wasi:http` but for names (`request-options`' `*-timeout-ms`) and
//! `future-trailers.get`, which cannot say that the trailers were already taken: it returns
//! `internal-error` then.

use crate::rc_2023_10_18_http::{finish_body, response_body, send};
use crate::rc_2023_11_10::{bindings_rc_2023_11_10, http, io};
use crate::{HasRc, RcCtx, RcView, rc};
use http::types::{
    DnsErrorPayload, ErrorCode, FieldSizePayload, Fields, FutureIncomingResponse, FutureTrailers, HeaderError, IncomingResponse, Method,
    OutgoingBody, OutgoingRequest, OutgoingResponse, RequestOptions, ResponseOutparam, Scheme, StatusCode, TlsAlertReceivedPayload,
};
use wasmtime::component::{Linker, Resource};
use wasmtime_wasi::p2::DynPollable;
use wasmtime_wasi_http::p2::bindings::http as p2;
use wasmtime_wasi_http::p2::bindings::http::types::{
    HostFields as P2Fields, HostOutgoingRequest as P2OutgoingRequest, HostOutgoingResponse as P2OutgoingResponse, HostRequestOptions as P2RequestOptions,
};

pub(crate) fn add_to_linker<T: RcView>(linker: &mut Linker<T>) -> wasmtime::Result<()> {
    http::types::add_to_linker::<T, HasRc<T>>(linker, rc)?;
    http::outgoing_handler::add_to_linker::<T, HasRc<T>>(linker, rc)
}

/// A final-host header result as this candidate's.
fn header_result<U>(result: Result<U, wasmtime_wasi_http::p2::HeaderError>) -> wasmtime::Result<Result<U, HeaderError>> {
    match result {
        Ok(value) => Ok(Ok(value)),
        Err(err) => Ok(Err(match err.downcast()? {
            p2::types::HeaderError::InvalidSyntax => HeaderError::InvalidSyntax,
            p2::types::HeaderError::Forbidden => HeaderError::Forbidden,
            p2::types::HeaderError::Immutable => HeaderError::Immutable,
        })),
    }
}

impl<T: RcView> http::types::Host for RcCtx<'_, T> {
    fn http_error_code(&mut self, err: Resource<io::error::Error>) -> wasmtime::Result<Option<ErrorCode>> {
        Ok(p2::types::Host::http_error_code(&mut self.http(), err)?.map(Into::into))
    }
}

impl<T: RcView> http::types::HostFields for RcCtx<'_, T> {
    fn new(&mut self) -> wasmtime::Result<Resource<Fields>> {
        P2Fields::new(&mut self.http())
    }

    fn from_list(&mut self, entries: Vec<(String, Vec<u8>)>) -> wasmtime::Result<Result<Resource<Fields>, HeaderError>> {
        header_result(P2Fields::from_list(&mut self.http(), entries))
    }

    fn get(&mut self, fields: Resource<Fields>, name: String) -> wasmtime::Result<Vec<Vec<u8>>> {
        P2Fields::get(&mut self.http(), fields, name)
    }

    fn set(&mut self, fields: Resource<Fields>, name: String, values: Vec<Vec<u8>>) -> wasmtime::Result<Result<(), HeaderError>> {
        header_result(P2Fields::set(&mut self.http(), fields, name, values))
    }

    fn delete(&mut self, fields: Resource<Fields>, name: String) -> wasmtime::Result<Result<(), HeaderError>> {
        header_result(P2Fields::delete(&mut self.http(), fields, name))
    }

    fn append(&mut self, fields: Resource<Fields>, name: String, value: Vec<u8>) -> wasmtime::Result<Result<(), HeaderError>> {
        header_result(P2Fields::append(&mut self.http(), fields, name, value))
    }

    fn entries(&mut self, fields: Resource<Fields>) -> wasmtime::Result<Vec<(String, Vec<u8>)>> {
        P2Fields::entries(&mut self.http(), fields)
    }

    fn clone(&mut self, fields: Resource<Fields>) -> wasmtime::Result<Resource<Fields>> {
        P2Fields::clone(&mut self.http(), fields)
    }

    fn drop(&mut self, fields: Resource<Fields>) -> wasmtime::Result<()> {
        P2Fields::drop(&mut self.http(), fields)
    }
}

crate::shared::wasi_http_incoming!(bindings_rc_2023_11_10);

impl<T: RcView> http::types::HostOutgoingRequest for RcCtx<'_, T> {
    fn new(&mut self, headers: Resource<Fields>) -> wasmtime::Result<Resource<OutgoingRequest>> {
        P2OutgoingRequest::new(&mut self.http(), headers)
    }

    fn body(&mut self, request: Resource<OutgoingRequest>) -> wasmtime::Result<Result<Resource<OutgoingBody>, ()>> {
        P2OutgoingRequest::body(&mut self.http(), request)
    }

    fn method(&mut self, request: Resource<OutgoingRequest>) -> wasmtime::Result<Method> {
        Ok(P2OutgoingRequest::method(&mut self.http(), request)?.into())
    }

    fn set_method(&mut self, request: Resource<OutgoingRequest>, method: Method) -> wasmtime::Result<Result<(), ()>> {
        P2OutgoingRequest::set_method(&mut self.http(), request, method.into())
    }

    fn path_with_query(&mut self, request: Resource<OutgoingRequest>) -> wasmtime::Result<Option<String>> {
        P2OutgoingRequest::path_with_query(&mut self.http(), request)
    }

    fn set_path_with_query(&mut self, request: Resource<OutgoingRequest>, path_with_query: Option<String>) -> wasmtime::Result<Result<(), ()>> {
        P2OutgoingRequest::set_path_with_query(&mut self.http(), request, path_with_query)
    }

    fn scheme(&mut self, request: Resource<OutgoingRequest>) -> wasmtime::Result<Option<Scheme>> {
        Ok(P2OutgoingRequest::scheme(&mut self.http(), request)?.map(Into::into))
    }

    fn set_scheme(&mut self, request: Resource<OutgoingRequest>, scheme: Option<Scheme>) -> wasmtime::Result<Result<(), ()>> {
        P2OutgoingRequest::set_scheme(&mut self.http(), request, scheme.map(Into::into))
    }

    fn authority(&mut self, request: Resource<OutgoingRequest>) -> wasmtime::Result<Option<String>> {
        P2OutgoingRequest::authority(&mut self.http(), request)
    }

    fn set_authority(&mut self, request: Resource<OutgoingRequest>, authority: Option<String>) -> wasmtime::Result<Result<(), ()>> {
        P2OutgoingRequest::set_authority(&mut self.http(), request, authority)
    }

    fn headers(&mut self, request: Resource<OutgoingRequest>) -> wasmtime::Result<Resource<Fields>> {
        P2OutgoingRequest::headers(&mut self.http(), request)
    }

    fn drop(&mut self, request: Resource<OutgoingRequest>) -> wasmtime::Result<()> {
        P2OutgoingRequest::drop(&mut self.http(), request)
    }
}

/// The candidate's `*-timeout-ms` are durations in nanoseconds, as the final `*-timeout`.
impl<T: RcView> http::types::HostRequestOptions for RcCtx<'_, T> {
    fn new(&mut self) -> wasmtime::Result<Resource<RequestOptions>> {
        P2RequestOptions::new(&mut self.http())
    }

    fn connect_timeout_ms(&mut self, options: Resource<RequestOptions>) -> wasmtime::Result<Option<u64>> {
        P2RequestOptions::connect_timeout(&mut self.http(), options)
    }

    fn set_connect_timeout_ms(&mut self, options: Resource<RequestOptions>, duration: Option<u64>) -> wasmtime::Result<Result<(), ()>> {
        P2RequestOptions::set_connect_timeout(&mut self.http(), options, duration)
    }

    fn first_byte_timeout_ms(&mut self, options: Resource<RequestOptions>) -> wasmtime::Result<Option<u64>> {
        P2RequestOptions::first_byte_timeout(&mut self.http(), options)
    }

    fn set_first_byte_timeout_ms(&mut self, options: Resource<RequestOptions>, duration: Option<u64>) -> wasmtime::Result<Result<(), ()>> {
        P2RequestOptions::set_first_byte_timeout(&mut self.http(), options, duration)
    }

    fn between_bytes_timeout_ms(&mut self, options: Resource<RequestOptions>) -> wasmtime::Result<Option<u64>> {
        P2RequestOptions::between_bytes_timeout(&mut self.http(), options)
    }

    fn set_between_bytes_timeout_ms(&mut self, options: Resource<RequestOptions>, duration: Option<u64>) -> wasmtime::Result<Result<(), ()>> {
        P2RequestOptions::set_between_bytes_timeout(&mut self.http(), options, duration)
    }

    fn drop(&mut self, options: Resource<RequestOptions>) -> wasmtime::Result<()> {
        P2RequestOptions::drop(&mut self.http(), options)
    }
}

impl<T: RcView> http::types::HostResponseOutparam for RcCtx<'_, T> {
    fn set(&mut self, param: Resource<ResponseOutparam>, response: Result<Resource<OutgoingResponse>, ErrorCode>) -> wasmtime::Result<()> {
        p2::types::HostResponseOutparam::set(&mut self.http(), param, response.map_err(Into::into))
    }

    fn drop(&mut self, param: Resource<ResponseOutparam>) -> wasmtime::Result<()> {
        p2::types::HostResponseOutparam::drop(&mut self.http(), param)
    }
}

impl<T: RcView> http::types::HostFutureTrailers for RcCtx<'_, T> {
    fn subscribe(&mut self, trailers: Resource<FutureTrailers>) -> wasmtime::Result<Resource<DynPollable>> {
        p2::types::HostFutureTrailers::subscribe(&mut self.http(), trailers)
    }

    fn get(&mut self, trailers: Resource<FutureTrailers>) -> wasmtime::Result<Option<Result<Option<Resource<Fields>>, ErrorCode>>> {
        Ok(match p2::types::HostFutureTrailers::get(&mut self.http(), trailers)? {
            None => None,
            Some(Ok(trailers)) => Some(trailers.map_err(Into::into)),
            Some(Err(())) => Some(Err(ErrorCode::InternalError(Some("the trailers were already taken".to_string())))),
        })
    }

    fn drop(&mut self, trailers: Resource<FutureTrailers>) -> wasmtime::Result<()> {
        p2::types::HostFutureTrailers::drop(&mut self.http(), trailers)
    }
}

impl<T: RcView> http::types::HostOutgoingResponse for RcCtx<'_, T> {
    fn new(&mut self, headers: Resource<Fields>) -> wasmtime::Result<Resource<OutgoingResponse>> {
        P2OutgoingResponse::new(&mut self.http(), headers)
    }

    fn status_code(&mut self, response: Resource<OutgoingResponse>) -> wasmtime::Result<StatusCode> {
        P2OutgoingResponse::status_code(&mut self.http(), response)
    }

    fn set_status_code(&mut self, response: Resource<OutgoingResponse>, status: StatusCode) -> wasmtime::Result<Result<(), ()>> {
        P2OutgoingResponse::set_status_code(&mut self.http(), response, status)
    }

    fn headers(&mut self, response: Resource<OutgoingResponse>) -> wasmtime::Result<Resource<Fields>> {
        P2OutgoingResponse::headers(&mut self.http(), response)
    }

    fn body(&mut self, response: Resource<OutgoingResponse>) -> wasmtime::Result<Result<Resource<OutgoingBody>, ()>> {
        response_body(self, response)
    }

    fn drop(&mut self, response: Resource<OutgoingResponse>) -> wasmtime::Result<()> {
        P2OutgoingResponse::drop(&mut self.http(), response)
    }
}

impl<T: RcView> http::types::HostOutgoingBody for RcCtx<'_, T> {
    fn write(&mut self, body: Resource<OutgoingBody>) -> wasmtime::Result<Result<Resource<wasmtime_wasi::p2::DynOutputStream>, ()>> {
        p2::types::HostOutgoingBody::write(&mut self.http(), body)
    }

    fn finish(&mut self, body: Resource<OutgoingBody>, trailers: Option<Resource<Fields>>) -> wasmtime::Result<Result<(), ErrorCode>> {
        Ok(finish_body(self, body, trailers)?.map_err(Into::into))
    }

    fn drop(&mut self, body: Resource<OutgoingBody>) -> wasmtime::Result<()> {
        p2::types::HostOutgoingBody::drop(&mut self.http(), body)
    }
}

impl<T: RcView> http::types::HostFutureIncomingResponse for RcCtx<'_, T> {
    fn subscribe(&mut self, future: Resource<FutureIncomingResponse>) -> wasmtime::Result<Resource<DynPollable>> {
        p2::types::HostFutureIncomingResponse::subscribe(&mut self.http(), future)
    }

    fn get(&mut self, future: Resource<FutureIncomingResponse>) -> wasmtime::Result<Option<Result<Result<Resource<IncomingResponse>, ErrorCode>, ()>>> {
        let response = p2::types::HostFutureIncomingResponse::get(&mut self.http(), future)?;
        Ok(response.map(|taken| taken.map(|response| response.map_err(Into::into))))
    }

    fn drop(&mut self, future: Resource<FutureIncomingResponse>) -> wasmtime::Result<()> {
        p2::types::HostFutureIncomingResponse::drop(&mut self.http(), future)
    }
}

impl<T: RcView> http::outgoing_handler::Host for RcCtx<'_, T> {
    fn handle(&mut self, request: Resource<OutgoingRequest>, options: Option<Resource<RequestOptions>>) -> wasmtime::Result<Result<Resource<FutureIncomingResponse>, ErrorCode>> {
        Ok(send(self, request, options)?.map_err(Into::into))
    }
}

crate::convert::convert! {
    struct p2::types::DnsErrorPayload = DnsErrorPayload { rcode, info_code, }
    struct p2::types::TlsAlertReceivedPayload = TlsAlertReceivedPayload { alert_id, alert_message, }
    struct p2::types::FieldSizePayload = FieldSizePayload { field_name, field_size, }
}

/// `ErrorCode` both ways: the same variants (`Option`al payloads converted inside).
macro_rules! error_codes {
    ($a:path => $b:path) => {
        impl From<$a> for $b {
            fn from(code: $a) -> $b {
                use $a as Src;
                use $b as Dst;
                match code {
                    Src::DnsTimeout => Dst::DnsTimeout,
                    Src::DnsError(payload) => Dst::DnsError(payload.into()),
                    Src::DestinationNotFound => Dst::DestinationNotFound,
                    Src::DestinationUnavailable => Dst::DestinationUnavailable,
                    Src::DestinationIpProhibited => Dst::DestinationIpProhibited,
                    Src::DestinationIpUnroutable => Dst::DestinationIpUnroutable,
                    Src::ConnectionRefused => Dst::ConnectionRefused,
                    Src::ConnectionTerminated => Dst::ConnectionTerminated,
                    Src::ConnectionTimeout => Dst::ConnectionTimeout,
                    Src::ConnectionReadTimeout => Dst::ConnectionReadTimeout,
                    Src::ConnectionWriteTimeout => Dst::ConnectionWriteTimeout,
                    Src::ConnectionLimitReached => Dst::ConnectionLimitReached,
                    Src::TlsProtocolError => Dst::TlsProtocolError,
                    Src::TlsCertificateError => Dst::TlsCertificateError,
                    Src::TlsAlertReceived(payload) => Dst::TlsAlertReceived(payload.into()),
                    Src::HttpRequestDenied => Dst::HttpRequestDenied,
                    Src::HttpRequestLengthRequired => Dst::HttpRequestLengthRequired,
                    Src::HttpRequestBodySize(size) => Dst::HttpRequestBodySize(size),
                    Src::HttpRequestMethodInvalid => Dst::HttpRequestMethodInvalid,
                    Src::HttpRequestUriInvalid => Dst::HttpRequestUriInvalid,
                    Src::HttpRequestUriTooLong => Dst::HttpRequestUriTooLong,
                    Src::HttpRequestHeaderSectionSize(size) => Dst::HttpRequestHeaderSectionSize(size),
                    Src::HttpRequestHeaderSize(payload) => Dst::HttpRequestHeaderSize(payload.map(Into::into)),
                    Src::HttpRequestTrailerSectionSize(size) => Dst::HttpRequestTrailerSectionSize(size),
                    Src::HttpRequestTrailerSize(payload) => Dst::HttpRequestTrailerSize(payload.into()),
                    Src::HttpResponseIncomplete => Dst::HttpResponseIncomplete,
                    Src::HttpResponseHeaderSectionSize(size) => Dst::HttpResponseHeaderSectionSize(size),
                    Src::HttpResponseHeaderSize(payload) => Dst::HttpResponseHeaderSize(payload.into()),
                    Src::HttpResponseBodySize(size) => Dst::HttpResponseBodySize(size),
                    Src::HttpResponseTrailerSectionSize(size) => Dst::HttpResponseTrailerSectionSize(size),
                    Src::HttpResponseTrailerSize(payload) => Dst::HttpResponseTrailerSize(payload.into()),
                    Src::HttpResponseTransferCoding(coding) => Dst::HttpResponseTransferCoding(coding),
                    Src::HttpResponseContentCoding(coding) => Dst::HttpResponseContentCoding(coding),
                    Src::HttpResponseTimeout => Dst::HttpResponseTimeout,
                    Src::HttpUpgradeFailed => Dst::HttpUpgradeFailed,
                    Src::HttpProtocolError => Dst::HttpProtocolError,
                    Src::LoopDetected => Dst::LoopDetected,
                    Src::ConfigurationError => Dst::ConfigurationError,
                    Src::InternalError(text) => Dst::InternalError(text),
                }
            }
        }
    };
}

error_codes!(p2::types::ErrorCode => ErrorCode);
error_codes!(ErrorCode => p2::types::ErrorCode);

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn error_codes_round_trip_with_their_payloads() {
        let codes = [
            p2::types::ErrorCode::HttpRequestDenied,
            p2::types::ErrorCode::DnsError(p2::types::DnsErrorPayload { rcode: Some("NXDOMAIN".into()), info_code: Some(3) }),
            p2::types::ErrorCode::HttpRequestHeaderSize(Some(p2::types::FieldSizePayload { field_name: Some("x".into()), field_size: Some(9) })),
            p2::types::ErrorCode::InternalError(Some("boom".into())),
        ];
        for code in codes {
            let rc: ErrorCode = code.clone().into();
            let back: p2::types::ErrorCode = rc.into();
            assert_eq!(format!("{back:?}"), format!("{code:?}"));
        }
    }
}
