//! Guest logging: `wasi:logging/logging@0.1.0-draft` (wasmCloud components log through it) into
//! Kiln's log stream, beside the guest's stdout and stderr (target `kiln::guest`).
//!
//! A line reads `[<component>] <context>: <message>` at the guest's level: `trace`, `debug`,
//! `info`, `warn`, `error` map to tracing's levels of the same name, `critical` to `error` with
//! `critical` written in front of the context (tracing has no level above `error`). An empty
//! context is left out. A message of several lines is logged line by line, each with the prefix,
//! so a guest cannot forge a line that looks like the host's; a line is cut at [`MAX_LINE`] bytes,
//! the size the guest's stdout is cut at.
//!
//! Under `kiln serve` every call is also counted per level (`kiln_guest_logs_total`), through the
//! app's [`CapabilityObserver`].

use std::sync::Arc;

use anyhow::Result;
use kiln_app::{AppCapability, AppContext, Capability, CapabilityObserver, ComponentContext};
use kiln_engine::{ComponentCapability, KilnState, LinkFn};
use wasmtime::component::{HasSelf, Linker};

/// `wasi:logging/logging@0.1.0-draft`, as wasmCloud publishes it.
mod bindings {
    wasmtime::component::bindgen!({
        path: ["../../wit/wasi-logging-0.1.0-draft"],
        world: "wasi:logging/imports@0.1.0-draft",
    });
}

use bindings::wasi::logging::logging::{self, Level};

/// Longest line logged; the rest is cut (as for the guest's stdout).
pub const MAX_LINE: usize = 16 * 1024;

/// The logging capability: no grant, every component may log.
pub struct Logging;

impl Capability for Logging {
    fn name(&self) -> &'static str {
        "logging"
    }

    fn link(&self) -> LinkFn {
        link
    }

    fn configure_app(&self, app: &AppContext<'_>) -> Result<Box<dyn AppCapability>> {
        Ok(Box::new(AppLogging { observer: app.observer.cloned() }))
    }
}

struct AppLogging {
    observer: Option<Arc<dyn CapabilityObserver>>,
}

impl AppCapability for AppLogging {
    fn component(&self, component: &ComponentContext<'_>) -> Result<Arc<dyn ComponentCapability>> {
        let component = Arc::from(component.component.id.as_str());
        Ok(Arc::new(LoggingState { component, observer: self.observer.clone() }))
    }
}

/// What one component's instances log under: its id, and who counts the lines. Each instance gets a
/// clone (two `Arc` clones).
#[derive(Clone)]
pub struct LoggingState {
    component: Arc<str>,
    observer: Option<Arc<dyn CapabilityObserver>>,
}

impl ComponentCapability for LoggingState {
    fn instance_state(&self) -> Box<dyn std::any::Any + Send> {
        Box::new(self.clone())
    }
}

impl logging::Host for LoggingState {
    fn log(&mut self, level: Level, context: String, message: String) {
        let prefix = prefix(&self.component, level, &context);
        for line in message.lines() {
            emit(level, &prefix, cut(line));
        }
        if message.is_empty() {
            emit(level, &prefix, "");
        }
        if let Some(observer) = &self.observer {
            observer.guest_log(&self.component, level_name(level));
        }
    }
}

/// The level as the metric's `level` label spells it (the WIT's names).
fn level_name(level: Level) -> &'static str {
    match level {
        Level::Trace => "trace",
        Level::Debug => "debug",
        Level::Info => "info",
        Level::Warn => "warn",
        Level::Error => "error",
        Level::Critical => "critical",
    }
}

/// `[component] context: `, with `critical` in front of the context for that level.
fn prefix(component: &str, level: Level, context: &str) -> String {
    let context = cut(context.lines().next().unwrap_or_default());
    match (level, context.is_empty()) {
        (Level::Critical, true) => format!("[{component}] critical: "),
        (Level::Critical, false) => format!("[{component}] critical {context}: "),
        (_, true) => format!("[{component}] "),
        (_, false) => format!("[{component}] {context}: "),
    }
}

/// `text` cut to at most [`MAX_LINE`] bytes, on a character boundary.
fn cut(text: &str) -> &str {
    if text.len() <= MAX_LINE {
        return text;
    }
    let mut end = MAX_LINE;
    while !text.is_char_boundary(end) {
        end -= 1;
    }
    &text[..end]
}

fn emit(level: Level, prefix: &str, line: &str) {
    // tracing's level must be a constant at each call site.
    match level {
        Level::Trace => tracing::trace!(target: "kiln::guest", "{prefix}{line}"),
        Level::Debug => tracing::debug!(target: "kiln::guest", "{prefix}{line}"),
        Level::Info => tracing::info!(target: "kiln::guest", "{prefix}{line}"),
        Level::Warn => tracing::warn!(target: "kiln::guest", "{prefix}{line}"),
        Level::Error | Level::Critical => tracing::error!(target: "kiln::guest", "{prefix}{line}"),
    }
}

fn link(linker: &mut Linker<KilnState>) -> Result<()> {
    logging::add_to_linker::<KilnState, HasSelf<LoggingState>>(linker, |s| s.capability::<LoggingState>())?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn prefixes_name_the_component_and_the_context() {
        assert_eq!(prefix("c", Level::Info, "counter"), "[c] counter: ");
        assert_eq!(prefix("c", Level::Warn, ""), "[c] ");
        assert_eq!(prefix("c", Level::Critical, "db"), "[c] critical db: ");
        assert_eq!(prefix("c", Level::Critical, ""), "[c] critical: ");
        // A context cannot start a line of its own.
        assert_eq!(prefix("c", Level::Info, "a\nforged"), "[c] a: ");
    }

    #[test]
    fn long_lines_are_cut_on_a_character_boundary() {
        let long = "é".repeat(MAX_LINE);
        let cut = cut(&long);
        assert!(cut.len() <= MAX_LINE && cut.len() >= MAX_LINE - 1);
        assert_eq!(super::cut("short"), "short");
    }
}
