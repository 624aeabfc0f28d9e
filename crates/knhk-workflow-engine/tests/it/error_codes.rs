//! Every engine error maps to one code of the shared vocabulary; the tables list each variant of
//! the engine's, knhk-core's, knhk-spec's and knhk-store's errors.

use std::collections::BTreeSet;
use std::sync::Arc;

use knhk_connectors::{BindingError, SettingsError};
use knhk_core::WorkflowId;
use knhk_core::{CaseId, CaseStatus, TimerId, WorkItemId};
use knhk_store::Corruption;
use knhk_workflow_engine::{ConnectorProblem, Error, ErrorCode};
use uuid::Uuid;

fn item() -> WorkItemId {
    WorkItemId(Uuid::from_u128(1))
}

fn case_id() -> CaseId {
    CaseId(Uuid::from_u128(2))
}

fn json_error() -> serde_json::Error {
    serde_json::from_str::<serde_json::Value>("{").unwrap_err()
}

fn sqlite_error() -> rusqlite::Error {
    rusqlite::Error::SqliteFailure(rusqlite::ffi::Error::new(rusqlite::ffi::SQLITE_BUSY), None)
}

async fn join_error() -> tokio::task::JoinError {
    let task = tokio::spawn(std::future::pending::<()>());
    task.abort();
    task.await.unwrap_err()
}

fn problem(error: BindingError) -> ConnectorProblem {
    ConnectorProblem {
        task: "pay".to_owned(),
        error,
    }
}

fn unknown_connector() -> BindingError {
    BindingError::UnknownConnector {
        connector: "queue".to_owned(),
    }
}

fn bad_settings() -> BindingError {
    BindingError::Settings {
        connector: "http".to_owned(),
        source: SettingsError::Missing {
            setting: "url".to_owned(),
        },
    }
}

/// Names an engine error's variant; no wildcard, so a new variant must be added here, and
/// then to the table below.
fn engine_variant(e: &Error) -> &'static str {
    match e {
        Error::UnknownWorkflow(_) => "UnknownWorkflow",
        Error::UnknownWorkflowName(_) => "UnknownWorkflowName",
        Error::UnknownWorkflowVersion { .. } => "UnknownWorkflowVersion",
        Error::AmbiguousWorkflow { .. } => "AmbiguousWorkflow",
        Error::RegistrationBusy { .. } => "RegistrationBusy",
        Error::UnknownCase(_) => "UnknownCase",
        Error::UnknownWorkItem(_) => "UnknownWorkItem",
        Error::UnknownConnector { .. } => "UnknownConnector",
        Error::UnknownId { .. } => "UnknownId",
        Error::AmbiguousId { .. } => "AmbiguousId",
        Error::NotAnId { .. } => "NotAnId",
        Error::Definition(_) => "Definition",
        Error::Case(_) => "Case",
        Error::Store(_) => "Store",
        Error::Busy(_) => "Busy",
        Error::CorruptWorkflow { .. } => "CorruptWorkflow",
        Error::CorruptCase { .. } => "CorruptCase",
        Error::CorruptRow { .. } => "CorruptRow",
        Error::CorruptVersion { .. } => "CorruptVersion",
        Error::NotAdministrator { .. } => "NotAdministrator",
        Error::NotInRole { .. } => "NotInRole",
        Error::DataNotObject => "DataNotObject",
        Error::TooLarge { .. } => "TooLarge",
        Error::Directory(_) => "Directory",
        Error::Connectors { .. } => "Connectors",
        Error::ShuttingDown => "ShuttingDown",
        Error::TimerNotDue { .. } => "TimerNotDue",
        Error::ResultLost { .. } => "ResultLost",
        Error::Quarantined { .. } => "Quarantined",
        Error::NotQuarantined(_) => "NotQuarantined",
        Error::StillBroken { .. } => "StillBroken",
        Error::UnknownEvent { .. } => "UnknownEvent",
        Error::LockchainOff => "LockchainOff",
        Error::NoLeaf { .. } => "NoLeaf",
        Error::Lockchain(_) => "Lockchain",
        Error::UnknownCheckpoint { .. } => "UnknownCheckpoint",
        Error::NotAPrefix { .. } => "NotAPrefix",
    }
}

