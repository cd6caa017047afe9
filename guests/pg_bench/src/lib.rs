//! The PostgreSQL benchmark's guest (bench/pg.sh): what the native baseline (bench/native-pg) does
//! and no more. `GET /?id=N` answers the `name` of row N of `items`, read with one query by
//! primary key through `spin:postgres/postgres@4.0.0` (a pooled connection from the host) at the
//! address in the `PG_ADDRESS` environment variable; an error is a 500 with its text.

mod bindings {
    wit_bindgen::generate!({ world: "bench", path: "wit", generate_all });
}

use bindings::spin::postgres::postgres::{Connection, DbValue, ParameterValue};
use std::io::Write as _;
use wasi::http::types::{Fields, IncomingRequest, OutgoingBody, OutgoingResponse, ResponseOutparam};

struct Bench;
wasi::http::proxy::export!(Bench);

impl wasi::exports::http::incoming_handler::Guest for Bench {
    fn handle(request: IncomingRequest, out: ResponseOutparam) {
        let id: i32 = request
            .path_with_query()
            .as_deref()
            .and_then(|pq| pq.split_once('?'))
            .and_then(|(_, query)| query.split('&').find_map(|p| p.strip_prefix("id=")))
            .and_then(|n| n.parse().ok())
            .unwrap_or(1);
        match name(id) {
            Ok(name) => respond(out, 200, name.as_bytes()),
            Err(error) => respond(out, 500, error.as_bytes()),
        }
    }
}

fn name(id: i32) -> Result<String, String> {
    let address = std::env::var("PG_ADDRESS").map_err(|_| "PG_ADDRESS is not set".to_string())?;
    let connection = Connection::open(&address).map_err(|e| format!("{e:?}"))?;
    let rows = connection.query("SELECT name FROM items WHERE id = $1", &[ParameterValue::Int32(id)]).map_err(|e| format!("{e:?}"))?;
    match rows.rows.into_iter().next().and_then(|row| row.into_iter().next()) {
        Some(DbValue::Str(name)) => Ok(name),
        _ => Err("no such row".to_string()),
    }
}

fn respond(out: ResponseOutparam, status: u16, body: &[u8]) {
    let headers = Fields::from_list(&[("content-length".to_string(), body.len().to_string().into_bytes())]).unwrap_or_else(|_| Fields::new());
    let response = OutgoingResponse::new(headers);
    let _ = response.set_status_code(status);
    let Ok(outgoing) = response.body() else { return };
    ResponseOutparam::set(out, Ok(response));
    if let Ok(mut stream) = outgoing.write() {
        let _ = stream.write_all(body);
        let _ = stream.blocking_flush();
    }
    let _ = OutgoingBody::finish(outgoing, None);
}
