//! The LLM capability: `fermyon:spin/llm@2.0.0`, Spin's AI inferencing (`infer`,
//! `generate-embeddings`).
//!
//! A component may use the models listed in its `ai_models`; any other model gets Spin's
//! `invalid-input` error naming the key to add. Inferencing runs where the runtime config's
//! `[llm_compute]` says: `type = "remote_http"` sends each call to a server speaking Spin's remote
//! protocol ([`remote`]). Kiln runs no models itself: without `[llm_compute]`, or with Spin's
//! `type = "spin"` (local models), a call by an allowed model gets `runtime-error` saying what to
//! configure, as a Spin built without local inferencing answers. The
//! interface is always linked, so a Spin app that imports it (spin-sdk's Python and JavaScript
//! SDKs always do) loads and runs.

mod remote;
#[cfg(test)]
mod tests;

use std::collections::HashSet;
use std::sync::Arc;

use anyhow::Result;
use kiln_app::{AppCapability, AppContext, Capability, ComponentContext};
use kiln_engine::{ComponentCapability, KilnState, LinkFn};
use kiln_runtime_config::LlmComputeConfig;
use remote::{Params, RemoteHttp};
use wasmtime::component::{HasSelf, Linker};

/// `fermyon:spin/llm@2.0.0`.
mod bindings_v2 {
    wasmtime::component::bindgen!({
        path: ["../../wit/spin@2.0.0"],
        inline: "
            package kiln:llm-v2;
            world imports { import fermyon:spin/llm@2.0.0; }
        ",
        world: "kiln:llm-v2/imports",
        imports: { default: async },
    });
}

use bindings_v2::fermyon::spin::llm as v2;

/// The LLM capability.
pub struct Llm;

impl Capability for Llm {
    fn name(&self) -> &'static str {
        "llm"
    }

    fn link(&self) -> LinkFn {
        link
    }

    fn configure_app(&self, app: &AppContext<'_>) -> Result<Box<dyn AppCapability>> {
        let engine = match &app.runtime_config.llm_compute {
            Some(LlmComputeConfig::RemoteHttp { url, auth_token }) => Some(Arc::new(RemoteHttp::new(url, auth_token.clone())?)),
            // Spin's local models (`type = "spin"`): Kiln runs none, as a Spin without them.
            Some(LlmComputeConfig::Local) | None => None,
        };
        Ok(Box::new(AppLlm { engine }))
    }
}

/// The app's inferencing server, if it has one; shared by every component.
struct AppLlm {
    engine: Option<Arc<RemoteHttp>>,
}

impl AppCapability for AppLlm {
    fn component(&self, component: &ComponentContext<'_>) -> Result<Arc<dyn ComponentCapability>> {
        Ok(Arc::new(ComponentLlm(Arc::new(Grant {
            models: component.component.ai_models.iter().cloned().collect(),
            engine: self.engine.clone(),
        }))))
    }
}

/// What one component may do: its models, and where they run.
struct Grant {
    models: HashSet<String>,
    engine: Option<Arc<RemoteHttp>>,
}

struct ComponentLlm(Arc<Grant>);

impl ComponentCapability for ComponentLlm {
    fn instance_state(&self) -> Box<dyn std::any::Any + Send> {
        Box::new(LlmState(self.0.clone()))
    }
}

/// Per-instance state: one `Arc` clone.
pub struct LlmState(Arc<Grant>);

impl LlmState {
    /// The server to send `model`'s call to, or the guest's error.
    fn engine_for(&self, model: &str) -> Result<Arc<RemoteHttp>, v2::Error> {
        if !self.0.models.contains(model) {
            // Spin's words, so guests and their users see the same hint.
            return Err(v2::Error::InvalidInput(format!(
                "The component does not have access to use '{model}'. To give the component access, add '{model}' to the 'ai_models' key for the component in your spin.toml manifest"
            )));
        }
        self.0.engine.clone().ok_or_else(|| {
            v2::Error::RuntimeError(format!(
                "no inferencing server for '{model}': Kiln runs no models itself; give the app a runtime config with [llm_compute] type = \"remote_http\", `url` and `auth_token`"
            ))
        })
    }
}

impl v2::Host for LlmState {
    async fn infer(&mut self, model: String, prompt: String, params: Option<v2::InferencingParams>) -> Result<v2::InferencingResult, v2::Error> {
        let engine = self.engine_for(&model)?;
        let params = params.map_or_else(Params::default, |p| Params {
            max_tokens: p.max_tokens,
            repeat_penalty: p.repeat_penalty,
            repeat_penalty_last_n_token_count: p.repeat_penalty_last_n_token_count,
            temperature: p.temperature,
            top_k: p.top_k,
            top_p: p.top_p,
        });
        let inferred = engine.infer(&model, &prompt, params).await.map_err(|failure| {
            tracing::warn!(model, "llm.infer failed: {failure}");
            v2::Error::RuntimeError(failure)
        })?;
        Ok(v2::InferencingResult {
            text: inferred.text,
            usage: v2::InferencingUsage {
                prompt_token_count: inferred.usage.prompt_token_count,
                generated_token_count: inferred.usage.generated_token_count,
            },
        })
    }

    async fn generate_embeddings(&mut self, model: String, text: Vec<String>) -> Result<v2::EmbeddingsResult, v2::Error> {
        let engine = self.engine_for(&model)?;
        let embedded = engine.embed(&model, &text).await.map_err(|failure| {
            tracing::warn!(model, "llm.generate-embeddings failed: {failure}");
            v2::Error::RuntimeError(failure)
        })?;
        Ok(v2::EmbeddingsResult {
            embeddings: embedded.embeddings,
            usage: v2::EmbeddingsUsage { prompt_token_count: embedded.usage.prompt_token_count },
        })
    }
}

fn instance(state: &mut KilnState) -> &mut LlmState {
    state.capability::<LlmState>()
}

fn link(linker: &mut Linker<KilnState>) -> Result<()> {
    v2::add_to_linker::<KilnState, HasSelf<LlmState>>(linker, instance)?;
    Ok(())
}
