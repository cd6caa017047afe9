//! Per-app limits and the other settings a deploy request carries.

use kiln_manifest::AppLimitsSpec;
use serde::{Deserialize, Serialize};
use std::time::Duration;

/// What one app may use. Every app gets the host's defaults unless its deploy request says otherwise.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default)]
pub struct AppLimits {
    /// Instances of this app running at once; more requests wait (then 503).
    pub max_concurrency: u32,
    /// Linear memory per instance.
    pub memory_limit_mib: u32,
    /// A request still running after this is cut off (504).
    pub request_timeout_ms: u64,
    /// Larger request bodies get 413.
    pub max_request_body: u64,
}

impl Default for AppLimits {
    fn default() -> Self {
        AppLimits { max_concurrency: 100, memory_limit_mib: 128, request_timeout_ms: 30_000, max_request_body: 10 << 20 }
    }
}

impl AppLimits {
    /// These limits with the ones `spec` sets replacing them.
    pub fn overridden_by(self, spec: &AppLimitsSpec) -> AppLimits {
        AppLimits {
            max_concurrency: spec.max_concurrency.unwrap_or(self.max_concurrency),
            memory_limit_mib: spec.memory_limit_mib.unwrap_or(self.memory_limit_mib),
            request_timeout_ms: spec.request_timeout_ms.unwrap_or(self.request_timeout_ms),
            max_request_body: spec.max_request_body.unwrap_or(self.max_request_body),
        }
    }

    pub fn request_timeout(&self) -> Duration {
        Duration::from_millis(self.request_timeout_ms)
    }

    pub fn memory_limit_bytes(&self) -> usize {
        (self.memory_limit_mib as usize) << 20
    }
}

/// The settings of one deploy request (query parameters of `PUT /v1/apps/{name}`). Its limits
/// override the manifest's `[application.tool.kiln]`, which override the host's defaults.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct DeployParams {
    pub route_prefix: Option<String>,
    pub limits: AppLimitsSpec,
    /// Deploy this registry reference instead of an uploaded archive.
    pub reference: Option<String>,
    /// The reference's registry speaks plain HTTP.
    pub insecure: bool,
}

/// The most a deploy may ask for: what the host's engine was sized for.
#[derive(Clone, Copy, Debug)]
pub struct LimitCeilings {
    pub max_memory_limit_mib: u32,
    pub max_concurrency: u32,
}

impl LimitCeilings {
    /// The first limit of `spec` above what this host allows, as `(key, value, ceiling)`.
    pub fn exceeded_by(&self, spec: &AppLimitsSpec) -> Option<(&'static str, u64, u64)> {
        let checks = [
            ("max_concurrency", spec.max_concurrency.map(u64::from), self.max_concurrency as u64),
            ("memory_limit_mib", spec.memory_limit_mib.map(u64::from), self.max_memory_limit_mib as u64),
        ];
        checks.into_iter().find_map(|(key, value, ceiling)| value.filter(|v| *v > ceiling).map(|v| (key, v, ceiling)))
    }
}

impl DeployParams {
    /// Parses a query string. Errors name the parameter.
    pub fn parse(query: Option<&str>, ceilings: LimitCeilings) -> Result<DeployParams, String> {
        let mut params = DeployParams::default();
        for (key, value) in form_urlencoded::parse(query.unwrap_or("").as_bytes()) {
            let limits = &mut params.limits;
            match key.as_ref() {
                "route_prefix" => params.route_prefix = Some(parse_prefix(&value)?),
                "max_concurrency" => limits.max_concurrency = Some(parse_number(&key, &value, 1, ceilings.max_concurrency as u64)? as u32),
                "memory_limit_mib" => limits.memory_limit_mib = Some(parse_number(&key, &value, 1, ceilings.max_memory_limit_mib as u64)? as u32),
                "request_timeout_ms" => limits.request_timeout_ms = Some(parse_number(&key, &value, 1, 24 * 3600 * 1000)?),
                "max_request_body" => limits.max_request_body = Some(parse_number(&key, &value, 0, u64::MAX)?),
                "reference" => params.reference = Some(value.trim().to_string()).filter(|r| !r.is_empty()),
                "insecure" => params.insecure = matches!(value.as_ref(), "true" | "1" | ""),
                other => {
                    return Err(format!(
                        "unknown parameter `{other}`; known: route_prefix, max_concurrency, memory_limit_mib, request_timeout_ms, max_request_body, reference, insecure"
                    ));
                }
            }
        }
        Ok(params)
    }
}

