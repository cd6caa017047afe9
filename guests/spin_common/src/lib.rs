//! Helpers shared by the spin-sdk test guests (`spin-sdk` 5.x from crates.io, which imports
//! `fermyon:spin/*@2.0.0` and `wasi:*@0.2.0`).

use spin_sdk::http::{Request, Response};

/// The query string's parameters in order, percent-decoded (`+` is a space, as in forms).
pub fn params(req: &Request) -> Vec<(String, String)> {
    let query = req.query();
    query
        .split('&')
        .filter(|p| !p.is_empty())
        .map(|pair| {
            let (k, v) = pair.split_once('=').unwrap_or((pair, ""));
            (percent_decode(k), percent_decode(v))
        })
        .collect()
}

/// The first value of `name`.
pub fn param(params: &[(String, String)], name: &str) -> Option<String> {
    params.iter().find(|(k, _)| k == name).map(|(_, v)| v.clone())
}

/// Every value of `name`, in order.
pub fn all(params: &[(String, String)], name: &str) -> Vec<String> {
    params.iter().filter(|(k, _)| k == name).map(|(_, v)| v.clone()).collect()
}

/// A comma-separated list parameter (absent or empty → no items).
pub fn list(params: &[(String, String)], name: &str) -> Vec<String> {
    match param(params, name) {
        Some(v) if !v.is_empty() => v.split(',').map(str::to_string).collect(),
        _ => Vec::new(),
    }
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
        out.push(if bytes[i] == b'+' { b' ' } else { bytes[i] });
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

/// `Debug` of a wit-bindgen error without its type prefix: `Error::AccessDenied` → `AccessDenied`,
/// `Error::Undefined("x")` → `Undefined("x")`.
pub fn variant<E: std::fmt::Debug>(e: &E) -> String {
    let s = format!("{e:?}");
    match s.split_once("::") {
        Some((prefix, rest)) if !prefix.contains(['(', '"', ' ']) => rest.to_string(),
        _ => s,
    }
}

/// 200 with a plain-text body.
pub fn ok(body: impl Into<Vec<u8>>) -> Response {
    Response::builder().status(200).header("content-type", "text/plain; charset=utf-8").body(body.into()).build()
}

/// `status` with a plain-text body.
pub fn status(code: u16, body: impl Into<Vec<u8>>) -> Response {
    Response::builder().status(code).header("content-type", "text/plain; charset=utf-8").body(body.into()).build()
}

/// 500 `error: <Variant>`.
pub fn error<E: std::fmt::Debug>(e: &E) -> Response {
    status(500, format!("error: {}", variant(e)))
}

/// Lowercase hex of `bytes`.
pub fn to_hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

/// Bytes from lowercase or uppercase hex; `None` if malformed.
pub fn from_hex(s: &str) -> Option<Vec<u8>> {
    if s.len() % 2 != 0 {
        return None;
    }
    (0..s.len()).step_by(2).map(|i| Some(hex(s.as_bytes()[i])? * 16 + hex(s.as_bytes()[i + 1])?)).collect()
}
