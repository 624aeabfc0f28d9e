//! Static checks of a loaded workflow: mistakes that only show when a case reaches them, found
//! before any case runs. They are warnings, not errors: the workflow is valid and may be
//! registered; `knhk validate` prints them (and fails on them with `--strict`).
//!
//! - an expression reads a name that no variable declares and no task's output mapping gives;
//! - a placeholder of an HTTP task's `url` that the task's input may not have;
//! - an XOR split whose flows all have predicates, which may all be false, and no default flow.

use std::collections::BTreeSet;
use std::fmt;

use knhk_core::expr::CompiledExpr;
use knhk_core::model::{ControlType, Expression, Net, Specification, Syntax, Task, TaskBinding};

use crate::Loaded;

/// The name the HTTP connector fills a `url` placeholder with the call's idempotency key from.
const IDEMPOTENCY_KEY: &str = "idempotency_key";

/// One finding of [`Loaded::warnings`], on one task.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Warning {
    /// The net of the task.
    pub net: String,
    /// The task's id.
    pub task: String,
    pub kind: WarningKind,
}

/// What a [`Warning`] found.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum WarningKind {
    /// An expression reads a variable that no net declares and no task's output mapping (or
    /// multiple-instance join variable) gives, nor the case's initial data.
    UnknownName {
        expression: ExpressionSite,
        name: String,
    },
    /// A placeholder of an HTTP task's `url` that the task's input may not have: its input
    /// mapping builds no such key, or, without a mapping, no variable of that name is known.
    PlaceholderWithoutSource { placeholder: String },
    /// Every flow of an XOR split has a predicate, none is always true, and none is the
    /// default flow: when all are false the task fails.
    XorSplitWithoutDefault,
}

/// Which expression of a task a [`WarningKind::UnknownName`] is in.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum ExpressionSite {
    /// The predicate of the flow to this element.
    Predicate {
        to: String,
    },
    InputMapping,
    OutputMapping,
    /// The expression giving a multiple-instance task its items.
    SplitExpression,
}

impl WarningKind {
    /// Returns a stable snake_case name of the kind, for JSON.
    pub fn code(&self) -> &'static str {
        match self {
            WarningKind::UnknownName { .. } => "unknown_name",
            WarningKind::PlaceholderWithoutSource { .. } => "placeholder_without_source",
            WarningKind::XorSplitWithoutDefault => "xor_split_without_default",
        }
    }
}

impl fmt::Display for ExpressionSite {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            ExpressionSite::Predicate { to } => write!(f, "the predicate of its flow to {to:?}"),
            ExpressionSite::InputMapping => f.write_str("its input mapping"),
            ExpressionSite::OutputMapping => f.write_str("its output mapping"),
            ExpressionSite::SplitExpression => f.write_str("its split expression"),
        }
    }
}

impl fmt::Display for Warning {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "task {:?} of net {:?}: ", self.task, self.net)?;
        match &self.kind {
            WarningKind::UnknownName { expression, name } => write!(
                f,
                "{expression} reads {name}, which no variable declares and no task's output mapping gives"
            ),
            WarningKind::PlaceholderWithoutSource { placeholder } => write!(
                f,
                "its url placeholder {{{placeholder}}} has no source: the task's input may have no field {placeholder}"
            ),
            WarningKind::XorSplitWithoutDefault => f.write_str(
                "every flow of its XOR split has a predicate and none is the default flow: when all are false, the task fails",
            ),
        }
    }
}

impl Loaded {
    /// Returns what the static checks found in this workflow, task by task in definition
    /// order. A definition format that declares no variables (the legacy vocabulary) gets no
    /// name checks.
    pub fn warnings(&self) -> Vec<Warning> {
        let spec = self.workflow.specification();
        let known = self.variables.as_ref().map(|declared| {
            let mut known = declared.clone();
            known.extend(spec.initial_data.keys().cloned());
            known.extend(produced(spec));
            // The whole case data, always bound.
            known.insert("data".to_owned());
            known
        });
        let mut out = Vec::new();
        for net in &spec.nets {
            for task in &net.tasks {
                let mut found = Vec::new();
                if let Some(known) = &known {
                    unknown_names(task, known, &mut found);
                }
                placeholders(task, known.as_ref(), &mut found);
                if xor_may_take_no_flow(task) {
                    found.push(WarningKind::XorSplitWithoutDefault);
                }
                out.extend(found.into_iter().map(|kind| Warning {
                    net: net.id.to_string(),
                    task: task.id.to_string(),
                    kind,
                }));
            }
        }
        out
    }
}

