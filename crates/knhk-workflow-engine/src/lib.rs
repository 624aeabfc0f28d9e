//! knhk-workflow-engine: the durable runtime.
//!
//! A [`WorkflowEngine`] drives cases: it loads a case, applies an input with knhk-core,
//! commits the new events together with the case snapshot, work items and timers in one
//! store transaction, and only then performs the effects (connector calls, allocation,
//! timers) and feeds their results back as inputs. Callers see the engine's own views
//! ([`CaseView`], [`WorkItemView`], [`WorkflowView`]) and queries, never the store's rows. A
//! long-running process calls [`WorkflowEngine::run`] (or [`WorkflowEngine::start`]), which
//! picks every unfinished case up from its last committed step and arms the stored timers.

mod clock;
mod directory;
mod engine;
mod error;
pub mod intake;
mod records;
mod retry;
mod timers;
mod view;

pub use clock::Clock;
pub use directory::{Directory, DirectoryError};
pub use engine::{
    AnchorConfig, CaseFault, CaseUpdate, CheckpointView, EngineConfig, IdOrder, KeySource,
    KeyedCase, LockchainConfig, LockchainHealth, Started, StoreProblem, StoreReport, Subject,
    VerifyOptions, VerifyReport, WorkflowEngine, connector_problems, connector_views,
    probe_connectors,
};
pub use error::{ConnectorProblem, Error, ErrorCode, StoredWorkflowError};
pub use view::{
    CaseQuery, CaseView, ConnectorHealth, ConnectorPool, ConnectorView, ItemCursor,
    MarkedCondition, QuarantinedCase, Registration, SourceFormat, SubscriptionHealthView,
    UnknownName, WorkItemQuery, WorkItemStatus, WorkItemView, WorkflowSummary, WorkflowView,
    allocation_name,
};
