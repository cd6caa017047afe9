//! Fuzz target: `allowed_outbound_hosts` patterns and request URLs, as a manifest or a guest gives
//! them, are parsed or refused and never panic; what a pattern allows is decided without panicking.
//! Random inputs under `cargo test`; coverage-guided with `cargo bolero test` (bench/fuzz.sh).

use super::*;

const FRAGMENTS: &[&str] = &[
    "http", "https", "redis", "mysql", "postgres", "mqtt", "tcp", "udp", "*", "://", ":", "/", "?", "#", "@",
    "example.com", "*.example.com", "localhost", "self", "c.spin.internal", "*.spin.internal", "127.0.0.1", "[::1]",
    "[fe80::1%eth0]", "80", "443", "8000..9000", "65536", "0", "{{ host }}", "%2e", "..", "user:pw", " ", "\u{0}", "é",
];

/// (pattern, URL) pairs built from the input: a byte 0xFF splits them.
fn split(input: &[u8]) -> (String, String) {
    let (pattern, url) = kiln_fuzz_input::split_at_marker(input, 0xFF);
    (kiln_fuzz_input::assemble(pattern, FRAGMENTS), kiln_fuzz_input::assemble(url, FRAGMENTS))
}

#[test]
fn patterns_and_urls() {
    bolero::check!().for_each(|input: &[u8]| {
        let (pattern, url) = split(input);
        let validated = validate_pattern(&pattern);
        let parsed = AllowedHosts::parse(&[pattern.as_str()]);
        // A `{{ placeholder }}` is only checked once rendered; anything else must get one verdict.
        if !pattern.contains("{{") {
            assert_eq!(validated.is_ok(), parsed.is_ok(), "validate_pattern and AllowedHosts::parse disagree on {pattern:?}");
        }
        if let Ok(allowed) = parsed {
            let _ = allowed.allows_url(&url);
            let _ = allowed.allows_self();
            let _ = allowed.allows_internal(&url);
            if let Ok(parsed_url) = OutboundUrl::parse(&url) {
                let _ = allowed.allows(&parsed_url);
            }
            if let Ok(addr) = url.parse::<SocketAddr>() {
                let _ = allowed.allows_socket_addr(addr);
                let _ = allowed.allows_udp_addr(addr);
            }
        }
    });
}
