//! Turning a case and the events of one step into the rows a store commit writes.

use knhk_core::WorkflowId;
use std::collections::BTreeSet;

use knhk_core::model::{Allocation, TaskBinding};
use knhk_core::{Case, Event, EventKind, TimerId, Timestamp, WorkItemId, WorkItemState, Workflow};
use knhk_store::{CaseRecord, Change, TimerRecord, WorkItemRecord};
use serde_json::{Value, json};

pub(crate) type WorkItemChange = Change<WorkItemId, WorkItemRecord>;
pub(crate) type TimerChange = Change<TimerId, TimerRecord>;

/// Returns the case row for `case` as it stands.
pub(crate) fn case_record(
    case: &Case,
    wf: &Workflow,
    workflow: WorkflowId,
    created_at: Timestamp,
    now: Timestamp,
) -> CaseRecord {
    let marking: Vec<Value> = case
        .marking(wf)
        .into_iter()
        .map(|(net, condition, tokens)| {
            json!({"net_instance": net, "condition": condition.as_str(), "tokens": tokens})
        })
        .collect();
    CaseRecord {
        id: case.id(),
        workflow,
        status: case.status(),
        data: case.data().clone(),
        marking: Value::Array(marking),
        version: case.last_seq(),
        created_at,
        updated_at: now,
    }
}

/// Returns the work item and timer rows that the events of one step change.
pub(crate) fn changes(
    case: &Case,
    wf: &Workflow,
    events: &[Event],
) -> (Vec<WorkItemChange>, Vec<TimerChange>) {
    let mut items = BTreeSet::new();
    let mut timers = Vec::new();
    for e in events {
        match &e.kind {
            EventKind::WorkItemOffered { item, .. }
            | EventKind::WorkItemAllocated { item, .. }
            | EventKind::WorkItemStarted { item, .. }
            | EventKind::WorkItemCompleted { item, .. }
            | EventKind::WorkItemCancelled { item } => {
                items.insert(*item);
            }
            EventKind::TimerArmed {
                timer, fires_at, ..
            } => timers.push(Change::Put(TimerRecord {
                id: *timer,
                case_id: case.id(),
                fires_at: *fires_at,
            })),
            EventKind::TimerFired { timer } | EventKind::TimerCancelled { timer } => {
                timers.push(Change::Delete(*timer));
            }
            _ => {}
        }
    }
    let items = items
        .into_iter()
        .map(|id| match work_item_record(case, wf, id) {
            Some(r) => Change::Put(r),
            None => Change::Delete(id),
        })
        .collect();
    (items, timers)
}

/// Returns the row of a live human work item, `None` if it is gone or is a connector call.
pub(crate) fn work_item_record(
    case: &Case,
    wf: &Workflow,
    id: WorkItemId,
) -> Option<WorkItemRecord> {
    let item = case.work_item(&id)?;
    let state = match item.state {
        WorkItemState::Offered => "offered",
        WorkItemState::Allocated => "allocated",
        WorkItemState::Started => "started",
        WorkItemState::Calling => return None,
    };
    let TaskBinding::Human(h) = &case.task_model(wf, &item.task)?.binding else {
        return None;
    };
    Some(WorkItemRecord {
        id,
        case_id: case.id(),
        task: item.task.task.to_string(),
        net_instance: item.task.net_instance,
        instance: item.instance,
        roles: h.roles.clone(),
        allocation: allocation_name(h.allocation).to_string(),
        state: state.to_string(),
        owner: item.owner.clone(),
        input: item.input.clone(),
        offered_at: item.since,
    })
}

pub(crate) fn allocation_name(a: Allocation) -> &'static str {
    match a {
        Allocation::RoleOffer => "role_offer",
        Allocation::RoundRobin => "round_robin",
        Allocation::ShortestQueue => "shortest_queue",
    }
}
