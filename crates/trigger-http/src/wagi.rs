//! Spin's `wagi` executor: a WASI command (a wasip1 program, made a component by the engine with
//! the command adapter) run CGI-style. The request becomes the environment (RFC 3875's variables,
//! `HTTP_*` for its headers, `X_*` for Spin's), the arguments (`argv`: `${SCRIPT_NAME} ${ARGS}`)
//! and stdin; the response is what the program prints: CGI headers (`Content-Type`, `Status`,
//! `Location`, any other), a blank line, the body.

use crate::handler::{Body, text_response};
use anyhow::{Context, Result};
use bytes::Bytes;
use http::{HeaderName, HeaderValue, Response, StatusCode};
use http_body_util::{BodyExt, Full};
use kiln_engine::{CommandIo, CommandStdio, ComponentPre, KilnState};
use kiln_manifest::WagiExecutor;
use wasmtime::Store;
use wasmtime_wasi::p2::bindings::CommandPre;

/// What a program may print before its output is cut off (its writes then fail).
const MAX_OUTPUT: usize = 64 << 20;

/// A WAGI component: its `wasi:cli/run` located once, and the trigger's `argv`.
pub(crate) struct WagiPre {
    command: CommandPre<KilnState>,
    argv: String,
}

impl WagiPre {
    pub(crate) fn new(component: &ComponentPre, executor: &WagiExecutor) -> Result<WagiPre> {
        let command = CommandPre::new(component.instance_pre().clone()).map_err(anyhow::Error::from).with_context(|| {
            format!(
                "component `{}` uses the `wagi` executor but is not a program: build it as a WASI command (a `main`, \
                 e.g. `--target wasm32-wasip1` without `crate-type = [\"cdylib\"]`), or remove `executor`",
                component.id()
            )
        })?;
        Ok(WagiPre { command, argv: executor.argv.clone() })
    }

    /// The arguments and environment for `request` (whose `spin-*` headers the router has set).
    pub(crate) fn command_io(&self, parts: &http::request::Parts, body: Bytes, stdout: wasmtime_wasi::p2::pipe::MemoryOutputPipe) -> CommandIo {
        CommandIo {
            args: arguments(&self.argv, &parts.uri),
            env: environment(parts, body.len()),
            stdio: CommandStdio::Captured { stdin: body, stdout, stderr: None },
        }
    }

    /// Instantiates the program in `store` and runs it to its end. Exiting with 0 is success.
    pub(crate) async fn run(&self, store: &mut Store<KilnState>) -> wasmtime::Result<()> {
        let command = self.command.instantiate_async(&mut *store).await?;
        match command.wasi_cli_run().call_run(&mut *store).await {
            Ok(Ok(())) => Ok(()),
            Ok(Err(())) => Err(wasmtime::Error::msg("the program exited with a failure")),
            Err(err) => match err.downcast_ref::<wasmtime_wasi::I32Exit>() {
                Some(wasmtime_wasi::I32Exit(0)) => Ok(()),
                _ => Err(err),
            },
        }
    }
}

/// A fresh stdout for one run.
pub(crate) fn output_pipe() -> wasmtime_wasi::p2::pipe::MemoryOutputPipe {
    wasmtime_wasi::p2::pipe::MemoryOutputPipe::new(MAX_OUTPUT)
}

/// Reads the whole request body: a CGI program gets it on stdin.
pub(crate) async fn collect<B>(body: B) -> Result<Bytes, String>
where
    B: http_body::Body<Data = Bytes>,
    B::Error: Into<wasmtime_wasi_http::Error>,
{
    body.collect().await.map(|collected| collected.to_bytes()).map_err(|err| format!("{:?}", err.into()))
}

/// `argv` with `${SCRIPT_NAME}` (the path) and `${ARGS}` (each query key, then its value if not
/// empty, decoded) substituted, as Spin builds them.
fn arguments(argv: &str, uri: &http::Uri) -> Vec<String> {
    let query_args = || {
        form_urlencoded::parse(uri.query().unwrap_or("").as_bytes())
            .flat_map(|(key, value)| std::iter::once(key.into_owned()).chain((!value.is_empty()).then(|| value.into_owned())))
            .collect::<Vec<_>>()
    };
    argv.split_whitespace()
        .flat_map(|word| match word {
            "${ARGS}" => query_args(),
            _ => vec![word.replace("${SCRIPT_NAME}", uri.path())],
        })
        .collect()
}

