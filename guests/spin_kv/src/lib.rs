//! Key-value through `spin_sdk::key_value` (`fermyon:spin/key-value@2.0.0`), as a Spin app uses it.
//!
//! `?op=<op>&store=<label, default "default">&key=<key>&value=<value>`:
//! - `open` → `opened`
//! - `set` → `ok` (the value is `value`, or `size=N` bytes of `x`, or the request body if neither)
//! - `get` → the value (raw bytes), or 404 `none`
//! - `delete` → `ok`; `exists` → `true` / `false`
//! - `keys` → the store's keys, sorted, one a line
//!
//! Errors: 500 `error: <Debug of spin_sdk::key_value::Error without the type>`, e.g.
//! `error: AccessDenied`, `error: NoSuchStore`, `error: Other("…")`. 400 for a bad request.

use spin_common::{error, ok, param, params, status};
use spin_sdk::http::{Request, Response};
use spin_sdk::http_component;
use spin_sdk::key_value::Store;

#[http_component]
fn handle(req: Request) -> Response {
    let params = params(&req);
    let op = param(&params, "op").unwrap_or_default();
    let label = param(&params, "store").unwrap_or_else(|| "default".into());
    let key = param(&params, "key").unwrap_or_default();
    let store = match Store::open(&label) {
        Ok(store) => store,
        Err(e) => return error(&e),
    };
    let result = match op.as_str() {
        "open" => Ok(ok("opened")),
        "set" => {
            let value = match (param(&params, "value"), param(&params, "size")) {
                (Some(v), _) => v.into_bytes(),
                (None, Some(n)) => match n.parse::<usize>() {
                    Ok(n) => vec![b'x'; n],
                    Err(_) => return status(400, "bad size"),
                },
                (None, None) => req.body().to_vec(),
            };
            store.set(&key, &value).map(|()| ok("ok"))
        }
        "get" => store.get(&key).map(|v| match v {
            Some(v) => ok(v),
            None => status(404, "none"),
        }),
        "delete" => store.delete(&key).map(|()| ok("ok")),
        "exists" => store.exists(&key).map(|e| ok(e.to_string())),
        "keys" => store.get_keys().map(|mut keys| {
            keys.sort();
            ok(keys.join("\n"))
        }),
        other => return status(400, format!("unknown op {other:?}")),
    };
    result.unwrap_or_else(|e| error(&e))
}
