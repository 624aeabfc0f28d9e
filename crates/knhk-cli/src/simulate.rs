//! Runs one case in memory on knhk-core's driver, standing in for the people and the clock:
//! human work items are completed by a simulated user, timers fire when nothing else can
//! move. Triggers and connector calls need the outside world, so the simulation stops at them.

use std::fmt::Write as _;
use std::time::{SystemTime, UNIX_EPOCH};

use anyhow::Context;
use knhk_core::driver::{Driver, Quiescence, Simulated};
use knhk_core::{
    ApplyOptions, CaseId, CaseStatus, EventKind, IdSource, SequentialIds, Timestamp, Workflow,
};
use serde_json::{Map, Value};

use crate::report::{self, HistoryTable, Style, Zone};

/// Inputs fed to one case before the simulation gives up (a loop that never exits).
const MAX_INPUTS: usize = 10_000;

/// Returns the current time; the simulation's clock starts there and jumps to each timer.
pub(crate) fn now() -> Timestamp {
    let millis = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| i64::try_from(d.as_millis()).unwrap_or(i64::MAX));
    Timestamp(millis)
}

/// A finished simulation: the driven case with its whole history, and where it stopped.
#[derive(Debug)]
pub(crate) struct Run<'w> {
    driver: Driver<&'w Workflow>,
    start: Timestamp,
    ending: Quiescence,
}

/// Creates a case of `workflow` holding `data` at `start` and runs it as far as it goes
/// without the outside world.
pub(crate) fn run(
    workflow: &Workflow,
    data: Map<String, Value>,
    start: Timestamp,
    options: ApplyOptions,
) -> anyhow::Result<Run<'_>> {
    // The case's id is the first of the counter; the driver numbers work items and timers
    // from 1 on its own.
    let id = CaseId(SequentialIds::default().next_id());
    let mut driver = Driver::create(workflow, id, start, data);
    driver.set_options(options);
    let ending = driver
        .run(&mut Simulated::default(), MAX_INPUTS)
        .context("the simulation stopped")?;
    Ok(Run {
        driver,
        start,
        ending,
    })
}

impl Run<'_> {
    /// Returns whether the case completed or only waits for the outside world.
    pub(crate) fn succeeded(&self) -> bool {
        match &self.ending {
            Quiescence::Ended(status) => *status == CaseStatus::Completed,
            Quiescence::Waiting(waits) => !waits.is_empty(),
            Quiescence::TooManyInputs => false,
        }
    }

    /// Returns the simulation as one JSON document: `case_id`, `state`, `ending` (`ended`,
    /// `waiting`, `stuck` or `too_many_inputs`), `waits` (what a waiting case waits for), `data`
    /// and `history` (as `knhk case show --json` gives it).
    pub(crate) fn json(&self) -> Value {
        let case = self.driver.case();
        let style = Style {
            since: Some(self.start),
            short_ids: true,
            zone: Zone::Utc,
        };
        let (ending, waits) = match &self.ending {
            Quiescence::Ended(_) => ("ended", Vec::new()),
            Quiescence::Waiting(waits) if waits.is_empty() => ("stuck", Vec::new()),
            Quiescence::Waiting(waits) => (
                "waiting",
                waits.iter().map(|w| report::wait_text(w, &style)).collect(),
            ),
            Quiescence::TooManyInputs => ("too_many_inputs", Vec::new()),
        };
        serde_json::json!({
            "case_id": case.id().to_string(),
            "state": case.status().as_str(),
            "ending": ending,
            "waits": waits,
            "data": case.data(),
            "history": report::history_json(self.driver.history()),
        })
    }

    /// Renders the history as a table (times since the case was created, work items and
    /// timers by their number), then how the simulation ended and the case data.
    pub(crate) fn report(&self) -> String {
        let workflow = self.driver.workflow();
        let case = self.driver.case();
        let history = self.driver.history();
        let style = Style {
            since: Some(self.start),
            short_ids: true,
            zone: Zone::Utc,
        };
        let mut out = String::new();
        let _ = writeln!(out, "case {} of {}", case.id(), workflow.id());
        let mut table = HistoryTable::with_style(Some(workflow.specification()), style.clone());
        let _ = writeln!(out, "{}", table.header());
        for event in history {
            let _ = writeln!(out, "{}", table.row(event));
        }
        let _ = writeln!(out);

        let count = |f: fn(&EventKind) -> bool| history.iter().filter(|e| f(&e.kind)).count();
        let items = count(|k| matches!(k, EventKind::WorkItemCompleted { .. }));
        let timers = count(|k| matches!(k, EventKind::TimerFired { .. }));
        let work = format!(
            "{} events; the simulator completed {items} work {} and fired {timers} {}",
            history.len(),
            if items == 1 { "item" } else { "items" },
            if timers == 1 { "timer" } else { "timers" },
        );
        match &self.ending {
            Quiescence::Ended(status) => {
                let _ = writeln!(out, "case {status}: {work}");
            }
            Quiescence::Waiting(waits) if waits.is_empty() => {
                let _ = writeln!(
                    out,
                    "case {} but nothing can move any more: {work}",
                    case.status()
                );
            }
            Quiescence::Waiting(waits) => {
                let _ = writeln!(out, "case waits for the outside world: {work}");
                for wait in waits {
                    let _ = writeln!(out, "  {}", report::wait_text(wait, &style));
                }
            }
            Quiescence::TooManyInputs => {
                let _ = writeln!(
                    out,
                    "case still {} after {MAX_INPUTS} inputs (a loop that never exits?): {work}",
                    case.status()
                );
            }
        }
        let data = serde_json::to_string(case.data()).unwrap_or_default();
        let _ = writeln!(out, "data: {data}");
        out
    }
}
