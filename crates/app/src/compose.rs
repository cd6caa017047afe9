//! `[component.<id>.dependencies]`: the component composed with the components that satisfy its
//! imports, with wac-graph (as Spin does), before it is compiled. The composed component's exports
//! are the component's; every import no dependency satisfies, the dependencies' own included, stays
//! an import the host links as usual. Composition is deterministic, so the compile cache (keyed by
//! the bytes' SHA-256) keeps the composed component's artifact like any other.
//!
//! Kiln grants capabilities per component, and a composed component is one instance: a dependency
//! shares its parent's grants. Spin keeps a dependency that does not inherit configuration away from
//! them with deny adapters; Kiln has none, so such a dependency may import only interfaces that carry
//! no configuration, and is refused at load otherwise.

use anyhow::{Context, Result};
use kiln_manifest::{Component, ComponentDependency, ComponentSource, DependencySource, Manifest};
use std::collections::HashMap;
use wac_graph::types::{ItemKind, Package, SubtypeChecker, WorldId};
use wac_graph::{CompositionGraph, EncodeOptions, NodeId};

/// The component's bytes composed with its dependencies (the component's own bytes when it has
/// none). Errors about a dependency point at its entry in the manifest.
pub(crate) fn composed_bytes(manifest: &Manifest, component: &Component, path: &std::path::Path) -> Result<Vec<u8>> {
    let main = read(path)?;
    if component.dependencies.is_empty() {
        return Ok(main);
    }
    let mut dependencies = Vec::with_capacity(component.dependencies.len());
    for dependency in &component.dependencies {
        let bytes = dependency_bytes(manifest, component, dependency)?;
        dependencies.push((dependency, bytes));
    }
    compose(manifest, component, main, dependencies)
}

fn read(path: &std::path::Path) -> Result<Vec<u8>> {
    std::fs::read(path).with_context(|| format!("failed to read component `{}`", path.display()))
}

/// A dependency's file: its `path`, the other app component's `source`, or what `kiln up` fetched
/// for a URL or registry package.
fn dependency_bytes(manifest: &Manifest, component: &Component, dependency: &ComponentDependency) -> Result<Vec<u8>> {
    let at = |message: String, help: &str| anyhow::Error::from(manifest.error_at(&dependency.span, message, help));
    let what = format!("component `{}`: dependency `{}`", component.id, dependency.name);
    let path = match &dependency.source {
        DependencySource::Local(path) => path.clone(),
        DependencySource::AppComponent(other) => match manifest.component(other).map(|c| &c.source) {
            Some(ComponentSource::Local(path)) => path.clone(),
            _ => return Err(at(format!("{what}: component `{other}` has no local source"), "give that component a local `source`, or fetch it first")),
        },
        DependencySource::Remote { url, .. } => return Err(at(format!("{what}: `{url}` was not fetched"), "kiln up and kiln deploy fetch URL dependencies; or download the .wasm and use `{ path = \"…\" }`")),
        DependencySource::Registry { package, .. } => return Err(at(format!("{what}: package `{package}` was not fetched"), "kiln up and kiln deploy fetch registry dependencies; or fetch the .wasm and use `{ path = \"…\" }`")),
    };
    std::fs::read(&path).map_err(|err| {
        let shown = path.strip_prefix(&manifest.dir).unwrap_or(&path).display().to_string();
        at(format!("{what}: cannot read `{shown}`: {err}"), "build the dependency first, or fix its `path`")
    })
}

/// What the graph knows of one registered component.
struct Node {
    world: WorldId,
    instance: NodeId,
}

