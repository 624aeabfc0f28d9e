//! Redis replies as JSON, and JSON values as Redis arguments.

use base64::Engine;
use redis::Value as Reply;
use serde_json::{Map, Value, json};

use crate::connector::CallError;

/// A JSON value as a Redis argument: a string as it is, null as nothing (refused), anything
/// else as its JSON text.
pub(super) fn arg_text(value: &Value) -> Option<String> {
    match value {
        Value::Null => None,
        Value::String(s) => Some(s.clone()),
        other => Some(other.to_string()),
    }
}

/// A reply as JSON: strings that are UTF-8 as strings, others as `{"base64": ...}`; maps as
/// objects when their keys are strings; an error reply as a failed call.
pub(super) fn reply_json(reply: Reply) -> Result<Value, CallError> {
    Ok(match reply {
        Reply::Nil => Value::Null,
        Reply::Int(i) => Value::from(i),
        Reply::BulkString(bytes) => match String::from_utf8(bytes) {
            Ok(s) => Value::String(s),
            Err(e) => json!({
                "base64": base64::engine::general_purpose::STANDARD.encode(e.into_bytes())
            }),
        },
        Reply::Array(items) | Reply::Set(items) | Reply::Push { data: items, .. } => Value::Array(
            items
                .into_iter()
                .map(reply_json)
                .collect::<Result<_, _>>()?,
        ),
        Reply::SimpleString(s) => Value::String(s),
        Reply::Okay => Value::String("OK".to_owned()),
        Reply::Map(pairs) => {
            let pairs: Vec<(Value, Value)> = pairs
                .into_iter()
                .map(|(k, v)| Ok((reply_json(k)?, reply_json(v)?)))
                .collect::<Result<_, CallError>>()?;
            if pairs.iter().all(|(k, _)| k.is_string()) {
                let mut object = Map::new();
                for (k, v) in pairs {
                    if let Value::String(k) = k {
                        object.insert(k, v);
                    }
                }
                Value::Object(object)
            } else {
                Value::Array(pairs.into_iter().map(|(k, v)| json!([k, v])).collect())
            }
        }
        Reply::Attribute { data, .. } => reply_json(*data)?,
        Reply::Double(f) => serde_json::Number::from_f64(f)
            .map(Value::Number)
            .unwrap_or_else(|| Value::String(f.to_string())),
        Reply::Boolean(b) => Value::Bool(b),
        Reply::VerbatimString { text, .. } => Value::String(text),
        Reply::BigNumber(digits) => Value::String(String::from_utf8_lossy(&digits).into_owned()),
        Reply::ServerError(e) => {
            return Err(CallError::Permanent(format!(
                "redis: {} {}",
                e.code(),
                e.details().unwrap_or_default()
            )));
        }
        other => {
            return Err(CallError::Permanent(format!(
                "redis: a reply the connector does not convert: {other:?}"
            )));
        }
    })
}
