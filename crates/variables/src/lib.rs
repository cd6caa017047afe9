//! Variable resolution for an application: application variables from ordered providers (then
//! their manifest defaults), and component variables rendered from their templates.
//!
//! Values are looked up on every call rather than cached, so a provider backed by a changing
//! store sees current values. No value ever appears in an error or in Debug output.

mod dotenv;

use std::collections::HashMap;
use std::fmt;
use std::path::PathBuf;

use indexmap::IndexMap;
use kiln_runtime_config::{RuntimeConfig, VariablesProviderConfig};

pub use dotenv::{DotenvProvider, parse_dotenv};

use kiln_manifest::template::{Template, TemplateError};
use kiln_manifest::{Manifest, Variable};

/// Variable names are lower snake case (Spin's rule); the same check as the manifest's.
pub fn is_valid_name(name: &str) -> bool {
    kiln_manifest::is_valid_variable_name(name)
}

/// A source of application variable values.
pub trait Provider: Send + Sync {
    /// The value of application variable `name`, if this provider has one.
    fn get(&self, name: &str) -> Option<String>;
}

/// Values from environment variables `KILN_VARIABLE_<NAME>`, then `SPIN_VARIABLE_<NAME>`
/// (`NAME` = the variable name upper-cased), or `<PREFIX>_<NAME>` with [`EnvProvider::with_prefix`].
pub struct EnvProvider {
    /// Only the entries whose key starts with one of `prefixes`.
    env: HashMap<String, String>,
    /// Each ends with `_` (or is empty, for `prefix = ""`).
    prefixes: Vec<String>,
}

const ENV_PREFIXES: [&str; 2] = ["KILN_VARIABLE_", "SPIN_VARIABLE_"];

impl EnvProvider {
    /// Takes the environment explicitly (the CLI passes `std::env::vars()`); only the
    /// `KILN_VARIABLE_*` / `SPIN_VARIABLE_*` entries are kept.
    pub fn new(env: impl IntoIterator<Item = (String, String)>) -> EnvProvider {
        EnvProvider::build(ENV_PREFIXES.iter().map(|p| p.to_string()).collect(), env)
    }

    /// Spin's `prefix = "…"`: variable `api_key` is read from `<PREFIX>_API_KEY` (the prefix as
    /// written, joined with `_`; an empty prefix reads `API_KEY`). Only that prefix is consulted.
    pub fn with_prefix(
        prefix: &str,
        env: impl IntoIterator<Item = (String, String)>,
    ) -> EnvProvider {
        let prefix = if prefix.is_empty() {
            String::new()
        } else {
            format!("{prefix}_")
        };
        EnvProvider::build(vec![prefix], env)
    }

    /// Spin's `dotenv_path`: entries of a dotenv file count as environment variables that the real
    /// environment does not set (the environment wins). Keys match exactly, as Spin's do.
    pub fn with_dotenv_entries(
        mut self,
        entries: impl IntoIterator<Item = (String, String)>,
    ) -> EnvProvider {
        for (k, v) in entries {
            if self.prefixes.iter().any(|p| k.starts_with(p.as_str())) {
                self.env.entry(k).or_insert(v);
            }
        }
        self
    }

    fn build(
        prefixes: Vec<String>,
        env: impl IntoIterator<Item = (String, String)>,
    ) -> EnvProvider {
        let env = env
            .into_iter()
            .filter(|(k, _)| prefixes.iter().any(|p| k.starts_with(p.as_str())))
            .collect();
        EnvProvider { env, prefixes }
    }
}

impl Provider for EnvProvider {
    fn get(&self, name: &str) -> Option<String> {
        let upper = name.to_ascii_uppercase();
        self.prefixes
            .iter()
            .find_map(|prefix| self.env.get(&format!("{prefix}{upper}")).cloned())
    }
}

impl fmt::Debug for EnvProvider {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let mut keys: Vec<&String> = self.env.keys().collect();
        keys.sort();
        f.debug_struct("EnvProvider")
            .field("prefixes", &self.prefixes)
            .field("keys", &keys)
            .finish_non_exhaustive()
    }
}

/// Fixed values, e.g. from `--variable name=value` flags.
pub struct StaticProvider {
    values: HashMap<String, String>,
}

