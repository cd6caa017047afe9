//! A Redis-triggered component as Spin apps write it: spin-sdk 5.x `#[redis_component]`, which
//! exports `fermyon:spin/inbound-redis` (the unversioned Spin 2 package).
//!
//! On each message it prints `redis_sub got: <payload>` to stdout, then in the `default` key-value
//! store:
//! - sets `last` to the payload (spin-sdk key-value, `fermyon:spin/key-value@2.0.0`),
//! - increments `count` and `seen:<payload>` by one (`wasi:keyvalue/atomics@0.2.0-draft2`, atomic
//!   even when messages are handled concurrently).
//!
//! Special payloads: `fail` → prints `redis_sub failing` and returns an error (after counting);
//! `hang` → loops forever (for the deadline); `sleep:<ms>` → sleeps that long, then sets
//! `slept:<ms>` = `done` (for graceful shutdown).

use bytes::Bytes;
use spin_sdk::key_value::Store;
use spin_sdk::redis_component;
use spin_sdk::wit::wasi::keyvalue::{atomics, store as wkv};

#[redis_component]
fn on_message(message: Bytes) -> anyhow::Result<()> {
    let text = String::from_utf8_lossy(&message).into_owned();
    println!("redis_sub got: {text}");
    let store = Store::open_default()?;
    store.set("last", &message)?;
    let bucket = wkv::open("default").map_err(|e| anyhow::anyhow!("open: {e:?}"))?;
    atomics::increment(&bucket, "count", 1).map_err(|e| anyhow::anyhow!("increment: {e:?}"))?;
    atomics::increment(&bucket, &format!("seen:{text}"), 1).map_err(|e| anyhow::anyhow!("increment: {e:?}"))?;
    match text.as_str() {
        "fail" => {
            println!("redis_sub failing");
            anyhow::bail!("redis_sub was told to fail")
        }
        "hang" => {
            let mut n: u64 = 0;
            loop {
                n = std::hint::black_box(n.wrapping_add(1));
            }
        }
        _ => {}
    }
    if let Some(ms) = text.strip_prefix("sleep:").and_then(|ms| ms.parse::<u64>().ok()) {
        std::thread::sleep(std::time::Duration::from_millis(ms));
        store.set(&format!("slept:{ms}"), b"done")?;
    }
    Ok(())
}
