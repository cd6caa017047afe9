//! Spin's HTTP router and the `spin-*` request headers.
//!
//! Route syntax, as in Spin (which uses the `routefinder` crate):
//!
//! * `/exact/path` matches that path only, with or without trailing slashes (`/exact/path/`).
//! * `/prefix/...` (or routefinder's `/prefix/*`) is a trailing wildcard: it matches `/prefix`,
//!   `/prefix/` and everything below, not `/prefixed`. `/...` matches every path.
//! * `:name` is a single-segment wildcard (`/users/:id`, `/base/:a/:b/...`), capturing one non-empty
//!   segment. Inside a segment, `.` separates parts as in routefinder: `/files/:name.json` captures
//!   `report` from `/files/report.json`.
//! * A route without a leading `/` is read as if it had one, as Spin does (`hello` is `/hello`).
//! * Runs of slashes in request paths count as one separator, and leading and trailing slashes are
//!   ignored when matching (routefinder's behaviour). Paths are matched as sent (percent-encoded).
//!
//! Precedence (routefinder's ordering): routes are compared segment by segment and the first
//! segment that differs decides: a literal beats a segment mixing literals and `:params`, which
//! beats a plain `:param`, which beats the trailing wildcard. When one route's segments are a prefix
//! of the other's, the shorter one wins (`/a` beats `/a/...` for `/a`). So exact routes beat
//! wildcards, and among trailing wildcards the longest prefix wins, whatever the manifest order.
//! Routes that still tie (e.g. `/a/:x` and `/a/:y`) are tried in manifest order.
//!
//! Duplicates: as in Spin, routes are deduplicated by their text as written; the last component
//! declared for a route wins, in the position of the first declaration, and the replaced ones are
//! reported by [`Router::duplicates`]; the trigger logs them ([`duplicates_warning`]) and keeps
//! running, as Spin does.
//!
//! Lookups never allocate for literal routes; for routes with a wildcard or `:params` one `String`
//! holds `spin-path-info` and the captured values.

use std::cmp::Ordering;
use std::collections::HashMap;
use std::fmt;

use http::{HeaderName, HeaderValue};

/// Paths under this prefix are answered by the host itself, never by components.
pub const WELL_KNOWN_PREFIX: &str = "/.well-known/spin/";

const ROUTE_HELP: &str =
    "routes look like `/exact`, `/prefix/...` (trailing wildcard), or `/users/:id` (named segment)";

/// A route that cannot be used.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RouteError {
    /// The route as written in the manifest.
    pub route: String,
    /// What is wrong and how to write it.
    pub message: String,
}

impl fmt::Display for RouteError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "invalid route `{}`: {}", self.route, self.message)
    }
}

impl std::error::Error for RouteError {}

/// A route declared more than once; only the last declaration is used.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DuplicateRoute {
    /// The route, including the base (`/` for the root route).
    pub route: String,
    /// The component whose declaration was replaced (never reached).
    pub replaced_component: String,
    /// The component that handles the route.
    pub effective_component: String,
    /// Where the replaced declaration was among the routes given to [`Router::build`] (0-based), to
    /// point at it in the manifest.
    pub replaced_declaration: usize,
}

/// Spin's report of [`Router::duplicates`], one line per replaced declaration, or `None` if there
/// are none. `locate` gives where a declaration is (by its position among the routes given to
/// [`Router::build`]), e.g. `spin.toml:12:9`.
pub fn duplicates_warning(
    duplicates: &[DuplicateRoute],
    locate: impl Fn(usize) -> Option<String>,
) -> Option<String> {
    if duplicates.is_empty() {
        return None;
    }
    let mut text =
        String::from("The following component routes are duplicates and will never be used:");
    for dup in duplicates {
        text.push_str(&format!(
            "\n  {}: {} (duplicate of {})",
            dup.replaced_component, dup.route, dup.effective_component
        ));
        if let Some(at) = locate(dup.replaced_declaration) {
            text.push_str(&format!(" at {at}"));
        }
    }
    Some(text)
}

/// Maps request paths to components. Built once when the app loads.
#[derive(Debug, Clone)]
pub struct Router {
    /// In manifest order (duplicates replaced in place).
    routes: Vec<CompiledRoute>,
    /// Indexes into `routes`, most specific first.
    by_precedence: Vec<usize>,
    duplicates: Vec<DuplicateRoute>,
    /// `spin-base-path`: the base as given, `/` when empty. `None` if it cannot be a header value.
    base_path: Option<HeaderValue>,
}

#[derive(Debug, Clone)]
struct CompiledRoute {
    component: Box<str>,
    /// As written.
    raw: Box<str>,
    /// With the base prefixed (Spin's `based_route`, the `spin-matched-route` header).
    based: Box<str>,
    segments: Box<[Segment]>,
    wildcard: bool,
    params: Box<[Param]>,
    /// Spin's headers that are the same for every request this route takes.
    header_values: RouteHeaderValues,
}

/// The values of `spin-matched-route`, `spin-raw-component-route` and `spin-component-route` for a
/// route, made once: each request clones them (a reference count) instead of copying the text. `None`
/// where the text cannot be a header value.
#[derive(Debug, Clone)]
struct RouteHeaderValues {
    matched_route: Option<HeaderValue>,
    raw_component_route: Option<HeaderValue>,
    component_route: Option<HeaderValue>,
}

/// The raw route without a trailing "/..." (`spin-component-route`); "" for `/...`.
fn component_route(raw: &str) -> &str {
    raw.strip_suffix("/...").unwrap_or(raw)
}

/// A header value that shares its bytes when cloned.
fn shared_value(text: &str) -> Option<HeaderValue> {
    HeaderValue::from_maybe_shared(bytes::Bytes::copy_from_slice(text.as_bytes())).ok()
}

#[derive(Debug, Clone, PartialEq, Eq)]
enum Segment {
    /// The whole segment, e.g. `users` or `index.html`.
    Literal(Box<str>),
    /// `:name`.
    Param,
    /// Literals, dots and params within one segment, e.g. `:name.json` or `v.:version`.
    Mixed(Box<[Token]>),
}

