//! `files`: read-only mounts, nothing else of the host visible, no escape.

use crate::{body, serve};
use kiln_e2e::kiln::Kiln;

fn files_app(files: &str) -> (Kiln, tempfile::TempDir) {
    let manifest = crate::single("files", "/...", &format!("files = {files}"));
    serve(
        &manifest,
        &[("static/hello.txt", "hello from a file"), ("static/sub/deep.txt", "deep"), ("notes/a.md", "note a"), ("notes/b.txt", "note b"), ("secret.txt", "do not read")],
        &[],
    )
}

#[test]
fn a_mapped_directory_is_readable_at_its_destination() {
    let (kiln, _dir) = files_app(r#"[{ source = "static", destination = "/assets" }]"#);
    assert_eq!(body(kiln.get("/?path=/assets/hello.txt")), (200, "hello from a file".to_string()));
    assert_eq!(body(kiln.get("/?path=/assets/sub/deep.txt")), (200, "deep".to_string()));
}

#[test]
fn globs_are_mounted_at_the_root() {
    let (kiln, _dir) = files_app(r#"["notes/*.md"]"#);
    assert_eq!(body(kiln.get("/?path=/notes/a.md")), (200, "note a".to_string()));
    assert_eq!(body(kiln.get("/?path=/notes/b.txt")).0, 404, "a file outside the glob is visible");
}

#[test]
fn mounts_are_read_only() {
    let (kiln, dir) = files_app(r#"[{ source = "static", destination = "/" }]"#);
    let (status, text) = body(kiln.get("/?write=/new.txt"));
    assert_eq!(status, 403, "{text}");
    assert!(!dir.path().join("static/new.txt").exists());
}

#[test]
fn nothing_outside_the_mounts_is_visible() {
    let (kiln, _dir) = files_app(r#"[{ source = "static", destination = "/" }]"#);
    for path in ["/../secret.txt", "/../../../../etc/passwd", "/etc/passwd", "../secret.txt", "/sub/../../secret.txt"] {
        let (status, text) = body(kiln.get(&format!("/?path={path}")));
        assert_eq!(status, 404, "{path} was readable: {text}");
        assert!(!text.contains("do not read") && !text.contains("root:"), "{path} leaked: {text}");
    }
}

#[test]
fn a_component_without_files_sees_no_filesystem() {
    let manifest = crate::single("files", "/...", "");
    let (kiln, _dir) = serve(&manifest, &[("x.txt", "x")], &[]);
    assert_eq!(body(kiln.get("/?path=/x.txt")).0, 404);
    assert_eq!(body(kiln.get("/?path=/etc/passwd")).0, 404);
}
