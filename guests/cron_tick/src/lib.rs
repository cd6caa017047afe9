//! A cron-triggered component for Spin's cron trigger plugin interface
//! (`fermyon:spin-cron@2.0.0`, world-level export `handle-cron-event`), through plain
//! `wit-bindgen`, counting its runs in the `default` key-value store (`wasi:keyvalue@0.2.0-draft2`).
//!
//! Each run:
//! 1. increments `running`; if that makes it more than 1, another run of this component is still
//!    going: increments `overlaps`;
//! 2. prints `cron_tick run at <metadata.timestamp>`;
//! 3. sleeps `CRON_TICK_SLEEP_MS` milliseconds (environment, default 0) — longer than the interval
//!    to test that runs never overlap;
//! 4. sets `last_timestamp` to the tick's timestamp and `ts:<timestamp>` to `1` (so the test can
//!    list them), increments `ticks`, decrements `running`.
//!
//! `CRON_TICK_FAIL=1` → returns `Err(other("cron_tick was told to fail"))` after counting.

mod bindings {
    wit_bindgen::generate!({ world: "guest", path: "wit", generate_all });
}

use bindings::fermyon::spin_cron::cron_types::{Error, Metadata};
use bindings::wasi::keyvalue::{atomics, store};

struct Tick;

fn kv<T, E: std::fmt::Debug>(what: &str, r: Result<T, E>) -> Result<T, Error> {
    r.map_err(|e| Error::Other(format!("{what}: {e:?}")))
}

impl bindings::Guest for Tick {
    fn handle_cron_event(metadata: Metadata) -> Result<(), Error> {
        let bucket = kv("open", store::open("default"))?;
        let running = kv("increment running", atomics::increment(&bucket, "running", 1))?;
        if running > 1 {
            kv("increment overlaps", atomics::increment(&bucket, "overlaps", 1))?;
        }
        println!("cron_tick run at {}", metadata.timestamp);
        let sleep_ms: u64 = std::env::var("CRON_TICK_SLEEP_MS").ok().and_then(|v| v.parse().ok()).unwrap_or(0);
        if sleep_ms > 0 {
            std::thread::sleep(std::time::Duration::from_millis(sleep_ms));
        }
        let ts = metadata.timestamp.to_string();
        kv("set last_timestamp", bucket.set("last_timestamp", ts.as_bytes()))?;
        kv("set ts", bucket.set(&format!("ts:{ts}"), b"1"))?;
        kv("increment ticks", atomics::increment(&bucket, "ticks", 1))?;
        kv("decrement running", atomics::increment(&bucket, "running", -1))?;
        if std::env::var("CRON_TICK_FAIL").is_ok_and(|v| v == "1") {
            return Err(Error::Other("cron_tick was told to fail".into()));
        }
        Ok(())
    }
}

bindings::export!(Tick with_types_in bindings);
