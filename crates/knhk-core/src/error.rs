//! Errors of knhk-core: a definition that breaks a rule, or an input the case cannot take.

use std::fmt;

use crate::event::CaseStatus;
use crate::ids::{TimerId, WorkItemId};

/// One rule a definition breaks, and the element that breaks it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Violation {
    /// The element (task, condition, net or flow) at fault, by its id.
    pub element: String,
    /// What is wrong, in words.
    pub rule: String,
}

impl fmt::Display for Violation {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}: {}", self.element, self.rule)
    }
}

/// A definition refused by validation, with every rule it breaks.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub struct InvalidDefinition {
    pub violations: Vec<Violation>,
}

impl fmt::Display for InvalidDefinition {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("invalid workflow definition")?;
        for v in &self.violations {
            write!(f, "\n  - {v}")?;
        }
        Ok(())
    }
}

/// An input a case cannot take. The case is unchanged when `apply` returns one of these.
#[derive(Clone, Debug, PartialEq, thiserror::Error)]
pub enum Error {
    #[error("case is {status}, cannot {action}")]
    WrongCaseState {
        status: CaseStatus,
        action: &'static str,
    },
    #[error("unknown work item {0}")]
    UnknownWorkItem(WorkItemId),
    #[error("work item {item} is {state}, cannot {action}")]
    WrongWorkItemState {
        item: WorkItemId,
        state: &'static str,
        action: &'static str,
    },
    #[error("work item {item} is allocated to {owner}, not to {user}")]
    NotAllocatedTo {
        item: WorkItemId,
        owner: String,
        user: String,
    },
    #[error(
        "user {user} completed another four-eyes task of this case and may not complete {item}"
    )]
    FourEyes { item: WorkItemId, user: String },
    #[error("work item {0} cannot be offered to no role")]
    NoRoles(WorkItemId),
    #[error("unknown timer {0}")]
    UnknownTimer(TimerId),
    #[error("no task is waiting for event {0:?}")]
    NoTriggerWaiting(String),
    #[error("{task} cannot take another instance: {why}")]
    CannotAddInstance { task: String, why: String },
    #[error("{task} cannot be completed: {why}")]
    CannotCompleteTask { task: String, why: String },
    /// A retry refused, saying why (callers say what was retried).
    #[error("{0}")]
    CannotRetry(String),
    #[error("output of a work item must be a JSON object, got {0}")]
    OutputNotObject(&'static str),
    /// Data set from outside would make the case data larger than its bound.
    #[error("the data to set {0}")]
    DataTooLarge(String),
    #[error("history does not fit this workflow at event {seq}: {why}")]
    Replay { seq: u64, why: String },
    /// A case points at a net, task, place or net instance its workflow does not have: the
    /// case was built for another workflow. Never the caller's input at fault.
    #[error("case does not fit its workflow: no {what} {index}")]
    Misfit { what: &'static str, index: u32 },
}

impl Error {
    /// Returns the value found, or a [`Error::Misfit`] naming what was looked up. A match,
    /// not `ok_or`: building (and dropping) an error on every successful lookup of the hot
    /// path is measurable.
    #[inline]
    pub(crate) fn misfit<T>(found: Option<T>, what: &'static str, index: u32) -> Result<T, Error> {
        match found {
            Some(value) => Ok(value),
            None => Err(Error::Misfit { what, index }),
        }
    }
}
