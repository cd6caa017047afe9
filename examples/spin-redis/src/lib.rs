//! A hit counter, a set of visitors and a message channel in Redis, written with the Spin Rust SDK
//! (`spin_sdk::redis`) exactly as for Spin. The server's address comes from the `redis_host`
//! variable.
//!
//! - `GET /` → `hits: <n>` (INCR)
//! - `POST /visitors/<name>` → how many were added (SADD); `DELETE /visitors/<name>` (SREM)
//! - `GET /visitors` → the visitors, sorted, one a line (SMEMBERS)
//! - `POST /publish` with a body → publishes it on the `messages` channel
//! - `GET /ping` → `PONG` (a raw command through `execute`)

use spin_sdk::http::{IntoResponse, Method, Request, Response};
use spin_sdk::http_component;
use spin_sdk::redis::{Connection, RedisResult};
use spin_sdk::variables;

#[http_component]
fn handle(req: Request) -> anyhow::Result<impl IntoResponse> {
    let address = format!("redis://{}", variables::get("redis_host")?);
    let redis = Connection::open(&address)?;
    let path = req.path().trim_end_matches('/').to_string();
    let segments: Vec<&str> = path.split('/').filter(|s| !s.is_empty()).collect();
    let response = match (req.method(), segments.as_slice()) {
        (Method::Get, []) => Response::new(200, format!("hits: {}\n", redis.incr("hits")?)),
        (Method::Get, ["visitors"]) => {
            let mut visitors = redis.smembers("visitors")?;
            visitors.sort();
            Response::new(200, visitors.iter().map(|v| format!("{v}\n")).collect::<String>())
        }
        (Method::Post, ["visitors", name]) => {
            Response::new(200, format!("{}\n", redis.sadd("visitors", &[name.to_string()])?))
        }
        (Method::Delete, ["visitors", name]) => {
            Response::new(200, format!("{}\n", redis.srem("visitors", &[name.to_string()])?))
        }
        (Method::Post, ["publish"]) => {
            redis.publish("messages", &req.body().to_vec())?;
            Response::new(200, "published\n")
        }
        (Method::Get, ["ping"]) => match redis.execute("PING", &[])?.first() {
            Some(RedisResult::Status(s)) => Response::new(200, format!("{s}\n")),
            other => Response::new(500, format!("unexpected reply {other:?}\n")),
        },
        _ => Response::new(404, "not found\n"),
    };
    Ok(response)
}
