//! Outbound MQTT through `spin_sdk::mqtt` (`fermyon:spin/mqtt@2.0.0`).
//!
//! `?addr=<mqtt://host:port?client_id=…>&user=<u>&pass=<p>&keep=<secs, default 30>&op=<op>…`:
//! - `open` → `opened`
//! - `publish&topic=t&value=v&qos=<0|1|2>[&count=n]` → `ok` (n messages `v`, `v` … on one connection)
//!
//! Errors: 500 `error: <Debug without the type>`: `error: InvalidAddress`,
//! `error: ConnectionFailed("…")`, `error: TooManyConnections`, `error: Other("…")`.

use spin_common::{error, ok, param, params, status};
use spin_sdk::http::{Request, Response};
use spin_sdk::http_component;
use spin_sdk::mqtt::{Connection, Qos};

#[http_component]
fn handle(req: Request) -> Response {
    let params = params(&req);
    let Some(addr) = param(&params, "addr") else { return status(400, "missing addr") };
    let get = |name: &str| param(&params, name).unwrap_or_default();
    let keep = param(&params, "keep").and_then(|k| k.parse().ok()).unwrap_or(30);
    let conn = match Connection::open(&addr, &get("user"), &get("pass"), keep) {
        Ok(c) => c,
        Err(e) => return error(&e),
    };
    match get("op").as_str() {
        "open" => ok("opened"),
        "publish" => {
            let qos = match get("qos").as_str() {
                "0" => Qos::AtMostOnce,
                "1" => Qos::AtLeastOnce,
                "2" => Qos::ExactlyOnce,
                other => return status(400, format!("bad qos {other:?}")),
            };
            let count = param(&params, "count").and_then(|n| n.parse().ok()).unwrap_or(1);
            for _ in 0..count {
                if let Err(e) = conn.publish(&get("topic"), &get("value").into_bytes(), qos) {
                    return error(&e);
                }
            }
            ok("ok")
        }
        other => status(400, format!("unknown op {other:?}")),
    }
}
