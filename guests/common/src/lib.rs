//! Helpers shared by the test guests (wasi 0.14.2, `wasi:http@0.2.4`).

use std::io::Write as _;

use wasi::http::outgoing_handler;
use wasi::http::types::{
    ErrorCode, Fields, IncomingBody, IncomingRequest, Method, OutgoingBody, OutgoingRequest,
    OutgoingResponse, ResponseOutparam, Scheme,
};
use wasi::io::streams::StreamError;

/// Sends a complete response with exactly the given headers.
pub fn respond(out: ResponseOutparam, status: u16, headers: &[(&str, &str)], body: &[u8]) {
    let list: Vec<(String, Vec<u8>)> = headers
        .iter()
        .map(|(k, v)| (k.to_string(), v.as_bytes().to_vec()))
        .collect();
    let fields = Fields::from_list(&list).expect("valid response headers");
    let resp = OutgoingResponse::new(fields);
    resp.set_status_code(status).expect("valid status code");
    let outgoing = resp.body().expect("response body");
    ResponseOutparam::set(out, Ok(resp));
    {
        let mut stream = outgoing.write().expect("response body stream");
        stream.write_all(body).expect("write response body");
        // Once the whole body is written the host may already have taken it and closed the stream
        // (it knows the length): a closed stream here is not an error.
        match stream.blocking_flush() {
            Ok(()) | Err(StreamError::Closed) => {}
            Err(e) => panic!("flush response body: {e:?}"),
        }
    }
    OutgoingBody::finish(outgoing, None).expect("finish response body");
}

/// Sends `body` as `text/plain; charset=utf-8` with a `content-length`.
pub fn text(out: ResponseOutparam, status: u16, body: impl AsRef<[u8]>) {
    let body = body.as_ref();
    let len = body.len().to_string();
    respond(
        out,
        status,
        &[("content-type", "text/plain; charset=utf-8"), ("content-length", &len)],
        body,
    );
}

/// The request's path-with-query, or "/".
pub fn path_with_query(req: &IncomingRequest) -> String {
    req.path_with_query().unwrap_or_else(|| "/".to_string())
}

/// The percent-decoded value of the first query parameter `key` (`+` is left as is).
pub fn query_param(path_with_query: &str, key: &str) -> Option<String> {
    let query = path_with_query.split_once('?')?.1;
    query.split('&').find_map(|pair| {
        let (k, v) = pair.split_once('=').unwrap_or((pair, ""));
        (percent_decode(k) == key).then(|| percent_decode(v))
    })
}

pub fn percent_decode(s: &str) -> String {
    let bytes = s.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        if bytes[i] == b'%' && i + 2 < bytes.len() {
            if let (Some(h), Some(l)) = (hex(bytes[i + 1]), hex(bytes[i + 2])) {
                out.push(h * 16 + l);
                i += 3;
                continue;
            }
        }
        out.push(bytes[i]);
        i += 1;
    }
    String::from_utf8_lossy(&out).into_owned()
}

fn hex(b: u8) -> Option<u8> {
    match b {
        b'0'..=b'9' => Some(b - b'0'),
        b'a'..=b'f' => Some(b - b'a' + 10),
        b'A'..=b'F' => Some(b - b'A' + 10),
        _ => None,
    }
}

pub fn method_str(m: &Method) -> String {
    match m {
        Method::Get => "GET".into(),
        Method::Head => "HEAD".into(),
        Method::Post => "POST".into(),
        Method::Put => "PUT".into(),
        Method::Delete => "DELETE".into(),
        Method::Connect => "CONNECT".into(),
        Method::Options => "OPTIONS".into(),
        Method::Trace => "TRACE".into(),
        Method::Patch => "PATCH".into(),
        Method::Other(s) => s.clone(),
    }
}

pub fn scheme_str(s: &Scheme) -> String {
    match s {
        Scheme::Http => "http".into(),
        Scheme::Https => "https".into(),
        Scheme::Other(s) => s.clone(),
    }
}

/// Reads an incoming body to its end.
pub fn read_all(body: IncomingBody) -> Result<Vec<u8>, String> {
    let mut data = Vec::new();
    {
        let stream = body.stream().map_err(|()| "body stream already taken".to_string())?;
        loop {
            match stream.blocking_read(64 * 1024) {
                Ok(chunk) => data.extend_from_slice(&chunk),
                Err(StreamError::Closed) => break,
                Err(StreamError::LastOperationFailed(e)) => {
                    return Err(format!("body read failed: {}", e.to_debug_string()));
                }
            }
        }
    }
    let _trailers = IncomingBody::finish(body);
    Ok(data)
}

