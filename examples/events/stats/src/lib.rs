//! `GET /stats` → `{"orders": N, "total_cents": T}` from the `default` key-value store, as the
//! projector left it (0 and 0 before the first order).

use spin_sdk::http::{IntoResponse, Request, Response};
use spin_sdk::http_component;
use spin_sdk::key_value::Store;

fn number(store: &Store, key: &str) -> anyhow::Result<u64> {
    Ok(match store.get(key)? {
        Some(bytes) => std::str::from_utf8(&bytes)?.trim().parse()?,
        None => 0,
    })
}

#[http_component]
fn handle(_req: Request) -> anyhow::Result<impl IntoResponse> {
    let store = Store::open_default()?;
    let body = format!(
        "{{\"orders\":{},\"total_cents\":{}}}",
        number(&store, "orders:count")?,
        number(&store, "orders:total_cents")?
    );
    Ok(Response::builder().status(200).header("content-type", "application/json").body(body).build())
}
