//! Counts the requests this instance has seen in a static, and leaks a little memory each time:
//! with a fresh instance per request, every response is `count 1` and no marker from an earlier
//! request is ever visible. Answers `count N; saw earlier data: yes|no`.

use std::sync::Mutex;
use wasi::http::types::{IncomingRequest, ResponseOutparam};

static COUNT: Mutex<u32> = Mutex::new(0);
static SEEN: Mutex<Vec<String>> = Mutex::new(Vec::new());

struct Guest;
wasi::http::proxy::export!(Guest);

impl wasi::exports::http::incoming_handler::Guest for Guest {
    fn handle(req: IncomingRequest, out: ResponseOutparam) {
        let path = guest_common::path_with_query(&req);
        let count = {
            let mut count = COUNT.lock().unwrap();
            *count += 1;
            *count
        };
        let saw_earlier = {
            let mut seen = SEEN.lock().unwrap();
            let earlier = !seen.is_empty();
            seen.push(path);
            earlier
        };
        let body = format!("count {count}; saw earlier data: {}", if saw_earlier { "yes" } else { "no" });
        guest_common::text(out, 200, body);
    }
}
