//! What the engine shows its callers: workflows, cases and work items as the engine's own
//! types, and the queries that select them. The store's rows never leave the engine; the CLI
//! and the API see only these.

use std::fmt;
use std::path::Path;
use std::str::FromStr;

use knhk_core::model::Allocation;
use knhk_core::{CaseId, CaseStatus, TaskRef, Timestamp, WorkItemId, WorkflowId};
use serde::{Deserialize, Serialize};
use serde_json::{Map, Value};

/// The format a workflow definition was registered in.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum SourceFormat {
    /// YAWL 4 Turtle with the knhk extension (or the legacy v2 vocabulary).
    Turtle,
    /// YAWL XML, a `specificationSet` (schema 4.0 or Beta).
    YawlXml,
}

impl SourceFormat {
    /// Returns the format a file's extension names: `.ttl` Turtle, `.yawl` and `.xml` YAWL XML.
    pub fn of_path(path: &Path) -> Option<SourceFormat> {
        let extension = path.extension()?.to_string_lossy().to_ascii_lowercase();
        match extension.as_str() {
            "ttl" => Some(SourceFormat::Turtle),
            "yawl" | "xml" => Some(SourceFormat::YawlXml),
            _ => None,
        }
    }

    /// Returns the name stored and shown: `turtle` or `yawl-xml`.
    pub fn as_str(self) -> &'static str {
        match self {
            SourceFormat::Turtle => "turtle",
            SourceFormat::YawlXml => "yawl-xml",
        }
    }
}

impl fmt::Display for SourceFormat {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl FromStr for SourceFormat {
    type Err = UnknownName;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        match s {
            "turtle" => Ok(SourceFormat::Turtle),
            "yawl-xml" => Ok(SourceFormat::YawlXml),
            _ => Err(UnknownName(s.to_owned())),
        }
    }
}

/// A stored name (format, allocation, work item state) that this engine does not know.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
#[error("unknown stored name {0:?}")]
pub struct UnknownName(pub String);

/// Why a stored row does not decode into a view.
#[derive(Debug, thiserror::Error)]
pub enum RowError {
    #[error(transparent)]
    Name(#[from] UnknownName),
    #[error("marking: {0}")]
    Marking(#[source] serde_json::Error),
}

/// A registered workflow: one version of a definition, with the source it was registered from.
/// The validated definition itself comes from [`WorkflowEngine::definition`](crate::WorkflowEngine::definition).
#[derive(Clone, Debug, PartialEq)]
pub struct WorkflowView {
    pub id: WorkflowId,
    /// The specification's URI (`yawl:uri`, the XML `uri`, or the file's IRI when absent): the
    /// workflow's identity, whose versions are numbered.
    pub uri: String,
    /// The display name (the specification's name, else its URI).
    pub name: String,
    /// The version of this URI, from 1.
    pub version: u32,
    pub format: SourceFormat,
    /// The number of tasks of the definition, over all its nets.
    pub tasks: u32,
    pub source: String,
    pub registered_at: Timestamp,
}

/// A registered workflow without its source: what a list of workflows shows, read without
/// the sources and parsed definitions.
#[derive(Clone, Debug, PartialEq)]
pub struct WorkflowSummary {
    pub id: WorkflowId,
    /// The specification's URI: the workflow's identity, whose versions are numbered.
    pub uri: String,
    /// The display name.
    pub name: String,
    /// The version of this URI, from 1.
    pub version: u32,
    pub format: SourceFormat,
    /// The number of tasks of the definition, over all its nets.
    pub tasks: u32,
    pub registered_at: Timestamp,
}

/// What registering a definition did.
#[derive(Clone, Debug, PartialEq)]
pub struct Registration {
    /// The version stored: a new one, or the latest version of the URI when that one is
    /// identical to the definition given.
    pub workflow: WorkflowView,
    /// Whether the definition was identical to the latest version of its URI, so that no new
    /// version was made.
    pub already_registered: bool,
}

/// One condition that holds tokens, in one net instance.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct MarkedCondition {
    pub net_instance: u32,
    pub condition: String,
    pub tokens: u32,
}

/// A case after its last committed step.
#[derive(Clone, Debug, PartialEq)]
pub struct CaseView {
    pub id: CaseId,
    pub workflow: WorkflowId,
    pub status: CaseStatus,
    pub data: Map<String, Value>,
    /// The conditions holding tokens.
    pub marking: Vec<MarkedCondition>,
    /// The seq of the case's last event.
    pub version: u64,
    pub created_at: Timestamp,
    pub updated_at: Timestamp,
}

/// Where a live work item of a human task stands.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum WorkItemStatus {
    /// Offered to the members of its roles; nobody has it yet.
    Offered,
    /// Allocated to one user, not started.
    Allocated,
    /// Started by its user.
    Started,
}

impl WorkItemStatus {
    /// Returns the name stored and shown: `offered`, `allocated` or `started`.
    pub fn as_str(self) -> &'static str {
        match self {
            WorkItemStatus::Offered => "offered",
            WorkItemStatus::Allocated => "allocated",
            WorkItemStatus::Started => "started",
        }
    }
}

