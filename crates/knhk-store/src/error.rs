//! Errors of knhk-store: a lost race, a refused write, or a backend that failed.

use std::path::PathBuf;
use std::sync::Arc;

use knhk_core::CaseId;

use knhk_core::WorkflowId;

/// Why a store operation failed.
///
/// Not `non_exhaustive`: the engine maps every variant to an error code, and a new variant
/// must make it decide.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// Another step of the case committed first: the stored version is not the expected one.
    #[error("case {case} changed concurrently: expected version {expected:?}, found {actual:?}")]
    Conflict {
        case: CaseId,
        expected: Option<u64>,
        actual: Option<u64>,
    },
    /// The result of owned work was committed under a fencing token that no longer owns the
    /// case: another node claimed it (its owner's lease expired) or took its work over. The
    /// work belongs to that node now; nothing was stored.
    #[error("case {case} is no longer owned under fencing token {fence} (owner now {owner:?})")]
    Fenced {
        case: CaseId,
        fence: u64,
        owner: Option<u64>,
    },
    /// The node holding this fencing token has no live lease (it expired, or no node holds
    /// the token): it must not write as a node until it registers again. Nothing was stored.
    #[error("the lease of node fencing token {fence} has expired")]
    LeaseExpired { fence: u64 },
    /// A workflow of this id is already stored.
    #[error("workflow {0} already exists")]
    DuplicateWorkflow(WorkflowId),
    /// A version of this workflow URI is already stored: another registration took it first.
    #[error("version {version} of workflow {uri} already exists")]
    DuplicateVersion { uri: String, version: u32 },
    /// An idempotency key is already stored.
    #[error("idempotency key {0:?} already exists")]
    DuplicateKey(String),
    /// The events of a commit do not continue the stored history, or the case version does not
    /// match the last event.
    #[error("case {case} history does not continue: expected seq {expected_seq}, got {got}")]
    Gap {
        case: CaseId,
        expected_seq: u64,
        got: u64,
    },
    /// The store was written by a newer knhk.
    #[error("store format {found} is newer than the supported format {supported}")]
    UnsupportedFormat { found: i64, supported: i64 },
    /// SQLite failed while the store was `doing` something. The message says SQLite's own
    /// words once (not rusqlite's error code after them).
    #[error("{doing}: {}", sqlite_words(error))]
    Sqlite {
        doing: &'static str,
        error: rusqlite::Error,
    },
    /// PostgreSQL failed while the store was `doing` something (the server's own message, or
    /// why the connection failed).
    #[error("PostgreSQL store, {doing}: {}", postgres_words(error))]
    Postgres {
        doing: &'static str,
        error: tokio_postgres::Error,
    },
    /// No PostgreSQL connection could be had from the pool (the server cannot be reached, or
    /// every connection stayed busy past the wait).
    #[error("PostgreSQL store, {doing}: {source}")]
    Pool {
        doing: &'static str,
        #[source]
        source: deadpool_postgres::PoolError,
    },
    /// A store address (`postgres://...`, `sqlite:PATH`) or a setting of it is not valid.
    /// The message never repeats a password.
    #[error("{0}")]
    Address(String),
    /// A file system operation on `path` failed.
    #[error("{doing} {}: {source}", path.display())]
    Io {
        doing: &'static str,
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    /// A value could not be encoded for storage.
    #[error("cannot encode {what}: {source}")]
    Encode {
        what: &'static str,
        #[source]
        source: serde_json::Error,
    },
    /// A number does not fit SQLite's signed 64-bit integers.
    #[error("{what} {value} is too large to store")]
    TooLarge { what: &'static str, value: u64 },
    /// The store is closed.
    #[error("the store is closed")]
    Closed,
    /// The lockchain's stored tree or a commit's leaves do not fit (the words say how).
    #[error("lockchain: {0}")]
    Lockchain(String),
    /// The writer thread is gone (it panicked): no write can be made any more.
    #[error("the store writer has stopped")]
    WriterStopped,
    /// The writer thread could not be started.
    #[error("cannot start the store writer thread: {0}")]
    Spawn(#[source] std::io::Error),
    /// A blocking task of the store panicked or was cancelled.
    #[error("{doing}: {source}")]
    Task {
        doing: &'static str,
        #[source]
        source: tokio::task::JoinError,
    },
    /// The store cannot be written (its file or folder has no write permission, or it is on
    /// a read-only mount): it serves reads only.
    #[error(
        "the store {} is read-only (its file or folder cannot be written): it serves reads only",
        path.display()
    )]
    ReadOnly { path: PathBuf },
    /// A store on a read-only location was not closed cleanly: its WAL holds writes that
    /// cannot be folded in without writing.
    #[error(
        "the store {} is read-only and was not closed cleanly (its -wal file is there): open it \
         once where it can be written",
        path.display()
    )]
    ReadOnlyUnclean { path: PathBuf },
    /// A store on a read-only location is of another format than this knhk's, and cannot be
    /// migrated there.
    #[error(
        "the store {} is read-only and of format {found}, not {supported}: open it once where it \
         can be written, to migrate it",
        path.display()
    )]
    ReadOnlyFormat {
        path: PathBuf,
        found: i64,
        supported: i64,
    },
    /// SQLite refused to run the file in WAL mode.
    #[error("the store file refused WAL mode (journal_mode is {mode})")]
    WalRefused { mode: String },
    /// The transaction grouping this write with others failed; nothing of the group is stored.
    /// (Its message is its cause's: which other writes shared the transaction is no news to
    /// the caller.)
    #[error(transparent)]
    Batch(Arc<Error>),
    /// Stored data does not decode.
    #[error("stored data is corrupt: {0}")]
    Corrupt(#[from] Corruption),
}

