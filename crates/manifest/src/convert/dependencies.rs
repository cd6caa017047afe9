//! `[component.<id>.dependencies]` (Spin 3's component dependencies): each key names imports of the
//! component, each value says which component satisfies them. Shapes as in Spin's manifest schema;
//! Kiln has no default package registry, so a registry dependency must name its `registry`.

use indexmap::IndexMap;
use toml::Spanned;

use super::{Cx, Result, check_digest, normalize};
use crate::model::{ComponentDependency, DependencyName, DependencySource};
use crate::raw::{RawDependency, RawDependencyTable};

const SHAPES: &str = "a dependency is `{ path = \"dep.wasm\" }`, `{ url = \"https://…/dep.wasm\", digest = \"sha256:…\" }`, \
                      `{ registry = \"host\", version = \"1.2.3\", package = \"ns:pkg\" (optional) }` or \
                      `{ component = \"<component id>\" }`, each with an optional `export = \"…\"` and `inherit_configuration`";

/// The component's dependencies in manifest order. `inherit_all` is the component's
/// `dependencies_inherit_configuration`, the default for entries that do not say.
pub(crate) fn dependencies(
    cx: &Cx,
    id: &str,
    inherit_all: Option<bool>,
    raw: IndexMap<Spanned<String>, Spanned<RawDependency>>,
) -> Result<Vec<ComponentDependency>> {
    let mut out = Vec::with_capacity(raw.len());
    for (key, value) in raw {
        let name = dependency_name(cx, id, &key)?;
        let span = value.span();
        let (source, export, inherit) = match value.into_inner() {
            RawDependency::Version(version) => return Err(no_registry(cx, id, &name, span, &version)),
            RawDependency::Table(table) => dependency_table(cx, id, &name, span, *table)?,
        };
        let inherit_configuration = inherit.or(inherit_all).unwrap_or(false);
        out.push(ComponentDependency { name, source, export, inherit_configuration, span: key.span().into() });
    }
    Ok(out)
}

/// `ns:pkg/iface@1.2.3`, `ns:pkg/iface`, `ns:pkg@1.2.3`, `ns:pkg`, or a plain kebab-case name.
fn dependency_name(cx: &Cx, id: &str, key: &Spanned<String>) -> Result<DependencyName> {
    parse_name(key.get_ref()).map_err(|reason| {
        let msg = format!("component `{id}`: invalid dependency name `{}`: {reason}", key.get_ref());
        cx.err(key.span(), msg, "name an import like \"ns:pkg/interface@1.2.3\", \"ns:pkg/interface\", or a whole package like \"ns:pkg@1.2.3\"")
    })
}

pub(crate) fn parse_name(text: &str) -> std::result::Result<DependencyName, String> {
    if !text.contains(':') {
        return match is_kebab(text) {
            true => Ok(DependencyName::Plain(text.to_string())),
            false => Err("a plain import name is kebab-case; an interface name is `ns:pkg/interface`".into()),
        };
    }
    let (path, version) = match text.split_once('@') {
        Some((path, version)) => (path, Some(version)),
        None => (text, None),
    };
    if let Some(version) = version {
        semver::Version::parse(version).map_err(|e| format!("`{version}` is not a semantic version ({e})"))?;
    }
    let (package, interface) = match path.split_once('/') {
        Some((package, interface)) => (package, Some(interface)),
        None => (path, None),
    };
    let (namespace, name) = package.split_once(':').ok_or("the package is `namespace:name`")?;
    for (part, what) in [(namespace, "namespace"), (name, "package name")].into_iter().chain(interface.map(|i| (i, "interface"))) {
        if !is_kebab(part) {
            return Err(format!("the {what} `{part}` is not kebab-case"));
        }
    }
    Ok(DependencyName::Package {
        package: package.to_string(),
        interface: interface.map(str::to_string),
        version: version.map(str::to_string),
    })
}

fn is_kebab(s: &str) -> bool {
    !s.is_empty()
        && s.split('-').all(|word| !word.is_empty() && word.bytes().all(|b| b.is_ascii_lowercase() || b.is_ascii_digit()))
        && !s.starts_with(|c: char| c.is_ascii_digit())
}

/// A bare version asks for the package from Spin's default registry; Kiln has none to default to.
fn no_registry(cx: &Cx, id: &str, name: &DependencyName, span: std::ops::Range<usize>, version: &str) -> crate::ManifestError {
    let package = name.package().unwrap_or("ns:pkg");
    let msg = format!("component `{id}`: dependency `{name}` gives only a version, which means a package from the default registry, and Kiln has no default registry");
    let help = format!("give the registry: `\"{name}\" = {{ registry = \"ghcr.io\", package = \"{package}\", version = \"{version}\" }}`");
    cx.err(span, msg, help)
}

