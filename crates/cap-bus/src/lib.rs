//! wasmCloud's link names: `wasmcloud:bus/lattice@1.0.0` and `@2.0.0`.
//!
//! `set-link-name(name, interfaces)` selects which link the instance's later calls of those
//! interfaces use, for the rest of the instance (wasmCloud keeps it per instance too). Kiln maps a
//! link name to what the manifest grants:
//! - `wasi:keyvalue/*`: the key-value store label; `open("")` then opens that store (see
//!   kiln-cap-key-value). A link exists when the component is granted the label.
//! - `wasmcloud:messaging/*`, `wasi:messaging/*`: Kiln gives each app one broker, so only
//!   `default` exists.
//! - any other interface: only `default` exists (Kiln has no other links to choose from).
//!
//! `default` always works and goes back to the default link. 2.0.0 checks first and answers
//! `err(string)` for a link that does not exist, selecting nothing (as wasmCloud's host does);
//! 1.0.0 has no error to answer with, so it selects the name anyway and each later call through it
//! fails with its interface's error (`access-denied` for a store the component is not granted, an
//! error naming the link for messaging). No name ever traps.

use anyhow::Result;
use kiln_app::{AppCapability, AppContext, Capability, ComponentContext};
use kiln_cap_key_value::KeyValueInstance;
use kiln_cap_messaging::MessagingInstance;
use kiln_engine::{ComponentCapability, KilnState, LinkFn};
use std::sync::Arc;
use wasmtime::component::{HasSelf, Linker, Resource, ResourceTable};

/// `wasmcloud:bus/lattice@1.0.0`: `set-link-name` returns nothing.
mod bindings_v1 {
    wasmtime::component::bindgen!({
        path: ["../../wit/wasmcloud-bus@1.0.0"],
        inline: "
            package kiln:bus-v1;
            world imports { import wasmcloud:bus/lattice@1.0.0; }
        ",
        world: "kiln:bus-v1/imports",
        imports: { default: trappable },
        with: { "wasmcloud:bus/lattice.call-target-interface": crate::CallTarget },
    });
}

/// `wasmcloud:bus/lattice@2.0.0`: `set-link-name` checks the link exists.
mod bindings_v2 {
    wasmtime::component::bindgen!({
        path: ["../../wit/wasmcloud-bus@2.0.0"],
        inline: "
            package kiln:bus-v2;
            world imports { import wasmcloud:bus/lattice@2.0.0; }
        ",
        world: "kiln:bus-v2/imports",
        imports: { default: trappable },
        with: { "wasmcloud:bus/lattice.call-target-interface": crate::CallTarget },
    });
}

use bindings_v1::wasmcloud::bus::lattice as lattice_v1;
use bindings_v2::wasmcloud::bus::lattice as lattice_v2;

/// The link name every interface has.
pub const DEFAULT_LINK: &str = "default";
/// Most `call-target-interface`s one instance may hold at once.
pub const MAX_TARGETS_PER_INSTANCE: usize = 1000;

/// A guest's `call-target-interface`: `namespace:package/interface`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct CallTarget {
    pub namespace: String,
    pub package: String,
    pub interface: String,
}

/// What a link name selects in Kiln, by the interface's package.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Linked {
    KeyValue,
    Messaging,
    Other,
}

impl CallTarget {
    fn linked(&self) -> Linked {
        match (self.namespace.as_str(), self.package.as_str()) {
            ("wasi", "keyvalue") => Linked::KeyValue,
            ("wasmcloud" | "wasi", "messaging") => Linked::Messaging,
            _ => Linked::Other,
        }
    }
}

impl std::fmt::Display for CallTarget {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}:{}/{}", self.namespace, self.package, self.interface)
    }
}

/// The bus capability: no grant of its own; links are the grants of key-value and messaging.
pub struct Bus;

impl Capability for Bus {
    fn name(&self) -> &'static str {
        "wasmcloud-bus"
    }

    fn link(&self) -> LinkFn {
        link
    }

    fn configure_app(&self, _app: &AppContext<'_>) -> Result<Box<dyn AppCapability>> {
        Ok(Box::new(AppBus))
    }
}

struct AppBus;

impl AppCapability for AppBus {
    fn component(&self, _component: &ComponentContext<'_>) -> Result<Arc<dyn ComponentCapability>> {
        Ok(Arc::new(ComponentBus))
    }
}

struct ComponentBus;

impl ComponentCapability for ComponentBus {
    fn instance_state(&self) -> Box<dyn std::any::Any + Send> {
        Box::new(BusState::default())
    }
}

/// Per-instance state: the guest's call targets.
#[derive(Default)]
pub struct BusState {
    table: ResourceTable,
    targets: usize,
}

fn bus(state: &mut KilnState) -> wasmtime::Result<&mut BusState> {
    state.try_capability::<BusState>().ok_or_else(|| wasmtime::Error::msg("wasmcloud:bus is not set up in this host"))
}

fn new_target(state: &mut KilnState, target: CallTarget) -> wasmtime::Result<Resource<CallTarget>> {
    let bus = bus(state)?;
    if bus.targets >= MAX_TARGETS_PER_INSTANCE {
        return Err(wasmtime::Error::msg(format!(
            "too many wasmcloud:bus call-target-interfaces in this instance (at most {MAX_TARGETS_PER_INSTANCE})"
        )));
    }
    let resource = bus.table.push(target)?;
    bus.targets += 1;
    Ok(resource)
}

