//! `knhk case ...`: create, run, inspect and steer cases in the store.

use knhk_core::WorkflowId;
use std::process::ExitCode;
use std::time::Duration;

use anyhow::Context;
use clap::{Subcommand, ValueEnum};
use knhk_core::{CaseId, CaseStatus, TaskRef};
use knhk_workflow_engine::CaseQuery;
use serde_json::{Value, json};

use crate::outcome;
use crate::progress::{Progress, Sink};
use crate::report::{self, HistoryTable, rfc3339};
use crate::run::{drive, start_case};
use crate::session::{IdArg, Session, json_object};

#[derive(Debug, Subcommand)]
pub(crate) enum CaseCommand {
    /// Creates a case of a registered workflow; with --start, also runs it like `run`.
    Create {
        /// The workflow: its id (or a prefix), URI or name for the latest version, or
        /// NAME@VERSION / URI@VERSION (see `knhk workflow list`).
        workflow: String,
        /// The initial case data, a JSON object.
        #[arg(long, value_name = "JSON")]
        data: Option<String>,
        /// Starts the case and follows it until it waits or ends.
        #[arg(long)]
        start: bool,
        /// Prints the case as one JSON document.
        #[arg(long)]
        json: bool,
    },
    /// Starts a created case and follows it until it waits or ends.
    Execute {
        /// The case id.
        case: IdArg,
        /// Prints the case as one JSON document; progress goes to stderr.
        #[arg(long)]
        json: bool,
    },
    /// Shows a case: its state, data and what it waits for.
    Show {
        /// The case id.
        case: IdArg,
        /// Prints the case as one JSON document, with its history.
        #[arg(long)]
        json: bool,
    },
    /// Prints a case's history, every event in order.
    History {
        /// The case id.
        case: IdArg,
        /// Prints the case as one JSON document, with its history (with `--after` or
        /// `--limit`: `case_id`, the page as `history`, and `next_after`, null on the last page).
        #[arg(long)]
        json: bool,
        /// Shows only the events after this sequence number (a page; see `--limit`).
        #[arg(long, value_name = "SEQ")]
        after: Option<u64>,
        /// Shows at most this many events (a page, read without the rest of the history).
        #[arg(long, value_name = "N", value_parser = clap::value_parser!(u64).range(1..))]
        limit: Option<u64>,
        /// Prints JSON lines: one event a line (as in `history` of `--json`), read and
        /// printed page by page, so that a history of any length takes little memory.
        #[arg(long, conflicts_with = "json")]
        jsonl: bool,
    },
    /// Cancels a case (a running one, or one failed by a task: giving up on it): its work
    /// items are withdrawn.
    Cancel {
        /// The case id.
        case: IdArg,
        /// Why, recorded in the history.
        #[arg(
            long,
            value_name = "TEXT",
            default_value = "cancelled from the command line"
        )]
        reason: String,
        /// Prints the case as one JSON document; progress goes to stderr.
        #[arg(long)]
        json: bool,
    },
    /// Suspends a running case: nothing moves until it is resumed.
    Suspend {
        /// The case id.
        case: IdArg,
        /// Prints the case as one JSON document; progress goes to stderr.
        #[arg(long)]
        json: bool,
    },
    /// Resumes a suspended case and follows it until it waits or ends.
    Resume {
        /// The case id.
        case: IdArg,
        /// Prints the case as one JSON document; progress goes to stderr.
        #[arg(long)]
        json: bool,
    },
    /// Takes a repaired case out of the quarantine: it is checked first (it must load and
    /// replay to its row; if not, the command is refused naming why, and nothing changes),
    /// then it runs again from where its history stands.
    Release {
        /// The case id.
        case: IdArg,
        /// Prints the case as one JSON document.
        #[arg(long)]
        json: bool,
    },
    /// Retries a task that failed its case (an incident): a connector task calls again with
    /// a new idempotency key, a human task offers a new work item; the case runs again once
    /// no incident is left open.
    Retry {
        /// The case id.
        case: IdArg,
        /// The failed task to run again: its id, or `ID#N` for the task in sub-net instance
        /// N; needed only when several tasks failed (`case show` lists them).
        #[arg(long, value_name = "TASK")]
        task: Option<TaskArg>,
        /// Prints the case as one JSON document; progress goes to stderr.
        #[arg(long)]
        json: bool,
    },
    /// Lists cases, oldest first.
    List {
        /// Only cases in this state; `broken`: the quarantined cases, set aside because their
        /// stored data does not load, with why.
        #[arg(long, value_enum)]
        status: Option<Status>,
        /// Prints a JSON array.
        #[arg(long)]
        json: bool,
        /// Lists at most this many cases (a page); the table ends with the command for the
        /// next one.
        #[arg(long, value_name = "N", value_parser = clap::value_parser!(u64).range(1..))]
        limit: Option<u64>,
        /// Lists only the cases after this one, in the list's order (oldest first): the next
        /// page after a page that ended with it.
        #[arg(long, value_name = "CASE")]
        after: Option<IdArg>,
        /// Prints JSON lines: one case a line (the objects of `--json`), read and printed page
        /// by page, so that a list of any length takes little memory.
        #[arg(long, conflicts_with = "json")]
        jsonl: bool,
    },
    /// Adds an instance to a running multiple-instance task created dynamically (WCP-15).
    AddInstance {
        /// The case id.
        case: IdArg,
        /// The task: its id, or `ID#N` for the task in sub-net instance N (as `case show`
        /// names it).
        task: TaskArg,
        /// The new instance's item (any JSON value; its instance sees it in the task's item
        /// variable).
        #[arg(long, value_name = "JSON", default_value = "null")]
        item: String,
        /// Prints the case as one JSON document; progress goes to stderr.
        #[arg(long)]
        json: bool,
    },
    /// Completes a running task now, withdrawing its unfinished instances (WCP-27).
    CompleteTask {
        /// The case id.
        case: IdArg,
        /// The task: its id, or `ID#N` for the task in sub-net instance N.
        task: TaskArg,
        /// Prints the case as one JSON document; progress goes to stderr.
        #[arg(long)]
        json: bool,
    },
    /// Sets top-level keys of a case's data (the case may route differently from then on).
    SetData {
        /// The case id.
        case: IdArg,
        /// The keys to set, a JSON object.
        #[arg(long, value_name = "JSON")]
        data: String,
        /// Prints the case as one JSON document; progress goes to stderr.
        #[arg(long)]
        json: bool,
    },
    /// Delivers an outside event to a case's waiting trigger tasks.
    Trigger {
        /// The case id.
        case: IdArg,
        /// The event's name, as the task's `knhk:trigger` says.
        event: String,
        /// The event's data, a JSON object.
        #[arg(long, value_name = "JSON")]
        data: Option<String>,
        /// Prints the case as one JSON document; progress goes to stderr.
        #[arg(long)]
        json: bool,
    },
}

