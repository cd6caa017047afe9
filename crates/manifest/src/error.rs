//! `ManifestError`: an error located in the manifest (see `kiln-diagnostic`, shared with the runtime
//! config).

pub use kiln_diagnostic::{LocatedError as ManifestError, Span};
pub(crate) use kiln_diagnostic::SourceFile as SourceText;
