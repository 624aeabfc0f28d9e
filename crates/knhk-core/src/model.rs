//! The definition model: a specification of nets, conditions, tasks and flows, as written by
//! people. It is plain data; [`crate::Workflow`] validates it and indexes it for execution.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

use crate::ids::{ElementId, NetId};

/// A workflow definition: one root net and the sub-nets its composite tasks decompose into.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Specification {
    /// The specification's identifier (its IRI or URI in the source file).
    pub id: String,
    pub name: Option<String>,
    pub version: Option<String>,
    pub documentation: Option<String>,
    /// Which of `nets` is the root net.
    pub root_net: NetId,
    pub nets: Vec<Net>,
    /// The initial values of the root net's variables: the data a case starts with, under
    /// the data given when the case is created.
    #[serde(default, skip_serializing_if = "serde_json::Map::is_empty")]
    pub initial_data: serde_json::Map<String, serde_json::Value>,
}

/// A net: exactly one input condition, one output condition, and conditions and tasks between.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Net {
    pub id: NetId,
    pub name: Option<String>,
    pub input_condition: Condition,
    pub output_condition: Condition,
    pub conditions: Vec<Condition>,
    pub tasks: Vec<Task>,
}

/// A condition (a place of the net). Its outgoing flows lead to tasks.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Condition {
    pub id: ElementId,
    pub name: Option<String>,
    pub flows: Vec<Flow>,
}

/// Joins and splits: AND, XOR or OR.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum ControlType {
    And,
    Xor,
    Or,
}

/// A flow from the element that owns it to `to`. A flow from a task to a task runs through an
/// implicit condition.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Flow {
    pub to: ElementId,
    /// Guards the flow on an XOR or OR split; `None` means always true.
    pub predicate: Option<Expression>,
    /// Evaluation order on an XOR split (lowest first); flows without one come after, in
    /// definition order.
    pub ordering: Option<i64>,
    /// Taken when no predicate of the split holds.
    pub is_default: bool,
    /// Taken only when the task fails (a connector gave up, a work item failed, an expression
    /// could not be evaluated): the failure is routed here instead of failing the case.
    #[serde(default)]
    pub on_failure: bool,
}

/// The language an expression was written in.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Syntax {
    /// Common Expression Language, knhk's one expression language.
    Cel,
    /// The simple XPath forms found in YAWL files; translated into CEL when compiled.
    Xpath,
}

/// An expression over the case data, kept as written.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Expression {
    pub source: String,
    pub syntax: Syntax,
}

impl Expression {
    /// Creates a CEL expression.
    pub fn cel(source: impl Into<String>) -> Self {
        Expression {
            source: source.into(),
            syntax: Syntax::Cel,
        }
    }

    /// Creates an expression written in YAWL's XPath.
    pub fn xpath(source: impl Into<String>) -> Self {
        Expression {
            source: source.into(),
            syntax: Syntax::Xpath,
        }
    }
}

/// A task: a transition of the net, with its join, split, flows and what performs its work.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Task {
    pub id: ElementId,
    pub name: Option<String>,
    pub join: ControlType,
    pub split: ControlType,
    pub flows: Vec<Flow>,
    /// Conditions emptied and tasks cancelled when this task completes (`removesTokens`).
    pub cancellation_set: Vec<ElementId>,
    pub multiple_instance: Option<MultipleInstance>,
    /// The sub-net a composite task runs for each of its instances.
    pub decomposition: Option<NetId>,
    pub binding: TaskBinding,
    pub timer: Option<TaskTimer>,
    /// Computes the task's input (a JSON object) from the case data; default: the case data.
    pub input_mapping: Option<Expression>,
    /// Computes the object merged into the case data from `output` (what the work returned)
    /// and the case data; default: `output` itself.
    pub output_mapping: Option<Expression>,
    pub runtime: RuntimeHints,
}

impl Task {
    /// Creates an empty task (no work: it completes as soon as it starts) with XOR join and split.
    pub fn empty(id: impl Into<ElementId>) -> Task {
        Task {
            id: id.into(),
            name: None,
            join: ControlType::Xor,
            split: ControlType::Xor,
            flows: Vec::new(),
            cancellation_set: Vec::new(),
            multiple_instance: None,
            decomposition: None,
            binding: TaskBinding::Empty,
            timer: None,
            input_mapping: None,
            output_mapping: None,
            runtime: RuntimeHints::default(),
        }
    }
}

