//! Errors located in a file the user wrote (the manifest, the runtime config): one line
//! `file:line:col: message` for logs and CI, a help text saying what to do, and the source text with a
//! label so miette can render the offending line. Never prints the whole text: configuration files
//! can hold secrets.

use std::fmt;
use std::ops::Range;
use std::sync::Arc;

use miette::{Diagnostic, LabeledSpan, NamedSource, SourceCode};

/// A byte range in the source text.
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

/// A source file's text, shared by everything parsed from it and every error pointing into it.
#[derive(Clone)]
pub struct SourceFile {
    /// The path as the user gave it: error lines should look like what they typed.
    pub name: String,
    pub text: Arc<String>,
}

impl SourceFile {
    pub fn new(name: impl Into<String>, text: impl Into<Arc<String>>) -> SourceFile {
        SourceFile { name: name.into(), text: text.into() }
    }

    /// An error at `span` of this file.
    pub fn error(
        &self,
        span: impl Into<Span>,
        message: impl Into<String>,
        help: impl Into<String>,
    ) -> LocatedError {
        let span = span.into();
        let (line, column) = line_col(&self.text, span.start);
        LocatedError(Box::new(Inner {
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

impl fmt::Debug for SourceFile {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "SourceFile({:?}, {} bytes)", self.name, self.text.len())
    }
}

/// An error in (or about) a user's file. Boxed: it travels through every `Result` of a parser.
pub struct LocatedError(Box<Inner>);

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

impl LocatedError {
    /// An error not tied to a position (missing file, I/O).
    pub fn new(message: impl Into<String>, help: impl Into<String>) -> Self {
        LocatedError(Box::new(Inner {
            file: None,
            message: message.into(),
            help: non_empty(help.into()),
            location: None,
        }))
    }

    /// Names the file an unpositioned error is about.
    pub fn in_file(mut self, file: impl Into<String>) -> Self {
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

    pub fn span(&self) -> Option<Span> {
        self.0.location.as_ref().map(|l| l.span)
    }

    pub fn file(&self) -> Option<&str> {
        self.0.file.as_deref()
    }
}

impl fmt::Display for LocatedError {
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

// Debug shows the one-line form: the default derive would dump the whole file text.
impl fmt::Debug for LocatedError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "LocatedError({self})")?;
        if let Some(help) = &self.0.help {
            write!(f, " help: {help}")?;
        }
        Ok(())
    }
}

impl std::error::Error for LocatedError {}

impl Diagnostic for LocatedError {
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
pub fn line_col(text: &str, offset: usize) -> (usize, usize) {
    let mut offset = offset.min(text.len());
    while !text.is_char_boundary(offset) {
        offset -= 1;
    }
    let before = &text[..offset];
    let line = before.matches('\n').count() + 1;
    let line_start = before.rfind('\n').map_or(0, |i| i + 1);
    (line, before[line_start..].chars().count() + 1)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn errors_read_file_line_column_message() {
        let file = SourceFile::new("app/kiln.toml", "a = 1\nbé = 2\n".to_string());
        let err = file.error(10..11, "bad value", "write a string");
        assert_eq!(err.to_string(), "app/kiln.toml:2:4: bad value");
        assert_eq!(err.line_col(), Some((2, 4)), "columns count characters, not bytes");
        assert_eq!(err.help_text(), Some("write a string"));
        assert!(!format!("{err:?}").contains("a = 1"), "Debug never dumps the file text");
    }

    #[test]
    fn unpositioned_errors_name_their_file() {
        let err = LocatedError::new("cannot read it", "").in_file("rc.toml");
        assert_eq!(err.to_string(), "rc.toml: cannot read it");
        assert_eq!(err.help_text(), None);
        assert_eq!(line_col("x", 99), (1, 2), "offsets past the end are clamped");
    }
}
