//! A Redis subscriber: each message on the channel is printed and recorded in the `default`
//! key-value store.

use bytes::Bytes;
use spin_sdk::key_value::Store;
use spin_sdk::redis_component;

#[redis_component]
fn on_message(message: Bytes) -> anyhow::Result<()> {
    println!("{{project-name}} got: {}", String::from_utf8_lossy(&message));
    let store = Store::open_default()?;
    store.set("last", &message)?;
    let count = match store.get("count")? {
        Some(bytes) => String::from_utf8(bytes)?.parse::<u64>()? + 1,
        None => 1,
    };
    store.set("count", count.to_string().as_bytes())?;
    Ok(())
}