/// What performs a task's work. knhk-core only routes it; the runtime interprets it.
#[derive(Clone, Debug, PartialEq, Default, Serialize, Deserialize)]
#[serde(tag = "kind", rename_all = "snake_case")]
pub enum TaskBinding {
    /// No work: the task completes as soon as it starts (YAWL's empty task).
    #[default]
    Empty,
    /// People in one of `roles` do the work through work items.
    Human(HumanBinding),
    /// A connector performs the work.
    Connector(ConnectorBinding),
    /// The task waits for an outside event of this name (a deferred choice's trigger).
    Trigger {
        event: String,
        /// Whether an event that arrives before the task is enabled is lost (transient, the
        /// default) or kept in the case until the task consumes it (persistent).
        #[serde(default, skip_serializing_if = "TriggerKind::is_transient")]
        trigger_kind: TriggerKind,
    },
}

/// How long an outside event waits for a trigger task (YAWL's WCP-23 and WCP-24).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum TriggerKind {
    /// The event is lost when no task waits for it (WCP-23, transient trigger).
    #[default]
    Transient,
    /// The event is kept in the case until a task waiting for it is enabled, which then
    /// consumes it at once (WCP-24, persistent trigger).
    Persistent,
}

impl TriggerKind {
    /// Returns whether this is the default kind, which the wire formats leave out.
    pub fn is_transient(&self) -> bool {
        *self == TriggerKind::Transient
    }
}

/// Who may do a human task, and how the work item reaches them.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct HumanBinding {
    pub roles: Vec<String>,
    pub allocation: Allocation,
    /// The same user may not complete two four-eyes tasks of one case.
    pub four_eyes: bool,
    /// The definition leaves distribution to run time (YAWL's `<offer initiator="user"/>`):
    /// `roles` is the administrators' queue, and an administrator offers the work item to
    /// other roles (`Input::OfferWorkItem`) or allocates it to a user.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub distributed_at_runtime: bool,
}

/// How a work item is allocated among the members of its roles.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Allocation {
    /// Offered to every member of the roles; the first to claim it gets it.
    RoleOffer,
    RoundRobin,
    ShortestQueue,
}

/// Which connector performs an automated task, and its settings.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct ConnectorBinding {
    pub connector: String,
    /// Connector-specific settings (URL template, method, topic...), as the definition gives them.
    pub settings: BTreeMap<String, String>,
}

/// Runtime hints that knhk-core carries but does not interpret.
#[derive(Clone, Debug, PartialEq, Eq, Default, Serialize, Deserialize)]
pub struct RuntimeHints {
    pub max_attempts: Option<u32>,
    pub backoff_ms: Option<u64>,
    pub timeout_ms: Option<u64>,
    pub slo_class: Option<String>,
}

/// A multiple-instance task: how many instances, how they are made, when the task completes.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct MultipleInstance {
    pub minimum: u32,
    /// `None`: unbounded.
    pub maximum: Option<u32>,
    /// The task completes when this many instances completed (the rest are cancelled);
    /// `None`: when all did.
    pub threshold: Option<u32>,
    pub creation: CreationMode,
    /// A CEL expression over the case data giving the list to split, one instance per item;
    /// without it the task starts `minimum` instances.
    pub split: Option<Expression>,
    /// The name under which an instance sees its item.
    pub item_variable: String,
    /// The case data variable that receives the list of the instances' outputs, in instance order.
    pub join_variable: Option<String>,
}

/// Whether instances can be added while a multiple-instance task runs.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum CreationMode {
    Static,
    Dynamic,
}

/// A timer on a task.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct TaskTimer {
    pub trigger: TimerTrigger,
    pub duration_ms: u64,
    pub action: TimerAction,
}

/// When a task's timer starts running.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum TimerTrigger {
    OnEnabled,
    OnStarted,
}

/// What happens when a task's timer fires.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum TimerAction {
    /// The task's unfinished work is withdrawn and the task completes (YAWL's timeout).
    Expire,
    /// The task may only start once the timer fired (an `OnEnabled` delay).
    Delay,
}
