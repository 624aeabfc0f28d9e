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

use cel::common::ast::IdedExpr;
use cel::{Context, Env, FunctionContext, Value};
use serde_json::{Map, Value as Json};

use crate::model::{Expression, Syntax};

/// An expression compiled once at load time, evaluated many times.
#[derive(Clone)]
pub struct CompiledExpr {
    source: Expression,
    cel: String,
    // The parsed tree, with every comprehension's range wrapped to charge the evaluation
    // budget; shared, so that `CompiledExpr` stays cheap to clone.
    tree: Arc<IdedExpr>,
    /// Whether the tree has a comprehension, so that an evaluation needs a budget.
    comprehensions: bool,
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
        let too_complex = |message: String| ExprError::TooComplex {
            source: expr.source.clone(),
            message,
        };
        // Before any parser runs: both parsers recurse as deep as the expression nests.
        limits::check_text(&expr.source, expr.syntax).map_err(too_complex)?;
        let cel = match expr.syntax {
            Syntax::Cel => expr.source.clone(),
            Syntax::Xpath => {
                let cel = translate_xpath(&expr.source)?;
                limits::check_text(&cel, Syntax::Cel)
                    .map_err(|m| too_complex(format!("translates to CEL that {m}")))?;
                cel
            }
        };
        let mut tree = stdlib().parser().parse(&cel).map_err(|errors| {
            let mut messages: Vec<String> = Vec::new();
            for e in &errors.errors {
                let Some(text) = sentence(&e.msg) else {
                    continue;
                };
                let text = format!("at {}:{}: {text}", e.pos.0, e.pos.1);
                if !messages.contains(&text) {
                    messages.push(text);
                }
            }
            let mut message = messages.join("; ");
            if expr.syntax == Syntax::Xpath {
                message = format!("its translation `{}` {message}", shown(&cel));
            }
            ExprError::Syntax {
                source: expr.source.clone(),
                message,
            }
        })?;
        limits::check_tree(&tree).map_err(too_complex)?;
        let comprehensions = limits::guard_comprehensions(&mut tree).map_err(too_complex)?;
        Ok(CompiledExpr {
            source: expr.clone(),
            cel,
            tree: Arc::new(tree),
            comprehensions,
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
        // Only an expression with a comprehension needs a budget: the others do a bounded
        // amount of work for their size, and evaluate without the allocation.
        let budget = self
            .comprehensions
            .then(|| Arc::new(limits::Budget::default()));
        if let Some(budget) = &budget {
            let charged = Arc::clone(budget);
            context
                .add_function(limits::RANGE_FUNCTION, move |ftx: &FunctionContext| {
                    charged.charge(ftx)
                })
                .map_err(|e| ExprError::Eval {
                    source: self.source.source.clone(),
                    message: e.to_string(),
                })?;
        }
        let result = Value::resolve(&self.tree, &context);
        // Over budget fails the evaluation even where CEL absorbed the error (`... || true`).
        if let Some(why) = budget.and_then(|b| b.exceeded()) {
            return Err(ExprError::Eval {
                source: self.source.source.clone(),
                message: why,
            });
        }
        result.map_err(|e| ExprError::Eval {
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

/// Returns a parser message as a sentence: the CEL parser wraps some of its own in a debug dump
/// (`OtherError(ParseError { .. msg: "..." })`), and follows a recursion error with messages
/// about its internals (`No \`ExprContextAll\`!`), which say nothing to the author and are left out.
fn sentence(msg: &str) -> Option<String> {
    if msg.starts_with("No `") && msg.ends_with("ContextAll`!") {
        return None;
    }
    if msg.contains("Recursion limit") {
        return Some("it is nested too deeply".to_string());
    }
    let inner = msg
        .split_once("msg: \"")
        .and_then(|(_, rest)| rest.split_once('"'))
        .map(|(inner, _)| inner);
    Some(inner.unwrap_or(msg).to_string())
}

/// Returns an expression's text as an error shows it: whole when short, else its beginning
/// and its length, so that a huge expression does not flood the message.
fn shown(source: &str) -> String {
    const SHOWN: usize = 80;
    if source.chars().count() <= SHOWN + 20 {
        return source.to_string();
    }
    let beginning: String = source.chars().take(SHOWN).collect();
    format!("{beginning}... ({} bytes)", source.len())
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
    /// The expression is longer or nests deeper than the limits of [`limits`] allow.
    TooComplex { source: String, message: String },
    /// Evaluation failed, e.g. on an unknown variable or a missing key, or went over its
    /// budget.
    Eval { source: String, message: String },
    /// A predicate evaluated to something other than a boolean.
    NotBoolean { source: String, got: String },
}

impl fmt::Display for ExprError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            ExprError::Syntax { source, message } => {
                write!(
                    f,
                    "expression `{}` does not parse: {message}",
                    shown(source)
                )
            }
            ExprError::UnsupportedXpath { source, message } => {
                write!(
                    f,
                    "xpath expression `{}` is not supported: {message}",
                    shown(source)
                )
            }
            ExprError::TooComplex { source, message } => {
                write!(f, "expression `{}` {message}", shown(source))
            }
            ExprError::Eval { source, message } => {
                write!(
                    f,
                    "expression `{}` failed to evaluate: {message}",
                    shown(source)
                )
            }
            ExprError::NotBoolean { source, got } => {
                write!(
                    f,
                    "expression `{}` is not a boolean: got {got}",
                    shown(source)
                )
            }
        }
    }
}

impl std::error::Error for ExprError {}

pub mod limits;
mod names;
mod xpath;

pub use xpath::translate_xpath;

#[cfg(test)]
mod tests;
