//! How cases, histories and work items look on a terminal and in `--json` documents.

use std::collections::HashMap;
use std::fmt::Write as _;

use knhk_core::model::{ControlType, Specification, TaskBinding};
use knhk_core::{Event, EventKind, TaskRef, Timestamp, WorkItemId};
use knhk_workflow_engine::{CaseView, WorkItemView, WorkflowView, allocation_name};
use serde_json::{Map, Value, json};

/// Renders history events as rows of a table with fixed columns, so that rows can be printed
/// one by one as the events are committed. Events about a work item name the item only; the
/// printer remembers which task each item belongs to.
#[derive(Debug)]
pub(crate) struct HistoryTable {
    task_width: usize,
    item_tasks: HashMap<WorkItemId, TaskRef>,
}

const SEQ_WIDTH: usize = 4;
const TIME_WIDTH: usize = 12;
/// The longest event kind, `connector_call_succeeded`.
const KIND_WIDTH: usize = 24;

impl HistoryTable {
    /// Creates a table whose task column fits every task of `spec`.
    pub(crate) fn new(spec: Option<&Specification>) -> HistoryTable {
        let task_width = spec
            .into_iter()
            .flat_map(|s| &s.nets)
            .flat_map(|n| &n.tasks)
            .map(|t| t.id.as_str().chars().count())
            .max()
            .unwrap_or(0)
            .max(4);
        HistoryTable {
            task_width,
            item_tasks: HashMap::new(),
        }
    }

    /// Returns the header line.
    pub(crate) fn header(&self) -> String {
        self.line("seq", "time", "kind", "task", "detail")
    }

    /// Learns from `event` without rendering it (for events printed before).
    pub(crate) fn learn(&mut self, event: &Event) {
        if let EventKind::WorkItemOffered { item, task, .. }
        | EventKind::ConnectorCallStarted { item, task, .. } = &event.kind
        {
            self.item_tasks.insert(*item, task.clone());
        }
    }

    /// Returns the row of `event`.
    pub(crate) fn row(&mut self, event: &Event) -> String {
        self.learn(event);
        let task = self
            .task_of(&event.kind)
            .map(task_label)
            .unwrap_or_default();
        self.line(
            &event.seq.to_string(),
            &clock_time(event.time),
            event.kind.name(),
            &task,
            &detail(&event.kind),
        )
    }

    /// Returns the task an event is about, directly or through its work item.
    pub(crate) fn task_of<'a>(&'a self, kind: &'a EventKind) -> Option<&'a TaskRef> {
        kind.task()
            .or_else(|| kind.work_item().and_then(|i| self.item_tasks.get(i)))
    }

    fn line(&self, seq: &str, time: &str, kind: &str, task: &str, detail: &str) -> String {
        let line = format!(
            "{seq:>SEQ_WIDTH$}  {time:<TIME_WIDTH$}  {kind:<KIND_WIDTH$}  {task:<tw$}  {detail}",
            tw = self.task_width
        );
        line.trim_end().to_owned()
    }
}

/// Returns the events of a history as JSON objects: `seq`, `time` (RFC 3339, UTC),
/// `time_ms` (milliseconds since the epoch), `kind`, `task` (or null), `detail` (the table's
/// text) and `event` (the event's own fields).
pub(crate) fn history_json(events: &[Event]) -> Vec<Value> {
    let mut table = HistoryTable::new(None);
    events
        .iter()
        .map(|e| {
            table.learn(e);
            let mut fields = match serde_json::to_value(&e.kind) {
                Ok(Value::Object(map)) => map,
                _ => Map::new(),
            };
            fields.remove("type");
            let task = table.task_of(&e.kind);
            json!({
                "seq": e.seq,
                "time": rfc3339(e.time),
                "time_ms": e.time.0,
                "kind": e.kind.name(),
                "task": task.map(|t| t.task.as_str()),
                "net_instance": task.map(|t| t.net_instance),
                "detail": detail(&e.kind),
                "event": fields,
            })
        })
        .collect()
}

/// Returns the one JSON document that describes a case: its state, data, history and live
/// work items.
pub(crate) fn case_json(
    case: &CaseView,
    workflow: Option<&WorkflowView>,
    history: &[Event],
    work_items: &[WorkItemView],
) -> Value {
    json!({
        "case_id": case.id.to_string(),
        "workflow_id": case.workflow.to_string(),
        "workflow_name": workflow.map(|w| w.name.as_str()),
        "workflow_version": workflow.map(|w| w.version),
        "state": case.status.as_str(),
        "data": case.data,
        "created_at": rfc3339(case.created_at),
        "updated_at": rfc3339(case.updated_at),
        "history": history_json(history),
        "work_items": work_items.iter().map(work_item_json).collect::<Vec<_>>(),
    })
}

