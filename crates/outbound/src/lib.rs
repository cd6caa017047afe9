//! `allowed_outbound_hosts`: parsing and matching, with Spin's semantics.
//!
//! An entry has the form `<scheme>://<host>[:<port>]`:
//!
//! * scheme: `*` or a name made of letters (`http`, `https`, `redis`, `mysql`, `postgres`, `mqtt`,
//!   `tcp`, `udp`, ...). Scheme lists (`{http, https}`) are rejected, as Spin does.
//! * host: an exact name (`example.com`, matched case-insensitively), `*`, a subdomain wildcard
//!   `*.example.com` (matches `a.example.com` and `a.b.example.com`, not `example.com`), an IP literal
//!   (`127.0.0.1`, `[::1]`), a CIDR range (`127.0.0.0/24`, `ff00::/8`; host bits are truncated, as
//!   Spin does), `self` / `self.alt` (requests the guest makes to its own app), or
//!   `<component-id>.spin.internal` / `*.spin.internal` (service chaining).
//! * port: a number, `*`, or a range `start..end` (end exclusive, as Spin's `Range`). Without a port
//!   the scheme's well-known port is used: http 80, https 443, redis 6379, mysql 3306, postgres 5432,
//!   mqtt 1883. Any other scheme, or `*`, needs an explicit port.
//! * a trailing `/` is allowed; any other path is an error.
//! * `*://*:*` allows everything. The legacy `insecure:allow-all` is rejected (Spin 2/3 reject it too)
//!   with a hint to write `*://*:*`.
//!
//! Where Kiln differs from Spin, it only accepts more: `http://[::1]` (bracketed IPv6 without a port,
//! which Spin's parser trips over) and upper-case schemes/hosts (Spin compares them as written,
//! after its URL parser has lower-cased the request side, so they could never match).

use std::fmt;
use std::net::{IpAddr, SocketAddr};
use std::sync::Arc;

use ipnet::IpNet;

/// The domain Spin uses for service chaining (`http://<component-id>.spin.internal`).
pub const SERVICE_CHAINING_DOMAIN: &str = "spin.internal";
const SERVICE_CHAINING_SUFFIX: &str = ".spin.internal";

/// Where to point users in error messages.
const DOCS_HINT: &str = "Entries have the form `<scheme>://<host>[:<port>]`, e.g. `https://example.com`, \
`redis://127.0.0.1:6379`, `*://*.example.com:*` or `*://*:*` (allow everything)";

/// An invalid `allowed_outbound_hosts` entry.
///
/// Displays as "invalid allowed_outbound_hosts entry `X`: <reason>. <what to write instead>".
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("invalid allowed_outbound_hosts entry `{pattern}`: {reason}. {hint}")]
pub struct PatternError {
    pattern: String,
    reason: String,
    hint: String,
}

impl PatternError {
    fn new(pattern: &str, reason: impl Into<String>, hint: impl Into<String>) -> PatternError {
        PatternError {
            pattern: pattern.to_string(),
            reason: reason.into(),
            hint: hint.into(),
        }
    }

    /// The entry as written.
    pub fn pattern(&self) -> &str {
        &self.pattern
    }

    /// What is wrong with it.
    pub fn reason(&self) -> &str {
        &self.reason
    }

    /// What to write instead.
    pub fn hint(&self) -> &str {
        &self.hint
    }
}

/// The well-known port of a scheme, exactly Spin's list.
pub fn well_known_port(scheme: &str) -> Option<u16> {
    match scheme {
        "postgres" => Some(5432),
        "mysql" => Some(3306),
        "redis" => Some(6379),
        "mqtt" => Some(1883),
        "http" => Some(80),
        "https" => Some(443),
        _ => None,
    }
}