/// RFC 3875's meta-variables, `HTTP_<NAME>` for every header but `Authorization` and `Connection`
/// (and Spin's own), and Spin's headers as `X_<NAME>` (`spin-full-url` → `X_FULL_URL`; the path info
/// as `PATH_INFO`).
fn environment(parts: &http::request::Parts, content_length: usize) -> Vec<(String, String)> {
    let header = |name: &str| parts.headers.get(name).and_then(|v| v.to_str().ok()).unwrap_or("").to_string();
    let (server_name, server_port) = server_name_and_port(&header("host"));
    let raw_path_info = header("spin-path-info");
    let path_info = percent_encoding::percent_decode_str(&raw_path_info).decode_utf8_lossy().into_owned();
    let path = parts.uri.path();
    let client_ip = header("spin-client-addr").rsplit_once(':').map(|(ip, _)| ip.trim_matches(['[', ']']).to_string()).unwrap_or_default();
    let mut env = vec![
        ("AUTH_TYPE".into(), String::new()),
        ("CONTENT_LENGTH".into(), content_length.to_string()),
        ("CONTENT_TYPE".into(), header("content-type")),
        ("GATEWAY_INTERFACE".into(), "CGI/1.1".into()),
        ("QUERY_STRING".into(), parts.uri.query().unwrap_or("").into()),
        ("REMOTE_ADDR".into(), client_ip.clone()),
        ("REMOTE_HOST".into(), client_ip),
        ("REMOTE_USER".into(), String::new()),
        ("REQUEST_METHOD".into(), parts.method.to_string()),
        ("SCRIPT_NAME".into(), path.strip_suffix(raw_path_info.as_str()).unwrap_or(path).to_string()),
        ("PATH_INFO".into(), path_info.clone()),
        ("PATH_TRANSLATED".into(), path_info),
        ("X_RAW_PATH_INFO".into(), raw_path_info),
        ("SERVER_NAME".into(), server_name),
        ("SERVER_PORT".into(), server_port),
        ("SERVER_PROTOCOL".into(), format!("{:?}", parts.version)),
        ("SERVER_SOFTWARE".into(), "WAGI/1".into()),
    ];
    for (name, value) in &parts.headers {
        let Ok(value) = value.to_str() else { continue };
        let name = name.as_str();
        let upper = |s: &str| s.to_ascii_uppercase().replace('-', "_");
        match name.strip_prefix("spin-") {
            Some("path-info") => {}
            Some(spin) => env.push((format!("X_{}", upper(spin)), value.to_string())),
            None if name == "authorization" || name == "connection" => {}
            None => env.push((format!("HTTP_{}", upper(name)), value.to_string())),
        }
    }
    env
}

/// `Host: name:port` → (name, port); CGI's defaults `localhost` and `80`.
fn server_name_and_port(host: &str) -> (String, String) {
    let (name, port) = match host.rsplit_once(':') {
        Some((name, port)) if !port.is_empty() && port.bytes().all(|b| b.is_ascii_digit()) => (name, port),
        _ => (host, "80"),
    };
    (if name.is_empty() { "localhost" } else { name }.to_string(), port.to_string())
}

/// The HTTP response a program printed: CGI headers up to the first blank line, then the body. It
/// must say at least one of `Content-Type`, `Status` or `Location`; `Location` without `Status` is a
/// 302.
pub(crate) fn compose_response(component: &str, output: &[u8]) -> Response<Body> {
    let Some((head, body)) = split_head(output) else {
        let reason = if output.is_empty() { "printed nothing" } else { "printed no blank line after its CGI headers" };
        return program_error(component, reason);
    };
    let mut response = Response::new(Full::new(Bytes::copy_from_slice(body)).map_err(|never| match never {}).boxed_unsync());
    let (mut sufficient, mut explicit_status) = (false, false);
    for line in String::from_utf8_lossy(head).lines() {
        let Some((name, value)) = line.split_once(':') else {
            tracing::warn!("[{component}] ignoring a CGI header line without `:`: {line:?}");
            continue;
        };
        let (name, value) = (name.trim().to_ascii_lowercase(), value.trim());
        match name.as_str() {
            "status" => {
                let code = value.split_whitespace().next().unwrap_or("");
                let Ok(status) = code.parse::<StatusCode>() else {
                    return program_error(component, &format!("printed the status `{value}`, which is not an HTTP status"));
                };
                *response.status_mut() = status;
                (sufficient, explicit_status) = (true, true);
            }
            _ => {
                let (Ok(name), Ok(value)) = (HeaderName::from_bytes(name.as_bytes()), HeaderValue::from_str(value)) else {
                    tracing::warn!("[{component}] ignoring an invalid CGI header: {line:?}");
                    continue;
                };
                if name == http::header::LOCATION && !explicit_status {
                    *response.status_mut() = StatusCode::FOUND;
                }
                sufficient |= name == http::header::CONTENT_TYPE || name == http::header::LOCATION;
                response.headers_mut().insert(name, value);
            }
        }
    }
    if !sufficient {
        return program_error(component, "printed none of `Content-Type`, `Status` or `Location` before its body");
    }
    response
}

