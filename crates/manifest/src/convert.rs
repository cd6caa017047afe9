//! Raw (serde) manifest → validated model. Every check reports at the span of the offending
//! value, with a one-line message and a "what to do" help.

mod dependencies;

#[cfg(test)]
pub(crate) use dependencies::parse_name as dependencies_parse_name_for_tests;
mod triggers;


use std::path::{Component as PathPart, Path, PathBuf};

use indexmap::IndexMap;
use toml::Spanned;

use crate::error::{ManifestError, SourceText, Span};
use crate::model::*;
use crate::names::{component_id_problem, is_valid_label, variable_name_problem};
use crate::raw::*;
use crate::template::Template;

/// What conversion needs: the text (for errors) and the directory paths are relative to.
pub(crate) struct Cx {
    pub src: SourceText,
    pub dir: PathBuf,
}

impl Cx {
    pub(crate) fn err(
        &self,
        span: impl Into<Span>,
        message: impl Into<String>,
        help: impl Into<String>,
    ) -> ManifestError {
        self.src.error(span.into(), message, help)
    }
}

pub(crate) struct Parts {
    pub application: Application,
    pub variables: IndexMap<String, Variable>,
    pub components: IndexMap<String, Component>,
    pub triggers: Triggers,
}

#[derive(Default)]
pub(crate) struct Triggers {
    pub http: Vec<HttpTrigger>,
    pub redis: Vec<RedisTrigger>,
    pub nats: Vec<NatsTrigger>,
    pub cron: Vec<CronTrigger>,
    pub directory: Vec<DirectoryTrigger>,
}

pub(crate) type Result<T> = std::result::Result<T, ManifestError>;

pub(crate) fn parse(cx: &Cx) -> Result<Parts> {
    check_version(cx)?;
    let raw: RawManifest = toml::from_str(&cx.src.text).map_err(|e| from_toml_error(cx, e))?;
    let application = application(cx, raw.application.into_inner())?;
    let variables = variables(cx, raw.variables)?;
    let mut components = IndexMap::new();
    for (id, comp) in raw.component {
        if let Some(reason) = component_id_problem(id.get_ref()) {
            let msg = format!("invalid component id `{}`: {reason}", id.get_ref());
            return Err(cx.err(
                id.span(),
                msg,
                "component ids are kebab-case, like `my-component`",
            ));
        }
        let id = id.into_inner();
        components.insert(
            id.clone(),
            component(cx, id, comp.into_inner(), &variables)?,
        );
    }
    let mut builder = triggers::TriggerBuilder::new(cx, &mut components, &variables);
    builder.build(raw.trigger)?;
    let triggers = builder.finish()?;
    dependencies::check_app_components(cx, &components)?;
    Ok(Parts {
        application,
        variables,
        components,
        triggers,
    })
}

// ---------------------------------------------------------------------------------------------
// TOML errors

fn check_version(cx: &Cx) -> Result<()> {
    let probe: VersionProbe = toml::from_str(&cx.src.text).map_err(|e| from_toml_error(cx, e))?;
    let Some(version) = probe.spin_manifest_version else {
        return Err(cx.err(
            0..0,
            "missing `spin_manifest_version`",
            "add `spin_manifest_version = 2` at the top",
        ));
    };
    if version.get_ref().as_integer() == Some(2) {
        return Ok(());
    }
    let msg = format!(
        "unsupported manifest version {}; only version 2 is supported",
        version.get_ref()
    );
    let help = "Kiln reads Spin version 2 manifests: set `spin_manifest_version = 2` and use the v2 layout \
                ([application], [[trigger.http]], [component.<id>]); `spin doctor` can convert a version 1 manifest";
    Err(cx.err(version.span(), msg, help))
}

fn from_toml_error(cx: &Cx, e: toml::de::Error) -> ManifestError {
    let span = e.span().unwrap_or(0..0);
    let (message, help) = explain(e.message());
    cx.err(span, message, help)
}

