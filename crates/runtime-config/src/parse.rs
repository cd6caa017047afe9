//! The strict walk over the TOML document (with spans), so every error points at the offending key
//! or value. Errors never echo a configured value: URLs can carry passwords and static variables can
//! be secrets.

use std::ops::Range;
use std::path::{Component, Path, PathBuf};

use indexmap::IndexMap;
use toml::Spanned;
use toml::de::{DeTable, DeValue};

use crate::error::{RuntimeConfigError, Source};
use crate::{BrokerConfig, KeyValueStoreConfig, LlmComputeConfig, MessagingConfig, RuntimeConfig, SqliteDatabaseConfig, VariablesProviderConfig};

/// A `[section.<label>]` table: its label, and the table with the span of its header.
type LabelledTable<'t, 'i> = (Spanned<String>, (Range<usize>, &'t DeTable<'i>));

type Result<T> = std::result::Result<T, RuntimeConfigError>;

pub(crate) struct Cx<'a> {
    pub src: &'a Source,
    /// Absolute directory of the runtime config file: relative paths in it are relative to this.
    pub dir: &'a Path,
}

const TOP_LEVEL: &str = "key_value_store, sqlite_database, variables_provider, messaging, llm_compute";

/// Sections of Spin's runtime config that Kiln does not serve.
const SPIN_ONLY_SECTIONS: &[&str] = &[
    "outbound_networking",
    "outbound_http",
    "otel",
    "trigger",
    "config_provider",
    "key_value_store_default",
];

