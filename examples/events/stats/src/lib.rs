//! `GET /stats` → `{"orders": N, "total_cents": T}` from the `default` key-value store's
//! `orders:totals` record, as the projector left it (0 and 0 before the first order).

use spin_sdk::http::{IntoResponse, Request, Response};
use spin_sdk::http_component;
use spin_sdk::key_value::Store;

#[derive(Default, serde::Deserialize)]
struct Totals {
    count: u64,
    total_cents: u64,
}

#[http_component]
fn handle(_req: Request) -> anyhow::Result<impl IntoResponse> {
    let store = Store::open_default()?;
    let totals: Totals = match store.get("orders:totals")? {
        Some(bytes) => serde_json::from_slice(&bytes)?,
        None => Totals::default(),
    };
    let body = format!("{{\"orders\":{},\"total_cents\":{}}}", totals.count, totals.total_cents);
    Ok(Response::builder().status(200).header("content-type", "application/json").body(body).build())
}