/// If `host` (optionally with `:port`) is `<component-id>.spin.internal`, the component id.
///
/// Like Spin, `*.spin.internal` yields `*`, and `a.b.spin.internal` is not a chaining host.
pub fn service_chaining_target(host: &str) -> Option<&str> {
    let host = host.trim();
    let host = match host.rsplit_once(':') {
        Some((h, port)) if port.bytes().all(|b| b.is_ascii_digit()) => h,
        _ => host,
    };
    let (first, rest) = host.split_once('.')?;
    (rest.eq_ignore_ascii_case(SERVICE_CHAINING_DOMAIN) && !first.is_empty()).then_some(first)
}

/// Checks the syntax of an `allowed_outbound_hosts` entry as written in the manifest.
///
/// `{{ name }}` template placeholders are accepted anywhere: a part of the entry (scheme, host or
/// port) that contains one is assumed valid, since it is only known once variables are resolved;
/// everything else is checked. A missing port is accepted when the scheme is a placeholder.
pub fn validate_pattern(pattern: &str) -> Result<(), PatternError> {
    let (substituted, templated) = substitute_templates(pattern)?;
    if !templated {
        return HostPattern::parse(pattern, pattern).map(|_| ());
    }
    if !substituted.contains("://") {
        // e.g. `{{ url }}` or `{{ host }}:6379`: a leading placeholder may hold the scheme, so
        // nothing can be checked before the variables are resolved (Spin defers these too).
        if substituted.trim_start().starts_with(TEMPLATE) {
            return Ok(());
        }
        return Err(missing_scheme(pattern));
    }
    HostPattern::parse(pattern, &substituted).map(|_| ())
}

/// Stands for a `{{ ... }}` placeholder while validating: it cannot appear in a valid entry.
const TEMPLATE: char = '\u{1}';

/// Replaces each `{{ ... }}` with [`TEMPLATE`]; errors on an unterminated `{{`.
fn substitute_templates(pattern: &str) -> Result<(String, bool), PatternError> {
    if pattern.chars().any(|c| c.is_control()) {
        return Err(PatternError::new(
            pattern,
            "it contains a control character",
            DOCS_HINT,
        ));
    }
    let mut out = String::with_capacity(pattern.len());
    let mut rest = pattern;
    let mut templated = false;
    while let Some(start) = rest.find("{{") {
        out.push_str(&rest[..start]);
        let after = &rest[start + 2..];
        let Some(end) = after.find("}}") else {
            return Err(PatternError::new(
                pattern,
                "it has a `{{` without a closing `}}`",
                "Write variables as `{{ name }}`, e.g. `redis://{{ redis_host }}:6379`",
            ));
        };
        if after[..end].trim().is_empty() {
            return Err(PatternError::new(
                pattern,
                "it has an empty `{{ }}` placeholder",
                "Write variables as `{{ name }}`, e.g. `redis://{{ redis_host }}:6379`",
            ));
        }
        out.push(TEMPLATE);
        templated = true;
        rest = &after[end + 2..];
    }
    out.push_str(rest);
    Ok((out, templated))
}

fn missing_scheme(pattern: &str) -> PatternError {
    match pattern.trim() {
        "*" | ":" | "" | "?" => PatternError::new(
            pattern,
            "it is not an allowed outbound host",
            "Hosts must be in the form `<scheme>://<host>[:<port>]`, with `*` wildcards allowed for each; \
             to allow all outbound networking (no sandboxing at all) write `*://*:*`",
        ),
        other => {
            let example = if other.contains(':') {
                format!("*://{other}")
            } else {
                format!("https://{other}")
            };
            PatternError::new(
                pattern,
                "it does not contain a scheme",
                format!("Add one, e.g. `{example}` (`*://` allows any scheme)"),
            )
        }
    }
}

#[derive(Debug, Clone, PartialEq, Eq)]
enum SchemePattern {
    Any,
    Named(String),
    /// A `{{ placeholder }}` (validation only).
    Template,
}

