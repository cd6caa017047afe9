//! Variables through `spin_sdk::variables` (`fermyon:spin/variables@2.0.0`).
//!
//! `?name=<name>` → 200 the value, or 500 `error: <Debug of the error without the type>`:
//! `error: Undefined("…")`, `error: InvalidName("…")`, `error: Provider("…")`, `error: Other("…")`.
//! `?names=a,b,c` → one line per name: `a=<value>` or `a: error: <variant>` (always 200).

use spin_common::{error, list, ok, param, params, status, variant};
use spin_sdk::http::{Request, Response};
use spin_sdk::http_component;
use spin_sdk::variables;

#[http_component]
fn handle(req: Request) -> Response {
    let params = params(&req);
    if let Some(name) = param(&params, "name") {
        return match variables::get(&name) {
            Ok(value) => ok(value),
            Err(e) => error(&e),
        };
    }
    let names = list(&params, "names");
    if names.is_empty() {
        return status(400, "missing name");
    }
    let lines: Vec<String> = names
        .iter()
        .map(|name| match variables::get(name) {
            Ok(value) => format!("{name}={value}"),
            Err(e) => format!("{name}: error: {}", variant(&e)),
        })
        .collect();
    ok(lines.join("\n"))
}