type Parsed = (DependencySource, Option<String>, Option<bool>);

fn dependency_table(cx: &Cx, id: &str, name: &DependencyName, span: std::ops::Range<usize>, t: RawDependencyTable) -> Result<Parsed> {
    let inherit = t.inherit_configuration.map(|v| inherit_configuration(cx, id, name, v)).transpose()?;
    let export = t.export;
    let source = match (t.path, t.url, t.digest, t.component, t.registry, t.package, t.version) {
        (Some(path), None, None, None, None, None, None) => {
            if path.trim().is_empty() {
                return Err(cx.err(span, format!("component `{id}`: dependency `{name}` has an empty `path`"), "set `path` to the dependency's .wasm file, relative to the manifest"));
            }
            DependencySource::Local(normalize(&cx.dir.join(path)))
        }
        (None, Some(url), Some(digest), None, None, None, None) => {
            check_digest(cx, id, &digest)?;
            DependencySource::Remote { url, digest: digest.into_inner() }
        }
        (None, None, None, Some(component), None, None, None) => DependencySource::AppComponent(component.into_inner()),
        (None, None, None, None, registry, package, Some(version)) => registry_source(cx, id, name, span.clone(), registry, package, version)?,
        _ => {
            let msg = format!("component `{id}`: dependency `{name}` mixes or misses keys");
            return Err(cx.err(span, msg, SHAPES));
        }
    };
    Ok((source, export, inherit))
}

fn registry_source(
    cx: &Cx,
    id: &str,
    name: &DependencyName,
    span: std::ops::Range<usize>,
    registry: Option<String>,
    package: Option<String>,
    version: String,
) -> Result<DependencySource> {
    let Some(registry) = registry else {
        return Err(no_registry(cx, id, name, span, &version));
    };
    let Some(package) = package.or_else(|| name.package().map(str::to_string)) else {
        let msg = format!("component `{id}`: dependency `{name}` needs `package`: a plain import name names no package");
        return Err(cx.err(span, msg, "add `package = \"ns:pkg\"`"));
    };
    if semver::Version::parse(&version).is_err() {
        let msg = format!("component `{id}`: dependency `{name}`: `{version}` is not an exact version");
        let help = "Kiln fetches a registry package by its exact version (the OCI tag), not by a version range: write it like `version = \"1.2.3\"`";
        return Err(cx.err(span, msg, help));
    }
    Ok(DependencySource::Registry { registry, package, version })
}

/// `true` / `false`. A list of configuration keys (Spin 4) would grant the dependency part of the
/// component's configuration; Kiln grants per composed component, all or nothing, so it cannot
/// honour a list and says so rather than granting more or less than asked.
fn inherit_configuration(cx: &Cx, id: &str, name: &DependencyName, value: Spanned<toml::Value>) -> Result<bool> {
    match value.get_ref() {
        toml::Value::Boolean(b) => Ok(*b),
        toml::Value::Array(keys) if keys.is_empty() => Ok(false),
        toml::Value::Array(_) => {
            let msg = format!("component `{id}`: dependency `{name}`: Kiln cannot grant part of the component's configuration (`inherit_configuration` lists keys)");
            let help = "a composed dependency shares the component's grants or has none: write `inherit_configuration = true` (all of them) or `false`";
            Err(cx.err(value.span(), msg, help))
        }
        _ => Err(cx.err(value.span(), format!("component `{id}`: dependency `{name}`: `inherit_configuration` must be true or false"), "write `inherit_configuration = true` or `false`")),
    }
}

/// `{ component = "x" }` must name another component of the app.
pub(crate) fn check_app_components(cx: &Cx, components: &IndexMap<String, crate::model::Component>) -> Result<()> {
    for component in components.values() {
        for dependency in &component.dependencies {
            let DependencySource::AppComponent(other) = &dependency.source else { continue };
            if other == &component.id || !components.contains_key(other) {
                let what = if other == &component.id { "itself" } else { "a component that does not exist" };
                let msg = format!("component `{}`: dependency `{}` names {what}: `{other}`", component.id, dependency.name);
                let ids: Vec<&str> = components.keys().filter(|k| *k != &component.id).map(String::as_str).collect();
                return Err(cx.err(dependency.span, msg, format!("name another component of the app; components: {}", ids.join(", "))));
            }
        }
    }
    Ok(())
}
