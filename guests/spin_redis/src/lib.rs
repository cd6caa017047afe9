//! Outbound Redis through `spin_sdk::redis` (`fermyon:spin/redis@2.0.0`).
//!
//! `?addr=<redis://host:port>&op=<op>…`:
//! - `open` → `opened`
//! - `set&key=k&value=v` → `ok`; `get&key=k` → the value, or 404 `none`
//! - `incr&key=k` → the new value; `del&keys=a,b` → how many were deleted
//! - `sadd&key=k&values=a,b` / `srem&key=k&values=a` → how many were added / removed
//! - `smembers&key=k` → the members, sorted, one a line
//! - `publish&channel=c&value=v` → `ok`
//! - `execute&cmd=CMD&a=<arg>&a=…` (an arg `i:<n>` is an int64, anything else binary) → one line per
//!   result: `Nil`, `Status("OK")`, `Int64(1)`, `Binary("…")` (lossy UTF-8)
//!
//! Errors: 500 `error: <Debug without the type>`: `error: InvalidAddress`, `error: TypeError`,
//! `error: TooManyConnections`, `error: Other("…")`.

use spin_common::{all, error, list, ok, param, params, status};
use spin_sdk::http::{Request, Response};
use spin_sdk::http_component;
use spin_sdk::redis::{Connection, RedisParameter, RedisResult};

#[http_component]
fn handle(req: Request) -> Response {
    let params = params(&req);
    let Some(addr) = param(&params, "addr") else { return status(400, "missing addr") };
    let op = param(&params, "op").unwrap_or_default();
    let key = param(&params, "key").unwrap_or_default();
    let value = param(&params, "value").unwrap_or_default();
    let conn = match Connection::open(&addr) {
        Ok(c) => c,
        Err(e) => return error(&e),
    };
    let result = match op.as_str() {
        "open" => Ok(ok("opened")),
        "set" => conn.set(&key, &value.into_bytes()).map(|()| ok("ok")),
        "get" => conn.get(&key).map(|v| match v {
            Some(v) => ok(v),
            None => status(404, "none"),
        }),
        "incr" => conn.incr(&key).map(|n| ok(n.to_string())),
        "del" => conn.del(&list(&params, "keys")).map(|n| ok(n.to_string())),
        "sadd" => conn.sadd(&key, &list(&params, "values")).map(|n| ok(n.to_string())),
        "srem" => conn.srem(&key, &list(&params, "values")).map(|n| ok(n.to_string())),
        "smembers" => conn.smembers(&key).map(|mut m| {
            m.sort();
            ok(m.join("\n"))
        }),
        "publish" => conn.publish(&param(&params, "channel").unwrap_or_default(), &value.into_bytes()).map(|()| ok("ok")),
        "execute" => {
            let cmd = param(&params, "cmd").unwrap_or_default();
            let args: Vec<RedisParameter> = all(&params, "a")
                .into_iter()
                .map(|a| match a.strip_prefix("i:").and_then(|n| n.parse::<i64>().ok()) {
                    Some(n) => RedisParameter::Int64(n),
                    None => RedisParameter::Binary(a.into_bytes()),
                })
                .collect();
            conn.execute(&cmd, &args).map(|results| {
                let lines: Vec<String> = results
                    .iter()
                    .map(|r| match r {
                        RedisResult::Nil => "Nil".to_string(),
                        RedisResult::Status(s) => format!("Status({s:?})"),
                        RedisResult::Int64(n) => format!("Int64({n})"),
                        RedisResult::Binary(b) => format!("Binary({:?})", String::from_utf8_lossy(b)),
                    })
                    .collect();
                ok(lines.join("\n"))
            })
        }
        other => return status(400, format!("unknown op {other:?}")),
    };
    result.unwrap_or_else(|e| error(&e))
}
