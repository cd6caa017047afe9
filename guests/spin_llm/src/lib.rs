//! Inferencing through `spin_sdk::llm` (`fermyon:spin/llm@2.0.0`).
//!
//! `?op=infer&model=<m>&prompt=<p>[&max_tokens=<n>]` → 200 `<text> (<prompt tokens>+<generated tokens>)`;
//! `?op=embed&model=<m>&text=a,b` → 200 one line per embedding, its values joined by `,`;
//! an error → 500 `error: <Debug of the error>`.

use spin_common::{error, list, ok, param, params, status};
use spin_sdk::http::{Request, Response};
use spin_sdk::http_component;
use spin_sdk::llm;

#[http_component]
fn handle(req: Request) -> Response {
    let params = params(&req);
    let model = param(&params, "model").unwrap_or_default();
    match param(&params, "op").as_deref() {
        Some("infer") => {
            let prompt = param(&params, "prompt").unwrap_or_default();
            let model = llm::InferencingModel::Other(&model);
            let result = match param(&params, "max_tokens").and_then(|n| n.parse().ok()) {
                Some(max_tokens) => llm::infer_with_options(model, &prompt, llm::InferencingParams { max_tokens, ..Default::default() }),
                None => llm::infer(model, &prompt),
            };
            match result {
                Ok(r) => ok(format!("{} ({}+{})", r.text, r.usage.prompt_token_count, r.usage.generated_token_count)),
                Err(e) => error(&e),
            }
        }
        Some("embed") => match llm::generate_embeddings(llm::EmbeddingModel::Other(&model), &list(&params, "text")) {
            Ok(r) => ok(r.embeddings.iter().map(|v| v.iter().map(f32::to_string).collect::<Vec<_>>().join(",")).collect::<Vec<_>>().join("\n")),
            Err(e) => error(&e),
        },
        _ => status(400, "op=infer or op=embed"),
    }
}