#[derive(Debug, Clone, PartialEq, Eq)]
enum Token {
    Literal(Box<str>),
    Dot,
    Param,
}

#[derive(Debug, Clone)]
struct Param {
    /// `spin-path-match-<name>`, `None` if the name cannot be a header name.
    header: Option<HeaderName>,
}

impl Segment {
    /// Higher is more specific.
    fn rank(&self) -> u8 {
        match self {
            Segment::Literal(_) => 3,
            Segment::Mixed(_) => 2,
            Segment::Param => 1,
        }
    }
}

impl CompiledRoute {
    fn ranks(&self) -> impl Iterator<Item = u8> + '_ {
        self.segments
            .iter()
            .map(Segment::rank)
            .chain(self.wildcard.then_some(0))
    }

    fn precedence(&self, other: &CompiledRoute) -> Ordering {
        for (a, b) in self.ranks().zip(other.ranks()) {
            if a != b {
                return b.cmp(&a);
            }
        }
        self.ranks().count().cmp(&other.ranks().count())
    }

    /// Matches `trimmed` (the path without leading/trailing slashes), reporting each `:param`
    /// value to `capture`; returns the trailing wildcard's part ("" for exact routes).
    fn match_path<'p>(
        &self,
        trimmed: &'p str,
        capture: &mut impl FnMut(&'p str),
    ) -> Option<&'p str> {
        let mut rest = trimmed;
        for (i, segment) in self.segments.iter().enumerate() {
            if i > 0 {
                let after = rest.trim_start_matches('/');
                if after.len() == rest.len() {
                    return None;
                }
                rest = after;
            }
            if rest.is_empty() {
                return None;
            }
            let end = rest.find('/').unwrap_or(rest.len());
            let (text, after) = rest.split_at(end);
            match segment {
                Segment::Literal(literal) => {
                    if text != &**literal {
                        return None;
                    }
                }
                Segment::Param => capture(text),
                Segment::Mixed(tokens) => match_tokens(tokens, text, capture)?,
            }
            rest = after;
        }
        if self.wildcard {
            // `rest` is empty or starts with the slashes after the last segment.
            Some(rest.trim_start_matches('/'))
        } else if rest.is_empty() {
            Some("")
        } else {
            None
        }
    }

    #[cfg(test)]
    fn component_route(&self) -> &str {
        component_route(&self.raw)
    }
}

fn match_tokens<'p>(
    tokens: &[Token],
    text: &'p str,
    capture: &mut impl FnMut(&'p str),
) -> Option<()> {
    let mut rest = text;
    for (i, token) in tokens.iter().enumerate() {
        match token {
            Token::Literal(literal) => rest = rest.strip_prefix(&**literal)?,
            Token::Dot => rest = rest.strip_prefix('.')?,
            Token::Param => {
                let end = match tokens.get(i + 1) {
                    Some(Token::Dot) => rest.find('.')?,
                    _ => rest.len(),
                };
                if end == 0 {
                    return None;
                }
                capture(&rest[..end]);
                rest = &rest[end..];
            }
        }
    }
    rest.is_empty().then_some(())
}

/// Spin's `absolutize` then strip one trailing slash.
fn normalize(s: &str) -> String {
    let mut s = if s.starts_with('/') {
        s.to_string()
    } else {
        format!("/{s}")
    };
    if s.ends_with('/') {
        s.pop();
    }
    s
}

fn route_error(raw: &str, message: impl Into<String>) -> RouteError {
    RouteError {
        route: raw.to_string(),
        message: message.into(),
    }
}

/// Parses one route (already prefixed with the base).
fn compile(component: String, raw: &str, based: String) -> Result<CompiledRoute, RouteError> {
    let (body, wildcard) = if let Some(body) = based.strip_suffix("/...") {
        (body, true)
    } else if let Some(body) = based.strip_suffix("/*") {
        (body, true)
    } else {
        (based.as_str(), false)
    };
    let mut segments = Vec::new();
    let mut params = Vec::new();
    for section in body.split('/').filter(|s| !s.is_empty()) {
        if section == "..." {
            return Err(route_error(
                raw,
                format!(
                    "`...` can only end a route, as in `/prefix/...`, where it matches the rest of the path; {ROUTE_HELP}"
                ),
            ));
        }
        if let Some(prefix) = section.strip_suffix("...") {
            return Err(route_error(
                raw,
                format!(
                    "`{section}` is not a wildcard: write `/{prefix}/...` to match `/{prefix}` and every path below it"
                ),
            ));
        }
        if section == "*" {
            return Err(route_error(
                raw,
                format!(
                    "`*` can only end a route; write `/prefix/...` for a trailing wildcard or `:name` for one segment; {ROUTE_HELP}"
                ),
            ));
        }
        if let Some(name) = section.strip_prefix('*') {
            return Err(route_error(
                raw,
                format!(
                    "`{section}`: wildcards are not named; write `/...` at the end of the route, or `:{name}` for one segment"
                ),
            ));
        }
        let mut tokens: Vec<Token> = Vec::new();
        for (i, piece) in section.split('.').enumerate() {
            if i > 0 {
                match tokens.last_mut() {
                    Some(Token::Literal(literal)) => *literal = format!("{literal}.").into(),
                    _ => tokens.push(Token::Dot),
                }
            }
            if let Some(name) = piece.strip_prefix(':') {
                if name.is_empty() {
                    return Err(route_error(
                        raw,
                        format!("`:` needs a name, as in `/users/:id`; {ROUTE_HELP}"),
                    ));
                }
                let header = format!(
                    "spin-path-match-{}",
                    name.to_ascii_lowercase().replace('_', "-")
                );
                params.push(Param {
                    header: HeaderName::from_bytes(header.as_bytes()).ok(),
                });
                tokens.push(Token::Param);
            } else if !piece.is_empty() {
                match tokens.last_mut() {
                    Some(Token::Literal(literal)) => *literal = format!("{literal}{piece}").into(),
                    _ => tokens.push(Token::Literal(piece.into())),
                }
            }
        }
        segments.push(match tokens.as_slice() {
            [Token::Literal(literal)] => Segment::Literal(literal.clone()),
            [Token::Param] => Segment::Param,
            _ => Segment::Mixed(tokens.into()),
        });
    }
    let header_values = RouteHeaderValues {
        matched_route: shared_value(&based),
        raw_component_route: shared_value(raw),
        component_route: shared_value(component_route(raw)),
    };
    Ok(CompiledRoute {
        component: component.into(),
        raw: raw.into(),
        based: based.as_str().into(),
        segments: segments.into(),
        wildcard,
        params: params.into(),
        header_values,
    })
}