fn compose(manifest: &Manifest, component: &Component, main: Vec<u8>, dependencies: Vec<(&ComponentDependency, Vec<u8>)>) -> Result<Vec<u8>> {
    let id = &component.id;
    let mut graph = CompositionGraph::new();
    let main = register(&mut graph, "kiln:component", main)
        .map_err(|err| manifest.error_at(&component.source_span, format!("component `{id}` cannot be composed with its dependencies: {err:#}"), "dependencies need a component (not a core module) as the parent"))?;
    let imports: Vec<String> = graph.types()[main.world].imports.keys().cloned().collect();
    let mut satisfied: HashMap<String, &ComponentDependency> = HashMap::new();
    for (index, (dependency, bytes)) in dependencies.into_iter().enumerate() {
        let at = |message: String, help: String| anyhow::Error::from(manifest.error_at(&dependency.span, message, help));
        let what = format!("component `{id}`: dependency `{}`", dependency.name);
        let matched: Vec<&String> = imports.iter().filter(|import| dependency.name.matches(import)).collect();
        if matched.is_empty() {
            return Err(at(format!("{what} matches none of the component's imports"), format!("the component imports: {}", imports.join(", "))));
        }
        let node = register(&mut graph, &format!("kiln:dependency{index}"), bytes).map_err(|err| at(format!("{what}: {err:#}"), "a dependency must be a WebAssembly component".into()))?;
        if !dependency.inherit_configuration {
            check_no_configuration(&graph, &node, &what, component).map_err(|(message, help)| at(message, help))?;
        }
        for import in matched {
            if let Some(previous) = satisfied.insert(import.clone(), dependency) {
                return Err(at(format!("{what}: import `{import}` is also satisfied by dependency `{}`", previous.name), "keep one dependency per import".into()));
            }
            let export = dependency.export.clone().unwrap_or_else(|| import.clone());
            let argument = plug(&mut graph, &main, import, &node, &export).map_err(|err| at(format!("{what}: {err}"), "name the export that implements the import with `export = \"…\"`".into()))?;
            graph.set_instantiation_argument(main.instance, import, argument).with_context(|| format!("{what}: satisfying `{import}`"))?;
        }
    }
    export_all(&mut graph, &main)?;
    // wasmtime validates the result as it compiles it, with the features it has on.
    let options = EncodeOptions { validate: false, ..EncodeOptions::default() };
    graph.encode(options).with_context(|| format!("component `{id}`: composing it with its dependencies"))
}

fn register(graph: &mut CompositionGraph, name: &str, bytes: Vec<u8>) -> Result<Node> {
    let package = Package::from_bytes(name, None, bytes, graph.types_mut())?;
    let world = package.ty();
    let package = graph.register_package(package)?;
    Ok(Node { world, instance: graph.instantiate(package) })
}

/// The dependency's `export`, checked to be usable as the component's `import`.
fn plug(graph: &mut CompositionGraph, main: &Node, import: &str, dependency: &Node, export: &str) -> Result<NodeId, String> {
    let exports = &graph.types()[dependency.world].exports;
    let Some(export_kind) = exports.get(export).copied() else {
        let names: Vec<&str> = exports.keys().map(String::as_str).collect();
        return Err(format!("it has no export `{export}` to satisfy import `{import}` (its exports: {})", names.join(", ")));
    };
    let import_kind: ItemKind = graph.types()[main.world].imports[import];
    let mut cache = Default::default();
    SubtypeChecker::new(&mut cache)
        .is_subtype(export_kind, graph.types(), import_kind, graph.types())
        .map_err(|err| format!("its export `{export}` does not fit import `{import}`: {err:#}"))?;
    graph.alias_instance_export(dependency.instance, export).map_err(|err| format!("aliasing `{export}`: {err}"))
}

/// The composed component exports what the component exports.
fn export_all(graph: &mut CompositionGraph, main: &Node) -> Result<()> {
    let exports: Vec<String> = graph.types()[main.world].exports.keys().cloned().collect();
    for export in exports {
        let node = graph.alias_instance_export(main.instance, &export)?;
        graph.export(node, &export)?;
    }
    Ok(())
}

/// Refuses a dependency that does not inherit configuration but imports an interface through which
/// it would use the component's grants.
fn check_no_configuration(graph: &CompositionGraph, dependency: &Node, what: &str, component: &Component) -> Result<(), (String, String)> {
    let Some(import) = graph.types()[dependency.world].imports.keys().find(|name| carries_configuration(name)) else {
        return Ok(());
    };
    let message = format!(
        "{what} imports `{import}`, which would use component `{}`'s grants, and it does not inherit the component's configuration",
        component.id
    );
    let help = format!(
        "to grant it the component's configuration, set `dependencies_inherit_configuration = true` in [component.{}] \
         (or `inherit_configuration = true` on the dependency); otherwise use a dependency that does not import `{import}`",
        component.id
    );
    Err((message, help))
}

/// Whether an interface reaches something the manifest grants per component: files, the network,
/// stores, variables, brokers, Spin's and wasmCloud's host APIs. Interfaces of computation only
/// (I/O streams, clocks, random, stdio, `wasi:http/types`, the HTTP handler a middleware chains to)
/// carry none.
pub(crate) fn carries_configuration(import: &str) -> bool {
    let path = import.split('@').next().unwrap_or(import);
    let (package, interface) = path.split_once('/').unwrap_or((path, ""));
    let namespace = package.split(':').next().unwrap_or(package);
    match package {
        "wasi:filesystem" | "wasi:sockets" | "wasi:keyvalue" | "wasi:config" | "wasi:messaging" => true,
        "wasi:http" => matches!(interface, "outgoing-handler" | "client"),
        _ => matches!(namespace, "fermyon" | "spin" | "wasmcloud"),
    }
}

#[cfg(test)]
mod tests;
