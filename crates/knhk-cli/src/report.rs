//! How cases, histories and work items look on a terminal and in `--json` documents.

use std::collections::HashMap;
use std::fmt::Write as _;

use knhk_core::model::{ControlType, Specification, TaskBinding};
use knhk_core::{
    ElementId, Event, EventKind, FailedAttempt, TaskRef, TimerId, Timestamp, Wait, WorkItemId,
};
use knhk_workflow_engine::{CaseView, WorkItemView, WorkflowView, allocation_name};
use serde_json::{Map, Value, json};

/// How tables show points in time: with the date and the zone, in UTC (`--utc`) or in the
/// local time zone (`TZ`, else the system's) with its offset. JSON documents always carry
/// RFC 3339 in UTC.
#[derive(Clone, Debug, Default)]
pub(crate) enum Zone {
    /// `2024-02-29 12:34:56.789Z`.
    #[default]
    Utc,
    /// `2024-02-29 13:34:56.789+01:00`.
    Local(jiff::tz::TimeZone),
}

impl Zone {
    /// Returns the local time zone; UTC when the system does not say which it is.
    pub(crate) fn local() -> Zone {
        match jiff::tz::TimeZone::try_system() {
            Ok(tz) => Zone::Local(tz),
            Err(_) => Zone::Utc,
        }
    }

    /// Returns `t` with its date, to the millisecond, and the zone's offset.
    pub(crate) fn show(&self, t: Timestamp) -> String {
        let Zone::Local(tz) = self else {
            return utc_time(t);
        };
        match jiff::Timestamp::from_millisecond(t.0) {
            Ok(at) => at
                .to_zoned(tz.clone())
                .strftime("%Y-%m-%d %H:%M:%S%.3f%:z")
                .to_string(),
            // Outside jiff's range (years beyond ±9999): the UTC form still says it.
            Err(_) => utc_time(t),
        }
    }
}

/// How the history renderer shows times and ids. The store's commands show points in time
/// with their date and zone, and whole ids; `knhk simulate`, whose ids count up from 1 and
/// whose clock starts when the case is created, shows the time since then and ids as their
/// counter.
#[derive(Clone, Debug, Default)]
pub(crate) struct Style {
    /// Show times as the time elapsed since this one (`+0:00:01.500`).
    pub(crate) since: Option<Timestamp>,
    /// Show ids as the counter they were made from (`2`), for ids from `SequentialIds`.
    pub(crate) short_ids: bool,
    /// The zone of points in time, when `since` is not set.
    pub(crate) zone: Zone,
}

impl Style {
    /// Returns the time column of an event at `t`.
    fn time(&self, t: Timestamp) -> String {
        match self.since {
            Some(since) => elapsed(since, t),
            None => self.zone.show(t),
        }
    }

    /// Returns a point in time inside a detail (when a timer fires).
    fn at(&self, t: Timestamp) -> String {
        match self.since {
            Some(since) => elapsed(since, t),
            None => self.zone.show(t),
        }
    }

    fn item(&self, item: &WorkItemId) -> String {
        if self.short_ids {
            item.0.as_u128().to_string()
        } else {
            item.to_string()
        }
    }

    fn timer(&self, timer: &TimerId) -> String {
        if self.short_ids {
            timer.0.as_u128().to_string()
        } else {
            timer.to_string()
        }
    }
}

/// Renders history events as rows of a table with fixed columns, so that rows can be printed
/// one by one as the events are committed. Events about a work item or a timer name it only;
/// the printer remembers which task each belongs to.
#[derive(Debug)]
pub(crate) struct HistoryTable {
    task_width: usize,
    style: Style,
    item_tasks: HashMap<WorkItemId, TaskRef>,
    timer_tasks: HashMap<TimerId, TaskRef>,
}

const SEQ_WIDTH: usize = 4;
/// `2024-02-29 13:34:56.789+01:00`.
const TIME_WIDTH: usize = 29;
/// The longest event kind, `connector_call_succeeded`.
const KIND_WIDTH: usize = 24;

