//! Fuzz target: any set of routes is compiled or refused with an error, and any request path is
//! routed without panicking; a path that matches names one of the app's components, and a route's
//! own literal path always matches a route. Random inputs under `cargo test`; coverage-guided with
//! `cargo bolero test` (bench/fuzz.sh).

use super::*;

const FRAGMENTS: &[&str] = &["/", "a", "b", ":id", ":x.json", "...", "*", ".", "..", "//", "%2F", "é", "-", "?", "#", " "];

/// The input as routes (split on 0xFE) and a request path (after 0xFF).
fn split(input: &[u8]) -> (Vec<String>, String) {
    let (routes, path) = kiln_fuzz_input::split_at_marker(input, 0xFF);
    let routes = routes.split(|b| *b == 0xFE).map(|r| kiln_fuzz_input::assemble(r, FRAGMENTS)).collect();
    (routes, kiln_fuzz_input::assemble(path, FRAGMENTS))
}

#[test]
fn routes_and_paths() {
    bolero::check!().for_each(|input: &[u8]| {
        let (routes, path) = split(input);
        let components: Vec<(String, String)> = routes.iter().enumerate().map(|(i, r)| (format!("c{i}"), r.clone())).collect();
        let Ok(router) = Router::build("/", components.clone()) else { return };
        if let Some(found) = router.route(&path) {
            assert!(components.iter().any(|(id, _)| id == found.component_id()), "routed to an unknown component");
            let _ = (found.raw_route(), found.matched_route(), found.component_route());
        }
        for (_, route) in &components {
            let literal = route.trim_end_matches("...");
            if !route.contains(':') && !route.contains('*') && !literal.contains("...") {
                assert!(router.route(literal).is_some(), "route {route:?} does not match its own path {literal:?}");
            }
        }
    });
}
