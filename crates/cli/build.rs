//! Embeds `templates/` (the `kiln new` templates) into the binary: writes `$OUT_DIR/templates.rs`, a
//! table of `(template, relative path, contents)` with one `include_bytes!` per file, so adding a
//! template or a file needs no code change.

use std::path::{Path, PathBuf};

fn main() {
    let root = PathBuf::from(std::env::var("CARGO_MANIFEST_DIR").expect("cargo sets CARGO_MANIFEST_DIR")).join("templates");
    println!("cargo::rerun-if-changed={}", root.display());
    let mut files = Vec::new();
    collect(&root, &mut files);
    files.sort();
    let mut table = String::from("pub(crate) static FILES: &[(&str, &str, &[u8])] = &[\n");
    for path in &files {
        let relative = path.strip_prefix(&root).expect("under the templates root");
        let mut parts = relative.components().map(|part| part.as_os_str().to_str().expect("template paths are UTF-8"));
        let template = parts.next().expect("a template directory");
        let inner: Vec<&str> = parts.collect();
        println!("cargo::rerun-if-changed={}", path.display());
        table.push_str(&format!("    ({template:?}, {:?}, include_bytes!({:?})),\n", inner.join("/"), path.display().to_string()));
    }
    table.push_str("];\n");
    let out = PathBuf::from(std::env::var("OUT_DIR").expect("cargo sets OUT_DIR")).join("templates.rs");
    std::fs::write(out, table).expect("write templates.rs");
}

/// Every file under `dir`, skipping build output a template's test build may leave behind.
fn collect(dir: &Path, files: &mut Vec<PathBuf>) {
    for entry in std::fs::read_dir(dir).expect("read a template directory") {
        let path = entry.expect("read a template directory entry").path();
        let name = path.file_name().and_then(|n| n.to_str()).unwrap_or_default();
        if matches!(name, "target" | "node_modules" | "__pycache__" | ".venv" | ".kiln") {
            continue;
        }
        if path.is_dir() {
            collect(&path, files);
        } else {
            files.push(path);
        }
    }
}