#[derive(Debug, Clone, PartialEq, Eq)]
enum HostMatcher {
    Any,
    /// `*.example.com`, stored as `.example.com`, lower case.
    Subdomain(String),
    /// `self` / `self.alt`: the guest's own app; never matches a URL with a host.
    ToSelf,
    /// A domain name, lower case.
    Name(String),
    Ip(IpAddr),
    Cidr(IpNet),
    /// A `{{ placeholder }}` (validation only).
    Template,
}

#[derive(Debug, Clone, PartialEq, Eq)]
enum PortPattern {
    Any,
    One(u16),
    /// `start..end`, end exclusive (Spin's `Range<u16>`).
    Range(u16, u16),
    /// A `{{ placeholder }}`, or a missing port with a placeholder scheme (validation only).
    Template,
}

/// One parsed entry.
#[derive(Debug, Clone)]
struct HostPattern {
    original: String,
    scheme: SchemePattern,
    host: HostMatcher,
    port: PortPattern,
}

impl HostPattern {
    /// Parses `text` (which is `original`, or `original` with placeholders replaced by
    /// [`TEMPLATE`] when validating); errors quote `original`.
    fn parse(original: &str, text: &str) -> Result<HostPattern, PatternError> {
        let trimmed = text.trim();
        if trimmed == "insecure:allow-all" {
            return Err(PatternError::new(
                original,
                "`insecure:allow-all` is no longer supported",
                "Write `*://*:*` if you really want to allow all outbound traffic",
            ));
        }
        let Some((scheme_text, rest)) = trimmed.split_once("://") else {
            return Err(missing_scheme(original));
        };
        let (host_text, port_text) = split_host_port(original, rest)?;
        let scheme = parse_scheme(original, scheme_text)?;
        let port = parse_port(original, port_text, &scheme)?;
        let host = parse_host(original, host_text)?;
        Ok(HostPattern {
            original: original.to_string(),
            scheme,
            host,
            port,
        })
    }

    fn scheme_allows(&self, scheme: &str) -> bool {
        match &self.scheme {
            SchemePattern::Any => true,
            SchemePattern::Named(s) => s.eq_ignore_ascii_case(scheme),
            SchemePattern::Template => false,
        }
    }

    fn host_allows(&self, host: &str, ip: Option<IpAddr>) -> bool {
        match &self.host {
            HostMatcher::Any => true,
            HostMatcher::Subdomain(suffix) => ip.is_none() && ends_with_ignore_case(host, suffix),
            HostMatcher::Name(name) => ip.is_none() && name.eq_ignore_ascii_case(host),
            HostMatcher::Ip(allowed) => ip == Some(*allowed),
            HostMatcher::Cidr(net) => ip.is_some_and(|ip| net.contains(&ip)),
            HostMatcher::ToSelf | HostMatcher::Template => false,
        }
    }

    fn port_allows(&self, port: u16) -> bool {
        match self.port {
            PortPattern::Any => true,
            PortPattern::One(p) => p == port,
            PortPattern::Range(start, end) => (start..end).contains(&port),
            PortPattern::Template => false,
        }
    }

    fn allows(&self, url: &OutboundUrl, ip: Option<IpAddr>) -> bool {
        self.scheme_allows(&url.scheme)
            && self.host_allows(&url.host, ip)
            && self.port_allows(url.port)
    }

    fn allows_everything(&self) -> bool {
        self.scheme == SchemePattern::Any
            && self.host == HostMatcher::Any
            && self.port == PortPattern::Any
    }
}

fn ends_with_ignore_case(s: &str, suffix: &str) -> bool {
    s.len() >= suffix.len()
        && s.is_char_boundary(s.len() - suffix.len())
        && s[s.len() - suffix.len()..].eq_ignore_ascii_case(suffix)
}

