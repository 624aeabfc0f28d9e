//! Inputs: everything that can happen to a case from outside knhk-core.

use serde_json::{Map, Value};

use crate::event::{FailedAttempt, TaskRef};
use crate::ids::{TimerId, WorkItemId};

/// A command or an outside result fed to [`crate::Case::apply`].
#[derive(Clone, Debug, PartialEq)]
pub enum Input {
    /// Starts a created case: a token is put in the root net's input condition.
    Start,
    /// An administrator offers an offered, not yet allocated work item to `roles` instead of
    /// the roles it was offered to (the distribution of a task left to run time).
    OfferWorkItem {
        item: WorkItemId,
        roles: Vec<String>,
    },
    /// A user claims an offered work item (it stays unstarted).
    AllocateWorkItem {
        item: WorkItemId,
        user: String,
    },
    /// The user a work item is allocated to gives it back: it is offered to its roles again.
    ReleaseWorkItem {
        item: WorkItemId,
        user: String,
    },
    /// The user who holds a work item (allocated or started) hands it to another user; the
    /// history records both.
    DelegateWorkItem {
        item: WorkItemId,
        from: String,
        to: String,
    },
    /// A user starts a work item; for a task that only was enabled, this starts the task and
    /// withdraws the tasks that shared its tokens (deferred choice).
    StartWorkItem {
        item: WorkItemId,
        user: String,
    },
    /// A user completes a work item; `output` (a JSON object) merges into the case data.
    CompleteWorkItem {
        item: WorkItemId,
        user: String,
        output: Value,
    },
    /// A user or the runtime gives up on a work item; the task fails.
    FailWorkItem {
        item: WorkItemId,
        reason: String,
    },
    /// The connector answered, after `failed_attempts` were retried.
    ConnectorSucceeded {
        item: WorkItemId,
        output: Value,
        failed_attempts: Vec<FailedAttempt>,
    },
    /// The connector failed for good (the runtime already retried `failed_attempts`); the
    /// task fails.
    ConnectorFailed {
        item: WorkItemId,
        error: String,
        failed_attempts: Vec<FailedAttempt>,
    },
    TimerFired {
        timer: TimerId,
    },
    /// An outside event arrived: every enabled trigger task waiting for it starts and completes.
    TriggerReceived {
        event: String,
        data: Value,
    },
    /// Adds an instance to a running dynamic multiple-instance task.
    AddInstance {
        task: TaskRef,
        item: Value,
    },
    /// Completes a running task now, withdrawing its unfinished instances (WCP-27, complete
    /// multiple-instance activity).
    CompleteTask {
        task: TaskRef,
    },
    /// Sets top-level keys of the case data.
    UpdateData {
        changes: Map<String, Value>,
    },
    Suspend,
    Resume,
    /// An operator runs a task of a failed case again: the task whose incident is open, or
    /// `task` when several are. A started task starts again with the same instances (a
    /// connector call with a new work item and so a new idempotency key; a new work item for
    /// people); the case runs again once no incident is left open.
    RetryTask {
        task: Option<TaskRef>,
    },
    Cancel {
        reason: String,
    },
}
