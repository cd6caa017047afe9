//! `kiln new TEMPLATE NAME` and `kiln templates list`: app skeletons embedded in the binary
//! (`crates/cli/templates/`, gathered by the build script).

use anyhow::{Context, Result, bail};
use std::path::{Path, PathBuf};

mod embedded {
    include!(concat!(env!("OUT_DIR"), "/templates.rs"));
}

/// A template: its directory under `templates/`, and what `kiln templates list` says of it.
pub(crate) struct Template {
    pub(crate) name: &'static str,
    pub(crate) language: &'static str,
    pub(crate) description: &'static str,
}

pub(crate) const TEMPLATES: &[Template] = &[
    Template { name: "http-rust", language: "Rust", description: "HTTP handler (Spin SDK): key-value, variables, outbound HTTP" },
    Template { name: "redis-rust", language: "Rust", description: "Redis channel subscriber (Spin SDK) recording messages in key-value" },
    Template { name: "nats-rust", language: "Rust", description: "NATS subscriber (wasi:messaging) counting messages and answering requests" },
    Template { name: "cron-rust", language: "Rust", description: "Cron job (Spin's cron trigger) counting its runs in key-value" },
    Template { name: "http-python", language: "Python", description: "HTTP handler (componentize-py): key-value, variables, outbound HTTP" },
    Template { name: "http-js", language: "JavaScript", description: "HTTP handler (Spin JS build tools): key-value, variables, outbound HTTP" },
];

#[derive(clap::Args)]
pub(crate) struct NewArgs {
    /// The template (see `kiln templates list`).
    template: String,
    /// The app's name: lower-case letters, digits and single hyphens, starting with a letter. It
    /// names the directory, the app, its component and its package.
    name: String,
    /// Where to create the app [default: ./NAME].
    #[arg(long, value_name = "DIR")]
    dir: Option<PathBuf>,
}

#[derive(clap::Args)]
pub(crate) struct TemplatesArgs {
    #[command(subcommand)]
    command: TemplatesCommand,
}

#[derive(clap::Subcommand)]
enum TemplatesCommand {
    /// The templates `kiln new` can create.
    List,
}

pub(crate) fn run_templates(args: &TemplatesArgs) -> Result<()> {
    match args.command {
        TemplatesCommand::List => {
            let width = TEMPLATES.iter().map(|t| t.name.len()).max().unwrap_or(0);
            for template in TEMPLATES {
                println!("{:width$}  {:10}  {}", template.name, template.language, template.description);
            }
            Ok(())
        }
    }
}

pub(crate) fn run(args: &NewArgs) -> Result<()> {
    let dir = args.dir.clone().unwrap_or_else(|| PathBuf::from(&args.name));
    let template = create(&args.template, &args.name, &dir)?;
    println!("Created `{}` ({} template) in {}", args.name, template.name, dir.display());
    if let Some(hint) = crate::build::missing_toolchain_for(template.language) {
        println!("\nThis template needs a toolchain that is not installed:\n  {hint}");
    }
    println!("\nNext:\n  cd {}\n  kiln up --build        # or `kiln watch` to rebuild on every edit", dir.display());
    Ok(())
}

/// Writes the template `template_name` into `dir` (which must not exist or be empty), with `name`
/// substituted. Fails before writing anything if the template or the name is not valid.
pub(crate) fn create(template_name: &str, name: &str, dir: &Path) -> Result<&'static Template> {
    let Some(template) = TEMPLATES.iter().find(|t| t.name == template_name) else {
        let names: Vec<_> = TEMPLATES.iter().map(|t| t.name).collect();
        bail!("no template `{template_name}`: the templates are {} (`kiln templates list`)", names.join(", "));
    };
    validate_name(name)?;
    if dir.exists() && dir.read_dir().with_context(|| format!("cannot read {}", dir.display()))?.next().is_some() {
        bail!("{} already exists and is not empty: choose another name or `--dir`", dir.display());
    }
    for (_, relative, contents) in embedded::FILES.iter().filter(|(t, _, _)| *t == template.name) {
        let target = dir.join(relative.strip_suffix(".tmpl").unwrap_or(relative));
        if let Some(parent) = target.parent() {
            std::fs::create_dir_all(parent).with_context(|| format!("cannot create {}", parent.display()))?;
        }
        std::fs::write(&target, substitute(contents, name)).with_context(|| format!("cannot write {}", target.display()))?;
    }
    Ok(template)
}

