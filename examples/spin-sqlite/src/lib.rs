//! Notes in the `default` SQLite database, written with the Spin Rust SDK (`spin_sdk::sqlite`)
//! exactly as for Spin.
//!
//! - `GET /notes` → one line per note: `<id>: <body> (<stars> stars)`, in order
//! - `POST /notes` with the body text → 201 and the new id
//! - `POST /notes/<id>/star` → the note's new star count, or 404
//! - `DELETE /notes/<id>` → `deleted`, or 404
//!
//! The table is created on first use (`CREATE TABLE IF NOT EXISTS`, the same statement as
//! `migration.sql`), so the app also runs without `--sqlite`.

use spin_sdk::http::{IntoResponse, Method, Request, Response};
use spin_sdk::http_component;
use spin_sdk::sqlite::{Connection, Value};

const SCHEMA: &str = include_str!("../migration.sql");

#[http_component]
fn handle(req: Request) -> anyhow::Result<impl IntoResponse> {
    let db = Connection::open_default()?;
    db.execute(SCHEMA.trim(), &[])?;
    let path = req.path().trim_end_matches('/').to_string();
    let segments: Vec<&str> = path.split('/').filter(|s| !s.is_empty()).collect();
    let response = match (req.method(), segments.as_slice()) {
        (Method::Get, ["notes"]) => {
            let result = db.execute("SELECT id, body, stars FROM notes ORDER BY id", &[])?;
            let mut body = String::new();
            for row in result.rows() {
                let id: i64 = row.get("id").unwrap_or_default();
                let text: &str = row.get("body").unwrap_or_default();
                let stars: i64 = row.get("stars").unwrap_or_default();
                body.push_str(&format!("{id}: {text} ({stars} stars)\n"));
            }
            Response::new(200, body)
        }
        (Method::Post, ["notes"]) => {
            let text = String::from_utf8_lossy(req.body()).trim().to_string();
            if text.is_empty() {
                return Ok(Response::new(400, "the note is the request body\n"));
            }
            db.execute("INSERT INTO notes (body) VALUES (?)", &[Value::Text(text)])?;
            let id = db.execute("SELECT last_insert_rowid()", &[])?;
            let id: i64 = id.rows.first().and_then(|r| r.get(0)).unwrap_or_default();
            Response::new(201, format!("{id}\n"))
        }
        (Method::Post, ["notes", id, "star"]) => {
            let Ok(id) = id.parse::<i64>() else { return Ok(Response::new(400, "bad id\n")) };
            db.execute("UPDATE notes SET stars = stars + 1 WHERE id = ?", &[Value::Integer(id)])?;
            let result = db.execute("SELECT stars FROM notes WHERE id = ?", &[Value::Integer(id)])?;
            match result.rows.first().and_then(|r| r.get::<i64>(0)) {
                Some(stars) => Response::new(200, format!("{stars}\n")),
                None => Response::new(404, "no such note\n"),
            }
        }
        (Method::Delete, ["notes", id]) => {
            let Ok(id) = id.parse::<i64>() else { return Ok(Response::new(400, "bad id\n")) };
            let found = db.execute("SELECT id FROM notes WHERE id = ?", &[Value::Integer(id)])?;
            if found.rows.is_empty() {
                Response::new(404, "no such note\n")
            } else {
                db.execute("DELETE FROM notes WHERE id = ?", &[Value::Integer(id)])?;
                Response::new(200, "deleted\n")
            }
        }
        _ => Response::new(404, "not found\n"),
    };
    Ok(response)
}
