//! knhk-core: the semantics of YAWL nets, pure and synchronous.
//!
//! A [`Workflow`] is a validated [`Specification`] indexed for execution. A [`Case`] is one run
//! of it: [`Case::apply`] takes the time, an [`Input`] and a source of ids, and returns the
//! [`Event`]s that changed the case and the [`Effect`]s the runtime must perform. Every change
//! of a case goes through its events, so [`Case::replay`] of a history rebuilds the same case.
//! Nothing here does I/O, reads a clock or makes up random ids.

#![cfg_attr(not(test), deny(clippy::indexing_slicing))]

mod case;
#[cfg(feature = "test-support")]
pub mod driver;
mod effect;
mod error;
mod event;
pub mod expr;
mod ids;
mod index;
mod input;
pub mod model;
mod orjoin;
mod recovery;
mod sorted;
mod step;
mod workflow;

pub use case::{
    Case, CaseSnapshot, Incident, SnapshotError, Step, Wait, WorkItem, WorkItemKind, WorkItemState,
};
pub use effect::Effect;
pub use error::{Error, InvalidDefinition, Violation};
pub use event::{CaseStatus, Event, EventKind, FailedAttempt, TaskRef};
pub use ids::{
    CaseId, ElementId, IdSource, NetId, SequentialIds, TimerId, Timestamp, WorkItemId, WorkflowId,
};
pub use input::Input;
pub use model::Specification;
pub use orjoin::{OR_JOIN_BUDGET, OrJoinStats};
pub use step::ApplyOptions;
pub use workflow::Workflow;
