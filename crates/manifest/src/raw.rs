//! The manifest as written: serde types mirroring the TOML, with spans. `convert` turns them into
//! the public model. Values that can take several shapes (string or table) use small visitors
//! instead of `#[serde(untagged)]`, because untagged enums buffer the input and lose both the
//! spans and the precise error locations.

use std::fmt;
use std::marker::PhantomData;

use indexmap::IndexMap;
use serde::de::{self, IgnoredAny, MapAccess, SeqAccess, Visitor};
use serde::{Deserialize, Deserializer};
use toml::Spanned;

/// Separates message and help in custom serde errors; see `convert::from_toml_error`.
pub(crate) const HELP_SEP: char = '\u{1f}';

/// Just enough to check the version before the strict parse, so an old (v1) manifest gets a
/// "version" error rather than a pile of unknown-key errors.
#[derive(Deserialize)]
pub(crate) struct VersionProbe {
    pub spin_manifest_version: Option<Spanned<toml::Value>>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct RawManifest {
    #[allow(dead_code)] // checked by VersionProbe
    pub spin_manifest_version: IgnoredAny,
    pub application: Spanned<RawApplication>,
    #[serde(default)]
    pub variables: IndexMap<Spanned<String>, Spanned<RawVariable>>,
    #[serde(default)]
    pub trigger: RawTriggers,
    #[serde(default)]
    pub component: IndexMap<Spanned<String>, Spanned<RawComponent>>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct RawApplication {
    pub name: Spanned<String>,
    pub version: Option<String>,
    pub description: Option<String>,
    #[serde(default)]
    pub authors: Vec<String>,
    #[serde(default)]
    pub trigger: RawAppTriggers,
    /// Settings for tools, `[application.tool.<name>]`; Spin ignores them. Kiln reads its own,
    /// `[application.tool.kiln]`, and ignores the others' as Spin does.
    #[serde(default)]
    pub tool: RawTools,
}

#[derive(Deserialize, Default)]
pub(crate) struct RawTools {
    pub kiln: Option<Spanned<RawKilnSettings>>,
    /// Other tools' tables.
    #[serde(flatten)]
    #[allow(dead_code)]
    pub others: IndexMap<String, IgnoredAny>,
}

/// `[application.tool.kiln]`: the app's limits (the host's defaults apply to what is not set).
#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct RawKilnSettings {
    pub max_concurrency: Option<Spanned<u64>>,
    pub memory_limit_mib: Option<Spanned<u64>>,
    pub request_timeout_ms: Option<Spanned<u64>>,
    pub max_request_body: Option<Spanned<u64>>,
}

/// `[application.trigger.<type>]`: per-trigger-type settings. Keyed by [`TriggerKind`] so that a
/// plugin's settings table gets the same error as its `[[trigger.<type>]]`, not "unknown key".
#[derive(Default)]
pub(crate) struct RawAppTriggers {
    pub http: Option<RawAppHttp>,
    pub redis: Option<RawAppRedis>,
    pub nats: Option<RawAppNats>,
}

impl<'de> Deserialize<'de> for RawAppTriggers {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        d.deserialize_map(AppTriggersVisitor)
    }
}

struct AppTriggersVisitor;

impl<'de> Visitor<'de> for AppTriggersVisitor {
    type Value = RawAppTriggers;

    fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
        f.write_str("a table of trigger settings, like [application.trigger.http]")
    }

    fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<RawAppTriggers, A::Error> {
        let mut out = RawAppTriggers::default();
        while let Some(key) = map.next_key::<AppTriggerKey>()? {
            match key {
                AppTriggerKey::Http => out.http = Some(map.next_value()?),
                AppTriggerKey::Redis => out.redis = Some(map.next_value()?),
                AppTriggerKey::Nats => out.nats = Some(map.next_value()?),
            }
        }
        Ok(out)
    }
}

/// The trigger types that have application settings. Refused here, in the key, so that the error
/// points at the key.
enum AppTriggerKey {
    Http,
    Redis,
    Nats,
}