fn core_variant(e: &knhk_core::Error) -> &'static str {
    use knhk_core::Error as E;
    match e {
        E::WrongCaseState { .. } => "WrongCaseState",
        E::UnknownWorkItem(_) => "UnknownWorkItem",
        E::WrongWorkItemState { .. } => "WrongWorkItemState",
        E::NotAllocatedTo { .. } => "NotAllocatedTo",
        E::FourEyes { .. } => "FourEyes",
        E::UnknownTimer(_) => "UnknownTimer",
        E::NoTriggerWaiting(_) => "NoTriggerWaiting",
        E::CannotAddInstance { .. } => "CannotAddInstance",
        E::CannotCompleteTask { .. } => "CannotCompleteTask",
        E::CannotRetry(_) => "CannotRetry",
        E::OutputNotObject(_) => "OutputNotObject",
        E::NoRoles(_) => "NoRoles",
        E::DataTooLarge(_) => "DataTooLarge",
        E::Misfit { .. } => "Misfit",
        E::Replay { .. } => "Replay",
    }
}

fn spec_variant(e: &knhk_spec::Error) -> &'static str {
    use knhk_spec::Error as E;
    match e {
        E::Io { .. } => "Io",
        E::UnsupportedFormat { .. } => "UnsupportedFormat",
        E::BaseIri { .. } => "BaseIri",
        E::Syntax { .. } => "Syntax",
        E::XmlSyntax { .. } => "XmlSyntax",
        E::TooLarge { .. } => "TooLarge",
        E::Invalid { .. } => "Invalid",
    }
}

/// A real driver error: connecting to a port nothing listens on.
async fn postgres_error() -> tokio_postgres::Error {
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let config = format!("host=127.0.0.1 port={port} user=knhk connect_timeout=5");
    match tokio_postgres::connect(&config, tokio_postgres::NoTls).await {
        Err(e) => e,
        Ok(_) => panic!("nothing should listen on port {port}"),
    }
}

fn store_variant(e: &knhk_store::Error) -> &'static str {
    use knhk_store::Error as E;
    match e {
        E::Conflict { .. } => "Conflict",
        E::Fenced { .. } => "Fenced",
        E::LeaseExpired { .. } => "LeaseExpired",
        E::DuplicateWorkflow(_) => "DuplicateWorkflow",
        E::DuplicateKey(_) => "DuplicateKey",
        E::DuplicateVersion { .. } => "DuplicateVersion",
        E::Gap { .. } => "Gap",
        E::UnsupportedFormat { .. } => "UnsupportedFormat",
        E::Sqlite { .. } => "Sqlite",
        E::Postgres { .. } => "Postgres",
        E::Pool { .. } => "Pool",
        E::Address(_) => "Address",
        E::Io { .. } => "Io",
        E::Encode { .. } => "Encode",
        E::TooLarge { .. } => "TooLarge",
        E::Closed => "Closed",
        E::WriterStopped => "WriterStopped",
        E::Spawn(_) => "Spawn",
        E::Task { .. } => "Task",
        E::WalRefused { .. } => "WalRefused",
        E::ReadOnly { .. } => "ReadOnly",
        E::ReadOnlyUnclean { .. } => "ReadOnlyUnclean",
        E::ReadOnlyFormat { .. } => "ReadOnlyFormat",
        E::Batch(_) => "Batch",
        E::Corrupt(_) => "Corrupt",
        E::Lockchain(_) => "Lockchain",
    }
}

