//! Kiln's application manifest: Spin v2 `spin.toml` (and `kiln.toml`, the same schema plus Kiln
//! trigger types), parsed strictly into plain data with spans for later error reporting.
//!
//! Other crates (router, loader, triggers) report problems at manifest locations through
//! [`Manifest::error_at`], so every error a user sees reads `file:line:col: message`.

mod convert;
mod error;
mod model;
mod names;
mod raw;
pub mod template;

use std::path::{Path, PathBuf};
use std::sync::Arc;

use indexmap::IndexMap;

pub use error::{ManifestError, Span};
pub use model::*;
pub use names::{
    is_valid_component_id, is_valid_label, is_valid_variable_name, variable_name_problem,
};
pub use template::Template;

use convert::{Cx, normalize};
use error::SourceText;

/// A loaded, validated manifest.
#[derive(Clone, Debug)]
pub struct Manifest {
    /// Absolute path of the manifest file.
    pub path: PathBuf,
    /// Absolute directory of the manifest; relative paths in it are relative to this.
    pub dir: PathBuf,
    pub application: Application,
    pub variables: IndexMap<String, Variable>,
    pub http_triggers: Vec<HttpTrigger>,
    pub redis_triggers: Vec<RedisTrigger>,
    pub nats_triggers: Vec<NatsTrigger>,
    pub cron_triggers: Vec<CronTrigger>,
    pub directory_triggers: Vec<DirectoryTrigger>,
    /// Declared components, then inline ones (with Spin's synthesized ids).
    pub components: IndexMap<String, Component>,
    source: SourceText,
}

impl Manifest {
    /// Reads and validates the manifest at `path`.
    pub fn load(path: &Path) -> Result<Manifest, ManifestError> {
        let text = std::fs::read_to_string(path).map_err(|e| {
            ManifestError::new(
                format!("cannot read manifest: {e}"),
                "check the path given with -f",
            )
            .in_file(path.display().to_string())
        })?;
        Manifest::parse(text, path)
    }

    /// Validates manifest `text` as if it were read from `path` (used for relative paths and in
    /// error messages; the file need not exist).
    pub fn parse(text: impl Into<String>, path: &Path) -> Result<Manifest, ManifestError> {
        let name = path.display().to_string();
        let absolute = std::path::absolute(path).map_err(|e| {
            ManifestError::new(format!("cannot resolve manifest path: {e}"), "")
                .in_file(name.clone())
        })?;
        let path = normalize(&absolute);
        let dir = path
            .parent()
            .map_or_else(|| PathBuf::from("/"), Path::to_path_buf);
        let cx = Cx {
            src: SourceText {
                name,
                text: Arc::new(text.into()),
            },
            dir,
        };
        let parts = convert::parse(&cx)?;
        Ok(Manifest {
            path,
            dir: cx.dir,
            application: parts.application,
            variables: parts.variables,
            http_triggers: parts.triggers.http,
            redis_triggers: parts.triggers.redis,
            nats_triggers: parts.triggers.nats,
            cron_triggers: parts.triggers.cron,
            directory_triggers: parts.triggers.directory,
            components: parts.components,
            source: cx.src,
        })
    }

    /// An error at a manifest location, for other crates (e.g. the router on a bad route).
    pub fn error_at(
        &self,
        span: &Span,
        message: impl Into<String>,
        help: impl Into<String>,
    ) -> ManifestError {
        self.source.error(*span, message, help)
    }

    /// The manifest text as read.
    pub fn source_text(&self) -> &str {
        &self.source.text
    }

    pub fn component(&self, id: &str) -> Option<&Component> {
        self.components.get(id)
    }

    /// Checks that every local `source` file exists. Separate from `load` because
    /// `kiln up --build` builds first.
    pub fn check_sources(&self) -> Result<(), ManifestError> {
        for c in self.components.values() {
            let ComponentSource::Local(path) = &c.source else {
                continue;
            };
            if path.is_file() {
                continue;
            }
            let shown = path.strip_prefix(&self.dir).unwrap_or(path).display();
            let message = format!(
                "component `{}`: source file `{shown}` does not exist; build it first (kiln build) or fix the path",
                c.id
            );
            let help = match &c.build {
                Some(b) => format!(
                    "run `kiln build` (it runs `{}`), or fix `source` in [component.{}]",
                    b.command.join(" && "),
                    c.id
                ),
                None => format!(
                    "point `source` in [component.{}] at an existing .wasm file",
                    c.id
                ),
            };
            return Err(self.error_at(&c.source_span, message, help));
        }
        Ok(())
    }
}

/// Finds the manifest: `path` itself if it is a file; otherwise `kiln.toml` then `spin.toml` in
/// `path` (or in the current directory when `path` is None).
pub fn find_manifest(path: Option<&Path>) -> Result<PathBuf, ManifestError> {
    let dir = match path {
        Some(p) if p.is_file() => return Ok(p.to_path_buf()),
        Some(p) if !p.is_dir() => {
            let message = format!("{}: no such file or directory", p.display());
            return Err(ManifestError::new(
                message,
                "pass -f PATH to a kiln.toml or spin.toml, or to its directory",
            ));
        }
        Some(p) => p.to_path_buf(),
        None => PathBuf::new(),
    };
    for name in ["kiln.toml", "spin.toml"] {
        let candidate = dir.join(name);
        if candidate.is_file() {
            return Ok(candidate);
        }
    }
    let shown = match path {
        Some(p) => p.display().to_string(),
        None => {
            std::env::current_dir().map_or_else(|_| ".".to_string(), |d| d.display().to_string())
        }
    };
    let message = format!("no kiln.toml or spin.toml in {shown}; pass -f PATH");
    Err(ManifestError::new(
        message,
        "run Kiln in the application directory, or pass -f PATH to the manifest",
    ))
}

/// The one place the outbound crate's pattern check is called.
fn validate_host_pattern(pattern: &str) -> Result<(), String> {
    kiln_outbound::validate_pattern(pattern).map_err(|e| e.to_string())
}

#[cfg(test)]
mod tests;

#[cfg(test)]
mod fuzz;
