//! Errors of knhk-store: a lost race, a refused write, or a backend that failed.

use knhk_core::CaseId;

/// Why a store operation failed.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// Another step of the case committed first: the stored version is not the expected one.
    #[error("case {case} changed concurrently: expected version {expected:?}, found {actual:?}")]
    Conflict {
        case: CaseId,
        expected: Option<u64>,
        actual: Option<u64>,
    },
    /// A workflow id or an idempotency key is already stored.
    #[error("{what} already exists")]
    Duplicate { what: String },
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
    /// The backend failed (I/O, SQLite), with what was being done.
    #[error("storage backend failed: {0}")]
    Backend(String),
    /// A stored row does not decode.
    #[error("stored data is corrupt: {0}")]
    Corrupt(String),
}
