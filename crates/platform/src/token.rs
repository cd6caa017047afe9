//! The admin API's bearer token: made on first start, kept in the data directory with mode 0600,
//! compared in constant time.

use anyhow::{Context, Result};
use std::io::Write;
use std::os::unix::fs::{OpenOptionsExt, PermissionsExt};
use std::path::Path;
use subtle::ConstantTimeEq;

pub struct AdminToken(String);

impl AdminToken {
    /// Reads the token at `path`, or makes one (32 random bytes, hex) and writes it there, readable
    /// by the owner only. A token file others can read is refused: anyone who read it could deploy.
    pub fn load_or_create(path: &Path) -> Result<AdminToken> {
        match std::fs::read_to_string(path) {
            Ok(text) => {
                let mode = std::fs::metadata(path)?.permissions().mode() & 0o777;
                if mode & 0o077 != 0 {
                    anyhow::bail!("the admin token `{}` is readable by others (mode {mode:o}); run `chmod 600 {}`", path.display(), path.display());
                }
                let token = text.trim().to_string();
                if token.len() < 32 {
                    anyhow::bail!("the admin token in `{}` is shorter than 32 characters; delete the file to have a new one made", path.display());
                }
                Ok(AdminToken(token))
            }
            Err(err) if err.kind() == std::io::ErrorKind::NotFound => Self::create(path),
            Err(err) => Err(err).with_context(|| format!("cannot read the admin token `{}`", path.display())),
        }
    }

    fn create(path: &Path) -> Result<AdminToken> {
        let mut bytes = [0u8; 32];
        getrandom::getrandom(&mut bytes).map_err(|err| anyhow::anyhow!("no randomness for the admin token: {err}"))?;
        let token = hex::encode(bytes);
        let mut file = std::fs::OpenOptions::new()
            .write(true)
            .create_new(true)
            .mode(0o600)
            .open(path)
            .with_context(|| format!("cannot create the admin token `{}`", path.display()))?;
        file.write_all(format!("{token}\n").as_bytes())?;
        file.sync_all()?;
        Ok(AdminToken(token))
    }

    /// Whether an `Authorization` header carries this token (`Bearer <token>`), in time that does not
    /// depend on how much of it matched.
    pub fn accepts(&self, authorization: Option<&http::HeaderValue>) -> bool {
        let Some(value) = authorization.and_then(|v| v.to_str().ok()) else {
            return false;
        };
        let Some(presented) = value.strip_prefix("Bearer ").map(str::trim) else {
            return false;
        };
        presented.as_bytes().ct_eq(self.0.as_bytes()).into()
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn made_once_private_and_reused() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("admin-token");
        let first = AdminToken::load_or_create(&path).unwrap();
        assert_eq!(first.as_str().len(), 64);
        assert_eq!(std::fs::metadata(&path).unwrap().permissions().mode() & 0o777, 0o600);
        let again = AdminToken::load_or_create(&path).unwrap();
        assert_eq!(first.as_str(), again.as_str());
    }

    #[test]
    fn a_token_others_can_read_is_refused() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("admin-token");
        AdminToken::load_or_create(&path).unwrap();
        std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o644)).unwrap();
        let err = AdminToken::load_or_create(&path).err().unwrap().to_string();
        assert!(err.contains("chmod 600"), "{err}");
    }

    #[test]
    fn only_the_exact_bearer_token_is_accepted() {
        let token = AdminToken("a".repeat(64));
        let header = |s: &str| http::HeaderValue::from_str(s).unwrap();
        assert!(token.accepts(Some(&header(&format!("Bearer {}", "a".repeat(64))))));
        assert!(!token.accepts(Some(&header(&format!("Bearer {}", "a".repeat(63))))));
        assert!(!token.accepts(Some(&header(&format!("Bearer {}b", "a".repeat(64))))));
        assert!(!token.accepts(Some(&header(&format!("Basic {}", "a".repeat(64))))));
        assert!(!token.accepts(None));
    }
}
