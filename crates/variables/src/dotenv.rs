//! Dotenv files: `NAME=value` lines, `#` comments, optional `export `, single quotes (literal) or
//! double quotes (`\n`, `\t`, `\"`, `\\` escapes). No `$VAR` expansion: a file's values are taken
//! as written, so nothing from the host environment leaks into them.

use std::collections::HashMap;
use std::fmt;
use std::path::Path;

use crate::{Provider, VariablesError};

/// Values from a dotenv file, read once when the provider is made.
///
/// Keys match variable names case-insensitively: `API_KEY=…` and `api_key=…` both give variable
/// `api_key`. Spin-style prefixed keys work too, so a `.env` written for Spin's env provider
/// (`SPIN_VARIABLE_API_KEY=…`) or Kiln's (`KILN_VARIABLE_API_KEY=…`) serves the same variable;
/// `KILN_VARIABLE_*` beats `SPIN_VARIABLE_*`, which beats the bare name. When the same key appears
/// twice, the later line wins.
pub struct DotenvProvider {
    /// Lower-cased key → value.
    values: HashMap<String, String>,
}

impl DotenvProvider {
    /// Reads and parses the file. Errors name the file and line, never a value.
    pub fn load(path: &Path) -> Result<DotenvProvider, VariablesError> {
        Ok(DotenvProvider::from_entries(read(path)?))
    }

    pub fn from_entries(entries: impl IntoIterator<Item = (String, String)>) -> DotenvProvider {
        DotenvProvider {
            values: entries
                .into_iter()
                .map(|(k, v)| (k.to_ascii_lowercase(), v))
                .collect(),
        }
    }
}

impl Provider for DotenvProvider {
    fn get(&self, name: &str) -> Option<String> {
        let name = name.to_ascii_lowercase();
        ["kiln_variable_", "spin_variable_", ""]
            .iter()
            .find_map(|prefix| self.values.get(&format!("{prefix}{name}")).cloned())
    }
}

impl fmt::Debug for DotenvProvider {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let mut keys: Vec<&String> = self.values.keys().collect();
        keys.sort();
        f.debug_struct("DotenvProvider")
            .field("keys", &keys)
            .finish_non_exhaustive()
    }
}

/// The file's entries in order (keys as written).
pub(crate) fn read(path: &Path) -> Result<Vec<(String, String)>, VariablesError> {
    let text = std::fs::read_to_string(path).map_err(|e| VariablesError::Dotenv {
        path: path.to_path_buf(),
        line: None,
        message: format!("cannot read: {e}"),
    })?;
    parse_dotenv(&text).map_err(|(line, message)| VariablesError::Dotenv {
        path: path.to_path_buf(),
        line: Some(line),
        message,
    })
}

/// Parses dotenv text into `(key, value)` pairs in file order. An error is `(1-based line,
/// message)`; the message never quotes the value.
pub fn parse_dotenv(text: &str) -> Result<Vec<(String, String)>, (usize, String)> {
    let mut out = Vec::new();
    for (i, raw) in text.lines().enumerate() {
        let line_no = i + 1;
        let line = raw.trim();
        if line.is_empty() || line.starts_with('#') {
            continue;
        }
        let line = line.strip_prefix("export ").map_or(line, str::trim_start);
        let Some((key, rest)) = line.split_once('=') else {
            return Err((line_no, "expected `NAME=value`".into()));
        };
        let key = key.trim();
        if key.is_empty() {
            return Err((line_no, "missing name before `=`".into()));
        }
        if let Some(bad) = key
            .chars()
            .find(|c| !(c.is_ascii_alphanumeric() || matches!(c, '_' | '.' | '-')))
        {
            return Err((
                line_no,
                format!("invalid character {bad:?} in name; use letters, digits and `_`"),
            ));
        }
        let value = value(rest.trim_start()).map_err(|m| (line_no, m))?;
        out.push((key.to_string(), value));
    }
    Ok(out)
}

fn value(rest: &str) -> Result<String, String> {
    let mut chars = rest.char_indices();
    match chars.next() {
        None => Ok(String::new()),
        Some((_, '\'')) => {
            let body = &rest[1..];
            let end = body
                .find('\'')
                .ok_or_else(|| "unterminated single quote".to_string())?;
            trailing(&body[end + 1..])?;
            Ok(body[..end].to_string())
        }
        Some((_, '"')) => {
            let mut out = String::new();
            let mut escaped = false;
            for (i, c) in chars {
                if escaped {
                    out.push(match c {
                        'n' => '\n',
                        't' => '\t',
                        'r' => '\r',
                        other => other,
                    });
                    escaped = false;
                } else if c == '\\' {
                    escaped = true;
                } else if c == '"' {
                    trailing(&rest[i + 1..])?;
                    return Ok(out);
                } else {
                    out.push(c);
                }
            }
            Err("unterminated double quote".into())
        }
        Some(_) => {
            // Unquoted: a `#` after whitespace starts a comment.
            let mut end = rest.len();
            let bytes = rest.as_bytes();
            for (i, b) in bytes.iter().enumerate() {
                if *b == b'#' && i > 0 && bytes[i - 1].is_ascii_whitespace() {
                    end = i;
                    break;
                }
            }
            Ok(rest[..end].trim_end().to_string())
        }
    }
}

/// After a closing quote only whitespace or a comment may follow.
fn trailing(after: &str) -> Result<(), String> {
    let after = after.trim_start();
    if after.is_empty() || after.starts_with('#') {
        Ok(())
    } else {
        Err("unexpected text after the closing quote".into())
    }
}
