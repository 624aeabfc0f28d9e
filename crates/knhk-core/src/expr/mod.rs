//! Expressions over case data: CEL compiled once at load time, and YAWL's simple XPath translated into CEL.
//!
//! CEL is knhk's one expression language. XPath, as found in YAWL predicates and mappings, is only
//! accepted in the small subset [`translate_xpath`] understands, and is run as the CEL it translates to.
//!
//! Case data is JSON. Each JSON number that fits an `i64` (or else a `u64`) becomes a CEL `int`
//! (`uint`), and every other number a `double`. CEL 0.15 compares `int` with `double` by value, so
//! `amount > 1000` holds for an `amount` of `1500.5`; arithmetic between the two is refused by CEL
//! (`1 + 1.5` is an evaluation error), as the CEL specification has it.

use std::collections::HashMap;
use std::fmt;
use std::sync::{Arc, OnceLock};

use cel::{Context, Env, Program, Value};
use serde_json::{Map, Value as Json};

use crate::model::{Expression, Syntax};

/// An expression compiled once at load time, evaluated many times.
#[derive(Clone)]
pub struct CompiledExpr {
    source: Expression,
    cel: String,
    // `Program` is neither `Clone` nor cheap to rebuild; sharing it keeps `CompiledExpr` cheap to clone.
    program: Arc<Program>,
}

impl fmt::Debug for CompiledExpr {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("CompiledExpr")
            .field("source", &self.source.source)
            .field("syntax", &self.source.syntax)
            .field("cel", &self.cel)
            .finish_non_exhaustive()
    }
}

impl CompiledExpr {
    /// Compiles an expression, translating it into CEL first when it is written in XPath.
    pub fn compile(expr: &Expression) -> Result<CompiledExpr, ExprError> {
        let cel = match expr.syntax {
            Syntax::Cel => expr.source.clone(),
            Syntax::Xpath => translate_xpath(&expr.source)?,
        };
        let program = stdlib().compile(&cel).map_err(|errors| {
            let mut message = errors
                .errors
                .iter()
                .map(|e| format!("at {}:{}: {}", e.pos.0, e.pos.1, e.msg))
                .collect::<Vec<_>>()
                .join("; ");
            if expr.syntax == Syntax::Xpath {
                message = format!("its translation `{cel}` {message}");
            }
            ExprError::Syntax {
                source: expr.source.clone(),
                message,
            }
        })?;
        Ok(CompiledExpr {
            source: expr.clone(),
            cel,
            program: Arc::new(program),
        })
    }

    /// Returns the expression as written.
    pub fn source(&self) -> &Expression {
        &self.source
    }

    /// Returns the CEL text that is run: the source itself, or its translation for XPath.
    pub fn cel_source(&self) -> &str {
        &self.cel
    }

    /// Evaluates to a boolean over the case data; each top-level key of `data` is a CEL variable, and the whole object is also bound as `data` (unless a key is itself called `data`).
    pub fn eval_bool(&self, data: &Map<String, Json>) -> Result<bool, ExprError> {
        match self.execute(data, &[])? {
            Value::Bool(b) => Ok(b),
            other => Err(ExprError::NotBoolean {
                source: self.source.source.clone(),
                got: describe(&other),
            }),
        }
    }

    /// Evaluates to a JSON value over the case data plus extra variables (e.g. ("output", &v), ("item", &v)), extras shadow data keys.
    pub fn eval_value(
        &self,
        data: &Map<String, Json>,
        extra: &[(&str, &Json)],
    ) -> Result<Json, ExprError> {
        let value = self.execute(data, extra)?;
        value.json().map_err(|e| ExprError::Eval {
            source: self.source.source.clone(),
            message: format!("the result is not representable as json: {e}"),
        })
    }

    /// Runs the program with the case data and the extras bound, later bindings shadowing earlier ones.
    fn execute(
        &self,
        data: &Map<String, Json>,
        extra: &[(&str, &Json)],
    ) -> Result<Value, ExprError> {
        let mut context = Context::with_env(Arc::clone(stdlib()));
        let fields: Vec<(&String, Value)> = data.iter().map(|(k, v)| (k, to_cel(v))).collect();
        let whole: HashMap<String, Value> = fields
            .iter()
            .map(|(k, v)| ((*k).clone(), v.clone()))
            .collect();
        // Bound before the keys: a case variable of its own called `data` is what the case means by
        // `data` (and what YAWL's `/net/data/...` reads), so it shadows the whole object.
        context.add_variable_from_value("data", Value::Map(whole.into()));
        for (key, value) in fields {
            context.add_variable_from_value(key.as_str(), value);
        }
        for (name, value) in extra {
            context.add_variable_from_value(*name, to_cel(value));
        }
        self.program.execute(&context).map_err(|e| ExprError::Eval {
            source: self.source.source.clone(),
            message: e.to_string(),
        })
    }
}

/// Returns the standard CEL environment, built once: it is immutable and the same for every expression.
fn stdlib() -> &'static Arc<Env> {
    static STDLIB: OnceLock<Arc<Env>> = OnceLock::new();
    STDLIB.get_or_init(|| Arc::new(Env::stdlib()))
}

/// Converts JSON into a CEL value, keeping whole numbers as integers so that CEL integer arithmetic applies to them.
fn to_cel(value: &Json) -> Value {
    match value {
        Json::Null => Value::Null,
        Json::Bool(b) => Value::Bool(*b),
        Json::Number(n) => {
            if let Some(i) = n.as_i64() {
                Value::Int(i)
            } else if let Some(u) = n.as_u64() {
                Value::UInt(u)
            } else {
                Value::Float(n.as_f64().unwrap_or(f64::NAN))
            }
        }
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

/// Describes a CEL value by its type and, where JSON can show it, its value.
fn describe(value: &Value) -> String {
    match value.json() {
        Ok(json) => format!("{} {json}", value.type_of()),
        Err(_) => value.type_of().to_string(),
    }
}

/// Why an expression could not be compiled or evaluated.
///
/// `Display` and `Error` are written by hand rather than derived with `thiserror`: its derive takes a
/// field named `source` for the underlying error, and here `source` is the expression text.
#[derive(Clone, Debug, PartialEq)]
pub enum ExprError {
    /// The expression does not parse: as CEL, or as XPath before any translation.
    Syntax { source: String, message: String },
    /// The XPath is well formed but goes beyond the subset that translates to CEL.
    UnsupportedXpath { source: String, message: String },
    /// Evaluation failed, e.g. on an unknown variable or a missing key.
    Eval { source: String, message: String },
    /// A predicate evaluated to something other than a boolean.
    NotBoolean { source: String, got: String },
}

impl fmt::Display for ExprError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            ExprError::Syntax { source, message } => {
                write!(f, "expression `{source}` does not parse: {message}")
            }
            ExprError::UnsupportedXpath { source, message } => {
                write!(f, "xpath expression `{source}` is not supported: {message}")
            }
            ExprError::Eval { source, message } => {
                write!(f, "expression `{source}` failed to evaluate: {message}")
            }
            ExprError::NotBoolean { source, got } => {
                write!(f, "expression `{source}` is not a boolean: got {got}")
            }
        }
    }
}

impl std::error::Error for ExprError {}

mod names;
mod xpath;

pub use xpath::translate_xpath;

#[cfg(test)]
mod tests;
