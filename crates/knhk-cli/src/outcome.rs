//! Where a case stands after a command moved it: its state, its data, what it waits for and
//! the commands that move it on; or all of it, with the history, as one JSON document.

use std::process::ExitCode;

use knhk_core::{CaseId, CaseStatus, Wait, WorkItemState};
use knhk_workflow_engine::{CaseView, WorkItemQuery};

use crate::backend::Backend;

use crate::progress::PAGE;

use crate::report::{self, task_label};
use crate::session::Session;

/// Prints where `case` stands (text or one JSON document) and returns the exit code of a
/// command that ran it: success when it completed or waits, failure when it failed or was
/// cancelled.
pub(crate) async fn print(session: &Session, case: CaseId, json: bool) -> anyhow::Result<ExitCode> {
    let engine = &session.engine;
    let record = engine.case(case).await?;
    let workflow = engine.workflow(record.workflow).await.ok();
    if json {
        let items = engine
            .work_items(&WorkItemQuery {
                case: Some(case),
                ..WorkItemQuery::default()
            })
            .await?;
        let waits = engine.waits(case).await?;
        let doc = report::case_json(&record, workflow.as_ref(), &items, &waits);
        print_streaming_history(engine, &record, &serde_json::to_string_pretty(&doc)?).await?;
    } else {
        let name = workflow
            .as_ref()
            .map(|w| format!(" ({} v{})", w.name, w.version))
            .unwrap_or_default();
        outln!();
        outln!("case {case}{name}: {}", record.status);
        outln!("data: {}", serde_json::to_string(&record.data)?);
        print_waits(session, case, record.status, &engine.waits(case).await?);
    }
    Ok(exit_code(record.status))
}

/// Prints the pretty JSON document `doc` of a case, its empty `history` filled with the case's
/// history up to the row's version, read and printed a page at a time: the output is the
/// document `to_string_pretty` gives with the whole history in it, and memory stays that of
/// one page however long the history.
async fn print_streaming_history(
    engine: &Backend,
    record: &CaseView,
    doc: &str,
) -> anyhow::Result<()> {
    // The document's own key, at its first level of indentation (nested keys sit deeper).
    const EMPTY: &str = "\n  \"history\": []";
    let Some(at) = doc.find(EMPTY) else {
        anyhow::bail!("the case document has no history field");
    };
    let (head, tail) = doc.split_at(at + EMPTY.len() - 1);
    out!("{head}");
    let mut json = report::HistoryJson::default();
    let mut after = 0;
    let mut first = true;
    while after < record.version {
        let page = engine.history_page(record.id, after, PAGE).await?;
        let mut chunk = String::new();
        for e in page.iter().take_while(|e| e.seq <= record.version) {
            chunk.push_str(if first { "\n" } else { ",\n" });
            first = false;
            let text = serde_json::to_string_pretty(&json.event(e))?;
            for (i, line) in text.lines().enumerate() {
                if i > 0 {
                    chunk.push('\n');
                }
                chunk.push_str("    ");
                chunk.push_str(line);
            }
            after = e.seq;
        }
        out!("{chunk}");
        if page.len() < PAGE {
            break;
        }
    }
    if !first {
        out!("\n  ");
    }
    outln!("{tail}");
    Ok(())
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
            outln!("the case has not started; start it with:");
            outln!("  {knhk} case execute {case}");
            return;
        }
        CaseStatus::Suspended => {
            outln!("the case is suspended; go on with:");
            outln!("  {knhk} case resume {case}");
            return;
        }
        CaseStatus::Failed => return print_incidents(session, case, waits),
        CaseStatus::Running => {}
        CaseStatus::Completed | CaseStatus::Cancelled => return,
    }
    if waits.is_empty() {
        outln!("the case runs but waits for nothing this process can see");
        return;
    }
    outln!("the case waits for:");
    let mut hints = Vec::new();
    for wait in waits {
        match wait {
            Wait::WorkItem {
                item,
                task,
                state,
                roles,
                user,
                ..
            } => {
                let who = match (state, user) {
                    (WorkItemState::Allocated, Some(user)) => format!("allocated to {user}"),
                    (WorkItemState::Started, Some(user)) => format!("started by {user}"),
                    _ => format!("offered to role {}", roles.join(", ")),
                };
                outln!("  work item {item} of task {}, {who}", task_label(task));
                if user.is_none() && roles.iter().any(|r| r == session.engine.admin_role()) {
                    hints.push(format!(
                        "{knhk} workitem offer {item} --role ROLE --user ADMIN   # or allocate {item} --to USER"
                    ));
                }
                if let Some(role) = roles.first() {
                    hints.push(format!("{knhk} workitem list --role {role}"));
                }
                let user = user.as_deref().unwrap_or("USER");
                hints.push(format!(
                    "{knhk} workitem complete {item} --user {user} --output '{{}}'"
                ));
            }
            Wait::Call {
                task, connector, ..
            } => {
                outln!(
                    "  a call of connector {connector:?} for task {} (still in flight; \
                     `{knhk} worker` makes it again if this process was cut off)",
                    task_label(task)
                );
            }
            Wait::Trigger { task, event } => {
                outln!("  the event {event:?} for task {}", task_label(task));
                hints.push(format!("{knhk} case trigger {case} {event} --data '{{}}'"));
            }
            Wait::Timer { task, fires_at, .. } => {
                outln!(
                    "  a timer of task {} due at {}",
                    task_label(task),
                    session.zone().show(*fires_at)
                );
                hints.push(format!(
                    "{knhk} worker   # fires timers as they fall due (`knhk run --wait SECONDS` waits for near ones)"
                ));
            }
            Wait::Start | Wait::Resume | Wait::Retry { .. } => {}
        }
    }
    hints.dedup();
    if !hints.is_empty() {
        outln!("continue with:");
        for hint in hints {
            outln!("  {hint}");
        }
    }
}

/// Prints the incidents of a failed case (the tasks that failed it, each waiting for a
/// retry) and the commands that retry them or give up; nothing for a case that failed with
/// nothing to retry (a deadlock, the firing bound).
fn print_incidents(session: &Session, case: CaseId, waits: &[Wait]) {
    let knhk = session.command();
    let mut failed = Vec::new();
    for wait in waits {
        match wait {
            Wait::Retry {
                task,
                reason,
                attempt,
                since,
            } => {
                outln!(
                    "incident: task {} failed at {} (attempt {attempt}): {reason}",
                    task_label(task),
                    session.zone().show(*since)
                );
                failed.push(task_label(task));
            }
            Wait::Call {
                task, connector, ..
            } => outln!(
                "  a call of connector {connector:?} for task {} is still in flight; its result is taken",
                task_label(task)
            ),
            _ => {}
        }
    }
    match failed.as_slice() {
        [] => {}
        [_] => {
            outln!("the case waits for an operator; retry the task, or give up, with:");
            outln!("  {knhk} case retry {case}");
            outln!("  {knhk} case cancel {case}");
        }
        tasks => {
            outln!("the case waits for an operator; retry each task, or give up, with:");
            for task in tasks {
                outln!("  {knhk} case retry {case} --task {task}");
            }
            outln!("  {knhk} case cancel {case}");
        }
    }
}
