//! Identifier rules, matching Spin's: component ids are kebab-case `Id`s, store/database labels are
//! kebab- or snake-case `Id`s, variable names follow Spin's variable `Key` rule.

/// Variable names (application and component): `[a-z][a-z0-9_]*`, ending in a letter or digit,
/// no `__`. This is Spin's runtime key rule, stricter than its manifest id rule (which also lets
/// `:` through), so a name the manifest accepts is always usable at runtime.
pub fn is_valid_variable_name(name: &str) -> bool {
    variable_name_problem(name).is_none()
}

/// Why `name` is not a valid variable name, or None if it is.
pub fn variable_name_problem(name: &str) -> Option<String> {
    let Some(first) = name.bytes().next() else {
        return Some("must not be empty".into());
    };
    if let Some(bad) = name
        .chars()
        .find(|c| !(c.is_ascii_lowercase() || c.is_ascii_digit() || *c == '_'))
    {
        return Some(format!(
            "invalid character {bad:?}; use lower-case letters, digits and `_`"
        ));
    }
    if !first.is_ascii_lowercase() {
        return Some("must start with a lower-case letter".into());
    }
    if name.ends_with('_') {
        return Some("must end with a letter or digit".into());
    }
    if name.contains("__") {
        return Some("must not contain `__`".into());
    }
    None
}

/// Component ids: kebab-case words (`my-component`, `api-v2`).
pub fn is_valid_component_id(id: &str) -> bool {
    component_id_problem(id).is_none()
}

pub fn component_id_problem(id: &str) -> Option<String> {
    id_problem(id, '-', false)
}

/// Key-value store and SQLite database labels: kebab-case or snake_case ids.
pub fn is_valid_label(label: &str) -> bool {
    id_problem(label, '-', false).is_none() || id_problem(label, '_', false).is_none()
}

/// Spin's `Id<DELIM, LOWER>` rule: non-empty words separated by `delim`; the first word starts
/// with a letter, later words with a letter or digit; a word is all lower-case or all upper-case
/// alphanumerics (`:` allowed inside a word).
fn id_problem(id: &str, delim: char, lower_only: bool) -> Option<String> {
    if id.is_empty() {
        return Some("must not be empty".into());
    }
    let wrong = if delim == '-' { '_' } else { '-' };
    if id.contains(wrong) {
        return Some(format!(
            "words must be separated with {delim:?}, not {wrong:?}"
        ));
    }
    id.split(delim)
        .enumerate()
        .find_map(|(i, word)| word_problem(word, i == 0, delim, lower_only))
}

fn word_problem(word: &str, is_first: bool, delim: char, lower_only: bool) -> Option<String> {
    let mut chars = word.chars();
    let Some(first) = chars.next() else {
        return Some(format!("{delim:?}-separated words must not be empty"));
    };
    if !(first.is_ascii_alphabetic() || (!is_first && first.is_ascii_digit())) {
        return Some(format!(
            "words must start with an ASCII letter (got {first:?})"
        ));
    }
    let upper = first.is_ascii_uppercase();
    for c in chars {
        if c.is_ascii_digit() || c == ':' {
            continue;
        }
        if !c.is_ascii_alphanumeric() {
            return Some(format!(
                "only ASCII letters and digits are allowed (got {c:?})"
            ));
        }
        if c.is_ascii_uppercase() != upper {
            return Some(format!("word {word:?} mixes upper and lower case"));
        }
    }
    (lower_only && upper).then(|| "must be lower-case".into())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn variable_names() {
        for good in ["a", "abc", "a1b2c3", "a_1", "a_1_b_3", "api_token"] {
            assert!(is_valid_variable_name(good), "{good}");
        }
        for bad in [
            "",
            "aX",
            "1bc",
            "_x",
            "x.y",
            "x_",
            "a__b",
            "x-y",
            "invalid-name",
            "invalid!name",
            "4invalidname",
        ] {
            assert!(!is_valid_variable_name(bad), "{bad}");
        }
    }

    #[test]
    fn component_ids() {
        for good in ["a", "hello", "my-component", "api-v2", "a-1", "UPPER-lower"] {
            assert!(is_valid_component_id(good), "{good}");
        }
        for bad in [
            "",
            "my_component",
            "-a",
            "a-",
            "a--b",
            "1a",
            "Mixed",
            "a.b",
            "a b",
        ] {
            assert!(!is_valid_component_id(bad), "{bad}");
        }
    }

    #[test]
    fn labels() {
        for good in ["default", "my-store", "my_store", "cache2"] {
            assert!(is_valid_label(good), "{good}");
        }
        for bad in ["", "my store", "a-b_c", "-x", "x/y"] {
            assert!(!is_valid_label(bad), "{bad}");
        }
    }
}
