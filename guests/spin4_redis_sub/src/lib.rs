//! A Spin 4 Redis-triggered component as users write it with spin-sdk 7: `#[spin_sdk::redis_subscriber]`
//! on an `async fn`, which exports `spin:redis/inbound-redis@3.0.0` (`handle-message: async func`).
//!
//! On each message it prints `spin4_redis_sub got: <payload>` to stdout, then in the `default`
//! key-value store (`spin_sdk::key_value`, `spin:key-value/key-value@3.0.0`) sets `last` to the
//! payload and `seen:<payload>` to `1`.
//!
//! Special payloads, after the above: `fail` → returns an error (the SDK's macro prints it to stderr,
//! `spin4_redis_sub was told to fail`, and returns `error::other("spin4_redis_sub was told to
//! fail")` to the host); `hang` → loops forever (for the deadline).

// spin-sdk 7 under the workspace key `spin-sdk-7`; its macros expand to `::spin_sdk::…` paths.
extern crate spin_sdk_7 as spin_sdk;

use spin_sdk::key_value::Store;

#[spin_sdk::redis_subscriber]
async fn on_message(message: Vec<u8>) -> anyhow::Result<()> {
    let text = String::from_utf8_lossy(&message).into_owned();
    println!("spin4_redis_sub got: {text}");
    let store = Store::open_default().await?;
    store.set("last", &message).await?;
    store.set(format!("seen:{text}"), b"1").await?;
    match text.as_str() {
        "fail" => anyhow::bail!("spin4_redis_sub was told to fail"),
        "hang" => {
            let mut n: u64 = 0;
            loop {
                n = std::hint::black_box(n.wrapping_add(1));
            }
        }
        _ => Ok(()),
    }
}