/// Splits `host[:port][/]` (after the `://`). Like Spin, the port is after the last `:`, and a
/// path after the port (or after a port-less host) must be empty. `[v6]` hosts are handled whole.
fn split_host_port<'t>(original: &str, rest: &'t str) -> Result<(&'t str, &'t str), PatternError> {
    let has_path = |original: &str| {
        PatternError::new(
            original,
            "it has a path, and entries must not",
            "Remove everything after the host and port; outbound access is granted per host, not per path",
        )
    };
    if let Some(after_bracket) = rest.strip_prefix('[') {
        let Some(close) = after_bracket.find(']') else {
            return Err(PatternError::new(
                original,
                "it has a `[` without a closing `]`",
                "Write IPv6 hosts in brackets, e.g. `http://[::1]:8080`",
            ));
        };
        let host = &rest[..close + 2];
        let after = &after_bracket[close + 1..];
        let after = match after.split_once('/') {
            Some((before, "")) => before,
            Some(_) => return Err(has_path(original)),
            None => after,
        };
        return match after {
            "" => Ok((host, "")),
            _ => match after.strip_prefix(':') {
                Some(port) => Ok((host, port)),
                None => Err(PatternError::new(
                    original,
                    format!("unexpected `{after}` after the host"),
                    "Write IPv6 hosts in brackets, e.g. `http://[::1]:8080`",
                )),
            },
        };
    }
    let (host, after_colon) = rest.rsplit_once(':').unwrap_or((rest, ""));
    let port = match after_colon.split_once('/') {
        Some((port, "")) => port,
        Some(_) => return Err(has_path(original)),
        None => after_colon,
    };
    Ok((host, port))
}

fn parse_scheme(original: &str, scheme: &str) -> Result<SchemePattern, PatternError> {
    if scheme.contains(TEMPLATE) {
        return Ok(SchemePattern::Template);
    }
    if scheme == "*" {
        return Ok(SchemePattern::Any);
    }
    if scheme.starts_with('{') {
        return Err(PatternError::new(
            original,
            "scheme lists are not supported",
            "Write one entry per scheme, e.g. `http://example.com` and `https://example.com`, or use `*://`",
        ));
    }
    if scheme.is_empty() || !scheme.chars().all(|c| c.is_ascii_alphabetic()) {
        return Err(PatternError::new(
            original,
            format!("the scheme `{scheme}` is not `*` or a name made of letters"),
            "Write a scheme such as `http`, `https`, `redis`, `postgres`, `mysql`, `mqtt`, `tcp`, or `*` for any",
        ));
    }
    Ok(SchemePattern::Named(scheme.to_ascii_lowercase()))
}

fn parse_port(
    original: &str,
    port: &str,
    scheme: &SchemePattern,
) -> Result<PortPattern, PatternError> {
    let port = port.trim();
    if port.contains(TEMPLATE) {
        return Ok(PortPattern::Template);
    }
    if port.is_empty() {
        return match scheme {
            SchemePattern::Named(s) => match well_known_port(s) {
                Some(p) => Ok(PortPattern::One(p)),
                None => Err(PatternError::new(
                    original,
                    format!("no port was given and the scheme `{s}` has no known default port"),
                    format!("Add a port, e.g. `{s}://host:1234`, or `:*` to allow any port"),
                )),
            },
            SchemePattern::Any => Err(PatternError::new(
                original,
                "no port was given and the scheme `*` has no default port",
                "Add a port, e.g. `*://host:1234`, or `:*` to allow any port (`*://host:*`)",
            )),
            SchemePattern::Template => Ok(PortPattern::Template),
        };
    }
    if port == "*" {
        return Ok(PortPattern::Any);
    }
    if port.starts_with('{') {
        return Err(PatternError::new(
            original,
            "port lists are not supported",
            "Write one entry per port, or a range such as `:8000..8081` (end exclusive)",
        ));
    }
    if let Some((start, end)) = port.split_once("..") {
        let parse = |n: &str| n.trim().parse::<u16>().ok();
        return match (parse(start), parse(end)) {
            (Some(start), Some(end)) => Ok(PortPattern::Range(start, end)),
            _ => Err(PatternError::new(
                original,
                format!("the port range `{port}` is not two numbers from 0 to 65535"),
                "Write a port range as `start..end` (end exclusive), e.g. `:8000..8081`",
            )),
        };
    }
    match port.parse::<u16>() {
        Ok(p) => Ok(PortPattern::One(p)),
        Err(_) => {
            let hint = match port.split_once('-') {
                Some((a, b)) if a.parse::<u16>().is_ok() && b.parse::<u16>().is_ok() => {
                    let end = b.parse::<u16>().unwrap_or(u16::MAX).saturating_add(1);
                    format!("Port ranges are written `start..end` with the end excluded, as in Spin: `:{a}..{end}`")
                }
                _ => "Write a port number from 0 to 65535, `*` for any port, or a range `start..end` (end exclusive)"
                    .to_string(),
            };
            Err(PatternError::new(
                original,
                format!("the port `{port}` is not a number"),
                hint,
            ))
        }
    }
}

