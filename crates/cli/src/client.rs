//! The admin-API client shared by `kiln deploy` and `kiln apps`: which host to talk to, which token
//! to send, and turning the server's answers (or its silence) into messages that say what to do.
//!
//! Resolution order, for each setting separately:
//! - host: `--host`, else `KILN_HOST`, else the config file's `host`, else [`DEFAULT_HOST`];
//! - token: `--token`, else `--data-dir DIR` (the file `DIR/admin-token`), else `KILN_TOKEN`, else
//!   the config file's `token`.
//!
//! `--data-dir` is a flag, so it outranks the environment and the config file like every other flag:
//! a user who names the data directory of the server on this machine means that server's token.

use anyhow::{Context, Result, anyhow, bail};
use reqwest::StatusCode;
use reqwest::blocking::{Client, RequestBuilder};
use serde::Deserialize;
use std::fmt;
use std::path::{Path, PathBuf};
use std::time::Duration;

/// Where `kiln serve --admin-listen` listens unless told otherwise.
pub(crate) const DEFAULT_HOST: &str = "http://127.0.0.1:3001";

/// How long reads (list, show) may take; deploys and removals get [`SLOW_CALL_TIMEOUT`].
const QUICK_CALL_TIMEOUT: Duration = Duration::from_secs(60);
/// A deploy answers once the new version is compiled and serving, a removal once the app is
/// drained: both can legitimately take minutes.
pub(crate) const SLOW_CALL_TIMEOUT: Duration = Duration::from_secs(15 * 60);

/// The flags every admin command takes.
#[derive(clap::Args, Debug, Default, Clone)]
pub(crate) struct ConnectArgs {
    /// The admin API of the `kiln serve` host [default: $KILN_HOST, else `host` in
    /// ~/.config/kiln/config.toml, else http://127.0.0.1:3001].
    #[arg(long, value_name = "URL")]
    pub(crate) host: Option<String>,
    /// The admin token [default: $KILN_TOKEN, else `token` in ~/.config/kiln/config.toml]. Other
    /// users of the machine can see flags (in `ps`); prefer KILN_TOKEN or the config file.
    #[arg(long, value_name = "TOKEN")]
    pub(crate) token: Option<String>,
    /// The --data-dir of a `kiln serve` on this machine: use the admin token it wrote there
    /// (DIR/admin-token).
    #[arg(long, value_name = "DIR")]
    pub(crate) data_dir: Option<PathBuf>,
}

/// The process environment this module reads, gathered in one place so that tests can pass their
/// own instead of changing the process's.
#[derive(Debug, Default, Clone)]
pub(crate) struct Environment {
    /// `KILN_HOST`
    pub(crate) host: Option<String>,
    /// `KILN_TOKEN`
    pub(crate) token: Option<String>,
    /// `XDG_CONFIG_HOME`
    pub(crate) xdg_config_home: Option<PathBuf>,
    /// `HOME`
    pub(crate) home: Option<PathBuf>,
}

impl Environment {
    /// Reads the process environment; empty variables count as unset.
    pub(crate) fn from_process() -> Environment {
        let var = |name: &str| std::env::var(name).ok().filter(|value| !value.trim().is_empty());
        Environment {
            host: var("KILN_HOST"),
            token: var("KILN_TOKEN"),
            xdg_config_home: var("XDG_CONFIG_HOME").map(PathBuf::from),
            home: var("HOME").map(PathBuf::from),
        }
    }

    /// `$XDG_CONFIG_HOME/kiln/config.toml`, else `~/.config/kiln/config.toml`. The XDG spec says a
    /// relative `XDG_CONFIG_HOME` is to be ignored.
    pub(crate) fn config_path(&self) -> Option<PathBuf> {
        let base = match &self.xdg_config_home {
            Some(dir) if dir.is_absolute() => dir.clone(),
            _ => self.home.as_ref()?.join(".config"),
        };
        Some(base.join("kiln").join("config.toml"))
    }
}

