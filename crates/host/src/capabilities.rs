//! The capabilities `kiln` offers guests (`kiln up` and `kiln serve` alike). Adding one: its crate,
//! and one line here.

use kiln_app::Capability;

/// The messaging capability is passed in: the NATS trigger's settings come from its runtime config.
pub fn all(messaging: &kiln_cap_messaging::Messaging) -> Vec<Box<dyn Capability>> {
    vec![
        Box::new(messaging.clone()),
        Box::new(kiln_cap_variables::Variables),
        Box::new(kiln_cap_key_value::KeyValue),
        Box::new(kiln_cap_sqlite::Sqlite),
        Box::new(kiln_cap_redis::OutboundRedis),
        Box::new(kiln_cap_mqtt::OutboundMqtt),
        Box::new(kiln_cap_postgres::OutboundPg),
        Box::new(kiln_cap_mysql::OutboundMysql),
        Box::new(kiln_cap_llm::Llm),
        Box::new(kiln_cap_logging::Logging),
        // wasmCloud's link names select the key-value stores and brokers above.
        Box::new(kiln_cap_bus::Bus),
    ]
}
