//! A visit counter and a to-do list kept in the `default` key-value store, written with the Spin
//! Rust SDK exactly as for Spin.
//!
//! - `GET /` → `<greeting>! You are visitor number <n>.`
//! - `GET /todos` → one line per to-do: `<id>: <text>`, in order
//! - `POST /todos` with the text as body → 201 and the new id
//! - `DELETE /todos/<id>` → `deleted`, or 404

use spin_sdk::http::{IntoResponse, Method, Request, Response};
use spin_sdk::http_component;
use spin_sdk::key_value::Store;
use spin_sdk::variables;

/// Reads a decimal counter (absent → 0), adds one, stores it back.
fn bump(store: &Store, key: &str) -> anyhow::Result<u64> {
    let current = match store.get(key)? {
        Some(bytes) => String::from_utf8(bytes)?.parse::<u64>()?,
        None => 0,
    };
    let next = current + 1;
    store.set(key, next.to_string().as_bytes())?;
    Ok(next)
}

#[http_component]
fn handle(req: Request) -> anyhow::Result<impl IntoResponse> {
    let store = Store::open_default()?;
    let path = req.path().trim_end_matches('/').to_string();
    let response = match (req.method(), path.as_str()) {
        (Method::Get, "") => {
            let greeting = variables::get("greeting")?;
            let visits = bump(&store, "visits")?;
            Response::new(200, format!("{greeting}! You are visitor number {visits}.\n"))
        }
        (Method::Get, "/todos") => {
            let mut todos: Vec<(u64, String)> = Vec::new();
            for key in store.get_keys()? {
                let Some(id) = key.strip_prefix("todo:").and_then(|id| id.parse().ok()) else { continue };
                if let Some(text) = store.get(&key)? {
                    todos.push((id, String::from_utf8_lossy(&text).into_owned()));
                }
            }
            todos.sort();
            let body: String = todos.iter().map(|(id, text)| format!("{id}: {text}\n")).collect();
            Response::new(200, body)
        }
        (Method::Post, "/todos") => {
            let text = String::from_utf8_lossy(req.body()).trim().to_string();
            if text.is_empty() {
                return Ok(Response::new(400, "the to-do text is the request body\n"));
            }
            let id = bump(&store, "next-id")?;
            store.set(&format!("todo:{id}"), text.as_bytes())?;
            Response::new(201, format!("{id}\n"))
        }
        (Method::Delete, p) if p.starts_with("/todos/") => {
            let key = format!("todo:{}", &p["/todos/".len()..]);
            if store.exists(&key)? {
                store.delete(&key)?;
                Response::new(200, "deleted\n")
            } else {
                Response::new(404, "no such to-do\n")
            }
        }
        _ => Response::new(404, "not found\n"),
    };
    Ok(response)
}