fn drop_target(state: &mut KilnState, target: Resource<CallTarget>) -> wasmtime::Result<CallTarget> {
    let bus = bus(state)?;
    let target = bus.table.delete(target)?;
    bus.targets = bus.targets.saturating_sub(1);
    Ok(target)
}

/// The targets `set-link-name` was given: owned handles, so they are consumed.
fn take_targets(state: &mut KilnState, interfaces: Vec<Resource<CallTarget>>) -> wasmtime::Result<Vec<CallTarget>> {
    interfaces.into_iter().map(|target| drop_target(state, target)).collect()
}

/// Whether `name` is a link of `target` for this component.
fn has_link(state: &mut KilnState, target: &CallTarget, name: &str) -> bool {
    if name == DEFAULT_LINK {
        return true;
    }
    match target.linked() {
        Linked::KeyValue => state.try_capability::<KeyValueInstance>().is_some_and(|kv| kv.has_link(name)),
        Linked::Messaging => state.try_capability::<MessagingInstance>().is_some_and(|m| m.has_link(name)),
        Linked::Other => false,
    }
}

/// Why `name` is not a link of `target`, with what would make it one.
fn missing_link(target: &CallTarget, name: &str) -> String {
    let hint = match target.linked() {
        Linked::KeyValue => format!(": grant the key-value store with `key_value_stores = [\"{name}\"]`"),
        Linked::Messaging => format!(": Kiln gives each app one broker, linked as `{DEFAULT_LINK}`"),
        Linked::Other => format!(": Kiln has only the `{DEFAULT_LINK}` link for it"),
    };
    format!("interface `{target}` does not have an existing link with name `{name}`{hint}")
}

/// Makes later calls of `targets` use link `name` (unchecked).
fn select(state: &mut KilnState, targets: &[CallTarget], name: &str) {
    for target in targets {
        match target.linked() {
            Linked::KeyValue => {
                if let Some(kv) = state.try_capability::<KeyValueInstance>() {
                    kv.select_link(name);
                }
            }
            Linked::Messaging => {
                if let Some(messaging) = state.try_capability::<MessagingInstance>() {
                    messaging.select_link(name);
                }
            }
            Linked::Other => {}
        }
    }
}

/// 2.0.0: every target must have the link, else nothing is selected.
fn set_checked(state: &mut KilnState, name: &str, targets: &[CallTarget]) -> Result<(), String> {
    if let Some(target) = targets.iter().find(|target| !has_link(state, target, name)) {
        let why = missing_link(target, name);
        tracing::debug!(target: "kiln::guest", "wasmcloud:bus set-link-name: {why}");
        return Err(why);
    }
    select(state, targets, name);
    Ok(())
}

impl lattice_v1::Host for KilnState {
    fn set_link_name(&mut self, name: String, interfaces: Vec<Resource<CallTarget>>) -> wasmtime::Result<()> {
        let targets = take_targets(self, interfaces)?;
        select(self, &targets, &name);
        Ok(())
    }
}

impl lattice_v1::HostCallTargetInterface for KilnState {
    fn new(&mut self, namespace: String, package: String, interface: String) -> wasmtime::Result<Resource<CallTarget>> {
        new_target(self, CallTarget { namespace, package, interface })
    }

    fn drop(&mut self, target: Resource<CallTarget>) -> wasmtime::Result<()> {
        drop_target(self, target).map(|_| ())
    }
}

impl lattice_v2::Host for KilnState {
    fn set_link_name(&mut self, name: String, interfaces: Vec<Resource<CallTarget>>) -> wasmtime::Result<Result<(), String>> {
        let targets = take_targets(self, interfaces)?;
        Ok(set_checked(self, &name, &targets))
    }
}

impl lattice_v2::HostCallTargetInterface for KilnState {
    fn new(&mut self, namespace: String, package: String, interface: String) -> wasmtime::Result<Resource<CallTarget>> {
        new_target(self, CallTarget { namespace, package, interface })
    }

    fn drop(&mut self, target: Resource<CallTarget>) -> wasmtime::Result<()> {
        drop_target(self, target).map(|_| ())
    }
}

fn link(linker: &mut Linker<KilnState>) -> Result<()> {
    lattice_v1::add_to_linker::<KilnState, HasSelf<KilnState>>(linker, |s| s)?;
    lattice_v2::add_to_linker::<KilnState, HasSelf<KilnState>>(linker, |s| s)?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn target(namespace: &str, package: &str, interface: &str) -> CallTarget {
        CallTarget { namespace: namespace.into(), package: package.into(), interface: interface.into() }
    }

    #[test]
    fn interfaces_map_to_what_their_link_selects() {
        assert_eq!(target("wasi", "keyvalue", "store").linked(), Linked::KeyValue);
        assert_eq!(target("wasi", "keyvalue", "atomics").linked(), Linked::KeyValue);
        assert_eq!(target("wasmcloud", "messaging", "consumer").linked(), Linked::Messaging);
        assert_eq!(target("wasi", "messaging", "producer").linked(), Linked::Messaging);
        assert_eq!(target("wasi", "blobstore", "blobstore").linked(), Linked::Other);
    }

    #[test]
    fn a_missing_link_says_how_to_grant_it() {
        let why = missing_link(&target("wasi", "keyvalue", "store"), "cache");
        assert_eq!(
            why,
            "interface `wasi:keyvalue/store` does not have an existing link with name `cache`: grant the key-value store with `key_value_stores = [\"cache\"]`"
        );
        assert!(missing_link(&target("wasmcloud", "messaging", "consumer"), "b").contains("one broker"));
    }
}
