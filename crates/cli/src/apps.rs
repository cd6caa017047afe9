//! `kiln apps` (being written).
use anyhow::Result;

#[derive(clap::Args)]
pub(crate) struct AppsArgs {}

pub(crate) fn run(_args: AppsArgs) -> Result<()> {
    anyhow::bail!("kiln apps is not available yet")
}