/// The user's config file: defaults for `--host` and `--token`.
#[derive(Debug, Default, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct ConfigFile {
    /// Where it was read from, for messages.
    #[serde(skip)]
    pub(crate) path: PathBuf,
    pub(crate) host: Option<String>,
    pub(crate) token: Option<String>,
}

impl ConfigFile {
    /// Reads the config file at `path`; a missing file is no config (`None`), a broken one an error.
    pub(crate) fn load(path: &Path) -> Result<Option<ConfigFile>> {
        let text = match std::fs::read_to_string(path) {
            Ok(text) => text,
            Err(err) if err.kind() == std::io::ErrorKind::NotFound => return Ok(None),
            Err(err) => bail!("cannot read the config file {}: {err}", path.display()),
        };
        let mut config: ConfigFile = toml::from_str(&text).map_err(|err| {
            anyhow!(
                "the config file {} is not valid: {}\nhelp: it holds at most two keys, like\n  host = \"http://127.0.0.1:3001\"\n  token = \"…\"",
                path.display(),
                err.message()
            )
        })?;
        config.path = path.to_path_buf();
        Ok(Some(config))
    }
}

/// Where a setting came from: named in messages, so that a refused token can be traced to the
/// place that supplied it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum Origin {
    Flag(&'static str),
    DataDir(PathBuf),
    Env(&'static str),
    Config(PathBuf),
    Default,
}

impl fmt::Display for Origin {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Origin::Flag(flag) => write!(f, "{flag}"),
            Origin::DataDir(path) => write!(f, "{}", path.display()),
            Origin::Env(name) => write!(f, "${name}"),
            Origin::Config(path) => write!(f, "{}", path.display()),
            Origin::Default => write!(f, "the default"),
        }
    }
}

/// The resolved server to talk to.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Target {
    /// `scheme://host:port[/path]`, without a trailing `/`.
    pub(crate) host: String,
    pub(crate) host_origin: Origin,
    pub(crate) token: String,
    pub(crate) token_origin: Origin,
}

/// Resolves host and token from the flags, the environment and the config file (see the module
/// documentation for the order).
pub(crate) fn resolve(args: &ConnectArgs, env: &Environment, config: Option<&ConfigFile>) -> Result<Target> {
    let (host, host_origin) = resolve_host(args, env, config);
    let host = normalize_host(&host).with_context(|| format!("bad host `{host}` (from {host_origin})"))?;
    let (token, token_origin) = resolve_token(args, env, config)?;
    check_token(&token).with_context(|| format!("bad admin token (from {token_origin})"))?;
    Ok(Target { host, host_origin, token, token_origin })
}

fn resolve_host(args: &ConnectArgs, env: &Environment, config: Option<&ConfigFile>) -> (String, Origin) {
    if let Some(host) = &args.host {
        return (host.clone(), Origin::Flag("--host"));
    }
    if let Some(host) = &env.host {
        return (host.clone(), Origin::Env("KILN_HOST"));
    }
    if let Some(config) = config
        && let Some(host) = &config.host
    {
        return (host.clone(), Origin::Config(config.path.clone()));
    }
    (DEFAULT_HOST.to_string(), Origin::Default)
}

fn resolve_token(args: &ConnectArgs, env: &Environment, config: Option<&ConfigFile>) -> Result<(String, Origin)> {
    if let Some(token) = &args.token {
        return Ok((token.trim().to_string(), Origin::Flag("--token")));
    }
    if let Some(dir) = &args.data_dir {
        let path = dir.join("admin-token");
        return Ok((read_token_file(&path)?, Origin::DataDir(path)));
    }
    if let Some(token) = &env.token {
        return Ok((token.trim().to_string(), Origin::Env("KILN_TOKEN")));
    }
    if let Some(config) = config
        && let Some(token) = &config.token
    {
        return Ok((token.trim().to_string(), Origin::Config(config.path.clone())));
    }
    Err(missing_token(env))
}

