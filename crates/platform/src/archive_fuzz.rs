//! Fuzz target: any upload is unpacked or refused, never panics, never writes outside the directory
//! it is unpacked into, and never writes more than its limit. Inputs are built as tar.gz archives
//! from the fuzzer's bytes (entry types, names with `..`, absolute paths and long names, sizes that
//! lie, and corrupted compression), so the unpacker sees hostile archives, not noise. Random inputs
//! under `cargo test`; coverage-guided with `cargo bolero test` (bench/fuzz.sh).

use super::*;

const NAMES: &[&str] = &["a", "/", "..", ".", "kiln.toml", "static", "b.wasm", "\u{e9}", "//", "./", "\\"];
const TYPES: &[tar::EntryType] = &[
    tar::EntryType::Regular,
    tar::EntryType::Directory,
    tar::EntryType::Symlink,
    tar::EntryType::Link,
    tar::EntryType::Char,
    tar::EntryType::Fifo,
    tar::EntryType::GNUSparse,
    tar::EntryType::XHeader,
    tar::EntryType::GNULongName,
    tar::EntryType::Continuous,
];
/// The unpack limit the target runs with: small, so lying sizes and many entries reach it.
const LIMIT: u64 = 4096;

/// One entry per 0xFE-separated record: [type, size mode, content length, name bytes…].
fn archive(input: &[u8]) -> Vec<u8> {
    let mut tar = Vec::new();
    for record in input.split(|b| *b == 0xFE) {
        let [kind, size_mode, length, name @ ..] = record else { continue };
        let name = kiln_fuzz_input::assemble(name, NAMES);
        let content = vec![b'x'; usize::from(*length) * 16];
        let declared = match size_mode % 4 {
            0 => content.len() as u64,
            1 => content.len() as u64 + 512,
            2 => (content.len() as u64).saturating_sub(100),
            _ => u64::MAX / 2,
        };
        let mut header = tar::Header::new_gnu();
        header.set_entry_type(TYPES[usize::from(*kind) % TYPES.len()]);
        header.set_size(declared);
        header.set_mode(0o644);
        let raw = &mut header.as_old_mut().name;
        let len = name.len().min(raw.len());
        raw[..len].copy_from_slice(&name.as_bytes()[..len]);
        header.set_cksum();
        tar.extend_from_slice(header.as_bytes());
        tar.extend_from_slice(&content);
        tar.resize(tar.len().div_ceil(512) * 512, 0);
    }
    let mut gz = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::fast());
    let _ = std::io::Write::write_all(&mut gz, &tar);
    let mut bytes = gz.finish().unwrap_or_default();
    // A last byte 0xAA corrupts the compressed stream.
    if input.last() == Some(&0xAA) && bytes.len() > 20 {
        let middle = bytes.len() / 2;
        bytes[middle] ^= 0x5A;
    }
    bytes
}

fn sizes_under(dir: &Path) -> u64 {
    std::fs::read_dir(dir)
        .into_iter()
        .flatten()
        .flatten()
        .map(|entry| match entry.file_type() {
            Ok(kind) if kind.is_dir() => sizes_under(&entry.path()),
            _ => entry.metadata().map(|m| m.len()).unwrap_or(0),
        })
        .sum()
}

#[test]
fn uploads() {
    bolero::check!().for_each(|input: &[u8]| {
        let parent = tempfile::tempdir().expect("temp dir");
        let into = parent.path().join("app");
        std::fs::create_dir(&into).expect("unpack dir");
        let _ = unpack(&archive(input), &into, LIMIT);
        let beside: Vec<_> = std::fs::read_dir(parent.path()).expect("list").flatten().map(|e| e.file_name()).collect();
        assert_eq!(beside, ["app"], "the archive wrote outside its directory");
        assert!(sizes_under(&into) <= LIMIT, "more than the limit was written");
        let links = walk_links(&into);
        assert!(links.is_empty(), "links were created: {links:?}");
    });
}

fn walk_links(dir: &Path) -> Vec<PathBuf> {
    let mut found = Vec::new();
    for entry in std::fs::read_dir(dir).into_iter().flatten().flatten() {
        match entry.file_type() {
            Ok(kind) if kind.is_symlink() => found.push(entry.path()),
            Ok(kind) if kind.is_dir() => found.extend(walk_links(&entry.path())),
            _ => {}
        }
    }
    found
}
