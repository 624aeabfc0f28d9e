//! Where a case stands after a command moved it: its state, its data, what it waits for and
//! the commands that move it on; or all of it, with the history, as one JSON document.

use std::collections::{BTreeMap, HashMap};
use std::process::ExitCode;

use knhk_core::model::{Specification, TaskBinding};
use knhk_core::{CaseId, CaseStatus, Event, EventKind, TaskRef, Timestamp};
use knhk_workflow_engine::{WorkItemQuery, WorkItemView};

use crate::report::{self, rfc3339, task_label};
use crate::session::Session;

/// Something outside the engine the case waits for.
#[derive(Debug)]
enum Wait {
    WorkItem(WorkItemView),
    Trigger { task: TaskRef, event: String },
    Timer { task: TaskRef, fires_at: Timestamp },
}

/// Prints where `case` stands (text or one JSON document) and returns the exit code of a
/// command that ran it: success when it completed or waits, failure when it failed or was
/// cancelled.
pub(crate) async fn print(session: &Session, case: CaseId, json: bool) -> anyhow::Result<ExitCode> {
    let engine = &session.engine;
    let record = engine.case(case).await?;
    let workflow = engine.workflow(record.workflow).await.ok();
    let history = engine.history(case).await?;
    let items = engine
        .work_items(&WorkItemQuery {
            case: Some(case),
            ..WorkItemQuery::default()
        })
        .await?;
    if json {
        let doc = report::case_json(&record, workflow.as_ref(), &history, &items);
        println!("{}", serde_json::to_string_pretty(&doc)?);
    } else {
        let definition = session.definition(record.workflow).await;
        let spec = definition.as_deref().map(|d| d.specification());
        let name = workflow
            .as_ref()
            .map(|w| format!(" ({} v{})", w.name, w.version))
            .unwrap_or_default();
        println!();
        println!("case {case}{name}: {}", record.status);
        println!("data: {}", serde_json::to_string(&record.data)?);
        print_waits(session, case, record.status, &waits(spec, &history, items));
    }
    Ok(exit_code(record.status))
}

/// Returns success unless the case failed or was cancelled.
pub(crate) fn exit_code(status: CaseStatus) -> ExitCode {
    match status {
        CaseStatus::Failed | CaseStatus::Cancelled => ExitCode::FAILURE,
        _ => ExitCode::SUCCESS,
    }
}

fn print_waits(session: &Session, case: CaseId, status: CaseStatus, waits: &[Wait]) {
    let knhk = session.command();
    match status {
        CaseStatus::Created => {
            println!("the case has not started; start it with:");
            println!("  {knhk} case execute {case}");
            return;
        }
        CaseStatus::Suspended => {
            println!("the case is suspended; go on with:");
            println!("  {knhk} case resume {case}");
            return;
        }
        CaseStatus::Running => {}
        CaseStatus::Completed | CaseStatus::Cancelled | CaseStatus::Failed => return,
    }
    if waits.is_empty() {
        println!("the case runs but waits for nothing this process can see");
        return;
    }
    println!("the case waits for:");
    let mut hints = Vec::new();
    for wait in waits {
        match wait {
            Wait::WorkItem(w) => {
                let who = match &w.owner {
                    Some(owner) => format!("{} by {owner}", w.status),
                    None => format!("offered to role {}", w.roles.join(", ")),
                };
                println!(
                    "  work item {} of task {}, {who}",
                    w.id,
                    task_label(&w.task)
                );
                if let Some(role) = w.roles.first() {
                    hints.push(format!("{knhk} workitem list --role {role}"));
                }
                if w.owner.is_none() && w.roles.iter().any(|r| r == session.engine.admin_role()) {
                    hints.push(format!(
                        "{knhk} workitem offer {} --role ROLE --user ADMIN   # or allocate {} --to USER",
                        w.id, w.id
                    ));
                }
                let user = w.owner.as_deref().unwrap_or("USER");
                hints.push(format!(
                    "{knhk} workitem complete {} --user {user} --output '{{}}'",
                    w.id
                ));
            }
            Wait::Trigger { task, event } => {
                println!("  the event {event:?} for task {}", task_label(task));
                hints.push(format!("{knhk} case trigger {case} {event} --data '{{}}'"));
            }
            Wait::Timer { task, fires_at } => {
                println!(
                    "  a timer of task {} due at {}",
                    task_label(task),
                    rfc3339(*fires_at)
                );
            }
        }
    }
    hints.dedup();
    if !hints.is_empty() {
        println!("continue with:");
        for hint in hints {
            println!("  {hint}");
        }
    }
}

/// Returns what a running case waits for: its live work items, the trigger tasks that are
/// enabled and its armed timers.
fn waits(spec: Option<&Specification>, history: &[Event], items: Vec<WorkItemView>) -> Vec<Wait> {
    let triggers: HashMap<&str, &str> = spec
        .into_iter()
        .flat_map(|s| &s.nets)
        .flat_map(|n| &n.tasks)
        .filter_map(|t| match &t.binding {
            TaskBinding::Trigger { event } => Some((t.id.as_str(), event.as_str())),
            _ => None,
        })
        .collect();
    let mut enabled: Vec<TaskRef> = Vec::new();
    let mut timers = BTreeMap::new();
    for e in history {
        match &e.kind {
            EventKind::TaskEnabled { task } => enabled.push(task.clone()),
            EventKind::TaskStarted { task, .. }
            | EventKind::TaskWithdrawn { task }
            | EventKind::TaskCancelled { task }
            | EventKind::TaskFailed { task, .. } => enabled.retain(|t| t != task),
            EventKind::TimerArmed {
                timer,
                task,
                fires_at,
            } => {
                timers.insert(*timer, (task.clone(), *fires_at));
            }
            EventKind::TimerFired { timer } | EventKind::TimerCancelled { timer } => {
                timers.remove(timer);
            }
            _ => {}
        }
    }
    let mut out: Vec<Wait> = items.into_iter().map(Wait::WorkItem).collect();
    out.extend(enabled.into_iter().filter_map(|task| {
        let event = triggers.get(task.task.as_str())?;
        Some(Wait::Trigger {
            event: (*event).to_owned(),
            task,
        })
    }));
    out.extend(
        timers
            .into_values()
            .map(|(task, fires_at)| Wait::Timer { task, fires_at }),
    );
    out
}
