//! What people type on the command line: JSON given inline, from a file (`@FILE`) or from
//! standard input (`-`), with duplicate keys refused; user names checked before they are stored.

use std::collections::BTreeSet;
use std::fmt;
use std::io::Read as _;

use anyhow::{Context, bail};
use serde::de::{self, Deserializer, MapAccess, SeqAccess, Visitor};
use serde_json::{Map, Value};

/// Reads the text of a JSON option: `@FILE` reads the file, `-` reads standard input, anything
/// else is the JSON itself. Data over the command line's limit (about 128 KiB) needs a file.
pub(crate) fn option_text(option: &str, text: &str) -> anyhow::Result<String> {
    if text == "-" {
        let mut all = String::new();
        std::io::stdin()
            .read_to_string(&mut all)
            .with_context(|| format!("cannot read {option} from standard input"))?;
        Ok(all)
    } else if let Some(path) = text.strip_prefix('@') {
        std::fs::read_to_string(path).with_context(|| format!("cannot read {option} from {path}"))
    } else {
        Ok(text.to_owned())
    }
}

/// Parses JSON, refusing an object that gives one key twice (which plain parsing would
/// resolve silently to the last value).
pub(crate) fn parse_json(option: &str, text: &str) -> anyhow::Result<Value> {
    let mut de = serde_json::Deserializer::from_str(text);
    let value = de
        .deserialize_any(Strict)
        .with_context(|| format!("{option} is not valid JSON"))?;
    de.end()
        .with_context(|| format!("{option} is not valid JSON"))?;
    Ok(value)
}

/// Builds a `Value`, failing on a duplicate key at any depth.
struct Strict;

impl<'de> Visitor<'de> for Strict {
    type Value = Value;

    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("a JSON value")
    }

    fn visit_bool<E>(self, v: bool) -> Result<Value, E> {
        Ok(Value::Bool(v))
    }
    fn visit_i64<E>(self, v: i64) -> Result<Value, E> {
        Ok(Value::from(v))
    }
    fn visit_u64<E>(self, v: u64) -> Result<Value, E> {
        Ok(Value::from(v))
    }
    fn visit_f64<E>(self, v: f64) -> Result<Value, E> {
        Ok(Value::from(v))
    }
    fn visit_str<E>(self, v: &str) -> Result<Value, E> {
        Ok(Value::String(v.to_owned()))
    }
    fn visit_string<E>(self, v: String) -> Result<Value, E> {
        Ok(Value::String(v))
    }
    fn visit_unit<E>(self) -> Result<Value, E> {
        Ok(Value::Null)
    }

    fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<Value, A::Error> {
        let mut items = Vec::new();
        while let Some(item) = seq.next_element_seed(StrictSeed)? {
            items.push(item);
        }
        Ok(Value::Array(items))
    }

    fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<Value, A::Error> {
        let mut out = Map::new();
        let mut seen = BTreeSet::new();
        while let Some(key) = map.next_key::<String>()? {
            if !seen.insert(key.clone()) {
                return Err(de::Error::custom(format!("the key {key:?} is given twice")));
            }
            let value = map.next_value_seed(StrictSeed)?;
            out.insert(key, value);
        }
        Ok(Value::Object(out))
    }
}

struct StrictSeed;

impl<'de> de::DeserializeSeed<'de> for StrictSeed {
    type Value = Value;
    fn deserialize<D: Deserializer<'de>>(self, d: D) -> Result<Value, D::Error> {
        d.deserialize_any(Strict)
    }
}

/// Parses a `--user` (or `--to`) value: a user name is not empty, has no surrounding spaces
/// and no control characters, so that it prints and compares as it reads.
pub(crate) fn user_name(text: &str) -> Result<String, String> {
    if text.is_empty() {
        return Err("a user name cannot be empty".to_owned());
    }
    if text.trim() != text {
        return Err("a user name cannot start or end with spaces".to_owned());
    }
    if let Some(c) = text.chars().find(|c| c.is_control()) {
        return Err(format!(
            "a user name cannot hold control characters (found {:?})",
            c
        ));
    }
    if text.chars().count() > 256 {
        return Err("a user name is at most 256 characters".to_owned());
    }
    Ok(text.to_owned())
}

/// Fails unless `value` is an object; names what it is instead.
pub(crate) fn require_object(option: &str, value: Value) -> anyhow::Result<Map<String, Value>> {
    match value {
        Value::Object(map) => Ok(map),
        other => bail!("{option} must be a JSON object, got {}", json_kind(&other)),
    }
}

fn json_kind(value: &Value) -> &'static str {
    match value {
        Value::Null => "null",
        Value::Bool(_) => "a boolean",
        Value::Number(_) => "a number",
        Value::String(_) => "a string",
        Value::Array(_) => "an array",
        Value::Object(_) => "an object",
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_duplicate_key_is_refused_at_any_depth() {
        let err = parse_json("--data", r#"{"a": 1, "a": 2}"#).expect_err("duplicate");
        assert!(
            format!("{err:#}").contains("the key \"a\" is given twice"),
            "{err:#}"
        );
        let err = parse_json("--data", r#"{"x": [{"b": 1, "b": 1}]}"#).expect_err("nested");
        assert!(
            format!("{err:#}").contains("\"b\" is given twice"),
            "{err:#}"
        );
        let ok = parse_json(
            "--data",
            r#"{"a": {"a": 1}, "b": [1, "s", null, true, 2.5]}"#,
        )
        .expect("distinct keys");
        assert_eq!(ok["b"][4], 2.5);
    }

    #[test]
    fn trailing_text_is_refused() {
        assert!(parse_json("--data", r#"{"a": 1} x"#).is_err());
    }

    #[test]
    fn user_names_are_printable_and_not_empty() {
        assert!(user_name("uma").is_ok());
        assert!(user_name("Ada Lovelace").is_ok());
        assert!(user_name("").is_err());
        assert!(user_name(" uma").is_err());
        assert!(user_name("u\nma").is_err());
        assert!(user_name("u\u{1b}[31mma").is_err());
    }
}