/// Rewrites serde's wording ("unknown field") into manifest wording ("unknown key"), splits off
/// our own help text, and keeps the message on one line.
fn explain(raw: &str) -> (String, String) {
    if let Some((message, help)) = raw.split_once(HELP_SEP) {
        return (message.to_string(), help.to_string());
    }
    if let Some(rest) = raw.strip_prefix("unknown field `") {
        let (key, expected) = rest.split_once('`').unwrap_or((rest, ""));
        let allowed = expected.trim_start_matches(", ").replace('`', "");
        let help = match allowed
            .strip_prefix("expected one of ")
            .or_else(|| allowed.strip_prefix("expected "))
        {
            Some(list) => format!("remove or rename it; keys allowed here: {list}"),
            None => "remove it; no keys are allowed here".to_string(),
        };
        return (format!("unknown key `{key}`"), help);
    }
    if let Some(rest) = raw.strip_prefix("missing field `") {
        let key = rest.trim_end_matches('`');
        let help = match key {
            "application" => "add an [application] table with `name = \"my-app\"`".to_string(),
            _ => format!("add `{key} = …` to this table"),
        };
        return (format!("missing required key `{key}`"), help);
    }
    let one_line: Vec<&str> = raw
        .lines()
        .map(str::trim)
        .filter(|l| !l.is_empty())
        .collect();
    (one_line.join("; "), String::new())
}

// ---------------------------------------------------------------------------------------------
// [application] and [variables]

fn application(cx: &Cx, raw: RawApplication) -> Result<Application> {
    if raw.name.get_ref().trim().is_empty() {
        return Err(cx.err(
            raw.name.span(),
            "application name must not be empty",
            "set `name = \"my-app\"`",
        ));
    }
    let base = match raw.trigger.http.and_then(|h| h.base) {
        Some(base) if !base.get_ref().starts_with('/') => {
            let msg = format!("http base `{}` must start with `/`", base.get_ref());
            return Err(cx.err(base.span(), msg, "write it like `base = \"/\"`"));
        }
        Some(base) => base.into_inner(),
        None => "/".to_string(),
    };
    Ok(Application {
        name: raw.name.into_inner(),
        version: raw.version,
        description: raw.description,
        authors: raw.authors,
        http: HttpAppSettings { base },
        redis_address: raw.trigger.redis.and_then(|r| r.address),
        nats_url: raw.trigger.nats.and_then(|n| n.url),
        limits: match raw.tool.kiln {
            Some(settings) => limits(cx, settings)?,
            None => AppLimitsSpec::default(),
        },
    })
}

/// `[application.tool.kiln]`: every value at least 1 (a body limit may be 0), and within `u32`
/// where the setting is a count or MiB.
fn limits(cx: &Cx, raw: Spanned<RawKilnSettings>) -> Result<AppLimitsSpec> {
    let span = raw.span();
    let raw = raw.into_inner();
    let at_least = |value: Option<Spanned<u64>>, key: &str, min: u64, max: u64| -> Result<Option<u64>> {
        let Some(value) = value else { return Ok(None) };
        let number = *value.get_ref();
        if number < min || number > max {
            return Err(cx.err(value.span(), format!("`{key}` must be between {min} and {max}, not {number}"), "see [application.tool.kiln] in the README"));
        }
        Ok(Some(number))
    };
    let small = u32::MAX as u64;
    Ok(AppLimitsSpec {
        max_concurrency: at_least(raw.max_concurrency, "max_concurrency", 1, small)?.map(|n| n as u32),
        memory_limit_mib: at_least(raw.memory_limit_mib, "memory_limit_mib", 1, small)?.map(|n| n as u32),
        request_timeout_ms: at_least(raw.request_timeout_ms, "request_timeout_ms", 1, u64::MAX)?,
        max_request_body: at_least(raw.max_request_body, "max_request_body", 0, u64::MAX)?,
        span: Some(span.into()),
    })
}

