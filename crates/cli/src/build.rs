use anyhow::{Context, Result, bail};
use kiln_manifest::Manifest;
use std::path::PathBuf;

#[derive(clap::Args)]
pub(crate) struct BuildArgs {
    /// The manifest, or a directory containing kiln.toml or spin.toml.
    #[arg(short = 'f', long = "from", value_name = "PATH")]
    pub(crate) file: Option<PathBuf>,
}

pub(crate) fn run(args: &BuildArgs) -> Result<()> {
    let path = kiln_manifest::find_manifest(args.file.as_deref())?;
    let manifest = Manifest::load(&path)?;
    build_all(&manifest)
}

/// Runs every component's build commands, in manifest order, each in its `workdir`.
pub(crate) fn build_all(manifest: &Manifest) -> Result<()> {
    for (id, component) in &manifest.components {
        let Some(build) = &component.build else {
            continue;
        };
        for command in &build.command {
            tracing::info!("building `{id}`: {command}");
            let status = std::process::Command::new("sh")
                .arg("-c")
                .arg(command)
                .current_dir(&build.workdir)
                .status()
                .with_context(|| format!("component `{id}`: cannot run build command `{command}`"))?;
            if !status.success() {
                bail!("component `{id}`: build command `{command}` failed ({status}) in {}", build.workdir.display());
            }
        }
    }
    Ok(())
}