impl Router {
    /// `routes`: (component id, route as written in the manifest). Private routes are not passed in.
    /// `base`: the app's base path from `[application.trigger.http] base` (default "/"); Spin
    /// prefixes routes with it. (Spin 2/3 refuse apps whose base is not `/`; Kiln supports it.)
    pub fn build(
        base: &str,
        routes: impl IntoIterator<Item = (String, String)>,
    ) -> Result<Router, RouteError> {
        let base_path = shared_value(if base.is_empty() { "/" } else { base });
        let base = normalize(base);
        // (component, route as written, position among `routes`)
        let mut entries: Vec<(String, String, usize)> = Vec::new();
        let mut seen: HashMap<String, usize> = HashMap::new();
        let mut duplicates = Vec::new();
        for (declared, (component, raw)) in routes.into_iter().enumerate() {
            match seen.get(&raw) {
                Some(&i) => {
                    let based = format!("{base}{}", normalize(&raw));
                    let replaced = std::mem::replace(&mut entries[i].0, component.clone());
                    let replaced_declaration = std::mem::replace(&mut entries[i].2, declared);
                    duplicates.push(DuplicateRoute {
                        route: if based.is_empty() {
                            "/".to_string()
                        } else {
                            based
                        },
                        replaced_component: replaced,
                        effective_component: component,
                        replaced_declaration,
                    });
                }
                None => {
                    seen.insert(raw.clone(), entries.len());
                    entries.push((component, raw, declared));
                }
            }
        }
        let mut compiled = Vec::with_capacity(entries.len());
        for (component, raw, _) in entries {
            let based = format!("{base}{}", normalize(&raw));
            compiled.push(compile(component, &raw, based)?);
        }
        let mut by_precedence: Vec<usize> = (0..compiled.len()).collect();
        by_precedence.sort_by(|&a, &b| compiled[a].precedence(&compiled[b]));
        Ok(Router {
            routes: compiled,
            by_precedence,
            duplicates,
            base_path,
        })
    }

    /// The best route for a request path (without the query), or `None` (404).
    pub fn route<'a>(&'a self, path: &str) -> Option<RouteMatch<'a>> {
        let trimmed = path.trim_start_matches('/').trim_end_matches('/');
        let route = self
            .by_precedence
            .iter()
            .map(|&i| &self.routes[i])
            .find(|route| route.match_path(trimmed, &mut |_| {}).is_some())?;
        let mut buf = String::new();
        let mut info_len = 0;
        if route.wildcard || !route.params.is_empty() {
            let mut values: Vec<&str> = Vec::new();
            let mut record = |value| {
                if !route.params.is_empty() {
                    values.push(value);
                }
            };
            let tail = route.match_path(trimmed, &mut record)?;
            if route.wildcard {
                // Spin's `trailing_wildcard`: routefinder drops trailing slashes, Spin puts one back.
                let trailing_slash = path.ends_with('/');
                if !tail.is_empty() {
                    buf.push('/');
                    buf.push_str(tail);
                }
                if trailing_slash {
                    buf.push('/');
                }
                info_len = buf.len();
            }
            for value in values {
                buf.push('/');
                buf.push_str(value);
            }
        }
        Some(RouteMatch {
            route,
            base_path: self.base_path.as_ref(),
            buf,
            info_len,
        })
    }

    /// (component, route as written), in manifest order, for the startup banner.
    pub fn routes(&self) -> impl Iterator<Item = (&str, &str)> {
        self.routes.iter().map(|r| (&*r.component, &*r.raw))
    }

    /// Routes declared more than once (all but the last declaration are unreachable).
    pub fn duplicates(&self) -> &[DuplicateRoute] {
        &self.duplicates
    }

    /// True if a route is under `well_known_prefix` ([`WELL_KNOWN_PREFIX`], under the mount point in
    /// platform mode), which the host answers itself.
    pub fn contains_reserved_route(&self, well_known_prefix: &str) -> bool {
        self.routes
            .iter()
            .any(|r| r.based.starts_with(well_known_prefix))
    }
}

/// The route chosen for a request.
#[derive(Debug, Clone)]
pub struct RouteMatch<'a> {
    route: &'a CompiledRoute,
    base_path: Option<&'a HeaderValue>,
    /// `spin-path-info`, then `/value` for each param.
    buf: String,
    info_len: usize,
}

impl<'a> RouteMatch<'a> {
    pub fn component_id(&self) -> &'a str {
        &self.route.component
    }

    /// As written in the manifest, e.g. "/base/:a/:b/...".
    pub fn raw_route(&self) -> &'a str {
        &self.route.raw
    }

    /// The raw route with the base prefixed (`spin-matched-route`); "" for `/` under base `/`, as in
    /// Spin.
    #[cfg(test)]
    pub fn matched_route(&self) -> &'a str {
        &self.route.based
    }

    /// The raw route without a trailing "/..." (`spin-component-route`); "" for `/...`.
    #[cfg(test)]
    pub fn component_route(&self) -> &'a str {
        self.route.component_route()
    }

    /// The part matched by the trailing wildcard (`spin-path-info`): for `/test/...`, "" for `/test`,
    /// "/" for `/test/`, "/hello" for `/test/hello`, "/hello/" for `/test/hello/`. "" for routes
    /// without a trailing wildcard.
    pub fn path_info(&self) -> &str {
        &self.buf[..self.info_len]
    }
}