fn parse_host(original: &str, host: &str) -> Result<HostMatcher, PatternError> {
    let host = host.trim();
    if host.contains(TEMPLATE) {
        let host = host.trim_end_matches('/');
        if host.contains('/') && !may_become_cidr(host) {
            return Err(PatternError::new(
                original,
                "it has a path, and entries must not",
                "Remove everything after the host and port; outbound access is granted per host, not per path",
            ));
        }
        return Ok(HostMatcher::Template);
    }
    if host == "*" {
        return Ok(HostMatcher::Any);
    }
    if host.eq_ignore_ascii_case("self") || host.eq_ignore_ascii_case("self.alt") {
        return Ok(HostMatcher::ToSelf);
    }
    if host.starts_with('{') {
        return Err(PatternError::new(
            original,
            "host lists are not supported",
            "Write one entry per host, e.g. `https://a.example.com` and `https://b.example.com`, or `https://*.example.com`",
        ));
    }
    if let Some(inner) = host.strip_prefix('[').and_then(|h| h.strip_suffix(']')) {
        if let Ok(ip) = inner.parse::<std::net::Ipv6Addr>() {
            return Ok(HostMatcher::Ip(IpAddr::V6(ip)));
        }
        if let Ok(net) = inner.parse::<IpNet>() {
            return Ok(HostMatcher::Cidr(net.trunc()));
        }
        return Err(PatternError::new(
            original,
            format!("`{host}` is not an IPv6 address"),
            "Write IPv6 hosts in brackets, e.g. `http://[::1]:8080`",
        ));
    }
    if host.contains('/')
        && let Ok(net) = host.parse::<IpNet>()
    {
        return Ok(HostMatcher::Cidr(net.trunc()));
    }
    let host = host.trim_end_matches('/');
    if host.contains('/') {
        if host
            .split('/')
            .next()
            .is_some_and(|h| h.parse::<IpAddr>().is_ok())
        {
            return Err(PatternError::new(
                original,
                format!("`{host}` is not a valid CIDR range"),
                "Write an IP range as `address/prefix-length`, e.g. `*://10.0.0.0/8:5432`",
            ));
        }
        return Err(PatternError::new(
            original,
            "it has a path, and entries must not",
            "Remove everything after the host and port; outbound access is granted per host, not per path",
        ));
    }
    if let Ok(ip) = host.parse::<IpAddr>() {
        return Ok(HostMatcher::Ip(ip));
    }
    if let Some(domain) = host.strip_prefix("*.") {
        if domain.contains('*') {
            return Err(PatternError::new(
                original,
                "wildcards are allowed only as the first label of the host",
                "Write `*.example.com` to allow every subdomain of example.com",
            ));
        }
        check_domain(original, domain)?;
        return Ok(HostMatcher::Subdomain(format!(
            ".{}",
            domain.to_ascii_lowercase()
        )));
    }
    if host.contains('*') {
        return Err(PatternError::new(
            original,
            "wildcards are allowed only as subdomains",
            "Write `*.example.com` to allow every subdomain of example.com, or `*` for any host",
        ));
    }
    check_domain(original, host)?;
    Ok(HostMatcher::Name(host.to_ascii_lowercase()))
}

