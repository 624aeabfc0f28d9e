//! A Kafka task's settings (`topic`, `key`, `partition`, `acks`), parsed once, and how a call
//! picks its record key and its partition.

use std::collections::BTreeMap;
use std::sync::{Arc, OnceLock};

use cel::{Context, Env, Program, Value as Cel};
use serde_json::Value;

use crate::connector::CallError;
use crate::settings::SettingsError;

/// The longest `key` expression taken, in bytes: a key is a field or a short concatenation.
const MAX_KEY_EXPRESSION: usize = 1024;

/// One task's settings, parsed.
#[derive(Debug)]
pub(super) struct KafkaSettings {
    pub(super) topic: String,
    pub(super) key: Option<KeyExpression>,
    pub(super) partition: Option<i32>,
}

/// The `key` setting: a CEL expression over the task input, compiled once.
pub(super) struct KeyExpression {
    source: String,
    program: Program,
}

impl std::fmt::Debug for KeyExpression {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_tuple("KeyExpression").field(&self.source).finish()
    }
}

/// A setting's value that is not acceptable, with why.
#[derive(Debug, thiserror::Error)]
#[error("{0}")]
struct Invalid(String);

impl KafkaSettings {
    pub(super) fn parse(
        settings: &BTreeMap<String, String>,
    ) -> Result<KafkaSettings, SettingsError> {
        let mut topic = None;
        let mut key = None;
        let mut partition = None;
        for (name, value) in settings {
            match name.as_str() {
                "topic" => topic = Some(parse_topic(value)?),
                "key" => key = Some(KeyExpression::compile(value)?),
                "partition" => {
                    let p = value
                        .parse::<i32>()
                        .map_err(|e| SettingsError::malformed(name, e))?;
                    if p < 0 {
                        return Err(SettingsError::malformed(
                            name,
                            Invalid("a partition is a number from 0".to_owned()),
                        ));
                    }
                    partition = Some(p);
                }
                "acks" => match value.as_str() {
                    "all" | "-1" => {}
                    "0" | "1" => {
                        // rskafka writes acks=-1 into every produce request: offering `1` or
                        // `0` would promise a trade-off the client does not make.
                        return Err(SettingsError::malformed(
                            name,
                            Invalid(format!(
                                "acks={value} is not available: the Kafka client always waits \
                                 for all in-sync replicas (`all`)"
                            )),
                        ));
                    }
                    other => {
                        return Err(SettingsError::NotOneOf {
                            setting: name.clone(),
                            allowed: vec!["all".to_owned()],
                            found: other.to_owned(),
                        });
                    }
                },
                _ => {
                    return Err(SettingsError::Unknown {
                        setting: name.clone(),
                    });
                }
            }
        }
        let topic = topic.ok_or_else(|| SettingsError::Missing {
            setting: "topic".to_owned(),
        })?;
        Ok(KafkaSettings {
            topic,
            key,
            partition,
        })
    }
}

/// Checks a topic name as Kafka does: 1 to 249 of letters, digits, `.`, `_` and `-`.
fn parse_topic(value: &str) -> Result<String, SettingsError> {
    if value.is_empty() {
        return Err(SettingsError::Empty {
            setting: "topic".to_owned(),
        });
    }
    let legal = value
        .chars()
        .all(|c| c.is_ascii_alphanumeric() || "._-".contains(c));
    if !legal || value.len() > 249 || value == "." || value == ".." {
        return Err(SettingsError::malformed(
            "topic",
            Invalid(format!(
                "`{value}` is not a Kafka topic name (1 to 249 of letters, digits, `.`, `_`, `-`)"
            )),
        ));
    }
    Ok(value.to_owned())
}

/// The CEL environment, built once: building the standard library is not free.
fn env() -> &'static Arc<Env> {
    static ENV: OnceLock<Arc<Env>> = OnceLock::new();
    ENV.get_or_init(|| Arc::new(Env::stdlib()))
}

impl KeyExpression {
    fn compile(source: &str) -> Result<KeyExpression, SettingsError> {
        if source.trim().is_empty() {
            return Err(SettingsError::Empty {
                setting: "key".to_owned(),
            });
        }
        if source.len() > MAX_KEY_EXPRESSION {
            return Err(SettingsError::malformed(
                "key",
                Invalid(format!(
                    "the expression is longer than {MAX_KEY_EXPRESSION} bytes"
                )),
            ));
        }
        let program = env().compile(source).map_err(|errors| {
            SettingsError::malformed("key", Invalid(format!("not a CEL expression: {errors}")))
        })?;
        Ok(KeyExpression {
            source: source.to_owned(),
            program,
        })
    }