#[tokio::test]
async fn every_error_has_its_code() {
    use ErrorCode::*;
    let spec_io = |kind| knhk_spec::Error::Io {
        file: "a.ttl".to_owned(),
        source: std::io::Error::from(kind),
    };
    let spec = [
        (spec_io(std::io::ErrorKind::NotFound), NotFound),
        (spec_io(std::io::ErrorKind::PermissionDenied), Unavailable),
        (
            knhk_spec::Error::UnsupportedFormat {
                file: "a.txt".to_owned(),
            },
            InvalidArgument,
        ),
        (
            knhk_spec::Error::BaseIri {
                file: "a.ttl".to_owned(),
                base_iri: "x".to_owned(),
                message: "relative".to_owned(),
            },
            InvalidArgument,
        ),
        (
            knhk_spec::Error::Syntax {
                file: "a.ttl".to_owned(),
                line: 1,
                column: 1,
                message: "eof".to_owned(),
            },
            InvalidArgument,
        ),
        (
            knhk_spec::Error::XmlSyntax {
                file: "a.yawl".to_owned(),
                line: 1,
                column: 1,
                message: "eof".to_owned(),
            },
            InvalidArgument,
        ),
        (
            knhk_spec::Error::Invalid {
                file: "a.ttl".to_owned(),
                violations: Vec::new(),
            },
            InvalidArgument,
        ),
        (
            knhk_spec::Error::TooLarge {
                file: "a.ttl".to_owned(),
                what: "has 2 tasks".to_owned(),
                limit: "1 tasks".to_owned(),
            },
            InvalidArgument,
        ),
    ];
    let core = [
        (
            knhk_core::Error::WrongCaseState {
                status: CaseStatus::Completed,
                action: "start",
            },
            FailedPrecondition,
        ),
        (knhk_core::Error::UnknownWorkItem(item()), NotFound),
        (
            knhk_core::Error::WrongWorkItemState {
                item: item(),
                state: "offered",
                action: "complete",
            },
            FailedPrecondition,
        ),
        (
            knhk_core::Error::NotAllocatedTo {
                item: item(),
                owner: "ann".to_owned(),
                user: "bob".to_owned(),
            },
            PermissionDenied,
        ),
        (
            knhk_core::Error::FourEyes {
                item: item(),
                user: "ann".to_owned(),
            },
            PermissionDenied,
        ),
        (
            knhk_core::Error::UnknownTimer(TimerId(Uuid::from_u128(3))),
            NotFound,
        ),
        (
            knhk_core::Error::NoTriggerWaiting("paid".to_owned()),
            FailedPrecondition,
        ),
        (
            knhk_core::Error::CannotAddInstance {
                task: "review".to_owned(),
                why: "the task is static".to_owned(),
            },
            FailedPrecondition,
        ),
        (
            knhk_core::Error::CannotCompleteTask {
                task: "review".to_owned(),
                why: "no instance runs".to_owned(),
            },
            FailedPrecondition,
        ),
        (
            knhk_core::Error::CannotRetry("the case is running, not failed".to_owned()),
            FailedPrecondition,
        ),
        (knhk_core::Error::OutputNotObject("array"), InvalidArgument),
        (knhk_core::Error::NoRoles(item()), InvalidArgument),
        (
            knhk_core::Error::DataTooLarge("would be too large".to_owned()),
            InvalidArgument,
        ),
        (
            knhk_core::Error::Misfit {
                what: "task",
                index: 9,
            },
            Internal,
        ),
        (
            knhk_core::Error::Replay {
                seq: 4,
                why: "no such task".to_owned(),
            },
            Internal,
        ),
    ];
    let store = [
        (
            knhk_store::Error::Conflict {
                case: case_id(),
                expected: Some(1),
                actual: Some(2),
            },
            Aborted,
        ),
        (
            knhk_store::Error::Fenced {
                case: case_id(),
                fence: 3,
                owner: Some(4),
            },
            Aborted,
        ),
        (knhk_store::Error::LeaseExpired { fence: 3 }, Unavailable),
        (
            knhk_store::Error::DuplicateWorkflow(WorkflowId(Uuid::from_u128(4))),
            AlreadyExists,
        ),
        (
            knhk_store::Error::DuplicateKey("req-1".to_owned()),
            AlreadyExists,
        ),
        (
            knhk_store::Error::DuplicateVersion {
                uri: "urn:order".to_owned(),
                version: 2,
            },
            AlreadyExists,
        ),
        (
            knhk_store::Error::Gap {
                case: case_id(),
                expected_seq: 2,
                got: 3,
            },
            Internal,
        ),
        (
            knhk_store::Error::UnsupportedFormat {
                found: 9,
                supported: 2,
            },
            FailedPrecondition,
        ),
        (
            knhk_store::Error::Sqlite {
                doing: "committing a batch",
                error: sqlite_error(),
            },
            Unavailable,
        ),
        (
            knhk_store::Error::Postgres {
                doing: "connecting",
                error: postgres_error().await,
            },
            Unavailable,
        ),
        (
            knhk_store::Error::Pool {
                doing: "connecting",
                source: deadpool_postgres::PoolError::Closed,
            },
            Unavailable,
        ),
        (
            knhk_store::Error::Address("postgres://[bad".to_owned()),
            InvalidArgument,
        ),
        (
            knhk_store::Error::Io {
                doing: "creating",
                path: "data".into(),
                source: std::io::Error::other("disk full"),
            },
            Unavailable,
        ),
        (
            knhk_store::Error::Encode {
                what: "case data",
                source: json_error(),
            },
            Internal,
        ),
        (
            knhk_store::Error::TooLarge {
                what: "case version",
                value: u64::MAX,
            },
            Internal,
        ),
        (knhk_store::Error::Closed, Unavailable),
        (knhk_store::Error::WriterStopped, Unavailable),
        (
            knhk_store::Error::Spawn(std::io::Error::other("no threads")),
            Unavailable,
        ),
        (
            knhk_store::Error::Task {
                doing: "reading the store",
                source: join_error().await,
            },
            Unavailable,
        ),
        (
            knhk_store::Error::WalRefused {
                mode: "memory".to_owned(),
            },
            Unavailable,
        ),
        (
            knhk_store::Error::ReadOnly {
                path: "data/knhk.db".into(),
            },
            FailedPrecondition,
        ),
        (
            knhk_store::Error::ReadOnlyUnclean {
                path: "data/knhk.db".into(),
            },
            FailedPrecondition,
        ),
        (
            knhk_store::Error::ReadOnlyFormat {
                path: "data/knhk.db".into(),
                found: 2,
                supported: 3,
            },
            FailedPrecondition,
        ),
        (
            knhk_store::Error::Batch(Arc::new(knhk_store::Error::Closed)),
            Unavailable,
        ),
        (
            knhk_store::Error::Corrupt(Corruption::CaseStatus("odd".to_owned())),
            Internal,
        ),
        (
            knhk_store::Error::Lockchain("tile 0/1: holds 3 hashes".to_owned()),
            Internal,
        ),
    ];

    let mut seen = BTreeSet::new();
    let mut check = |e: Error, code: ErrorCode, name: String| {
        assert_eq!(e.code(), code, "{name}: {e}");
        seen.insert(name);
    };
    for (e, code) in spec {
        let name = format!("Definition::{}", spec_variant(&e));
        check(Error::Definition(e), code, name);
    }
    for (e, code) in core {
        let name = format!("Case::{}", core_variant(&e));
        check(Error::Case(e), code, name);
    }
    for (e, code) in store {
        let name = format!("Store::{}", store_variant(&e));
        check(Error::Store(e), code, name);
    }
    let engine = [
        (
            Error::UnknownWorkflow(WorkflowId(Uuid::from_u128(4))),
            NotFound,
        ),
        (Error::UnknownWorkflowName("order".to_owned()), NotFound),
        (
            Error::UnknownWorkflowVersion {
                workflow: "order".to_owned(),
                version: 3,
                latest: 2,
            },
            NotFound,
        ),
        (
            Error::AmbiguousWorkflow {
                reference: "Order".to_owned(),
                matches: vec!["urn:a".to_owned(), "urn:b".to_owned()],
                hint: "give the URI",
            },
            InvalidArgument,
        ),
        (
            Error::RegistrationBusy {
                uri: "urn:order".to_owned(),
            },
            Aborted,
        ),
        (Error::UnknownCase(case_id()), NotFound),
        (
            Error::UnknownEvent {
                case: case_id(),
                seq: 9,
            },
            NotFound,
        ),
        (Error::LockchainOff, FailedPrecondition),
        (
            Error::NoLeaf {
                case: case_id(),
                seq: 2,
            },
            FailedPrecondition,
        ),
        (Error::Lockchain("signing failed".to_owned()), Internal),
        (
            Error::UnknownCheckpoint {
                size: 5,
                below: Some(3),
                above: None,
            },
            NotFound,
        ),
        (Error::NotAPrefix { old: 9, new: 3 }, InvalidArgument),
        (Error::UnknownWorkItem(item()), NotFound),
        (
            Error::UnknownConnector {
                name: "orders_db".to_owned(),
                known: "http".to_owned(),
            },
            NotFound,
        ),
        (
            Error::UnknownId {
                what: "case",
                reference: "0190".to_owned(),
            },
            NotFound,
        ),
        (
            Error::AmbiguousId {
                what: "case",
                reference: "0190".to_owned(),
                matches: vec!["a".to_owned(), "b".to_owned()],
                more: false,
            },
            InvalidArgument,
        ),
        (
            Error::NotAnId {
                what: "case",
                reference: "xyz".to_owned(),
            },
            InvalidArgument,
        ),
        (Error::Busy(case_id()), Aborted),
        (
            Error::CorruptWorkflow {
                id: WorkflowId(Uuid::from_u128(4)),
                source: json_error().into(),
            },
            Internal,
        ),
        (
            Error::CorruptCase {
                id: case_id(),
                source: knhk_core::Error::Replay {
                    seq: 1,
                    why: "no such task".to_owned(),
                },
            },
            Internal,
        ),
        (
            Error::CorruptRow {
                row: "work item",
                id: item().to_string(),
                source: knhk_workflow_engine::UnknownName("claimed".to_owned()).into(),
            },
            Internal,
        ),
        (
            Error::CorruptVersion {
                id: case_id(),
                stored: 3,
                history: 12,
            },
            Internal,
        ),
        (
            Error::NotAdministrator {
                user: "eve".to_owned(),
                role: "admin".to_owned(),
            },
            PermissionDenied,
        ),
        (
            Error::NotInRole {
                user: "eve".to_owned(),
                item: item(),
                roles: vec!["manager".to_owned()],
            },
            PermissionDenied,
        ),
        (Error::DataNotObject, InvalidArgument),
        (
            Error::TooLarge {
                what: "case data",
                limit: 10,
            },
            InvalidArgument,
        ),
        (
            Error::Directory(knhk_workflow_engine::Directory::from_json("[]").unwrap_err()),
            InvalidArgument,
        ),
        // Only missing connectors: this engine lacks them. Any refused setting: a bad
        // definition.
        (
            Error::Connectors {
                workflow: "order".to_owned(),
                problems: vec![problem(unknown_connector())],
            },
            FailedPrecondition,
        ),
        (
            Error::Connectors {
                workflow: "order".to_owned(),
                problems: vec![problem(unknown_connector()), problem(bad_settings())],
            },
            InvalidArgument,
        ),
        (Error::ShuttingDown, Unavailable),
        (
            Error::TimerNotDue {
                timer: TimerId(Uuid::from_u128(3)),
                due_in_ms: 500,
            },
            FailedPrecondition,
        ),
        (
            Error::Quarantined {
                id: case_id(),
                reason: "its history does not replay".to_owned(),
            },
            FailedPrecondition,
        ),
        (Error::NotQuarantined(case_id()), FailedPrecondition),
        (
            Error::StillBroken {
                id: case_id(),
                problems: vec!["its history does not replay".to_owned()],
            },
            FailedPrecondition,
        ),
        // A result given up has the code of its last failure.
        (
            Error::ResultLost {
                case: case_id(),
                attempts: 8,
                source: Arc::new(Error::Store(knhk_store::Error::Closed)),
            },
            Unavailable,
        ),
    ];
    for (e, code) in engine {
        let name = engine_variant(&e).to_owned();
        check(e, code, name);
    }

    let everything: BTreeSet<String> = [
        "UnknownWorkflow",
        "UnknownWorkflowName",
        "UnknownWorkflowVersion",
        "AmbiguousWorkflow",
        "RegistrationBusy",
        "UnknownCase",
        "UnknownWorkItem",
        "UnknownConnector",
        "UnknownId",
        "AmbiguousId",
        "NotAnId",
        "Busy",
        "CorruptWorkflow",
        "CorruptCase",
        "CorruptRow",
        "CorruptVersion",
        "NotAdministrator",
        "NotInRole",
        "DataNotObject",
        "TooLarge",
        "Directory",
        "Connectors",
        "ShuttingDown",
        "TimerNotDue",
        "ResultLost",
        "Quarantined",
        "NotQuarantined",
        "StillBroken",
        "UnknownEvent",
        "LockchainOff",
        "NoLeaf",
        "UnknownCheckpoint",
        "NotAPrefix",
        "Lockchain",
    ]
    .into_iter()
    .map(str::to_owned)
    .chain(
        [
            "Io",
            "UnsupportedFormat",
            "BaseIri",
            "Syntax",
            "XmlSyntax",
            "TooLarge",
            "Invalid",
        ]
        .map(|v| format!("Definition::{v}")),
    )
    .chain(
        [
            "WrongCaseState",
            "UnknownWorkItem",
            "WrongWorkItemState",
            "NotAllocatedTo",
            "FourEyes",
            "UnknownTimer",
            "NoTriggerWaiting",
            "CannotAddInstance",
            "CannotCompleteTask",
            "CannotRetry",
            "OutputNotObject",
            "NoRoles",
            "DataTooLarge",
            "Misfit",
            "Replay",
        ]
        .map(|v| format!("Case::{v}")),
    )
    .chain(
        [
            "Conflict",
            "Fenced",
            "LeaseExpired",
            "DuplicateWorkflow",
            "DuplicateKey",
            "DuplicateVersion",
            "Gap",
            "UnsupportedFormat",
            "Sqlite",
            "Postgres",
            "Pool",
            "Address",
            "Io",
            "Encode",
            "TooLarge",
            "Closed",
            "WriterStopped",
            "Spawn",
            "Task",
            "WalRefused",
            "ReadOnly",
            "ReadOnlyUnclean",
            "ReadOnlyFormat",
            "Batch",
            "Corrupt",
            "Lockchain",
        ]
        .map(|v| format!("Store::{v}")),
    )
    .collect();
    assert_eq!(seen, everything);
}

#[test]
fn a_wrong_state_and_an_unknown_element_differ() {
    let ended = Error::from(knhk_core::Error::WrongCaseState {
        status: CaseStatus::Completed,
        action: "complete a work item",
    });
    let unknown = Error::from(knhk_core::Error::UnknownWorkItem(item()));
    assert_eq!(ended.code(), ErrorCode::FailedPrecondition);
    assert_eq!(unknown.code(), ErrorCode::NotFound);
}

#[test]
fn code_names_are_stable_snake_case() {
    let names: Vec<&str> = ErrorCode::ALL.iter().map(|c| c.as_str()).collect();
    assert_eq!(
        names,
        [
            "invalid_argument",
            "not_found",
            "already_exists",
            "permission_denied",
            "failed_precondition",
            "aborted",
            "unavailable",
            "internal",
        ]
    );
    for code in ErrorCode::ALL {
        assert_eq!(code.to_string(), code.as_str());
    }
}