const SPIN_FULL_URL: HeaderName = HeaderName::from_static("spin-full-url");
const SPIN_PATH_INFO: HeaderName = HeaderName::from_static("spin-path-info");
const SPIN_MATCHED_ROUTE: HeaderName = HeaderName::from_static("spin-matched-route");
const SPIN_BASE_PATH: HeaderName = HeaderName::from_static("spin-base-path");
const SPIN_RAW_COMPONENT_ROUTE: HeaderName = HeaderName::from_static("spin-raw-component-route");
const SPIN_COMPONENT_ROUTE: HeaderName = HeaderName::from_static("spin-component-route");
const SPIN_CLIENT_ADDR: HeaderName = HeaderName::from_static("spin-client-addr");

/// Exactly Spin's injected request headers, in Spin's order: `spin-path-info`, `spin-full-url`,
/// `spin-matched-route`, `spin-base-path`, `spin-raw-component-route`, `spin-component-route`,
/// `spin-client-addr`, then `spin-path-match-<name>` per `:name` (lower case, `_` as `-`).
///
/// `authority` is what Spin uses: the `Host` header (Spin falls back to `localhost`).
/// `spin-base-path` is the router's base (Spin always sends `/`, the only base it accepts). A value that cannot
/// be a header value is left out rather than sent mangled; nothing here panics on request data.
///
/// Each header goes to `add` as it is made, straight into the request's map: no list in between.
pub fn add_spin_headers(
    m: &RouteMatch<'_>,
    scheme: &str,
    authority: &str,
    path_and_query: &str,
    client_addr: &HeaderValue,
    mut add: impl FnMut(HeaderName, HeaderValue),
) {
    let text = |value: &str| HeaderValue::from_bytes(value.as_bytes()).ok();
    // Written once, into the buffer the header value keeps.
    let mut url = String::with_capacity(scheme.len() + 3 + authority.len() + path_and_query.len());
    for part in [scheme, "://", authority, path_and_query] {
        url.push_str(part);
    }
    let route = &m.route.header_values;
    let fixed: [_; FIXED_SPIN_HEADERS] = [
        (SPIN_PATH_INFO, text(m.path_info())),
        (SPIN_FULL_URL, HeaderValue::try_from(url).ok()),
        (SPIN_MATCHED_ROUTE, route.matched_route.clone()),
        (SPIN_BASE_PATH, m.base_path.cloned()),
        (SPIN_RAW_COMPONENT_ROUTE, route.raw_component_route.clone()),
        (SPIN_COMPONENT_ROUTE, route.component_route.clone()),
        (SPIN_CLIENT_ADDR, Some(client_addr.clone())),
    ];
    for (name, value) in fixed {
        if let Some(value) = value {
            add(name, value);
        }
    }
    let values = m.buf[m.info_len..].split('/').skip(1);
    for (param, value) in m.route.params.iter().zip(values) {
        if let (Some(name), Some(value)) = (&param.header, text(value)) {
            add(name.clone(), value);
        }
    }
}

/// Spin's headers every route gets: all of [`add_spin_headers`]' but `spin-path-match-<name>`.
const FIXED_SPIN_HEADERS: usize = 7;

/// How many headers [`add_spin_headers`] adds at most for `m`.
pub fn spin_header_count(m: &RouteMatch<'_>) -> usize {
    FIXED_SPIN_HEADERS + m.route.params.len()
}

/// [`add_spin_headers`]' headers as a list, in order.
#[cfg(test)]
pub fn spin_headers(m: &RouteMatch<'_>, scheme: &str, authority: &str, path_and_query: &str, client_addr: &HeaderValue) -> Vec<(HeaderName, HeaderValue)> {
    let mut headers = Vec::new();
    add_spin_headers(m, scheme, authority, path_and_query, client_addr, |name, value| headers.push((name, value)));
    headers
}

#[cfg(test)]
#[path = "routing_fuzz.rs"]
mod fuzz;

#[cfg(test)]
mod tests {
    use super::*;

    fn router(routes: &[(&str, &str)]) -> Router {
        router_with_base("/", routes)
    }

    fn router_with_base(base: &str, routes: &[(&str, &str)]) -> Router {
        Router::build(
            base,
            routes.iter().map(|(c, r)| (c.to_string(), r.to_string())),
        )
        .unwrap_or_else(|e| panic!("{e}"))
    }

    fn component(r: &Router, path: &str) -> Option<String> {
        r.route(path).map(|m| m.component_id().to_string())
    }

    /// `name=value` for each `spin-path-match-<name>` header of a match, in route order.
    fn named(m: &RouteMatch<'_>) -> Vec<String> {
        let client = &crate::ClientAddr::new("127.0.0.1:1".parse().unwrap()).header().clone();
        spin_headers(m, "http", "h", "/", client)
            .iter()
            .filter_map(|(n, v)| {
                let name = n.as_str().strip_prefix("spin-path-match-")?;
                Some(format!("{name}={}", String::from_utf8_lossy(v.as_bytes())))
            })
            .collect()
    }

