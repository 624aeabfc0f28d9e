//! The typed requests and responses of the service layer: what REST reads and writes as JSON,
//! and what a gRPC front converts its messages from and to. Ids are UUID strings, times RFC
//! 3339 in UTC; request bodies refuse unknown fields.

use knhk_core::{Event, Timestamp};
use knhk_workflow_engine::{
    CaseView, WorkItemView, WorkflowSummary, WorkflowView, allocation_name,
};
use serde::{Deserialize, Serialize};
use serde_json::{Map, Value};
use utoipa::ToSchema;

/// `POST /cases`: a new case of a workflow, started at once with `start`.
#[derive(Clone, Debug, Serialize, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct CreateCase {
    /// The workflow: its id, or its specification URI or name (the latest version), or
    /// `URI@N` / `NAME@N` for a version.
    pub workflow_id: String,
    /// The case's initial data, a JSON object.
    #[serde(default)]
    #[schema(value_type = Object)]
    pub data: Map<String, Value>,
    /// Starts the case in the same commit (it runs until it waits).
    #[serde(default)]
    pub start: bool,
}

/// `POST /cases/{id}/cancel`.
#[derive(Clone, Debug, Default, Serialize, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct CancelCase {
    /// Why, as the history records it.
    #[serde(default)]
    pub reason: Option<String>,
}

/// The body of `execute`, `suspend` and `resume`: empty, or an object without fields.
#[derive(Clone, Debug, Default, Serialize, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct NoFields {}

/// `POST /cases/{id}/triggers/{event}`.
#[derive(Clone, Debug, Default, Serialize, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct Trigger {
    /// The event's data, a JSON object, merged into the case data.
    #[serde(default)]
    #[schema(value_type = Object)]
    pub data: Map<String, Value>,
}

/// `claim`, `start` and `release` of a work item: who does it.
#[derive(Clone, Debug, Serialize, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct WorkItemUser {
    pub user: String,
}

/// `complete` of a work item.
#[derive(Clone, Debug, Serialize, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct CompleteWorkItem {
    pub user: String,
    /// The task's output, a JSON object merged into the case data.
    #[serde(default)]
    #[schema(value_type = Object)]
    pub output: Map<String, Value>,
}

/// `fail` of a work item: its task fails (along its failure flow, if it has one).
#[derive(Clone, Debug, Serialize, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct FailWorkItem {
    pub user: String,
    #[serde(default)]
    pub reason: Option<String>,
}

/// `delegate` of a work item: `user`, who holds it, hands it to `to`.
#[derive(Clone, Debug, Serialize, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct DelegateWorkItem {
    pub user: String,
    pub to: String,
}

/// `POST /cases/{id}/retry`: the failed task to run again, needed only when several tasks
/// failed the case.
#[derive(Clone, Debug, Default, Serialize, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct RetryCase {
    #[serde(default)]
    pub task: Option<String>,
    /// The sub-net instance the task runs in (0: the root net).
    #[serde(default)]
    pub net_instance: u32,
}

/// `POST /cases/{id}/data`: top-level keys of the case data to set.
#[derive(Clone, Debug, Serialize, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct SetData {
    #[schema(value_type = Object)]
    pub data: Map<String, Value>,
}

/// `POST /cases/{id}/instances`: a new instance of a running dynamic multiple-instance task.
#[derive(Clone, Debug, Serialize, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct AddInstance {
    pub task: String,
    #[serde(default)]
    pub net_instance: u32,
    /// The instance's item (any JSON value).
    #[serde(default)]
    #[schema(value_type = Object)]
    pub item: Value,
}

/// `POST /cases/{id}/complete-task`: completes a running task now, withdrawing its
/// unfinished instances.
#[derive(Clone, Debug, Serialize, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct CompleteTask {
    pub task: String,
    #[serde(default)]
    pub net_instance: u32,
}

/// `POST /workitems/{id}/offer`: an administrator (`user`) offers the item to other roles.
#[derive(Clone, Debug, Serialize, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct OfferWorkItem {
    pub user: String,
    pub roles: Vec<String>,
}

/// `POST /workitems/{id}/allocate`: an administrator (`user`) allocates the item to `to`.
#[derive(Clone, Debug, Serialize, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct AllocateWorkItem {
    pub user: String,
    pub to: String,
}

/// `GET /lookup/cases/{prefix}` and `GET /lookup/workitems/{prefix}`: the one id a shortened
/// id names.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize, ToSchema)]
pub struct Found {
    pub id: String,
}

