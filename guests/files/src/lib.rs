//! File-system access through the component's preopened directories:
//! - `?path=/f`  → 200 with the file's contents, or 404 `error: <io error>`;
//! - `?write=/f` → creates/overwrites the file with `written by files guest`: 200 `wrote`, or
//!   403 `error: <io error>`;
//! - `?list=/d`  → 200 with the entry names, sorted, one per line (each followed by `\n`), or
//!   404 `error: <io error>`;
//! - none of these → 400 `usage: ?path=/file | ?write=/file | ?list=/dir`.

use guest_common::{path_with_query, query_param, text};
use wasi::http::types::{IncomingRequest, ResponseOutparam};

struct Guest;
wasi::http::proxy::export!(Guest);

impl wasi::exports::http::incoming_handler::Guest for Guest {
    fn handle(req: IncomingRequest, out: ResponseOutparam) {
        let pq = path_with_query(&req);
        if let Some(path) = query_param(&pq, "path") {
            match std::fs::read_to_string(&path) {
                Ok(s) => text(out, 200, s),
                Err(e) => text(out, 404, format!("error: {e}")),
            }
        } else if let Some(path) = query_param(&pq, "write") {
            match std::fs::write(&path, "written by files guest") {
                Ok(()) => text(out, 200, "wrote"),
                Err(e) => text(out, 403, format!("error: {e}")),
            }
        } else if let Some(dir) = query_param(&pq, "list") {
            let entries = std::fs::read_dir(&dir).and_then(|rd| {
                rd.map(|e| e.map(|e| e.file_name().to_string_lossy().into_owned()))
                    .collect::<Result<Vec<_>, _>>()
            });
            match entries {
                Ok(mut names) => {
                    names.sort();
                    text(out, 200, names.iter().map(|n| format!("{n}\n")).collect::<String>())
                }
                Err(e) => text(out, 404, format!("error: {e}")),
            }
        } else {
            text(out, 400, "usage: ?path=/file | ?write=/file | ?list=/dir")
        }
    }
}
