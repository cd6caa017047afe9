//! `kiln deploy` (being written).
use anyhow::Result;

#[derive(clap::Args)]
pub(crate) struct DeployArgs {}

pub(crate) fn run(_args: DeployArgs) -> Result<()> {
    anyhow::bail!("kiln deploy is not available yet")
}