/// Returns a work item as JSON, its times in RFC 3339.
pub(crate) fn work_item_json(w: &WorkItemView) -> Value {
    json!({
        "id": w.id.to_string(),
        "case_id": w.case.to_string(),
        "task": w.task.task.as_str(),
        "net_instance": w.task.net_instance,
        "instance": w.instance,
        "roles": w.roles,
        "allocation": allocation_name(w.allocation),
        "state": w.status.as_str(),
        "owner": w.owner,
        "input": w.input,
        "offered_at": rfc3339(w.offered_at),
    })
}

/// Renders rows of cells as a left-aligned table with a header, columns two spaces apart.
pub(crate) fn table(header: &[&str], rows: &[Vec<String>]) -> String {
    let mut widths: Vec<usize> = header.iter().map(|h| h.chars().count()).collect();
    for row in rows {
        for (w, cell) in widths.iter_mut().zip(row) {
            *w = (*w).max(cell.chars().count());
        }
    }
    let mut out = String::new();
    let header: Vec<String> = header.iter().map(|h| (*h).to_owned()).collect();
    for row in std::iter::once(&header).chain(rows) {
        let mut line = String::new();
        for (cell, w) in row.iter().zip(&widths) {
            let _ = write!(line, "{cell:<w$}  ");
        }
        let _ = writeln!(out, "{}", line.trim_end());
    }
    out
}

/// Returns the rows of `knhk workitem list` for these items.
pub(crate) fn work_item_rows(items: &[WorkItemView]) -> Vec<Vec<String>> {
    items
        .iter()
        .map(|w| {
            vec![
                w.id.to_string(),
                w.case.to_string(),
                task_label(&w.task),
                w.roles.join(","),
                w.status.to_string(),
                w.owner.clone().unwrap_or_else(|| "-".to_owned()),
                rfc3339(w.offered_at),
            ]
        })
        .collect()
}

/// The header matching [`work_item_rows`].
pub(crate) const WORK_ITEM_HEADER: [&str; 7] =
    ["id", "case", "task", "roles", "state", "owner", "offered"];

/// Describes what a task does, for `knhk workflow show`.
pub(crate) fn task_kind(binding: &TaskBinding) -> String {
    match binding {
        TaskBinding::Empty => "empty".to_owned(),
        TaskBinding::Human(h) => {
            let mut s = format!("human, role {}", h.roles.join(", "));
            let _ = write!(s, ", {}", allocation_text(h.allocation));
            if h.four_eyes {
                s.push_str(", four eyes");
            }
            s
        }
        TaskBinding::Connector(c) => format!("connector {}", c.connector),
        TaskBinding::Trigger { event } => format!("trigger {event:?}"),
    }
}

fn allocation_text(a: knhk_core::model::Allocation) -> &'static str {
    match a {
        knhk_core::model::Allocation::RoleOffer => "offered to the role",
        knhk_core::model::Allocation::RoundRobin => "round robin",
        knhk_core::model::Allocation::ShortestQueue => "shortest queue",
    }
}

/// Returns a join or split type as YAWL names it.
pub(crate) fn control_type(c: ControlType) -> &'static str {
    match c {
        ControlType::And => "and",
        ControlType::Xor => "xor",
        ControlType::Or => "or",
    }
}

