//! Request bodies read strictly: UTF-8, nesting no deeper than the limit, no key twice in an
//! object (anywhere, also inside case data), and every field of the right type, each failure
//! naming the field at fault.

use std::collections::HashSet;
use std::fmt;

use serde::de::{self, DeserializeOwned, DeserializeSeed, MapAccess, SeqAccess, Visitor};
use sha2::Digest;

use crate::error::ApiError;

/// Parses a JSON body into `T`, refusing what the module's rules refuse.
pub fn parse<T: DeserializeOwned>(body: &[u8], max_depth: usize) -> Result<T, ApiError> {
    let text = std::str::from_utf8(body).map_err(|e| {
        ApiError::invalid(
            "body",
            format!(
                "the body is not UTF-8: invalid bytes at offset {}",
                e.valid_up_to()
            ),
        )
    })?;
    check(text, max_depth)?;
    let mut de = serde_json::Deserializer::from_str(text);
    let value: T = serde_path_to_error::deserialize(&mut de).map_err(|e| {
        let path = e.path().to_string();
        let inner = e.into_inner();
        let field = if path == "." { "body".to_owned() } else { path };
        ApiError::invalid(&field, format!("{field}: {inner}"))
    })?;
    de.end()
        .map_err(|e| ApiError::invalid("body", format!("body: {e}")))?;
    Ok(value)
}

/// Walks a JSON text once, checking its nesting depth and that no object repeats a key.
fn check(text: &str, max_depth: usize) -> Result<(), ApiError> {
    let mut state = State {
        path: Vec::new(),
        fault: None,
        max_depth,
    };
    let mut de = serde_json::Deserializer::from_str(text);
    // Deeper than serde_json's own recursion bound (128) is refused by it first.
    let result = Checker {
        depth: 0,
        state: &mut state,
    }
    .deserialize(&mut de);
    if let Some(fault) = state.fault {
        return Err(fault);
    }
    result.map_err(|e| {
        let message = if e.to_string().starts_with("recursion limit exceeded") {
            format!("body: nesting deeper than {max_depth} levels")
        } else {
            format!("body: {e}")
        };
        ApiError::invalid("body", message)
    })
}

struct State {
    path: Vec<String>,
    fault: Option<ApiError>,
    max_depth: usize,
}

impl State {
    fn path(&self) -> String {
        let mut out = String::new();
        for part in &self.path {
            if part.starts_with('[') || out.is_empty() {
                out.push_str(part);
            } else {
                out.push('.');
                out.push_str(part);
            }
        }
        if out.is_empty() {
            "body".to_owned()
        } else {
            out
        }
    }
}

struct Checker<'a> {
    depth: usize,
    state: &'a mut State,
}

impl Checker<'_> {
    fn enter<E: de::Error>(&mut self) -> Result<(), E> {
        if self.depth >= self.state.max_depth {
            let path = self.state.path();
            let limit = self.state.max_depth;
            self.state.fault = Some(
                ApiError::invalid(&path, format!("{path}: nesting deeper than {limit} levels"))
                    .with("limit", limit),
            );
            return Err(E::custom("too deep"));
        }
        Ok(())
    }
}

impl<'de> DeserializeSeed<'de> for Checker<'_> {
    type Value = ();
    fn deserialize<D: de::Deserializer<'de>>(self, d: D) -> Result<(), D::Error> {
        d.deserialize_any(self)
    }
}