impl<'de> Deserialize<'de> for AppTriggerKey {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        match TriggerKind::deserialize(d)? {
            TriggerKind::Http => Ok(AppTriggerKey::Http),
            TriggerKind::Redis => Ok(AppTriggerKey::Redis),
            TriggerKind::Nats => Ok(AppTriggerKey::Nats),
            kind @ (TriggerKind::Cron | TriggerKind::Directory) => Err(de::Error::custom(format!(
                "unknown key `{name}`{HELP_SEP}remove it; the {name} trigger has no application settings \
                 (keys allowed here: http, redis, nats)",
                name = kind.name()
            ))),
        }
    }
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct RawAppHttp {
    pub base: Option<Spanned<String>>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct RawAppRedis {
    pub address: Option<String>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct RawAppNats {
    pub url: Option<String>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct RawVariable {
    pub description: Option<String>,
    #[serde(default)]
    pub required: bool,
    pub default: Option<String>,
    #[serde(default)]
    pub secret: bool,
}

// ---------------------------------------------------------------------------------------------
// Triggers

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum TriggerKind {
    Http,
    Redis,
    Nats,
    Cron,
    Directory,
}

pub(crate) const TRIGGER_KINDS: &str = "http, redis, nats, cron, directory";

impl TriggerKind {
    fn from_name(name: &str) -> Option<TriggerKind> {
        match name {
            "http" => Some(TriggerKind::Http),
            "redis" => Some(TriggerKind::Redis),
            "nats" => Some(TriggerKind::Nats),
            "cron" => Some(TriggerKind::Cron),
            "directory" => Some(TriggerKind::Directory),
            _ => None,
        }
    }

    pub fn name(self) -> &'static str {
        match self {
            TriggerKind::Http => "http",
            TriggerKind::Redis => "redis",
            TriggerKind::Nats => "nats",
            TriggerKind::Cron => "cron",
            TriggerKind::Directory => "directory",
        }
    }
}

impl<'de> Deserialize<'de> for TriggerKind {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let name = String::deserialize(d)?;
        TriggerKind::from_name(&name).ok_or_else(|| de::Error::custom(unsupported_trigger(&name)))
    }
}

/// Spin itself runs only http and redis; every other trigger type (timer, sqs, mqtt, command, …)
/// is a Spin plugin, a separate executable Kiln does not run. Say so, rather than "unknown key".
fn unsupported_trigger(name: &str) -> String {
    format!(
        "unsupported trigger type `{name}`: Spin runs it through a trigger plugin, and Kiln does not run \
         Spin trigger plugins{HELP_SEP}Kiln runs these trigger types: {TRIGGER_KINDS}; check the \
         spelling, or trigger the component through one of them"
    )
}

pub(crate) enum RawTriggerList {
    Http(Vec<Spanned<RawHttpTrigger>>),
    Redis(Vec<Spanned<RawRedisTrigger>>),
    Nats(Vec<Spanned<RawNatsTrigger>>),
    Cron(Vec<Spanned<RawCronTrigger>>),
    Directory(Vec<Spanned<RawDirectoryTrigger>>),
}

/// `[trigger]`: trigger lists in manifest order. The key is parsed as a `TriggerKind` so an
/// unknown type is reported at the key itself.
#[derive(Default)]
pub(crate) struct RawTriggers(pub Vec<(TriggerKind, RawTriggerList)>);

impl<'de> Deserialize<'de> for RawTriggers {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        d.deserialize_map(TriggersVisitor)
    }
}

struct TriggersVisitor;

impl<'de> Visitor<'de> for TriggersVisitor {
    type Value = RawTriggers;

    fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
        f.write_str("a table of trigger lists, like [[trigger.http]]")
    }

    fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<RawTriggers, A::Error> {
        let mut out = Vec::new();
        while let Some(kind) = map.next_key::<TriggerKind>()? {
            let list = match kind {
                TriggerKind::Http => RawTriggerList::Http(map.next_value()?),
                TriggerKind::Redis => RawTriggerList::Redis(map.next_value()?),
                TriggerKind::Nats => RawTriggerList::Nats(map.next_value()?),
                TriggerKind::Cron => RawTriggerList::Cron(map.next_value()?),
                TriggerKind::Directory => RawTriggerList::Directory(map.next_value()?),
            };
            out.push((kind, list));
        }
        Ok(RawTriggers(out))
    }
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct RawHttpTrigger {
    pub id: Option<Spanned<String>>,
    pub route: Spanned<RawRoute>,
    pub component: Spanned<RawComponentRef>,
    /// Free-form so that `wagi` (which has extra keys) gets a targeted error.
    pub executor: Option<Spanned<toml::Value>>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct RawRedisTrigger {
    pub id: Option<Spanned<String>>,
    pub channel: Spanned<String>,
    pub address: Option<String>,
    pub component: Spanned<RawComponentRef>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct RawNatsTrigger {
    pub id: Option<Spanned<String>>,
    pub subject: Spanned<String>,
    pub queue_group: Option<String>,
    pub durable: Option<String>,
    pub component: Spanned<RawComponentRef>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct RawCronTrigger {
    pub id: Option<Spanned<String>>,
    pub cron_expression: Option<Spanned<String>>,
    pub interval: Option<Spanned<String>>,
    pub component: Spanned<RawComponentRef>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct RawDirectoryTrigger {
    pub id: Option<Spanned<String>>,
    pub path: Spanned<String>,
    pub pattern: Option<Spanned<String>>,
    pub output: Spanned<String>,
    pub component: Spanned<RawComponentRef>,
}

/// `route = "/path"` or `route = { private = true }`.
pub(crate) enum RawRoute {
    Path(String),
    Private(RawPrivate),
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct RawPrivate {
    pub private: bool,
}

impl<'de> Deserialize<'de> for RawRoute {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let v = d.deserialize_any(StrOrMap::<RawPrivate>::new(
            "a route like \"/path\" or { private = true }",
        ))?;
        Ok(match v {
            StrOr::Str(s) => RawRoute::Path(s),
            StrOr::Other(p) => RawRoute::Private(p),
        })
    }
}

/// `component = "id"` or an inline component table.
pub(crate) enum RawComponentRef {
    Id(String),
    Inline(Box<RawComponent>),
}

impl<'de> Deserialize<'de> for RawComponentRef {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let v = d.deserialize_any(StrOrMap::<Box<RawComponent>>::new(
            "a component id or an inline component table",
        ))?;
        Ok(match v {
            StrOr::Str(s) => RawComponentRef::Id(s),
            StrOr::Other(c) => RawComponentRef::Inline(c),
        })
    }
}

// ---------------------------------------------------------------------------------------------
// Components

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct RawComponent {
    pub source: Spanned<RawSource>,
    pub description: Option<String>,
    #[serde(default)]
    pub environment: IndexMap<String, String>,
    #[serde(default)]
    pub files: Vec<Spanned<RawFile>>,
    #[serde(default)]
    pub exclude_files: Vec<Spanned<String>>,
    #[serde(default)]
    pub allowed_outbound_hosts: Vec<Spanned<String>>,
    #[serde(default)]
    pub key_value_stores: Vec<Spanned<String>>,
    #[serde(default)]
    pub sqlite_databases: Vec<Spanned<String>>,
    #[serde(default)]
    pub ai_models: Vec<Spanned<String>>,
    #[serde(default)]
    pub variables: IndexMap<Spanned<String>, Spanned<String>>,
    pub build: Option<RawBuild>,
    /// Settings for tools, `[component.<id>.tool.<name>]` (e.g. `spin-test`); Spin ignores them. Kiln
    /// reads its own, `[component.<id>.tool.kiln]`, and ignores the others' as Spin does.
    #[serde(default)]
    pub tool: RawComponentTools,
    /// Spin 3.0's all-or-nothing grant for every dependency.
    pub dependencies_inherit_configuration: Option<bool>,
    #[serde(default)]
    pub dependencies: IndexMap<Spanned<String>, Spanned<RawDependency>>,
}

/// A `[component.<id>.dependencies]` value: a version string (a package from the default
/// registry) or a table of one of Spin's shapes.
pub(crate) enum RawDependency {
    Version(String),
    Table(Box<RawDependencyTable>),
}

/// Every key any of Spin's dependency shapes has; `convert` checks that they make one shape.
#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct RawDependencyTable {
    pub version: Option<String>,
    pub registry: Option<String>,
    pub package: Option<String>,
    pub path: Option<String>,
    pub url: Option<String>,
    pub digest: Option<Spanned<String>>,
    pub component: Option<Spanned<String>>,
    pub export: Option<String>,
    /// `true`, `false`, or (Spin 4) a list of configuration keys.
    pub inherit_configuration: Option<Spanned<toml::Value>>,
}

impl<'de> Deserialize<'de> for RawDependency {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let v = d.deserialize_any(StrOrMap::<Box<RawDependencyTable>>::new(
            "a version, { path = \"…\" }, { url = \"…\", digest = \"sha256:…\" }, { registry = \"…\", version = \"…\" } or { component = \"…\" }",
        ))?;
        Ok(match v {
            StrOr::Str(s) => RawDependency::Version(s),
            StrOr::Other(t) => RawDependency::Table(t),
        })
    }
}

#[derive(Deserialize, Default)]
pub(crate) struct RawComponentTools {
    pub kiln: Option<RawComponentKiln>,
    /// Other tools' tables.
    #[serde(flatten)]
    #[allow(dead_code)]
    pub others: IndexMap<String, IgnoredAny>,
}

/// `[component.<id>.tool.kiln]`: Kiln's grants beyond Spin's.
#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct RawComponentKiln {
    /// Subjects (patterns) the component may publish and send requests to.
    pub allowed_publish_subjects: Option<Vec<Spanned<String>>>,
}