impl StaticProvider {
    pub fn new(values: impl IntoIterator<Item = (String, String)>) -> StaticProvider {
        StaticProvider {
            values: values.into_iter().collect(),
        }
    }
}

impl Provider for StaticProvider {
    fn get(&self, name: &str) -> Option<String> {
        self.values.get(name).cloned()
    }
}

impl fmt::Debug for StaticProvider {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let mut keys: Vec<&String> = self.values.keys().collect();
        keys.sort();
        f.debug_struct("StaticProvider")
            .field("keys", &keys)
            .finish_non_exhaustive()
    }
}

#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum VariablesError {
    #[error(
        "invalid variable name `{0}`: names are lower snake case (lower-case letters, digits and single \
         underscores, starting with a letter)"
    )]
    InvalidName(String),
    #[error(
        "undefined variable `{0}`: declare it in the manifest ([variables], or the component's variables)"
    )]
    Undefined(String),
    #[error(
        "required variable `{name}` has no value; set it with KILN_VARIABLE_{}=… (or SPIN_VARIABLE_{}=…)",
        name.to_ascii_uppercase(),
        name.to_ascii_uppercase()
    )]
    MissingRequired { name: String },
    #[error("invalid template: {0}")]
    Template(#[from] TemplateError),
    /// A dotenv file could not be read or parsed. Never contains a value from the file.
    #[error("dotenv file {}{}: {message}", path.display(), line.map(|l| format!(":{l}")).unwrap_or_default())]
    Dotenv {
        path: PathBuf,
        line: Option<usize>,
        message: String,
    },
}

/// Resolves an application's variables.
pub struct Resolver {
    variables: HashMap<String, Variable>,
    /// component id → component variable name → template over application variables.
    components: HashMap<String, IndexMap<String, Template>>,
    providers: Vec<Box<dyn Provider>>,
}

impl Resolver {
    /// Fails if a required variable gets no value from any provider.
    pub fn new(
        manifest: &Manifest,
        providers: Vec<Box<dyn Provider>>,
    ) -> Result<Resolver, VariablesError> {
        let variables = manifest
            .variables
            .iter()
            .map(|(k, v)| (k.clone(), v.clone()))
            .collect();
        let components = manifest
            .components
            .iter()
            .map(|(id, c)| {
                (
                    id.clone(),
                    c.variables
                        .iter()
                        .map(|(k, t)| (k.clone(), t.clone()))
                        .collect(),
                )
            })
            .collect();
        let resolver = Resolver {
            variables,
            components,
            providers,
        };
        // Manifest order, so the first missing variable reported is the first declared.
        for (name, var) in &manifest.variables {
            if var.required && resolver.provided(name).is_none() {
                return Err(VariablesError::MissingRequired { name: name.clone() });
            }
        }
        Ok(resolver)
    }

    /// The value of an application variable: the first provider that has one, else the default.
    pub fn app_variable(&self, name: &str) -> Result<String, VariablesError> {
        check_name(name)?;
        let var = self
            .variables
            .get(name)
            .ok_or_else(|| VariablesError::Undefined(name.to_string()))?;
        self.provided(name)
            .or_else(|| var.default.clone())
            .ok_or_else(|| VariablesError::MissingRequired {
                name: name.to_string(),
            })
    }

    /// The value of a component variable (what the guest's `variables.get` returns).
    pub fn component_variable(
        &self,
        component_id: &str,
        name: &str,
    ) -> Result<String, VariablesError> {
        check_name(name)?;
        let template = self
            .components
            .get(component_id)
            .and_then(|vars| vars.get(name))
            .ok_or_else(|| VariablesError::Undefined(name.to_string()))?;
        self.render_app(template)
    }

    /// Every variable of a component with its value, in manifest order (what `wasi:config/store`'s
    /// `get-all` returns). The first failure stops it.
    pub fn component_variables(
        &self,
        component_id: &str,
    ) -> Result<Vec<(String, String)>, VariablesError> {
        let Some(vars) = self.components.get(component_id) else {
            return Ok(Vec::new());
        };
        vars.iter()
            .map(|(name, template)| Ok((name.clone(), self.render_app(template)?)))
            .collect()
    }

