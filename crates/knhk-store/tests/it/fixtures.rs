//! Records and events the tests build, with fixed ids and times so results are comparable.

use knhk_core::WorkflowId;
use std::sync::Arc;

use knhk_core::{
    CaseId, CaseStatus, ElementId, Event, EventKind, NetId, TaskRef, TimerId, Timestamp, WorkItemId,
};
use knhk_store::{
    CaseRecord, Change, Commit, IdempotencyRecord, Store, TimerRecord, WorkItemRecord,
    WorkflowRecord,
};
use serde_json::{Map, Value, json};
use tempfile::TempDir;
use uuid::Uuid;

/// A store under test, with the directory that holds its file (if any).
pub struct Fixture {
    pub store: Arc<dyn Store>,
    pub _dir: Option<TempDir>,
    /// The PostgreSQL schema holding the store, dropped with the fixture.
    pub _schema: Option<crate::postgres::Schema>,
}

pub fn workflow_id(n: u128) -> WorkflowId {
    WorkflowId(Uuid::from_u128(0xf000 + n))
}

pub fn case_id(n: u128) -> CaseId {
    CaseId(Uuid::from_u128(0xc000 + n))
}

pub fn item_id(n: u128) -> WorkItemId {
    WorkItemId(Uuid::from_u128(0xa000 + n))
}

pub fn timer_id(n: u128) -> TimerId {
    TimerId(Uuid::from_u128(0xb000 + n))
}

/// A workflow named `name` whose URI is `urn:knhk:workflow:NAME` (what a store of format 2 or
/// older gives a specification without an id, as these fixtures' are).
pub fn workflow(n: u128, name: &str, version: u32) -> WorkflowRecord {
    WorkflowRecord {
        id: workflow_id(n),
        uri: format!("urn:knhk:workflow:{name}"),
        name: name.to_owned(),
        version,
        format: "turtle".to_owned(),
        source: format!("@prefix yawl: <http://example.org/yawl#> .\n# {name} v{version}\n"),
        spec: json!({ "name": name, "nets": [{ "id": "root", "tasks": ["a", "b"] }], "v": version }),
        registered_at: Timestamp(1_700_000_000_000 + i64::from(version)),
    }
}

pub fn data(pairs: &[(&str, Value)]) -> Map<String, Value> {
    pairs
        .iter()
        .map(|(k, v)| ((*k).to_owned(), v.clone()))
        .collect()
}

pub fn case(n: u128, wf: WorkflowId, status: CaseStatus, created: i64) -> CaseRecord {
    CaseRecord {
        id: case_id(n),
        workflow: wf,
        status,
        data: data(&[
            ("n", json!(n as u64)),
            ("label", json!(format!("case {n}"))),
        ]),
        marking: json!({ "0": { "start": 1 } }),
        version: 0,
        created_at: Timestamp(created),
        updated_at: Timestamp(created),
        // As every row of a format before 6 reads: the golden files compare with these.
        in_flight: true,
        owner: None,
    }
}

pub fn event(seq: u64, kind: EventKind) -> Event {
    Event {
        seq,
        time: Timestamp(1_700_000_100_000 + seq as i64),
        kind,
    }
}

/// Returns events `first..` with the given kinds.
pub fn events_from(first: u64, kinds: Vec<EventKind>) -> Vec<Event> {
    kinds
        .into_iter()
        .zip(first..)
        .map(|(k, seq)| event(seq, k))
        .collect()
}

pub fn task(name: &str) -> TaskRef {
    TaskRef {
        net_instance: 0,
        task: ElementId::new(name),
    }
}