/// A task of a case as the command line names it: `ID`, or `ID#N` in sub-net instance N.
#[derive(Clone, Debug)]
pub(crate) struct TaskArg(TaskRef);

impl std::str::FromStr for TaskArg {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        let (id, net_instance) = match s.rsplit_once('#') {
            Some((id, n)) => (
                id,
                n.parse()
                    .map_err(|_| format!("{n:?} after '#' is not a net instance number"))?,
            ),
            None => (s, 0),
        };
        if id.is_empty() {
            return Err("the task id is empty".to_owned());
        }
        Ok(TaskArg(TaskRef {
            net_instance,
            task: id.into(),
        }))
    }
}

/// A case state, as `--status` takes it.
#[derive(Clone, Copy, Debug, ValueEnum)]
pub(crate) enum Status {
    Created,
    Running,
    Suspended,
    Completed,
    Cancelled,
    Failed,
    /// Quarantined: the case's stored data does not load.
    Broken,
}

impl Status {
    /// Returns the case status this names; `None` for `broken`, which is no state of a case
    /// but the quarantine.
    fn case_status(self) -> Option<CaseStatus> {
        match self {
            Status::Created => Some(CaseStatus::Created),
            Status::Running => Some(CaseStatus::Running),
            Status::Suspended => Some(CaseStatus::Suspended),
            Status::Completed => Some(CaseStatus::Completed),
            Status::Cancelled => Some(CaseStatus::Cancelled),
            Status::Failed => Some(CaseStatus::Failed),
            Status::Broken => None,
        }
    }
}

