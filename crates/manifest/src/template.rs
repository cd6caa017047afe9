//! `{{ name }}` templates, as used in component variables and `allowed_outbound_hosts`.

use std::fmt;

use crate::names::variable_name_problem;

/// A parsed template: literal text and `{{ variable }}` references.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Template {
    parts: Vec<Part>,
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Part {
    Literal(String),
    Variable(String),
}

#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum TemplateError {
    #[error("`{{{{` at byte {offset} has no closing `}}}}`")]
    Unclosed { offset: usize },
    #[error("`{{{{ {name} }}}}` is not a valid variable name: {reason}")]
    InvalidName { name: String, reason: String },
}

impl Template {
    /// Parses `text`. Like Spin, a lone `}}` is literal text and whitespace inside braces is
    /// ignored; unlike Spin, the name is checked here so typos are caught at load time.
    pub fn parse(text: &str) -> Result<Template, TemplateError> {
        let mut parts = Vec::new();
        let mut rest = text;
        while !rest.is_empty() {
            let Some(open) = rest.find("{{") else {
                parts.push(Part::Literal(rest.to_string()));
                break;
            };
            if open > 0 {
                parts.push(Part::Literal(rest[..open].to_string()));
            }
            let after = &rest[open + 2..];
            let offset = text.len() - rest.len() + open;
            let close = after.find("}}").ok_or(TemplateError::Unclosed { offset })?;
            parts.push(Part::Variable(checked_name(after[..close].trim())?));
            rest = &after[close + 2..];
        }
        Ok(Template { parts })
    }

    pub fn parts(&self) -> &[Part] {
        &self.parts
    }

    /// The variable names referenced, in order (with repeats).
    pub fn variables(&self) -> impl Iterator<Item = &str> {
        self.parts.iter().filter_map(|p| match p {
            Part::Variable(name) => Some(name.as_str()),
            Part::Literal(_) => None,
        })
    }

    pub fn is_literal(&self) -> bool {
        self.variables().next().is_none()
    }

    /// Substitutes each variable with `lookup(name)`; `Err(name)` for the first name without a
    /// value.
    pub fn render(&self, mut lookup: impl FnMut(&str) -> Option<String>) -> Result<String, String> {
        let mut out = String::new();
        for part in &self.parts {
            match part {
                Part::Literal(text) => out.push_str(text),
                Part::Variable(name) => out.push_str(&lookup(name).ok_or_else(|| name.clone())?),
            }
        }
        Ok(out)
    }
}

fn checked_name(name: &str) -> Result<String, TemplateError> {
    let reason = if name.is_empty() {
        Some("empty name".to_string())
    } else {
        variable_name_problem(name)
    };
    match reason {
        Some(reason) => Err(TemplateError::InvalidName {
            name: name.to_string(),
            reason,
        }),
        None => Ok(name.to_string()),
    }
}

impl fmt::Display for Template {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        for part in &self.parts {
            match part {
                Part::Literal(text) => f.write_str(text)?,
                Part::Variable(name) => write!(f, "{{{{ {name} }}}}")?,
            }
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn lit(s: &str) -> Part {
        Part::Literal(s.into())
    }
    fn var(s: &str) -> Part {
        Part::Variable(s.into())
    }

    #[test]
    fn parses_parts() {
        let cases: [(&str, Vec<Part>); 5] = [
            ("", vec![]),
            ("plain", vec![lit("plain")]),
            ("a-{{ x }}-b", vec![lit("a-"), var("x"), lit("-b")]),
            ("{{x}}{{ y_2 }}", vec![var("x"), var("y_2")]),
            ("lone }} brace", vec![lit("lone }} brace")]),
        ];
        for (text, expected) in cases {
            assert_eq!(
                Template::parse(text).unwrap().parts(),
                expected.as_slice(),
                "{text}"
            );
        }
    }

    #[test]
    fn rejects_unclosed_and_bad_names() {
        assert_eq!(
            Template::parse("a {{ b").unwrap_err(),
            TemplateError::Unclosed { offset: 2 }
        );
        assert!(matches!(
            Template::parse("{{ Bad }}"),
            Err(TemplateError::InvalidName { .. })
        ));
        assert!(matches!(
            Template::parse("{{ }}"),
            Err(TemplateError::InvalidName { .. })
        ));
        assert!(matches!(
            Template::parse("{{ a-b }}"),
            Err(TemplateError::InvalidName { .. })
        ));
    }

    #[test]
    fn renders_and_reports_missing() {
        let t = Template::parse("redis://{{ host }}:{{port}}").unwrap();
        assert_eq!(t.variables().collect::<Vec<_>>(), ["host", "port"]);
        let ok = t.render(|n| Some(format!("<{n}>"))).unwrap();
        assert_eq!(ok, "redis://<host>:<port>");
        assert_eq!(
            t.render(|n| (n == "host").then(|| "h".into())),
            Err("port".into())
        );
        assert_eq!(t.to_string(), "redis://{{ host }}:{{ port }}");
        assert!(Template::parse("x").unwrap().is_literal());
    }
}
