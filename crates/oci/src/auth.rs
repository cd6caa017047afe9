//! Registry credentials: `kiln registry login` stores them in `~/.config/kiln/registry-auth.json`
//! (mode 0600, Spin's format: `{"auths": {"<host>": "<base64 user:password>"}}`); lookups try that
//! file, then Spin's (`~/.config/fermyon/registry-auth.json`), then Docker's `config.json`
//! (`auths`, `credsStore`, `credHelpers`), else anonymous.

use anyhow::{Context, Result};
use base64::Engine as _;
use oci_client::secrets::RegistryAuth;
use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

#[derive(Default, Serialize, Deserialize)]
struct AuthFile {
    #[serde(default)]
    auths: BTreeMap<String, String>,
}

/// Where credentials are kept.
#[derive(Clone, Debug)]
pub struct Credentials {
    /// Kiln's own file (written by `kiln registry login`).
    pub file: PathBuf,
    /// Spin's file, read too.
    pub spin_file: Option<PathBuf>,
}

impl Credentials {
    /// `$XDG_CONFIG_HOME/kiln/registry-auth.json` (else `~/.config/…`), and Spin's beside it.
    pub fn default_location() -> Credentials {
        let config = std::env::var_os("XDG_CONFIG_HOME")
            .map(PathBuf::from)
            .or_else(|| std::env::var_os("HOME").map(|home| PathBuf::from(home).join(".config")))
            .unwrap_or_else(|| PathBuf::from(".config"));
        Credentials { file: config.join("kiln/registry-auth.json"), spin_file: Some(config.join("fermyon/registry-auth.json")) }
    }

    /// Stores `user`/`password` for `server` (a host, `host:port`, or a URL), readable by the owner
    /// only.
    pub fn store(&self, server: &str, user: &str, password: &str) -> Result<()> {
        let server = normalise_server(server);
        let mut file = read(&self.file)?.unwrap_or_default();
        let encoded = base64::engine::general_purpose::STANDARD.encode(format!("{user}:{password}"));
        file.auths.insert(server, encoded);
        let parent = self.file.parent().context("the credentials file has no directory")?;
        std::fs::create_dir_all(parent).with_context(|| format!("cannot create `{}`", parent.display()))?;
        let text = serde_json::to_vec_pretty(&file)?;
        let temp = self.file.with_extension("json.tmp");
        {
            use std::io::Write;
            use std::os::unix::fs::OpenOptionsExt;
            let _ = std::fs::remove_file(&temp);
            let mut out = std::fs::OpenOptions::new().write(true).create_new(true).mode(0o600).open(&temp).with_context(|| format!("cannot write `{}`", temp.display()))?;
            out.write_all(&text)?;
            out.sync_all()?;
        }
        std::fs::rename(&temp, &self.file).with_context(|| format!("cannot write `{}`", self.file.display()))?;
        Ok(())
    }

    /// The credentials for `server` (`host` or `host:port`).
    pub fn lookup(&self, server: &str) -> Result<RegistryAuth> {
        let server = normalise_server(server);
        for file in std::iter::once(&self.file).chain(self.spin_file.iter()) {
            if let Some(encoded) = read(file)?.and_then(|f| f.auths.get(&server).cloned()) {
                return decode(&encoded).with_context(|| format!("the credentials for {server} in `{}` are damaged; run `kiln registry login {server}` again", file.display()));
            }
        }
        match docker_credential::get_credential(&server) {
            Ok(docker_credential::DockerCredential::UsernamePassword(user, password)) => Ok(RegistryAuth::Basic(user, password)),
            _ => Ok(RegistryAuth::Anonymous),
        }
    }
}

fn read(path: &Path) -> Result<Option<AuthFile>> {
    match std::fs::read(path) {
        Ok(bytes) => Ok(Some(serde_json::from_slice(&bytes).with_context(|| format!("`{}` is not a credentials file", path.display()))?)),
        Err(err) if err.kind() == std::io::ErrorKind::NotFound => Ok(None),
        Err(err) => Err(err).with_context(|| format!("cannot read `{}`", path.display())),
    }
}

fn decode(encoded: &str) -> Result<RegistryAuth> {
    let decoded = base64::engine::general_purpose::STANDARD.decode(encoded.trim())?;
    let text = String::from_utf8(decoded)?;
    let (user, password) = text.split_once(':').context("not user:password")?;
    Ok(RegistryAuth::Basic(user.to_string(), password.to_string()))
}

/// `https://ghcr.io/` → `ghcr.io`; `docker.io` → `index.docker.io` (as Docker and Spin key it).
pub fn normalise_server(server: &str) -> String {
    let server = server.trim();
    let server = server.split_once("://").map_or(server, |(_, rest)| rest);
    let server = server.trim_end_matches('/');
    let host = server.split('/').next().unwrap_or(server);
    if host == "docker.io" { "index.docker.io".to_string() } else { host.to_string() }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn stored_credentials_are_private_and_found_again() {
        let dir = tempfile::tempdir().unwrap();
        let credentials = Credentials { file: dir.path().join("kiln/registry-auth.json"), spin_file: None };
        credentials.store("http://127.0.0.1:5000/", "alice", "s3cret:with:colons").unwrap();
        use std::os::unix::fs::PermissionsExt;
        assert_eq!(std::fs::metadata(&credentials.file).unwrap().permissions().mode() & 0o777, 0o600);
        match credentials.lookup("127.0.0.1:5000").unwrap() {
            RegistryAuth::Basic(user, password) => assert_eq!((user.as_str(), password.as_str()), ("alice", "s3cret:with:colons")),
            _ => panic!("expected basic credentials"),
        }
        assert_eq!(normalise_server("docker.io"), "index.docker.io");
        assert_eq!(normalise_server("ghcr.io/org/app"), "ghcr.io");
    }
}
