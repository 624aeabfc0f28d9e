//! Templates of the Salesforce connector's settings: `{field}` placeholders filled from the task
//! input, in a record id (a path segment, encoded by the URL) or in SOQL (as SOQL literals,
//! escaped, never pasted raw).

use serde_json::Value;

use crate::connector::CallError;

/// The placeholder that stands for the call's idempotency key rather than an input field.
pub(super) const IDEMPOTENCY_KEY: &str = "idempotency_key";

/// A parsed template: literal text and placeholders.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(super) struct Template {
    parts: Vec<Part>,
}

#[derive(Clone, Debug, PartialEq, Eq)]
enum Part {
    Literal(String),
    Placeholder(String),
}

impl Template {
    /// Parses a template; braces only delimit placeholders, which name a field.
    pub(super) fn parse(template: &str) -> Result<Template, String> {
        let mut parts = Vec::new();
        let mut rest = template;
        while let Some(open) = rest.find(['{', '}']) {
            let at = template.len() - rest.len() + open;
            if rest[open..].starts_with('}') {
                return Err(format!("`}}` without `{{` at byte {at}"));
            }
            if open > 0 {
                parts.push(Part::Literal(rest[..open].to_owned()));
            }
            let after = &rest[open + 1..];
            let close = after
                .find(['{', '}'])
                .filter(|&i| after[i..].starts_with('}'))
                .ok_or_else(|| format!("unclosed `{{` at byte {at}"))?;
            let name = after[..close].trim();
            if name.is_empty() {
                return Err(format!("empty placeholder at byte {at}"));
            }
            parts.push(Part::Placeholder(name.to_owned()));
            rest = &after[close + 1..];
        }
        if !rest.is_empty() {
            parts.push(Part::Literal(rest.to_owned()));
        }
        Ok(Template { parts })
    }

    /// Returns the input fields the placeholders name (not the idempotency key).
    pub(super) fn fields(&self) -> impl Iterator<Item = &str> {
        self.parts.iter().filter_map(|p| match p {
            Part::Placeholder(name) if name != IDEMPOTENCY_KEY => Some(name.as_str()),
            _ => None,
        })
    }

    /// Refuses a placeholder written inside a quoted SOQL string (`'{name}'`): it becomes a
    /// quoted literal itself, and quoting it again would make it text of the query.
    pub(super) fn check_soql(&self) -> Result<(), String> {
        let mut quoted = false;
        for part in &self.parts {
            match part {
                Part::Literal(text) => {
                    let mut escaped = false;
                    for c in text.chars() {
                        if escaped {
                            escaped = false;
                            continue;
                        }
                        match c {
                            '\\' if quoted => escaped = true,
                            '\'' => quoted = !quoted,
                            _ => {}
                        }
                    }
                }
                Part::Placeholder(name) if quoted => {
                    return Err(format!(
                        "placeholder {{{name}}} is inside quotes: a placeholder becomes a quoted \
                         SOQL literal itself, so write it without quotes"
                    ));
                }
                Part::Placeholder(_) => {}
            }
        }
        if quoted {
            return Err("a quoted string is not closed".to_owned());
        }
        Ok(())
    }

    /// Renders the template: the idempotency key and each field of the input through `render`.
    fn render(
        &self,
        input: &Value,
        idempotency_key: &str,
        setting: &str,
        value: impl Fn(&str, &Value) -> Result<String, CallError>,
    ) -> Result<String, CallError> {
        let mut out = String::new();
        for part in &self.parts {
            match part {
                Part::Literal(text) => out.push_str(text),
                Part::Placeholder(name) if name == IDEMPOTENCY_KEY => {
                    out.push_str(&value(name, &Value::String(idempotency_key.to_owned()))?);
                }
                Part::Placeholder(name) => {
                    let field = input.get(name).ok_or_else(|| {
                        CallError::Permanent(format!("{setting}: the input has no field {name}"))
                    })?;
                    out.push_str(&value(name, field)?);
                }
            }
        }
        Ok(out)
    }

