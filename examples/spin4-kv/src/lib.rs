//! The `spin-kv` example written for Spin 4 with spin-sdk 7, exactly as for Spin: an `async` handler
//! (it exports `wasi:http/handler@0.3.0`) keeping a visit counter and a to-do list in the `default`
//! key-value store (`spin:key-value@3.0.0`), with a greeting from a variable
//! (`spin:variables@3.0.0`).
//!
//! - `GET /` → `<greeting>! You are visitor number <n>.`
//! - `GET /todos` → one line per to-do: `<id>: <text>`, in order
//! - `POST /todos` with the text as body → 201 and the new id
//! - `DELETE /todos/<id>` → `deleted`, or 404

use spin_sdk::http::body::IncomingBodyExt;
use spin_sdk::http::{IntoResponse, Method, Request, StatusCode};
use spin_sdk::http_service;
use spin_sdk::key_value::Store;
use spin_sdk::variables;

/// Reads a decimal counter (absent → 0), adds one, stores it back.
async fn bump(store: &Store, key: &str) -> anyhow::Result<u64> {
    let current = match store.get(key).await? {
        Some(bytes) => String::from_utf8(bytes)?.parse::<u64>()?,
        None => 0,
    };
    let next = current + 1;
    store.set(key, next.to_string().as_bytes()).await?;
    Ok(next)
}

async fn todos(store: &Store) -> anyhow::Result<String> {
    let mut todos: Vec<(u64, String)> = Vec::new();
    for key in store.get_keys().await.collect().await? {
        let Some(id) = key.strip_prefix("todo:").and_then(|id| id.parse().ok()) else { continue };
        if let Some(text) = store.get(&key).await? {
            todos.push((id, String::from_utf8_lossy(&text).into_owned()));
        }
    }
    todos.sort();
    Ok(todos.iter().map(|(id, text)| format!("{id}: {text}\n")).collect())
}

#[http_service]
async fn handle(req: Request) -> anyhow::Result<impl IntoResponse> {
    let store = Store::open_default().await?;
    let path = req.uri().path().trim_end_matches('/').to_string();
    let method = req.method().clone();
    let response = match (method, path.as_str()) {
        (Method::GET, "") => {
            let greeting = variables::get("greeting").await?;
            let visits = bump(&store, "visits").await?;
            (StatusCode::OK, format!("{greeting}! You are visitor number {visits}.\n"))
        }
        (Method::GET, "/todos") => (StatusCode::OK, todos(&store).await?),
        (Method::POST, "/todos") => {
            let body = req.into_body().bytes().await.map_err(|code| anyhow::anyhow!("reading the body: {code:?}"))?;
            let text = String::from_utf8_lossy(&body).trim().to_string();
            if text.is_empty() {
                return Ok((StatusCode::BAD_REQUEST, "the to-do text is the request body\n".to_string()));
            }
            let id = bump(&store, "next-id").await?;
            store.set(format!("todo:{id}"), text.as_bytes()).await?;
            (StatusCode::CREATED, format!("{id}\n"))
        }
        (Method::DELETE, p) if p.starts_with("/todos/") => {
            let key = format!("todo:{}", &p["/todos/".len()..]);
            if store.exists(&key).await? {
                store.delete(&key).await?;
                (StatusCode::OK, "deleted\n".to_string())
            } else {
                (StatusCode::NOT_FOUND, "no such to-do\n".to_string())
            }
        }
        _ => (StatusCode::NOT_FOUND, "try GET /, GET /todos, POST /todos, DELETE /todos/<id>\n".to_string()),
    };
    Ok(response)
}
