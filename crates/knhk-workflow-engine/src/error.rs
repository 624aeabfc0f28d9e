//! Errors of the engine, one enum for every operation.

use knhk_core::WorkflowId;
use knhk_core::{CaseId, WorkItemId};

/// What went wrong in the engine; each variant names the thing at fault.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    #[error("unknown workflow {0}")]
    UnknownWorkflow(WorkflowId),
    #[error("unknown case {0}")]
    UnknownCase(CaseId),
    #[error("unknown work item {0}")]
    UnknownWorkItem(WorkItemId),
    #[error(transparent)]
    Definition(#[from] knhk_spec::Error),
    #[error("{0}")]
    Case(#[from] knhk_core::Error),
    #[error("store: {0}")]
    Store(#[from] knhk_store::Error),
    #[error("case {0} kept changing under concurrent updates; try again")]
    Busy(CaseId),
    #[error("stored workflow {id} does not load: {why}")]
    CorruptWorkflow { id: WorkflowId, why: String },
    #[error("stored history of case {id} does not replay: {why}")]
    CorruptCase { id: CaseId, why: String },
    #[error("stored {row} {id} does not decode: {why}")]
    CorruptRow {
        row: &'static str,
        id: String,
        why: crate::view::UnknownName,
    },
    #[error("cannot encode the {what}: {why}")]
    Encode { what: &'static str, why: String },
    #[error("case data must be a JSON object")]
    DataNotObject,
    #[error("workflow {workflow} cannot run here: {}", problems.join("; "))]
    Connectors {
        workflow: String,
        problems: Vec<String>,
    },
    #[error("the engine is shutting down")]
    ShuttingDown,
}
