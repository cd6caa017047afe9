//! Momentum from a CSV of `mass,velocity` rows: writes `mass,velocity,momentum`.
//!
//! One component, three ways to run it, all the same code path ([`momentum`]):
//! - **HTTP** (`wasi:http/incoming-handler`): `POST /` a CSV, the response is the result CSV; a bad
//!   row is a `400` whose body names its line.
//! - **Command** (`wasi:cli/run`): `kiln run momentum.wasm < in.csv > out.csv` (or `wasmtime run`),
//!   or with file arguments in a granted directory: `kiln run --dir data momentum.wasm data/in.csv
//!   data/out.csv` (`momentum [IN [OUT]]`, `-` for stdin/stdout). A bad row is a message on stderr
//!   and exit code 1, and no output file.
//! - **Event**: a `[[trigger.directory]]` runs the command for each file dropped in a directory and
//!   writes what it prints to the output directory.

mod csv;

use wasi::exports::cli::run::Guest as Run;
use wasi::exports::http::incoming_handler::Guest as Handler;
use wasi::http::types::{Fields, IncomingRequest, Method, OutgoingBody, OutgoingResponse, ResponseOutparam};
use wasi::io::streams::{InputStream, OutputStream, StreamError};

pub use csv::momentum;

/// Writes may take at most this many bytes at a time (`blocking-write-and-flush`'s limit).
const WRITE_CHUNK: usize = 4096;

struct Momentum;

impl Run for Momentum {
    fn run() -> Result<(), ()> {
        // argv[0] is the program's name.
        let args = wasi::cli::environment::get_arguments();
        let input_path = args.get(1).filter(|p| *p != "-");
        let output_path = args.get(2).filter(|p| *p != "-");
        if args.len() > 3 {
            complain("usage: momentum [IN.csv|- [OUT.csv|-]]");
            return Err(());
        }
        let input = match input_path {
            Some(path) => std::fs::read(path).map_err(|err| complain(&format!("cannot read `{path}`: {err}")))?,
            None => read_all(&wasi::cli::stdin::get_stdin()).map_err(|err| complain(&format!("cannot read stdin: {err}")))?,
        };
        let output = momentum(&input).map_err(|err| complain(&err.to_string()))?;
        match output_path {
            Some(path) => std::fs::write(path, output).map_err(|err| complain(&format!("cannot write `{path}`: {err}"))),
            None => write_all(&wasi::cli::stdout::get_stdout(), output.as_bytes()).map_err(|err| complain(&format!("cannot write stdout: {err}"))),
        }
    }
}

/// Prints `momentum: <message>` on stderr (a failure exits with 1).
fn complain(message: &str) {
    let _ = write_all(&wasi::cli::stderr::get_stderr(), format!("momentum: {message}\n").as_bytes());
}

impl Handler for Momentum {
    fn handle(request: IncomingRequest, out: ResponseOutparam) {
        let (status, content_type, body) = answer(&request);
        let headers = Fields::from_list(&[("content-type".to_string(), content_type.as_bytes().to_vec())]).unwrap_or_else(|_| Fields::new());
        let response = OutgoingResponse::new(headers);
        let _ = response.set_status_code(status);
        let Ok(outgoing) = response.body() else { return };
        ResponseOutparam::set(out, Ok(response));
        if let Ok(stream) = outgoing.write() {
            let _ = write_all(&stream, body.as_bytes());
        }
        let _ = OutgoingBody::finish(outgoing, None);
    }
}

/// Status, content type and body for one request.
fn answer(request: &IncomingRequest) -> (u16, &'static str, String) {
    if !matches!(request.method(), Method::Post) {
        return (405, "text/plain", "POST a CSV of mass,velocity rows\n".into());
    }
    let input = match request.consume().ok().and_then(|body| body.stream().ok().map(|stream| (read_all(&stream), body))) {
        Some((Ok(input), _body)) => input,
        Some((Err(err), _)) => return (400, "text/plain", format!("cannot read the request body: {err}\n")),
        None => return (500, "text/plain", "the request body is not readable\n".into()),
    };
    match momentum(&input) {
        Ok(output) => (200, "text/csv", output),
        Err(err) => (400, "text/plain", format!("{err}\n")),
    }
}

fn read_all(stream: &InputStream) -> Result<Vec<u8>, String> {
    let mut out = Vec::new();
    loop {
        match stream.blocking_read(64 * 1024) {
            Ok(chunk) => out.extend_from_slice(&chunk),
            Err(StreamError::Closed) => return Ok(out),
            Err(StreamError::LastOperationFailed(err)) => return Err(err.to_debug_string()),
        }
    }
}

fn write_all(stream: &OutputStream, bytes: &[u8]) -> Result<(), String> {
    for chunk in bytes.chunks(WRITE_CHUNK) {
        stream.blocking_write_and_flush(chunk).map_err(|err| match err {
            StreamError::Closed => "closed".to_string(),
            StreamError::LastOperationFailed(err) => err.to_debug_string(),
        })?;
    }
    Ok(())
}

wasi::cli::command::export!(Momentum);
wasi::http::proxy::export!(Momentum);
