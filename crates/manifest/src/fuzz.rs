//! Fuzz target: any text given as a manifest is either loaded or refused with a located error;
//! nothing panics, and what loads is consistent. Runs with random inputs under `cargo test`, and
//! coverage-guided with `cargo bolero test -p kiln-manifest fuzz::manifest` (bench/fuzz.sh).

use super::*;
use std::path::Path;

/// Pieces of manifests, well-formed and not: what [`kiln_fuzz_input::assemble`] builds inputs from.
const FRAGMENTS: &[&str] = &[
    "spin_manifest_version = 2\n",
    "spin_manifest_version = 1\n",
    "[application]\n",
    "name = \"app\"\n",
    "name = \"\"\n",
    "version = \"1.0.0\"\n",
    "[application.trigger.http]\nbase = \"/base\"\n",
    "[application.trigger.redis]\naddress = \"redis://{{ host }}:6379\"\n",
    "[application.tool.kiln]\nmax_concurrency = 0\n",
    "[variables]\n",
    "host = { default = \"localhost\" }\n",
    "secret = { required = true, secret = true }\n",
    "[[trigger.http]]\n",
    "route = \"/...\"\n",
    "route = \"/a/:id/...\"\n",
    "route = \"/a/.../b\"\n",
    "route = { private = true }\n",
    "executor = { type = \"wagi\", argv = \"${SCRIPT_NAME} ${ARGS}\" }\n",
    "component = \"c\"\n",
    "component = \"missing\"\n",
    "component = { source = \"inline.wasm\" }\n",
    "[[trigger.redis]]\nchannel = \"ch\"\n",
    "[[trigger.nats]]\nsubject = \"a.*.>\"\n",
    "[[trigger.cron]]\ncron_expression = \"0 */5 * * * *\"\n",
    "[[trigger.cron]]\ninterval = \"5x\"\n",
    "[[trigger.directory]]\npath = \"in\"\noutput = \"out\"\n",
    "pattern = \"[\"\n",
    "id = \"t\"\n",
    "[component.c]\n",
    "[component.\"C d\"]\n",
    "source = \"c.wasm\"\n",
    "source = { url = \"https://example.com/c.wasm\", digest = \"sha256:00\" }\n",
    "source = { registry = \"r.example\", package = \"a:b\", version = \"1.0.0\" }\n",
    "files = [\"static/**/*\", { source = \"../etc\", destination = \"/\" }]\n",
    "exclude_files = [\"**/*.tmp\"]\n",
    "allowed_outbound_hosts = [\"http://*:*\", \"redis://{{ host }}\", \"not a url\"]\n",
    "key_value_stores = [\"default\", \"Bad Label\"]\n",
    "sqlite_databases = [\"default\"]\n",
    "environment = { A = \"b\" }\n",
    "variables = { v = \"{{ host }}\", w = \"{{ nope }}\" }\n",
    "[component.c.build]\ncommand = [\"cargo\", \"build\"]\nwatch = [\"src/**/*.rs\"]\n",
    "[component.c.dependencies]\n\"a:b/c@1.0.0\" = { path = \"dep.wasm\" }\n",
    "\"x:y\" = { component = \"c\", export = \"x:y/z\" }\n",
    "dependencies_inherit_configuration = true\n",
    "[component.c.tool.kiln]\nallowed_publish_subjects = [\"a.>\"]\n",
    "\"\n", "=", "[", "]", "{", "}", ",", "\n", " ", "#", "'", "\\u0000", "1e400", "-1", "\"\u{1F408}\"",
];

#[test]
fn manifest() {
    bolero::check!().for_each(|input: &[u8]| {
        let text = kiln_fuzz_input::assemble(input, FRAGMENTS);
        match Manifest::parse(text.clone(), Path::new("/app/spin.toml")) {
            Ok(manifest) => loaded_is_consistent(&manifest),
            Err(err) => refusal_is_located(&err, &text),
        }
    });
}

/// Raw bytes too (the manifest is read as UTF-8 text first).
#[test]
fn manifest_bytes() {
    bolero::check!().for_each(|input: &[u8]| {
        let text = String::from_utf8_lossy(input).into_owned();
        if let Err(err) = Manifest::parse(text.clone(), Path::new("/app/spin.toml")) {
            refusal_is_located(&err, &text);
        }
    });
}

fn loaded_is_consistent(manifest: &Manifest) {
    let bound = manifest.http_triggers.iter().map(|t| &t.component)
        .chain(manifest.redis_triggers.iter().map(|t| &t.component))
        .chain(manifest.nats_triggers.iter().map(|t| &t.component))
        .chain(manifest.cron_triggers.iter().map(|t| &t.component))
        .chain(manifest.directory_triggers.iter().map(|t| &t.component));
    for component in bound {
        assert!(manifest.components.contains_key(component), "a trigger names `{component}`, which was not loaded");
    }
    for trigger in &manifest.directory_triggers {
        assert!(!trigger.output.starts_with(&trigger.path) && !trigger.path.starts_with(&trigger.output));
    }
}

fn refusal_is_located(err: &ManifestError, text: &str) {
    assert!(!err.message().is_empty());
    if let Some((line, column)) = err.line_col() {
        let lines = text.split('\n').count();
        assert!(line >= 1 && line <= lines, "line {line} of a {lines}-line text: {}", err.message());
        assert!(column >= 1, "{}", err.message());
    }
}