pub(crate) async fn run(session: &Session, command: CaseCommand) -> anyhow::Result<ExitCode> {
    let engine = &session.engine;
    match command {
        CaseCommand::Create {
            workflow,
            data,
            start,
            json,
        } => {
            let data = json_object("--data", data.as_deref())?;
            let workflow = session.workflow(&workflow).await?;
            if start {
                return start_case(session, &workflow, data, json, Duration::ZERO).await;
            }
            let case = engine
                .create_case(workflow.id, Value::Object(data), false)
                .await
                .with_context(|| format!("cannot create a case of workflow {}", workflow.id))?;
            if !json {
                outln!("created case {}", case.id);
            }
            outcome::print(session, case.id, json).await
        }
        CaseCommand::Execute { case, json } => {
            let case = session.case_id(&case).await?;
            let step = async {
                engine
                    .execute(case)
                    .await
                    .with_context(|| format!("cannot execute case {case}"))
            };
            drive(session, case, json, true, step).await
        }
        CaseCommand::Show { case, json } => {
            let case = session.case_id(&case).await?;
            outcome::print(session, case, json).await
        }
        CaseCommand::History {
            case,
            json,
            after,
            limit,
            jsonl,
        } => {
            let case = session.case_id(&case).await?;
            if jsonl {
                return history_lines(session, case, after.unwrap_or(0), limit).await;
            }
            if after.is_some() || limit.is_some() {
                return history_page(session, case, after.unwrap_or(0), limit, json).await;
            }
            if json {
                return outcome::print(session, case, true).await;
            }
            let record = engine.case(case).await?;
            let definition = session.definition(record.workflow).await;
            Progress::new(
                definition.as_deref().map(|d| d.specification()),
                Sink::Stdout,
                session.zone(),
            )
            .catch_up(engine, case)
            .await?;
            outln!();
            outln!("case {case}: {}", record.status);
            Ok(ExitCode::SUCCESS)
        }
        CaseCommand::Cancel { case, reason, json } => {
            let case = session.case_id(&case).await?;
            let step = async {
                engine
                    .cancel(case, &reason)
                    .await
                    .with_context(|| format!("cannot cancel case {case}"))
            };
            // The command did what it was asked: a cancelled case is its success.
            drive(session, case, json, false, step).await?;
            Ok(ExitCode::SUCCESS)
        }
        CaseCommand::Suspend { case, json } => {
            let case = session.case_id(&case).await?;
            let step = async {
                engine
                    .suspend(case)
                    .await
                    .with_context(|| format!("cannot suspend case {case}"))
            };
            drive(session, case, json, false, step).await
        }
        CaseCommand::Resume { case, json } => {
            let case = session.case_id(&case).await?;
            let step = async {
                engine
                    .resume(case)
                    .await
                    .with_context(|| format!("cannot resume case {case}"))
            };
            drive(session, case, json, false, step).await
        }
        CaseCommand::Release { case, json } => {
            let case = session.case_id(&case).await?;
            engine
                .release_case(case)
                .await
                .with_context(|| format!("cannot release case {case}"))?;
            let sink = if json { Sink::Stderr } else { Sink::Stdout };
            crate::run::say(sink, &format!("case {case} released from quarantine"));
            outcome::print(session, case, json).await
        }
        CaseCommand::Retry { case, task, json } => {
            let case = session.case_id(&case).await?;
            let step = async {
                engine
                    .retry_case(case, task.map(|t| t.0))
                    .await
                    .with_context(|| format!("cannot retry case {case}"))
            };
            drive(session, case, json, false, step).await
        }
        CaseCommand::AddInstance {
            case,
            task,
            item,
            json,
        } => {
            let case = session.case_id(&case).await?;
            let item = crate::input::option_text("--item", &item)?;
            let item = crate::input::parse_json("--item", &item)?;
            let label = report::task_label(&task.0);
            let step = async {
                engine
                    .add_instance(case, task.0, item)
                    .await
                    .with_context(|| {
                        format!("cannot add an instance to task {label} of case {case}")
                    })
            };
            drive(session, case, json, false, step).await
        }
        CaseCommand::CompleteTask { case, task, json } => {
            let case = session.case_id(&case).await?;
            let label = report::task_label(&task.0);
            let step = async {
                engine
                    .complete_task(case, task.0)
                    .await
                    .with_context(|| format!("cannot complete task {label} of case {case}"))
            };
            drive(session, case, json, false, step).await
        }
        CaseCommand::SetData { case, data, json } => {
            let case = session.case_id(&case).await?;
            let changes = json_object("--data", Some(&data))?;
            let step = async {
                engine
                    .update_data(case, changes)
                    .await
                    .with_context(|| format!("cannot set the data of case {case}"))
            };
            drive(session, case, json, false, step).await
        }
        CaseCommand::Trigger {
            case,
            event,
            data,
            json,
        } => {
            let case = session.case_id(&case).await?;
            let data = json_object("--data", data.as_deref())?;
            let step = async {
                engine
                    .trigger(case, &event, Value::Object(data))
                    .await
                    .with_context(|| format!("cannot deliver event {event:?} to case {case}"))
            };
            drive(session, case, json, false, step).await
        }
        CaseCommand::List {
            status,
            json,
            limit,
            after,
            jsonl,
        } => {
            let broken = engine.quarantined().await?;
            if matches!(status, Some(Status::Broken)) {
                return list_broken(&broken, json, jsonl);
            }
            let after = match &after {
                Some(arg) => Some(session.case_id(arg).await?),
                None => None,
            };
            if jsonl {
                let listed_broken = if status.is_none() { broken } else { Vec::new() };
                let status = status.and_then(Status::case_status).into_iter().collect();
                return case_lines(session, status, limit, after, &listed_broken).await;
            }
            let filter = CaseQuery {
                status: status.and_then(Status::case_status).into_iter().collect(),
                limit: limit.map(|n| usize::try_from(n).unwrap_or(usize::MAX)),
                after,
                ..CaseQuery::default()
            };
            let cases = engine.cases(&filter).await?;
            // A full page may have a next one: it starts after its last case.
            let next = cases.last().map(|c| c.id).filter(|_| {
                limit.is_some_and(|n| u64::try_from(cases.len()).is_ok_and(|l| l == n))
            });
            let workflows = engine.workflows().await?;
            let name_of = |id: WorkflowId| {
                workflows
                    .iter()
                    .find(|w| w.id == id)
                    .map(|w| format!("{} v{}", w.name, w.version))
                    .unwrap_or_else(|| id.to_string())
            };
            if json {
                let mut docs: Vec<Value> = cases
                    .iter()
                    .map(|c| case_list_json(c, &name_of(c.workflow)))
                    .collect();
                // Without a status, the quarantined cases end the list (state `broken`, with
                // why), as the table names them: on the page that ends it.
                if status.is_none() && next.is_none() {
                    docs.extend(broken.iter().map(broken_json));
                }
                outln!("{}", serde_json::to_string_pretty(&docs)?);
            } else if cases.is_empty() && (status.is_some() || broken.is_empty()) {
                outln!("no cases");
            } else {
                let zone = session.zone();
                let rows: Vec<Vec<String>> = cases
                    .iter()
                    .map(|c| {
                        vec![
                            c.id.to_string(),
                            name_of(c.workflow),
                            c.status.to_string(),
                            c.version.to_string(),
                            zone.show(c.created_at),
                            zone.show(c.updated_at),
                        ]
                    })
                    .collect();
                out!(
                    "{}",
                    report::table(
                        &["id", "workflow", "state", "events", "created", "updated"],
                        &rows
                    )
                );
                if status.is_none() && !broken.is_empty() {
                    outln!(
                        "{} quarantined cases are not listed (their stored data does not load): \
                         {} case list --status broken",
                        broken.len(),
                        session.command()
                    );
                }
                if let (Some(next), Some(n)) = (next, limit) {
                    let status = status
                        .and_then(Status::case_status)
                        .map(|s| format!(" --status {s}"))
                        .unwrap_or_default();
                    outln!(
                        "more with: {} case list{status} --after {next} --limit {n}",
                        session.command()
                    );
                }
            }
            Ok(ExitCode::SUCCESS)
        }
    }
}