    /// Evaluates the key over the input: each top-level field is a variable, and the whole input
    /// is `input` (unless a field is itself called `input`). A string is the key's UTF-8 bytes,
    /// a number or boolean its text, `null` no key; anything else fails the call for good.
    pub(super) fn eval(&self, input: &Value) -> Result<Option<Vec<u8>>, CallError> {
        let fail = |why: String| CallError::Permanent(format!("key `{}`: {why}", self.source));
        let mut context = Context::with_env(Arc::clone(env()));
        context.add_variable_from_value("input", to_cel(input));
        if let Value::Object(fields) = input {
            for (name, value) in fields {
                context.add_variable_from_value(name.as_str(), to_cel(value));
            }
        }
        let value = self
            .program
            .execute(&context)
            .map_err(|e| fail(e.to_string()))?;
        match value {
            Cel::String(s) => Ok(Some(s.as_bytes().to_vec())),
            Cel::Bytes(b) => Ok(Some(b.to_vec())),
            Cel::Int(i) => Ok(Some(i.to_string().into_bytes())),
            Cel::UInt(u) => Ok(Some(u.to_string().into_bytes())),
            Cel::Float(f) if f.is_finite() => Ok(Some(f.to_string().into_bytes())),
            Cel::Bool(b) => Ok(Some(b.to_string().into_bytes())),
            Cel::Null => Ok(None),
            other => Err(fail(format!(
                "evaluates to a {:?}, not a string, number, boolean or null",
                other.type_of()
            ))),
        }
    }
}

/// Converts JSON to CEL as the workflow's own expressions do: a whole number that fits an `i64`
/// is an `int` (else a `uint`), any other number a `double`.
fn to_cel(value: &Value) -> Cel {
    match value {
        Value::Null => Cel::Null,
        Value::Bool(b) => Cel::Bool(*b),
        Value::Number(n) => match (n.as_i64(), n.as_u64()) {
            (Some(i), _) => Cel::Int(i),
            (None, Some(u)) => Cel::UInt(u),
            (None, None) => Cel::Float(n.as_f64().unwrap_or(f64::NAN)),
        },
        Value::String(s) => Cel::String(Arc::new(s.clone())),
        Value::Array(items) => Cel::List(Arc::new(items.iter().map(to_cel).collect())),
        Value::Object(fields) => {
            let map: std::collections::HashMap<String, Cel> =
                fields.iter().map(|(k, v)| (k.clone(), to_cel(v))).collect();
            Cel::Map(map.into())
        }
    }
}

/// Picks the partition of a record as Kafka's default partitioner does for a keyed record
/// (murmur2 of the key, made positive, modulo the partition count), so that a key lands where
/// Java and librdkafka producers (with `murmur2_random`) put it.
pub(crate) fn partition_for(key: &[u8], partitions: i32) -> i32 {
    let positive = murmur2(key) & 0x7fff_ffff;
    (positive % partitions.max(1) as u32) as i32
}

/// Kafka's murmur2 (`org.apache.kafka.common.utils.Utils.murmur2`), seed 0x9747b28c.
pub(super) fn murmur2(data: &[u8]) -> u32 {
    const SEED: u32 = 0x9747_b28c;
    const M: u32 = 0x5bd1_e995;
    const R: u32 = 24;
    let length = data.len();
    let mut h: u32 = SEED ^ (length as u32);
    let mut chunks = data.chunks_exact(4);
    for chunk in &mut chunks {
        let mut k = u32::from_le_bytes([chunk[0], chunk[1], chunk[2], chunk[3]]);
        k = k.wrapping_mul(M);
        k ^= k >> R;
        k = k.wrapping_mul(M);
        h = h.wrapping_mul(M);
        h ^= k;
    }
    let rest = chunks.remainder();
    if rest.len() >= 3 {
        h ^= u32::from(rest[2]) << 16;
    }
    if rest.len() >= 2 {
        h ^= u32::from(rest[1]) << 8;
    }
    if !rest.is_empty() {
        h ^= u32::from(rest[0]);
        h = h.wrapping_mul(M);
    }
    h ^= h >> 13;
    h = h.wrapping_mul(M);
    h ^= h >> 15;
    h
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Kafka's own test vectors (`UtilsTest.testMurmur2`), as signed ints.
    #[test]
    fn murmur2_matches_kafka() {
        let cases: [(&str, i32); 6] = [
            ("21", -973_932_308),
            ("foobar", -790_332_482),
            ("a-little-bit-long-string", -985_981_536),
            ("a-little-bit-longer-string", -1_486_304_829),
            (
                "lkjh234lh9fiuh90y23oiuhsafujhadof229phr9h19h89h8",
                -58_897_971,
            ),
            ("abc", 479_470_107),
        ];
        for (input, expected) in cases {
            assert_eq!(murmur2(input.as_bytes()) as i32, expected, "{input}");
        }
    }
}
