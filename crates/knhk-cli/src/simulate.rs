//! Runs one case in memory, standing in for the people and the clock: human work items are
//! completed by a simulated user, timers fire when nothing else can move. Triggers and
//! connector calls need the outside world, so the simulation stops at them.

use std::collections::HashMap;
use std::fmt::Write as _;
use std::time::{SystemTime, UNIX_EPOCH};

use anyhow::Context;
use knhk_core::model::TaskBinding;
use knhk_core::{
    Case, CaseId, CaseStatus, Event, EventKind, IdSource, Input, SequentialIds, TaskRef, Timestamp,
    WorkItemId, WorkItemKind, Workflow,
};
use serde_json::{Map, Value};

/// The user who completes human work items.
const USER: &str = "simulator";

/// Inputs fed to one case before the simulation gives up (a loop that never exits).
const MAX_INPUTS: usize = 10_000;

/// Returns the current time; the simulation's clock starts there and jumps to each timer.
pub(crate) fn now() -> Timestamp {
    let millis = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| i64::try_from(d.as_millis()).unwrap_or(i64::MAX));
    Timestamp(millis)
}

/// A finished simulation: the case, its whole history and why the simulation stopped.
#[derive(Debug)]
pub(crate) struct Run {
    case: Case,
    events: Vec<Event>,
    start: Timestamp,
    completed_items: usize,
    fired_timers: usize,
    ending: Ending,
}

#[derive(Debug)]
enum Ending {
    /// The case reached a final state.
    Ended(CaseStatus),
    /// The case waits for the outside world.
    Waiting(Vec<Wait>),
    /// The case runs but nothing is enabled, busy on people or waiting on a timer.
    Stuck,
    /// The simulation fed `MAX_INPUTS` inputs and the case still runs.
    TooLong,
}

#[derive(Debug)]
enum Wait {
    Trigger { task: TaskRef, event: String },
    Connector { task: TaskRef, connector: String },
}

/// Creates a case of `workflow` holding `data` and runs it as far as it goes without the
/// outside world.
pub(crate) fn run(
    workflow: &Workflow,
    data: Map<String, Value>,
    start: Timestamp,
) -> anyhow::Result<Run> {
    let mut ids = SequentialIds::default();
    let mut now = start;
    let (mut case, created) = Case::create(workflow, CaseId(ids.next_id()), now, data);
    let mut events = created.events;
    let step = case
        .apply(workflow, now, Input::Start, &mut ids)
        .context("cannot start the case")?;
    events.extend(step.events);

    let bindings: HashMap<&str, &TaskBinding> = workflow
        .specification()
        .nets
        .iter()
        .flat_map(|n| &n.tasks)
        .map(|t| (t.id.as_str(), &t.binding))
        .collect();
    let mut completed_items = 0;
    let mut fired_timers = 0;
    let mut inputs = 0;
    let ending = loop {
        if case.status().is_final() {
            break Ending::Ended(case.status());
        }
        if inputs >= MAX_INPUTS {
            break Ending::TooLong;
        }
        inputs += 1;
        if let Some(item) = next_human_item(&case) {
            events.extend(complete(workflow, &mut case, now, item, &mut ids)?);
            completed_items += 1;
            continue;
        }
        let waits = waits(workflow, &case, &bindings);
        if !waits.is_empty() {
            break Ending::Waiting(waits);
        }
        if let Some((timer, fires_at)) = case.timers().min_by_key(|&(_, at)| at) {
            let timer = *timer;
            now = now.max(fires_at);
            let step = case
                .apply(workflow, now, Input::TimerFired { timer }, &mut ids)
                .with_context(|| format!("cannot fire timer {timer}"))?;
            events.extend(step.events);
            fired_timers += 1;
            continue;
        }
        break Ending::Stuck;
    };
    Ok(Run {
        case,
        events,
        start,
        completed_items,
        fired_timers,
        ending,
    })
}

/// Returns the oldest live human work item (ids count up, so the smallest is the oldest).
fn next_human_item(case: &Case) -> Option<WorkItemId> {
    case.work_items()
        .find(|(_, wi)| !wi.is_call())
        .map(|(id, _)| *id)
}

/// Completes a human work item with an empty output. A four-eyes task refuses a user who did
/// another four-eyes task of the case, so the next simulated user takes it then.
fn complete(
    workflow: &Workflow,
    case: &mut Case,
    now: Timestamp,
    item: WorkItemId,
    ids: &mut SequentialIds,
) -> anyhow::Result<Vec<Event>> {
    let mut n = 1;
    loop {
        let user = if n == 1 {
            USER.to_owned()
        } else {
            format!("{USER}-{n}")
        };
        let input = Input::CompleteWorkItem {
            item,
            user,
            output: Value::Object(Map::new()),
        };
        match case.apply(workflow, now, input, ids) {
            Ok(step) => return Ok(step.events),
            Err(knhk_core::Error::FourEyes { .. }) if n < 100 => n += 1,
            Err(e) => {
                return Err(e).with_context(|| format!("cannot complete work item {item}"));
            }
        }
    }
}

/// Returns what the case waits for from the outside world: events for enabled trigger tasks
/// and results of connector calls in flight.
fn waits(workflow: &Workflow, case: &Case, bindings: &HashMap<&str, &TaskBinding>) -> Vec<Wait> {
    let mut out = Vec::new();
    for task in case.enabled_tasks(workflow) {
        if let Some(TaskBinding::Trigger { event }) = bindings.get(task.task.as_str()) {
            out.push(Wait::Trigger {
                event: event.clone(),
                task,
            });
        }
    }
    for (_, wi) in case.work_items() {
        if let WorkItemKind::Call { connector, .. } = &wi.kind {
            out.push(Wait::Connector {
                task: wi.task.clone(),
                connector: connector.clone(),
            });
        }
    }
    out
}