/// Returns the names the tasks of `spec` are known to put into the case data: the keys of
/// output mappings that are map literals, and multiple-instance join variables.
fn produced(spec: &Specification) -> BTreeSet<String> {
    let tasks = spec.nets.iter().flat_map(|n: &Net| &n.tasks);
    let mut names = BTreeSet::new();
    for task in tasks {
        if let Some(keys) = task
            .output_mapping
            .as_ref()
            .and_then(compile)
            .and_then(|e| e.literal_keys())
        {
            names.extend(keys);
        }
        if let Some(join) = task
            .multiple_instance
            .as_ref()
            .and_then(|m| m.join_variable.clone())
        {
            names.insert(join);
        }
    }
    names
}

/// Compiles an expression that validation already compiled; `None` never happens for a
/// loaded workflow, and would only skip the checks of that expression.
fn compile(e: &Expression) -> Option<CompiledExpr> {
    CompiledExpr::compile(e).ok()
}

/// The instance's item, which a multiple-instance task's mappings see.
fn item_variable(task: &Task) -> Option<&str> {
    task.multiple_instance
        .as_ref()
        .map(|m| m.item_variable.as_str())
}

fn unknown_names(task: &Task, known: &BTreeSet<String>, found: &mut Vec<WarningKind>) {
    let item = item_variable(task);
    let mut sites: Vec<(ExpressionSite, &Expression, Vec<&str>)> = Vec::new();
    for flow in &task.flows {
        if let Some(p) = &flow.predicate {
            let to = flow.to.to_string();
            sites.push((ExpressionSite::Predicate { to }, p, Vec::new()));
        }
    }
    if let Some(e) = &task.input_mapping {
        sites.push((ExpressionSite::InputMapping, e, item.into_iter().collect()));
    }
    if let Some(e) = &task.output_mapping {
        let mut extra = vec!["output"];
        extra.extend(item);
        sites.push((ExpressionSite::OutputMapping, e, extra));
    }
    if let Some(e) = task
        .multiple_instance
        .as_ref()
        .and_then(|m| m.split.as_ref())
    {
        sites.push((ExpressionSite::SplitExpression, e, Vec::new()));
    }
    for (site, expression, extra) in sites {
        let Some(compiled) = compile(expression) else {
            continue;
        };
        for name in compiled.free_variables() {
            if !known.contains(&name) && !extra.contains(&name.as_str()) {
                found.push(WarningKind::UnknownName {
                    expression: site.clone(),
                    name,
                });
            }
        }
    }
}

/// Checks the `url` placeholders of an HTTP task against what its input has: the keys its
/// input mapping builds, or, without one, the known variables (when they are known).
fn placeholders(task: &Task, known: Option<&BTreeSet<String>>, found: &mut Vec<WarningKind>) {
    let TaskBinding::Connector(binding) = &task.binding else {
        return;
    };
    let Some(url) = binding.settings.get("url") else {
        return;
    };
    if binding.connector != "http" {
        return;
    }
    let input: Option<BTreeSet<String>> = match &task.input_mapping {
        Some(e) => compile(e).and_then(|c| c.literal_keys()),
        None => known.map(|k| {
            let mut input = k.clone();
            input.extend(item_variable(task).map(str::to_owned));
            input
        }),
    };
    // An input mapping that is not a map literal builds keys not known before it runs.
    let Some(input) = input else {
        return;
    };
    for placeholder in placeholder_names(url) {
        if placeholder != IDEMPOTENCY_KEY && !input.contains(&placeholder) {
            found.push(WarningKind::PlaceholderWithoutSource { placeholder });
        }
    }
}

/// Returns the `{name}` placeholders of a URL template, in order (the connector checked its
/// syntax when the workflow loaded).
fn placeholder_names(template: &str) -> Vec<String> {
    let mut names = Vec::new();
    let mut rest = template;
    while let Some((_, after)) = rest.split_once('{') {
        let Some((name, tail)) = after.split_once('}') else {
            break;
        };
        let name = name.trim();
        if !name.is_empty() && !names.iter().any(|n| n == name) {
            names.push(name.to_owned());
        }
        rest = tail;
    }
    names
}

/// Tells whether an XOR split may find no flow to take: every flow (failure flows aside) has
/// a predicate, none is literally true, and none is the default flow.
fn xor_may_take_no_flow(task: &Task) -> bool {
    if task.split != ControlType::Xor {
        return false;
    }
    let mut flows = task.flows.iter().filter(|f| !f.on_failure).peekable();
    if flows.peek().is_none() {
        return false;
    }
    flows.all(|f| {
        !f.is_default
            && f.predicate.as_ref().is_some_and(|p| {
                let always = match p.syntax {
                    Syntax::Cel => "true",
                    Syntax::Xpath => "true()",
                };
                p.source.trim() != always
            })
    })
}
