//! Where the message connectors publish (a NATS subject, an AMQP routing key, an MQTT topic), as a
//! template whose `{field}` placeholders the task input fills.
//!
//! A placeholder's value is one token: it may not contain the kind's separators and wildcards
//! (`forbidden`) nor whitespace, so that an input can never widen or redirect a publish (an order
//! id of `a.>` does not become a NATS wildcard).

use serde_json::Value;

use crate::connector::CallError;
use crate::settings::SettingsError;

/// A parsed destination setting.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) struct TopicTemplate {
    setting: &'static str,
    parts: Vec<Part>,
    forbidden: &'static [char],
}

#[derive(Clone, Debug, PartialEq, Eq)]
enum Part {
    Literal(String),
    Placeholder(String),
}

/// Why a template does not parse.
#[derive(Debug, thiserror::Error)]
#[error("{0}")]
struct TemplateProblem(String);

impl TopicTemplate {
    /// Parses `text`, the value of `setting`; braces only delimit non-empty placeholders.
    pub(crate) fn parse(
        setting: &'static str,
        text: &str,
        forbidden: &'static [char],
    ) -> Result<TopicTemplate, SettingsError> {
        let problem = |p: String| SettingsError::malformed(setting, TemplateProblem(p));
        let mut parts = Vec::new();
        let mut rest = text;
        while let Some(open) = rest.find(['{', '}']) {
            let at = text.len() - rest.len() + open;
            if rest[open..].starts_with('}') {
                return Err(problem(format!("`}}` without `{{` at byte {at}")));
            }
            if open > 0 {
                parts.push(Part::Literal(rest[..open].to_owned()));
            }
            let after = &rest[open + 1..];
            let close = after
                .find(['{', '}'])
                .filter(|&i| after[i..].starts_with('}'))
                .ok_or_else(|| problem(format!("unclosed `{{` at byte {at}")))?;
            let name = after[..close].trim();
            if name.is_empty() {
                return Err(problem(format!("empty placeholder at byte {at}")));
            }
            parts.push(Part::Placeholder(name.to_owned()));
            rest = &after[close + 1..];
        }
        if !rest.is_empty() {
            parts.push(Part::Literal(rest.to_owned()));
        }
        Ok(TopicTemplate {
            setting,
            parts,
            forbidden,
        })
    }

    /// Fills every placeholder with `sample`, so that a kind can check the literal parts at load
    /// time.
    pub(crate) fn sample(&self, sample: &str) -> String {
        self.parts
            .iter()
            .map(|part| match part {
                Part::Literal(text) => text.as_str(),
                Part::Placeholder(_) => sample,
            })
            .collect()
    }

    /// Fills the placeholders from the input's top-level fields (strings, numbers, booleans);
    /// a missing field or a value that is not one token fails the call permanently.
    pub(crate) fn render(&self, input: &Value) -> Result<String, CallError> {
        let setting = self.setting;
        let mut out = String::new();
        for part in &self.parts {
            match part {
                Part::Literal(text) => out.push_str(text),
                Part::Placeholder(name) => {
                    let value = match input.get(name) {
                        Some(Value::String(s)) => s.clone(),
                        Some(Value::Number(n)) => n.to_string(),
                        Some(Value::Bool(b)) => b.to_string(),
                        Some(_) => {
                            return Err(CallError::Permanent(format!(
                                "{setting}: placeholder {{{name}}}: the input field is not a string, number or boolean"
                            )));
                        }
                        None => {
                            return Err(CallError::Permanent(format!(
                                "{setting}: placeholder {{{name}}}: the input has no field {name}"
                            )));
                        }
                    };
                    if value.is_empty()
                        || value
                            .chars()
                            .any(|c| c.is_whitespace() || c == '\0' || self.forbidden.contains(&c))
                    {
                        let forbidden: String = self.forbidden.iter().collect();
                        return Err(CallError::Permanent(format!(
                            "{setting}: placeholder {{{name}}}: the value must be non-empty, without \
                             whitespace or any of `{forbidden}`"
                        )));
                    }
                    out.push_str(&value);
                }
            }
        }
        Ok(out)
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]

    use serde_json::json;

    use super::*;

    #[test]
    fn placeholders_are_filled_with_single_tokens_only() {
        let t = TopicTemplate::parse("subject", "orders.{region}.{id}", &['.', '*', '>']).unwrap();
        assert_eq!(t.sample("x"), "orders.x.x");
        assert_eq!(
            t.render(&json!({"region": "eu", "id": 7})).unwrap(),
            "orders.eu.7"
        );
        let wildcard = t.render(&json!({"region": "eu", "id": "a.>"})).unwrap_err();
        assert!(!wildcard.is_retryable());
        assert!(wildcard.message().contains("{id}"), "{wildcard}");
        let missing = t.render(&json!({"region": "eu"})).unwrap_err();
        assert!(missing.message().contains("no field id"), "{missing}");
    }

    #[test]
    fn malformed_templates_name_the_setting() {
        for bad in ["a.{", "a.}", "a.{ }"] {
            let e = TopicTemplate::parse("topic", bad, &['/']).unwrap_err();
            assert_eq!(e.setting(), "topic", "{bad}");
        }
    }
}
