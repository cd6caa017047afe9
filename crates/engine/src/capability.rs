//! The engine's side of a capability (key-value, SQLite, variables, …).
//!
//! A capability links its interfaces once into the engine's linker ([`LinkFn`]), prepares per
//! component what its instances need ([`ComponentCapability`], built at load), and gives every
//! instance its own state, made on the instance's first call into a capability and reached from
//! host functions with [`KilnState::capability`](crate::KilnState::capability).

use crate::KilnState;
use std::any::Any;
use wasmtime::component::Linker;

/// Adds a capability's interfaces (every version it serves) to the linker.
pub type LinkFn = fn(&mut Linker<KilnState>) -> anyhow::Result<()>;

/// What one component's instances get from one capability. Built once per component at load; its
/// [`instance_state`](ComponentCapability::instance_state) runs for every instance that calls into
/// any capability (all of them at once, on the first such call), so it should only clone `Arc`s
/// and small values.
pub trait ComponentCapability: Send + Sync {
    fn instance_state(&self) -> Box<dyn Any + Send>;
}