fn missing_token(env: &Environment) -> anyhow::Error {
    let config = env.config_path().map_or_else(|| "~/.config/kiln/config.toml".to_string(), |p| p.display().to_string());
    anyhow!(
        "no admin token given\nhelp: `kiln serve` writes its token to <data-dir>/admin-token on first start; \
         pass `--data-dir <data-dir>` on the same machine, or pass `--token TOKEN`, set KILN_TOKEN, \
         or put `token = \"…\"` in {config}"
    )
}

/// The token `kiln serve` wrote into its data directory.
fn read_token_file(path: &Path) -> Result<String> {
    let text = std::fs::read_to_string(path).map_err(|err| match err.kind() {
        std::io::ErrorKind::NotFound => anyhow!(
            "no admin token at {}\nhelp: pass the --data-dir of a `kiln serve` that has started at least once",
            path.display()
        ),
        std::io::ErrorKind::PermissionDenied => anyhow!(
            "cannot read {}: permission denied\nhelp: the file is readable only by its owner; run this as the user that runs `kiln serve`",
            path.display()
        ),
        _ => anyhow!("cannot read {}: {err}", path.display()),
    })?;
    let token = text.trim();
    if token.is_empty() {
        bail!("{} is empty\nhelp: restart `kiln serve` to have it write a new token", path.display());
    }
    Ok(token.to_string())
}

/// Tokens travel in an HTTP header: refuse what cannot go there now, not as an obscure send error.
fn check_token(token: &str) -> Result<()> {
    if token.is_empty() {
        bail!("it is empty");
    }
    if !token.bytes().all(|b| b.is_ascii_graphic()) {
        bail!("it contains spaces or characters that cannot go in an HTTP header");
    }
    Ok(())
}

/// Accepts `host:port` as shorthand for `http://host:port`, drops trailing slashes, and refuses
/// schemes this build cannot speak.
pub(crate) fn normalize_host(raw: &str) -> Result<String> {
    let trimmed = raw.trim().trim_end_matches('/');
    let host = if trimmed.contains("://") { trimmed.to_string() } else { format!("http://{trimmed}") };
    let url = reqwest::Url::parse(&host).map_err(|err| anyhow!("{err}; write it like http://127.0.0.1:3001"))?;
    match url.scheme() {
        "http" => {}
        "https" => bail!(
            "this kiln speaks plain HTTP to the admin API (it is built without TLS)\nhelp: keep the admin API on \
             loopback and reach it through an SSH tunnel (`ssh -L 3001:127.0.0.1:3001 server`), then use http://127.0.0.1:3001"
        ),
        other => bail!("unsupported scheme `{other}`; write it like http://127.0.0.1:3001"),
    }
    if url.host_str().is_none_or(str::is_empty) {
        bail!("it names no host; write it like http://127.0.0.1:3001");
    }
    if url.query().is_some() || url.fragment().is_some() {
        bail!("it has a query or fragment; write it like http://127.0.0.1:3001");
    }
    Ok(host)
}

/// App names are DNS labels (`^[a-z0-9]([a-z0-9-]{0,61}[a-z0-9])?$`): checked here too, so a typo
/// is reported before any request and a name can never change the shape of a URL.
pub(crate) fn check_app_name(name: &str) -> Result<()> {
    let allowed = |b: u8| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-';
    let valid = (1..=63).contains(&name.len())
        && name.bytes().all(allowed)
        && !name.starts_with('-')
        && !name.ends_with('-');
    if !valid {
        bail!(
            "`{name}` is not a valid app name\nhelp: app names are DNS labels: 1 to 63 characters, lower-case letters, \
             digits and `-`, starting and ending with a letter or digit (like `my-app`)"
        );
    }
    Ok(())
}

/// The admin API's own types: the host serialises them, the client reads them.
pub(crate) use kiln_platform::record::{AppInfo as App, AppList};

/// A server's answer: its status and body, whatever they are.
#[derive(Debug)]
pub(crate) struct Answer {
    pub(crate) status: StatusCode,
    pub(crate) body: String,
}

