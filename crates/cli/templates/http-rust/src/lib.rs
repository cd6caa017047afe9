//! An HTTP component: a greeting from a variable, a visit counter and a small key-value API in the
//! `default` store, and an outbound HTTP call.

use spin_sdk::http::{IntoResponse, Method, Request, Response};
use spin_sdk::http_component;
use spin_sdk::key_value::Store;
use spin_sdk::variables;

#[http_component]
async fn handle(req: Request) -> anyhow::Result<impl IntoResponse> {
    let path = req.path().to_string();
    match (req.method(), path.as_str()) {
        (Method::Get, "/") => home(),
        (_, p) if p.starts_with("/kv/") => key_value(&req, &p["/kv/".len()..]),
        (Method::Get, "/fetch") => fetch(req.query()).await,
        _ => Ok(Response::new(404, "not found\n")),
    }
}

/// The greeting (variable `greeting`) and how many times this page was seen.
fn home() -> anyhow::Result<Response> {
    let greeting = variables::get("greeting")?;
    let store = Store::open_default()?;
    let visits = match store.get("visits")? {
        Some(bytes) => String::from_utf8(bytes)?.parse::<u64>()? + 1,
        None => 1,
    };
    store.set("visits", visits.to_string().as_bytes())?;
    Ok(Response::new(200, format!("{greeting} from {{project-name}}! Visit number {visits}.\n")))
}

/// GET, PUT and DELETE one key of the `default` store.
fn key_value(req: &Request, key: &str) -> anyhow::Result<Response> {
    if key.is_empty() {
        return Ok(Response::new(400, "the key is the rest of the path: /kv/KEY\n"));
    }
    let store = Store::open_default()?;
    Ok(match req.method() {
        Method::Get => match store.get(key)? {
            Some(value) => Response::new(200, value),
            None => Response::new(404, "no such key\n"),
        },
        Method::Put => {
            store.set(key, req.body())?;
            Response::new(200, "stored\n")
        }
        Method::Delete => {
            store.delete(key)?;
            Response::new(200, "deleted\n")
        }
        _ => Response::new(405, "use GET, PUT or DELETE\n"),
    })
}

/// Fetches `?url=…` and answers with its status and body.
async fn fetch(query: &str) -> anyhow::Result<Response> {
    let Some(url) = query.split('&').find_map(|pair| pair.strip_prefix("url=")) else {
        return Ok(Response::new(400, "add ?url=…\n"));
    };
    let request = Request::get(url).build();
    let response: Response = spin_sdk::http::send(request).await?;
    let body = format!("{} {}", response.status(), String::from_utf8_lossy(response.body()));
    Ok(Response::new(200, body))
}
