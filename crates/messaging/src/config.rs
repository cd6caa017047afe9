//! Which broker an app uses: the runtime config's `[messaging]` section, else the manifest's
//! `[application.trigger.nats] url`, else the in-process bus.

use anyhow::{Context, Result, bail};
use std::path::Path;

/// The broker an app talks to.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub enum BrokerConfig {
    /// The bus inside this kiln process.
    InProcess,
    /// A NATS server (or cluster: comma-separated URLs).
    Nats { url: String },
    /// A Redis server: Pub/Sub and Streams.
    Redis { url: String },
}

impl BrokerConfig {
    /// The runtime config's choice if it makes one, else the manifest's URL (already rendered),
    /// else in-process.
    pub fn choose(runtime: Option<&MessagingRuntimeConfig>, manifest_url: Option<&str>) -> BrokerConfig {
        if let Some(broker) = runtime.and_then(|r| r.broker.clone()) {
            return broker;
        }
        match manifest_url {
            Some(url) if !url.trim().is_empty() => BrokerConfig::Nats { url: url.trim().to_string() },
            _ => BrokerConfig::InProcess,
        }
    }
}

/// The runtime config's `[messaging]` section:
///
/// ```toml
/// [messaging]
/// type = "nats"                 # or "redis", or "in-process"
/// url = "nats://127.0.0.1:4222" # required for "nats" ("redis://127.0.0.1:6379" for "redis")
/// max_deliver = 5               # durable deliveries before dead-lettering (optional)
/// ```
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct MessagingRuntimeConfig {
    pub broker: Option<BrokerConfig>,
    pub max_deliver: Option<u32>,
}

impl MessagingRuntimeConfig {
    /// Reads the `[messaging]` section of the runtime config file at `path` (other sections are
    /// ignored). `None` when the file has no such section.
    pub fn load(path: &Path) -> Result<Option<MessagingRuntimeConfig>> {
        let text = std::fs::read_to_string(path).with_context(|| format!("cannot read runtime config file `{}`", path.display()))?;
        MessagingRuntimeConfig::parse(&text).with_context(|| format!("runtime config file `{}`", path.display()))
    }

    /// Parses the `[messaging]` section of a runtime config file's text.
    pub fn parse(text: &str) -> Result<Option<MessagingRuntimeConfig>> {
        let doc: toml::Table = toml::from_str(text).context("invalid TOML")?;
        let Some(section) = doc.get("messaging") else {
            return Ok(None);
        };
        let Some(table) = section.as_table() else {
            bail!("`messaging` must be a table: [messaging]");
        };
        MessagingRuntimeConfig::from_table(table).map(Some)
    }

    /// Validates an already-parsed `[messaging]` table.
    pub fn from_table(table: &toml::Table) -> Result<MessagingRuntimeConfig> {
        for key in table.keys() {
            if !["type", "url", "max_deliver"].contains(&key.as_str()) {
                bail!("[messaging]: unknown key `{key}` (keys: type, url, max_deliver)");
            }
        }
        let ty = match table.get("type") {
            Some(v) => v.as_str().context("[messaging] type must be a string: \"nats\", \"redis\" or \"in-process\"")?,
            None => bail!("[messaging] needs `type = \"nats\"`, `type = \"redis\"` or `type = \"in-process\"`"),
        };
        let url = match table.get("url") {
            Some(v) => Some(v.as_str().context("[messaging] url must be a string such as \"nats://127.0.0.1:4222\" or \"redis://127.0.0.1:6379\"")?.to_string()),
            None => None,
        };
        let broker = match ty {
            "nats" => {
                let url = url.filter(|u| !u.trim().is_empty()).context("[messaging] type = \"nats\" needs `url = \"nats://host:port\"`")?;
                BrokerConfig::Nats { url }
            }
            "redis" => {
                let url = url.filter(|u| !u.trim().is_empty()).context("[messaging] type = \"redis\" needs `url = \"redis://host:port\"`")?;
                if !(url.starts_with("redis://") || url.starts_with("rediss://") || url.starts_with("redis+unix://") || url.starts_with("unix://")) {
                    bail!("[messaging] type = \"redis\": url `{url}` must start with redis:// (or rediss:// for TLS)");
                }
                BrokerConfig::Redis { url }
            }
            "in-process" | "in_process" | "kiln" => {
                if url.is_some() {
                    bail!("[messaging] type = \"{ty}\" takes no url");
                }
                BrokerConfig::InProcess
            }
            other => bail!("[messaging]: unknown type \"{other}\" (types: \"nats\", \"redis\", \"in-process\")"),
        };
        let max_deliver = match table.get("max_deliver") {
            Some(v) => {
                let n = v.as_integer().context("[messaging] max_deliver must be a number")?;
                Some(u32::try_from(n).ok().filter(|n| *n >= 1).context("[messaging] max_deliver must be at least 1")?)
            }
            None => None,
        };
        Ok(MessagingRuntimeConfig { broker: Some(broker), max_deliver })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn runtime_config_section() {
        assert_eq!(MessagingRuntimeConfig::parse("[key_value_store.default]\ntype = \"spin\"\n").unwrap(), None);
        let c = MessagingRuntimeConfig::parse("[messaging]\ntype = \"nats\"\nurl = \"nats://127.0.0.1:4222\"\nmax_deliver = 3\n").unwrap().unwrap();
        assert_eq!(c.broker, Some(BrokerConfig::Nats { url: "nats://127.0.0.1:4222".into() }));
        assert_eq!(c.max_deliver, Some(3));
        let c = MessagingRuntimeConfig::parse("[messaging]\ntype = \"redis\"\nurl = \"redis://127.0.0.1:6379\"\n").unwrap().unwrap();
        assert_eq!(c.broker, Some(BrokerConfig::Redis { url: "redis://127.0.0.1:6379".into() }));
        let c = MessagingRuntimeConfig::parse("[messaging]\ntype = \"in-process\"\n").unwrap().unwrap();
        assert_eq!(c.broker, Some(BrokerConfig::InProcess));
        for bad in [
            "[messaging]\ntype = \"nats\"\n",
            "[messaging]\ntype = \"kafka\"\n",
            "[messaging]\ntype = \"redis\"\n",
            "[messaging]\ntype = \"redis\"\nurl = \"nats://x:4222\"\n",
            "[messaging]\nurl = \"nats://x\"\n",
            "[messaging]\ntype = \"nats\"\nurl = \"nats://x\"\nmax_deliver = 0\n",
            "[messaging]\ntype = \"nats\"\nurl = \"nats://x\"\nextra = 1\n",
            "messaging = 3\n",
        ] {
            assert!(MessagingRuntimeConfig::parse(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn runtime_config_wins_over_the_manifest() {
        let nats = MessagingRuntimeConfig { broker: Some(BrokerConfig::Nats { url: "nats://a:1".into() }), max_deliver: None };
        let local = MessagingRuntimeConfig { broker: Some(BrokerConfig::InProcess), max_deliver: None };
        assert_eq!(BrokerConfig::choose(Some(&nats), Some("nats://b:2")), BrokerConfig::Nats { url: "nats://a:1".into() });
        assert_eq!(BrokerConfig::choose(Some(&local), Some("nats://b:2")), BrokerConfig::InProcess);
        assert_eq!(BrokerConfig::choose(None, Some("nats://b:2")), BrokerConfig::Nats { url: "nats://b:2".into() });
        assert_eq!(BrokerConfig::choose(None, None), BrokerConfig::InProcess);
        assert_eq!(BrokerConfig::choose(Some(&MessagingRuntimeConfig::default()), None), BrokerConfig::InProcess);
    }
}
