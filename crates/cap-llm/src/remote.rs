//! Spin's remote inferencing protocol (`[llm_compute] type = "remote_http"`), as Fermyon's
//! `cloud-gpu` app serves it: `POST /infer` and `POST /embed` on the server's origin, a JSON body,
//! `authorization: bearer <token>`.

use serde::{Deserialize, Serialize};

/// What went wrong talking to the server, as the guest will read it (`runtime-error`).
pub type Failure = String;

/// The inferencing parameters, as the guest gave them or Spin's defaults.
#[derive(Clone, Copy, Debug, PartialEq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct Params {
    pub max_tokens: u32,
    pub repeat_penalty: f32,
    pub repeat_penalty_last_n_token_count: u32,
    pub temperature: f32,
    pub top_k: u32,
    pub top_p: f32,
}

impl Default for Params {
    /// Spin's values for a guest that passes none.
    fn default() -> Params {
        Params { max_tokens: 100, repeat_penalty: 1.1, repeat_penalty_last_n_token_count: 64, temperature: 0.8, top_k: 40, top_p: 0.9 }
    }
}

#[derive(Debug, PartialEq, Deserialize)]
pub struct Inferred {
    pub text: String,
    pub usage: InferUsage,
}

#[derive(Debug, PartialEq, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct InferUsage {
    pub prompt_token_count: u32,
    pub generated_token_count: u32,
}

#[derive(Debug, PartialEq, Deserialize)]
pub struct Embedded {
    pub embeddings: Vec<Vec<f32>>,
    pub usage: EmbedUsage,
}

#[derive(Debug, PartialEq, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct EmbedUsage {
    pub prompt_token_count: u32,
}

/// A client of one inferencing server, shared by every instance of the app.
pub struct RemoteHttp {
    /// The server's origin (`https://host:port`): Spin sends to `/infer` and `/embed` on it,
    /// whatever path the configured URL has.
    origin: reqwest::Url,
    auth_token: String,
    client: reqwest::Client,
}

impl RemoteHttp {
    pub fn new(url: &str, auth_token: String) -> anyhow::Result<RemoteHttp> {
        let origin = reqwest::Url::parse(url).map_err(|err| anyhow::anyhow!("[llm_compute] `url` is not a valid URL: {err}"))?;
        if !matches!(origin.scheme(), "http" | "https") || origin.host().is_none() {
            anyhow::bail!("[llm_compute] `url` must be an http:// or https:// URL with a host");
        }
        if rustls::crypto::CryptoProvider::get_default().is_none() {
            let _ = rustls::crypto::ring::default_provider().install_default();
        }
        let client = reqwest::Client::builder()
            .connect_timeout(std::time::Duration::from_secs(10))
            .build()
            .map_err(|err| anyhow::anyhow!("cannot build the inferencing client: {err}"))?;
        Ok(RemoteHttp { origin, auth_token, client })
    }

    /// Where requests go, for logs.
    pub fn origin(&self) -> String {
        self.origin.origin().ascii_serialization()
    }

    pub async fn infer(&self, model: &str, prompt: &str, params: Params) -> Result<Inferred, Failure> {
        let body = serde_json::json!({ "model": model, "prompt": prompt, "options": params });
        self.post("/infer", body).await
    }

    pub async fn embed(&self, model: &str, input: &[String]) -> Result<Embedded, Failure> {
        let body = serde_json::json!({ "model": model, "input": input });
        self.post("/embed", body).await
    }

    async fn post<T: for<'de> Deserialize<'de>>(&self, path: &str, body: serde_json::Value) -> Result<T, Failure> {
        let url = self.origin.join(path).map_err(|err| format!("cannot make the URL of {path}: {err}"))?;
        let response = self
            .client
            .post(url)
            .header("authorization", format!("bearer {}", self.auth_token))
            .header("content-type", "application/json")
            .body(body.to_string())
            .send()
            .await
            .map_err(|err| format!("POST {path} to {} failed: {err}", self.origin()))?;
        let status = response.status();
        let bytes = response.bytes().await.map_err(|err| format!("POST {path}: reading the answer failed: {err}"))?;
        if !status.is_success() {
            let text = String::from_utf8_lossy(&bytes[..bytes.len().min(200)]).into_owned();
            return Err(format!("POST {path} answered {status}: {text}"));
        }
        serde_json::from_slice(&bytes).map_err(|err| format!("POST {path} answered something other than the expected JSON: {err}"))
    }
}