fn variables(
    cx: &Cx,
    raw: IndexMap<Spanned<String>, Spanned<RawVariable>>,
) -> Result<IndexMap<String, Variable>> {
    let mut out = IndexMap::new();
    for (name, var) in raw {
        check_variable_name(cx, &name, "")?;
        let span = var.span();
        let var = var.into_inner();
        let name_str = name.get_ref();
        match (var.required, var.default.is_some()) {
            (true, true) => {
                let msg = format!("variable `{name_str}` is both required and has a default");
                let help =
                    "remove `default` to require a value at runtime, or remove `required = true`";
                return Err(cx.err(span, msg, help));
            }
            (false, false) => {
                let msg =
                    format!("variable `{name_str}` has neither a default nor `required = true`");
                return Err(cx.err(span, msg, "add `default = \"…\"` or `required = true`"));
            }
            _ => {}
        }
        let variable = Variable {
            default: var.default,
            required: var.required,
            secret: var.secret,
            description: var.description,
            span: name.span().into(),
        };
        out.insert(name.into_inner(), variable);
    }
    Ok(out)
}

fn check_variable_name(cx: &Cx, name: &Spanned<String>, context: &str) -> Result<()> {
    match variable_name_problem(name.get_ref()) {
        None => Ok(()),
        Some(reason) => {
            let msg = format!(
                "{context}invalid variable name `{}`: {reason}",
                name.get_ref()
            );
            Err(cx.err(
                name.span(),
                msg,
                "variable names are lower snake case, like `api_token`",
            ))
        }
    }
}

// ---------------------------------------------------------------------------------------------
// Components

pub(crate) fn component(
    cx: &Cx,
    id: String,
    raw: RawComponent,
    app_vars: &IndexMap<String, Variable>,
) -> Result<Component> {
    let source_span = raw.source.span().into();
    let source = source(cx, &id, raw.source)?;
    let dependencies = dependencies::dependencies(cx, &id, raw.dependencies_inherit_configuration, raw.dependencies)?;
    let files = raw
        .files
        .into_iter()
        .map(|f| file_mount(cx, &id, f))
        .collect::<Result<_>>()?;
    let exclude_files = raw
        .exclude_files
        .into_iter()
        .map(|g| {
            check_glob(cx, &id, "exclude_files", g.span().into(), g.get_ref())
                .map(|_| g.into_inner())
        })
        .collect::<Result<_>>()?;
    let (variables, variable_spans) = component_variables(cx, &id, raw.variables, app_vars)?;
    let allowed_outbound_hosts = raw
        .allowed_outbound_hosts
        .into_iter()
        .map(|h| allowed_host(cx, &id, h, &variables, app_vars))
        .collect::<Result<_>>()?;
    Ok(Component {
        source,
        source_span,
        description: raw.description,
        environment: raw.environment.into_iter().collect(),
        files,
        exclude_files,
        allowed_outbound_hosts,
        key_value_stores: labels(cx, &id, "key_value_stores", raw.key_value_stores)?,
        sqlite_databases: labels(cx, &id, "sqlite_databases", raw.sqlite_databases)?,
        ai_models: raw.ai_models.into_iter().map(Spanned::into_inner).collect(),
        variables,
        variable_spans,
        build: raw.build.map(|b| build_config(cx, &id, b)).transpose()?,
        allowed_publish_subjects: raw
            .tool
            .kiln
            .and_then(|kiln| kiln.allowed_publish_subjects)
            .map(|subjects| subjects.into_iter().map(|s| (s.get_ref().clone(), s.span().into())).collect()),
        dependencies,
        id,
    })
}

fn source(cx: &Cx, id: &str, raw: Spanned<RawSource>) -> Result<ComponentSource> {
    let span = raw.span();
    match raw.into_inner() {
        RawSource::Path(path) if path.trim().is_empty() => {
            let msg = format!("component `{id}`: `source` is empty");
            Err(cx.err(
                span,
                msg,
                "set `source` to the path of the component's .wasm file",
            ))
        }
        RawSource::Path(path) => Ok(ComponentSource::Local(normalize(&cx.dir.join(path)))),
        RawSource::Table(table) => source_table(cx, id, span.into(), table),
    }
}

fn source_table(cx: &Cx, id: &str, span: Span, t: RawSourceTable) -> Result<ComponentSource> {
    match t {
        RawSourceTable {
            url: Some(url),
            digest: Some(digest),
            registry: None,
            package: None,
            version: None,
        } => {
            check_digest(cx, id, &digest)?;
            Ok(ComponentSource::Remote {
                url,
                digest: digest.into_inner(),
            })
        }
        RawSourceTable {
            url: None,
            digest: None,
            registry,
            package: Some(package),
            version: Some(version),
        } => Ok(ComponentSource::Registry {
            registry,
            package,
            version,
        }),
        _ => {
            let msg = format!("component `{id}`: `source` table mixes or misses keys");
            let help = "use `{ url = \"https://…/x.wasm\", digest = \"sha256:…\" }` or \
                        `{ registry = \"…\" (optional), package = \"ns:name\", version = \"1.0.0\" }`";
            Err(cx.err(span, msg, help))
        }
    }
}

