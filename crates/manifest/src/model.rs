//! The public, validated manifest model: plain data.

use std::fmt;
use std::path::PathBuf;
use std::time::Duration;

use indexmap::IndexMap;

use crate::error::Span;
use crate::template::Template;

#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Application {
    pub name: String,
    pub version: Option<String>,
    pub description: Option<String>,
    pub authors: Vec<String>,
    pub http: HttpAppSettings,
    pub redis_address: Option<String>,
    pub nats_url: Option<String>,
    /// `[application.tool.kiln]`: limits the app asks for; unset ones take the host's defaults.
    pub limits: AppLimitsSpec,
}

/// Per-app limits as a manifest states them (`[application.tool.kiln]`, a table Spin ignores).
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct AppLimitsSpec {
    /// Instances at once.
    pub max_concurrency: Option<u32>,
    /// Linear memory per instance, MiB.
    pub memory_limit_mib: Option<u32>,
    /// Deadline per request, milliseconds.
    pub request_timeout_ms: Option<u64>,
    /// Largest request body, bytes.
    pub max_request_body: Option<u64>,
    /// Where the table is, for errors about its values.
    pub span: Option<Span>,
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub struct HttpAppSettings {
    /// `[application.trigger.http] base`, default `/`.
    pub base: String,
}

impl Default for HttpAppSettings {
    fn default() -> Self {
        HttpAppSettings { base: "/".into() }
    }
}

/// An application variable (`[variables]`). Exactly one of `default` / `required` is set.
#[derive(Clone, PartialEq, Eq)]
pub struct Variable {
    pub default: Option<String>,
    pub required: bool,
    pub secret: bool,
    pub description: Option<String>,
    /// The variable's name in `[variables]`.
    pub span: Span,
}

// A secret's default is still a secret: keep it out of logs.
impl fmt::Debug for Variable {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let default = match (&self.default, self.secret) {
            (Some(_), true) => Some("<redacted>"),
            (Some(d), false) => Some(d.as_str()),
            (None, _) => None,
        };
        f.debug_struct("Variable")
            .field("default", &default)
            .field("required", &self.required)
            .field("secret", &self.secret)
            .field("description", &self.description)
            .finish()
    }
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub struct HttpTrigger {
    pub id: Option<String>,
    pub route: HttpRoute,
    pub component: String,
    pub component_span: Span,
    pub executor: HttpExecutor,
}

/// How an HTTP trigger runs its component (`executor = { type = … }`).
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub enum HttpExecutor {
    /// `http` (alias `spin`), the default: the component's `wasi:http` handler.
    #[default]
    Http,
    /// `wagi`: a command run CGI-style (the request as environment, arguments and stdin; the response
    /// from stdout).
    Wagi(WagiExecutor),
}

/// The `wagi` executor's settings, with Spin's defaults.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct WagiExecutor {
    /// The module's function to run: `_start` (the only one a command component exports).
    pub entrypoint: String,
    /// The arguments: `${SCRIPT_NAME}` (the request path) and `${ARGS}` (the query's keys and
    /// non-empty values) are substituted.
    pub argv: String,
}

