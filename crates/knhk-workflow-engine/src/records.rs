//! Turning a case and the events of one step into the rows a store commit writes, and stored
//! rows into the engine's views.

use std::collections::BTreeSet;

use knhk_core::model::{Allocation, TaskBinding};
use knhk_core::{
    Case, CaseId, CaseStatus, Event, EventKind, TaskRef, TimerId, Timestamp, WorkItemId,
    WorkItemKind, WorkItemState, Workflow, WorkflowId,
};
use knhk_store::{
    CaseFilter, CaseRecord, Change, TimerRecord, WorkItemFilter, WorkItemRecord, WorkflowRecord,
};

use crate::error::Error;
use crate::view::{
    CaseQuery, CaseView, MarkedCondition, RowError, UnknownName, WorkItemQuery, WorkItemStatus,
    WorkItemView, WorkflowView, allocation_name, allocation_of,
};

pub(crate) type WorkItemChange = Change<WorkItemId, WorkItemRecord>;
pub(crate) type TimerChange = Change<TimerId, TimerRecord>;

/// Returns the view of `case` as it stands after a step.
pub(crate) fn case_view_of(
    case: &Case,
    wf: &Workflow,
    workflow: WorkflowId,
    created_at: Timestamp,
    now: Timestamp,
) -> CaseView {
    CaseView {
        id: case.id(),
        workflow,
        status: case.status(),
        data: case.data().clone(),
        marking: case
            .marking(wf)
            .into_iter()
            .map(|(net_instance, condition, tokens)| MarkedCondition {
                net_instance,
                condition: condition.to_string(),
                tokens,
            })
            .collect(),
        version: case.last_seq(),
        created_at,
        updated_at: now,
    }
}

/// Returns whether a case has work the engine set going and has not seen end: a connector call
/// in flight, or a work item that an allocation policy (not a plain role offer) still has to
/// give someone. Recovery takes up only such cases ([`CaseRecord::in_flight`]).
/// Returns whether connector calls of the case are in flight, whatever its status: a case
/// failed with an incident still takes their results, so the node making them owns them.
pub(crate) fn has_calls_in_flight(case: &Case) -> bool {
    case.work_items()
        .any(|(_, item)| matches!(item.kind, WorkItemKind::Call { .. }))
}

pub(crate) fn has_work_in_flight(case: &Case, wf: &Workflow) -> bool {
    if case.status().is_final() {
        return false;
    }
    case.work_items().any(|(_, item)| match item.kind {
        WorkItemKind::Call { .. } => true,
        WorkItemKind::Human => {
            item.owner.is_none()
                && matches!(
                    case.task_model(wf, &item.task).map(|t| &t.binding),
                    Some(TaskBinding::Human(h)) if h.allocation != Allocation::RoleOffer
                )
        }
    })
}