impl Cx<'_> {
    fn err(
        &self,
        span: Range<usize>,
        message: impl Into<String>,
        help: impl Into<String>,
    ) -> RuntimeConfigError {
        self.src.error(span, message, help)
    }

    pub fn parse(&self) -> Result<RuntimeConfig> {
        let doc = DeTable::parse(&self.src.text).map_err(|e| {
            let message: Vec<&str> = e
                .message()
                .lines()
                .map(str::trim)
                .filter(|l| !l.is_empty())
                .collect();
            self.err(
                e.span().unwrap_or(0..0),
                format!("invalid TOML: {}", message.join("; ")),
                "",
            )
        })?;
        let mut config = RuntimeConfig::default();
        for (key, value) in doc.get_ref().iter() {
            match key.get_ref().as_ref() {
                "messaging" => {
                    let DeValue::Table(table) = value.get_ref() else {
                        return Err(self.err(value.span(), "`messaging` must be a table", "write it as [messaging] with a `type = …` key"));
                    };
                    config.messaging = Some(self.messaging(key.span(), table)?);
                }
                "key_value_store" => {
                    for (label, table) in self.labelled_tables(key, value)? {
                        let store = self.key_value_store(&label, table)?;
                        config.key_value_stores.insert(label.into_inner(), store);
                    }
                }
                "sqlite_database" => {
                    for (label, table) in self.labelled_tables(key, value)? {
                        let db = self.sqlite_database(&label, table)?;
                        config.sqlite_databases.insert(label.into_inner(), db);
                    }
                }
                "variables_provider" => {
                    let DeValue::Array(items) = value.get_ref() else {
                        return Err(self.err(
                            value.span(),
                            "`variables_provider` must be an array of tables",
                            "write each provider as a [[variables_provider]] table",
                        ));
                    };
                    for item in items.iter() {
                        let DeValue::Table(table) = item.get_ref() else {
                            return Err(self.err(
                                item.span(),
                                "each `variables_provider` entry must be a table",
                                "write each provider as a [[variables_provider]] table",
                            ));
                        };
                        let provider = self.variables_provider(item.span(), table)?;
                        config.variables_providers.push(provider);
                    }
                }
                "llm_compute" => {
                    let DeValue::Table(table) = value.get_ref() else {
                        return Err(self.err(value.span(), "`llm_compute` must be a table", "write it as [llm_compute] with a `type = …` key"));
                    };
                    config.llm_compute = Some(self.llm_compute(key.span(), table)?);
                }
                other if SPIN_ONLY_SECTIONS.contains(&other) => {
                    return Err(self.err(
                        key.span(),
                        format!(
                            "`{other}` is a Spin runtime config section not supported by Kiln yet"
                        ),
                        format!("remove it; sections Kiln reads: {TOP_LEVEL}"),
                    ));
                }
                other => {
                    return Err(self.err(
                        key.span(),
                        format!("unknown key `{other}`"),
                        format!("remove or rename it; keys allowed at the top level: {TOP_LEVEL}"),
                    ));
                }
            }
        }
        Ok(config)
    }

    /// `[section.<label>]` tables, labels validated.
    fn labelled_tables<'t, 'i>(
        &self,
        section: &Spanned<std::borrow::Cow<'i, str>>,
        value: &'t Spanned<DeValue<'i>>,
    ) -> Result<Vec<LabelledTable<'t, 'i>>> {
        let name = section.get_ref();
        let DeValue::Table(table) = value.get_ref() else {
            return Err(self.err(
                value.span(),
                format!("`{name}` must be a table of labels"),
                format!("write one [{name}.<label>] table per label"),
            ));
        };
        let mut out = Vec::new();
        for (label, entry) in table.iter() {
            let label_str = label.get_ref().to_string();
            if !kiln_manifest::is_valid_label(&label_str) {
                return Err(self.err(
                    label.span(),
                    format!("invalid label `{label_str}` in [{name}]"),
                    "labels are kebab-case or snake_case words, like `default`, `cache` or `user-data`",
                ));
            }
            let DeValue::Table(entry_table) = entry.get_ref() else {
                return Err(self.err(
                    entry.span(),
                    format!("[{name}.{label_str}] must be a table"),
                    format!("write it as [{name}.{label_str}] with a `type = …` key"),
                ));
            };
            out.push((
                Spanned::new(label.span(), label_str),
                (entry.span(), entry_table),
            ));
        }
        Ok(out)
    }

    fn key_value_store(
        &self,
        label: &Spanned<String>,
        (span, table): (Range<usize>, &DeTable<'_>),
    ) -> Result<KeyValueStoreConfig> {
        let section = format!("[key_value_store.{}]", label.get_ref());
        let types = "\"kiln\" (or \"spin\"), \"redis\"";
        let ty = self.type_of(&section, span, table, types)?;
        match ty.get_ref().as_str() {
            "kiln" | "spin" => {
                self.only_keys(&section, table, &["type", "path"])?;
                Ok(KeyValueStoreConfig::Embedded {
                    path: self.optional_path(table, "path")?,
                })
            }
            "redis" => {
                self.only_keys(&section, table, &["type", "url"])?;
                let url = self.required_string(&section, label.span(), table, "url")?;
                self.check_redis_url(&url)?;
                Ok(KeyValueStoreConfig::Redis {
                    url: url.into_inner(),
                })
            }
            "azure_cosmos" | "aws_dynamo" => Err(self.not_supported(&section, &ty, types)),
            other => Err(self.unknown_type(&section, &ty, other, types)),
        }
    }

    fn sqlite_database(
        &self,
        label: &Spanned<String>,
        (span, table): (Range<usize>, &DeTable<'_>),
    ) -> Result<SqliteDatabaseConfig> {
        let section = format!("[sqlite_database.{}]", label.get_ref());
        let types = "\"kiln\" (or \"spin\")";
        let ty = self.type_of(&section, span, table, types)?;
        match ty.get_ref().as_str() {
            "kiln" | "spin" => {
                self.only_keys(&section, table, &["type", "path"])?;
                Ok(SqliteDatabaseConfig::Embedded {
                    path: self.optional_path(table, "path")?,
                })
            }
            "libsql" => Err(self.not_supported(&section, &ty, types)),
            other => Err(self.unknown_type(&section, &ty, other, types)),
        }
    }

    fn variables_provider(
        &self,
        span: Range<usize>,
        table: &DeTable<'_>,
    ) -> Result<VariablesProviderConfig> {
        let section = "[[variables_provider]]";
        let types = "\"env\", \"static\", \"dotenv\"";
        let ty = self.type_of(section, span.clone(), table, types)?;
        match ty.get_ref().as_str() {
            "env" => {
                self.only_keys(section, table, &["type", "prefix", "dotenv_path"])?;
                let prefix = self.optional_string(table, "prefix")?;
                if let Some(p) = &prefix
                    && let Some(bad) = p.get_ref().chars().find(|c| *c == '=' || *c == '\0')
                {
                    return Err(self.err(
                        p.span(),
                        format!(
                            "`prefix` contains {bad:?}, which no environment variable name can"
                        ),
                        "use letters, digits and `_`, like `prefix = \"MYAPP\"`",
                    ));
                }
                Ok(VariablesProviderConfig::Env {
                    prefix: prefix.map(Spanned::into_inner),
                    dotenv_path: self.optional_path(table, "dotenv_path")?,
                })
            }
            "static" => {
                self.only_keys(section, table, &["type", "values"])?;
                let Some((_, values)) = find(table, "values") else {
                    return Err(self.err(
                        span,
                        "a static variables provider needs `values`",
                        "add `values = { name = \"value\" }`",
                    ));
                };
                let DeValue::Table(values_table) = values.get_ref() else {
                    return Err(self.err(
                        values.span(),
                        "`values` must be a table of variable names to strings",
                        "write `values = { name = \"value\" }`",
                    ));
                };
                let mut out = IndexMap::new();
                for (name, value) in values_table.iter() {
                    if let Some(problem) = kiln_manifest::variable_name_problem(name.get_ref()) {
                        return Err(self.err(
                            name.span(),
                            format!("invalid variable name `{}`: {problem}", name.get_ref()),
                            "variable names are lower snake case, like `api_key`",
                        ));
                    }
                    // The value may be a secret: the error names the key, never shows the value.
                    let DeValue::String(v) = value.get_ref() else {
                        return Err(self.err(
                            value.span(),
                            format!("the value of `{}` must be a string", name.get_ref()),
                            "quote it: variable values are strings",
                        ));
                    };
                    out.insert(name.get_ref().to_string(), v.to_string());
                }
                Ok(VariablesProviderConfig::Static { values: out })
            }
            "dotenv" => {
                self.only_keys(section, table, &["type", "path"])?;
                let Some(path) = self.optional_path(table, "path")? else {
                    return Err(self.err(
                        span,
                        "a dotenv variables provider needs `path`",
                        "add `path = \".env\"` (relative to this file)",
                    ));
                };
                Ok(VariablesProviderConfig::Dotenv { path })
            }
            "vault" | "azure_key_vault" => Err(self.not_supported(section, &ty, types)),
            other => Err(self.unknown_type(section, &ty, other, types)),
        }
    }

    fn llm_compute(&self, span: Range<usize>, table: &DeTable<'_>) -> Result<LlmComputeConfig> {
        let section = "[llm_compute]";
        let types = "\"remote_http\", \"spin\"";
        let ty = self.type_of(section, span.clone(), table, types)?;
        match ty.get_ref().as_str() {
            "remote_http" => {
                self.only_keys(section, table, &["type", "url", "auth_token"])?;
                let url = self.required_string(section, span.clone(), table, "url")?;
                if !(url.get_ref().starts_with("http://") || url.get_ref().starts_with("https://")) {
                    return Err(self.err(url.span(), "`url` is not an http:// or https:// URL", "give the inferencing server's address, like `https://my-llm.example.com`"));
                }
                let auth_token = self.required_string(section, span, table, "auth_token")?;
                Ok(LlmComputeConfig::RemoteHttp { url: url.into_inner(), auth_token: auth_token.into_inner() })
            }
            "spin" => {
                self.only_keys(section, table, &["type"])?;
                Ok(LlmComputeConfig::Local)
            }
            other => Err(self.unknown_type(section, &ty, other, types)),
        }
    }

    fn messaging(&self, span: Range<usize>, table: &DeTable<'_>) -> Result<MessagingConfig> {
        let section = "[messaging]";
        let types = "\"nats\", \"redis\", \"in-process\"";
        let ty = self.type_of(section, span.clone(), table, types)?;
        let broker = match ty.get_ref().as_str() {
            "nats" => {
                self.only_keys(section, table, &["type", "url", "max_deliver"])?;
                let url = self.required_string(section, span, table, "url")?;
                if url.get_ref().trim().is_empty() {
                    return Err(self.err(url.span(), "`url` is empty", "give the NATS server's address, like `nats://127.0.0.1:4222`"));
                }
                BrokerConfig::Nats { url: url.into_inner().trim().to_string() }
            }
            "redis" => {
                self.only_keys(section, table, &["type", "url", "max_deliver"])?;
                let url = self.required_string(section, span, table, "url")?;
                self.check_redis_url(&url)?;
                BrokerConfig::Redis { url: url.into_inner() }
            }
            "in-process" | "in_process" | "kiln" => {
                self.only_keys(section, table, &["type", "max_deliver"])?;
                BrokerConfig::InProcess
            }
            other => return Err(self.unknown_type(section, &ty, other, types)),
        };
        let max_deliver = match find(table, "max_deliver") {
            None => None,
            Some((_, v)) => {
                let n = match v.get_ref() {
                    DeValue::Integer(n) => i64::from_str_radix(n.as_str(), n.radix()).ok(),
                    _ => None,
                };
                match n.and_then(|n| u32::try_from(n).ok()).filter(|n| *n >= 1) {
                    Some(n) => Some(n),
                    None => return Err(self.err(v.span(), "`max_deliver` must be a whole number of at least 1", "deliveries of a message before it is dead-lettered, like `max_deliver = 5`")),
                }
            }
        };
        Ok(MessagingConfig { broker, max_deliver })
    }

    fn type_of(
        &self,
        section: &str,
        span: Range<usize>,
        table: &DeTable<'_>,
        types: &str,
    ) -> Result<Spanned<String>> {
        match find(table, "type") {
            Some((_, v)) => match v.get_ref() {
                DeValue::String(s) => Ok(Spanned::new(v.span(), s.to_string())),
                _ => Err(self.err(
                    v.span(),
                    format!("`type` in {section} must be a string"),
                    format!("use one of {types}"),
                )),
            },
            None => Err(self.err(
                span,
                format!("{section} is missing required key `type`"),
                format!("add `type = …`, one of {types}"),
            )),
        }
    }

    fn only_keys(&self, section: &str, table: &DeTable<'_>, allowed: &[&str]) -> Result<()> {
        for (key, _) in table.iter() {
            let key_str = key.get_ref().as_ref();
            if !allowed.contains(&key_str) {
                return Err(self.err(
                    key.span(),
                    format!("unknown key `{key_str}` in {section}"),
                    format!(
                        "remove or rename it; keys allowed here: {}",
                        allowed.join(", ")
                    ),
                ));
            }
        }
        Ok(())
    }

    fn optional_string(&self, table: &DeTable<'_>, key: &str) -> Result<Option<Spanned<String>>> {
        match find(table, key) {
            None => Ok(None),
            Some((_, v)) => match v.get_ref() {
                DeValue::String(s) => Ok(Some(Spanned::new(v.span(), s.to_string()))),
                _ => Err(self.err(v.span(), format!("`{key}` must be a string"), "quote it")),
            },
        }
    }

    fn required_string(
        &self,
        section: &str,
        span: Range<usize>,
        table: &DeTable<'_>,
        key: &str,
    ) -> Result<Spanned<String>> {
        self.optional_string(table, key)?.ok_or_else(|| {
            self.err(
                span,
                format!("{section} is missing required key `{key}`"),
                format!("add `{key} = \"…\"`"),
            )
        })
    }

    /// A path relative to the runtime config file's directory, stored absolute.
    fn optional_path(&self, table: &DeTable<'_>, key: &str) -> Result<Option<PathBuf>> {
        let Some(s) = self.optional_string(table, key)? else {
            return Ok(None);
        };
        if s.get_ref().trim().is_empty() {
            return Err(self.err(
                s.span(),
                format!("`{key}` must not be empty"),
                "give a file path, relative to this runtime config file",
            ));
        }
        Ok(Some(normalize(&self.dir.join(s.get_ref()))))
    }

    fn check_redis_url(&self, url: &Spanned<String>) -> Result<()> {
        const SCHEMES: [&str; 4] = ["redis", "rediss", "redis+unix", "unix"];
        let scheme = url.get_ref().split_once("://").map(|(s, _)| s);
        match scheme {
            Some(s) if SCHEMES.contains(&s) => Ok(()),
            // Only the scheme is shown: the rest may carry a password.
            Some(s) => Err(self.err(
                url.span(),
                format!("`url` has scheme `{s}`, not a Redis URL"),
                "use `redis://host:port` (or `rediss://` for TLS)",
            )),
            None => Err(self.err(
                url.span(),
                "`url` is not a Redis URL",
                "use `redis://host:port` (or `rediss://` for TLS)",
            )),
        }
    }

    fn not_supported(
        &self,
        section: &str,
        ty: &Spanned<String>,
        types: &str,
    ) -> RuntimeConfigError {
        self.err(
            ty.span(),
            format!(
                "{section}: type \"{}\" is not supported by Kiln yet",
                ty.get_ref()
            ),
            format!("use one of {types}"),
        )
    }

    fn unknown_type(
        &self,
        section: &str,
        ty: &Spanned<String>,
        other: &str,
        types: &str,
    ) -> RuntimeConfigError {
        self.err(
            ty.span(),
            format!("{section}: unknown type \"{other}\""),
            format!("use one of {types}"),
        )
    }
}

fn find<'t, 'i>(
    table: &'t DeTable<'i>,
    key: &str,
) -> Option<(
    &'t Spanned<std::borrow::Cow<'i, str>>,
    &'t Spanned<DeValue<'i>>,
)> {
    table.iter().find(|(k, _)| k.get_ref().as_ref() == key)
}

/// `a/./b/../c` → `a/c`, without touching the file system.
pub(crate) fn normalize(path: &Path) -> PathBuf {
    let mut out = PathBuf::new();
    for part in path.components() {
        match part {
            Component::CurDir => {}
            Component::ParentDir => {
                out.pop();
            }
            other => out.push(other),
        }
    }
    out
}