/// `GET /connectors`: every connector instance, probed.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize, ToSchema)]
pub struct Connectors {
    pub items: Vec<Connector>,
    /// The subscriptions `knhk serve` consumes, each probed (absent from a server that has
    /// none).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub subscriptions: Vec<Subscription>,
}

/// A subscription of the intake, with what a probe of its broker found.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize, ToSchema)]
pub struct Subscription {
    pub name: String,
    /// Whether its broker answered within the probe's timeout.
    pub ok: bool,
    /// How long the probe took, in milliseconds.
    pub latency_ms: u64,
    /// Messages waiting to be delivered, where the broker tells (JetStream, AMQP, Kafka).
    pub pending: Option<u64>,
    /// Messages delivered and not yet acknowledged, where the broker tells (JetStream, Kafka).
    pub unacknowledged: Option<u64>,
    /// Why the probe failed (not running, a timeout, the broker's error).
    pub error: Option<String>,
}

/// A connector instance (the built-in `http`, or a `[connectors.NAME]` of the config file),
/// with its pool and what a probe of it found.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize, ToSchema)]
pub struct Connector {
    pub name: String,
    /// `http`, `postgres`, `nats`...
    pub kind: String,
    /// Its pool now; absent for an instance without one (`http`).
    pub pool: Option<ConnectorPool>,
    /// Whether the probe found the far side answering within its timeout.
    pub ok: bool,
    /// How long the probe took, in milliseconds.
    pub latency_ms: u64,
    /// What the probe found besides "it answers" (a server version...).
    pub detail: Option<String>,
    /// Why the probe failed.
    pub error: Option<String>,
}

/// What a connector instance's pool holds.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
pub struct ConnectorPool {
    pub max_size: usize,
    /// Connections checked out.
    pub active: usize,
    /// Connections open and free.
    pub idle: usize,
    /// Calls waiting for a connection.
    pub waiters: usize,
}

/// `GET /quarantine`: the cases set aside because their stored data does not load.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize, ToSchema)]
pub struct Quarantine {
    pub items: Vec<QuarantinedCase>,
}

/// A case set aside: its id, why (the error met loading it) and when.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize, ToSchema)]
pub struct QuarantinedCase {
    pub case_id: String,
    pub reason: String,
    pub quarantined_at: String,
}

/// `GET /cases` filters.
#[derive(Clone, Debug, Default)]
pub struct CaseFilter {
    /// A workflow id, URI or name.
    pub workflow: Option<String>,
    /// Statuses, any of which matches.
    pub status: Vec<knhk_core::CaseStatus>,
    pub page_token: Option<String>,
    /// A case id: the page starts after it (instead of a page token).
    pub after: Option<String>,
    pub page_size: Option<usize>,
}

/// `GET /workitems` filters.
#[derive(Clone, Debug, Default)]
pub struct WorkItemFilter {
    pub role: Option<String>,
    pub user: Option<String>,
    pub case: Option<knhk_core::CaseId>,
    pub status: Option<knhk_workflow_engine::WorkItemStatus>,
    pub page_token: Option<String>,
    /// A work item id: the page starts after it (instead of a page token); the item must be
    /// live, unless `after_offered_at` gives its offer time.
    pub after: Option<String>,
    /// The offer time of the item `after` names (RFC 3339, as listed): its place in the list,
    /// which holds once it is gone.
    pub after_offered_at: Option<String>,
    pub page_size: Option<usize>,
}

/// A registered workflow (one version of a definition).
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize, ToSchema)]
pub struct Workflow {
    pub id: String,
    pub uri: String,
    pub name: String,
    pub version: u32,
    /// `turtle` or `yawl-xml`.
    pub format: String,
    /// The number of tasks of the definition, over all its nets.
    pub tasks: u32,
    pub registered_at: String,
    /// The definition as registered (only when one workflow is asked for).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub source: Option<String>,
}

impl Workflow {
    pub fn of(w: &WorkflowView, with_source: bool) -> Workflow {
        Workflow {
            id: w.id.to_string(),
            uri: w.uri.clone(),
            name: w.name.clone(),
            version: w.version,
            format: w.format.as_str().to_owned(),
            tasks: w.tasks,
            registered_at: rfc3339(w.registered_at),
            source: with_source.then(|| w.source.clone()),
        }
    }

