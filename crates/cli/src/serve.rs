//! `kiln serve` (being written).
use anyhow::Result;

#[derive(clap::Args)]
pub(crate) struct ServeArgs {}

pub(crate) fn run(_args: ServeArgs) -> Result<()> {
    anyhow::bail!("kiln serve is not available yet")
}