fn check_digest(cx: &Cx, id: &str, digest: &Spanned<String>) -> Result<()> {
    let hex = digest.get_ref().strip_prefix("sha256:").unwrap_or("");
    if hex.len() == 64
        && hex
            .bytes()
            .all(|b| b.is_ascii_digit() || (b'a'..=b'f').contains(&b))
    {
        return Ok(());
    }
    let msg = format!(
        "component `{id}`: digest `{}` is not a sha256 digest",
        digest.get_ref()
    );
    Err(cx.err(
        digest.span(),
        msg,
        "write `digest = \"sha256:<64 lower-case hex digits>\"` (see `sha256sum file.wasm`)",
    ))
}

fn file_mount(cx: &Cx, id: &str, raw: Spanned<RawFile>) -> Result<FileMount> {
    let span: Span = raw.span().into();
    match raw.into_inner() {
        RawFile::Glob(pattern) => {
            check_glob(cx, id, "files", span, &pattern)?;
            Ok(FileMount::Glob { pattern })
        }
        RawFile::Placement(p) => {
            if has_parent_dir(&p.source) || has_parent_dir(&p.destination) {
                return Err(escapes(cx, id, "files", span, &p.source));
            }
            let source = normalize(&cx.dir.join(&p.source));
            if !source.starts_with(&cx.dir) {
                return Err(escapes(cx, id, "files", span, &p.source));
            }
            if !p.destination.starts_with('/') {
                let msg = format!(
                    "component `{id}`: files destination `{}` must be an absolute guest path",
                    p.destination
                );
                return Err(cx.err(span, msg, "write it like `destination = \"/assets\"`"));
            }
            Ok(FileMount::Directory {
                source,
                destination: p.destination,
            })
        }
    }
}

fn check_glob(cx: &Cx, id: &str, key: &str, span: Span, pattern: &str) -> Result<()> {
    if Path::new(pattern).is_absolute() || pattern.starts_with('/') || has_parent_dir(pattern) {
        return Err(escapes(cx, id, key, span, pattern));
    }
    glob::Pattern::new(pattern).map(|_| ()).map_err(|e| {
        let msg = format!("component `{id}`: invalid glob `{pattern}` in `{key}`: {e}");
        cx.err(
            span,
            msg,
            "globs use `*`, `**`, `?` and `[…]`, like \"static/**/*.html\"",
        )
    })
}

fn escapes(cx: &Cx, id: &str, key: &str, span: Span, path: &str) -> ManifestError {
    let msg = format!(
        "component `{id}`: `{key}` entry `{path}` leaves the application directory; \
         files must stay inside the application directory"
    );
    cx.err(
        span,
        msg,
        "use a path relative to the manifest's directory, without `..`",
    )
}

fn component_variables(
    cx: &Cx,
    id: &str,
    raw: IndexMap<Spanned<String>, Spanned<String>>,
    app_vars: &IndexMap<String, Variable>,
) -> Result<(IndexMap<String, Template>, IndexMap<String, Span>)> {
    let (mut templates, mut spans) = (IndexMap::new(), IndexMap::new());
    for (name, value) in raw {
        check_variable_name(cx, &name, &format!("component `{id}`: "))?;
        let template = parse_template(cx, id, &value)?;
        if let Some(unknown) = template.variables().find(|v| !app_vars.contains_key(*v)) {
            let msg = format!(
                "component `{id}`: variable `{}` refers to `{{{{ {unknown} }}}}`, which is not an application variable",
                name.get_ref()
            );
            let help =
                format!("declare it under [variables], e.g. `{unknown} = {{ default = \"…\" }}`");
            return Err(cx.err(value.span(), msg, help));
        }
        spans.insert(name.get_ref().clone(), value.span().into());
        templates.insert(name.into_inner(), template);
    }
    Ok((templates, spans))
}