    /// Returns a workflow of a list: without its source.
    pub fn summary(w: &WorkflowSummary) -> Workflow {
        Workflow {
            id: w.id.to_string(),
            uri: w.uri.clone(),
            name: w.name.clone(),
            version: w.version,
            format: w.format.as_str().to_owned(),
            tasks: w.tasks,
            registered_at: rfc3339(w.registered_at),
            source: None,
        }
    }
}

/// What `POST /workflows` did.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize, ToSchema)]
pub struct Registered {
    pub workflow: Workflow,
    /// The definition was identical to the latest version of its URI: nothing new stored.
    pub already_registered: bool,
}

/// One condition holding tokens.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize, ToSchema)]
pub struct Marked {
    pub net_instance: u32,
    pub condition: String,
    pub tokens: u32,
}

/// A case after its last committed step.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize, ToSchema)]
pub struct Case {
    pub id: String,
    pub workflow_id: String,
    /// `created`, `running`, `suspended`, `completed`, `cancelled` or `failed`.
    pub status: String,
    #[schema(value_type = Object)]
    pub data: Map<String, Value>,
    pub marking: Vec<Marked>,
    /// The sequence number of the case's last event.
    pub version: u64,
    pub created_at: String,
    pub updated_at: String,
}

impl Case {
    pub fn of(c: &CaseView) -> Case {
        Case {
            id: c.id.to_string(),
            workflow_id: c.workflow.to_string(),
            status: c.status.as_str().to_owned(),
            data: c.data.clone(),
            marking: c
                .marking
                .iter()
                .map(|m| Marked {
                    net_instance: m.net_instance,
                    condition: m.condition.clone(),
                    tokens: m.tokens,
                })
                .collect(),
            version: c.version,
            created_at: rfc3339(c.created_at),
            updated_at: rfc3339(c.updated_at),
        }
    }
}

/// A live work item of a human task.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize, ToSchema)]
pub struct WorkItem {
    pub id: String,
    pub case_id: String,
    pub task: String,
    pub net_instance: u32,
    /// The instance of a multiple-instance task (0 for one instance).
    pub instance: u32,
    pub roles: Vec<String>,
    pub allocation: String,
    /// `offered`, `allocated` or `started`.
    pub status: String,
    pub owner: Option<String>,
    #[schema(value_type = Object)]
    pub input: Value,
    pub offered_at: String,
}

impl WorkItem {
    pub fn of(w: &WorkItemView) -> WorkItem {
        WorkItem {
            id: w.id.to_string(),
            case_id: w.case.to_string(),
            task: w.task.task.as_str().to_owned(),
            net_instance: w.task.net_instance,
            instance: w.instance,
            roles: w.roles.clone(),
            allocation: allocation_name(w.allocation).to_owned(),
            status: w.status.as_str().to_owned(),
            owner: w.owner.clone(),
            input: w.input.clone(),
            offered_at: rfc3339(w.offered_at),
        }
    }
}

/// One event of a case's history.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize, ToSchema)]
pub struct CaseEvent {
    /// Its place in the history, from 1.
    pub seq: u64,
    pub time: String,
    /// Milliseconds since the epoch.
    pub time_ms: i64,
    /// The event's kind (`case_created`, `task_started`...).
    pub kind: String,
    /// The event's own fields.
    #[schema(value_type = Object)]
    pub event: Map<String, Value>,
}

impl CaseEvent {
    pub fn of(e: &Event) -> CaseEvent {
        let mut fields = match serde_json::to_value(&e.kind) {
            Ok(Value::Object(map)) => map,
            _ => Map::new(),
        };
        fields.remove("type");
        CaseEvent {
            seq: e.seq,
            time: rfc3339(e.time),
            time_ms: e.time.0,
            kind: e.kind.name().to_owned(),
            event: fields,
        }
    }
}

/// `GET /cases/{id}/waits`: what a case waits for, in the engine's order.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize, ToSchema)]
pub struct CaseWaits {
    pub waits: Vec<CaseWait>,
}

