//! Answers 200 `content-type: application/json` with what it saw of the request and its environment:
//! `{"method":"GET","path_with_query":"/p?q","scheme":"http","authority":"host:port",
//!   "headers":[["name","value"],...],"env":[["KEY","value"],...]}`
//! (`scheme`/`authority` are `null` when absent). Prints `echo stdout line` to stdout and
//! `echo stderr line` to stderr.

use guest_common::{method_str, path_with_query, respond, scheme_str};
use wasi::http::types::{IncomingRequest, ResponseOutparam};

struct Guest;
wasi::http::proxy::export!(Guest);

impl wasi::exports::http::incoming_handler::Guest for Guest {
    fn handle(req: IncomingRequest, out: ResponseOutparam) {
        println!("echo stdout line");
        eprintln!("echo stderr line");

        let mut json = String::from("{");
        json.push_str(&format!("\"method\":{}", s(&method_str(&req.method()))));
        json.push_str(&format!(",\"path_with_query\":{}", s(&path_with_query(&req))));
        json.push_str(&format!(",\"scheme\":{}", opt(req.scheme().map(|x| scheme_str(&x)))));
        json.push_str(&format!(",\"authority\":{}", opt(req.authority())));
        let headers = req.headers().entries();
        json.push_str(",\"headers\":");
        pairs(&mut json, headers.iter().map(|(k, v)| (k.clone(), String::from_utf8_lossy(v).into_owned())));
        json.push_str(",\"env\":");
        pairs(&mut json, std::env::vars());
        json.push('}');

        respond(out, 200, &[("content-type", "application/json")], json.as_bytes());
    }
}

fn pairs(json: &mut String, items: impl Iterator<Item = (String, String)>) {
    json.push('[');
    for (i, (k, v)) in items.enumerate() {
        if i > 0 {
            json.push(',');
        }
        json.push_str(&format!("[{},{}]", s(&k), s(&v)));
    }
    json.push(']');
}

fn opt(v: Option<String>) -> String {
    v.map(|v| s(&v)).unwrap_or_else(|| "null".into())
}

/// A JSON string literal.
fn s(v: &str) -> String {
    let mut out = String::with_capacity(v.len() + 2);
    out.push('"');
    for c in v.chars() {
        match c {
            '"' => out.push_str("\\\""),
            '\\' => out.push_str("\\\\"),
            '\n' => out.push_str("\\n"),
            '\r' => out.push_str("\\r"),
            '\t' => out.push_str("\\t"),
            c if (c as u32) < 0x20 => out.push_str(&format!("\\u{:04x}", c as u32)),
            c => out.push(c),
        }
    }
    out.push('"');
    out
}