impl Answer {
    /// Parses the body as `T`, saying which call answered what if it is not.
    pub(crate) fn parse<T: serde::de::DeserializeOwned>(&self, what: &str) -> Result<T> {
        serde_json::from_str(&self.body).map_err(|err| {
            anyhow!("{what}: the server answered {} with a body that is not the expected JSON ({err}): {}", self.status, snippet(&self.body))
        })
    }

    /// The body pretty-printed if it is JSON, else as it came.
    pub(crate) fn pretty_json(&self) -> String {
        match serde_json::from_str::<serde_json::Value>(&self.body) {
            Ok(value) => serde_json::to_string_pretty(&value).unwrap_or_else(|_| self.body.clone()),
            Err(_) => self.body.clone(),
        }
    }
}

/// An error status from the admin API, with the server's one-line message.
#[derive(Debug)]
pub(crate) struct ApiError {
    pub(crate) status: StatusCode,
    pub(crate) message: String,
}

impl ApiError {
    /// Reads `{"error": "…"}`; a body in another shape (a proxy's error page, say) is quoted instead.
    pub(crate) fn from_answer(answer: &Answer) -> ApiError {
        #[derive(Deserialize)]
        struct ErrorBody {
            error: String,
        }
        let message = match serde_json::from_str::<ErrorBody>(&answer.body) {
            Ok(body) => body.error,
            Err(_) if answer.body.trim().is_empty() => answer.status.canonical_reason().unwrap_or("no message").to_string(),
            Err(_) => snippet(&answer.body),
        };
        ApiError { status: answer.status, message }
    }
}

impl fmt::Display for ApiError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{} ({})", self.message, self.status)
    }
}

impl std::error::Error for ApiError {}

/// At most one line of 300 characters of a body, for messages.
fn snippet(body: &str) -> String {
    let line = body.trim().lines().next().unwrap_or("");
    match line.char_indices().nth(300) {
        Some((cut, _)) => format!("{}…", &line[..cut]),
        None => line.to_string(),
    }
}

/// A connection to one `kiln serve` admin API.
pub(crate) struct AdminClient {
    target: Target,
    http: Client,
}

impl AdminClient {
    /// Resolves host and token from `args`, the process environment and the config file.
    pub(crate) fn connect(args: &ConnectArgs) -> Result<AdminClient> {
        let env = Environment::from_process();
        let config = match env.config_path() {
            Some(path) => ConfigFile::load(&path)?,
            None => None,
        };
        AdminClient::new(resolve(args, &env, config.as_ref())?)
    }

    pub(crate) fn new(target: Target) -> Result<AdminClient> {
        let mut builder = Client::builder().connect_timeout(Duration::from_secs(10)).timeout(QUICK_CALL_TIMEOUT);
        // A proxy from the environment has no business with a server on this machine.
        if is_loopback(&target.host) {
            builder = builder.no_proxy();
        }
        let http = builder.build().context("cannot set up the HTTP client")?;
        Ok(AdminClient { target, http })
    }

    pub(crate) fn host(&self) -> &str {
        &self.target.host
    }

    /// A request to `path` (starting with `/`) carrying the token.
    pub(crate) fn request(&self, method: reqwest::Method, path: &str) -> RequestBuilder {
        self.http.request(method, format!("{}{path}", self.target.host)).bearer_auth(&self.target.token)
    }

    /// Sends `request`; any status is an [`Answer`], only a failure to get one is an error.
    pub(crate) fn send(&self, request: RequestBuilder) -> Result<Answer> {
        let response = request.send().map_err(|err| self.transport_error(&err))?;
        let status = response.status();
        let body = response.text().map_err(|err| self.transport_error(&err))?;
        Ok(Answer { status, body })
    }

