//! `RuntimeConfigError`: an error located in the runtime config file (see `kiln-diagnostic`, shared
//! with the manifest). Messages name keys and types only, never configured values: URLs may hold
//! passwords and static variables may be secrets.

pub use kiln_diagnostic::LocatedError as RuntimeConfigError;
pub(crate) use kiln_diagnostic::SourceFile as Source;