    /// Renders a record id or external id value: a string, a number or a boolean, as text.
    pub(super) fn render_id(
        &self,
        input: &Value,
        idempotency_key: &str,
    ) -> Result<String, CallError> {
        let id = self.render(input, idempotency_key, "id", |name, value| match value {
            Value::String(s) => Ok(s.clone()),
            Value::Number(n) => Ok(n.to_string()),
            Value::Bool(b) => Ok(b.to_string()),
            _ => Err(CallError::Permanent(format!(
                "id: the input field {name} is not a string, number or boolean"
            ))),
        })?;
        if id.is_empty() {
            return Err(CallError::Permanent(
                "id: the record id is empty".to_owned(),
            ));
        }
        Ok(id)
    }

    /// Renders a SOQL statement, each placeholder as a SOQL literal of its value.
    pub(super) fn render_soql(
        &self,
        input: &Value,
        idempotency_key: &str,
    ) -> Result<String, CallError> {
        self.render(input, idempotency_key, "soql", |name, value| {
            soql_literal(value)
                .map_err(|why| CallError::Permanent(format!("soql: the input field {name} {why}")))
        })
    }
}

/// Writes a JSON value as a SOQL literal: a string quoted with its quotes, backslashes and
/// control characters escaped (SOQL's "Quoted String Escape Sequences"), a number or boolean as
/// itself, `null` as `null`, and an array of those as `(a, b)` for `IN`.
pub(super) fn soql_literal(value: &Value) -> Result<String, String> {
    match value {
        Value::Null => Ok("null".to_owned()),
        Value::Bool(b) => Ok(b.to_string()),
        Value::Number(n) => Ok(n.to_string()),
        Value::String(s) => soql_string(s),
        Value::Array(items) if items.is_empty() => {
            Err("is an empty list, which SOQL cannot write".to_owned())
        }
        Value::Array(items) => {
            let mut literals = Vec::with_capacity(items.len());
            for item in items {
                if item.is_array() || item.is_object() {
                    return Err("is a list of lists or objects".to_owned());
                }
                literals.push(soql_literal(item)?);
            }
            Ok(format!("({})", literals.join(", ")))
        }
        Value::Object(_) => Err("is an object, which is no SOQL literal".to_owned()),
    }
}

fn soql_string(s: &str) -> Result<String, String> {
    let mut out = String::with_capacity(s.len() + 2);
    out.push('\'');
    for c in s.chars() {
        match c {
            '\'' => out.push_str("\\'"),
            '"' => out.push_str("\\\""),
            '\\' => out.push_str("\\\\"),
            '\n' => out.push_str("\\n"),
            '\r' => out.push_str("\\r"),
            '\t' => out.push_str("\\t"),
            '\u{8}' => out.push_str("\\b"),
            '\u{c}' => out.push_str("\\f"),
            c if c.is_control() => {
                return Err(format!(
                    "holds the control character U+{:04X}, which SOQL has no escape for",
                    c as u32
                ));
            }
            c => out.push(c),
        }
    }
    out.push('\'');
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn strings_are_quoted_and_escaped() {
        let literal = soql_literal(&json!("O'Brien \\ \"x\"\n' OR Name != '")).unwrap();
        assert_eq!(literal, r#"'O\'Brien \\ \"x\"\n\' OR Name != \''"#);
    }

    #[test]
    fn lists_become_in_lists_and_objects_are_refused() {
        assert_eq!(
            soql_literal(&json!(["a", 1, true])).unwrap(),
            "('a', 1, true)"
        );
        assert!(soql_literal(&json!({"a": 1})).is_err());
        assert!(soql_literal(&json!([])).is_err());
    }

    #[test]
    fn placeholders_inside_quotes_are_refused() {
        let quoted = Template::parse("SELECT Id FROM Account WHERE Name = '{name}'").unwrap();
        assert!(quoted.check_soql().is_err());
        let escaped = Template::parse(r"SELECT Id FROM A WHERE N = 'it\'s' AND M = {m}").unwrap();
        assert_eq!(escaped.check_soql(), Ok(()));
    }
}