/// Returns the stored row of a case view; `in_flight` as [`has_work_in_flight`] says, and
/// `owner` the fencing token of the node that owns the case's work: the work in flight, or the
/// calls of a case failed with an incident, which is not "in flight" (no node recovers it) but
/// still takes their results, fenced by this owner.
pub(crate) fn case_row(
    view: &CaseView,
    in_flight: bool,
    owner: Option<u64>,
) -> Result<CaseRecord, Error> {
    Ok(CaseRecord {
        id: view.id,
        workflow: view.workflow,
        status: view.status,
        data: view.data.clone(),
        marking: serde_json::to_value(&view.marking).map_err(|source| {
            Error::Store(knhk_store::Error::Encode {
                what: "case marking",
                source,
            })
        })?,
        version: view.version,
        created_at: view.created_at,
        updated_at: view.updated_at,
        in_flight,
        owner,
    })
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
            | EventKind::WorkItemReoffered { item, .. }
            | EventKind::WorkItemAllocated { item, .. }
            | EventKind::WorkItemReleased { item, .. }
            | EventKind::WorkItemDelegated { item, .. }
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
    // A case failed by a task keeps its timers armed but stores none (not even one its
    // retried task armed while another incident is open), so that no timer service fires
    // them; the retry that makes it run stores them again (those due fire at once).
    let retried = events.iter().any(|e| {
        matches!(
            e.kind,
            EventKind::CaseStateChanged {
                from: CaseStatus::Failed,
                ..
            }
        )
    });
    if !stores_timers(case) {
        timers.extend(case.timers().map(|(id, _)| Change::Delete(*id)));
    } else if retried {
        timers.extend(case.timers().map(|(id, fires_at)| {
            Change::Put(TimerRecord {
                id: *id,
                case_id: case.id(),
                fires_at,
            })
        }));
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

/// Returns whether the store holds rows for the armed timers of `case`: not while it is
/// failed, so that no timer service fires them before it is retried.
pub(crate) fn stores_timers(case: &Case) -> bool {
    case.status() != CaseStatus::Failed
}

/// Returns the row of a live human work item, `None` if it is gone or is a connector call.
pub(crate) fn work_item_record(
    case: &Case,
    wf: &Workflow,
    id: WorkItemId,
) -> Option<WorkItemRecord> {
    let item = case.work_item(&id)?;
    let state = match item.state {
        WorkItemState::Offered => WorkItemStatus::Offered,
        WorkItemState::Allocated => WorkItemStatus::Allocated,
        WorkItemState::Started => WorkItemStatus::Started,
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
        roles: item.offered_to.clone().unwrap_or_else(|| h.roles.clone()),
        allocation: allocation_name(h.allocation).to_string(),
        state: state.as_str().to_string(),
        owner: item.owner.clone(),
        input: item.input.clone(),
        offered_at: item.since,
    })
}

/// Returns the view of a stored workflow row.
pub(crate) fn workflow_view(r: WorkflowRecord) -> Result<WorkflowView, Error> {
    let format = r
        .format
        .parse::<crate::view::SourceFormat>()
        .map_err(|e| Error::CorruptRow {
            row: "workflow",
            id: r.id.to_string(),
            source: e.into(),
        })?;
    let tasks = knhk_store::WorkflowSummary::of(&r).tasks;
    Ok(WorkflowView {
        id: r.id,
        uri: r.uri,
        name: r.name,
        version: r.version,
        format,
        tasks,
        source: r.source,
        registered_at: r.registered_at,
    })
}

/// Returns the view of a stored workflow's summary.
pub(crate) fn workflow_summary(
    r: knhk_store::WorkflowSummary,
) -> Result<crate::view::WorkflowSummary, Error> {
    let format = r
        .format
        .parse::<crate::view::SourceFormat>()
        .map_err(|e| Error::CorruptRow {
            row: "workflow",
            id: r.id.to_string(),
            source: e.into(),
        })?;
    Ok(crate::view::WorkflowSummary {
        id: r.id,
        uri: r.uri,
        name: r.name,
        version: r.version,
        format,
        tasks: r.tasks,
        registered_at: r.registered_at,
    })
}

/// Returns the view of a stored case row.
pub(crate) fn case_view(r: CaseRecord) -> Result<CaseView, Error> {
    let marking = serde_json::from_value(r.marking).map_err(|e| Error::CorruptRow {
        row: "case",
        id: r.id.to_string(),
        source: RowError::Marking(e),
    })?;
    Ok(CaseView {
        id: r.id,
        workflow: r.workflow,
        status: r.status,
        data: r.data,
        marking,
        version: r.version,
        created_at: r.created_at,
        updated_at: r.updated_at,
    })
}

/// Returns the view of a stored work item row.
pub(crate) fn work_item_view(r: WorkItemRecord) -> Result<WorkItemView, Error> {
    let corrupt = |e: UnknownName| Error::CorruptRow {
        row: "work item",
        id: r.id.to_string(),
        source: e.into(),
    };
    let allocation = allocation_of(&r.allocation).map_err(corrupt)?;
    let status = r.state.parse().map_err(corrupt)?;
    Ok(WorkItemView {
        id: r.id,
        case: r.case_id,
        task: TaskRef {
            net_instance: r.net_instance,
            task: r.task.as_str().into(),
        },
        instance: r.instance,
        roles: r.roles,
        allocation,
        status,
        owner: r.owner,
        input: r.input,
        offered_at: r.offered_at,
    })
}

/// Returns the store's filter for a case query.
/// `after` is the cursor of a paged list: the creation time and id of the case it follows.
pub(crate) fn case_filter(q: &CaseQuery, after: Option<(Timestamp, CaseId)>) -> CaseFilter {
    CaseFilter {
        status: q.status.clone(),
        workflow: q.workflow,
        limit: q.limit,
        after,
    }
}

/// Returns the store's filter for a work item query.
/// `after` is the cursor of a paged list: the offer time and id of the item it follows.
pub(crate) fn work_item_filter(
    q: &WorkItemQuery,
    after: Option<(Timestamp, WorkItemId)>,
) -> WorkItemFilter {
    WorkItemFilter {
        role: q.role.clone(),
        case: q.case,
        owner: q.owner.clone(),
        state: q.status.map(|s| s.as_str().to_owned()),
        limit: q.limit,
        after,
    }
}