impl Run {
    /// Returns whether the case completed or only waits for the outside world.
    pub(crate) fn succeeded(&self) -> bool {
        matches!(
            self.ending,
            Ending::Ended(CaseStatus::Completed) | Ending::Waiting(_)
        )
    }

    /// Renders the history as a table, then how the simulation ended and the case data.
    pub(crate) fn report(&self, workflow: &Workflow) -> String {
        let mut out = String::new();
        let _ = writeln!(out, "case {} of {}", self.case.id(), workflow.id());
        // Events about a work item name the item only; show the task it belongs to.
        let mut item_tasks: HashMap<WorkItemId, &TaskRef> = HashMap::new();
        let rows: Vec<[String; 4]> = self
            .events
            .iter()
            .map(|e| {
                if let EventKind::WorkItemOffered { item, task, .. }
                | EventKind::ConnectorCallStarted { item, task, .. } = &e.kind
                {
                    item_tasks.insert(*item, task);
                }
                let task = e
                    .kind
                    .task()
                    .or_else(|| e.kind.work_item().and_then(|i| item_tasks.get(i).copied()));
                [
                    e.seq.to_string(),
                    e.kind.name().to_owned(),
                    task.map(task_label).unwrap_or_default(),
                    self.detail(&e.kind),
                ]
            })
            .collect();
        let header = ["seq", "event", "task", "detail"].map(str::to_owned);
        let mut widths = header.clone().map(|h| h.len());
        for row in &rows {
            for (w, cell) in widths.iter_mut().zip(row) {
                *w = (*w).max(cell.chars().count());
            }
        }
        for row in std::iter::once(&header).chain(&rows) {
            let line = format!(
                "{:>w0$}  {:<w1$}  {:<w2$}  {}",
                row[0],
                row[1],
                row[2],
                row[3],
                w0 = widths[0],
                w1 = widths[1],
                w2 = widths[2],
            );
            let _ = writeln!(out, "{}", line.trim_end());
        }
        let _ = writeln!(out);
        let work = format!(
            "{} events; the simulator completed {} work {} and fired {} {}",
            self.events.len(),
            self.completed_items,
            if self.completed_items == 1 {
                "item"
            } else {
                "items"
            },
            self.fired_timers,
            if self.fired_timers == 1 {
                "timer"
            } else {
                "timers"
            },
        );
        match &self.ending {
            Ending::Ended(status) => {
                let _ = writeln!(out, "case {status}: {work}");
            }
            Ending::Waiting(waits) => {
                let _ = writeln!(out, "case waits for the outside world: {work}");
                for wait in waits {
                    let _ = match wait {
                        Wait::Trigger { task, event } => writeln!(
                            out,
                            "  task {} waits for the event {event:?} (a trigger)",
                            task_label(task)
                        ),
                        Wait::Connector { task, connector } => writeln!(
                            out,
                            "  task {} waits for the connector {connector:?}",
                            task_label(task)
                        ),
                    };
                }
            }
            Ending::Stuck => {
                let _ = writeln!(
                    out,
                    "case {} but nothing can move any more: {work}",
                    self.case.status()
                );
            }
            Ending::TooLong => {
                let _ = writeln!(
                    out,
                    "case still {} after {MAX_INPUTS} inputs (a loop that never exits?): {work}",
                    self.case.status()
                );
            }
        }
        let data = serde_json::to_string(self.case.data()).unwrap_or_default();
        let _ = writeln!(out, "data: {data}");
        out
    }

    fn detail(&self, kind: &EventKind) -> String {
        match kind {
            EventKind::CaseCreated { workflow, .. } => format!("workflow {workflow}"),
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
            EventKind::InstanceAdded { item, .. } => format!("item {item}"),
            EventKind::InstanceCompleted { instance, .. } => format!("instance {instance}"),
            EventKind::TaskFailed { reason, .. } => reason.clone(),
            EventKind::TokensRemoved {
                condition, count, ..
            } => format!("{count} from {condition}"),
            EventKind::WorkItemOffered { item, .. } | EventKind::WorkItemCancelled { item } => {
                format!("work item {}", short(item))
            }
            EventKind::WorkItemAllocated { item, user }
            | EventKind::WorkItemStarted { item, user }
            | EventKind::WorkItemCompleted { item, user, .. } => {
                format!("work item {} by {user}", short(item))
            }
            EventKind::ConnectorCallStarted {
                item, connector, ..
            } => format!("connector {connector}, work item {}", short(item)),
            EventKind::ConnectorCallSucceeded { item, .. } => format!("work item {}", short(item)),
            EventKind::ConnectorCallFailed { item, error } => {
                format!("work item {}: {error}", short(item))
            }
            EventKind::TimerArmed { fires_at, .. } => {
                format!("fires after {} ms", fires_at.0.saturating_sub(self.start.0))
            }
            EventKind::DataUpdated { changes } => join(changes.keys()),
            _ => String::new(),
        }
    }
}

fn task_label(task: &TaskRef) -> String {
    if task.net_instance == 0 {
        task.task.to_string()
    } else {
        format!("{} (net instance {})", task.task, task.net_instance)
    }
}

/// Returns a work item id as the simulation's counter: the ids count up from 1.
fn short(item: &WorkItemId) -> String {
    item.0.as_u128().to_string()
}

fn join<T: std::fmt::Display>(items: impl IntoIterator<Item = T>) -> String {
    items
        .into_iter()
        .map(|i| i.to_string())
        .collect::<Vec<_>>()
        .join(", ")
}
