//! `RuntimeConfigError`: the same shape as `kiln_manifest::ManifestError` — one line
//! `file:line:col: message` for logs and CI, a help text, and the source text with a label so miette
//! can render the offending line.
//!
//! This is a minimal equivalent rather than a reuse: `ManifestError` can only be positioned through a
//! parsed `Manifest` (`Manifest::error_at`), its source type is crate-private. If kiln-manifest made a
//! positioned constructor public (e.g. `ManifestError::at(file, Arc<String> text, Span, message,
//! help)`), this type could become a re-export or a thin alias.

use std::fmt;
use std::ops::Range;
use std::sync::Arc;

use miette::{Diagnostic, LabeledSpan, NamedSource, SourceCode};

/// The runtime config text, shared by every error pointing into it.
#[derive(Clone)]
pub(crate) struct Source {
    /// The path as the user gave it: error lines should look like what they typed.
    pub name: String,
    pub text: Arc<String>,
}

impl Source {
    pub fn error(
        &self,
        span: Range<usize>,
        message: impl Into<String>,
        help: impl Into<String>,
    ) -> RuntimeConfigError {
        let (line, column) = line_col(&self.text, span.start);
        RuntimeConfigError(Box::new(Inner {
            file: Some(self.name.clone()),
            message: message.into(),
            help: non_empty(help.into()),
            location: Some(Location {
                line,
                column,
                span,
                text: NamedSource::new(&self.name, self.text.clone()),
            }),
        }))
    }
}

/// An error in (or about) a runtime config file. Never contains a configured value (URLs may hold
/// passwords, static variables may be secrets): messages name keys and types only.
pub struct RuntimeConfigError(Box<Inner>);

struct Inner {
    file: Option<String>,
    message: String,
    help: Option<String>,
    location: Option<Location>,
}

struct Location {
    line: usize,
    column: usize,
    span: Range<usize>,
    text: NamedSource<Arc<String>>,
}

impl RuntimeConfigError {
    /// An error not tied to a position (missing file, I/O).
    pub fn new(message: impl Into<String>, help: impl Into<String>) -> Self {
        RuntimeConfigError(Box::new(Inner {
            file: None,
            message: message.into(),
            help: non_empty(help.into()),
            location: None,
        }))
    }

    pub(crate) fn in_file(mut self, file: impl Into<String>) -> Self {
        self.0.file = Some(file.into());
        self
    }

    pub fn message(&self) -> &str {
        &self.0.message
    }

    pub fn help_text(&self) -> Option<&str> {
        self.0.help.as_deref()
    }

    /// 1-based (line, column) of the error, if it points into the file.
    pub fn line_col(&self) -> Option<(usize, usize)> {
        self.0.location.as_ref().map(|l| (l.line, l.column))
    }

    /// Byte range of the offending text, if any.
    pub fn span(&self) -> Option<Range<usize>> {
        self.0.location.as_ref().map(|l| l.span.clone())
    }

    pub fn file(&self) -> Option<&str> {
        self.0.file.as_deref()
    }
}

impl fmt::Display for RuntimeConfigError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match (&self.0.file, &self.0.location) {
            (Some(file), Some(loc)) => {
                write!(f, "{file}:{}:{}: {}", loc.line, loc.column, self.0.message)
            }
            (Some(file), None) => write!(f, "{file}: {}", self.0.message),
            (None, _) => f.write_str(&self.0.message),
        }
    }
}

// The one-line form: a derive would dump the whole file text (and with it any secret in it).
impl fmt::Debug for RuntimeConfigError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "RuntimeConfigError({self})")?;
        if let Some(help) = &self.0.help {
            write!(f, " help: {help}")?;
        }
        Ok(())
    }
}

impl std::error::Error for RuntimeConfigError {}

impl Diagnostic for RuntimeConfigError {
    fn help<'a>(&'a self) -> Option<Box<dyn fmt::Display + 'a>> {
        self.0
            .help
            .as_ref()
            .map(|h| Box::new(h) as Box<dyn fmt::Display>)
    }

    fn source_code(&self) -> Option<&dyn SourceCode> {
        self.0.location.as_ref().map(|l| &l.text as &dyn SourceCode)
    }

    fn labels(&self) -> Option<Box<dyn Iterator<Item = LabeledSpan> + '_>> {
        let loc = self.0.location.as_ref()?;
        let len = loc.span.end.saturating_sub(loc.span.start);
        let label = LabeledSpan::new(Some("here".into()), loc.span.start, len);
        Some(Box::new(std::iter::once(label)))
    }
}

fn non_empty(s: String) -> Option<String> {
    (!s.is_empty()).then_some(s)
}

/// 1-based line and column (in characters) of a byte offset.
fn line_col(text: &str, offset: usize) -> (usize, usize) {
    let mut offset = offset.min(text.len());
    while !text.is_char_boundary(offset) {
        offset -= 1;
    }
    let before = &text[..offset];
    let line = before.matches('\n').count() + 1;
    let line_start = before.rfind('\n').map_or(0, |i| i + 1);
    (line, before[line_start..].chars().count() + 1)
}