/// Whether a templated host may render to a CIDR range, like `{{ prefix }}/{{ len }}` or
/// `10.0.0.0/{{ len }}`: an address (or placeholder) and a prefix length (or placeholder) around a
/// single `/`. Anything else with a `/` is a path; a bad range is caught once rendered.
fn may_become_cidr(host: &str) -> bool {
    let Some((address, len)) = host.split_once('/') else {
        return false;
    };
    let address_ok = address.contains(TEMPLATE) || address.parse::<IpAddr>().is_ok();
    let len_ok = len.contains(TEMPLATE) || (!len.is_empty() && len.bytes().all(|b| b.is_ascii_digit()));
    address_ok && len_ok && !len.contains('/')
}

fn check_domain(original: &str, domain: &str) -> Result<(), PatternError> {
    if domain.is_empty() {
        return Err(PatternError::new(
            original,
            "the host is empty",
            "Write a host name, an IP address, `*` for any host, or `*.example.com` for subdomains",
        ));
    }
    if let Some(bad) = domain
        .chars()
        .find(|c| !(c.is_ascii_alphanumeric() || matches!(c, '-' | '.' | '_')))
    {
        let reason =
            format!("the host `{domain}` contains `{bad}`, which is not allowed in a host name");
        let hint = if bad == '@' {
            "Leave out user names and passwords: write only `<scheme>://<host>[:<port>]`"
        } else if !bad.is_ascii() {
            "Write internationalised domain names in their punycode (`xn--`) form"
        } else {
            "Write only the host name, e.g. `https://api.example.com`"
        };
        return Err(PatternError::new(original, reason, hint));
    }
    Ok(())
}

/// A parsed `allowed_outbound_hosts` list. Cheap to clone (the entries are shared).
#[derive(Clone, Debug)]
pub struct AllowedHosts {
    patterns: Arc<[HostPattern]>,
    allow_all: bool,
}

impl Default for AllowedHosts {
    fn default() -> Self {
        AllowedHosts::none()
    }
}

impl AllowedHosts {
    /// Parses entries whose `{{ }}` templates have already been rendered.
    pub fn parse<S: AsRef<str>>(patterns: &[S]) -> Result<AllowedHosts, PatternError> {
        let mut parsed = Vec::with_capacity(patterns.len());
        for pattern in patterns {
            let pattern = pattern.as_ref();
            if pattern.contains("{{") || pattern.contains("}}") {
                return Err(PatternError::new(
                    pattern,
                    "it still contains a `{{ }}` template",
                    "Templates must be rendered from the application's variables before the entry is used",
                ));
            }
            if pattern.chars().any(|c| c.is_control()) {
                return Err(PatternError::new(
                    pattern,
                    "it contains a control character",
                    DOCS_HINT,
                ));
            }
            parsed.push(HostPattern::parse(pattern, pattern)?);
        }
        let allow_all = parsed.iter().any(HostPattern::allows_everything);
        Ok(AllowedHosts {
            patterns: parsed.into(),
            allow_all,
        })
    }

    /// Allows nothing (a component without `allowed_outbound_hosts`).
    pub fn none() -> AllowedHosts {
        AllowedHosts {
            patterns: Arc::from(Vec::new()),
            allow_all: false,
        }
    }

    /// True if there are no entries at all.
    pub fn is_empty(&self) -> bool {
        self.patterns.is_empty()
    }

    /// The entries as written, in order.
    pub fn entries(&self) -> impl Iterator<Item = &str> {
        self.patterns.iter().map(|p| p.original.as_str())
    }

    /// Whether a request to `url` is allowed.
    pub fn allows(&self, url: &OutboundUrl) -> bool {
        if self.allow_all {
            return true;
        }
        let ip = url.ip();
        self.patterns.iter().any(|p| p.allows(url, ip))
    }

    /// Parses `url` (`scheme://host[:port]...`) and checks it; unparsable URLs are not allowed.
    pub fn allows_url(&self, url: &str) -> bool {
        OutboundUrl::parse(url).is_ok_and(|u| self.allows(&u))
    }