/// (headers, body) split at the first blank line (`\n\n` or `\r\n\r\n`).
fn split_head(output: &[u8]) -> Option<(&[u8], &[u8])> {
    let lf = output.windows(2).position(|w| w == b"\n\n").map(|at| (at, at + 2));
    let crlf = output.windows(4).position(|w| w == b"\r\n\r\n").map(|at| (at, at + 4));
    let (head_end, body_start) = match (lf, crlf) {
        (Some(a), Some(b)) => if a.0 < b.0 { a } else { b },
        (a, b) => a.or(b)?,
    };
    Some((&output[..head_end], &output[body_start..]))
}

fn program_error(component: &str, reason: &str) -> Response<Body> {
    tracing::warn!("[{component}] the WAGI program {reason}");
    text_response(StatusCode::INTERNAL_SERVER_ERROR, &format!("500 Internal Server Error: the WAGI program {reason}\n"))
}

#[cfg(test)]
mod tests {
    use super::*;
    use http::Request;

    fn parts(uri: &str, headers: &[(&str, &str)]) -> http::request::Parts {
        let mut request = Request::builder().method("POST").uri(uri);
        for (name, value) in headers {
            request = request.header(*name, *value);
        }
        request.body(()).unwrap().into_parts().0
    }

    #[test]
    fn arguments_are_the_path_then_the_query_keys_and_values() {
        let uri: http::Uri = "/cgi/run?name=Ada%20L&flag&x=".parse().unwrap();
        assert_eq!(arguments("${SCRIPT_NAME} ${ARGS}", &uri), ["/cgi/run", "name", "Ada L", "flag", "x"]);
        assert_eq!(arguments("tool -v ${SCRIPT_NAME}", &uri), ["tool", "-v", "/cgi/run"]);
    }

    #[test]
    fn the_environment_is_cgi_s_with_spin_s_headers() {
        let p = parts(
            "/cgi/a%20b?q=1",
            &[("host", "example.com:8080"), ("content-type", "text/plain"), ("x-custom", "v"), ("authorization", "secret"), ("spin-path-info", "/a%20b"), ("spin-full-url", "http://example.com:8080/cgi/a%20b?q=1"), ("spin-client-addr", "127.0.0.1:5000")],
        );
        let env: std::collections::HashMap<_, _> = environment(&p, 3).into_iter().collect();
        for (name, value) in [
            ("REQUEST_METHOD", "POST"),
            ("CONTENT_LENGTH", "3"),
            ("CONTENT_TYPE", "text/plain"),
            ("QUERY_STRING", "q=1"),
            ("SCRIPT_NAME", "/cgi"),
            ("PATH_INFO", "/a b"),
            ("X_RAW_PATH_INFO", "/a%20b"),
            ("SERVER_NAME", "example.com"),
            ("SERVER_PORT", "8080"),
            ("REMOTE_ADDR", "127.0.0.1"),
            ("HTTP_X_CUSTOM", "v"),
            ("X_FULL_URL", "http://example.com:8080/cgi/a%20b?q=1"),
            ("SERVER_PROTOCOL", "HTTP/1.1"),
        ] {
            assert_eq!(env.get(name).map(String::as_str), Some(value), "{name}");
        }
        assert!(!env.contains_key("HTTP_AUTHORIZATION") && !env.contains_key("HTTP_SPIN_FULL_URL"));
    }

    async fn body_of(response: Response<Body>) -> String {
        String::from_utf8(response.into_body().collect().await.unwrap().to_bytes().to_vec()).unwrap()
    }

    #[tokio::test]
    async fn responses_are_composed_from_the_program_s_output() {
        let ok = compose_response("c", b"Content-Type: text/plain\r\nX-A: 1\r\n\r\nhello\n\nworld");
        assert_eq!((ok.status(), ok.headers()["x-a"].to_str().unwrap()), (StatusCode::OK, "1"));
        assert_eq!(body_of(ok).await, "hello\n\nworld");
        let teapot = compose_response("c", b"Status: 418 I'm a teapot\n\nshort");
        assert_eq!(teapot.status(), StatusCode::IM_A_TEAPOT);
        let redirect = compose_response("c", b"Location: /elsewhere\n\n");
        assert_eq!((redirect.status(), redirect.headers()["location"].to_str().unwrap()), (StatusCode::FOUND, "/elsewhere"));
        for bad in [&b""[..], b"no head", b"X-Only: 1\n\nbody", b"Status: many\n\n"] {
            assert_eq!(compose_response("c", bad).status(), StatusCode::INTERNAL_SERVER_ERROR, "{}", String::from_utf8_lossy(bad));
        }
    }
}
