//! Errors of the engine, one enum for every operation, and the code vocabulary they map to.

use knhk_connectors::BindingError;
use knhk_core::WorkflowId;
use knhk_core::{CaseId, TimerId, WorkItemId};

use crate::directory::DirectoryError;

/// What went wrong in the engine; each variant names the thing at fault.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    #[error("unknown workflow {0}")]
    UnknownWorkflow(WorkflowId),
    /// No workflow has this id, id prefix, URI or name.
    #[error("unknown workflow {0}: no workflow has it as id, URI or name")]
    UnknownWorkflowName(String),
    /// The workflow exists, but not in this version.
    #[error("workflow {workflow} has no version {version} (its latest is {latest})")]
    UnknownWorkflowVersion {
        workflow: String,
        version: u32,
        latest: u32,
    },
    /// A name or id prefix that fits more than one workflow; each match is described.
    #[error("{reference} names {} workflows: {}; {hint}", matches.len(), matches.join(", "))]
    AmbiguousWorkflow {
        reference: String,
        matches: Vec<String>,
        hint: &'static str,
    },
    /// Registrations of other processes kept taking the next version of this URI.
    #[error("workflow {uri} kept getting new versions from concurrent registrations; try again")]
    RegistrationBusy { uri: String },
    #[error("unknown case {0}")]
    UnknownCase(CaseId),
    /// No connector instance has this name.
    #[error("unknown connector {name} (known: {known})")]
    UnknownConnector { name: String, known: String },
    /// A shortened id (not a whole UUID) that starts no id, nor the last group of one.
    #[error("unknown {what} {reference}: no {what} id starts with it, nor the last group of one")]
    UnknownId {
        what: &'static str,
        reference: String,
    },
    /// A shortened id that starts several ids (or their last groups); each is listed, up to
    /// ten (`more`: there are others).
    #[error(
        "{reference} starts {}{} {what}s: {}{} (give more of it)",
        if *more { "more than " } else { "" },
        matches.len(),
        matches.join(", "),
        if *more { ", ..." } else { "" }
    )]
    AmbiguousId {
        what: &'static str,
        reference: String,
        matches: Vec<String>,
        more: bool,
    },
    /// Text given as an id that cannot start one (an id is hex digits and `-`).
    #[error(
        "{reference:?} is not a {what} id: a UUID, or the first characters of one or of its last group"
    )]
    NotAnId {
        what: &'static str,
        reference: String,
    },
    #[error("unknown work item {0}")]
    UnknownWorkItem(WorkItemId),
    #[error(transparent)]
    Definition(#[from] knhk_spec::Error),
    #[error("{0}")]
    Case(#[from] knhk_core::Error),
    /// (The store's own messages say what it was doing: `storing a case: database or disk is
    /// full`, `the store ... is read-only`.)
    #[error(transparent)]
    Store(#[from] knhk_store::Error),
    #[error("case {0} kept changing under concurrent updates; try again")]
    Busy(CaseId),
    #[error("stored workflow {id} does not load: {source}")]
    CorruptWorkflow {
        id: WorkflowId,
        #[source]
        source: StoredWorkflowError,
    },
    #[error("stored history of case {id} does not replay: {source}")]
    CorruptCase {
        id: CaseId,
        #[source]
        source: knhk_core::Error,
    },
    #[error(
        "stored case {id} is corrupt: its row says version {stored}, but its history ends at \
         event {history}"
    )]
    CorruptVersion {
        id: CaseId,
        stored: u64,
        history: u64,
    },
    #[error("stored {row} {id} does not decode: {source}")]
    CorruptRow {
        row: &'static str,
        id: String,
        #[source]
        source: crate::view::RowError,
    },
    #[error("{user} may not take work item {item}: it is offered to {}, and {user} holds none of them", roles.join(", "))]
    NotInRole {
        user: String,
        item: WorkItemId,
        roles: Vec<String>,
    },
    #[error("{user} may not distribute work items: only members of the role {role} may")]
    NotAdministrator { user: String, role: String },
    #[error("the {what} is larger than the {limit} bytes this engine takes")]
    TooLarge { what: &'static str, limit: usize },
    #[error("case data must be a JSON object")]
    DataNotObject,
    #[error(transparent)]
    Directory(#[from] DirectoryError),
    #[error("workflow {workflow} cannot run here: {}", join(problems))]
    Connectors {
        workflow: String,
        problems: Vec<ConnectorProblem>,
    },
    #[error(
        "case {case} could not take the result of its step after {attempts} attempts, and \
         stays as last stored (a worker performs the step again): {source}"
    )]
    ResultLost {
        case: CaseId,
        attempts: u32,
        #[source]
        source: std::sync::Arc<Error>,
    },
    #[error("case {id} is quarantined: {reason} (`knhk store check` names what is wrong)")]
    Quarantined { id: CaseId, reason: String },
    #[error("case {0} is not quarantined: there is nothing to release")]
    NotQuarantined(CaseId),
    #[error("case {id} stays quarantined: {}", problems.join("; "))]
    StillBroken { id: CaseId, problems: Vec<String> },
    #[error("the engine is shutting down")]
    ShuttingDown,
    #[error("timer {timer} is not due yet: it falls due in {due_in_ms} ms")]
    TimerNotDue { timer: TimerId, due_in_ms: i64 },
    /// The case has no event with this sequence number.
    #[error("case {case} has no event {seq}")]
    UnknownEvent { case: CaseId, seq: u64 },
    /// The engine keeps no lockchain (its config has none), so it has no receipts,
    /// checkpoints or key.
    #[error(
        "the lockchain is off in this engine (lockchain.enabled = false): no leaves, checkpoints, receipts or key"
    )]
    LockchainOff,
    /// The event was committed while the lockchain was off: it has no leaf, so no receipt.
    #[error("event {seq} of case {case} has no leaf: committed without the lockchain")]
    NoLeaf { case: CaseId, seq: u64 },
    /// The lockchain could not sign, prove or read what it needed (the words say what).
    #[error("lockchain: {0}")]
    Lockchain(String),
    /// No checkpoint of this tree size is stored; `below` and `above` are the stored sizes
    /// nearest to it, if any.
    #[error("no checkpoint of tree size {size} is stored ({})", nearest_checkpoints(*below, *above))]
    UnknownCheckpoint {
        size: u64,
        below: Option<u64>,
        above: Option<u64>,
    },
    /// A consistency proof was asked from a larger tree to a smaller one.
    #[error(
        "a consistency proof goes from an older tree to a newer one: from {old} is larger than to {new}"
    )]
    NotAPrefix { old: u64, new: u64 },
}

