//! What a store holds, one struct per kind of row, and the shape of one atomic step.

use knhk_core::{CaseId, CaseStatus, Event, TimerId, Timestamp, WorkItemId, WorkflowId};
use serde::{Deserialize, Serialize};
use serde_json::{Map, Value};

/// A registered workflow: one version of a specification, its source text as given and its
/// parsed form.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct WorkflowRecord {
    pub id: WorkflowId,
    /// The specification's URI: the workflow's identity. Versions are numbered per URI, and
    /// no two records share a URI and a version.
    pub uri: String,
    /// The display name, for listing.
    pub name: String,
    pub version: u32,
    /// The source format (e.g. `turtle`, `yawl-xml`).
    pub format: String,
    pub source: String,
    /// The parsed specification, as JSON.
    pub spec: Value,
    pub registered_at: Timestamp,
}

/// A registered workflow without its source and parsed form: what a list of workflows, or a
/// lookup by URI or name, reads.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct WorkflowSummary {
    pub id: WorkflowId,
    pub uri: String,
    pub name: String,
    pub version: u32,
    pub format: String,
    /// The number of tasks of the specification, over all its nets (the lengths of the
    /// `tasks` lists of the `nets` of [`WorkflowRecord::spec`]), counted by the backend.
    pub tasks: u32,
    pub registered_at: Timestamp,
}

impl WorkflowSummary {
    /// Returns the summary of a record, counting the tasks of its parsed form.
    pub fn of(w: &WorkflowRecord) -> WorkflowSummary {
        let tasks = w
            .spec
            .get("nets")
            .and_then(Value::as_array)
            .map_or(0, |nets| {
                nets.iter()
                    .filter_map(|n| n.get("tasks").and_then(Value::as_array))
                    .map(Vec::len)
                    .sum::<usize>()
            });
        WorkflowSummary {
            id: w.id,
            uri: w.uri.clone(),
            name: w.name.clone(),
            version: w.version,
            format: w.format.clone(),
            tasks: u32::try_from(tasks).unwrap_or(u32::MAX),
            registered_at: w.registered_at,
        }
    }
}

/// The snapshot of a case after its last committed step.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct CaseRecord {
    pub id: CaseId,
    pub workflow: WorkflowId,
    pub status: CaseStatus,
    pub data: Map<String, Value>,
    pub marking: Value,
    /// The seq of the case's last event: the version optimistic concurrency compares.
    pub version: u64,
    pub created_at: Timestamp,
    pub updated_at: Timestamp,
    /// Whether the case has work the engine set going and has not seen end: a connector call in
    /// flight, or a work item still to be allocated. Recovery after a crash takes up only
    /// these cases; the others wait in the store for their next input.
    pub in_flight: bool,
    /// The fencing token of the node that owns the case's work in flight (the node that
    /// committed the step that set it going, or claimed the case from a dead node since);
    /// `None` when no node owns it (nothing in flight, or a process that is no node, such as
    /// a one-shot command, committed last). See [`Fencing`].
    pub owner: Option<u64>,
}

/// A work item offered to people (or allocated to, or started by, one of them).
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct WorkItemRecord {
    pub id: WorkItemId,
    pub case_id: CaseId,
    pub task: String,
    pub net_instance: u32,
    pub instance: u32,
    pub roles: Vec<String>,
    /// The allocation policy (e.g. `offer`, `round_robin`).
    pub allocation: String,
    /// `offered`, `allocated` or `started`.
    pub state: String,
    pub owner: Option<String>,
    pub input: Value,
    pub offered_at: Timestamp,
}

/// An armed timer of a case.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct TimerRecord {
    pub id: TimerId,
    pub case_id: CaseId,
    pub fires_at: Timestamp,
}

/// The remembered response of a request made with an idempotency key.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct IdempotencyRecord {
    pub key: String,
    pub response: Value,
    pub at: Timestamp,
}

/// A case set aside because it cannot be loaded (its row or history does not decode, or its
/// history does not replay to its row): nothing runs it any more, and every command on it
/// says why, until someone repairs it.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct QuarantineRecord {
    pub case: CaseId,
    /// Why, in words (the error met loading the case).
    pub reason: String,
    pub at: Timestamp,
}

/// A row to write or the key of a row to remove.
#[derive(Clone, Debug, PartialEq)]
pub enum Change<K, R> {
    Put(R),
    Delete(K),
}

/// One step of one case: everything commits together or nothing does.
///
/// Rules every backend enforces: with `expected_version: None` the case must not exist yet,
/// with `Some(v)` its stored version must be `v` (else [`Error::Conflict`](crate::Error));
/// the events continue the stored history without gaps from `v + 1` (or 1), and
/// `case.version` is the seq of the last event, or stays `v` when there are none (else
/// [`Error::Gap`](crate::Error)); an idempotency key already stored fails the whole commit
/// ([`Error::DuplicateKey`](crate::Error)).
#[derive(Clone, Debug, PartialEq)]
pub struct Commit {
    pub case: CaseRecord,
    /// `None`: the case must not exist yet.
    pub expected_version: Option<u64>,
    pub events: Vec<Event>,
    pub work_items: Vec<Change<WorkItemId, WorkItemRecord>>,
    pub timers: Vec<Change<TimerId, TimerRecord>>,
    pub idempotency: Option<IdempotencyRecord>,
    /// A snapshot of the case's state at one of its events (usually the last one of this
    /// commit), which replaces the case's stored snapshot: a cache of the history, so that
    /// loading the case need not read the events up to it. `None` keeps the stored one.
    pub snapshot: Option<SnapshotRecord>,
    /// The node committing the step and, for the result of work it owned, the token it owned
    /// it under; `None` for a process that is no node (a one-shot command).
    pub fencing: Option<Fencing>,
    /// The lockchain leaf hash of each of `events`, in order
    /// ([`knhk_lockchain::canonical::event_leaf`]); empty when the engine keeps no lockchain.
    /// The backend appends them to the store's one tree in the step's transaction: the
    /// events get the next leaf indexes, in order, and the changed tiles
    /// ([`knhk_lockchain::Tail::append`]) are written with them, so that a step and its
    /// leaves are durable together or not at all. A commit whose `leaves` are not empty and
    /// not one per event is refused ([`Error::Gap`](crate::Error) is not it: see
    /// [`Error::Lockchain`](crate::Error)).
    pub leaves: Vec<knhk_lockchain::Hash>,
}