/// One thing a case waits for from outside the engine. Tasks are named by `task` and the
/// `net_instance` they run in; times are RFC 3339 in UTC.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize, ToSchema)]
#[serde(tag = "kind", rename_all = "snake_case")]
pub enum CaseWait {
    /// The case was created and not started.
    Start,
    /// The case is suspended.
    Resume,
    /// A human work item; `user` is who allocated or started it.
    WorkItem {
        item: String,
        task: String,
        net_instance: u32,
        /// `offered`, `allocated` or `started`.
        state: String,
        roles: Vec<String>,
        user: Option<String>,
        since: String,
    },
    /// A connector call in flight.
    Call {
        item: String,
        task: String,
        net_instance: u32,
        connector: String,
        idempotency_key: String,
        since: String,
    },
    /// An armed timer.
    Timer {
        timer: String,
        task: String,
        net_instance: u32,
        fires_at: String,
    },
    /// A task that failed its case, until an operator retries it or cancels the case.
    Retry {
        task: String,
        net_instance: u32,
        reason: String,
        attempt: u32,
        since: String,
    },
    /// A trigger task waiting for an outside event.
    Trigger {
        task: String,
        net_instance: u32,
        event: String,
    },
}

impl CaseWait {
    pub fn of(w: &knhk_core::Wait) -> CaseWait {
        use knhk_core::Wait;
        match w {
            Wait::Start => CaseWait::Start,
            Wait::Resume => CaseWait::Resume,
            Wait::WorkItem {
                item,
                task,
                state,
                roles,
                user,
                since,
            } => CaseWait::WorkItem {
                item: item.to_string(),
                task: task.task.as_str().to_owned(),
                net_instance: task.net_instance,
                state: work_item_state(*state).to_owned(),
                roles: roles.clone(),
                user: user.clone(),
                since: rfc3339(*since),
            },
            Wait::Call {
                item,
                task,
                connector,
                idempotency_key,
                since,
            } => CaseWait::Call {
                item: item.to_string(),
                task: task.task.as_str().to_owned(),
                net_instance: task.net_instance,
                connector: connector.clone(),
                idempotency_key: idempotency_key.clone(),
                since: rfc3339(*since),
            },
            Wait::Timer {
                timer,
                task,
                fires_at,
            } => CaseWait::Timer {
                timer: timer.to_string(),
                task: task.task.as_str().to_owned(),
                net_instance: task.net_instance,
                fires_at: rfc3339(*fires_at),
            },
            Wait::Retry {
                task,
                reason,
                attempt,
                since,
            } => CaseWait::Retry {
                task: task.task.as_str().to_owned(),
                net_instance: task.net_instance,
                reason: reason.clone(),
                attempt: *attempt,
                since: rfc3339(*since),
            },
            Wait::Trigger { task, event } => CaseWait::Trigger {
                task: task.task.as_str().to_owned(),
                net_instance: task.net_instance,
                event: event.clone(),
            },
        }
    }
}

/// Returns the name of a work item's state in a wait.
pub fn work_item_state(s: knhk_core::WorkItemState) -> &'static str {
    use knhk_core::WorkItemState;
    match s {
        WorkItemState::Offered => "offered",
        WorkItemState::Allocated => "allocated",
        WorkItemState::Started => "started",
        WorkItemState::Calling => "calling",
    }
}

/// A page of workflows.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize, ToSchema)]
pub struct WorkflowPage {
    pub items: Vec<Workflow>,
    /// The token of the next page; absent on the last page.
    pub next_page_token: Option<String>,
}

/// A page of cases.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize, ToSchema)]
pub struct CasePage {
    pub items: Vec<Case>,
    pub next_page_token: Option<String>,
}

/// A page of work items.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize, ToSchema)]
pub struct WorkItemPage {
    pub items: Vec<WorkItem>,
    pub next_page_token: Option<String>,
}

/// A page of a case's history.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize, ToSchema)]
pub struct HistoryPage {
    pub events: Vec<CaseEvent>,
    pub next_page_token: Option<String>,
}

/// `GET /health` and `GET /ready`.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize, ToSchema)]
pub struct Status {
    /// `ok`, `ready`, or why not.
    pub status: String,
}

/// The body of every error response.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize, ToSchema)]
pub struct ErrorBody {
    pub error: ErrorDetail,
}

/// An error: its code (one vocabulary, see the README), a message naming what is wrong, and
/// details (the field at fault, the limit passed...).
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize, ToSchema)]
pub struct ErrorDetail {
    pub code: String,
    pub message: String,
    #[schema(value_type = Object)]
    pub details: Value,
}

/// Returns a time as RFC 3339 in UTC with milliseconds.
pub fn rfc3339(t: Timestamp) -> String {
    match jiff::Timestamp::from_millisecond(t.0) {
        Ok(ts) => format!("{ts:.3}"),
        Err(_) => t.0.to_string(),
    }
}