    /// Sends `request` and turns an error status into an error that says what to do; `not_found`
    /// is the hint for a 404, which means something different for each call.
    pub(crate) fn call(&self, request: RequestBuilder, what: &str, not_found: &str) -> Result<Answer> {
        let answer = self.send(request)?;
        if answer.status.is_success() {
            return Ok(answer);
        }
        Err(self.status_error(&ApiError::from_answer(&answer), what, not_found))
    }

    /// `what` failed with `error`: the server's message, plus a hint where one helps.
    pub(crate) fn status_error(&self, error: &ApiError, what: &str, not_found: &str) -> anyhow::Error {
        let hint = match error.status {
            StatusCode::UNAUTHORIZED | StatusCode::FORBIDDEN => format!(
                "the server at {} refused the admin token from {}; its current token is in <data-dir>/admin-token on the server",
                self.target.host, self.target.token_origin
            ),
            StatusCode::NOT_FOUND => not_found.to_string(),
            status if status.is_server_error() => "the server failed; its log says more".to_string(),
            _ => String::new(),
        };
        if hint.is_empty() { anyhow!("{what} failed: {error}") } else { anyhow!("{what} failed: {error}\nhelp: {hint}") }
    }

    /// The 404 hint where the admin API always answers (a list, a deploy): the address is probably
    /// another server's, or the apps' instead of the admin API's.
    pub(crate) fn wrong_address_hint(&self) -> String {
        format!(
            "is {} (from {}) the admin address of `kiln serve` (its --admin-listen), not the apps' address?",
            self.target.host, self.target.host_origin
        )
    }

    fn transport_error(&self, err: &reqwest::Error) -> anyhow::Error {
        let host = &self.target.host;
        let cause = root_cause(err);
        if err.is_connect() {
            return anyhow!(
                "cannot reach the admin API at {host} (from {}): {cause}\nhelp: is `kiln serve` running there? \
                 Its admin API listens on --admin-listen (default 127.0.0.1:3001); pass --host or set KILN_HOST to another address",
                self.target.host_origin
            );
        }
        if err.is_timeout() {
            return anyhow!("no answer from the admin API at {host} in time: {cause}\nhelp: the server may be overloaded; its log says more");
        }
        anyhow!("talking to the admin API at {host} failed: {cause}")
    }
}