    /// Renders an `allowed_outbound_hosts` template of a component. Spin resolves these against the
    /// application variables only, so an application variable wins; a name that is not one may be
    /// one of the component's variables, which is all Kiln accepted before (existing manifests).
    pub fn render_for_component(
        &self,
        component_id: &str,
        template: &str,
    ) -> Result<String, VariablesError> {
        render(&Template::parse(template)?, |name| {
            if self.variables.contains_key(name) {
                return self.app_variable(name);
            }
            self.component_variable(component_id, name)
        })
    }

    /// Renders a template whose `{{ x }}` are application variables (`[variables]`), as Spin resolves
    /// trigger settings such as the Redis trigger's `address` and `channel` or the NATS `url`.
    pub fn render_app_template(&self, template: &str) -> Result<String, VariablesError> {
        self.render_app(&Template::parse(template)?)
    }

    /// Whether an application variable is marked `secret = true`.
    pub fn is_secret(&self, app_variable: &str) -> bool {
        self.variables.get(app_variable).is_some_and(|v| v.secret)
    }

    fn provided(&self, name: &str) -> Option<String> {
        self.providers.iter().find_map(|p| p.get(name))
    }

    fn render_app(&self, template: &Template) -> Result<String, VariablesError> {
        render(template, |name| self.app_variable(name))
    }
}

/// Renders `template` with `lookup`; the first failed lookup is the error.
fn render(
    template: &Template,
    mut lookup: impl FnMut(&str) -> Result<String, VariablesError>,
) -> Result<String, VariablesError> {
    let mut failure = None;
    let rendered = template.render(|name| lookup(name).map_err(|e| failure = Some(e)).ok());
    rendered.map_err(|name| failure.unwrap_or(VariablesError::Undefined(name)))
}

fn check_name(name: &str) -> Result<(), VariablesError> {
    if is_valid_name(name) {
        Ok(())
    } else {
        Err(VariablesError::InvalidName(name.to_string()))
    }
}

// Names and flags only: values (secret or not) stay out of logs.
impl fmt::Debug for Resolver {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let mut names: Vec<&String> = self.variables.keys().collect();
        names.sort();
        f.debug_struct("Resolver")
            .field("variables", &names)
            .field("components", &self.components.len())
            .field("providers", &self.providers.len())
            .finish()
    }
}

/// The providers a runtime config asks for, in the file's order: the first provider with a value
/// wins, and a variable no provider has falls back to its manifest default. With no
/// `[[variables_provider]]` in the file (or no file), the providers are `[env]`: `KILN_VARIABLE_*`
/// then `SPIN_VARIABLE_*`. A config that lists providers replaces that default, so list `env`
/// explicitly to keep it (the usual order is env, then static, then dotenv).
///
/// Dotenv files are read here, once: a missing or malformed file fails at startup.
pub fn providers_from_config(
    config: &RuntimeConfig,
    env: impl IntoIterator<Item = (String, String)>,
) -> Result<Vec<Box<dyn Provider>>, VariablesError> {
    let env: Vec<(String, String)> = env.into_iter().collect();
    if config.variables_providers.is_empty() {
        return Ok(vec![Box::new(EnvProvider::new(env))]);
    }
    let mut providers: Vec<Box<dyn Provider>> = Vec::new();
    for provider in &config.variables_providers {
        providers.push(match provider {
            VariablesProviderConfig::Env {
                prefix,
                dotenv_path,
            } => {
                let mut p = match prefix {
                    Some(prefix) => EnvProvider::with_prefix(prefix, env.iter().cloned()),
                    None => EnvProvider::new(env.iter().cloned()),
                };
                if let Some(path) = dotenv_path {
                    p = p.with_dotenv_entries(dotenv::read(path)?);
                }
                Box::new(p)
            }
            VariablesProviderConfig::Static { values } => Box::new(StaticProvider::new(
                values.iter().map(|(k, v)| (k.clone(), v.clone())),
            )),
            VariablesProviderConfig::Dotenv { path } => Box::new(DotenvProvider::load(path)?),
        });
    }
    Ok(providers)
}

#[cfg(test)]
mod tests;