/// `Debug` of an `ErrorCode` without wit-bindgen's `ErrorCode::` prefix:
/// `HttpRequestDenied`, `DnsError(DnsErrorPayload { .. })`, ...
pub fn error_code(e: &ErrorCode) -> String {
    let s = format!("{e:?}");
    s.strip_prefix("ErrorCode::").map(str::to_string).unwrap_or(s)
}

/// What an outgoing GET ended in.
pub enum Fetch {
    /// The upstream answered.
    Response { status: u16, body: Vec<u8> },
    /// `outgoing-handler.handle` itself returned an error.
    HandleError(ErrorCode),
    /// The response future resolved to an error.
    ResponseError(ErrorCode),
    /// Anything else (bad URL, body read failure).
    Other(String),
}

/// Makes a GET request to `url` (`scheme://authority/path?query`) via `wasi:http/outgoing-handler`.
pub fn fetch(url: &str) -> Fetch {
    if url.starts_with('/') {
        // A relative URL: no scheme, no authority (a request to the app itself, as Spin's SDK sends it).
        return send(None, None, url);
    }
    let Some((scheme, rest)) = url.split_once("://") else {
        return Fetch::Other(format!("invalid url: {url:?}"));
    };
    let split = rest.find(['/', '?']).unwrap_or(rest.len());
    let (authority, pq) = rest.split_at(split);
    let pq = if pq.is_empty() {
        "/".to_string()
    } else if pq.starts_with('?') {
        format!("/{pq}")
    } else {
        pq.to_string()
    };
    let scheme = match scheme {
        "http" => Scheme::Http,
        "https" => Scheme::Https,
        other => Scheme::Other(other.to_string()),
    };

    send(Some(&scheme), Some(authority), &pq)
}

/// GETs `path_with_query` at `scheme://authority` (both `None`: a relative URL).
fn send(scheme: Option<&Scheme>, authority: Option<&str>, pq: &str) -> Fetch {
    let req = OutgoingRequest::new(Fields::new());
    let set = req
        .set_method(&Method::Get)
        .and(req.set_scheme(scheme))
        .and(req.set_authority(authority))
        .and(req.set_path_with_query(Some(pq)));
    if set.is_err() {
        return Fetch::Other(format!("invalid url: {:?}{pq}", authority.unwrap_or_default()));
    }
    // An empty request body, finished before the request is sent.
    let body = req.body().expect("outgoing request body");
    OutgoingBody::finish(body, None).expect("finish outgoing request body");

    let future = match outgoing_handler::handle(req, None) {
        Ok(f) => f,
        Err(e) => return Fetch::HandleError(e),
    };
    future.subscribe().block();
    let resp = match future.get() {
        Some(Ok(Ok(resp))) => resp,
        Some(Ok(Err(e))) => return Fetch::ResponseError(e),
        Some(Err(())) => return Fetch::Other("response already taken".into()),
        None => return Fetch::Other("response not ready after block".into()),
    };
    let status = resp.status();
    let body = match resp.consume() {
        Ok(b) => b,
        Err(()) => return Fetch::Other("response body already consumed".into()),
    };
    match read_all(body) {
        Ok(body) => Fetch::Response { status, body },
        Err(e) => Fetch::Other(e),
    }
}

/// Answers with what `fetch` got:
/// 200 `upstream-status: <code>\n<upstream body>`, or 502 `handle error: <ErrorCode>`,
/// 502 `response error: <ErrorCode>`, 502 `error: <message>`.
pub fn respond_fetch(out: ResponseOutparam, fetch: Fetch) {
    match fetch {
        Fetch::Response { status, body } => {
            let mut text_body = format!("upstream-status: {status}\n").into_bytes();
            text_body.extend_from_slice(&body);
            text(out, 200, text_body)
        }
        Fetch::HandleError(e) => text(out, 502, format!("handle error: {}", error_code(&e))),
        Fetch::ResponseError(e) => text(out, 502, format!("response error: {}", error_code(&e))),
        Fetch::Other(msg) => text(out, 502, format!("error: {msg}")),
    }
}
