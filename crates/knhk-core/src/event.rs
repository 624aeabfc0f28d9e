//! The case history: every change of a case is one [`Event`]; folding them rebuilds the case.

use serde::{Deserialize, Serialize};
use serde_json::{Map, Value};

use crate::ids::{ElementId, NetId, TimerId, Timestamp, WorkItemId};

/// One entry of a case's append-only history.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Event {
    /// Position in the case's history, from 1, without gaps.
    pub seq: u64,
    pub time: Timestamp,
    pub kind: EventKind,
}

/// The lifecycle states of a case.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum CaseStatus {
    Created,
    Running,
    Suspended,
    Completed,
    Cancelled,
    Failed,
}

impl CaseStatus {
    /// Returns whether the case has ended (no input changes it any more).
    pub fn is_final(self) -> bool {
        matches!(
            self,
            CaseStatus::Completed | CaseStatus::Cancelled | CaseStatus::Failed
        )
    }

    /// Returns whether the state machine allows going from `self` to `to`. A case failed
    /// by a task (with an open incident) runs again once retried, and may still be cancelled
    /// by an operator or completed by a result it was waiting for; deciding (`step/`) keeps
    /// those moves to such cases.
    pub fn can_become(self, to: CaseStatus) -> bool {
        use CaseStatus::*;
        matches!(
            (self, to),
            (Created, Running)
                | (Created, Cancelled)
                | (Running, Suspended)
                | (Running, Completed)
                | (Running, Cancelled)
                | (Running, Failed)
                | (Suspended, Running)
                | (Suspended, Completed)
                | (Suspended, Cancelled)
                | (Suspended, Failed)
                | (Failed, Running)
                | (Failed, Cancelled)
                | (Failed, Completed)
        )
    }

    /// Returns the lowercase name used in messages and wire formats.
    pub fn as_str(self) -> &'static str {
        match self {
            CaseStatus::Created => "created",
            CaseStatus::Running => "running",
            CaseStatus::Suspended => "suspended",
            CaseStatus::Completed => "completed",
            CaseStatus::Cancelled => "cancelled",
            CaseStatus::Failed => "failed",
        }
    }
}

impl std::fmt::Display for CaseStatus {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

/// Where a task sits: which instance of which net. The root net's instance is 0; sub-net
/// instances are numbered in the order they start.
#[derive(Clone, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub struct TaskRef {
    pub net_instance: u32,
    pub task: ElementId,
}

/// An attempt of a connector call that failed and was retried: its number (from 1) and its
/// error, a status line or a transport error, never a response body.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct FailedAttempt {
    pub attempt: u32,
    pub error: String,
}