/// Says which stored checkpoint sizes are nearest to one that is not stored.
fn nearest_checkpoints(below: Option<u64>, above: Option<u64>) -> String {
    match (below, above) {
        (None, None) => "no checkpoint is stored yet".to_owned(),
        (Some(b), None) => format!("the nearest stored is {b}, the latest"),
        (None, Some(a)) => format!("the nearest stored is {a}, the first"),
        (Some(b), Some(a)) => format!("the nearest stored are {b} and {a}"),
    }
}

/// Why a stored workflow does not load.
#[derive(Debug, thiserror::Error)]
pub enum StoredWorkflowError {
    /// The stored specification does not decode.
    #[error(transparent)]
    Decode(#[from] serde_json::Error),
    /// The specification decodes but is no longer a valid workflow.
    #[error(transparent)]
    Invalid(#[from] knhk_core::InvalidDefinition),
}

/// A connector task of a workflow that this engine cannot run.
#[derive(Debug, thiserror::Error)]
#[error("{task}: {error}")]
pub struct ConnectorProblem {
    /// The task, by its id.
    pub task: String,
    #[source]
    pub error: BindingError,
}

fn join(problems: &[ConnectorProblem]) -> String {
    problems
        .iter()
        .map(ToString::to_string)
        .collect::<Vec<_>>()
        .join("; ")
}

/// What kind of failure an [`Error`] is, in a vocabulary shared by every interface.
///
/// The codes follow gRPC's canonical status codes, of which they keep those the engine can
/// produce. The API maps each code once to an HTTP status and once to a gRPC code, so that a
/// client sees the same kind of failure whichever protocol it speaks, and the engine never
/// decides about HTTP.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum ErrorCode {
    /// The request is wrong whatever the state: bad data, an invalid definition.
    InvalidArgument,
    /// A workflow, case, work item or timer that does not exist.
    NotFound,
    /// The thing the request would create exists already (a workflow id, an idempotency key).
    AlreadyExists,
    /// The caller may not do this: a work item allocated to someone else, a four-eyes rule.
    PermissionDenied,
    /// The request is valid but not in the present state, e.g. completing a task of a case that
    /// has ended. Retrying will not help until the state changes.
    FailedPrecondition,
    /// A concurrent change won; the caller may retry the whole operation.
    Aborted,
    /// The engine or its store cannot serve now (stopping, store failing); retrying later may
    /// succeed.
    Unavailable,
    /// A fault of the engine or of stored data that the caller cannot fix.
    Internal,
}

impl ErrorCode {
    /// Every code, for tables and tests.
    pub const ALL: [ErrorCode; 8] = [
        ErrorCode::InvalidArgument,
        ErrorCode::NotFound,
        ErrorCode::AlreadyExists,
        ErrorCode::PermissionDenied,
        ErrorCode::FailedPrecondition,
        ErrorCode::Aborted,
        ErrorCode::Unavailable,
        ErrorCode::Internal,
    ];

