//! A Spin 4.0 HTTP app as users built it with spin-sdk 6 (`#[spin_sdk::http_service]`, an `async
//! fn`): it exports `wasi:http/handler@0.3.0-rc-2026-03-15` and imports that release candidate's
//! `wasi:*` interfaces (through `wasip3` 0.6), with Spin's async `spin:key-value@3.0.0` and
//! `spin:variables@3.0.0`.
//!
//! - `/hello` → 200 `hello from spin-sdk 6`
//! - `/kv?op=set&key=<k>&value=<v>` → `ok`; `/kv?op=get&key=<k>` → the value, or 404 `none`;
//!   `/kv?op=keys` → the keys, sorted, one a line; errors 500 `error: <variant>`
//!   (`error: AccessDenied`, …)
//! - `/variables?name=<name>` → the value, or 500 `error: <variant>`
//! - `/echo` → the request body streamed back, header `x-method`
//! - `/outbound?url=<url>` → `<status>\n<body>` of a GET (`wasi:http/client@0.3.0-rc-2026-03-15`),
//!   or 502 `error: <ErrorCode variant>` (`error: HttpRequestDenied`)
//! - `/trap` → panics
//! - anything else → 404 `unknown path`

// spin-sdk 6 under the workspace key `spin-sdk-6`; its macros expand to `::spin_sdk::…` paths.
extern crate spin_sdk_6 as spin_sdk;

use bytes::Bytes;
use spin_sdk::http::body::IncomingBodyExt;
use spin_sdk::http::{FullBody, IntoResponse, Request};
use spin_sdk::key_value::Store;
use spin_sdk::wasip3::http::types::{ErrorCode, Response};

type Answer = Result<Response, ErrorCode>;

#[spin_sdk::http_service]
async fn handle(req: Request) -> Answer {
    let query = req.uri().query().unwrap_or("").to_string();
    let param = |name: &str| {
        query.split('&').find_map(|pair| {
            let (k, v) = pair.split_once('=').unwrap_or((pair, ""));
            (k == name).then(|| v.replace("%2F", "/").replace("%3A", ":"))
        })
    };
    let path = req.uri().path().to_string();
    match path.rsplit('/').next().unwrap_or("") {
        "hello" => text(200, "hello from spin-sdk 6"),
        "kv" => kv(param("op"), param("key"), param("value")).await,
        "variables" => match spin_sdk::variables::get(&param("name").unwrap_or_default()).await {
            Ok(value) => text(200, value),
            Err(e) => error(&e),
        },
        "echo" => {
            let resp = http::Response::builder().status(200).header("x-method", req.method().as_str());
            resp.body(req.into_body()).map_err(|e| ErrorCode::InternalError(Some(e.to_string())))?.into_response()
        }
        "outbound" => outbound(&param("url").unwrap_or_default()).await,
        "trap" => panic!("spin6 was told to trap"),
        _ => text(404, "unknown path"),
    }
}

async fn kv(op: Option<String>, key: Option<String>, value: Option<String>) -> Answer {
    let store = match Store::open("default").await {
        Ok(store) => store,
        Err(e) => return error(&e),
    };
    let key = key.unwrap_or_default();
    let result = match op.as_deref().unwrap_or_default() {
        "set" => store.set(&key, value.unwrap_or_default().as_bytes()).await.map(|()| text(200, "ok")),
        "get" => store.get(&key).await.map(|v| match v {
            Some(v) => text(200, v),
            None => text(404, "none"),
        }),
        "keys" => store.get_keys().await.collect().await.map(|mut keys| {
            keys.sort();
            text(200, keys.join("\n"))
        }),
        other => return text(400, format!("unknown op {other:?}")),
    };
    result.unwrap_or_else(|e| error(&e))
}

async fn outbound(url: &str) -> Answer {
    let resp = match spin_sdk::http::get(url).await {
        Ok(resp) => resp,
        Err(e) => return text(502, format!("error: {}", variant(&e))),
    };
    let status = resp.status().as_u16();
    match resp.into_body().bytes().await {
        Ok(body) => {
            let mut out = format!("{status}\n").into_bytes();
            out.extend_from_slice(&body);
            text(200, out)
        }
        Err(e) => text(502, format!("error: {}", variant(&e))),
    }
}

/// `status` with a plain-text body.
fn text(status: u16, body: impl Into<Vec<u8>>) -> Answer {
    http::Response::builder()
        .status(status)
        .header("content-type", "text/plain; charset=utf-8")
        .body(FullBody::new(Bytes::from(body.into())))
        .map_err(|e| ErrorCode::InternalError(Some(e.to_string())))?
        .into_response()
}

/// 500 `error: <Variant>`.
fn error<E: std::fmt::Debug>(e: &E) -> Answer {
    text(500, format!("error: {}", variant(e)))
}

/// `Debug` of a wit-bindgen error without its type prefix: `Error::AccessDenied` → `AccessDenied`.
fn variant<E: std::fmt::Debug>(e: &E) -> String {
    let s = format!("{e:?}");
    match s.split_once("::") {
        Some((prefix, rest)) if !prefix.contains(['(', '"', ' ']) => rest.to_string(),
        _ => s,
    }
}
