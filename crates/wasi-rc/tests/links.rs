//! Every interface of both release candidates is served: a component importing all of
//! `wasi:cli/reactor` and `wasi:http/proxy` of a candidate (made from the vendored WIT, as a guest
//! toolchain would) links, its functions' types checked by wasmtime, and its rc handler is found.

use std::path::{Path, PathBuf};
use wasmtime::component::{Component, Linker, ResourceTable};
use wasmtime::{Config, Engine};
use wasmtime_wasi::{WasiCtx, WasiCtxView, WasiView};
use wasmtime_wasi_http::{WasiHttpCtx, WasiHttpCtxView, WasiHttpView};

struct State {
    table: ResourceTable,
    wasi: WasiCtx,
    http: WasiHttpCtx,
}

impl WasiView for State {
    fn ctx(&mut self) -> WasiCtxView<'_> {
        WasiCtxView { ctx: &mut self.wasi, table: &mut self.table }
    }
}

impl WasiHttpView for State {
    fn http(&mut self) -> WasiHttpCtxView<'_> {
        WasiHttpCtxView { ctx: &mut self.http, table: &mut self.table, hooks: wasmtime_wasi_http::default_hooks() }
    }
}

impl kiln_wasi_rc::RcHooks for State {}

/// The vendored packages of a candidate, dependencies first.
fn resolve(candidate: &str) -> wit_parser::Resolve {
    let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../wit").join(format!("wasi-0.2.0-rc-{candidate}"));
    let mut resolve = wit_parser::Resolve::default();
    for package in ["io", "clocks", "random", "filesystem", "sockets", "cli", "http"] {
        let dir: PathBuf = root.join(package);
        resolve.push_dir(&dir).unwrap_or_else(|err| panic!("{}: {err:?}", dir.display()));
    }
    resolve
}

fn component_importing_everything(candidate: &str) -> Vec<u8> {
    let mut resolve = resolve(candidate);
    let version = format!("0.2.0-rc-{candidate}");
    let world = format!(
        "package kiln:test;\nworld everything {{\n  include wasi:cli/reactor@{version};\n  include wasi:http/proxy@{version};\n}}\n"
    );
    let package = resolve.push_str("everything.wit", &world).expect("test world");
    let world = resolve.select_world(&[package], Some("everything")).expect("world");
    let mut module = wit_component::dummy_module(&resolve, world, wit_parser::ManglingAndAbi::Standard32);
    wit_component::embed_component_metadata(&mut module, &resolve, world, wit_component::StringEncoding::UTF8).expect("metadata");
    wit_component::ComponentEncoder::default().validate(true).module(&module).expect("module").encode().expect("component")
}

fn linker(engine: &Engine) -> Linker<State> {
    let mut linker = Linker::new(engine);
    wasmtime_wasi::p2::add_to_linker_async(&mut linker).expect("WASI 0.2");
    wasmtime_wasi_http::p2::add_only_http_to_linker_async(&mut linker).expect("wasi:http 0.2");
    kiln_wasi_rc::add_to_linker(&mut linker).expect("release candidates");
    linker
}

fn engine() -> Engine {
    Engine::new(&Config::new()).expect("engine")
}

#[test]
fn every_interface_of_2023_10_18_links_and_its_handler_is_found() {
    let engine = engine();
    let component = Component::new(&engine, component_importing_everything("2023-10-18")).expect("compile");
    let pre = linker(&engine).instantiate_pre(&component).expect("every import is served");
    kiln_wasi_rc::rc_2023_10_18::ProxyPre::new(pre.clone()).expect("the 10-18 incoming handler");
    assert!(kiln_wasi_rc::rc_2023_11_10::ProxyPre::new(pre).is_err(), "not an 11-10 handler");
}

#[test]
fn every_interface_of_2023_11_10_links_and_its_handler_is_found() {
    let engine = engine();
    let component = Component::new(&engine, component_importing_everything("2023-11-10")).expect("compile");
    let pre = linker(&engine).instantiate_pre(&component).expect("every import is served");
    kiln_wasi_rc::rc_2023_11_10::ProxyPre::new(pre.clone()).expect("the 11-10 incoming handler");
    assert!(kiln_wasi_rc::rc_2023_10_18::ProxyPre::new(pre).is_err(), "not a 10-18 handler");
}

/// A candidate Kiln does not serve still fails at link time, naming the import.
#[test]
fn an_unknown_candidate_is_refused_naming_the_import() {
    let engine = engine();
    let wat = r#"(component (import "wasi:io/poll@0.2.0-rc-2023-12-05" (instance (export "poll" (func)))))"#;
    let component = Component::new(&engine, wat).expect("compile");
    let err = linker(&engine).instantiate_pre(&component).err().expect("refused");
    assert!(format!("{err:#}").contains("wasi:io/poll@0.2.0-rc-2023-12-05"), "{err:#}");
}
