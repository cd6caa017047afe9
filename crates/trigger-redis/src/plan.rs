//! From the manifest to subscriptions: addresses and channels rendered, grouped by address.

use anyhow::Result;
use indexmap::IndexMap;
use kiln_manifest::Manifest;
use kiln_variables::Resolver;

/// One Redis server and what to subscribe to on it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ServerPlan {
    /// As rendered (may hold a password: show it with [`redact`]).
    pub address: String,
    /// channel → the components bound to it, in manifest order.
    pub channels: IndexMap<String, Vec<String>>,
}

/// Renders every `[[trigger.redis]]` and groups the subscriptions by server. Errors point at the
/// trigger in the manifest.
pub fn plan(manifest: &Manifest, variables: &Resolver) -> Result<Vec<ServerPlan>> {
    let mut servers: IndexMap<String, ServerPlan> = IndexMap::new();
    for trigger in &manifest.redis_triggers {
        let span = &trigger.component_span;
        let component = &trigger.component;
        let Some(address) = trigger.address.as_ref().or(manifest.application.redis_address.as_ref()) else {
            return Err(manifest
                .error_at(
                    span,
                    format!("the Redis trigger for component `{component}` (channel `{}`) has no Redis address", trigger.channel),
                    "set `address = \"redis://host:6379\"` under [application.trigger.redis], or in the [[trigger.redis]] table",
                )
                .into());
        };
        let address = variables.render_app_template(address).map_err(|err| {
            manifest.error_at(span, format!("cannot resolve the Redis address of the trigger for component `{component}`: {err}"), "give the variable a value (see [variables])")
        })?;
        let channel = variables.render_app_template(&trigger.channel).map_err(|err| {
            manifest.error_at(span, format!("cannot resolve the Redis channel of the trigger for component `{component}`: {err}"), "give the variable a value (see [variables])")
        })?;
        if let Err(err) = redis::Client::open(address.as_str()) {
            return Err(manifest
                .error_at(
                    span,
                    format!("the Redis address `{}` of the trigger for component `{component}` is not valid: {err}", redact(&address)),
                    "addresses look like redis://host:6379, redis://:password@host:6379/0 or rediss://host:6380",
                )
                .into());
        }
        if channel.is_empty() {
            return Err(manifest.error_at(span, format!("the Redis trigger for component `{component}` has an empty channel"), "name the channel to subscribe to").into());
        }
        let server = servers.entry(address.clone()).or_insert_with(|| ServerPlan { address, channels: IndexMap::new() });
        let components = server.channels.entry(channel).or_default();
        if !components.contains(component) {
            components.push(component.clone());
        }
    }
    Ok(servers.into_values().collect())
}

/// The address without credentials (user, password) or query (where a password may be), for logs.
pub fn redact(address: &str) -> String {
    let Some((scheme, rest)) = address.split_once("://") else {
        return "<redis address>".to_string();
    };
    let rest = rest.split(['?', '#']).next().unwrap_or_default();
    let (authority, path) = match rest.find('/') {
        Some(i) => rest.split_at(i),
        None => (rest, ""),
    };
    let host = authority.rsplit_once('@').map_or(authority, |(_, host)| host);
    format!("{scheme}://{host}{path}")
}
