//! The storage trait every backend implements.

use knhk_core::WorkflowId;
use knhk_core::{CaseId, CaseStatus, Event, WorkItemId};

use crate::error::Error;
use crate::plan::QueryPlan;
use crate::record::{
    CaseFilter, CaseRecord, Commit, IdempotencyRecord, QuarantineRecord, SnapshotRecord,
    TimerRecord, WorkItemFilter, WorkItemRecord, WorkflowRecord, WorkflowSummary,
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
    /// Writes one step of one case atomically; the step is durable when `Ok` returns.
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
}