/// Returns the JSON object of a case in a list (`--json`, `--jsonl`).
fn case_list_json(c: &knhk_workflow_engine::CaseView, workflow: &str) -> Value {
    json!({
        "case_id": c.id.to_string(),
        "workflow_id": c.workflow.to_string(),
        "workflow": workflow,
        "state": c.status.as_str(),
        "events": c.version,
        "created_at": rfc3339(c.created_at),
        "updated_at": rfc3339(c.updated_at),
    })
}

/// Prints the cases of a list as JSON lines, reading one page of the store at a time, at
/// most `limit` of them, after `after`.
async fn case_lines(
    session: &Session,
    status: Vec<CaseStatus>,
    limit: Option<u64>,
    mut after: Option<CaseId>,
    broken: &[knhk_workflow_engine::QuarantinedCase],
) -> anyhow::Result<ExitCode> {
    let engine = &session.engine;
    let workflows = engine.workflows().await?;
    let name_of = |id: WorkflowId| {
        workflows
            .iter()
            .find(|w| w.id == id)
            .map(|w| format!("{} v{}", w.name, w.version))
            .unwrap_or_else(|| id.to_string())
    };
    let mut left = limit.map_or(usize::MAX, |n| usize::try_from(n).unwrap_or(usize::MAX));
    while left > 0 {
        let page = left.min(session.page_size());
        let cases = engine
            .cases(&CaseQuery {
                status: status.clone(),
                limit: Some(page),
                after,
                ..CaseQuery::default()
            })
            .await?;
        let lines: Vec<Value> = cases
            .iter()
            .map(|c| case_list_json(c, &name_of(c.workflow)))
            .collect();
        if !report::write_lines(&lines) {
            return Ok(ExitCode::SUCCESS);
        }
        // The engine fills a page past the quarantined cases it leaves out: an empty page is
        // the end.
        let Some(last) = cases.last() else { break };
        after = Some(last.id);
        left = left.saturating_sub(cases.len());
    }
    // The quarantined cases (`broken`, with why) end the list, within the limit.
    if left > 0 && !broken.is_empty() {
        let lines: Vec<Value> = broken.iter().take(left).map(broken_json).collect();
        report::write_lines(&lines);
    }
    Ok(ExitCode::SUCCESS)
}

