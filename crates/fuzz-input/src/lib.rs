//! Kiln's fuzz tests (bolero: random inputs under `cargo test`, coverage-guided under
//! `cargo bolero test`, see `bench/fuzz.sh`) parse text: manifests, runtime configs, routes, host
//! patterns. Random bytes are almost never near-valid TOML, so a fuzzer would spend its time on the
//! first syntax error. [`assemble`] reads the fuzzer's bytes as a program instead: most bytes pick a
//! fragment of the format (a table header, a key with a plausible or hostile value), the others are
//! written as they are. Every input is still reachable, and the mutations a coverage-guided fuzzer
//! makes move whole fragments about.

/// Bytes at or above this are written as they are (as a `char`); below it they pick a fragment.
const RAW_FROM: u8 = 0xE0;

/// The text `input` stands for, built from `fragments`.
pub fn assemble(input: &[u8], fragments: &[&str]) -> String {
    let mut text = String::new();
    for &byte in input {
        match fragments.len() {
            0 => text.push(char::from(byte)),
            n if byte < RAW_FROM => text.push_str(fragments[usize::from(byte) % n]),
            _ => text.push(char::from(byte - RAW_FROM + b' ')),
        }
    }
    text
}

/// Splits a fuzzer's bytes at the first `marker` byte: the part before it and the part after it
/// (empty when there is none), for targets that take two inputs (a pattern and a URL, routes and a
/// path).
pub fn split_at_marker(input: &[u8], marker: u8) -> (&[u8], &[u8]) {
    match input.iter().position(|b| *b == marker) {
        Some(cut) => (&input[..cut], &input[cut + 1..]),
        None => (input, &[]),
    }
}

#[cfg(test)]
mod tests {
    use super::assemble;

    #[test]
    fn bytes_pick_fragments_or_stand_for_themselves() {
        assert_eq!(assemble(&[0, 1, 2], &["a", "b"]), "aba");
        assert_eq!(assemble(&[RAW_FROM_TEST, 1], &["a", "b"]), " b");
        assert_eq!(assemble(b"x", &[]), "x");
        assert_eq!(super::split_at_marker(&[1, 0xFF, 2, 0xFF], 0xFF), (&[1][..], &[2, 0xFF][..]));
        assert_eq!(super::split_at_marker(&[1], 0xFF), (&[1][..], &[][..]));
    }

    const RAW_FROM_TEST: u8 = super::RAW_FROM;
}