fn parse_template(cx: &Cx, id: &str, value: &Spanned<String>) -> Result<Template> {
    Template::parse(value.get_ref()).map_err(|e| {
        let msg = format!(
            "component `{id}`: invalid template `{}`: {e}",
            value.get_ref()
        );
        cx.err(
            value.span(),
            msg,
            "templates look like \"https://{{ api_host }}/v1\"",
        )
    })
}

/// An `allowed_outbound_hosts` entry. Its `{{ x }}` may name an application variable (what Spin
/// resolves them against) or one of the component's own variables (what Kiln resolved them against
/// before, kept so existing manifests still load); `kiln_variables` renders them in that order.
fn allowed_host(
    cx: &Cx,
    id: &str,
    raw: Spanned<String>,
    vars: &IndexMap<String, Template>,
    app_vars: &IndexMap<String, Variable>,
) -> Result<AllowedHost> {
    let template = parse_template(cx, id, &raw)?;
    let known = |v: &&str| app_vars.contains_key(*v) || vars.contains_key(*v);
    if let Some(unknown) = template.variables().find(|v| !known(v)) {
        let msg = format!(
            "component `{id}`: allowed_outbound_hosts entry `{}` uses `{{{{ {unknown} }}}}`, \
             which is neither an application variable nor one of this component's variables",
            raw.get_ref()
        );
        let help = format!("declare it in [variables], like `{unknown} = {{ default = \"…\" }}`");
        return Err(cx.err(raw.span(), msg, help));
    }
    if let Err(reason) = crate::validate_host_pattern(raw.get_ref()) {
        // The outbound crate's message usually names the entry already; don't say it twice.
        let msg = if reason.contains(raw.get_ref().as_str()) {
            format!("component `{id}`: {reason}")
        } else {
            format!(
                "component `{id}`: invalid allowed_outbound_hosts entry `{}`: {reason}",
                raw.get_ref()
            )
        };
        let help = "entries look like \"https://example.com\", \"redis://{{ host }}:6379\", \
                    \"*://127.0.0.1:*\" or \"http://self\"";
        return Err(cx.err(raw.span(), msg, help));
    }
    Ok(AllowedHost {
        span: raw.span().into(),
        pattern: raw.into_inner(),
    })
}

fn labels(cx: &Cx, id: &str, key: &str, raw: Vec<Spanned<String>>) -> Result<Vec<String>> {
    raw.into_iter()
        .map(|label| {
            if is_valid_label(label.get_ref()) {
                return Ok(label.into_inner());
            }
            let msg = format!(
                "component `{id}`: invalid {key} label `{}`",
                label.get_ref()
            );
            Err(cx.err(
                label.span(),
                msg,
                "labels are kebab-case or snake_case, like `default` or `my-store`",
            ))
        })
        .collect()
}

fn build_config(cx: &Cx, id: &str, raw: RawBuild) -> Result<BuildConfig> {
    if raw.command.get_ref().0.iter().all(|c| c.trim().is_empty()) {
        let msg = format!("component `{id}`: build `command` is empty");
        let help = format!("set `command = \"…\"` or remove [component.{id}.build]");
        return Err(cx.err(raw.command.span(), msg, help));
    }
    let workdir = match raw.workdir {
        Some(w) => normalize(&cx.dir.join(w.get_ref())),
        None => cx.dir.clone(),
    };
    Ok(BuildConfig {
        command: raw.command.into_inner().0,
        workdir,
        watch: raw.watch,
    })
}

// ---------------------------------------------------------------------------------------------
// Paths

/// Resolves `.` and `..` lexically (no file system access: the file may not exist yet).
pub(crate) fn normalize(path: &Path) -> PathBuf {
    let mut out = PathBuf::new();
    for part in path.components() {
        match part {
            PathPart::CurDir => {}
            PathPart::ParentDir => {
                out.pop();
            }
            other => out.push(other),
        }
    }
    out
}

fn has_parent_dir(path: &str) -> bool {
    Path::new(path)
        .components()
        .any(|c| c == PathPart::ParentDir)
}
