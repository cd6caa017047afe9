//! The capabilities `kiln` offers guests. Adding one: its crate, and one line here.

use kiln_app::Capability;

pub(crate) fn all() -> Vec<Box<dyn Capability>> {
    vec![]
}