/// Returns what SQLite said of a failure, once: rusqlite's message, without the error code
/// its source adds (`database or disk is full`, not `...: Error code 13: ...`).
fn sqlite_words(e: &rusqlite::Error) -> String {
    match e {
        rusqlite::Error::SqliteFailure(code, Some(message)) => {
            if message.is_empty() {
                code.to_string()
            } else {
                message.clone()
            }
        }
        rusqlite::Error::SqliteFailure(code, None) => {
            rusqlite::ffi::code_to_str(code.extended_code).to_owned()
        }
        other => other.to_string(),
    }
}

/// Returns what PostgreSQL said of a failure: the server's message with its detail, or the
/// driver's words when the server said nothing (a connection refused or lost).
fn postgres_words(e: &tokio_postgres::Error) -> String {
    match e.as_db_error() {
        Some(db) => match db.detail() {
            Some(detail) => format!("{} ({detail})", db.message()),
            None => db.message().to_owned(),
        },
        None => {
            use std::error::Error as _;
            match e.source() {
                Some(cause) => format!("{e}: {cause}"),
                None => e.to_string(),
            }
        }
    }
}

/// Returns serde's message without the list of every name it expected (an event kind not
/// known lists thirty), which says nothing about the damage.
fn brief(e: &serde_json::Error) -> String {
    let text = e.to_string();
    match text.split_once(", expected one of") {
        Some((head, _)) => format!("{head} (line {} column {})", e.line(), e.column()),
        None => text,
    }
}

/// What in the stored data does not decode.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum Corruption {
    /// A column does not hold the type expected.
    #[error("column {column}: {source}")]
    Column {
        column: usize,
        #[source]
        source: rusqlite::Error,
    },
    /// A PostgreSQL column does not hold the type expected.
    #[error("column {column}: {source}")]
    Value {
        column: usize,
        #[source]
        source: tokio_postgres::Error,
    },
    /// An id is not a UUID.
    #[error("id {text:?}: {source}")]
    Id {
        text: String,
        #[source]
        source: uuid::Error,
    },
    /// A JSON column does not decode into its type.
    #[error("json in column {column}: {}", brief(source))]
    Json {
        column: usize,
        source: serde_json::Error,
    },
    /// An event's payload does not decode into an event kind.
    #[error("event {seq} does not decode: {}", brief(source))]
    Event { seq: u64, source: serde_json::Error },
    /// A number is negative or too large for its type.
    #[error("number {value} out of range in column {column}")]
    Number { column: usize, value: i64 },
    /// A case status is not one knhk writes.
    #[error("unknown case status {0:?}")]
    CaseStatus(String),
    /// A named sequence went negative.
    #[error("sequence {name} is {value}")]
    Sequence { name: String, value: i64 },
    /// The PostgreSQL schema has tables but no knhk format version: it is not a knhk store.
    #[error("the schema {schema} has {tables} tables but no knhk format version")]
    UnversionedSchema { schema: String, tables: i64 },
    /// The file has tables but no knhk format version: it is not a knhk store.
    #[error("the file has {tables} tables but no knhk format version")]
    Unversioned { tables: i64 },
}