impl<'de> Visitor<'de> for Checker<'_> {
    type Value = ();

    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("JSON")
    }

    fn visit_bool<E>(self, _: bool) -> Result<(), E> {
        Ok(())
    }
    fn visit_i64<E>(self, _: i64) -> Result<(), E> {
        Ok(())
    }
    fn visit_u64<E>(self, _: u64) -> Result<(), E> {
        Ok(())
    }
    fn visit_f64<E>(self, _: f64) -> Result<(), E> {
        Ok(())
    }
    fn visit_str<E>(self, _: &str) -> Result<(), E> {
        Ok(())
    }
    fn visit_unit<E>(self) -> Result<(), E> {
        Ok(())
    }

    fn visit_seq<A: SeqAccess<'de>>(mut self, mut seq: A) -> Result<(), A::Error> {
        self.enter()?;
        let mut i = 0usize;
        loop {
            self.state.path.push(format!("[{i}]"));
            let child = Checker {
                depth: self.depth + 1,
                state: self.state,
            };
            let more = seq.next_element_seed(child)?;
            self.state.path.pop();
            if more.is_none() {
                return Ok(());
            }
            i += 1;
        }
    }

    fn visit_map<A: MapAccess<'de>>(mut self, mut map: A) -> Result<(), A::Error> {
        self.enter()?;
        let mut seen = HashSet::new();
        while let Some(key) = map.next_key::<String>()? {
            if !seen.insert(key.clone()) {
                self.state.path.push(key);
                let path = self.state.path();
                self.state.fault = Some(ApiError::invalid(
                    &path,
                    format!("{path}: the key appears twice in its object"),
                ));
                return Err(de::Error::custom("duplicate key"));
            }
            self.state.path.push(key);
            let child = Checker {
                depth: self.depth + 1,
                state: self.state,
            };
            map.next_value_seed(child)?;
            self.state.path.pop();
        }
        Ok(())
    }
}

/// Returns a digest of a JSON value that does not depend on the order of object keys: the
/// fingerprint by which a repeated request is told from another one.
pub fn fingerprint(value: &serde_json::Value) -> String {
    let mut hasher = sha2::Sha256::new();
    canonical(value, &mut hasher);
    hasher
        .finalize()
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect()
}

fn canonical(value: &serde_json::Value, out: &mut sha2::Sha256) {
    use serde_json::Value;
    match value {
        Value::Object(map) => {
            let mut keys: Vec<&String> = map.keys().collect();
            keys.sort();
            out.update(b"{");
            for k in keys {
                out.update(serde_json::Value::String(k.clone()).to_string().as_bytes());
                out.update(b":");
                if let Some(v) = map.get(k) {
                    canonical(v, out);
                }
                out.update(b",");
            }
            out.update(b"}");
        }
        Value::Array(items) => {
            out.update(b"[");
            for v in items {
                canonical(v, out);
                out.update(b",");
            }
            out.update(b"]");
        }
        other => out.update(other.to_string().as_bytes()),
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;
    use crate::error::Code;
    use serde::Deserialize;

    #[derive(Debug, Deserialize)]
    #[serde(deny_unknown_fields)]
    #[allow(dead_code)]
    struct Body {
        user: String,
        #[serde(default)]
        start: bool,
        #[serde(default)]
        data: serde_json::Map<String, serde_json::Value>,
    }

    fn field(body: &str) -> String {
        let e = parse::<Body>(body.as_bytes(), 8).unwrap_err();
        assert_eq!(e.code, Code::InvalidArgument, "{e}");
        e.details["field"].as_str().unwrap().to_owned()
    }

    #[test]
    fn each_refusal_names_the_field_at_fault() {
        assert_eq!(field(r#"{"user": "a", "start": "yes"}"#), "start");
        assert_eq!(field(r#"{"user": 3}"#), "user");
        assert_eq!(field(r#"{"user": "a", "user": "b"}"#), "user");
        assert_eq!(
            field(r#"{"user": "a", "data": {"x": 1, "x": 2}}"#),
            "data.x"
        );
        assert_eq!(
            field(r#"{"user": "a", "data": {"x": [[[[[[[[[1]]]]]]]]]}}"#),
            "data.x[0][0][0][0][0][0]"
        );
        assert_eq!(field(r#"{"user": "a", "colour": 1}"#), "colour");
        assert_eq!(field("{\"user\": \"a\"} x"), "body");
        let e = parse::<Body>(b"{\"user\": \"\xff\"}", 8).unwrap_err();
        assert_eq!(e.details["field"], "body");
        assert!(parse::<Body>(br#"{"user": "a", "data": {"x": {"y": 1}}}"#, 8).is_ok());
    }

    #[test]
    fn fingerprints_ignore_key_order_only() {
        let a = serde_json::json!({"a": 1, "b": {"c": [1, 2]}});
        let b = serde_json::json!({"b": {"c": [1, 2]}, "a": 1});
        let c = serde_json::json!({"b": {"c": [2, 1]}, "a": 1});
        assert_eq!(fingerprint(&a), fingerprint(&b));
        assert_ne!(fingerprint(&a), fingerprint(&c));
    }
}
