//! Many `kiln serve` hosts serving the same apps, with Redis holding the truth: no cluster of Kiln's
//! own, no leader.
//!
//! An app deployed by reference (`PUT /v1/apps/<name>?reference=…`) on any host is written to the
//! Redis hash `kiln:apps` (name → [`Desired`]) and announced on the channel `kiln:apps`; removing it
//! deletes the entry and announces that. Every host subscribes to the channel and, at start, on
//! every announcement and every [`RESYNC`] as a safety net, makes its own apps match the hash:
//! it pulls and deploys what is new or changed (by revision) and removes what it had from the hash
//! but is gone from it. Apps deployed from an uploaded archive stay on the host they were sent to.

use crate::platform::Platform;
use anyhow::{Context, Result};
use futures::StreamExt;
use serde::{Deserialize, Serialize};
use std::collections::HashMap;
use std::sync::{Arc, Weak};
use std::time::Duration;

/// The hash of desired apps, and the channel that announces changes to it.
pub const APPS_KEY: &str = "kiln:apps";
/// A host reconciles at least this often, even when it missed an announcement.
pub const RESYNC: Duration = Duration::from_secs(30);

/// An app as the hosts of a cluster should serve it.
#[derive(Clone, Debug, Serialize, Deserialize, PartialEq, Eq)]
pub struct Desired {
    /// The deploy's query string (reference, insecure, route prefix and limits).
    pub query: String,
    /// The runtime config sent with the deploy, if any.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub runtime_config: Option<String>,
    /// New at every deploy: a tag that moved to a new digest is deployed again.
    pub revision: String,
}

/// The shared Redis of a cluster of hosts.
#[derive(Clone)]
pub struct Cluster {
    client: redis::Client,
    shown: String,
}

impl Cluster {
    /// `redis://host:port` (as the Redis trigger takes it). Checked now; connections are made as
    /// needed.
    pub fn new(url: &str) -> Result<Cluster> {
        let shown = url.rsplit('@').next().unwrap_or(url).to_string();
        let client = redis::Client::open(url).with_context(|| format!("--cluster-redis `{shown}` is not a Redis address"))?;
        Ok(Cluster { client, shown })
    }

    /// Records `name` as `desired`, and tells the other hosts.
    pub async fn publish_deployed(&self, name: &str, desired: &Desired) -> Result<()> {
        let mut connection = self.client.get_multiplexed_async_connection().await.with_context(|| format!("cluster Redis {}", self.shown))?;
        let json = serde_json::to_string(desired)?;
        redis::pipe().hset(APPS_KEY, name, json).publish(APPS_KEY, name).query_async::<()>(&mut connection).await?;
        Ok(())
    }

    /// Removes `name` from the desired apps, and tells the other hosts.
    pub async fn publish_removed(&self, name: &str) -> Result<()> {
        let mut connection = self.client.get_multiplexed_async_connection().await.with_context(|| format!("cluster Redis {}", self.shown))?;
        redis::pipe().hdel(APPS_KEY, name).publish(APPS_KEY, name).query_async::<()>(&mut connection).await?;
        Ok(())
    }

    async fn desired(&self) -> Result<HashMap<String, Desired>> {
        let mut connection = self.client.get_multiplexed_async_connection().await?;
        let raw: HashMap<String, String> = redis::cmd("HGETALL").arg(APPS_KEY).query_async(&mut connection).await?;
        Ok(raw.into_iter().filter_map(|(name, json)| serde_json::from_str(&json).ok().map(|d| (name, d))).collect())
    }
}

impl Desired {
    /// A new desired state for a deploy with `query` (and `runtime_config`), with a revision of its
    /// own.
    pub fn new(query: &str, runtime_config: Option<String>) -> Desired {
        Desired { query: query.to_string(), runtime_config, revision: revision() }
    }
}

fn revision() -> String {
    let nanos = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).map(|d| d.as_nanos()).unwrap_or_default();
    format!("{nanos:x}-{}", crate::data_dir::random_hex(4))
}

/// Keeps `platform`'s apps matching the cluster's until the platform is dropped: subscribes to the
/// announcements (reconnecting with backoff), and reconciles at each one and every [`RESYNC`].
pub async fn run(platform: Weak<Platform>, cluster: Cluster) {
    let mut backoff = Duration::from_millis(100);
    loop {
        let Some(current) = platform.upgrade() else { return };
        reconcile(&current, &cluster).await;
        drop(current);
        let pubsub = async {
            let mut pubsub = cluster.client.get_async_pubsub().await?;
            pubsub.subscribe(APPS_KEY).await?;
            anyhow::Ok(pubsub)
        };
        let mut pubsub = match pubsub.await {
            Ok(pubsub) => {
                backoff = Duration::from_millis(100);
                pubsub
            }
            Err(err) => {
                tracing::warn!("cluster Redis {}: cannot subscribe ({err:#}); retrying in {backoff:?}", cluster.shown);
                tokio::time::sleep(backoff).await;
                backoff = (backoff * 2).min(Duration::from_secs(5));
                continue;
            }
        };
        // Announcements between the first reconcile and the subscription are caught by this one.
        if let Some(current) = platform.upgrade() {
            reconcile(&current, &cluster).await;
        }
        let mut messages = pubsub.on_message();
        loop {
            let next = tokio::time::timeout(RESYNC, messages.next()).await;
            let Some(current) = platform.upgrade() else { return };
            match next {
                Ok(None) => {
                    tracing::warn!("cluster Redis {}: connection lost; reconnecting", cluster.shown);
                    break;
                }
                Ok(Some(_)) | Err(_) => reconcile(&current, &cluster).await,
            }
        }
    }
}

/// Deploys what the cluster wants and this host lacks (or has at another revision); removes what
/// this host had from the cluster that the cluster no longer wants.
async fn reconcile(platform: &Arc<Platform>, cluster: &Cluster) {
    let desired = match cluster.desired().await {
        Ok(desired) => desired,
        Err(err) => {
            tracing::warn!("cluster Redis {}: cannot read the apps ({err:#})", cluster.shown);
            return;
        }
    };
    for (name, want) in &desired {
        if platform.desired_of(name).as_ref() == Some(want) {
            continue;
        }
        if platform.has_local_app(name) {
            // Deployed here from an archive: it stays this host's own.
            tracing::warn!("cluster: `{name}` is wanted by the cluster but this host has its own app of that name; left as it is");
            continue;
        }
        match platform.deploy_desired(name, want).await {
            Ok(()) => tracing::info!("cluster: deployed `{name}` ({})", want.query),
            Err(err) => tracing::warn!("cluster: cannot deploy `{name}`: {}", err.message),
        }
    }
    for name in platform.cluster_apps() {
        if !desired.contains_key(&name) {
            match platform.remove_local(&name).await {
                Ok(()) => tracing::info!("cluster: removed `{name}`"),
                Err(err) => tracing::warn!("cluster: cannot remove `{name}`: {}", err.message),
            }
        }
    }
}