/// Returns one event kind of every variant.
pub fn every_event_kind() -> Vec<EventKind> {
    let item = item_id(1);
    let timer = timer_id(1);
    vec![
        EventKind::CaseCreated {
            workflow: "order".to_owned(),
            data: data(&[("amount", json!(12.5)), ("items", json!(["x", "y"]))]),
        },
        EventKind::CaseStateChanged {
            from: CaseStatus::Created,
            to: CaseStatus::Running,
            reason: None,
        },
        EventKind::CaseStateChanged {
            from: CaseStatus::Running,
            to: CaseStatus::Cancelled,
            reason: Some("asked to".to_owned()),
        },
        EventKind::CaseDeadlocked {
            marked: vec![ElementId::new("c1"), ElementId::new("c2")],
        },
        EventKind::NetStarted {
            net_instance: 1,
            net: NetId::new("sub"),
            parent: task("compose"),
            instance: 0,
        },
        EventKind::NetEnded { net_instance: 1 },
        EventKind::TaskEnabled { task: task("a") },
        EventKind::TaskWithdrawn { task: task("b") },
        EventKind::TaskStarted {
            task: task("a"),
            instances: vec![json!({ "i": 1 }), json!(null)],
        },
        EventKind::InstanceAdded {
            task: task("a"),
            item: json!("extra"),
        },
        EventKind::InstanceCompleted {
            task: task("a"),
            instance: 2,
            output: json!({ "ok": true }),
        },
        EventKind::TaskCompleted {
            task: task("a"),
            produced: vec![ElementId::new("c3")],
        },
        EventKind::TaskCancelled { task: task("b") },
        EventKind::TaskFailed {
            task: task("b"),
            reason: "boom".to_owned(),
            produced: Vec::new(),
        },
        EventKind::TaskFailed {
            task: task("b"),
            reason: "routed".to_owned(),
            produced: vec![ElementId::new("c2")],
        },
        EventKind::TokensRemoved {
            net_instance: 0,
            condition: ElementId::new("c1"),
            count: 3,
        },
        EventKind::WorkItemOffered {
            item,
            task: task("approve"),
            instance: 0,
            input: json!({ "amount": 12.5 }),
        },
        EventKind::WorkItemAllocated {
            item,
            user: "alice".to_owned(),
        },
        EventKind::WorkItemStarted {
            item,
            user: "alice".to_owned(),
        },
        EventKind::WorkItemCompleted {
            item,
            user: "alice".to_owned(),
            output: json!({ "approved": true, "note": "ünïcode ✓ \"quoted\"" }),
        },
        EventKind::WorkItemCancelled { item },
        EventKind::ConnectorCallStarted {
            item,
            task: task("call"),
            instance: 0,
            connector: "http".to_owned(),
            idempotency_key: "case-1/call/0".to_owned(),
            input: json!({ "url": "http://localhost/x" }),
        },
        EventKind::ConnectorCallSucceeded {
            item,
            output: json!([1, 2, 3]),
            failed_attempts: Vec::new(),
        },
        EventKind::ConnectorCallFailed {
            item,
            error: "timeout after 5s".to_owned(),
            failed_attempts: Vec::new(),
        },
        EventKind::TimerArmed {
            timer,
            task: task("a"),
            fires_at: Timestamp(1_700_000_200_000),
        },
        EventKind::TimerFired { timer },
        EventKind::TimerCancelled { timer },
        EventKind::DataUpdated {
            changes: data(&[("amount", json!(-3)), ("gone", Value::Null)]),
        },
    ]
}

/// Returns a first commit of `case` carrying `events` (seq 1..), versioned to match.
pub fn first_commit(mut case: CaseRecord, events: Vec<Event>) -> Commit {
    case.version = events.last().map_or(0, |e| e.seq);
    Commit {
        case,
        expected_version: None,
        events,
        work_items: Vec::new(),
        timers: Vec::new(),
        idempotency: None,
        snapshot: None,
        fencing: None,
        leaves: Vec::new(),
    }
}

/// Returns the next step of `case` (at its current version) carrying `kinds`.
pub fn next_step(case: &CaseRecord, kinds: Vec<EventKind>) -> Commit {
    let events = events_from(case.version + 1, kinds);
    let mut next = case.clone();
    next.version = events.last().map_or(case.version, |e| e.seq);
    next.updated_at = Timestamp(case.updated_at.0 + 1);
    Commit {
        case: next,
        expected_version: Some(case.version),
        events,
        work_items: Vec::new(),
        timers: Vec::new(),
        idempotency: None,
        snapshot: None,
        fencing: None,
        leaves: Vec::new(),
    }
}

/// Creates a case with one `case_created` event and returns its record as stored.
pub async fn create_case(
    store: &dyn Store,
    n: u128,
    wf: WorkflowId,
    status: CaseStatus,
    created: i64,
) -> CaseRecord {
    let c = first_commit(
        case(n, wf, status, created),
        vec![event(
            1,
            EventKind::CaseCreated {
                workflow: "w".to_owned(),
                data: Map::new(),
            },
        )],
    );
    let record = c.case.clone();
    store.commit(c).await.unwrap();
    record
}

pub fn work_item(
    n: u128,
    case: CaseId,
    roles: &[&str],
    owner: Option<&str>,
    offered_at: i64,
) -> WorkItemRecord {
    WorkItemRecord {
        id: item_id(n),
        case_id: case,
        task: format!("task{n}"),
        net_instance: 0,
        instance: n as u32,
        roles: roles.iter().map(|r| (*r).to_owned()).collect(),
        allocation: "offer".to_owned(),
        state: if owner.is_some() {
            "allocated"
        } else {
            "offered"
        }
        .to_owned(),
        owner: owner.map(str::to_owned),
        input: json!({ "n": n as u64 }),
        offered_at: Timestamp(offered_at),
    }
}

pub fn timer(n: u128, case: CaseId, fires_at: i64) -> TimerRecord {
    TimerRecord {
        id: timer_id(n),
        case_id: case,
        fires_at: Timestamp(fires_at),
    }
}

pub fn idempotency(key: &str, at: i64) -> IdempotencyRecord {
    IdempotencyRecord {
        key: key.to_owned(),
        response: json!({ "status": 201, "body": { "key": key } }),
        at: Timestamp(at),
    }
}

pub fn put<K, R>(r: R) -> Change<K, R> {
    Change::Put(r)
}