/// What happened to a case.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(tag = "type", rename_all = "snake_case")]
pub enum EventKind {
    /// The case exists, with its initial data; it has not started.
    CaseCreated {
        workflow: String,
        data: Map<String, Value>,
    },
    /// The case moved from one lifecycle state to another.
    CaseStateChanged {
        from: CaseStatus,
        to: CaseStatus,
        /// Why, for cancellations and failures.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        reason: Option<String>,
    },
    /// The case holds tokens but nothing can ever fire again; the case fails after this event.
    CaseDeadlocked {
        marked: Vec<ElementId>,
    },
    /// One step fired more tasks than its bound allows without waiting for the outside
    /// world (a loop of automatic tasks); the case fails after this event. `tasks` are the
    /// tasks that started more than once in that step: the loop.
    FiringLimitReached {
        firings: u32,
        tasks: Vec<TaskRef>,
    },
    /// A composite task's instance started a sub-net instance.
    NetStarted {
        net_instance: u32,
        net: NetId,
        parent: TaskRef,
        instance: u32,
    },
    /// A sub-net instance finished (its output condition was reached, or it was torn down).
    NetEnded {
        net_instance: u32,
    },
    TaskEnabled {
        task: TaskRef,
    },
    /// A task lost its enabling tokens before it started (deferred choice, cancellation).
    TaskWithdrawn {
        task: TaskRef,
    },
    /// The task consumed its tokens and created its instances (one unless multiple-instance).
    TaskStarted {
        task: TaskRef,
        instances: Vec<Value>,
    },
    /// A multiple-instance task gained an instance while running (dynamic creation).
    InstanceAdded {
        task: TaskRef,
        item: Value,
    },
    InstanceCompleted {
        task: TaskRef,
        instance: u32,
        output: Value,
    },
    /// The task completed and produced tokens in these conditions.
    TaskCompleted {
        task: TaskRef,
        produced: Vec<ElementId>,
    },
    TaskCancelled {
        task: TaskRef,
    },
    /// The task failed. With a failure flow, a token went there and the case goes on;
    /// without one, the case fails next.
    TaskFailed {
        task: TaskRef,
        reason: String,
        #[serde(default, skip_serializing_if = "Vec::is_empty")]
        produced: Vec<ElementId>,
    },
    /// A task failed with no failure flow to take: the case fails (or stays failed) with
    /// this incident open, the rest of its work left as it stood, until an operator retries
    /// the task ([`crate::Input::RetryTask`]) or cancels the case. Follows the task's
    /// [`EventKind::TaskFailed`].
    IncidentRaised {
        task: TaskRef,
        reason: String,
        /// Whether the task had started (taken its tokens): a retry starts it again with
        /// the same instances. A task that failed while only enabled still has its tokens,
        /// and a retry lets it be enabled again.
        started: bool,
        /// The items of the failed task's instances (a multiple-instance task's; empty
        /// otherwise), run again by a retry.
        #[serde(default, skip_serializing_if = "Vec::is_empty")]
        instances: Vec<Value>,
    },
    /// An operator retried a task with an open incident: the incident is closed and the task
    /// runs again. `attempt` counts the task's runs for incidents: 2 for the first retry.
    TaskRetried {
        task: TaskRef,
        attempt: u32,
    },
    /// Tokens were removed by a cancellation set or because the case or net ended.
    TokensRemoved {
        net_instance: u32,
        condition: ElementId,
        count: u32,
    },
    WorkItemOffered {
        item: WorkItemId,
        task: TaskRef,
        instance: u32,
        /// What the people doing the work see.
        input: Value,
    },
    /// An administrator offered a work item that was offered and not yet allocated to these
    /// roles, in place of the roles it was offered to.
    WorkItemReoffered {
        item: WorkItemId,
        roles: Vec<String>,
    },
    WorkItemAllocated {
        item: WorkItemId,
        user: String,
    },
    WorkItemStarted {
        item: WorkItemId,
        user: String,
    },
    /// The user a work item was allocated to gave it back; it is offered again.
    WorkItemReleased {
        item: WorkItemId,
        user: String,
    },
    /// The user who held a work item handed it to another.
    WorkItemDelegated {
        item: WorkItemId,
        from: String,
        to: String,
    },
    WorkItemCompleted {
        item: WorkItemId,
        user: String,
        output: Value,
    },
    WorkItemCancelled {
        item: WorkItemId,
    },
    ConnectorCallStarted {
        item: WorkItemId,
        task: TaskRef,
        instance: u32,
        connector: String,
        /// The same for every attempt of this call, also after a restart.
        idempotency_key: String,
        input: Value,
    },
    ConnectorCallSucceeded {
        item: WorkItemId,
        output: Value,
        /// The attempts that failed and were retried before this one answered.
        #[serde(default, skip_serializing_if = "Vec::is_empty")]
        failed_attempts: Vec<FailedAttempt>,
    },
    /// The call failed for good; `error` is its last attempt's.
    ConnectorCallFailed {
        item: WorkItemId,
        error: String,
        /// The attempts that failed and were retried before the last one.
        #[serde(default, skip_serializing_if = "Vec::is_empty")]
        failed_attempts: Vec<FailedAttempt>,
    },
    TimerArmed {
        timer: TimerId,
        task: TaskRef,
        fires_at: Timestamp,
    },
    TimerFired {
        timer: TimerId,
    },
    TimerCancelled {
        timer: TimerId,
    },
    /// Top-level keys of the case data were set to these values.
    DataUpdated {
        changes: Map<String, Value>,
    },
    /// An event of a persistent trigger arrived while no task waited for it: the case keeps
    /// it, in arrival order, until a task waiting for it is enabled.
    TriggerKept {
        event: String,
        data: Value,
    },
    /// A trigger task consumed the oldest kept event of its name as it was enabled; the task
    /// starts with it next.
    TriggerConsumed {
        event: String,
        task: TaskRef,
    },
}