impl HistoryTable {
    /// Creates a table whose task column fits every task of `spec`, with times in `zone` and
    /// whole ids.
    pub(crate) fn new(spec: Option<&Specification>, zone: Zone) -> HistoryTable {
        HistoryTable::with_style(
            spec,
            Style {
                zone,
                ..Style::default()
            },
        )
    }

    /// Creates a table whose task column fits every task of `spec`, in `style`.
    pub(crate) fn with_style(spec: Option<&Specification>, style: Style) -> HistoryTable {
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
            style,
            item_tasks: HashMap::new(),
            timer_tasks: HashMap::new(),
        }
    }

    /// Returns the header line.
    pub(crate) fn header(&self) -> String {
        self.line("seq", "time", "kind", "task", "detail")
    }

    /// Learns from `event` without rendering it (for events printed before).
    pub(crate) fn learn(&mut self, event: &Event) {
        match &event.kind {
            EventKind::WorkItemOffered { item, task, .. }
            | EventKind::ConnectorCallStarted { item, task, .. } => {
                self.item_tasks.insert(*item, task.clone());
            }
            EventKind::TimerArmed { timer, task, .. } => {
                self.timer_tasks.insert(*timer, task.clone());
            }
            _ => {}
        }
    }

    /// Learns the task of a live work item or an armed timer (from what the case waits for),
    /// so that rows of later events can name it without the history before them.
    pub(crate) fn know(&mut self, wait: &Wait) {
        match wait {
            Wait::WorkItem { item, task, .. } | Wait::Call { item, task, .. } => {
                self.item_tasks.insert(*item, task.clone());
            }
            Wait::Timer { timer, task, .. } => {
                self.timer_tasks.insert(*timer, task.clone());
            }
            _ => {}
        }
    }

    /// Forgets a work item or a timer that `event` ends, once its row is rendered: no later
    /// event names it, so what the table remembers stays the size of what is live, however
    /// long the history (a work item started again is learnt again).
    fn forget_ended(&mut self, event: &Event) {
        match &event.kind {
            EventKind::WorkItemCompleted { item, .. }
            | EventKind::WorkItemCancelled { item }
            | EventKind::ConnectorCallSucceeded { item, .. }
            | EventKind::ConnectorCallFailed { item, .. } => {
                self.item_tasks.remove(item);
            }
            EventKind::TimerFired { timer } | EventKind::TimerCancelled { timer } => {
                self.timer_tasks.remove(timer);
            }
            _ => {}
        }
    }

    /// Returns the row of `event`.
    pub(crate) fn row(&mut self, event: &Event) -> String {
        self.learn(event);
        let task = self
            .task_of(&event.kind)
            .map(task_label)
            .unwrap_or_default();
        let row = self.line(
            &event.seq.to_string(),
            &self.style.time(event.time),
            event.kind.name(),
            &task,
            &detail(&event.kind, &self.style),
        );
        self.forget_ended(event);
        row
    }

    /// Returns the task an event is about, directly or through its work item or timer.
    pub(crate) fn task_of<'a>(&'a self, kind: &'a EventKind) -> Option<&'a TaskRef> {
        kind.task().or_else(|| match kind {
            EventKind::TimerFired { timer } | EventKind::TimerCancelled { timer } => {
                self.timer_tasks.get(timer)
            }
            _ => kind.work_item().and_then(|i| self.item_tasks.get(i)),
        })
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
    let mut json = HistoryJson::default();
    events.iter().map(|e| json.event(e)).collect()
}

/// Writes JSON values to standard output, one a line (JSON lines), in one write; returns
/// `false` when standard output is closed (`knhk case list --jsonl | head`), so that the
/// caller stops reading more.
pub(crate) fn write_lines(values: &[Value]) -> bool {
    use std::io::Write as _;
    let mut text = String::new();
    for v in values {
        text.push_str(&v.to_string());
        text.push('\n');
    }
    let mut out = std::io::stdout().lock();
    out.write_all(text.as_bytes())
        .and_then(|()| out.flush())
        .is_ok()
}

