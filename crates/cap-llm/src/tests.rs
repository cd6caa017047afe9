//! The protocol against a real HTTP server on a local port, and the grant checks.

use super::*;
use bytes::Bytes;
use http_body_util::{BodyExt, Full};
use std::sync::Mutex;

/// What the test server saw of each request: method, path, authorization, body.
type Seen = Arc<Mutex<Vec<(String, String, String, serde_json::Value)>>>;

/// An HTTP server speaking Spin's remote inferencing protocol on a local port: answers `/infer`
/// with the prompt upper-cased, `/embed` with one vector per input, and 401 to a wrong token.
async fn server() -> (String, Seen) {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let url = format!("http://{}/ignored/path", listener.local_addr().unwrap());
    let seen: Seen = Arc::default();
    let log = seen.clone();
    tokio::spawn(async move {
        loop {
            let (stream, _) = listener.accept().await.unwrap();
            let log = log.clone();
            tokio::spawn(async move {
                let service = hyper::service::service_fn(move |request: hyper::Request<hyper::body::Incoming>| {
                    let log = log.clone();
                    async move {
                        let (parts, body) = request.into_parts();
                        let body: serde_json::Value = serde_json::from_slice(&body.collect().await.unwrap().to_bytes()).unwrap();
                        let auth = parts.headers.get("authorization").map(|v| v.to_str().unwrap().to_string()).unwrap_or_default();
                        log.lock().unwrap().push((parts.method.to_string(), parts.uri.path().to_string(), auth.clone(), body.clone()));
                        let (status, answer) = match (auth.as_str(), parts.uri.path()) {
                            ("bearer right", "/infer") => (200, serde_json::json!({
                                "text": body["prompt"].as_str().unwrap().to_uppercase(),
                                "usage": { "promptTokenCount": 3, "generatedTokenCount": 5 },
                            })),
                            ("bearer right", "/embed") => (200, serde_json::json!({
                                "embeddings": body["input"].as_array().unwrap().iter().map(|_| [0.5, -1.0]).collect::<Vec<_>>(),
                                "usage": { "promptTokenCount": 2 },
                            })),
                            _ => (401, serde_json::json!("unauthorized")),
                        };
                        let response = hyper::Response::builder().status(status).body(Full::new(Bytes::from(answer.to_string()))).unwrap();
                        Ok::<_, std::convert::Infallible>(response)
                    }
                });
                let _ = hyper::server::conn::http1::Builder::new().serve_connection(hyper_util::rt::TokioIo::new(stream), service).await;
            });
        }
    });
    (url, seen)
}

fn state(models: &[&str], engine: Option<Arc<RemoteHttp>>) -> LlmState {
    LlmState(Arc::new(Grant { models: models.iter().map(|m| m.to_string()).collect(), engine }))
}

#[tokio::test]
async fn infer_and_embed_speak_spins_remote_protocol() {
    let (url, seen) = server().await;
    let engine = Arc::new(RemoteHttp::new(&url, "right".into()).unwrap());
    let mut state = state(&["llama2-chat", "all-minilm-l6-v2"], Some(engine));

    let result = v2::Host::infer(&mut state, "llama2-chat".into(), "say hi".into(), None).await.unwrap();
    assert_eq!(result.text, "SAY HI");
    assert_eq!((result.usage.prompt_token_count, result.usage.generated_token_count), (3, 5));
    let (method, path, auth, body) = seen.lock().unwrap()[0].clone();
    assert_eq!((method.as_str(), path.as_str(), auth.as_str()), ("POST", "/infer", "bearer right"));
    assert_eq!(body["model"], "llama2-chat");
    // Spin's defaults for a guest that passes no parameters, in the protocol's camelCase.
    assert_eq!(body["options"]["maxTokens"], 100);
    assert_eq!(body["options"]["repeatPenaltyLastNTokenCount"], 64);
    assert_eq!(body["options"]["topK"], 40);

    let params = v2::InferencingParams { max_tokens: 7, repeat_penalty: 1.0, repeat_penalty_last_n_token_count: 2, temperature: 0.0, top_k: 1, top_p: 0.5 };
    v2::Host::infer(&mut state, "llama2-chat".into(), "x".into(), Some(params)).await.unwrap();
    assert_eq!(seen.lock().unwrap()[1].3["options"]["maxTokens"], 7);

    let embedded = v2::Host::generate_embeddings(&mut state, "all-minilm-l6-v2".into(), vec!["a".into(), "b".into()]).await.unwrap();
    assert_eq!(embedded.embeddings, vec![vec![0.5, -1.0], vec![0.5, -1.0]]);
    assert_eq!(embedded.usage.prompt_token_count, 2);
    let (_, path, _, body) = seen.lock().unwrap()[2].clone();
    assert_eq!(path, "/embed");
    assert_eq!(body["input"], serde_json::json!(["a", "b"]));
}

#[tokio::test]
async fn a_model_not_granted_is_refused_before_any_request() {
    let (url, seen) = server().await;
    let mut state = state(&["llama2-chat"], Some(Arc::new(RemoteHttp::new(&url, "right".into()).unwrap())));
    match v2::Host::infer(&mut state, "codellama-instruct".into(), "x".into(), None).await {
        Err(v2::Error::InvalidInput(message)) => assert!(message.contains("add 'codellama-instruct' to the 'ai_models' key"), "{message}"),
        other => panic!("expected invalid-input, got {other:?}"),
    }
    assert!(matches!(v2::Host::generate_embeddings(&mut state, "all-minilm-l6-v2".into(), vec![]).await, Err(v2::Error::InvalidInput(_))));
    assert!(seen.lock().unwrap().is_empty());
}

#[tokio::test]
async fn server_failures_are_runtime_errors_that_say_what_happened() {
    let (url, _) = server().await;
    let mut state = state(&["llama2-chat"], Some(Arc::new(RemoteHttp::new(&url, "wrong".into()).unwrap())));
    match v2::Host::infer(&mut state, "llama2-chat".into(), "x".into(), None).await {
        Err(v2::Error::RuntimeError(message)) => assert!(message.contains("POST /infer answered 401"), "{message}"),
        other => panic!("expected runtime-error, got {other:?}"),
    }
    // Nothing listens on port 9 of this host.
    let mut state = self::state(&["llama2-chat"], Some(Arc::new(RemoteHttp::new("http://127.0.0.1:9", "t".into()).unwrap())));
    assert!(matches!(v2::Host::infer(&mut state, "llama2-chat".into(), "x".into(), None).await, Err(v2::Error::RuntimeError(m)) if m.contains("failed")));
}

#[tokio::test]
async fn without_llm_compute_an_allowed_model_gets_what_to_configure() {
    let mut state = state(&["llama2-chat"], None);
    match v2::Host::infer(&mut state, "llama2-chat".into(), "x".into(), None).await {
        Err(v2::Error::RuntimeError(message)) => assert!(message.contains("[llm_compute] type = \"remote_http\""), "{message}"),
        other => panic!("expected runtime-error, got {other:?}"),
    }
}

#[test]
fn a_url_that_is_not_http_is_refused() {
    assert!(RemoteHttp::new("ftp://x", "t".into()).is_err());
    assert!(RemoteHttp::new("not a url", "t".into()).is_err());
}