impl EventKind {
    /// Returns the snake-case name of this kind of event, as in the wire formats.
    pub fn name(&self) -> &'static str {
        match self {
            EventKind::CaseCreated { .. } => "case_created",
            EventKind::CaseStateChanged { .. } => "case_state_changed",
            EventKind::CaseDeadlocked { .. } => "case_deadlocked",
            EventKind::FiringLimitReached { .. } => "firing_limit_reached",
            EventKind::NetStarted { .. } => "net_started",
            EventKind::NetEnded { .. } => "net_ended",
            EventKind::TaskEnabled { .. } => "task_enabled",
            EventKind::TaskWithdrawn { .. } => "task_withdrawn",
            EventKind::TaskStarted { .. } => "task_started",
            EventKind::InstanceAdded { .. } => "instance_added",
            EventKind::InstanceCompleted { .. } => "instance_completed",
            EventKind::TaskCompleted { .. } => "task_completed",
            EventKind::TaskCancelled { .. } => "task_cancelled",
            EventKind::TaskFailed { .. } => "task_failed",
            EventKind::IncidentRaised { .. } => "incident_raised",
            EventKind::TaskRetried { .. } => "task_retried",
            EventKind::TokensRemoved { .. } => "tokens_removed",
            EventKind::WorkItemOffered { .. } => "work_item_offered",
            EventKind::WorkItemReoffered { .. } => "work_item_reoffered",
            EventKind::WorkItemAllocated { .. } => "work_item_allocated",
            EventKind::WorkItemReleased { .. } => "work_item_released",
            EventKind::WorkItemDelegated { .. } => "work_item_delegated",
            EventKind::WorkItemStarted { .. } => "work_item_started",
            EventKind::WorkItemCompleted { .. } => "work_item_completed",
            EventKind::WorkItemCancelled { .. } => "work_item_cancelled",
            EventKind::ConnectorCallStarted { .. } => "connector_call_started",
            EventKind::ConnectorCallSucceeded { .. } => "connector_call_succeeded",
            EventKind::ConnectorCallFailed { .. } => "connector_call_failed",
            EventKind::TimerArmed { .. } => "timer_armed",
            EventKind::TimerFired { .. } => "timer_fired",
            EventKind::TimerCancelled { .. } => "timer_cancelled",
            EventKind::DataUpdated { .. } => "data_updated",
            EventKind::TriggerKept { .. } => "trigger_kept",
            EventKind::TriggerConsumed { .. } => "trigger_consumed",
        }
    }

    /// Returns the work item (or connector call) this event is about, where there is one.
    pub fn work_item(&self) -> Option<&WorkItemId> {
        match self {
            EventKind::WorkItemOffered { item, .. }
            | EventKind::WorkItemReoffered { item, .. }
            | EventKind::WorkItemAllocated { item, .. }
            | EventKind::WorkItemReleased { item, .. }
            | EventKind::WorkItemDelegated { item, .. }
            | EventKind::WorkItemStarted { item, .. }
            | EventKind::WorkItemCompleted { item, .. }
            | EventKind::WorkItemCancelled { item }
            | EventKind::ConnectorCallStarted { item, .. }
            | EventKind::ConnectorCallSucceeded { item, .. }
            | EventKind::ConnectorCallFailed { item, .. } => Some(item),
            _ => None,
        }
    }

    /// Returns the task this event is about, where there is one.
    pub fn task(&self) -> Option<&TaskRef> {
        match self {
            EventKind::TaskEnabled { task }
            | EventKind::TaskWithdrawn { task }
            | EventKind::TaskStarted { task, .. }
            | EventKind::InstanceAdded { task, .. }
            | EventKind::InstanceCompleted { task, .. }
            | EventKind::TaskCompleted { task, .. }
            | EventKind::TaskCancelled { task }
            | EventKind::TaskFailed { task, .. }
            | EventKind::IncidentRaised { task, .. }
            | EventKind::TaskRetried { task, .. }
            | EventKind::WorkItemOffered { task, .. }
            | EventKind::ConnectorCallStarted { task, .. }
            | EventKind::TimerArmed { task, .. }
            | EventKind::TriggerConsumed { task, .. } => Some(task),
            _ => None,
        }
    }
}
