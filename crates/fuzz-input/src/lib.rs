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

#[cfg(test)]
mod tests {
    use super::assemble;

    #[test]
    fn bytes_pick_fragments_or_stand_for_themselves() {
        assert_eq!(assemble(&[0, 1, 2], &["a", "b"]), "aba");
        assert_eq!(assemble(&[RAW_FROM_TEST, 1], &["a", "b"]), " b");
        assert_eq!(assemble(b"x", &[]), "x");
    }

    const RAW_FROM_TEST: u8 = super::RAW_FROM;
}