    fn header<'h>(headers: &'h [(HeaderName, HeaderValue)], name: &str) -> Option<&'h str> {
        headers
            .iter()
            .find(|(n, _)| n == name)
            .map(|(_, v)| v.to_str().unwrap())
    }

    // ---- Spin's routes.rs tests ----

    #[test]
    fn test_router_exact() {
        let r = router(&[("foo", "/foo"), ("foobar", "/foo/bar")]);
        assert_eq!(component(&r, "/foo").unwrap(), "foo");
        assert_eq!(component(&r, "/foo/bar").unwrap(), "foobar");
    }

    #[test]
    fn test_router_respects_base() {
        let r = router_with_base("/base", &[("foo", "/foo"), ("foobar", "/foo/bar")]);
        assert_eq!(component(&r, "/base/foo").unwrap(), "foo");
        assert_eq!(component(&r, "/base/foo/bar").unwrap(), "foobar");
        assert_eq!(component(&r, "/foo"), None);
        let r = router_with_base("/base/", &[("foo", "/foo")]);
        assert_eq!(component(&r, "/base/foo").unwrap(), "foo");
        assert_eq!(r.route("/base/foo").unwrap().matched_route(), "/base/foo");
        assert_eq!(r.route("/base/foo").unwrap().raw_route(), "/foo");
    }

    #[test]
    fn test_router_wildcard() {
        let r = router(&[("all", "/...")]);
        assert_eq!(component(&r, "/foo/bar").unwrap(), "all");
        assert_eq!(component(&r, "/abc/").unwrap(), "all");
        assert_eq!(component(&r, "/").unwrap(), "all");
        assert_eq!(
            component(&r, "/this/should/be/captured?abc=def").unwrap(),
            "all"
        );
    }

    #[test]
    fn test_router_respects_longest_match() {
        let r = router(&[
            ("one_wildcard", "/one/..."),
            ("onetwo_wildcard", "/one/two/..."),
            ("onetwothree_wildcard", "/one/two/three/..."),
        ]);
        assert_eq!(
            component(&r, "/one/two/three/four").unwrap(),
            "onetwothree_wildcard"
        );
        // ...regardless of order
        let r = router(&[
            ("onetwothree_wildcard", "/one/two/three/..."),
            ("onetwo_wildcard", "/one/two/..."),
            ("one_wildcard", "/one/..."),
        ]);
        assert_eq!(
            component(&r, "/one/two/three/four").unwrap(),
            "onetwothree_wildcard"
        );
        assert_eq!(component(&r, "/one/two/thre").unwrap(), "onetwo_wildcard");
        assert_eq!(component(&r, "/one/two").unwrap(), "onetwo_wildcard");
        assert_eq!(component(&r, "/one").unwrap(), "one_wildcard");
        assert_eq!(component(&r, "/on"), None);
    }

    #[test]
    fn test_router_exact_beats_wildcard() {
        let r = router(&[("wildcard", "/..."), ("one_exact", "/one")]);
        assert_eq!(component(&r, "/one").unwrap(), "one_exact");
        assert_eq!(component(&r, "/one/").unwrap(), "one_exact");
        assert_eq!(component(&r, "/one/two").unwrap(), "wildcard");
        let r = router(&[("prefix", "/one/..."), ("exact", "/one")]);
        assert_eq!(component(&r, "/one").unwrap(), "exact");
        assert_eq!(component(&r, "/one/x").unwrap(), "prefix");
        let r = router(&[("all", "/..."), ("root", "/")]);
        assert_eq!(component(&r, "/").unwrap(), "root");
        assert_eq!(component(&r, "/x").unwrap(), "all");
    }

    #[test]
    fn sensible_routes_are_reachable() {
        let r = router(&[
            ("/", "/"),
            ("/foo", "/foo"),
            ("/bar", "/bar"),
            ("/whee/...", "/whee/..."),
        ]);
        assert_eq!(r.routes().count(), 4);
        assert!(r.duplicates().is_empty());
        assert_eq!(component(&r, "/").unwrap(), "/");
        assert_eq!(component(&r, "/foo").unwrap(), "/foo");
        assert_eq!(component(&r, "/bar").unwrap(), "/bar");
        assert_eq!(component(&r, "/whee/x").unwrap(), "/whee/...");
        assert_eq!(component(&r, "/baz"), None);
    }

    #[test]
    fn order_of_reachable_routes_is_preserved() {
        let r = router(&[
            ("comp-/", "/"),
            ("comp-/foo", "/foo"),
            ("comp-/bar", "/bar"),
            ("comp-/whee/...", "/whee/..."),
        ]);
        let listed: Vec<_> = r.routes().collect();
        assert_eq!(
            listed,
            [
                ("comp-/", "/"),
                ("comp-/foo", "/foo"),
                ("comp-/bar", "/bar"),
                ("comp-/whee/...", "/whee/...")
            ]
        );
    }

    #[test]
    fn duplicate_routes_are_unreachable_and_last_one_wins() {
        let r = router(&[
            ("comp-/", "/"),
            ("comp-first /foo", "/foo"),
            ("comp-second /foo", "/foo"),
            ("comp-/whee/...", "/whee/..."),
        ]);
        assert_eq!(r.routes().count(), 3);
        assert_eq!(r.duplicates().len(), 1);
        assert_eq!(r.routes().nth(1).unwrap(), ("comp-second /foo", "/foo"));
        assert_eq!(r.duplicates()[0].replaced_component, "comp-first /foo");
        assert_eq!(r.duplicates()[0].effective_component, "comp-second /foo");
        assert_eq!(component(&r, "/foo").unwrap(), "comp-second /foo");
    }

    #[test]
    fn duplicate_routes_reporting_is_faithful() {
        let r = router(&[
            ("comp-first /", "/"),
            ("comp-second /", "/"),
            ("comp-first /foo", "/foo"),
            ("comp-second /foo", "/foo"),
            ("comp-first /...", "/..."),
            ("comp-second /...", "/..."),
            ("comp-first /whee/...", "/whee/..."),
            ("comp-second /whee/...", "/whee/..."),
        ]);
        let d = r.duplicates();
        assert_eq!(
            (d[0].replaced_component.as_str(), d[0].route.as_str()),
            ("comp-first /", "/")
        );
        assert_eq!(
            (d[1].replaced_component.as_str(), d[1].route.as_str()),
            ("comp-first /foo", "/foo")
        );
        assert_eq!(
            (d[2].replaced_component.as_str(), d[2].route.as_str()),
            ("comp-first /...", "/...")
        );
        assert_eq!(
            (d[3].replaced_component.as_str(), d[3].route.as_str()),
            ("comp-first /whee/...", "/whee/...")
        );
        let replaced: Vec<usize> = d.iter().map(|dup| dup.replaced_declaration).collect();
        assert_eq!(replaced, [0, 2, 4, 6]);
    }

    #[test]
    fn duplicate_routes_warning_reads_like_spin() {
        let r = router(&[
            ("a", "/foo"),
            ("b", "/"),
            ("c", "/foo"),
            ("d", "/foo"),
            ("e", "/"),
        ]);
        assert_eq!(
            r.duplicates()
                .iter()
                .map(|dup| dup.replaced_declaration)
                .collect::<Vec<_>>(),
            [0, 2, 1]
        );
        let warning = duplicates_warning(r.duplicates(), |i| {
            (i != 1).then(|| format!("spin.toml:{}:9", i + 10))
        })
        .unwrap();
        assert_eq!(
            warning,
            "The following component routes are duplicates and will never be used:\n  \
             a: /foo (duplicate of c) at spin.toml:10:9\n  \
             c: /foo (duplicate of d) at spin.toml:12:9\n  \
             b: / (duplicate of e)"
        );
        let based = router_with_base("/api", &[("a", "/x"), ("b", "/x")]);
        assert!(
            duplicates_warning(based.duplicates(), |_| None)
                .unwrap()
                .ends_with("\n  a: /api/x (duplicate of b)")
        );
        let distinct = router(&[("a", "/x"), ("b", "/y")]);
        assert_eq!(duplicates_warning(distinct.duplicates(), |_| None), None);
    }

    #[test]
    fn trailing_wildcard_is_captured() {
        let r = router(&[("comp", "/...")]);
        assert_eq!(r.route("/1/2/3").unwrap().path_info(), "/1/2/3");
        let r = router(&[("comp", "/1/...")]);
        assert_eq!(r.route("/1/2/3").unwrap().path_info(), "/2/3");
    }

    #[test]
    fn trailing_wildcard_respects_trailing_slash() {
        let r = router(&[("comp", "/test/...")]);
        assert_eq!(r.route("/test").unwrap().path_info(), "");
        assert_eq!(r.route("/test/").unwrap().path_info(), "/");
        assert_eq!(r.route("/test/hello").unwrap().path_info(), "/hello");
        assert_eq!(r.route("/test/hello/").unwrap().path_info(), "/hello/");
        assert!(r.route("/testing").is_none());
        assert!(r.route("/tes").is_none());
        let r = router(&[("comp", "/...")]);
        assert_eq!(r.route("/").unwrap().path_info(), "/");
    }

    #[test]
    fn named_wildcard_is_captured() {
        let r = router(&[("comp", "/1/:two/3")]);
        let m = r.route("/1/2/3").unwrap();
        assert_eq!(named(&m), ["two=2"]);
        assert_eq!(m.path_info(), "");
        let r = router(&[("comp", "/1/:two/...")]);
        let m = r.route("/1/2/3").unwrap();
        assert_eq!(named(&m), ["two=2"]);
        assert_eq!(m.path_info(), "/3");
    }

    #[test]
    fn reserved_routes() {
        let reserved =
            |route: &str| router(&[("c", route)]).contains_reserved_route(WELL_KNOWN_PREFIX);
        assert!(reserved("/.well-known/spin/..."));
        assert!(reserved("/.well-known/spin/fie"));
        assert!(!reserved("/.well-known/spindle/..."));
        assert!(!reserved("/.well-known/spi/..."));
        assert!(!reserved("/.well-known/spin"));
        // under a base, the route is not where the host answers; with the app mounted at `/api`
        // (the mount is part of the base then), the host answers `/api/.well-known/spin/`
        let r = router_with_base("/api", &[("c", "/.well-known/spin/...")]);
        assert!(!r.contains_reserved_route(WELL_KNOWN_PREFIX));
        assert!(r.contains_reserved_route("/api/.well-known/spin/"));
    }

    // ---- routefinder's documented precedence ----

    #[test]
    fn routefinder_precedence() {
        let r = router(&[
            ("1", "/*"),
            ("2", "/hello"),
            ("3", "/:greeting"),
            ("4", "/hey/:world"),
            ("5", "/hey/earth"),
            ("6", "/:greeting/:world/*"),
        ]);
        assert_eq!(component(&r, "/hey/earth").unwrap(), "5");
        let m = r.route("/hey/mars").unwrap();
        assert_eq!(m.component_id(), "4");
        assert_eq!(named(&m), ["world=mars"]);
        assert_eq!(component(&r, "/hello").unwrap(), "2");
        assert_eq!(component(&r, "/hey").unwrap(), "3");
        let m = r.route("/yo/planet/check/this/out").unwrap();
        assert_eq!(m.component_id(), "6");
        assert_eq!(m.path_info(), "/check/this/out");
        assert_eq!(named(&m), ["greeting=yo", "world=planet"]);
        assert_eq!(m.component_route(), "/:greeting/:world/*");
        assert_eq!(component(&r, "/").unwrap(), "1");
    }

    #[test]
    fn named_segments_and_literals() {
        let r = router(&[
            ("by-id", "/users/:id"),
            ("me", "/users/me"),
            ("all", "/users/..."),
            ("edit", "/users/:id/edit"),
        ]);
        assert_eq!(component(&r, "/users/me").unwrap(), "me");
        assert_eq!(component(&r, "/users/42").unwrap(), "by-id");
        assert_eq!(component(&r, "/users/42/").unwrap(), "by-id");
        assert_eq!(component(&r, "/users/42/edit").unwrap(), "edit");
        assert_eq!(component(&r, "/users/42/other").unwrap(), "all");
        assert_eq!(component(&r, "/users").unwrap(), "all");
        assert_eq!(component(&r, "/users/").unwrap(), "all");
        // a literal segment beats a param at the first difference, even before a wildcard
        let r = router(&[("param", "/a/:x/c"), ("literal", "/a/b/...")]);
        assert_eq!(component(&r, "/a/b/c").unwrap(), "literal");
        assert_eq!(component(&r, "/a/z/c").unwrap(), "param");
        // ties go to the first declared
        let r = router(&[("x", "/a/:x"), ("y", "/a/:y")]);
        assert_eq!(component(&r, "/a/1").unwrap(), "x");
    }

    #[test]
    fn dotted_segments() {
        let r = router(&[
            ("json", "/files/:name.json"),
            ("any", "/files/:name"),
            ("index", "/files/index.json"),
            ("v", "/api/v.:version"),
        ]);
        assert_eq!(component(&r, "/files/index.json").unwrap(), "index");
        let m = r.route("/files/report.json").unwrap();
        assert_eq!(m.component_id(), "json");
        assert_eq!(named(&m), ["name=report"]);
        assert_eq!(component(&r, "/files/report.txt").unwrap(), "any");
        assert_eq!(component(&r, "/files/a.b.json").unwrap(), "any");
        let m = r.route("/api/v.2").unwrap();
        assert_eq!(named(&m), ["version=2"]);
        assert_eq!(component(&r, "/api/v."), None);
    }

    #[test]
    fn slashes_in_paths() {
        let r = router(&[("exact", "/a/b"), ("prefix", "/p/...")]);
        assert_eq!(component(&r, "/a/b").unwrap(), "exact");
        assert_eq!(component(&r, "/a/b/").unwrap(), "exact");
        assert_eq!(component(&r, "//a//b//").unwrap(), "exact");
        assert_eq!(component(&r, "/ab"), None);
        assert_eq!(component(&r, "/a"), None);
        assert_eq!(component(&r, "/a/b/c"), None);
        assert_eq!(component(&r, "/a/bc"), None);
        assert_eq!(r.route("/p//x//y//").unwrap().path_info(), "/x//y/");
        assert_eq!(component(&r, "/pp"), None);
        assert_eq!(component(&r, ""), None);
        assert_eq!(component(&r, "*"), None);
    }

    #[test]
    fn trailing_slash_in_route() {
        // Spin strips one trailing slash from the route; the raw route is kept for the headers
        let r = router(&[("c", "/foo/")]);
        let m = r.route("/foo").unwrap();
        assert_eq!(
            (m.raw_route(), m.matched_route(), m.component_route()),
            ("/foo/", "/foo", "/foo/")
        );
        assert!(r.route("/foo/").is_some());
    }

    #[test]
    fn routes_without_leading_slash_are_absolutized() {
        let r = router(&[("c", "hello"), ("d", "files/...")]);
        assert_eq!(component(&r, "/hello").unwrap(), "c");
        assert_eq!(r.route("/hello").unwrap().matched_route(), "/hello");
        assert_eq!(r.route("/hello").unwrap().raw_route(), "hello");
        assert_eq!(r.route("/files/x").unwrap().path_info(), "/x");
        let r = router(&[("root", "")]);
        assert_eq!(component(&r, "/").unwrap(), "root");
    }

    #[test]
    fn root_route() {
        let r = router(&[("root", "/")]);
        let m = r.route("/").unwrap();
        // Spin's based route for `/` under base `/` is empty
        assert_eq!(
            (
                m.raw_route(),
                m.matched_route(),
                m.component_route(),
                m.path_info()
            ),
            ("/", "", "/", "")
        );
        assert!(r.route("/x").is_none());
        let all = router(&[("all", "/...")]);
        let m = all.route("/a").unwrap();
        assert_eq!(
            (m.raw_route(), m.matched_route(), m.component_route()),
            ("/...", "/...", "")
        );
    }

    #[test]
    fn invalid_routes() {
        let bad = |route: &str| {
            Router::build("/", [("c".to_string(), route.to_string())]).expect_err(route)
        };
        for route in [
            "/a/.../b",
            "/.../b",
            "/a/:",
            "/:/b",
            "/a/*/b",
            "/a/*rest",
            "/files...",
            "/x/:.json",
        ] {
            let e = bad(route);
            assert_eq!(e.route, route);
            assert!(!e.message.is_empty());
        }
        assert!(bad("/a/.../b").message.contains("`/prefix/...`"));
        assert!(bad("/a/:").message.contains("`:` needs a name"));
        assert!(bad("/files...").message.contains("`/files/...`"));
        assert_eq!(
            bad("/a/:").to_string(),
            format!("invalid route `/a/:`: {}", bad("/a/:").message)
        );
        // a bad route fails the whole build
        assert!(
            Router::build(
                "/",
                [
                    ("a".to_string(), "/ok".to_string()),
                    ("b".to_string(), "/x/.../y/...".to_string())
                ]
            )
            .is_err()
        );
    }

    #[test]
    fn star_suffix_is_a_trailing_wildcard() {
        let r = router(&[("c", "/static/*")]);
        let m = r.route("/static/css/site.css").unwrap();
        assert_eq!(m.path_info(), "/css/site.css");
        assert_eq!(m.component_route(), "/static/*");
    }

    #[test]
    fn no_allocation_for_literal_routes() {
        let r = router(&[("c", "/a/b")]);
        let m = r.route("/a/b").unwrap();
        assert_eq!(m.buf.capacity(), 0);
    }

    // ---- headers ----

    #[test]
    fn spin_compat_header_example() {
        // spin-compat.md: route `/base/:path_segment/:path_end/...`, `GET /base/path/end/rest?key=value`
        // with `Host: example.com`.
        let r = router(&[("c", "/base/:path_segment/:path_end/...")]);
        let m = r.route("/base/path/end/rest").unwrap();
        let client = &crate::ClientAddr::new("127.0.0.1:54321".parse().unwrap()).header().clone();
        let headers = spin_headers(
            &m,
            "http",
            "example.com",
            "/base/path/end/rest?key=value",
            client,
        );
        assert_eq!(header(&headers, "spin-path-info"), Some("/rest"));
        assert_eq!(
            header(&headers, "spin-component-route"),
            Some("/base/:path_segment/:path_end")
        );
        assert_eq!(
            header(&headers, "spin-path-match-path-segment"),
            Some("path")
        );
        assert_eq!(header(&headers, "spin-path-match-path-end"), Some("end"));
        assert_eq!(
            header(&headers, "spin-full-url"),
            Some("http://example.com/base/path/end/rest?key=value")
        );
        assert_eq!(
            header(&headers, "spin-matched-route"),
            Some("/base/:path_segment/:path_end/...")
        );
        assert_eq!(
            header(&headers, "spin-raw-component-route"),
            Some("/base/:path_segment/:path_end/...")
        );
        assert_eq!(header(&headers, "spin-base-path"), Some("/"));
        assert_eq!(
            header(&headers, "spin-client-addr"),
            Some("127.0.0.1:54321")
        );
        let names: Vec<&str> = headers.iter().map(|(n, _)| n.as_str()).collect();
        assert_eq!(
            names,
            [
                "spin-path-info",
                "spin-full-url",
                "spin-matched-route",
                "spin-base-path",
                "spin-raw-component-route",
                "spin-component-route",
                "spin-client-addr",
                "spin-path-match-path-segment",
                "spin-path-match-path-end",
            ]
        );
    }

    #[test]
    fn spin_default_headers_test() {
        // Spin's headers.rs `test_default_headers`
        let r = router(&[("DUMMY", "/foo/...")]);
        let m = r.route("/foo/bar").unwrap();
        let client = &crate::ClientAddr::new("127.0.0.1:8777".parse().unwrap()).header().clone();
        let headers = spin_headers(
            &m,
            "https",
            "fermyon.dev",
            "/foo/bar?key1=value1&key2=value2",
            client,
        );
        assert_eq!(
            header(&headers, "spin-full-url"),
            Some("https://fermyon.dev/foo/bar?key1=value1&key2=value2")
        );
        assert_eq!(header(&headers, "spin-path-info"), Some("/bar"));
        assert_eq!(header(&headers, "spin-matched-route"), Some("/foo/..."));
        assert_eq!(header(&headers, "spin-base-path"), Some("/"));
        assert_eq!(
            header(&headers, "spin-raw-component-route"),
            Some("/foo/...")
        );
        assert_eq!(header(&headers, "spin-component-route"), Some("/foo"));
        assert_eq!(header(&headers, "spin-client-addr"), Some("127.0.0.1:8777"));
        assert_eq!(headers.len(), 7);

        // `test_default_headers_with_named_wildcards`
        let r = router(&[("DUMMY", "/foo/:userid/...")]);
        let m = r.route("/foo/42/bar").unwrap();
        let headers = spin_headers(
            &m,
            "https",
            "fermyon.dev",
            "/foo/42/bar?key1=value1&key2=value2",
            client,
        );
        assert_eq!(
            header(&headers, "spin-full-url"),
            Some("https://fermyon.dev/foo/42/bar?key1=value1&key2=value2")
        );
        assert_eq!(header(&headers, "spin-path-info"), Some("/bar"));
        assert_eq!(
            header(&headers, "spin-matched-route"),
            Some("/foo/:userid/...")
        );
        assert_eq!(
            header(&headers, "spin-component-route"),
            Some("/foo/:userid")
        );
        assert_eq!(header(&headers, "spin-path-match-userid"), Some("42"));
    }

    #[test]
    fn exact_route_headers_and_base() {
        let r = router_with_base("/api", &[("c", "/users/:User_ID")]);
        let m = r.route("/api/users/7").unwrap();
        let client = &crate::ClientAddr::new("[::1]:9000".parse().unwrap()).header().clone();
        let headers = spin_headers(&m, "http", "localhost:3000", "/api/users/7", client);
        assert_eq!(header(&headers, "spin-path-info"), Some(""));
        assert_eq!(
            header(&headers, "spin-matched-route"),
            Some("/api/users/:User_ID")
        );
        assert_eq!(
            header(&headers, "spin-raw-component-route"),
            Some("/users/:User_ID")
        );
        assert_eq!(
            header(&headers, "spin-component-route"),
            Some("/users/:User_ID")
        );
        assert_eq!(header(&headers, "spin-base-path"), Some("/api"));
        assert_eq!(header(&headers, "spin-client-addr"), Some("[::1]:9000"));
        assert_eq!(header(&headers, "spin-path-match-user-id"), Some("7"));
        assert_eq!(
            header(&headers, "spin-full-url"),
            Some("http://localhost:3000/api/users/7")
        );
        // An empty base is `/`.
        let r = router_with_base("", &[("c", "/users/:User_ID")]);
        let m = r.route("/users/7").unwrap();
        let headers = spin_headers(&m, "http", "h", "/", client);
        assert_eq!(header(&headers, "spin-base-path"), Some("/"));
    }

    #[test]
    fn header_values_never_panic() {
        let r = router(&[("c", "/x/:name/..."), ("odd", "/y/:bad name")]);
        let client = &crate::ClientAddr::new("127.0.0.1:1".parse().unwrap()).header().clone();
        // non-ASCII and control characters in request data: skipped or kept as opaque bytes, no panic
        let m = r.route("/x/caf\u{e9}/\u{1}rest").unwrap();
        let headers = spin_headers(
            &m,
            "http",
            "ex\u{7f}ample.com",
            "/x/caf\u{e9}/\u{1}rest",
            client,
        );
        assert!(header(&headers, "spin-path-info").is_none());
        assert!(headers.iter().all(|(n, _)| n != "spin-full-url"));
        assert_eq!(
            headers
                .iter()
                .find(|(n, _)| n == "spin-path-match-name")
                .unwrap()
                .1
                .as_bytes(),
            "caf\u{e9}".as_bytes()
        );
        // a param name that cannot be a header name is left out
        let m = r.route("/y/v").unwrap();
        assert_eq!(m.component_id(), "odd");
        let headers = spin_headers(&m, "http", "h", "/y/v", client);
        assert!(
            headers
                .iter()
                .all(|(n, _)| !n.as_str().starts_with("spin-path-match"))
        );
        assert_eq!(headers.len(), 7);
    }
}
