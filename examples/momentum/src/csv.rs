//! The computation, apart from any I/O so that it is tested natively (`cargo test`).

use std::fmt;

/// Why an input is refused: the line (1-based) and what is wrong with it.
#[derive(Debug, PartialEq)]
pub struct BadRow {
    pub line: usize,
    pub reason: String,
}

impl fmt::Display for BadRow {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "line {}: {}", self.line, self.reason)
    }
}

/// The result CSV for `input`: the header `mass,velocity,momentum`, then each row with its
/// momentum (mass × velocity). An optional `mass,velocity` header and blank lines are skipped;
/// `\r\n` line ends are accepted. Values are kept as written; the momentum is the shortest decimal
/// that reads back as the same `f64`.
pub fn momentum(input: &[u8]) -> Result<String, BadRow> {
    let text = std::str::from_utf8(input).map_err(|err| {
        let line = input[..err.valid_up_to()].iter().filter(|b| **b == b'\n').count() + 1;
        BadRow { line, reason: "not UTF-8 text".into() }
    })?;
    let mut out = String::from("mass,velocity,momentum\n");
    for (index, line) in text.lines().enumerate() {
        let number = index + 1;
        let line = line.trim();
        if line.is_empty() || (number == 1 && is_header(line)) {
            continue;
        }
        let fields: Vec<&str> = line.split(',').map(str::trim).collect();
        let [mass, velocity] = fields[..] else {
            return Err(BadRow { line: number, reason: format!("expected two values `mass,velocity`, found {} in `{}`", fields.len(), shorten(line)) });
        };
        let m = value(mass, "mass", number)?;
        let v = value(velocity, "velocity", number)?;
        if m < 0.0 {
            return Err(BadRow { line: number, reason: format!("mass `{mass}` is negative") });
        }
        let p = m * v;
        if !p.is_finite() {
            return Err(BadRow { line: number, reason: format!("momentum of `{mass}` × `{velocity}` is out of range") });
        }
        out.push_str(&format!("{mass},{velocity},{p}\n"));
    }
    Ok(out)
}

fn is_header(line: &str) -> bool {
    let fields: Vec<String> = line.split(',').map(|f| f.trim().to_ascii_lowercase()).collect();
    fields == ["mass", "velocity"]
}

fn value(text: &str, what: &str, line: usize) -> Result<f64, BadRow> {
    match text.parse::<f64>() {
        Ok(n) if n.is_finite() => Ok(n),
        _ => Err(BadRow { line, reason: format!("{what} `{}` is not a number", shorten(text)) }),
    }
}

/// At most 60 characters of what the user wrote, for an error message.
fn shorten(text: &str) -> String {
    if text.chars().count() <= 60 { text.to_string() } else { format!("{}…", text.chars().take(60).collect::<String>()) }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rows_header_and_blank_lines() {
        let out = momentum(b"mass,velocity\r\n2,3\n\n0.5, -4\n1e3,2.5\n").unwrap();
        assert_eq!(out, "mass,velocity,momentum\n2,3,6\n0.5,-4,-2\n1e3,2.5,2500\n");
        assert_eq!(momentum(b"").unwrap(), "mass,velocity,momentum\n");
    }

    #[test]
    fn bad_rows_name_their_line() {
        let err = |input: &str| momentum(input.as_bytes()).unwrap_err().to_string();
        assert_eq!(err("1,2\n3\n"), "line 2: expected two values `mass,velocity`, found 1 in `3`");
        assert_eq!(err("1,2\n\n3,x\n"), "line 3: velocity `x` is not a number");
        assert_eq!(err("mass,velocity\nNaN,1\n"), "line 2: mass `NaN` is not a number");
        assert_eq!(err("-1,2\n"), "line 1: mass `-1` is negative");
        assert_eq!(err("1e300,1e300\n"), "line 1: momentum of `1e300` × `1e300` is out of range");
        assert_eq!(momentum(b"1,2\n\xff\n").unwrap_err().line, 2);
    }
}
