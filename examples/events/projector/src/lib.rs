//! Subscribed to `orders.*`: for each `orders.created` event, adds the order to the totals in the
//! `default` key-value store: one record, `orders:totals`, `{"count", "total_cents", "recent"}`.
//!
//! Delivery can repeat (a durable consumer redelivers a message whose handler failed or whose ack
//! was lost), so each order must be counted exactly once. The totals and the ids of the last
//! [`REMEMBERED`] orders counted are one record, updated by compare-and-swap: a delivery either
//! adds its order and its id together or changes nothing, and a redelivery finds its id there.
//! (Marking the order first and counting it second would lose it if the handler failed between
//! the two; counting first would count it twice.)

mod bindings {
    wit_bindgen::generate!({ world: "projector", path: "wit", generate_all });
}

use bindings::exports::wasi::messaging::incoming_handler::Guest;
use bindings::wasi::keyvalue::atomics::{self, Cas, CasError};
use bindings::wasi::keyvalue::store;
use bindings::wasi::messaging::types::{Error, Message};
use serde::{Deserialize, Serialize};
use std::collections::VecDeque;

/// How many counted order ids the totals remember (a redelivery comes long before that many more
/// orders).
const REMEMBERED: usize = 1000;
/// Compare-and-swap attempts before the handler fails (and the event is redelivered).
const ATTEMPTS: usize = 100;

#[derive(Deserialize)]
struct Order {
    id: String,
    amount_cents: u64,
}

#[derive(Default, Deserialize, Serialize)]
struct Totals {
    count: u64,
    total_cents: u64,
    recent: VecDeque<String>,
}

struct Projector;

fn kv<T>(r: Result<T, store::Error>) -> Result<T, Error> {
    r.map_err(|e| Error::Other(format!("key-value: {e:?}")))
}

impl Guest for Projector {
    fn handle(message: Message) -> Result<(), Error> {
        let topic = message.topic().unwrap_or_default();
        if topic != "orders.created" {
            println!("ignoring an event on {topic}");
            return Ok(());
        }
        let order: Order = serde_json::from_slice(&message.data()).map_err(|e| Error::Other(format!("bad event: {e}")))?;
        let bucket = kv(store::open("default"))?;
        for _ in 0..ATTEMPTS {
            let cas = kv(Cas::new(&bucket, "orders:totals"))?;
            let mut totals: Totals = match kv(cas.current())? {
                Some(bytes) => serde_json::from_slice(&bytes).map_err(|e| Error::Other(format!("orders:totals is damaged: {e}")))?,
                None => Totals::default(),
            };
            if totals.recent.contains(&order.id) {
                println!("order {} already counted", order.id);
                return Ok(());
            }
            totals.count += 1;
            totals.total_cents += order.amount_cents;
            totals.recent.push_back(order.id.clone());
            if totals.recent.len() > REMEMBERED {
                totals.recent.pop_front();
            }
            let record = serde_json::to_vec(&totals).map_err(|e| Error::Other(e.to_string()))?;
            match atomics::swap(cas, &record) {
                Ok(()) => {
                    println!("order {} ({} cents): {} orders, {} cents in all", order.id, order.amount_cents, totals.count, totals.total_cents);
                    return Ok(());
                }
                // Another event changed the totals since we read them: read again.
                Err(CasError::CasFailed(_)) => continue,
                Err(CasError::StoreError(e)) => return Err(Error::Other(format!("key-value: {e:?}"))),
            }
        }
        Err(Error::Other(format!("order {}: the totals kept changing; try again", order.id)))
    }
}

bindings::export!(Projector with_types_in bindings);