/// `source = "path"` or a `{ url, digest }` / `{ registry, package, version }` table.
pub(crate) enum RawSource {
    Path(String),
    Table(RawSourceTable),
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct RawSourceTable {
    pub url: Option<String>,
    pub digest: Option<Spanned<String>>,
    pub registry: Option<String>,
    pub package: Option<String>,
    pub version: Option<String>,
}

impl<'de> Deserialize<'de> for RawSource {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let v = d.deserialize_any(StrOrMap::<RawSourceTable>::new(
            "a path, { url = \"…\", digest = \"sha256:…\" } or { registry = \"…\", package = \"…\", version = \"…\" }",
        ))?;
        Ok(match v {
            StrOr::Str(s) => RawSource::Path(s),
            StrOr::Other(t) => RawSource::Table(t),
        })
    }
}

/// A `files` entry: a glob, or `{ source = "dir", destination = "/path" }`.
pub(crate) enum RawFile {
    Glob(String),
    Placement(RawPlacement),
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct RawPlacement {
    pub source: String,
    pub destination: String,
}

impl<'de> Deserialize<'de> for RawFile {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let v = d.deserialize_any(StrOrMap::<RawPlacement>::new(
            "a glob pattern or { source = \"dir\", destination = \"/path\" }",
        ))?;
        Ok(match v {
            StrOr::Str(s) => RawFile::Glob(s),
            StrOr::Other(p) => RawFile::Placement(p),
        })
    }
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct RawBuild {
    pub command: Spanned<RawCommands>,
    pub workdir: Option<Spanned<String>>,
    #[serde(default)]
    pub watch: Vec<String>,
}

/// `command = "one"` or `command = ["one", "two"]`.
pub(crate) struct RawCommands(pub Vec<String>);

impl<'de> Deserialize<'de> for RawCommands {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        d.deserialize_any(CommandsVisitor)
    }
}

struct CommandsVisitor;

impl<'de> Visitor<'de> for CommandsVisitor {
    type Value = RawCommands;

    fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
        f.write_str("a command string or an array of command strings")
    }

    fn visit_str<E: de::Error>(self, v: &str) -> Result<RawCommands, E> {
        Ok(RawCommands(vec![v.to_string()]))
    }

    fn visit_seq<A: SeqAccess<'de>>(self, seq: A) -> Result<RawCommands, A::Error> {
        Vec::deserialize(de::value::SeqAccessDeserializer::new(seq)).map(RawCommands)
    }
}

// ---------------------------------------------------------------------------------------------
// "string or table" helper

pub(crate) enum StrOr<T> {
    Str(String),
    Other(T),
}

/// Accepts a string, or a table deserialized as `T` straight from the TOML map access so that
/// nested spans and error positions survive.
struct StrOrMap<T> {
    expecting: &'static str,
    marker: PhantomData<T>,
}

impl<T> StrOrMap<T> {
    fn new(expecting: &'static str) -> Self {
        StrOrMap {
            expecting,
            marker: PhantomData,
        }
    }
}

impl<'de, T: Deserialize<'de>> Visitor<'de> for StrOrMap<T> {
    type Value = StrOr<T>;

    fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
        f.write_str(self.expecting)
    }

    fn visit_str<E: de::Error>(self, v: &str) -> Result<StrOr<T>, E> {
        Ok(StrOr::Str(v.to_string()))
    }

    fn visit_map<A: MapAccess<'de>>(self, map: A) -> Result<StrOr<T>, A::Error> {
        T::deserialize(de::value::MapAccessDeserializer::new(map)).map(StrOr::Other)
    }
}