    /// Whether the guest may send HTTP requests to its own app (relative URLs, `http://self.alt`).
    ///
    /// As in Spin: any entry whose host is `self`/`self.alt` or `*` and whose scheme allows `http`
    /// or `https` (ports are not considered), so `*://*:*` allows it too.
    pub fn allows_self(&self) -> bool {
        self.patterns.iter().any(|p| {
            matches!(p.host, HostMatcher::ToSelf | HostMatcher::Any)
                && (p.scheme_allows("http") || p.scheme_allows("https"))
        })
    }

    /// Whether the guest may call component `component_id` through service chaining, i.e. whether
    /// `http://<component_id>.spin.internal` (port 80) is allowed. Spin checks chaining requests like
    /// any other URL, so `http://*.spin.internal` and `*://*:*` allow every component. For a chaining
    /// request with another scheme or port, check its URL with [`AllowedHosts::allows`].
    pub fn allows_internal(&self, component_id: &str) -> bool {
        if component_id.is_empty() {
            return false;
        }
        let url = OutboundUrl {
            scheme: "http".to_string(),
            host: format!("{component_id}{SERVICE_CHAINING_SUFFIX}"),
            port: 80,
        };
        self.allows(&url)
    }

    /// Whether the guest may open a TCP connection to `addr` (wasi-sockets).
    ///
    /// As in Spin, the address is checked as the URL `tcp://<ip>:<port>`: an entry allows it if its
    /// scheme is `*` or `tcp`, its host is `*`, that IP or a CIDR range containing it (a host name
    /// never matches an IP address), and its port matches. So `postgres://127.0.0.1:5432` does not
    /// allow a raw socket, `*://127.0.0.1:5432` or `tcp://127.0.0.1:5432` does.
    pub fn allows_socket_addr(&self, addr: SocketAddr) -> bool {
        self.allows_socket(addr, "tcp")
    }

    /// Like [`AllowedHosts::allows_socket_addr`] for UDP (`udp://<ip>:<port>`, as Spin checks it).
    pub fn allows_udp_addr(&self, addr: SocketAddr) -> bool {
        self.allows_socket(addr, "udp")
    }

    fn allows_socket(&self, addr: SocketAddr, scheme: &str) -> bool {
        if self.allow_all {
            return true;
        }
        let ip = addr.ip();
        self.patterns.iter().any(|p| {
            p.scheme_allows(scheme)
                && match &p.host {
                    HostMatcher::Any => true,
                    HostMatcher::Ip(allowed) => *allowed == ip,
                    HostMatcher::Cidr(net) => net.contains(&ip),
                    _ => false,
                }
                && p.port_allows(addr.port())
        })
    }
}

/// The destination of an outbound connection, as checked against [`AllowedHosts`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct OutboundUrl {
    /// Lower case, e.g. `https`.
    pub scheme: String,
    /// Lower case; IPv6 addresses without brackets.
    pub host: String,
    /// The explicit port, or the scheme's well-known port.
    pub port: u16,
}

