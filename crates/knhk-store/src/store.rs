//! The storage trait every backend implements.

use knhk_core::WorkflowId;
use knhk_core::{CaseId, CaseStatus, Event, Timestamp, WorkItemId};

use crate::error::Error;
use crate::plan::QueryPlan;
use crate::record::{
    CaseFilter, CaseRecord, CheckpointRecord, Commit, IdempotencyRecord, NodeRecord, Orphans,
    QuarantineRecord, SnapshotRecord, TimerRecord, TreeHead, WorkItemFilter, WorkItemRecord,
    WorkflowRecord, WorkflowSummary,
};

/// Durable state of the engine. Every write of a case goes through [`Store::commit`]; reads
/// see only committed data.
#[async_trait::async_trait]
pub trait Store: Send + Sync + std::fmt::Debug + 'static {
    /// Stores a new workflow; an id already stored is [`Error::DuplicateWorkflow`], and a
    /// URI and version already stored (another process registered that version first) is
    /// [`Error::DuplicateVersion`].
    async fn put_workflow(&self, w: &WorkflowRecord) -> Result<(), Error>;
    /// Returns the workflow with this id, if stored.
    async fn workflow(&self, id: WorkflowId) -> Result<Option<WorkflowRecord>, Error>;
    /// Returns the highest version stored of the workflow with this URI, if any.
    async fn latest_workflow(&self, uri: &str) -> Result<Option<WorkflowRecord>, Error>;
    /// Returns every workflow, ordered by name, then version.
    async fn workflows(&self) -> Result<Vec<WorkflowRecord>, Error>;
    /// Returns every workflow without its source and parsed form, ordered by name, then
    /// version, then id: what a list of workflows shows.
    async fn workflow_summaries(&self) -> Result<Vec<WorkflowSummary>, Error>;
    /// Returns every version of the workflows whose URI is `key` and of those whose name is
    /// `key`, without their sources, ordered by URI, then version: what a lookup by URI or
    /// name picks from, read from the indexes of URIs and names.
    async fn workflows_named(&self, key: &str) -> Result<Vec<WorkflowSummary>, Error>;
    /// Writes one step of one case atomically; the step is durable when `Ok` returns. A
    /// commit with [`Commit::fencing`] is checked first (see [`crate::Fencing`]): a node
    /// whose lease expired is [`Error::LeaseExpired`], the result of work whose case another
    /// node owns now is [`Error::Fenced`], and nothing is stored.
    ///
    /// PostgreSQL, in the step's transaction before its writes: `SELECT 1 FROM nodes WHERE
    /// fence = $node AND expires_at > $updated_at FOR SHARE` (no row: `LeaseExpired`; the
    /// share lock keeps a `renew_lease` ending it from passing the step), and the case's
    /// `SELECT version, owner FROM cases WHERE id = $1 FOR UPDATE` (the version check, and
    /// `owner = $owned_by` or `Fenced`), or folded into the guarded update `UPDATE cases SET
    /// ... WHERE id = $1 AND version = $v AND owner IS NOT DISTINCT FROM $owned_by`.
    async fn commit(&self, c: Commit) -> Result<(), Error>;
    /// Returns the case with this id, if stored.
    async fn case(&self, id: CaseId) -> Result<Option<CaseRecord>, Error>;
    /// Returns the cases that match, ordered by creation time, then id.
    async fn cases(&self, f: &CaseFilter) -> Result<Vec<CaseRecord>, Error>;
    /// Returns the ids of the cases in any of `status` (every case when empty), oldest first.
    /// Nothing else of their rows is read, so a case whose row no longer decodes is listed
    /// too: recovery and checks go on past it.
    async fn case_ids(&self, status: &[CaseStatus]) -> Result<Vec<CaseId>, Error>;
    /// Returns the ids of the cases in any of `status` with work in flight
    /// ([`CaseRecord::in_flight`]), ordered by creation time, then id: what recovery takes up.
    async fn case_ids_in_flight(&self, status: &[CaseStatus]) -> Result<Vec<CaseId>, Error>;
    /// Marks a case as having no work in flight, if its stored version is still `version`;
    /// returns whether it did (`false`: the case moved on, or is not stored). Recovery settles
    /// so a case whose row still says it has work in flight (as every row migrated from
    /// before format 6 does) once it finds none, so that the next start-up skips it.
    async fn settle_in_flight(&self, case: CaseId, version: u64) -> Result<bool, Error>;
    /// Returns at most `limit` ids of cases whose id, or whose last group (the 12 hex digits
    /// after the last `-`), starts with `prefix` (lowercase hex digits and `-`), in id
    /// order: the cases a shortened id may name, read from index ranges, not a listing.
    /// When more than `limit` match, which of them come back is the backend's choice.
    async fn case_ids_by_prefix(&self, prefix: &str, limit: usize) -> Result<Vec<CaseId>, Error>;
    /// Returns at most `limit` ids of work items whose id, or whose last group, starts with
    /// `prefix`, in id order (as [`Store::case_ids_by_prefix`]).
    async fn work_item_ids_by_prefix(
        &self,
        prefix: &str,
        limit: usize,
    ) -> Result<Vec<WorkItemId>, Error>;
    /// Returns the plan the backend's query planner chooses for each of its keyed and
    /// filtered reads (at least those of [`crate::EXPLAINED`]), each with the steps that scan
    /// a table growing with the cases: the conformance suite requires none. A backend
    /// without a planner (the memory store) has none to give.
    async fn query_plans(&self) -> Result<Vec<QueryPlan>, Error>;
    /// Runs the backend's own check of what it stores (SQLite's `integrity_check`, or
    /// `quick_check` when not `thorough`) and returns every problem it names; none when
    /// sound.
    async fn integrity(&self, thorough: bool) -> Result<Vec<String>, Error>;
    /// Returns the events of a case with `seq > after_seq`, in ascending order.
    async fn events(&self, case: CaseId, after_seq: u64) -> Result<Vec<Event>, Error>;
    /// Returns at most `limit` events of a case with `seq > after_seq`, in ascending order: a
    /// page of a history, read without reading the rest of it.
    async fn events_page(
        &self,
        case: CaseId,
        after_seq: u64,
        limit: usize,
    ) -> Result<Vec<Event>, Error>;
    /// Returns the latest snapshot of a case's state ([`Commit::snapshot`]), if one was
    /// written.
    async fn snapshot(&self, case: CaseId) -> Result<Option<SnapshotRecord>, Error>;
    /// Returns the work items that match, ordered by offer time, then id.
    async fn work_items(&self, f: &WorkItemFilter) -> Result<Vec<WorkItemRecord>, Error>;
    /// Returns how many work items each of `users` holds (allocated to or started by them),
    /// in the order given: the queue lengths that shortest-queue allocation compares, counted
    /// at once rather than listed one user at a time.
    async fn queue_lengths(&self, users: &[String]) -> Result<Vec<u64>, Error>;
    /// Returns the work item with this id, if stored.
    async fn work_item(&self, id: WorkItemId) -> Result<Option<WorkItemRecord>, Error>;
    /// Returns every armed timer, ordered by firing time (then id).
    async fn timers(&self) -> Result<Vec<TimerRecord>, Error>;
    /// Returns the idempotency record with this key, if stored.
    async fn idempotency(&self, key: &str) -> Result<Option<IdempotencyRecord>, Error>;
    /// Adds one to the named sequence and returns its new value (1 the first time). Atomic
    /// across every process sharing the store: allocation turns (round robin) live here.
    async fn next_in_sequence(&self, name: &str) -> Result<u64, Error>;
    /// Sets a case aside; a case already set aside keeps its first reason. The case's own
    /// rows are left as they are, for whoever repairs them.
    async fn quarantine(&self, q: &QuarantineRecord) -> Result<(), Error>;
    /// Takes a case out of the quarantine (someone repaired it); returns whether it was set
    /// aside. Nothing else of the case changes.
    async fn release_quarantine(&self, case: CaseId) -> Result<bool, Error>;
    /// Returns every case set aside, oldest first.
    async fn quarantined(&self) -> Result<Vec<QuarantineRecord>, Error>;
    /// Returns why a case was set aside, if it was.
    async fn quarantine_of(&self, case: CaseId) -> Result<Option<QuarantineRecord>, Error>;
    /// Runs a cheap real probe (e.g. `SELECT 1` on a reader), for readiness checks.
    async fn ping(&self) -> Result<(), Error>;

    // Several engine nodes on one store: the store stores and arbitrates (every claim is one
    // conditional write with one winner); what a node does with what it won is the runtime's.

    /// Registers an engine node named `name` with a lease until `expires_at`, and returns its
    /// fencing token: greater than every token given before, never given again.
    ///
    /// PostgreSQL: `INSERT INTO nodes (name, started_at, expires_at) VALUES ($1, $2, $3)
    /// RETURNING fence`, `fence` a `bigint GENERATED ALWAYS AS IDENTITY` primary key.
    async fn register_node(
        &self,
        name: &str,
        now: Timestamp,
        expires_at: Timestamp,
    ) -> Result<u64, Error>;

    /// Renews the lease of the node holding `fence` until `expires_at`, if it has not expired
    /// at `now`; returns whether it did (`false`: the node is dead to the others, and must
    /// register again). An `expires_at` at `now` or before ends the lease: the way a node
    /// leaves, so that the others claim its cases at once.
    ///
    /// PostgreSQL: `UPDATE nodes SET expires_at = $3 WHERE fence = $1 AND expires_at > $2`,
    /// true when one row changed.
    async fn renew_lease(
        &self,
        fence: u64,
        now: Timestamp,
        expires_at: Timestamp,
    ) -> Result<bool, Error>;

    /// Returns every node registered, live or dead, by fencing token.
    ///
    /// PostgreSQL: `SELECT fence, name, started_at, expires_at FROM nodes ORDER BY fence`.
    async fn nodes(&self) -> Result<Vec<NodeRecord>, Error>;

    /// Claims for the node holding `fence` at most `limit` running or suspended cases with
    /// work in flight ([`CaseRecord::in_flight`]) that `which` names: their
    /// [`CaseRecord::owner`] becomes `fence` (nothing else of the row changes, not the
    /// version). Returns the ids claimed, oldest first; each case is claimed by one node only,
    /// however many claim at once. A node whose own lease has expired at `now` claims nothing
    /// ([`Error::LeaseExpired`]).
    ///
    /// PostgreSQL, in one statement: `UPDATE cases SET owner = $1 WHERE id IN (SELECT c.id
    /// FROM cases c WHERE c.in_flight AND c.status IN ('running', 'suspended') AND (c.owner IS
    /// NULL [only for AlsoUnowned] OR c.owner IN (SELECT fence FROM nodes WHERE expires_at <=
    /// $2)) ORDER BY c.created_at, c.id LIMIT $3 FOR UPDATE SKIP LOCKED) AND EXISTS (SELECT 1
    /// FROM nodes WHERE fence = $1 AND expires_at > $2) RETURNING id`, served by the partial
    /// index `cases (owner, created_at, id) WHERE in_flight`: `FOR UPDATE` locks each row the
    /// subquery returns and re-checks its conditions on the row's latest version, so a case
    /// another node claimed in between is skipped, and `SKIP LOCKED` lets racing sweeps take
    /// different cases rather than wait for each other.
    async fn claim_cases(
        &self,
        fence: u64,
        now: Timestamp,
        which: Orphans,
        limit: usize,
    ) -> Result<Vec<CaseId>, Error>;

    /// Claims for the node holding `fence` at most `limit` timers due at `now` that no live
    /// claim holds, each until `until`, and returns them by firing time: one node fires each.
    /// A claim that ends (the node died before the step that fired the timer removed its row)
    /// lets another node claim the timer again; the case itself refuses a timer no longer
    /// armed, so a timer never fires twice into a case. A node whose own lease has expired
    /// at `now` claims nothing ([`Error::LeaseExpired`]).
    ///
    /// PostgreSQL: `UPDATE timers SET claimed_by = $1, claimed_until = $3 WHERE id IN (SELECT
    /// id FROM timers WHERE fires_at <= $2 AND (claimed_until IS NULL OR claimed_until <= $2)
    /// ORDER BY fires_at, id LIMIT $4 FOR UPDATE SKIP LOCKED) AND EXISTS (SELECT 1 FROM nodes
    /// WHERE fence = $1 AND expires_at > $2) RETURNING id, case_id, fires_at`.
    async fn claim_due_timers(
        &self,
        fence: u64,
        now: Timestamp,
        until: Timestamp,
        limit: usize,
    ) -> Result<Vec<TimerRecord>, Error>;

    // The lockchain: one append-only Merkle tree per store over the leaves of the commits
    // (`Commit::leaves`), kept in tiles, and the signed checkpoints of its head. The tree
    // grows only in `commit`, in the transaction of the events it covers.

    /// Returns the head of the lockchain tree: its size and root (size 0 and the empty root
    /// when no commit carried leaves). The root is computed from the stored tail tiles, read
    /// in one snapshot with the size.
    async fn lockchain_head(&self) -> Result<TreeHead, Error>;

    /// Returns the stored tiles among `ids` (a tile not stored is left out), each as last
    /// written, in the order of `ids`.
    async fn lockchain_tiles(
        &self,
        ids: &[knhk_lockchain::TileId],
    ) -> Result<Vec<knhk_lockchain::Tile>, Error>;

    /// Returns the leaf index of event `seq` of `case`; `None` when there is no such event or
    /// it was committed without a leaf.
    async fn event_leaf(&self, case: CaseId, seq: u64) -> Result<Option<u64>, Error>;

    /// Stores a signed checkpoint; one of the same size already stored is left as it is
    /// (`Ok(false)`), else `Ok(true)`.
    async fn put_checkpoint(&self, c: &CheckpointRecord) -> Result<bool, Error>;

    /// Returns at most `limit` checkpoints with `size > after_size`, by size.
    async fn checkpoints(
        &self,
        after_size: u64,
        limit: usize,
    ) -> Result<Vec<CheckpointRecord>, Error>;

    /// Returns the checkpoint of the largest size, if any.
    async fn latest_checkpoint(&self) -> Result<Option<CheckpointRecord>, Error>;
}
