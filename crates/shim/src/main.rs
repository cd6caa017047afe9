//! `containerd-shim-kiln-v1`: runs Kiln and Spin apps as containers, so Kubernetes places them like
//! any pod (a `RuntimeClass` with `handler: kiln`).
//!
//! runwasi's `containerd-shim-wasm` does the containerd side: the task API, the container itself
//! (namespaces, cgroups, the image's root filesystem) and a content-store cache of precompiled
//! layers. Kiln brings the rest:
//! - [`app`]: where the app is in the image — a `spin.toml`/`kiln.toml` at the root (or named by
//!   the image's entrypoint) beside its components, or Spin's OCI artifact layers;
//! - [`precompile`]: the app's components compiled once per image and shim version, kept by
//!   containerd beside the image, so later container starts skip compilation;
//! - [`container`]: the container's process — the same host as `kiln up`, configured from the
//!   container's environment, draining in-flight requests on SIGTERM.

mod app;
mod container;
mod precompile;

use anyhow::Result;
use containerd_shim_wasm::sandbox::Sandbox;
use containerd_shim_wasm::sandbox::context::RuntimeContext;
use containerd_shim_wasm::shim::{Cli, Compiler, Config, Shim, Version, version};

#[global_allocator]
static GLOBAL: mimalloc::MiMalloc = mimalloc::MiMalloc;

struct KilnShim;

#[derive(Default)]
struct KilnSandbox;

impl Shim for KilnShim {
    type Sandbox = KilnSandbox;

    fn name() -> &'static str {
        "kiln"
    }

    fn version() -> Version {
        version!()
    }

    async fn compiler() -> Option<impl Compiler> {
        Some(precompile::KilnCompiler)
    }

    fn supported_layers_types() -> &'static [&'static str] {
        app::LAYER_TYPES
    }
}

impl Sandbox for KilnSandbox {
    async fn run_wasi(&self, ctx: &impl RuntimeContext) -> Result<i32> {
        Ok(container::run(ctx))
    }

    async fn can_handle(&self, ctx: &impl RuntimeContext) -> Result<()> {
        let entrypoint = ctx.entrypoint();
        app::find(std::path::Path::new("/"), entrypoint.arg0, &entrypoint.source).map(drop)
    }
}

fn main() {
    // SAFETY: first thing in main, before any thread exists.
    unsafe { kiln_engine::disable_library_backtraces() };
    KilnShim::run(Config { default_log_level: "info".to_string(), ..Config::default() });
}