/// Renders the events of one history as JSON objects, one at a time and in order (for a
/// history read page by page), remembering the tasks of live work items and timers.
#[derive(Debug)]
pub(crate) struct HistoryJson {
    table: HistoryTable,
}

impl Default for HistoryJson {
    fn default() -> Self {
        HistoryJson {
            table: HistoryTable::new(None, Zone::Utc),
        }
    }
}

impl HistoryJson {
    /// Returns the JSON object of the next event of the history.
    pub(crate) fn event(&mut self, e: &Event) -> Value {
        self.table.learn(e);
        let mut fields = match serde_json::to_value(&e.kind) {
            Ok(Value::Object(map)) => map,
            _ => Map::new(),
        };
        fields.remove("type");
        let task = self.table.task_of(&e.kind);
        let value = json!({
            "seq": e.seq,
            "time": rfc3339(e.time),
            "time_ms": e.time.0,
            "kind": e.kind.name(),
            "task": task.map(|t| t.task.as_str()),
            "net_instance": task.map(|t| t.net_instance),
            "detail": detail(&e.kind, &Style::default()),
            "event": fields,
        });
        self.table.forget_ended(e);
        value
    }
}

/// Returns the one JSON document that describes a case: its state, data, live work items,
/// open incidents (the tasks that failed it, from `waits`) and its history, left empty here:
/// the caller prints it in, a page at a time.
pub(crate) fn case_json(
    case: &CaseView,
    workflow: Option<&WorkflowView>,
    work_items: &[WorkItemView],
    waits: &[Wait],
) -> Value {
    let incidents: Vec<Value> = waits
        .iter()
        .filter_map(|w| match w {
            Wait::Retry {
                task,
                reason,
                attempt,
                since,
            } => Some(json!({
                "task": task.task.as_str(),
                "net_instance": task.net_instance,
                "reason": reason,
                "attempt": attempt,
                "failed_at": rfc3339(*since),
            })),
            _ => None,
        })
        .collect();
    json!({
        "incidents": incidents,
        "case_id": case.id.to_string(),
        "workflow_id": case.workflow.to_string(),
        "workflow_name": workflow.map(|w| w.name.as_str()),
        "workflow_uri": workflow.map(|w| w.uri.as_str()),
        "workflow_version": workflow.map(|w| w.version),
        "state": case.status.as_str(),
        "data": case.data,
        "created_at": rfc3339(case.created_at),
        "updated_at": rfc3339(case.updated_at),
        "history": [],
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
pub(crate) fn work_item_rows(items: &[WorkItemView], zone: &Zone) -> Vec<Vec<String>> {
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
                zone.show(w.offered_at),
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
        TaskBinding::Trigger { event, .. } => format!("trigger {event:?}"),
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

/// Returns the detail column of an event: what the kind and task do not already say. Every
/// kind is named (no catch-all arm), so that a new kind of event gets its detail decided.
pub(crate) fn detail(kind: &EventKind, style: &Style) -> String {
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
            join(tasks.iter().map(task_label))
        ),
        EventKind::NetStarted {
            net_instance,
            net,
            parent,
            instance,
        } => format!(
            "net {net} as net instance {net_instance}, for {} instance {instance}",
            task_label(parent)
        ),
        EventKind::NetEnded { net_instance } => format!("net instance {net_instance}"),
        // The task column says it all; a task that ends without starting (a timer's expiry,
        // a routed failure) starts with no instance.
        EventKind::TaskEnabled { .. }
        | EventKind::TaskWithdrawn { .. }
        | EventKind::TaskCancelled { .. } => String::new(),
        EventKind::TaskStarted { instances, .. } => match instances.len() {
            0 | 1 => String::new(),
            n => format!("{n} instances"),
        },
        EventKind::TaskCompleted { task, produced } => arrow(task, produced),
        EventKind::InstanceAdded { item, .. } => format!("item {}", compact(item)),
        EventKind::InstanceCompleted {
            instance, output, ..
        } => format!("instance {instance}, output {}", compact(output)),
        EventKind::TaskFailed {
            task,
            reason,
            produced,
        } => match arrow(task, produced) {
            to if to.is_empty() => reason.clone(),
            to => format!("{reason} {to}"),
        },
        EventKind::IncidentRaised { instances, .. } => match instances.len() {
            0 | 1 => "the case waits for a retry".to_owned(),
            n => format!("the case waits for a retry of its {n} instances"),
        },
        EventKind::TaskRetried { attempt, .. } => format!("attempt {attempt}"),
        EventKind::TokensRemoved {
            net_instance,
            condition,
            count,
        } => {
            if *net_instance == 0 {
                format!("{count} from {condition}")
            } else {
                format!("{count} from {condition}#{net_instance}")
            }
        }
        EventKind::WorkItemOffered { item, .. } | EventKind::WorkItemCancelled { item } => {
            format!("work item {}", style.item(item))
        }
        EventKind::WorkItemReoffered { item, roles } => {
            format!("work item {} to {}", style.item(item), join(roles))
        }
        EventKind::WorkItemAllocated { item, user }
        | EventKind::WorkItemStarted { item, user }
        | EventKind::WorkItemReleased { item, user } => {
            format!("work item {} by {user}", style.item(item))
        }
        EventKind::WorkItemDelegated { item, from, to } => {
            format!("work item {} from {from} to {to}", style.item(item))
        }
        EventKind::WorkItemCompleted { item, user, output } => format!(
            "work item {} by {user}, output {}",
            style.item(item),
            compact(output)
        ),
        EventKind::ConnectorCallStarted {
            item, connector, ..
        } => format!("connector {connector}, work item {}", style.item(item)),
        EventKind::ConnectorCallSucceeded {
            item,
            output,
            failed_attempts,
        } => format!(
            "work item {}, output {}{}",
            style.item(item),
            compact(output),
            retried(failed_attempts)
        ),
        EventKind::ConnectorCallFailed {
            item,
            error,
            failed_attempts,
        } => format!(
            "work item {}: {error}{}",
            style.item(item),
            retried(failed_attempts)
        ),
        EventKind::TimerArmed {
            timer, fires_at, ..
        } => format!(
            "timer {}, fires at {}",
            style.timer(timer),
            style.at(*fires_at)
        ),
        EventKind::TimerFired { timer } | EventKind::TimerCancelled { timer } => {
            format!("timer {}", style.timer(timer))
        }
        EventKind::DataUpdated { changes } => compact(changes),
        EventKind::TriggerKept { event, data } => {
            format!("event {event:?} kept, data {}", compact(data))
        }
        EventKind::TriggerConsumed { event, .. } => format!("kept event {event:?} consumed"),
    }
}

/// Returns where a task's tokens went, `-> next` (empty when nowhere). A flow from task to
/// task runs through an implicit condition `from__to`: name the task it leads to.
fn arrow(task: &TaskRef, produced: &[ElementId]) -> String {
    if produced.is_empty() {
        return String::new();
    }
    let prefix = format!("{}__", task.task);
    let to = produced
        .iter()
        .map(|c| c.as_str().strip_prefix(&prefix).unwrap_or(c.as_str()));
    format!("-> {}", join(to))
}

/// Returns what a case waits for as one line: `task paid waits for the event "paid" (a
/// trigger)`.
pub(crate) fn wait_text(wait: &Wait, style: &Style) -> String {
    match wait {
        Wait::Start => "the case waits to be started".to_owned(),
        Wait::Resume => "the case is suspended and waits to be resumed".to_owned(),
        Wait::WorkItem {
            item, task, roles, ..
        } => format!(
            "task {} waits for work item {} (role {})",
            task_label(task),
            style.item(item),
            join(roles)
        ),
        Wait::Call {
            task, connector, ..
        } => format!(
            "task {} waits for the connector {connector:?}",
            task_label(task)
        ),
        Wait::Timer {
            timer,
            task,
            fires_at,
        } => format!(
            "task {} waits for timer {}, due at {}",
            task_label(task),
            style.timer(timer),
            style.at(*fires_at)
        ),
        Wait::Trigger { task, event } => format!(
            "task {} waits for the event {event:?} (a trigger)",
            task_label(task)
        ),
        Wait::Retry {
            task,
            reason,
            attempt,
            ..
        } => format!(
            "task {} failed (attempt {attempt}: {reason}) and waits for a retry",
            task_label(task)
        ),
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

/// Returns the time from `since` to `t` as `+H:MM:SS.mmm` (never negative).
fn elapsed(since: Timestamp, t: Timestamp) -> String {
    let ms = t.0.saturating_sub(since.0).max(0);
    format!(
        "+{}:{:02}:{:02}.{:03}",
        ms / 3_600_000,
        ms / 60_000 % 60,
        ms / 1000 % 60,
        ms % 1000
    )
}

/// Returns a point in time in UTC with its date and milliseconds, `2024-02-29 12:34:56.789Z`.
fn utc_time(t: Timestamp) -> String {
    rfc3339(t).replacen('T', " ", 1)
}

/// Returns what a connector call's retried attempts were, after its result: `` (none), or
/// ` (after 2 failed attempts: 1 503 Service Unavailable; 2 timed out after 30s)`.
fn retried(failed: &[FailedAttempt]) -> String {
    if failed.is_empty() {
        return String::new();
    }
    let each: Vec<String> = failed
        .iter()
        .map(|a| format!("{} {}", a.attempt, a.error))
        .collect();
    let n = failed.len();
    let attempts = if n == 1 { "attempt" } else { "attempts" };
    format!(" (after {n} failed {attempts}: {})", each.join("; "))
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
    use knhk_core::{CaseStatus, IdSource, NetId, SequentialIds};

    use super::*;

    /// Whether an event of this kind says something the kind and the task column do not.
    /// The match names every kind, so that a new kind fails to compile here until it is added
    /// to the events below.
    fn carries_data(kind: &EventKind) -> bool {
        match kind {
            EventKind::TaskEnabled { .. }
            | EventKind::TaskWithdrawn { .. }
            | EventKind::TaskCancelled { .. } => false,
            EventKind::TaskStarted { instances, .. } => instances.len() > 1,
            EventKind::CaseCreated { .. }
            | EventKind::CaseStateChanged { .. }
            | EventKind::CaseDeadlocked { .. }
            | EventKind::FiringLimitReached { .. }
            | EventKind::NetStarted { .. }
            | EventKind::NetEnded { .. }
            | EventKind::InstanceAdded { .. }
            | EventKind::InstanceCompleted { .. }
            | EventKind::TaskCompleted { .. }
            | EventKind::TaskFailed { .. }
            | EventKind::IncidentRaised { .. }
            | EventKind::TaskRetried { .. }
            | EventKind::TokensRemoved { .. }
            | EventKind::WorkItemOffered { .. }
            | EventKind::WorkItemReoffered { .. }
            | EventKind::WorkItemAllocated { .. }
            | EventKind::WorkItemReleased { .. }
            | EventKind::WorkItemDelegated { .. }
            | EventKind::WorkItemStarted { .. }
            | EventKind::WorkItemCompleted { .. }
            | EventKind::WorkItemCancelled { .. }
            | EventKind::ConnectorCallStarted { .. }
            | EventKind::ConnectorCallSucceeded { .. }
            | EventKind::ConnectorCallFailed { .. }
            | EventKind::TimerArmed { .. }
            | EventKind::TimerFired { .. }
            | EventKind::TimerCancelled { .. }
            | EventKind::DataUpdated { .. }
            | EventKind::TriggerKept { .. }
            | EventKind::TriggerConsumed { .. } => true,
        }
    }

    /// One event of every kind, in the order of the enum.
    fn one_of_each() -> Vec<EventKind> {
        let mut ids = SequentialIds::default();
        let item = WorkItemId(ids.next_id());
        let timer = TimerId(ids.next_id());
        let task = |name: &str, net_instance| TaskRef {
            net_instance,
            task: ElementId::from(name),
        };
        let data: Map<String, Value> = [("amount".to_owned(), json!(1500))].into_iter().collect();
        vec![
            EventKind::CaseCreated {
                workflow: "order".to_owned(),
                data: data.clone(),
            },
            EventKind::CaseStateChanged {
                from: CaseStatus::Created,
                to: CaseStatus::Running,
                reason: None,
            },
            EventKind::CaseDeadlocked {
                marked: vec![ElementId::from("waiting")],
            },
            EventKind::FiringLimitReached {
                firings: 100_000,
                tasks: vec![task("a", 0), task("b", 2)],
            },
            EventKind::NetStarted {
                net_instance: 1,
                net: NetId::from("sub"),
                parent: task("composite", 0),
                instance: 0,
            },
            EventKind::NetEnded { net_instance: 1 },
            EventKind::TaskEnabled {
                task: task("review", 0),
            },
            EventKind::TaskWithdrawn {
                task: task("review", 0),
            },
            EventKind::TaskStarted {
                task: task("sign", 0),
                instances: vec![json!("ada"), json!("bob")],
            },
            EventKind::InstanceAdded {
                task: task("sign", 0),
                item: json!("eve"),
            },
            EventKind::InstanceCompleted {
                task: task("sign", 0),
                instance: 1,
                output: json!({"signed": true}),
            },
            EventKind::TaskCompleted {
                task: task("review", 0),
                produced: vec![ElementId::from("review__ship")],
            },
            EventKind::TaskCancelled {
                task: task("review", 0),
            },
            EventKind::TaskFailed {
                task: task("charge", 0),
                reason: "card declined".to_owned(),
                produced: vec![ElementId::from("charge__refund")],
            },
            EventKind::IncidentRaised {
                task: task("charge", 0),
                reason: "card declined".to_owned(),
                started: true,
                instances: Vec::new(),
            },
            EventKind::TaskRetried {
                task: task("charge", 0),
                attempt: 2,
            },
            EventKind::TokensRemoved {
                net_instance: 0,
                condition: ElementId::from("waiting"),
                count: 2,
            },
            EventKind::WorkItemOffered {
                item,
                task: task("review", 0),
                instance: 0,
                input: json!({}),
            },
            EventKind::WorkItemReoffered {
                item,
                roles: vec!["clerk".to_owned(), "manager".to_owned()],
            },
            EventKind::WorkItemAllocated {
                item,
                user: "uma".to_owned(),
            },
            EventKind::WorkItemStarted {
                item,
                user: "uma".to_owned(),
            },
            EventKind::WorkItemReleased {
                item,
                user: "uma".to_owned(),
            },
            EventKind::WorkItemDelegated {
                item,
                from: "uma".to_owned(),
                to: "ulf".to_owned(),
            },
            EventKind::WorkItemCompleted {
                item,
                user: "uma".to_owned(),
                output: json!({"ok": true}),
            },
            EventKind::WorkItemCancelled { item },
            EventKind::ConnectorCallStarted {
                item,
                task: task("charge", 0),
                instance: 0,
                connector: "http".to_owned(),
                idempotency_key: "k".to_owned(),
                input: json!({}),
            },
            EventKind::ConnectorCallSucceeded {
                item,
                output: json!({"id": 7}),
                failed_attempts: vec![
                    FailedAttempt {
                        attempt: 1,
                        error: "503 Service Unavailable".to_owned(),
                    },
                    FailedAttempt {
                        attempt: 2,
                        error: "timed out after 30s".to_owned(),
                    },
                ],
            },
            EventKind::ConnectorCallFailed {
                item,
                error: "timed out".to_owned(),
                failed_attempts: Vec::new(),
            },
            EventKind::TimerArmed {
                timer,
                task: task("remind", 0),
                fires_at: Timestamp(90_061_500),
            },
            EventKind::TimerFired { timer },
            EventKind::TimerCancelled { timer },
            EventKind::DataUpdated {
                changes: data.clone(),
            },
            EventKind::TriggerKept {
                event: "paid".into(),
                data: Value::Object(data),
            },
            EventKind::TriggerConsumed {
                event: "paid".into(),
                task: task("paid", 0),
            },
        ]
    }

    #[test]
    fn every_kind_of_event_has_a_detail_where_it_carries_data() {
        let kinds = one_of_each();
        let names: std::collections::HashSet<&str> = kinds.iter().map(EventKind::name).collect();
        assert_eq!(names.len(), kinds.len(), "a kind is listed twice");
        assert_eq!(kinds.len(), 34, "one event of every kind");
        let short = Style {
            since: Some(Timestamp(0)),
            short_ids: true,
            zone: Zone::Utc,
        };
        for style in [Style::default(), short.clone()] {
            for kind in &kinds {
                let text = detail(kind, &style);
                assert_eq!(
                    !text.is_empty(),
                    carries_data(kind),
                    "{}: {text:?}",
                    kind.name()
                );
            }
        }
        let details: Vec<String> = kinds.iter().map(|k| detail(k, &short)).collect();
        for expected in [
            "100000 tasks started in one step, looping through a, b#2",
            "net sub as net instance 1, for composite instance 0",
            "card declined -> refund",
            "the case waits for a retry",
            "attempt 2",
            "-> ship",
            "work item 1 to clerk, manager",
            "work item 1 by uma, output {\"ok\":true}",
            "connector http, work item 1",
            "work item 1: timed out",
            "work item 1, output {\"id\":7} (after 2 failed attempts: 1 503 Service Unavailable; \
             2 timed out after 30s)",
            "timer 2, fires at +25:01:01.500",
            "timer 2",
        ] {
            assert!(
                details.iter().any(|d| d == expected),
                "{expected:?} in {details:#?}"
            );
        }
    }

    #[test]
    fn the_table_names_the_task_of_a_timer_and_of_a_work_item() {
        let kinds = one_of_each();
        let mut table = HistoryTable::with_style(
            None,
            Style {
                since: Some(Timestamp(1_000)),
                short_ids: true,
                zone: Zone::Utc,
            },
        );
        let rows: Vec<String> = kinds
            .into_iter()
            .zip(1..)
            .map(|(kind, seq)| {
                table.row(&Event {
                    seq,
                    time: Timestamp(1_000 + 1_500),
                    kind,
                })
            })
            .collect();
        let cells = |name: &str| {
            rows.iter()
                .find(|r| r.split_whitespace().nth(2) == Some(name))
                .map(|r| r.split_whitespace().take(4).collect::<Vec<_>>().join(" "))
                .unwrap_or_default()
        };
        assert_eq!(cells("timer_fired"), "30 +0:00:01.500 timer_fired remind");
        assert_eq!(
            cells("work_item_reoffered"),
            "19 +0:00:01.500 work_item_reoffered review"
        );
    }

    #[test]
    fn times_are_rfc3339_in_utc() {
        assert_eq!(rfc3339(Timestamp(0)), "1970-01-01T00:00:00.000Z");
        assert_eq!(
            rfc3339(Timestamp(1_709_210_096_789)),
            "2024-02-29T12:34:56.789Z"
        );
        assert_eq!(rfc3339(Timestamp(-1)), "1969-12-31T23:59:59.999Z");
        assert_eq!(
            Zone::Utc.show(Timestamp(1_709_210_096_789)),
            "2024-02-29 12:34:56.789Z"
        );
    }

    #[test]
    fn local_times_carry_the_date_and_the_offset_of_their_zone() {
        let paris = jiff::tz::TimeZone::posix("CET-1CEST,M3.5.0,M10.5.0/3").expect("a POSIX zone");
        let zone = Zone::Local(paris);
        // Winter, then summer time.
        assert_eq!(
            zone.show(Timestamp(1_709_210_096_789)),
            "2024-02-29 13:34:56.789+01:00"
        );
        assert_eq!(
            zone.show(Timestamp(1_719_664_496_789)),
            "2024-06-29 14:34:56.789+02:00"
        );
    }
}