/// The innermost error: reqwest's own wrappers only repeat the URL.
fn root_cause(err: &(dyn std::error::Error + 'static)) -> String {
    let mut cause = err;
    while let Some(source) = cause.source() {
        cause = source;
    }
    cause.to_string()
}

fn is_loopback(host: &str) -> bool {
    let Ok(url) = reqwest::Url::parse(host) else {
        return false;
    };
    let Some(name) = url.host_str() else {
        return false;
    };
    match name.trim_start_matches('[').trim_end_matches(']').parse::<std::net::IpAddr>() {
        Ok(ip) => ip.is_loopback(),
        Err(_) => name == "localhost" || name.ends_with(".localhost"),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn flags(host: Option<&str>, token: Option<&str>, data_dir: Option<&Path>) -> ConnectArgs {
        ConnectArgs {
            host: host.map(String::from),
            token: token.map(String::from),
            data_dir: data_dir.map(Path::to_path_buf),
        }
    }

    fn env(host: Option<&str>, token: Option<&str>) -> Environment {
        Environment {
            host: host.map(String::from),
            token: token.map(String::from),
            xdg_config_home: None,
            home: Some(PathBuf::from("/home/u")),
        }
    }

    fn config(host: Option<&str>, token: Option<&str>) -> ConfigFile {
        ConfigFile { path: PathBuf::from("/home/u/.config/kiln/config.toml"), host: host.map(String::from), token: token.map(String::from) }
    }

    fn data_dir_with_token(token: &str) -> tempfile::TempDir {
        let dir = tempfile::tempdir().unwrap();
        std::fs::write(dir.path().join("admin-token"), format!("{token}\n")).unwrap();
        dir
    }

    #[test]
    fn flags_beat_environment_beat_config_beat_default() {
        let dir = data_dir_with_token("from-dir");
        let cfg = config(Some("http://config:1"), Some("from-config"));
        let all = resolve(&flags(Some("http://flag:1"), Some("from-flag"), Some(dir.path())), &env(Some("http://env:1"), Some("from-env")), Some(&cfg)).unwrap();
        assert_eq!((all.host.as_str(), all.token.as_str()), ("http://flag:1", "from-flag"));
        assert_eq!((all.host_origin, all.token_origin), (Origin::Flag("--host"), Origin::Flag("--token")));

        let no_flags = resolve(&flags(None, None, None), &env(Some("http://env:1"), Some("from-env")), Some(&cfg)).unwrap();
        assert_eq!((no_flags.host.as_str(), no_flags.token.as_str()), ("http://env:1", "from-env"));

        let config_only = resolve(&flags(None, None, None), &env(None, None), Some(&cfg)).unwrap();
        assert_eq!((config_only.host.as_str(), config_only.token.as_str()), ("http://config:1", "from-config"));
        assert_eq!(config_only.token_origin, Origin::Config(cfg.path.clone()));

        let defaults = resolve(&flags(None, Some("t"), None), &env(None, None), None).unwrap();
        assert_eq!((defaults.host.as_str(), defaults.host_origin), (DEFAULT_HOST, Origin::Default));
    }

    #[test]
    fn data_dir_token_outranks_environment_and_config_but_not_token_flag() {
        let dir = data_dir_with_token("from-dir");
        let cfg = config(None, Some("from-config"));
        let target = resolve(&flags(None, None, Some(dir.path())), &env(None, Some("from-env")), Some(&cfg)).unwrap();
        assert_eq!(target.token, "from-dir");
        assert_eq!(target.token_origin, Origin::DataDir(dir.path().join("admin-token")));
        let flagged = resolve(&flags(None, Some("from-flag"), Some(dir.path())), &env(None, None), None).unwrap();
        assert_eq!(flagged.token, "from-flag");
    }

    #[test]
    fn each_setting_resolves_separately() {
        let cfg = config(Some("http://config:1"), None);
        let target = resolve(&flags(None, None, None), &env(None, Some("from-env")), Some(&cfg)).unwrap();
        assert_eq!((target.host.as_str(), target.token.as_str()), ("http://config:1", "from-env"));
    }

    #[test]
    fn missing_token_says_where_to_find_one() {
        let err = resolve(&flags(None, None, None), &env(None, None), Some(&config(Some("http://h:1"), None))).unwrap_err().to_string();
        for needle in ["admin-token", "--data-dir", "--token", "KILN_TOKEN", "/home/u/.config/kiln/config.toml"] {
            assert!(err.contains(needle), "{needle} missing from: {err}");
        }
    }

    #[test]
    fn missing_or_empty_token_file_is_explained() {
        let empty = tempfile::tempdir().unwrap();
        let err = resolve(&flags(None, None, Some(empty.path())), &env(None, None), None).unwrap_err().to_string();
        assert!(err.contains("no admin token at") && err.contains("started at least once"), "{err}");
        let blank = data_dir_with_token("  ");
        let err = resolve(&flags(None, None, Some(blank.path())), &env(None, None), None).unwrap_err().to_string();
        assert!(err.contains("is empty"), "{err}");
    }

    #[test]
    fn token_with_a_newline_inside_is_refused_with_its_origin() {
        let err = resolve(&flags(None, Some("ab\ncd"), None), &env(None, None), None).unwrap_err();
        let text = format!("{err:#}");
        assert!(text.contains("--token") && text.contains("HTTP header"), "{text}");
    }

    #[test]
    fn config_path_prefers_absolute_xdg_config_home() {
        let mut e = env(None, None);
        assert_eq!(e.config_path(), Some(PathBuf::from("/home/u/.config/kiln/config.toml")));
        e.xdg_config_home = Some(PathBuf::from("/xdg"));
        assert_eq!(e.config_path(), Some(PathBuf::from("/xdg/kiln/config.toml")));
        e.xdg_config_home = Some(PathBuf::from("relative"));
        assert_eq!(e.config_path(), Some(PathBuf::from("/home/u/.config/kiln/config.toml")));
        e.home = None;
        assert_eq!(e.config_path(), None);
    }

    #[test]
    fn config_file_loads_missing_is_none_and_unknown_keys_are_errors() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("config.toml");
        assert!(ConfigFile::load(&path).unwrap().is_none());
        std::fs::write(&path, "host = \"http://h:9\"\ntoken = \"t\"\n").unwrap();
        let config = ConfigFile::load(&path).unwrap().unwrap();
        assert_eq!((config.host.as_deref(), config.token.as_deref(), config.path), (Some("http://h:9"), Some("t"), path.clone()));
        std::fs::write(&path, "tokn = \"t\"\n").unwrap();
        let err = ConfigFile::load(&path).unwrap_err().to_string();
        assert!(err.contains("config.toml") && err.contains("tokn"), "{err}");
    }

    #[test]
    fn hosts_are_normalized_and_https_is_refused_clearly() {
        assert_eq!(normalize_host("127.0.0.1:3001").unwrap(), "http://127.0.0.1:3001");
        assert_eq!(normalize_host("http://admin.example:80/").unwrap(), "http://admin.example:80");
        assert_eq!(normalize_host(" http://h/kiln/ ").unwrap(), "http://h/kiln");
        assert!(normalize_host("https://h").unwrap_err().to_string().contains("SSH tunnel"));
        assert!(normalize_host("ftp://h").unwrap_err().to_string().contains("scheme"));
        assert!(normalize_host("http://h/?x=1").is_err());
    }

    #[test]
    fn app_names_are_dns_labels() {
        for good in ["a", "hello", "my-app-2", "0", &"a".repeat(63)] {
            assert!(check_app_name(good).is_ok(), "{good}");
        }
        for bad in ["", "-a", "a-", "Hello", "a_b", "a.b", "../x", &"a".repeat(64), "é"] {
            assert!(check_app_name(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn api_errors_read_the_error_field_or_quote_the_body() {
        let answer = |status: u16, body: &str| Answer { status: StatusCode::from_u16(status).unwrap(), body: body.to_string() };
        assert_eq!(ApiError::from_answer(&answer(400, r#"{"error":"kiln.toml:3:1: bad"}"#)).message, "kiln.toml:3:1: bad");
        assert_eq!(ApiError::from_answer(&answer(502, "<html>bad gateway</html>\nmore")).message, "<html>bad gateway</html>");
        assert_eq!(ApiError::from_answer(&answer(404, "")).message, "Not Found");
    }

    #[test]
    fn loopback_hosts_skip_proxies() {
        assert!(is_loopback("http://127.0.0.1:3001"));
        assert!(is_loopback("http://localhost:3001"));
        assert!(is_loopback("http://[::1]:3001"));
        assert!(!is_loopback("http://10.0.0.1:3001"));
        assert!(!is_loopback("http://kiln.example"));
    }

    #[test]
    fn the_app_json_of_the_contract_parses() {
        let json = r#"{"name":"hello","version":3,"status":"loaded","url":"http://hello.localhost:3000/","route_prefix":null,
            "routes":[{"component":"hello","route":"/..."}],
            "limits":{"max_concurrency":100,"memory_limit_mib":128,"request_timeout_ms":30000,"max_request_body":10485760},
            "deployed_at":1795000000,"requests_total":10,"errors_total":1,"in_flight":0}"#;
        let app: App = serde_json::from_str(json).unwrap();
        assert_eq!((app.name.as_str(), app.version, app.routes.len(), app.limits.memory_limit_mib), ("hello", 3, 1, 128));
        let sparse: App = serde_json::from_str(r#"{"name":"x","future_field":1}"#).unwrap();
        assert_eq!(sparse.name, "x");
    }
}
