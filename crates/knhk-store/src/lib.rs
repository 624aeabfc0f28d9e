//! knhk-store: where workflows, cases, their histories, work items, timers, idempotency keys and
//! named sequences (round-robin turns) live.
//!
//! [`Store`] is the one narrow trait the runtime talks to. A step of a case is one [`Commit`]:
//! its new events, the new case row, the work item and timer changes, the idempotency record
//! and now and then a snapshot of the case's state ([`SnapshotRecord`]) are written together
//! or not at all, guarded by optimistic concurrency on the case
//! version. The lockchain leaves of a step's events ([`Commit::leaves`]) are appended to the
//! store's one Merkle tree, kept in tiles, in that same transaction; the signed checkpoints
//! of the tree's head are kept beside it ([`CheckpointRecord`]).
//!
//! Three backends implement it and pass the same conformance suite
//! (`tests/it/conformance/`): [`MemoryStore`] for tests, [`SqliteStore`], an embedded
//! SQLite file in WAL mode whose single writer thread groups concurrent commits into one
//! transaction and one fsync, and [`PostgresStore`], a schema of a PostgreSQL database shared
//! by any number of processes, whose committers group concurrent commits into one pipelined
//! transaction.

mod commit;
mod error;
mod lockchain;
mod memory;
mod plan;
mod postgres;
mod record;
mod sqlite;
mod store;

pub use error::{Corruption, Error};
pub use memory::MemoryStore;
pub use plan::{EXPLAINED, QueryPlan};
pub use postgres::{
    POSTGRES_FORMAT_VERSION, POSTGRES_GROWING, PostgresOptions, PostgresStats, PostgresStore,
    postgres_scans, redact_address,
};
pub use record::{
    CaseFilter, CaseRecord, Change, CheckpointRecord, Commit, Fencing, IdempotencyRecord,
    NodeRecord, Orphans, QuarantineRecord, SnapshotRecord, TimerRecord, TreeHead, WorkItemFilter,
    WorkItemRecord, WorkflowRecord, WorkflowSummary, last_group,
};
pub use sqlite::{GROWING, QuickCheck, SqliteOptions, SqliteStats, SqliteStore, sqlite_scans};
pub use store::Store;

/// Version of the stored format, kept in SQLite's `PRAGMA user_version`. A store written with a
/// higher version is refused; every lower version is migrated when opened and keeps loading
/// (see `tests/golden/`). Format 2 added the named sequences; format 3 the workflow URI, with
/// versions unique per URI; format 4 the quarantine of cases that cannot be loaded; format 5
/// the indexes that make single-case, per-user and per-role queries independent of the store's
/// size (work items' roles in a table of their own); format 6 marks the cases with work in
/// flight, which recovery reads; format 7 the latest snapshot of each case's state, which
/// loading a case starts from; format 8 indexes the last group of case and work item ids, by
/// which tables name time-ordered ids; format 9 indexes work items by state, for pages of the
/// items in one state; format 10 the registry of engine nodes with their leases, the owner of
/// each case's work in flight and the claims of due timers; format 11 the lockchain (each
/// event's leaf index, the tree in tiles, its size and the signed checkpoints); format 12
/// keeps each tile as the segments appended to it, so that a commit writes only its own
/// leaves.
pub const FORMAT_VERSION: i64 = 12;