/// Prints a case's history as JSON lines, one event a line, one page of the store at a
/// time: at most `limit` events after `after`.
async fn history_lines(
    session: &Session,
    case: CaseId,
    mut after: u64,
    limit: Option<u64>,
) -> anyhow::Result<ExitCode> {
    let engine = &session.engine;
    let mut json = report::HistoryJson::default();
    let mut left = limit.map_or(usize::MAX, |n| usize::try_from(n).unwrap_or(usize::MAX));
    while left > 0 {
        let page = engine
            .history_page(case, after, left.min(session.page_size()))
            .await?;
        let lines: Vec<Value> = page.iter().map(|e| json.event(e)).collect();
        if !report::write_lines(&lines) {
            break;
        }
        let Some(last) = page.last() else { break };
        after = last.seq;
        left = left.saturating_sub(page.len());
    }
    Ok(ExitCode::SUCCESS)
}

/// Returns the JSON object of a quarantined case in a list.
fn broken_json(q: &knhk_workflow_engine::QuarantinedCase) -> Value {
    json!({
        "case_id": q.id.to_string(),
        "state": "broken",
        "reason": q.reason,
        "quarantined_at": rfc3339(q.at),
    })
}

/// Lists the quarantined cases with why they were set aside.
fn list_broken(
    broken: &[knhk_workflow_engine::QuarantinedCase],
    json: bool,
    jsonl: bool,
) -> anyhow::Result<ExitCode> {
    if jsonl {
        let lines: Vec<Value> = broken.iter().map(broken_json).collect();
        report::write_lines(&lines);
        return Ok(ExitCode::SUCCESS);
    }
    if json {
        let docs: Vec<Value> = broken.iter().map(broken_json).collect();
        outln!("{}", serde_json::to_string_pretty(&docs)?);
    } else if broken.is_empty() {
        outln!("no cases");
    } else {
        let rows: Vec<Vec<String>> = broken
            .iter()
            .map(|q| vec![q.id.to_string(), rfc3339(q.at), q.reason.clone()])
            .collect();
        out!("{}", report::table(&["id", "quarantined", "why"], &rows));
    }
    Ok(ExitCode::SUCCESS)
}

/// The events in a page of history when `--after` is given without `--limit`.
const DEFAULT_PAGE: u64 = 1000;

/// Prints one page of a case's history: at most `limit` events after `after`, as a table or
/// one JSON document, and how to ask for the next page.
async fn history_page(
    session: &Session,
    case: CaseId,
    after: u64,
    limit: Option<u64>,
    json: bool,
) -> anyhow::Result<ExitCode> {
    let engine = &session.engine;
    let limit = limit.unwrap_or(DEFAULT_PAGE);
    let page = engine
        .history_page(case, after, usize::try_from(limit).unwrap_or(usize::MAX))
        .await?;
    let full = u64::try_from(page.len()).is_ok_and(|n| n == limit);
    let next = page.last().map(|e| e.seq).filter(|_| full);
    if json {
        let doc = serde_json::json!({
            "case_id": case.to_string(),
            "history": report::history_json(&page),
            "next_after": next,
        });
        outln!("{}", serde_json::to_string_pretty(&doc)?);
        return Ok(ExitCode::SUCCESS);
    }
    let record = engine.case(case).await?;
    let definition = session.definition(record.workflow).await;
    let mut table = HistoryTable::new(
        definition.as_deref().map(|d| d.specification()),
        session.zone(),
    );
    if page.is_empty() {
        outln!("no events after {after}");
    } else {
        outln!("{}", table.header());
        for e in &page {
            outln!("{}", table.row(e));
        }
    }
    if let Some(next) = next {
        outln!();
        outln!(
            "more with: {} case history {case} --after {next} --limit {limit}",
            session.command()
        );
    }
    Ok(ExitCode::SUCCESS)
}
