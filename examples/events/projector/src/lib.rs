//! Subscribed to `orders.*`: for each `orders.created` event, adds the order to the totals in the
//! `default` key-value store — `orders:count` and `orders:total_cents` — with atomic increments.
//!
//! Delivery can repeat (JetStream redelivers a message whose handler failed or whose ack was lost),
//! so each order is counted once: `order:<id>` is incremented first, and only the delivery that
//! makes it 1 adds to the totals.

mod bindings {
    wit_bindgen::generate!({ world: "projector", path: "wit", generate_all });
}

use bindings::exports::wasi::messaging::incoming_handler::Guest;
use bindings::wasi::keyvalue::{atomics, store};
use bindings::wasi::messaging::types::{Error, Message};
use serde::Deserialize;

#[derive(Deserialize)]
struct Order {
    id: String,
    amount_cents: u64,
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
        let amount = i64::try_from(order.amount_cents).map_err(|_| Error::Other("amount too large".into()))?;
        let bucket = kv(store::open("default"))?;
        if kv(atomics::increment(&bucket, &format!("order:{}", order.id), 1))? != 1 {
            println!("order {} already counted", order.id);
            return Ok(());
        }
        let count = kv(atomics::increment(&bucket, "orders:count", 1))?;
        let total = kv(atomics::increment(&bucket, "orders:total_cents", amount))?;
        println!("order {} ({} cents): {count} orders, {total} cents in all", order.id, order.amount_cents);
        Ok(())
    }
}

bindings::export!(Projector with_types_in bindings);
