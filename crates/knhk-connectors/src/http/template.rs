//! URL templates of the HTTP connector: `{name}` placeholders filled from the input, percent-encoded.

use std::fmt::Write as _;

use crate::connector::CallError;

/// The placeholder that stands for the call's idempotency key rather than an input field.
const IDEMPOTENCY_KEY: &str = "idempotency_key";

/// Why a `url` setting is not a template; `at` is a byte offset into it.
#[derive(Clone, Copy, Debug, PartialEq, Eq, thiserror::Error)]
pub(crate) enum TemplateError {
    #[error("`}}` without `{{` at byte {at}")]
    CloseWithoutOpen { at: usize },
    #[error("unclosed `{{` at byte {at}")]
    Unclosed { at: usize },
    #[error("empty placeholder at byte {at}")]
    EmptyPlaceholder { at: usize },
}

/// A parsed `url` setting.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) struct UrlTemplate {
    parts: Vec<Part>,
}

#[derive(Clone, Debug, PartialEq, Eq)]
enum Part {
    Literal(String),
    Placeholder(String),
}

impl UrlTemplate {
    /// Parses a template; braces only delimit placeholders, which are non-empty.
    pub(crate) fn parse(template: &str) -> Result<UrlTemplate, TemplateError> {
        let mut parts = Vec::new();
        let mut rest = template;
        while let Some(open) = rest.find(['{', '}']) {
            if rest[open..].starts_with('}') {
                return Err(TemplateError::CloseWithoutOpen {
                    at: offset(template, rest) + open,
                });
            }
            if open > 0 {
                parts.push(Part::Literal(rest[..open].to_owned()));
            }
            let after = &rest[open + 1..];
            let Some(close) = after
                .find(['{', '}'])
                .filter(|&i| after[i..].starts_with('}'))
            else {
                return Err(TemplateError::Unclosed {
                    at: offset(template, rest) + open,
                });
            };
            let name = after[..close].trim();
            if name.is_empty() {
                return Err(TemplateError::EmptyPlaceholder {
                    at: offset(template, rest) + open,
                });
            }
            parts.push(Part::Placeholder(name.to_owned()));
            rest = &after[close + 1..];
        }
        if !rest.is_empty() {
            parts.push(Part::Literal(rest.to_owned()));
        }
        Ok(UrlTemplate { parts })
    }

    /// Fills every placeholder with `sample`, to check at load time that the result is a URL.
    pub(crate) fn render_sample(&self, sample: &str) -> String {
        self.parts
            .iter()
            .map(|part| match part {
                Part::Literal(text) => text.as_str(),
                Part::Placeholder(_) => sample,
            })
            .collect()
    }

    /// Fills the placeholders from the input's top-level fields and the idempotency key.
    pub(crate) fn render(
        &self,
        input: &serde_json::Value,
        idempotency_key: &str,
    ) -> Result<String, CallError> {
        let mut url = String::new();
        for part in &self.parts {
            match part {
                Part::Literal(text) => url.push_str(text),
                Part::Placeholder(name) if name == IDEMPOTENCY_KEY => {
                    percent_encode_into(&mut url, idempotency_key);
                }
                Part::Placeholder(name) => {
                    let value = input.get(name).ok_or_else(|| {
                        CallError::Permanent(format!(
                            "url: unknown placeholder {{{name}}}: the input has no field {name}"
                        ))
                    })?;
                    let text = match value {
                        serde_json::Value::String(s) => s.clone(),
                        serde_json::Value::Number(n) => n.to_string(),
                        serde_json::Value::Bool(b) => b.to_string(),
                        _ => {
                            return Err(CallError::Permanent(format!(
                                "url: placeholder {{{name}}}: the input field is not a string, number or boolean"
                            )));
                        }
                    };
                    percent_encode_into(&mut url, &text);
                }
            }
        }
        Ok(url)
    }
}

fn offset(whole: &str, rest: &str) -> usize {
    whole.len() - rest.len()
}

/// Encodes everything but RFC 3986's unreserved characters, so a value stays one path segment or
/// one query value whatever it holds.
fn percent_encode_into(out: &mut String, value: &str) {
    for byte in value.bytes() {
        if byte.is_ascii_alphanumeric() || matches!(byte, b'-' | b'.' | b'_' | b'~') {
            out.push(char::from(byte));
        } else {
            // Writing to a String cannot fail.
            let _ = write!(out, "%{byte:02X}");
        }
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]

    use serde_json::json;

    use super::*;

    #[test]
    fn fills_placeholders_percent_encoded() {
        let t = UrlTemplate::parse("http://h/orders/{id}/x?k={idempotency_key}&n={n}").unwrap();
        let url = t
            .render(&json!({"id": "a b/ü", "n": 7}), "case/task/1")
            .unwrap();
        assert_eq!(
            url,
            "http://h/orders/a%20b%2F%C3%BC/x?k=case%2Ftask%2F1&n=7"
        );
    }

    #[test]
    fn rejects_malformed_templates() {
        let cases = [
            (
                "http://h/{id",
                TemplateError::Unclosed { at: 9 },
                "unclosed `{` at byte 9",
            ),
            (
                "http://h/{a{b}",
                TemplateError::Unclosed { at: 9 },
                "unclosed `{` at byte 9",
            ),
            (
                "http://h/}",
                TemplateError::CloseWithoutOpen { at: 9 },
                "`}` without `{` at byte 9",
            ),
            (
                "http://h/{}",
                TemplateError::EmptyPlaceholder { at: 9 },
                "empty placeholder at byte 9",
            ),
        ];
        for (template, error, message) in cases {
            let err = UrlTemplate::parse(template).unwrap_err();
            assert_eq!(err, error, "{template}");
            assert_eq!(err.to_string(), message, "{template}");
        }
    }

    #[test]
    fn unknown_placeholder_and_non_scalar_fields_are_permanent() {
        let t = UrlTemplate::parse("http://h/{missing}").unwrap();
        let err = t.render(&json!({"other": 1}), "k").unwrap_err();
        assert!(!err.is_retryable());
        assert!(err.message().contains("{missing}"), "{err}");

        let t = UrlTemplate::parse("http://h/{obj}").unwrap();
        let err = t.render(&json!({"obj": {"a": 1}}), "k").unwrap_err();
        assert!(err.message().contains("{obj}"), "{err}");
    }
}
