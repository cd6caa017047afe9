//! A Spin 2.x HTTP app, built with spin-sdk 2.2 for `wasm32-wasip1` as `spin build` did: its
//! component (made by Kiln at load with the reactor adapter) imports WASI `0.2.0-rc-2023-10-18`
//! and exports `wasi:http/incoming-handler@0.2.0-rc-2023-10-18`.
//!
//! Routes by the path's last segment:
//! - `/hello` → `hello from spin-sdk 2.2`
//! - `/kv?op=set&key=k&value=v` → `ok`; `/kv?op=get&key=k` → the value, or 404 `none`
//!   (`fermyon:spin/key-value@2.0.0`, the default store)
//! - `/variables?name=x` → the variable's value (`fermyon:spin/variables@2.0.0`), or 500 with the error
//! - `/echo` → the request body back
//! - `/outbound?url=...` → status and body of a GET to `url` (`wasi:http/outgoing-handler`), or
//!   502 with the error as text (a host not in `allowed_outbound_hosts` is refused)
extern crate spin_sdk_2 as spin_sdk;

use spin_sdk::http::{IntoResponse, Method, Request, Response};
use spin_sdk::http_component;

#[http_component]
async fn handle(request: Request) -> anyhow::Result<impl IntoResponse> {
    let route = request.path().rsplit('/').next().unwrap_or_default().to_string();
    let query = request.query().to_string();
    let param = |name: &str| query_param(&query, name);
    Ok(match route.as_str() {
        "hello" => text(200, "hello from spin-sdk 2.2".to_string()),
        "kv" => key_value(param("op"), param("key"), param("value")),
        "variables" => match param("name").map(|name| spin_sdk::variables::get(&name)) {
            Some(Ok(value)) => text(200, value),
            Some(Err(err)) => text(500, format!("variable error: {err}")),
            None => text(400, "name is required".to_string()),
        },
        "echo" => Response::builder().status(200).header("content-type", "application/octet-stream").body(request.body().to_vec()).build(),
        "outbound" => match param("url") {
            Some(url) => outbound(url).await,
            None => text(400, "url is required".to_string()),
        },
        _ => text(404, format!("no route {}", request.path())),
    })
}

fn key_value(op: Option<String>, key: Option<String>, value: Option<String>) -> Response {
    let store = match spin_sdk::key_value::Store::open_default() {
        Ok(store) => store,
        Err(err) => return text(500, format!("open: {err}")),
    };
    let Some(key) = key else {
        return text(400, "key is required".to_string());
    };
    match op.as_deref() {
        Some("set") => match store.set(&key, value.unwrap_or_default().as_bytes()) {
            Ok(()) => text(200, "ok".to_string()),
            Err(err) => text(500, format!("set: {err}")),
        },
        Some("get") => match store.get(&key) {
            Ok(Some(value)) => text(200, String::from_utf8_lossy(&value).into_owned()),
            Ok(None) => text(404, "none".to_string()),
            Err(err) => text(500, format!("get: {err}")),
        },
        _ => text(400, "op is set or get".to_string()),
    }
}

async fn outbound(url: String) -> Response {
    let request = Request::new(Method::Get, url);
    match spin_sdk::http::send::<_, Response>(request).await {
        Ok(response) => text(200, format!("{} {}", response.status(), String::from_utf8_lossy(response.body()))),
        Err(err) => text(502, format!("outbound error: {err}")),
    }
}

fn text(status: u16, body: String) -> Response {
    Response::builder().status(status).header("content-type", "text/plain").body(body).build()
}

/// The first value of `name` in a query string, `+` and `%XX` decoded.
fn query_param(query: &str, name: &str) -> Option<String> {
    query.split('&').find_map(|pair| {
        let (key, value) = pair.split_once('=').unwrap_or((pair, ""));
        (decode(key) == name).then(|| decode(value))
    })
}

fn decode(text: &str) -> String {
    let bytes = text.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        match bytes[i] {
            b'+' => out.push(b' '),
            b'%' if i + 2 < bytes.len() => {
                match std::str::from_utf8(&bytes[i + 1..i + 3]).ok().and_then(|hex| u8::from_str_radix(hex, 16).ok()) {
                    Some(byte) => {
                        out.push(byte);
                        i += 2;
                    }
                    None => out.push(b'%'),
                }
            }
            byte => out.push(byte),
        }
        i += 1;
    }
    String::from_utf8_lossy(&out).into_owned()
}
