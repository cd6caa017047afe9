//! A hit counter and a small key-value API, written against the standard-track interfaces with plain
//! `wit-bindgen`, the way wasmCloud components are: `wasi:keyvalue/{store,atomics,batch}@0.2.0-draft`
//! and `wasi:config/store@0.2.0-draft`. The HTTP handler is exported through the `wasi` crate.
//!
//! - `GET /` → `<greeting> (hit <n>)`: the greeting from wasi:config, the counter from
//!   `atomics.increment`
//! - `PUT /kv/<key>` with a body → stores it; `GET /kv/<key>` → the value or 404;
//!   `DELETE /kv/<key>` → deletes it
//! - `GET /kv` → every key, sorted, one a line
//! - `GET /kv?many=a,b` → `a=<value>` / `b: none` lines (`batch.get-many`)

mod bindings {
    wit_bindgen::generate!({ world: "app", path: "wit", generate_all });
}

use bindings::wasi::config::store as config;
use bindings::wasi::keyvalue::{atomics, batch, store};
use std::io::Write as _;
use wasi::http::types::{Fields, IncomingBody, IncomingRequest, Method, OutgoingBody, OutgoingResponse, ResponseOutparam};

struct Component;
wasi::http::proxy::export!(Component);

fn respond(out: ResponseOutparam, status: u16, body: impl AsRef<[u8]>) {
    let headers = Fields::from_list(&[("content-type".to_string(), b"text/plain; charset=utf-8".to_vec())]).unwrap();
    let response = OutgoingResponse::new(headers);
    response.set_status_code(status).unwrap();
    let outgoing = response.body().unwrap();
    ResponseOutparam::set(out, Ok(response));
    let mut stream = outgoing.write().unwrap();
    stream.write_all(body.as_ref()).unwrap();
    stream.blocking_flush().unwrap();
    drop(stream);
    OutgoingBody::finish(outgoing, None).unwrap();
}

fn read_body(req: IncomingRequest) -> Vec<u8> {
    let mut data = Vec::new();
    let Ok(body) = req.consume() else { return data };
    {
        let Ok(stream) = body.stream() else { return data };
        while let Ok(chunk) = stream.blocking_read(64 * 1024) {
            data.extend_from_slice(&chunk);
        }
    }
    let _ = IncomingBody::finish(body);
    data
}

fn handle(req: IncomingRequest) -> Result<(u16, Vec<u8>), String> {
    let path_with_query = req.path_with_query().unwrap_or_else(|| "/".into());
    let (path, query) = path_with_query.split_once('?').unwrap_or((&path_with_query, ""));
    let path = path.trim_end_matches('/').to_string();
    let bucket = store::open("default").map_err(|e| format!("{e:?}"))?;
    let kv = |e: store::Error| format!("{e:?}");
    match (req.method(), path.as_str()) {
        (Method::Get, "") => {
            let greeting = config::get("greeting").map_err(|e| format!("{e:?}"))?.unwrap_or_else(|| "Hello".into());
            let hits = atomics::increment(&bucket, "hits", 1).map_err(kv)?;
            Ok((200, format!("{greeting} (hit {hits})\n").into_bytes()))
        }
        (Method::Get, "/kv") => {
            if let Some(many) = query.strip_prefix("many=") {
                let keys: Vec<String> = many.split(',').map(str::to_string).collect();
                let values = batch::get_many(&bucket, &keys).map_err(kv)?;
                let lines: String = keys
                    .iter()
                    .zip(values)
                    .map(|(key, value)| match value {
                        Some((_, v)) => format!("{key}={}\n", String::from_utf8_lossy(&v)),
                        None => format!("{key}: none\n"),
                    })
                    .collect();
                return Ok((200, lines.into_bytes()));
            }
            let mut keys = Vec::new();
            let mut cursor = None;
            loop {
                let page = bucket.list_keys(cursor).map_err(kv)?;
                keys.extend(page.keys);
                match page.cursor {
                    Some(next) => cursor = Some(next),
                    None => break,
                }
            }
            keys.sort();
            Ok((200, keys.iter().map(|k| format!("{k}\n")).collect::<String>().into_bytes()))
        }
        (method, p) if p.starts_with("/kv/") => {
            let key = &p["/kv/".len()..];
            match method {
                Method::Get => match bucket.get(key).map_err(kv)? {
                    Some(value) => Ok((200, value)),
                    None => Ok((404, b"not found\n".to_vec())),
                },
                Method::Put => {
                    bucket.set(key, &read_body(req)).map_err(kv)?;
                    Ok((200, b"stored\n".to_vec()))
                }
                Method::Delete => {
                    bucket.delete(key).map_err(kv)?;
                    Ok((200, b"deleted\n".to_vec()))
                }
                _ => Ok((405, b"method not allowed\n".to_vec())),
            }
        }
        _ => Ok((404, b"not found\n".to_vec())),
    }
}

impl wasi::exports::http::incoming_handler::Guest for Component {
    fn handle(req: IncomingRequest, out: ResponseOutparam) {
        match handle(req) {
            Ok((status, body)) => respond(out, status, body),
            Err(e) => respond(out, 500, format!("error: {e}\n")),
        }
    }
}
