//! `ManifestError`: one-line `file:line:col: message` for logs and CI, plus the source text and a
//! label so miette can render the offending manifest line.

use std::fmt;
use std::ops::Range;
use std::sync::Arc;

use miette::{Diagnostic, LabeledSpan, NamedSource, SourceCode};

/// A byte range in the manifest text.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash)]
pub struct Span {
    pub start: usize,
    pub end: usize,
}

impl Span {
    pub fn new(start: usize, end: usize) -> Self {
        Span { start, end }
    }
}

impl From<Range<usize>> for Span {
    fn from(r: Range<usize>) -> Self {
        Span::new(r.start, r.end)
    }
}

/// The manifest text, shared by the manifest and every error pointing into it.
#[derive(Clone)]
pub(crate) struct SourceText {
    /// The path as the user gave it: error lines should look like what they typed.
    pub name: String,
    pub text: Arc<String>,
}

impl SourceText {
    pub fn error(
        &self,
        span: Span,
        message: impl Into<String>,
        help: impl Into<String>,
    ) -> ManifestError {
        let (line, column) = line_col(&self.text, span.start);
        ManifestError(Box::new(Inner {
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

impl fmt::Debug for SourceText {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "SourceText({:?}, {} bytes)", self.name, self.text.len())
    }
}

/// An error in (or about) a manifest. Boxed: it travels through every `Result` in the loader.
pub struct ManifestError(Box<Inner>);

struct Inner {
    file: Option<String>,
    message: String,
    help: Option<String>,
    location: Option<Location>,
}

struct Location {
    line: usize,
    column: usize,
    span: Span,
    /// Named so that miette's rendering shows the file name.
    text: NamedSource<Arc<String>>,
}

impl ManifestError {
    /// An error not tied to a manifest position (missing file, I/O).
    pub fn new(message: impl Into<String>, help: impl Into<String>) -> Self {
        ManifestError(Box::new(Inner {
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

    /// 1-based (line, column) of the error, if it points into the manifest.
    pub fn line_col(&self) -> Option<(usize, usize)> {
        self.0.location.as_ref().map(|l| (l.line, l.column))
    }

    pub fn span(&self) -> Option<Span> {
        self.0.location.as_ref().map(|l| l.span)
    }

    pub fn file(&self) -> Option<&str> {
        self.0.file.as_deref()
    }
}

impl fmt::Display for ManifestError {
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

// Debug shows the one-line form: the default derive would dump the whole manifest text.
impl fmt::Debug for ManifestError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "ManifestError({self})")?;
        if let Some(help) = &self.0.help {
            write!(f, " help: {help}")?;
        }
        Ok(())
    }
}

impl std::error::Error for ManifestError {}

impl Diagnostic for ManifestError {
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
pub(crate) fn line_col(text: &str, offset: usize) -> (usize, usize) {
    let mut offset = offset.min(text.len());
    while !text.is_char_boundary(offset) {
        offset -= 1;
    }
    let before = &text[..offset];
    let line = before.matches('\n').count() + 1;
    let line_start = before.rfind('\n').map_or(0, |i| i + 1);
    (line, before[line_start..].chars().count() + 1)
}