fn parse_number(key: &str, value: &str, min: u64, max: u64) -> Result<u64, String> {
    let number: u64 = value.parse().map_err(|_| format!("`{key}` must be a whole number, not `{value}`"))?;
    if number < min || number > max {
        return Err(format!("`{key}` must be between {min} and {max} on this host, not {number}"));
    }
    Ok(number)
}

/// A route prefix: `/` followed by path segments of letters, digits, `-`, `_` and `.`, no trailing
/// slash. `/` alone would swallow every other app's traffic and is refused.
fn parse_prefix(value: &str) -> Result<String, String> {
    let trimmed = value.trim_end_matches('/');
    let valid = trimmed.starts_with('/')
        && trimmed.len() > 1
        && trimmed[1..].split('/').all(|segment| {
            !segment.is_empty() && segment != "." && segment != ".." && segment.chars().all(|c| c.is_ascii_alphanumeric() || "-_.".contains(c))
        });
    if !valid {
        return Err(format!("`route_prefix` must look like `/shop` or `/team/app` (letters, digits, `-`, `_`, `.`), not `{value}`"));
    }
    Ok(trimmed.to_string())
}

/// Whether `name` can be an app name: a DNS label (it becomes `<name>.<domain>`).
pub fn valid_app_name(name: &str) -> bool {
    let bytes = name.as_bytes();
    (1..=63).contains(&bytes.len())
        && bytes.iter().all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || *b == b'-')
        && bytes[0] != b'-'
        && bytes[bytes.len() - 1] != b'-'
}

#[cfg(test)]
mod tests {
    use super::*;

    const CEILINGS: LimitCeilings = LimitCeilings { max_memory_limit_mib: 512, max_concurrency: 1000 };

    #[test]
    fn parameters_override_defaults() {
        let params = DeployParams::parse(Some("route_prefix=%2Fshop%2F&max_concurrency=4&memory_limit_mib=64&request_timeout_ms=500&max_request_body=10"), CEILINGS).unwrap();
        assert_eq!(params.route_prefix.as_deref(), Some("/shop"));
        assert_eq!(AppLimits::default().overridden_by(&params.limits), AppLimits { max_concurrency: 4, memory_limit_mib: 64, request_timeout_ms: 500, max_request_body: 10 });
        assert_eq!(AppLimits::default().overridden_by(&DeployParams::parse(None, CEILINGS).unwrap().limits), AppLimits::default());
        let manifest = AppLimitsSpec { max_concurrency: Some(7), request_timeout_ms: Some(9), ..AppLimitsSpec::default() };
        let query = DeployParams::parse(Some("max_concurrency=3"), CEILINGS).unwrap().limits;
        let limits = AppLimits::default().overridden_by(&manifest).overridden_by(&query);
        assert_eq!((limits.max_concurrency, limits.request_timeout_ms, limits.memory_limit_mib), (3, 9, 128), "query over manifest over host");
        assert_eq!(CEILINGS.exceeded_by(&AppLimitsSpec { memory_limit_mib: Some(1024), ..AppLimitsSpec::default() }), Some(("memory_limit_mib", 1024, 512)));
    }

    #[test]
    fn bad_parameters_are_named() {
        for (query, expected) in [
            ("max_concurrency=0", "`max_concurrency` must be between 1"),
            ("memory_limit_mib=4096", "between 1 and 512"),
            ("request_timeout_ms=soon", "whole number"),
            ("route_prefix=/", "route_prefix"),
            ("route_prefix=shop", "route_prefix"),
            ("route_prefix=/a/../b", "route_prefix"),
            ("colour=blue", "unknown parameter `colour`"),
        ] {
            let err = DeployParams::parse(Some(query), CEILINGS).unwrap_err();
            assert!(err.contains(expected), "{query}: {err}");
        }
    }

    #[test]
    fn app_names_are_dns_labels() {
        for good in ["a", "hello", "hello-2", "0x"] {
            assert!(valid_app_name(good), "{good}");
        }
        for bad in ["", "-a", "a-", "Hello", "a.b", "a_b", &"a".repeat(64)] {
            assert!(!valid_app_name(bad), "{bad}");
        }
    }
}
