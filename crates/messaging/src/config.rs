//! Which broker an app uses: the runtime config's `[messaging]` section (parsed and checked by
//! `kiln-runtime-config`), else the manifest's `[application.trigger.nats] url`, else the
//! in-process bus.

pub use kiln_runtime_config::{BrokerConfig, MessagingConfig};

/// The runtime config's choice if it makes one, else the manifest's URL (already rendered), else
/// in-process.
pub fn choose_broker(runtime: Option<&MessagingConfig>, manifest_url: Option<&str>) -> BrokerConfig {
    if let Some(runtime) = runtime {
        return runtime.broker.clone();
    }
    match manifest_url {
        Some(url) if !url.trim().is_empty() => BrokerConfig::Nats { url: url.trim().to_string() },
        _ => BrokerConfig::InProcess,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn runtime_config_wins_over_the_manifest() {
        let nats = MessagingConfig { broker: BrokerConfig::Nats { url: "nats://a:1".into() }, max_deliver: None };
        let local = MessagingConfig { broker: BrokerConfig::InProcess, max_deliver: None };
        assert_eq!(choose_broker(Some(&nats), Some("nats://b:2")), BrokerConfig::Nats { url: "nats://a:1".into() });
        assert_eq!(choose_broker(Some(&local), Some("nats://b:2")), BrokerConfig::InProcess);
        assert_eq!(choose_broker(None, Some(" nats://b:2 ")), BrokerConfig::Nats { url: "nats://b:2".into() });
        assert_eq!(choose_broker(None, Some("")), BrokerConfig::InProcess);
        assert_eq!(choose_broker(None, None), BrokerConfig::InProcess);
    }
}
