//! A cron-triggered component: counts its runs in the `default` key-value store and prints each.

mod bindings {
    wit_bindgen::generate!({ world: "app", path: "wit", generate_all });
}

use bindings::fermyon::spin_cron::cron_types::{Error, Metadata};
use bindings::wasi::keyvalue::{atomics, store};

struct Component;

impl bindings::Guest for Component {
    fn handle_cron_event(metadata: Metadata) -> Result<(), Error> {
        let bucket = store::open("default").map_err(|e| Error::Other(format!("open the store: {e:?}")))?;
        let runs = atomics::increment(&bucket, "runs", 1).map_err(|e| Error::Other(format!("count the run: {e:?}")))?;
        println!("{{project-name}}: run {runs} at {}", metadata.timestamp);
        Ok(())
    }
}

bindings::export!(Component with_types_in bindings);