impl OutboundUrl {
    /// Parses `scheme://[user[:password]@]host[:port][/path][?query][#fragment]`.
    ///
    /// User info may contain characters such as `#` (database passwords), as Spin allows. A URL
    /// without a port needs a scheme with a well-known port.
    pub fn parse(url: &str) -> Result<OutboundUrl, PatternError> {
        let bad = |reason: &str| {
            PatternError::new(
                url,
                reason,
                "Outbound URLs have the form `<scheme>://<host>[:<port>][/<path>]`",
            )
        };
        let url_trimmed = url.trim();
        let Some((scheme, rest)) = url_trimmed.split_once("://") else {
            return Err(bad("it has no scheme"));
        };
        if scheme.is_empty()
            || !scheme.starts_with(|c: char| c.is_ascii_alphabetic())
            || !scheme
                .chars()
                .all(|c| c.is_ascii_alphanumeric() || matches!(c, '+' | '-' | '.'))
        {
            return Err(bad("its scheme is not valid"));
        }
        let scheme = scheme.to_ascii_lowercase();
        // The authority ends at the first `/`; user info (up to the last `@` before it) may hold
        // characters like `#` or `?` that would otherwise end it.
        let authority = rest.split('/').next().unwrap_or("");
        let host_port = match authority.rfind('@') {
            Some(at) => &authority[at + 1..],
            None => authority,
        };
        let host_port = host_port.split(['?', '#']).next().unwrap_or("");
        let (host, port) = if let Some(after) = host_port.strip_prefix('[') {
            let Some(close) = after.find(']') else {
                return Err(bad("its IPv6 host has no closing `]`"));
            };
            let host = &after[..close];
            if host.parse::<std::net::Ipv6Addr>().is_err() {
                return Err(bad("its bracketed host is not an IPv6 address"));
            }
            let tail = &after[close + 1..];
            let port = match tail {
                "" => None,
                _ => Some(
                    tail.strip_prefix(':')
                        .ok_or_else(|| bad("unexpected text after its host"))?,
                ),
            };
            (host, port)
        } else {
            match host_port.rsplit_once(':') {
                Some((host, port)) => (host, Some(port)),
                None => (host_port, None),
            }
        };
        if host.is_empty() {
            return Err(bad("it has no host"));
        }
        let port = match port {
            Some("") | None => well_known_port(&scheme)
                .ok_or_else(|| bad("it has no port and its scheme has no well-known port"))?,
            Some(p) => p
                .parse::<u16>()
                .map_err(|_| bad("its port is not a number from 0 to 65535"))?,
        };
        Ok(OutboundUrl {
            scheme,
            host: host.to_ascii_lowercase(),
            port,
        })
    }

    /// Like [`OutboundUrl::parse`], but a URL without `://` (e.g. `example.com:8080`, or a Redis
    /// address `host:6379`) is read as `<default_scheme>://<url>`, as Spin does.
    pub fn parse_with_default_scheme(
        url: &str,
        default_scheme: &str,
    ) -> Result<OutboundUrl, PatternError> {
        if url.contains("://") {
            OutboundUrl::parse(url)
        } else {
            OutboundUrl::parse(&format!("{default_scheme}://{url}"))
        }
    }

    /// From an absolute request URI; `None` without a scheme or host, or without a port when the
    /// scheme has no well-known one.
    pub fn from_uri(uri: &http::Uri) -> Option<OutboundUrl> {
        let scheme = uri.scheme_str()?.to_ascii_lowercase();
        let host = uri.host()?;
        let host = host
            .strip_prefix('[')
            .and_then(|h| h.strip_suffix(']'))
            .unwrap_or(host);
        if host.is_empty() {
            return None;
        }
        let port = match uri.port_u16() {
            Some(p) => p,
            None => well_known_port(&scheme)?,
        };
        Some(OutboundUrl {
            scheme,
            host: host.to_ascii_lowercase(),
            port,
        })
    }

    /// For a socket address: `<scheme>://<ip>:<port>`.
    pub fn from_socket_addr(scheme: &str, addr: SocketAddr) -> OutboundUrl {
        OutboundUrl {
            scheme: scheme.to_ascii_lowercase(),
            host: addr.ip().to_string(),
            port: addr.port(),
        }
    }

    fn ip(&self) -> Option<IpAddr> {
        let host = self
            .host
            .strip_prefix('[')
            .and_then(|h| h.strip_suffix(']'))
            .unwrap_or(&self.host);
        host.parse().ok()
    }
}

impl fmt::Display for OutboundUrl {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if self.host.contains(':') {
            write!(f, "{}://[{}]:{}", self.scheme, self.host, self.port)
        } else {
            write!(f, "{}://{}:{}", self.scheme, self.host, self.port)
        }
    }
}

#[cfg(test)]
mod tests;

#[cfg(test)]
mod fuzz;