/// Replaces `{{project-name}}` with the name and `{{project_name}}` with its snake-case form (a
/// Rust crate or Python module name). The name was validated, so it can go anywhere (TOML strings,
/// source code, JSON) without escaping. Binary files pass through unchanged.
fn substitute(contents: &[u8], name: &str) -> Vec<u8> {
    match std::str::from_utf8(contents) {
        Ok(text) => text.replace("{{project-name}}", name).replace("{{project_name}}", &name.replace('-', "_")).into_bytes(),
        Err(_) => contents.to_vec(),
    }
}

/// Words a name may not be, because it would not compile as a crate, a Python module or a JS
/// package (`test` shadows Rust's test crate; `core`/`std` its standard library; `spin_sdk` the SDK).
const RESERVED: &[&str] = &[
    "test", "core", "std", "alloc", "proc-macro", "self", "super", "crate", "fn", "mod", "type", "match", "async", "await",
    "import", "class", "def", "from", "spin-sdk", "node-modules", "favicon-ico",
];

/// A name must be usable as a directory, a Spin app name and component id (kebab case), a Cargo
/// package, a Python module (after `-` → `_`) and an npm package.
pub(crate) fn validate_name(name: &str) -> Result<()> {
    let help = "use lower-case letters, digits and single hyphens, starting with a letter (like `my-app`)";
    if name.is_empty() || name.len() > 64 {
        bail!("the name must be 1 to 64 characters long: {help}");
    }
    let valid_chars = name.chars().all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '-');
    let starts_with_letter = name.starts_with(|c: char| c.is_ascii_lowercase());
    if !valid_chars || !starts_with_letter || name.ends_with('-') || name.contains("--") {
        bail!("`{}` is not a valid app name: {help}", name.escape_default());
    }
    // Spin's component ids are kebab case: every word starts with a letter.
    if name.split('-').any(|word| !word.starts_with(|c: char| c.is_ascii_lowercase())) {
        bail!("`{name}` is not a valid app name: every word after a hyphen must start with a letter, as Spin requires of component ids");
    }
    if RESERVED.contains(&name) {
        bail!("`{name}` is a reserved word in Rust, Python or npm: choose another name");
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names() {
        for good in ["a", "my-app", "app2", "hello-world3"] {
            validate_name(good).unwrap_or_else(|e| panic!("{good}: {e}"));
        }
        for bad in ["", "My-App", "2app", "-app", "app-", "a--b", "a_b", "a b", "../x", "a/b", "test", "a-2b", "é", &"x".repeat(65)] {
            assert!(validate_name(bad).is_err(), "{bad:?} should be refused");
        }
    }

    #[test]
    fn every_template_has_files_and_a_manifest() {
        for template in TEMPLATES {
            assert!(
                embedded::FILES.iter().any(|(t, path, _)| *t == template.name && *path == "spin.toml"),
                "template {} has no spin.toml",
                template.name
            );
        }
        for (t, _, _) in embedded::FILES {
            assert!(TEMPLATES.iter().any(|template| template.name == *t), "templates/{t} is not listed in TEMPLATES");
        }
    }

    #[test]
    fn substitutes_both_forms() {
        let out = substitute(b"name = \"{{project-name}}\" crate {{project_name}} {{ greeting }}", "my-app");
        assert_eq!(String::from_utf8(out).unwrap(), "name = \"my-app\" crate my_app {{ greeting }}");
    }
}