impl Default for WagiExecutor {
    fn default() -> Self {
        WagiExecutor { entrypoint: "_start".into(), argv: "${SCRIPT_NAME} ${ARGS}".into() }
    }
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub enum HttpRoute {
    /// The route as written (only checked to start with `/`); `span` covers the TOML string.
    Path { route: String, span: Span },
    /// `route = { private = true }`: reachable only through service chaining.
    Private,
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub struct RedisTrigger {
    pub id: Option<String>,
    pub channel: String,
    /// Per-trigger address; falls back to `Application::redis_address`.
    pub address: Option<String>,
    pub component: String,
    pub component_span: Span,
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub struct NatsTrigger {
    pub id: Option<String>,
    pub subject: String,
    pub queue_group: Option<String>,
    pub durable: Option<String>,
    pub component: String,
    pub component_span: Span,
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub struct CronTrigger {
    pub id: Option<String>,
    pub schedule: Schedule,
    /// The `cron_expression` or `interval` value, for the cron trigger's own errors.
    pub schedule_span: Span,
    pub component: String,
    pub component_span: Span,
}

/// `[[trigger.directory]]` (Kiln's own): each file that lands in `path` runs the component's
/// `wasi:cli/run` with the file on stdin; what it prints becomes `output/<file name>`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct DirectoryTrigger {
    pub id: Option<String>,
    /// The watched directory, absolute (written relative to the manifest's directory).
    pub path: PathBuf,
    pub path_span: Span,
    /// A glob over file names (`*.csv`); every file when absent.
    pub pattern: Option<String>,
    /// Where results go, absolute; must not be `path` itself.
    pub output: PathBuf,
    pub component: String,
    pub component_span: Span,
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Schedule {
    /// The expression as written; only its field count (5 to 7) is checked here.
    Cron(String),
    Interval(Duration),
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Component {
    pub id: String,
    pub source: ComponentSource,
    pub source_span: Span,
    pub description: Option<String>,
    pub environment: Vec<(String, String)>,
    pub files: Vec<FileMount>,
    /// Globs relative to the manifest directory.
    pub exclude_files: Vec<String>,
    pub allowed_outbound_hosts: Vec<AllowedHost>,
    pub key_value_stores: Vec<String>,
    pub sqlite_databases: Vec<String>,
    /// `ai_models`: the models the component may use through `fermyon:spin/llm`.
    pub ai_models: Vec<String>,
    /// Component variables: templates over application variables.
    pub variables: IndexMap<String, Template>,
    /// Span of each component variable's template string.
    pub variable_spans: IndexMap<String, Span>,
    pub build: Option<BuildConfig>,
    /// `[component.<id>.tool.kiln] allowed_publish_subjects`: subject patterns (with their place in
    /// the file) the component may publish to. `None`: not stated (the host's default applies).
    pub allowed_publish_subjects: Option<Vec<(String, Span)>>,
    /// `[component.<id>.dependencies]`: imports satisfied by composing other components in, in
    /// manifest order.
    pub dependencies: Vec<ComponentDependency>,
}

/// One `[component.<id>.dependencies]` entry: which imports it satisfies, and with what.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ComponentDependency {
    /// The key as written (`ns:pkg/iface@1.2.3`, `ns:pkg@1.2.3`, `ns:pkg`, or a plain kebab name).
    pub name: DependencyName,
    pub source: DependencySource,
    /// The dependency's export that satisfies the import; `None`: the import's own name.
    pub export: Option<String>,
    /// Whether the dependency gets the component's grants (`inherit_configuration`, else the
    /// component's `dependencies_inherit_configuration`; default false).
    pub inherit_configuration: bool,
    /// The entry's key, for errors about the dependency.
    pub span: Span,
}

/// A dependency's key: which of the component's imports it satisfies.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum DependencyName {
    /// `ns:pkg/iface[@version]` or `ns:pkg[@version]` (`interface: None`: every import from the
    /// package).
    Package { package: String, interface: Option<String>, version: Option<String> },
    /// A plain (kebab-case) import name.
    Plain(String),
}

impl DependencyName {
    /// Whether the import named `import` (as a component names it) is one this entry satisfies:
    /// same package, same interface if given, same version if given.
    pub fn matches(&self, import: &str) -> bool {
        let DependencyName::Package { package, interface, version } = self else {
            return matches!(self, DependencyName::Plain(name) if name == import);
        };
        let (path, import_version) = match import.split_once('@') {
            Some((path, v)) => (path, Some(v)),
            None => (import, None),
        };
        let Some((import_package, import_interface)) = path.split_once('/') else {
            return false;
        };
        import_package == package
            && interface.as_deref().is_none_or(|i| i == import_interface)
            && version.as_deref().is_none_or(|v| Some(v) == import_version)
    }

    /// The package (`ns:pkg`) this names, if any: the default `package` of a registry dependency.
    pub fn package(&self) -> Option<&str> {
        match self {
            DependencyName::Package { package, .. } => Some(package),
            DependencyName::Plain(_) => None,
        }
    }
}

impl fmt::Display for DependencyName {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            DependencyName::Plain(name) => f.write_str(name),
            DependencyName::Package { package, interface, version } => {
                f.write_str(package)?;
                if let Some(interface) = interface {
                    write!(f, "/{interface}")?;
                }
                if let Some(version) = version {
                    write!(f, "@{version}")?;
                }
                Ok(())
            }
        }
    }
}

/// Where a dependency's component comes from.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum DependencySource {
    /// `{ path }`: absolute, lexically normalised; or a remote one once fetched.
    Local(PathBuf),
    /// `{ url, digest }`.
    Remote { url: String, digest: String },
    /// `{ registry, package, version }`: `package` defaults to the dependency name's package.
    Registry { registry: String, package: String, version: String },
    /// `{ component }`: another component of the app (its source only; its configuration is
    /// ignored).
    AppComponent(String),
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub enum ComponentSource {
    /// Absolute, lexically normalised path.
    Local(PathBuf),
    Remote {
        url: String,
        digest: String,
    },
    Registry {
        registry: Option<String>,
        package: String,
        version: String,
    },
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub enum FileMount {
    /// A glob relative to the manifest directory (never absolute, never `..`); matching files
    /// appear in the guest at the same relative path under `/`.
    Glob { pattern: String },
    /// Host directory `source` (absolute, inside the app directory) mounted at guest path
    /// `destination` (absolute).
    Directory {
        source: PathBuf,
        destination: String,
    },
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub struct AllowedHost {
    /// As written, possibly with `{{ variable }}` placeholders: each names an application variable
    /// or, failing that, a component variable (see `kiln_variables::Resolver::render_for_component`).
    pub pattern: String,
    pub span: Span,
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub struct BuildConfig {
    /// Each entry is one shell command, run in order.
    pub command: Vec<String>,
    /// Absolute; defaults to the manifest directory.
    pub workdir: PathBuf,
    /// Globs relative to `workdir`.
    pub watch: Vec<String>,
}