/// Returns the detail column of an event: what the kind and task do not already say.
pub(crate) fn detail(kind: &EventKind) -> String {
    match kind {
        EventKind::CaseCreated { workflow, data } => {
            format!("workflow {workflow}, data {}", compact(data))
        }
        EventKind::CaseStateChanged { from, to, reason } => match reason {
            Some(reason) => format!("{from} -> {to}: {reason}"),
            None => format!("{from} -> {to}"),
        },
        EventKind::CaseDeadlocked { marked } => format!("tokens left in {}", join(marked)),
        EventKind::FiringLimitReached { firings, tasks } => format!(
            "{firings} tasks started in one step, looping through {}",
            join(tasks.iter().map(|t| t.task.as_str()))
        ),
        EventKind::NetStarted {
            net_instance, net, ..
        } => format!("net {net} as net instance {net_instance}"),
        EventKind::NetEnded { net_instance } => format!("net instance {net_instance}"),
        EventKind::TaskStarted { instances, .. } if instances.len() > 1 => {
            format!("{} instances", instances.len())
        }
        EventKind::TaskCompleted { task, produced } if !produced.is_empty() => {
            // A flow from task to task runs through an implicit condition `from__to`: name
            // the task it leads to.
            let prefix = format!("{}__", task.task);
            let to = produced
                .iter()
                .map(|c| c.as_str().strip_prefix(&prefix).unwrap_or(c.as_str()));
            format!("-> {}", join(to))
        }
        EventKind::InstanceAdded { item, .. } => format!("item {}", compact(item)),
        EventKind::InstanceCompleted { instance, .. } => format!("instance {instance}"),
        EventKind::TaskFailed { reason, .. } => reason.clone(),
        EventKind::TokensRemoved {
            condition, count, ..
        } => format!("{count} from {condition}"),
        EventKind::WorkItemOffered { item, .. } | EventKind::WorkItemCancelled { item } => {
            format!("work item {item}")
        }
        EventKind::WorkItemAllocated { item, user } | EventKind::WorkItemStarted { item, user } => {
            format!("work item {item} by {user}")
        }
        EventKind::WorkItemCompleted { item, user, output } => {
            format!("work item {item} by {user}, output {}", compact(output))
        }
        EventKind::ConnectorCallStarted { connector, .. } => format!("connector {connector}"),
        EventKind::ConnectorCallSucceeded { output, .. } => format!("output {}", compact(output)),
        EventKind::ConnectorCallFailed { error, .. } => error.clone(),
        EventKind::TimerArmed { fires_at, .. } => format!("fires at {}", rfc3339(*fires_at)),
        EventKind::DataUpdated { changes } => compact(changes),
        _ => String::new(),
    }
}

/// Returns JSON on one line, cut to a readable length.
fn compact(value: &impl serde::Serialize) -> String {
    const MAX: usize = 80;
    let text = serde_json::to_string(value).unwrap_or_default();
    if text.chars().count() <= MAX {
        text
    } else {
        let cut: String = text.chars().take(MAX - 3).collect();
        format!("{cut}...")
    }
}

/// Returns a task's id, with its net instance when it runs in a sub-net.
pub(crate) fn task_label(task: &TaskRef) -> String {
    if task.net_instance == 0 {
        task.task.to_string()
    } else {
        format!("{}#{}", task.task, task.net_instance)
    }
}

fn join<T: std::fmt::Display>(items: impl IntoIterator<Item = T>) -> String {
    items
        .into_iter()
        .map(|i| i.to_string())
        .collect::<Vec<_>>()
        .join(", ")
}

/// Returns the time of day in UTC with milliseconds, `14:03:07.250`.
pub(crate) fn clock_time(t: Timestamp) -> String {
    let full = rfc3339(t);
    // `YYYY-MM-DDT` is 11 characters, the trailing `Z` one.
    full.get(11..full.len() - 1).unwrap_or(&full).to_owned()
}

/// Returns a time as RFC 3339 in UTC with milliseconds, `2025-01-31T14:03:07.250Z`.
pub(crate) fn rfc3339(t: Timestamp) -> String {
    let millis = t.0.rem_euclid(1000);
    let secs = t.0.div_euclid(1000);
    let days = secs.div_euclid(86_400);
    let rem = secs.rem_euclid(86_400);
    let (y, m, d) = civil_from_days(days);
    format!(
        "{y:04}-{m:02}-{d:02}T{:02}:{:02}:{:02}.{millis:03}Z",
        rem / 3600,
        rem % 3600 / 60,
        rem % 60
    )
}

/// Converts days since 1970-01-01 to a proleptic Gregorian date (Howard Hinnant's
/// `civil_from_days`).
fn civil_from_days(days: i64) -> (i64, i64, i64) {
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z.rem_euclid(146_097);
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let d = doy - (153 * mp + 2) / 5 + 1;
    let m = if mp < 10 { mp + 3 } else { mp - 9 };
    let y = yoe + era * 400 + i64::from(m <= 2);
    (y, m, d)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn times_are_rfc3339_in_utc() {
        assert_eq!(rfc3339(Timestamp(0)), "1970-01-01T00:00:00.000Z");
        assert_eq!(
            rfc3339(Timestamp(1_709_210_096_789)),
            "2024-02-29T12:34:56.789Z"
        );
        assert_eq!(rfc3339(Timestamp(-1)), "1969-12-31T23:59:59.999Z");
        assert_eq!(clock_time(Timestamp(1_709_210_096_789)), "12:34:56.789");
    }
}