    /// Returns the stable snake_case name of the code, as error bodies and logs carry it.
    pub fn as_str(self) -> &'static str {
        match self {
            ErrorCode::InvalidArgument => "invalid_argument",
            ErrorCode::NotFound => "not_found",
            ErrorCode::AlreadyExists => "already_exists",
            ErrorCode::PermissionDenied => "permission_denied",
            ErrorCode::FailedPrecondition => "failed_precondition",
            ErrorCode::Aborted => "aborted",
            ErrorCode::Unavailable => "unavailable",
            ErrorCode::Internal => "internal",
        }
    }
}

impl std::fmt::Display for ErrorCode {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

impl Error {
    /// Returns whether this error says that stored data of a case is damaged: a case that
    /// fails to load with it is quarantined.
    pub(crate) fn is_corruption(&self) -> bool {
        matches!(
            self,
            Error::CorruptCase { .. }
                | Error::CorruptVersion { .. }
                | Error::CorruptRow { .. }
                | Error::CorruptWorkflow { .. }
                | Error::Store(knhk_store::Error::Corrupt(_))
        )
    }

    /// Returns the kind of failure, for the API to choose a status from.
    pub fn code(&self) -> ErrorCode {
        match self {
            Error::UnknownWorkflow(_)
            | Error::UnknownWorkflowName(_)
            | Error::UnknownWorkflowVersion { .. }
            | Error::UnknownCase(_)
            | Error::UnknownId { .. }
            | Error::UnknownWorkItem(_)
            | Error::UnknownEvent { .. }
            | Error::UnknownConnector { .. } => ErrorCode::NotFound,
            Error::AmbiguousWorkflow { .. } | Error::AmbiguousId { .. } | Error::NotAnId { .. } => {
                ErrorCode::InvalidArgument
            }
            Error::RegistrationBusy { .. } => ErrorCode::Aborted,
            Error::Definition(e) => spec_code(e),
            Error::Case(e) => core_code(e),
            Error::Store(e) => store_code(e),
            Error::Busy(_) => ErrorCode::Aborted,
            Error::CorruptWorkflow { .. }
            | Error::CorruptCase { .. }
            | Error::CorruptVersion { .. }
            | Error::CorruptRow { .. } => ErrorCode::Internal,
            Error::DataNotObject | Error::TooLarge { .. } => ErrorCode::InvalidArgument,
            Error::NotAdministrator { .. } | Error::NotInRole { .. } => ErrorCode::PermissionDenied,
            Error::Directory(_) => ErrorCode::InvalidArgument,
            // Only missing connectors: the definition is fine, this engine lacks what it needs.
            Error::Connectors { problems, .. }
                if problems
                    .iter()
                    .all(|p| matches!(p.error, BindingError::UnknownConnector { .. })) =>
            {
                ErrorCode::FailedPrecondition
            }
            Error::Connectors { .. } => ErrorCode::InvalidArgument,
            Error::ShuttingDown => ErrorCode::Unavailable,
            Error::TimerNotDue { .. } => ErrorCode::FailedPrecondition,
            // Nothing runs a quarantined case until someone repairs it.
            Error::Quarantined { .. } => ErrorCode::FailedPrecondition,
            Error::NotQuarantined(_) | Error::StillBroken { .. } => ErrorCode::FailedPrecondition,
            Error::ResultLost { source, .. } => source.code(),
            Error::LockchainOff | Error::NoLeaf { .. } => ErrorCode::FailedPrecondition,
            Error::Lockchain(_) => ErrorCode::Internal,
            Error::UnknownCheckpoint { .. } => ErrorCode::NotFound,
            Error::NotAPrefix { .. } => ErrorCode::InvalidArgument,
        }
    }
}

fn spec_code(e: &knhk_spec::Error) -> ErrorCode {
    use knhk_spec::Error as E;
    match e {
        E::Io { source, .. } if source.kind() == std::io::ErrorKind::NotFound => {
            ErrorCode::NotFound
        }
        E::Io { .. } => ErrorCode::Unavailable,
        E::UnsupportedFormat { .. }
        | E::BaseIri { .. }
        | E::Syntax { .. }
        | E::XmlSyntax { .. }
        | E::TooLarge { .. }
        | E::Invalid { .. } => ErrorCode::InvalidArgument,
    }
}

/// An input the case refused: the case is unchanged, so none of these is the engine's fault,
/// except a history that does not replay.
fn core_code(e: &knhk_core::Error) -> ErrorCode {
    use knhk_core::Error as E;
    match e {
        E::UnknownWorkItem(_) | E::UnknownTimer(_) => ErrorCode::NotFound,
        E::WrongCaseState { .. }
        | E::WrongWorkItemState { .. }
        | E::NoTriggerWaiting(_)
        | E::CannotAddInstance { .. }
        | E::CannotCompleteTask { .. }
        | E::CannotRetry(_) => ErrorCode::FailedPrecondition,
        E::NotAllocatedTo { .. } | E::FourEyes { .. } => ErrorCode::PermissionDenied,
        E::OutputNotObject(_) | E::NoRoles(_) | E::DataTooLarge(_) => ErrorCode::InvalidArgument,
        E::Replay { .. } | E::Misfit { .. } => ErrorCode::Internal,
    }
}

fn store_code(e: &knhk_store::Error) -> ErrorCode {
    use knhk_store::Error as E;
    match e {
        E::Conflict { .. } => ErrorCode::Aborted,
        // Another node owns the case's work now: this node's result of it is dropped.
        E::Fenced { .. } => ErrorCode::Aborted,
        // This node lost its lease and registers again: the caller may try again.
        E::LeaseExpired { .. } => ErrorCode::Unavailable,
        E::DuplicateWorkflow(_) | E::DuplicateKey(_) | E::DuplicateVersion { .. } => {
            ErrorCode::AlreadyExists
        }
        // The store is newer than this engine: an operator must upgrade it.
        E::UnsupportedFormat { .. } => ErrorCode::FailedPrecondition,
        E::Address(_) => ErrorCode::InvalidArgument,
        E::Sqlite { .. }
        | E::Postgres { .. }
        | E::Pool { .. }
        | E::Io { .. }
        | E::Closed
        | E::WriterStopped
        | E::Spawn(_)
        | E::Task { .. }
        | E::WalRefused { .. } => ErrorCode::Unavailable,
        // Reads work; a write waits for an operator to make the store writable.
        E::ReadOnly { .. } | E::ReadOnlyUnclean { .. } | E::ReadOnlyFormat { .. } => {
            ErrorCode::FailedPrecondition
        }
        E::Batch(cause) => store_code(cause),
        // The engine built a commit that breaks the store's rules, or data it cannot encode.
        E::Gap { .. } | E::Encode { .. } | E::TooLarge { .. } | E::Corrupt(_) | E::Lockchain(_) => {
            ErrorCode::Internal
        }
    }
}
