//! NATS subject syntax: validation and wildcard matching (`*` one token, `>` one or more trailing
//! tokens).

use crate::MessagingError;

/// Longest subject Kiln accepts (NATS itself has no hard limit; this keeps guests from sending
/// megabyte subjects).
pub const MAX_SUBJECT_LEN: usize = 1024;

fn check_common(subject: &str) -> Result<(), MessagingError> {
    let invalid = |why: &'static str| Err(MessagingError::InvalidSubject(subject.chars().take(100).collect(), why));
    if subject.is_empty() {
        return invalid("it is empty");
    }
    if subject.len() > MAX_SUBJECT_LEN {
        return invalid("it is longer than 1024 bytes");
    }
    if subject.chars().any(|c| c.is_whitespace() || c.is_control()) {
        return invalid("it contains whitespace or control characters");
    }
    if subject.split('.').any(str::is_empty) {
        return invalid("it has an empty token (`..`, or a leading or trailing `.`)");
    }
    Ok(())
}

/// A subject a message can be published to: no wildcards.
pub fn check_publish_subject(subject: &str) -> Result<(), MessagingError> {
    check_common(subject)?;
    if subject.split('.').any(|t| t == "*" || t == ">") {
        return Err(MessagingError::InvalidSubject(subject.to_string(), "wildcards (`*`, `>`) cannot be published to"));
    }
    Ok(())
}

/// A subscription pattern: `*` stands for one token, `>` (last token only) for the rest.
pub fn check_pattern(pattern: &str) -> Result<(), MessagingError> {
    check_common(pattern)?;
    let tokens: Vec<&str> = pattern.split('.').collect();
    for (i, token) in tokens.iter().enumerate() {
        if *token == ">" && i + 1 != tokens.len() {
            return Err(MessagingError::InvalidSubject(pattern.to_string(), "`>` may only be the last token"));
        }
        if token.len() > 1 && (token.contains('*') || token.contains('>')) {
            return Err(MessagingError::InvalidSubject(pattern.to_string(), "wildcards must be whole tokens (`a.*.c`, not `a.b*`)"));
        }
    }
    Ok(())
}

/// Whether `subject` (concrete) matches `pattern` (may have wildcards).
pub fn matches(pattern: &str, subject: &str) -> bool {
    let mut p = pattern.split('.');
    let mut s = subject.split('.');
    loop {
        match (p.next(), s.next()) {
            (Some(">"), Some(_)) => return true,
            (Some("*"), Some(_)) => {}
            (Some(pt), Some(st)) if pt == st => {}
            (None, None) => return true,
            _ => return false,
        }
    }
}

/// Whether every subject matched by `inner` is also matched by `outer` (used to find a JetStream
/// stream covering a trigger's subject).
pub fn covers(outer: &str, inner: &str) -> bool {
    let o: Vec<&str> = outer.split('.').collect();
    let i: Vec<&str> = inner.split('.').collect();
    for (index, ot) in o.iter().enumerate() {
        if *ot == ">" {
            return i.len() > index;
        }
        let Some(it) = i.get(index) else { return false };
        match (*ot, *it) {
            ("*", ">") => return false,
            ("*", _) => {}
            (a, b) if a == b => {}
            _ => return false,
        }
    }
    o.len() == i.len()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn wildcards_match_like_nats() {
        assert!(matches("orders.created", "orders.created"));
        assert!(!matches("orders.created", "orders.deleted"));
        assert!(matches("orders.*", "orders.created"));
        assert!(!matches("orders.*", "orders"));
        assert!(!matches("orders.*", "orders.created.eu"));
        assert!(matches("orders.>", "orders.created"));
        assert!(matches("orders.>", "orders.created.eu"));
        assert!(!matches("orders.>", "orders"));
        assert!(matches("*.created", "orders.created"));
        assert!(matches("*.*.eu", "orders.created.eu"));
        assert!(matches(">", "anything.at.all"));
        assert!(!matches("orders.created", "orders.created.eu"));
        assert!(!matches("orders.created.eu", "orders.created"));
    }

    #[test]
    fn subjects_and_patterns_are_validated() {
        for ok in ["a", "orders.created", "_INBOX.abc.def", "a-b_c.d:e"] {
            check_publish_subject(ok).unwrap();
            check_pattern(ok).unwrap();
        }
        for bad in ["", "a..b", ".a", "a.", "a b", "a\tb", "a.\n"] {
            assert!(check_publish_subject(bad).is_err(), "{bad:?}");
            assert!(check_pattern(bad).is_err(), "{bad:?}");
        }
        for wildcard in ["a.*", "a.>", ">", "*"] {
            assert!(check_publish_subject(wildcard).is_err());
            check_pattern(wildcard).unwrap();
        }
        for bad in ["a.>.b", "a.b*", "a.>b"] {
            assert!(check_pattern(bad).is_err(), "{bad}");
        }
        assert!(check_publish_subject(&"a".repeat(2000)).is_err());
    }

    #[test]
    fn coverage() {
        assert!(covers("orders.>", "orders.*"));
        assert!(covers("orders.>", "orders.created.eu"));
        assert!(covers("orders.*", "orders.created"));
        assert!(covers("orders.*", "orders.*"));
        assert!(!covers("orders.*", "orders.>"));
        assert!(!covers("orders.created", "orders.*"));
        assert!(!covers("orders.*", "orders.a.b"));
        assert!(covers(">", "x.y"));
        assert!(!covers("orders.>", "orders"));
    }
}
