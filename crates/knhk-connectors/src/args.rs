//! A task setting that is a CEL list expression over the task input (`params = "[order_id,
//! amount]"`): compiled once when the task is prepared, evaluated on each call into JSON values.
//!
//! The input's top-level fields are CEL variables, and the whole input is also `input`. A JSON
//! number that fits an `i64` (or else a `u64`) is a CEL `int` (`uint`), any other a `double`, as
//! in the workflow's own expressions.

use std::collections::HashMap;
use std::sync::{Arc, OnceLock};

use cel::{Context, Env, Program, Value};
use serde_json::Value as Json;

use crate::connector::CallError;
use crate::settings::SettingsError;

/// A CEL list expression, compiled.
pub(crate) struct ListExpr {
    setting: &'static str,
    source: String,
    program: Program,
}

impl std::fmt::Debug for ListExpr {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ListExpr")
            .field("setting", &self.setting)
            .field("source", &self.source)
            .finish_non_exhaustive()
    }
}

/// Why an expression does not compile: the parser's messages, joined.
#[derive(Debug, thiserror::Error)]
#[error("`{expression}` is not a CEL expression: {message}")]
struct NotCel {
    expression: String,
    message: String,
}

impl ListExpr {
    /// Compiles the expression of `setting`; the error names the setting.
    pub(crate) fn compile(setting: &'static str, source: &str) -> Result<ListExpr, SettingsError> {
        if source.trim().is_empty() {
            return Err(SettingsError::Empty {
                setting: setting.to_owned(),
            });
        }
        let program = Program::compile(source).map_err(|errors| {
            let message = errors
                .errors
                .iter()
                .map(|e| e.msg.clone())
                .collect::<Vec<_>>()
                .join("; ");
            SettingsError::malformed(
                setting,
                NotCel {
                    expression: source.to_owned(),
                    message,
                },
            )
        })?;
        Ok(ListExpr {
            setting,
            source: source.to_owned(),
            program,
        })
    }

    /// Evaluates the expression over a call's input into a list of JSON values. An expression
    /// that fails or gives something other than a list fails the call permanently: the same
    /// input would fail again.
    pub(crate) fn eval(&self, input: &Json) -> Result<Vec<Json>, CallError> {
        self.eval_with(input, &[])
    }

    /// Evaluates as [`ListExpr::eval`] does, with string variables of the call besides the
    /// input's (the idempotency key); they shadow input fields of the same name.
    pub(crate) fn eval_with(
        &self,
        input: &Json,
        extra: &[(&str, &str)],
    ) -> Result<Vec<Json>, CallError> {
        let mut context = Context::with_env(Arc::clone(stdlib()));
        context.add_variable_from_value("input", to_cel(input));
        // Bound after `input`: a field of the input called `input` is what the task means.
        if let Json::Object(fields) = input {
            for (key, value) in fields {
                context.add_variable_from_value(key.as_str(), to_cel(value));
            }
        }
        for (name, value) in extra {
            context.add_variable_from_value(*name, Value::String(Arc::new((*value).to_owned())));
        }
        let fail = |why: String| {
            CallError::Permanent(format!("{} `{}`: {why}", self.setting, self.source))
        };
        let value = self
            .program
            .execute(&context)
            .map_err(|e| fail(e.to_string()))?;
        match value.json() {
            Ok(Json::Array(items)) => Ok(items),
            Ok(other) => Err(fail(format!("gives {other}, not a list"))),
            Err(e) => Err(fail(format!("gives what JSON cannot hold: {e}"))),
        }
    }
}

/// Returns the standard CEL environment, built once.
fn stdlib() -> &'static Arc<Env> {
    static STDLIB: OnceLock<Arc<Env>> = OnceLock::new();
    STDLIB.get_or_init(|| Arc::new(Env::stdlib()))
}

/// Converts JSON into a CEL value, whole numbers as integers.
fn to_cel(value: &Json) -> Value {
    match value {
        Json::Null => Value::Null,
        Json::Bool(b) => Value::Bool(*b),
        Json::Number(n) => match (n.as_i64(), n.as_u64()) {
            (Some(i), _) => Value::Int(i),
            (None, Some(u)) => Value::UInt(u),
            (None, None) => Value::Float(n.as_f64().unwrap_or(f64::NAN)),
        },
        Json::String(s) => Value::String(Arc::new(s.clone())),
        Json::Array(items) => Value::List(Arc::new(items.iter().map(to_cel).collect())),
        Json::Object(fields) => Value::Map(
            fields
                .iter()
                .map(|(k, v)| (k.clone(), to_cel(v)))
                .collect::<HashMap<String, Value>>()
                .into(),
        ),
    }
}