impl fmt::Display for WorkItemStatus {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl FromStr for WorkItemStatus {
    type Err = UnknownName;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        match s {
            "offered" => Ok(WorkItemStatus::Offered),
            "allocated" => Ok(WorkItemStatus::Allocated),
            "started" => Ok(WorkItemStatus::Started),
            _ => Err(UnknownName(s.to_owned())),
        }
    }
}

/// Returns the name stored and shown for an allocation policy.
pub fn allocation_name(a: Allocation) -> &'static str {
    match a {
        Allocation::RoleOffer => "role_offer",
        Allocation::RoundRobin => "round_robin",
        Allocation::ShortestQueue => "shortest_queue",
    }
}

/// Returns the allocation policy a stored name names.
pub(crate) fn allocation_of(name: &str) -> Result<Allocation, UnknownName> {
    match name {
        "role_offer" => Ok(Allocation::RoleOffer),
        "round_robin" => Ok(Allocation::RoundRobin),
        "shortest_queue" => Ok(Allocation::ShortestQueue),
        _ => Err(UnknownName(name.to_owned())),
    }
}

/// A live work item of a human task: offered to roles, allocated to or started by a user.
#[derive(Clone, Debug, PartialEq)]
pub struct WorkItemView {
    pub id: WorkItemId,
    pub case: CaseId,
    pub task: TaskRef,
    /// The instance of a multiple-instance task (0 for a single instance).
    pub instance: u32,
    pub roles: Vec<String>,
    pub allocation: Allocation,
    pub status: WorkItemStatus,
    pub owner: Option<String>,
    pub input: Value,
    pub offered_at: Timestamp,
}

/// Which cases [`WorkflowEngine::cases`](crate::WorkflowEngine::cases) returns, oldest first.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct CaseQuery {
    /// Any of these statuses; empty means any status.
    pub status: Vec<CaseStatus>,
    pub workflow: Option<WorkflowId>,
    pub limit: Option<usize>,
    /// Only the cases after this one in the list's order (creation time, then id): the next
    /// page of a list whose last case this is.
    pub after: Option<CaseId>,
}

/// Which work items [`WorkflowEngine::work_items`](crate::WorkflowEngine::work_items)
/// returns, oldest first; every field set must match.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct WorkItemQuery {
    /// Items offered to this role.
    pub role: Option<String>,
    pub case: Option<CaseId>,
    /// Items allocated to or started by this user.
    pub owner: Option<String>,
    /// Items in this status.
    pub status: Option<WorkItemStatus>,
    pub limit: Option<usize>,
    /// Only the items after this one in the list's order (offer time, then id): the next
    /// page of a list whose last item this is.
    pub after: Option<ItemCursor>,
}

/// Where the next page of a work item list starts: after an item, named by its id (which
/// must still be live, so that its place in the list can be read), or after a place in the
/// list's order, which holds even once the item there is gone (completed meanwhile).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ItemCursor {
    /// After this live work item.
    Item(WorkItemId),
    /// After this offer time and id: the `offered_at` and `id` of the last item of a page.
    At(Timestamp, WorkItemId),
}

/// A case set aside because it cannot be loaded: nothing runs it, and every command on it says
/// why, until someone repairs it. `knhk case list --status broken` lists these.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct QuarantinedCase {
    pub id: CaseId,
    /// Why: the error met loading it.
    pub reason: String,
    pub at: Timestamp,
}

/// A connector instance as the engine shows it: the built-in `http` or a `[connectors.NAME]`
/// of the config, with its pool when it has one.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct ConnectorView {
    pub name: String,
    /// `http`, `postgres`, `nats`...
    pub kind: String,
    /// What its pool holds now; `None` for an instance without a pool (`http`).
    pub pool: Option<ConnectorPool>,
}

/// What one instance's pool holds.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct ConnectorPool {
    pub max_size: usize,
    /// Connections checked out.
    pub active: usize,
    /// Connections open and free.
    pub idle: usize,
    /// Calls waiting for a connection.
    pub waiters: usize,
}

/// What a probe of one subscription of the intake found.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct SubscriptionHealthView {
    pub name: String,
    /// Whether its broker answered within the probe's timeout.
    pub ok: bool,
    /// How long the probe took, in milliseconds (up to its timeout).
    pub latency_ms: u64,
    /// Messages waiting to be delivered, where the broker tells (JetStream, AMQP).
    pub pending: Option<u64>,
    /// Messages delivered and not yet acknowledged, where the broker tells (JetStream).
    pub unacknowledged: Option<u64>,
    /// Why the probe failed (not running, a timeout, the broker's error).
    pub error: Option<String>,
}

/// What a probe of one connector instance found.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct ConnectorHealth {
    pub name: String,
    pub kind: String,
    /// Whether the far side answered within the probe's timeout.
    pub ok: bool,
    /// How long the probe took, in milliseconds (up to its timeout).
    pub latency_ms: u64,
    /// What the probe found besides "it answers" (a server version...).
    pub detail: Option<String>,
    /// Why the probe failed (a timeout included); never a secret.
    pub error: Option<String>,
}
