//! Spin's AI inferencing (`fermyon:spin/llm@2.0.0`, the `spin_llm` guest built with spin-sdk):
//! `ai_models` grants, `[llm_compute] type = "remote_http"`, and the errors without either.
//!
//! No model can run on these machines, so the inferencing server is a small HTTP server in this
//! test speaking Spin's remote protocol (what Fermyon's `cloud-gpu` app answers): it echoes the
//! prompt upper-cased and checks the bearer token.

use crate::key_value::App;
use std::io::{BufRead, BufReader, Read, Write};
use std::net::TcpListener;

fn manifest(models: &str) -> String {
    crate::single("spin_llm", "/...", &format!("ai_models = [{models}]"))
}

/// Starts the stand-in inferencing server; returns its URL.
pub(crate) fn inferencing_server() -> String {
    let listener = TcpListener::bind("127.0.0.1:0").expect("bind the inferencing server");
    let url = format!("http://{}", listener.local_addr().expect("its address"));
    std::thread::spawn(move || {
        for stream in listener.incoming().flatten() {
            std::thread::spawn(move || answer(stream));
        }
    });
    url
}

/// One request per connection: `POST /infer` or `/embed` with a JSON body.
fn answer(stream: std::net::TcpStream) {
    let mut reader = BufReader::new(stream);
    let mut head = Vec::new();
    loop {
        let mut line = String::new();
        if reader.read_line(&mut line).unwrap_or(0) == 0 || line == "\r\n" {
            break;
        }
        head.push(line.trim_end().to_ascii_lowercase());
    }
    let header = |name: &str| head.iter().find_map(|h| h.strip_prefix(&format!("{name}: ")).map(str::to_string));
    let length: usize = header("content-length").and_then(|n| n.parse().ok()).unwrap_or(0);
    let mut body = vec![0; length];
    let _ = reader.read_exact(&mut body);
    let body = String::from_utf8_lossy(&body).into_owned();
    let path = head.first().and_then(|line| line.split(' ').nth(1)).unwrap_or("").to_string();
    let (status, json) = if header("authorization").as_deref() != Some("bearer token-123") {
        ("401 Unauthorized", "\"wrong token\"".to_string())
    } else if path == "/infer" {
        // The prompt sits between `"prompt":"` and the next quote (the test's prompts have none).
        let prompt = body.split("\"prompt\":\"").nth(1).and_then(|rest| rest.split('"').next()).unwrap_or("");
        let max_tokens = body.split("\"maxTokens\":").nth(1).and_then(|rest| rest.split([',', '}']).next()).unwrap_or("?");
        let text = format!("{} max={max_tokens}", prompt.to_uppercase());
        ("200 OK", format!(r#"{{"text":"{text}","usage":{{"promptTokenCount":2,"generatedTokenCount":4}}}}"#))
    } else if path == "/embed" {
        ("200 OK", r#"{"embeddings":[[0.25,-1],[1,0.5]],"usage":{"promptTokenCount":2}}"#.to_string())
    } else {
        ("404 Not Found", "\"no such path\"".to_string())
    };
    let mut stream = reader.into_inner();
    let _ = write!(stream, "HTTP/1.1 {status}\r\ncontent-type: application/json\r\ncontent-length: {}\r\nconnection: close\r\n\r\n{json}", json.len());
}

pub(crate) fn runtime_config(url: &str, token: &str) -> String {
    format!("[llm_compute]\ntype = \"remote_http\"\nurl = \"{url}\"\nauth_token = \"{token}\"\n")
}

#[test]
fn inferencing_and_embeddings_go_to_the_configured_server() {
    let url = inferencing_server();
    let app = App::start(&manifest(r#""llama2-chat", "all-minilm-l6-v2""#), Some(&runtime_config(&url, "token-123")), &[], &[]);
    assert_eq!(app.q(&[("op", "infer"), ("model", "llama2-chat"), ("prompt", "hello there")]), (200, "HELLO THERE max=100 (2+4)".into()));
    assert_eq!(app.q(&[("op", "infer"), ("model", "llama2-chat"), ("prompt", "x"), ("max_tokens", "7")]), (200, "X max=7 (2+4)".into()));
    assert_eq!(app.q(&[("op", "embed"), ("model", "all-minilm-l6-v2"), ("text", "a,b")]), (200, "0.25,-1\n1,0.5".into()));
    // A model the component was not given: Spin's invalid-input, and no request goes out.
    let (status, body) = app.q(&[("op", "infer"), ("model", "codellama-instruct"), ("prompt", "x")]);
    assert_eq!(status, 500);
    assert!(body.contains("InvalidInput") && body.contains("add 'codellama-instruct' to the 'ai_models' key"), "{body}");
}

#[test]
fn server_refusals_and_a_missing_llm_compute_are_runtime_errors() {
    let url = inferencing_server();
    let app = App::start(&manifest(r#""llama2-chat""#), Some(&runtime_config(&url, "not-the-token")), &[], &[]);
    let (status, body) = app.q(&[("op", "infer"), ("model", "llama2-chat"), ("prompt", "x")]);
    assert_eq!(status, 500);
    assert!(body.contains("RuntimeError") && body.contains("answered 401"), "{body}");

    // No [llm_compute], or Spin's local models (which Kiln does not run): the app loads and serves,
    // and inferencing says what to configure.
    for runtime_config in [None, Some("[llm_compute]\ntype = \"spin\"\n")] {
        let app = App::start(&manifest(r#""llama2-chat""#), runtime_config, &[], &[]);
        let (status, body) = app.q(&[("op", "infer"), ("model", "llama2-chat"), ("prompt", "x")]);
        assert_eq!(status, 500);
        assert!(body.contains("RuntimeError") && body.contains("[llm_compute] type = \\\"remote_http\\\""), "{body}");
    }
}
