//! knhk-workflow-engine: the durable runtime.
//!
//! A [`WorkflowEngine`] drives cases: it loads a case, applies an input with knhk-core,
//! commits the new events together with the case snapshot, work items and timers in one
//! store transaction, and only then performs the effects (connector calls, allocation,
//! timers) and feeds their results back as inputs. After a restart, [`WorkflowEngine::recover`]
//! picks every unfinished case up from its last committed step and
//! [`WorkflowEngine::spawn_timers`] arms the stored timers again.

mod clock;
mod directory;
mod engine;
mod error;
mod records;
mod retry;
mod timers;

pub use clock::Clock;
pub use directory::{Directory, DirectoryError};
pub use engine::{CaseUpdate, CaseView, EngineConfig, WorkflowEngine, WorkflowView};
pub use error::{ConnectorProblem, Error, ErrorCode, StoredWorkflowError};
