//! The capabilities `kiln` offers guests. Adding one: its crate, and one line here.

use kiln_app::Capability;

pub(crate) fn all(messaging: &kiln_cap_messaging::Messaging) -> Vec<Box<dyn Capability>> {
    vec![
        Box::new(messaging.clone()),
        Box::new(kiln_cap_variables::Variables),
        Box::new(kiln_cap_key_value::KeyValue),
        Box::new(kiln_cap_sqlite::Sqlite),
        Box::new(kiln_cap_redis::OutboundRedis),
    ]
}

/// The capabilities of `kiln serve`. Messaging is left out: its in-process bus would join every
/// app on the host into one message space.
pub(crate) fn for_serve() -> Vec<Box<dyn Capability>> {
    vec![
        Box::new(kiln_cap_variables::Variables),
        Box::new(kiln_cap_key_value::KeyValue),
        Box::new(kiln_cap_sqlite::Sqlite),
        Box::new(kiln_cap_redis::OutboundRedis),
    ]
}