/// The head of the store's lockchain tree: its size and root hash.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct TreeHead {
    pub size: u64,
    pub root: knhk_lockchain::Hash,
}

/// A signed checkpoint of the lockchain tree, as stored.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct CheckpointRecord {
    /// The tree size it signs: the key.
    pub size: u64,
    pub root: knhk_lockchain::Hash,
    /// The signed note (C2SP `tlog-checkpoint` in a `signed-note`), as signed.
    pub note: String,
    pub at: Timestamp,
}

/// How a step committed by one of several engine nodes sharing the store is fenced.
///
/// Rules every backend enforces, before anything else of the commit: the node holding the
/// token `node` must have a lease that has not expired at the step's time (`case.updated_at`),
/// else [`Error::LeaseExpired`](crate::Error); and with `owned_by: Some(t)` the stored case's
/// [`CaseRecord::owner`] must still be `t`, else [`Error::Fenced`](crate::Error) (another node
/// claimed or took over the case and does that work now). A refused commit stores nothing.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Fencing {
    /// The fencing token of the node committing ([`crate::Store::register_node`]).
    pub node: u64,
    /// For a step that feeds back the result of owned work (a connector call, an
    /// allocation): the token under which the work was owned when it was set going.
    pub owned_by: Option<u64>,
}

/// One engine node sharing the store: its fencing token and lease.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct NodeRecord {
    /// The fencing token: given once, greater than every token given before, never reused.
    /// A node that lost its lease registers again and gets a new one.
    pub fence: u64,
    /// What the node calls itself (host and process id), for people.
    pub name: String,
    pub started_at: Timestamp,
    /// When the lease ends unless renewed: from then on the node is dead to the others, its
    /// cases may be claimed and its commits are refused.
    pub expires_at: Timestamp,
}

/// Which cases with work in flight [`crate::Store::claim_cases`] may claim.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Orphans {
    /// Those owned by a registered node whose lease has expired: the periodic sweep of a
    /// live node.
    OfDeadNodes,
    /// Those, and those no node owns (left by a process that was no node, or stored before
    /// format 9): a node starting up.
    AlsoUnowned,
}

/// A snapshot of a case's state after its event `seq` ([`knhk_core::CaseSnapshot`]): kept
/// per case, the latest only, written in the commit of a step. The history stays the truth; a
/// snapshot that does not restore is only a reason to read the history in full.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct SnapshotRecord {
    /// The sequence number of the last event the state includes.
    pub seq: u64,
    /// The encoding of `state`.
    pub format: u32,
    /// The encoded state.
    pub state: String,
}

/// Which cases [`Store::cases`](crate::Store::cases) returns.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct CaseFilter {
    /// Any of these statuses; empty means any status.
    pub status: Vec<CaseStatus>,
    pub workflow: Option<WorkflowId>,
    pub limit: Option<usize>,
    /// Only cases after this one in the order of the list (creation time, then id): where the
    /// next page of a paged list starts.
    pub after: Option<(Timestamp, CaseId)>,
}

/// Which work items [`Store::work_items`](crate::Store::work_items) returns; every condition
/// set must match, and at most `limit` are returned.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct WorkItemFilter {
    /// Items whose roles contain this role.
    pub role: Option<String>,
    pub case: Option<CaseId>,
    pub owner: Option<String>,
    /// Items in this state ([`WorkItemRecord::state`]: `offered`, `allocated` or `started`).
    pub state: Option<String>,
    pub limit: Option<usize>,
    /// Only items after this one in the order of the list (offer time, then id): where the
    /// next page of a paged list starts.
    pub after: Option<(Timestamp, WorkItemId)>,
}

impl CaseFilter {
    /// Returns whether a case passes the status and workflow conditions (not the limit).
    pub(crate) fn matches(&self, c: &CaseRecord) -> bool {
        (self.status.is_empty() || self.status.contains(&c.status))
            && self.workflow.is_none_or(|w| w == c.workflow)
            && self.after.is_none_or(|after| (c.created_at, c.id) > after)
    }
}

impl WorkItemFilter {
    /// Returns whether a work item passes every condition set.
    pub(crate) fn matches(&self, w: &WorkItemRecord) -> bool {
        self.role.as_ref().is_none_or(|r| w.roles.contains(r))
            && self.case.is_none_or(|c| c == w.case_id)
            && self
                .owner
                .as_ref()
                .is_none_or(|o| w.owner.as_ref() == Some(o))
            && self.state.as_ref().is_none_or(|s| *s == w.state)
            && self.after.is_none_or(|after| (w.offered_at, w.id) > after)
    }
}

/// Returns the last group of a hyphenated id: the 12 hex digits after its last `-` (the
/// random part of a time-ordered UUIDv7, whose first digits are its creation time).
pub fn last_group(id: &str) -> &str {
    id.rsplit('-').next().unwrap_or(id)
}

/// Returns whether an id (hyphenated, lowercase) is named by `prefix`: the id, or its last
/// group, starts with it.
pub(crate) fn named_by(id: &str, prefix: &str) -> bool {
    id.starts_with(prefix) || last_group(id).starts_with(prefix)
}
