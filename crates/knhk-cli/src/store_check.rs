//! `knhk store check`: whether the data directory's store still holds together, with every
//! problem named and an exit status scripts can test.

use std::process::ExitCode;

use clap::Subcommand;
use knhk_workflow_engine::{StoreReport, Subject};
use serde_json::json;

use crate::session::Session;

#[derive(Debug, Subcommand)]
pub(crate) enum StoreCommand {
    /// Checks the store: SQLite's integrity check (PostgreSQL has none: its histories are
    /// checked to be gapless and to end at their rows' versions, and no row of a work item,
    /// timer, event or snapshot to outlive its case), every case replayed from its history to
    /// its stored state and version (no gaps), work items and timers against their cases.
    ///
    /// Reads only. Exits with status 0 when nothing is wrong, 1 when anything is, each problem
    /// named.
    Check {
        /// Prints one JSON document: `store`, `ok`, `cases`, `work_items`, `timers` and
        /// `problems` (each with `subject`, `id` and `problem`).
        #[arg(long)]
        json: bool,
    },
}

pub(crate) async fn run(session: &Session, command: StoreCommand) -> anyhow::Result<ExitCode> {
    match command {
        StoreCommand::Check { json } => {
            let report = session.engine.local("store check")?.check_store().await?;
            let store = session.store_shown();
            if json {
                outln!(
                    "{}",
                    serde_json::to_string_pretty(&document(&store, &report))?
                );
            } else {
                outln!("store {store}");
                outln!(
                    "checked {} cases, {} work items, {} timers",
                    report.cases,
                    report.work_items,
                    report.timers
                );
                for p in &report.problems {
                    outln!("problem: {p}");
                }
                match report.problems.len() {
                    0 => outln!("ok: no problems found"),
                    1 => outln!("1 problem found"),
                    n => outln!("{n} problems found"),
                }
            }
            Ok(if report.is_clean() {
                ExitCode::SUCCESS
            } else {
                ExitCode::FAILURE
            })
        }
    }
}

fn document(store: &str, report: &StoreReport) -> serde_json::Value {
    let problems: Vec<_> = report
        .problems
        .iter()
        .map(|p| {
            let (subject, id) = match p.subject {
                Subject::Store => ("store", None),
                Subject::Case(id) => ("case", Some(id.to_string())),
                Subject::WorkItem(id) => ("work_item", Some(id.to_string())),
                Subject::Timer(id) => ("timer", Some(id.to_string())),
            };
            json!({"subject": subject, "id": id, "problem": p.problem})
        })
        .collect();
    json!({
        "store": store,
        "ok": report.is_clean(),
        "cases": report.cases,
        "work_items": report.work_items,
        "timers": report.timers,
        "problems": problems,
    })
}
