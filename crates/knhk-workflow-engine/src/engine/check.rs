//! `check_store`: whether what is stored still holds together. The store's own integrity
//! check, then every case replayed from its history and compared with its row, its snapshot,
//! its work item rows and its timer rows.

use std::collections::{BTreeMap, BTreeSet};
use std::fmt;

use knhk_core::{Case, CaseId, TimerId, WorkItemId};
use knhk_store::WorkItemFilter;

use super::WorkflowEngine;
use crate::error::Error;
use crate::records;

/// What a problem found by [`WorkflowEngine::check_store`] is about.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord)]
pub enum Subject {
    /// The store as a whole (its file).
    Store,
    Case(CaseId),
    WorkItem(WorkItemId),
    Timer(TimerId),
}

impl fmt::Display for Subject {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Subject::Store => f.write_str("store"),
            Subject::Case(id) => write!(f, "case {id}"),
            Subject::WorkItem(id) => write!(f, "work item {id}"),
            Subject::Timer(id) => write!(f, "timer {id}"),
        }
    }
}

/// One thing found wrong in the store.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct StoreProblem {
    pub subject: Subject,
    /// What is wrong, in words.
    pub problem: String,
}

impl fmt::Display for StoreProblem {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}: {}", self.subject, self.problem)
    }
}

/// What [`WorkflowEngine::check_store`] looked at and found.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct StoreReport {
    pub cases: usize,
    pub work_items: usize,
    pub timers: usize,
    /// Every problem, the store's own first, then by case.
    pub problems: Vec<StoreProblem>,
}

impl StoreReport {
    /// Returns whether nothing is wrong.
    pub fn is_clean(&self) -> bool {
        self.problems.is_empty()
    }

    fn add(&mut self, subject: Subject, problem: impl fmt::Display) {
        self.problems.push(StoreProblem {
            subject,
            problem: problem.to_string(),
        });
    }
}

impl WorkflowEngine {
    /// Checks everything stored: the store's own integrity check (SQLite's
    /// `integrity_check`); then that every case replays from its history without gaps to the
    /// status and version of its row, and, at its snapshot's event, to its snapshot; that every work item row is a live human work item of
    /// its replayed case (and every such item has its row); that every timer row is armed in
    /// its replayed case (and every armed timer has its row). A quarantined case is a problem
    /// too, until it is repaired and released. Reads only.
    pub async fn check_store(&self) -> Result<StoreReport, Error> {
        let store = &self.inner.store;
        let mut report = StoreReport::default();
        for problem in store.integrity(true).await? {
            report.add(Subject::Store, problem);
        }
        for q in store.quarantined().await? {
            report.add(
                Subject::Case(q.case),
                format_args!("it is quarantined (nothing runs it): {}", q.reason),
            );
        }
        let ids = store.case_ids(&[]).await?;
        report.cases = ids.len();
        let mut replayed: BTreeMap<CaseId, Option<(Case, std::sync::Arc<knhk_core::Workflow>)>> =
            BTreeMap::new();
        for id in ids {
            let case = self.check_case(id, &mut report).await;
            replayed.insert(id, case);
        }
        let items = store.work_items(&WorkItemFilter::default()).await;
        let items = match items {
            Ok(items) => items,
            Err(e) => {
                report.add(
                    Subject::Store,
                    format_args!("the work items do not read: {e}"),
                );
                Vec::new()
            }
        };
        report.work_items = items.len();
        let mut seen_items = BTreeSet::new();
        for row in &items {
            seen_items.insert(row.id);
            let subject = Subject::WorkItem(row.id);
            match replayed.get(&row.case_id) {
                None => report.add(
                    subject,
                    format_args!("its case {} is not stored", row.case_id),
                ),
                // The case's own problem is reported already.
                Some(None) => {}
                Some(Some((case, wf))) => match records::work_item_record(case, wf, row.id) {
                    None => report.add(
                        subject,
                        format_args!(
                            "case {} has no such live work item (it ended, or never was)",
                            row.case_id
                        ),
                    ),
                    Some(expected) if &expected != row => report.add(
                        subject,
                        format_args!(
                            "its row says {} for {}, but case {}'s history says {} for {}",
                            row.state,
                            row.owner.as_deref().unwrap_or("nobody"),
                            row.case_id,
                            expected.state,
                            expected.owner.as_deref().unwrap_or("nobody"),
                        ),
                    ),
                    Some(_) => {}
                },
            }
        }
        let timers = store.timers().await;
        let timers = match timers {
            Ok(timers) => timers,
            Err(e) => {
                report.add(Subject::Store, format_args!("the timers do not read: {e}"));
                Vec::new()
            }
        };
        report.timers = timers.len();
        let mut seen_timers = BTreeSet::new();
        for row in &timers {
            seen_timers.insert(row.id);
            let subject = Subject::Timer(row.id);
            match replayed.get(&row.case_id) {
                None => report.add(
                    subject,
                    format_args!("its case {} is not stored", row.case_id),
                ),
                Some(None) => {}
                // A case failed by a task keeps its timers armed but stores none until it is
                // retried (records::stores_timers).
                Some(Some((case, _))) if !records::stores_timers(case) => report.add(
                    subject,
                    format_args!(
                        "case {} is failed and stores no timers until it is retried",
                        row.case_id
                    ),
                ),
                Some(Some((case, _))) => match case.timers().find(|(id, _)| **id == row.id) {
                    None => report.add(
                        subject,
                        format_args!("case {} has no such armed timer", row.case_id),
                    ),
                    Some((_, at)) if at != row.fires_at => report.add(
                        subject,
                        format_args!(
                            "its row fires at {} ms, case {}'s history at {} ms",
                            row.fires_at.0, row.case_id, at.0
                        ),
                    ),
                    Some(_) => {}
                },
            }
        }
        // The other way round: what the histories hold that has no row.
        for (id, entry) in &replayed {
            let Some((case, wf)) = entry else { continue };
            for (item, _) in case.work_items() {
                if records::work_item_record(case, wf, *item).is_some()
                    && !seen_items.contains(item)
                {
                    report.add(
                        Subject::Case(*id),
                        format_args!("its live work item {item} has no row"),
                    );
                }
            }
            for (timer, _) in case.timers() {
                if records::stores_timers(case) && !seen_timers.contains(timer) {
                    report.add(
                        Subject::Case(*id),
                        format_args!("its armed timer {timer} has no row"),
                    );
                }
            }
        }
        Ok(report)
    }

    /// Checks one case: its row decodes, its history has no gap and replays to the row's
    /// status and version. Returns the replayed case when it does.
    pub(super) async fn check_case(
        &self,
        id: CaseId,
        report: &mut StoreReport,
    ) -> Option<(Case, std::sync::Arc<knhk_core::Workflow>)> {
        let subject = Subject::Case(id);
        let store = &self.inner.store;
        let row = match store.case(id).await {
            Ok(Some(row)) => row,
            Ok(None) => return None,
            Err(e) => {
                report.add(subject, format_args!("its row does not decode: {e}"));
                return None;
            }
        };
        let wf = match self.definition(row.workflow).await {
            Ok(wf) => wf,
            Err(e) => {
                report.add(subject, format_args!("its workflow does not load: {e}"));
                return None;
            }
        };
        let events = match store.events(id, 0).await {
            Ok(events) => events,
            Err(e) => {
                report.add(subject, format_args!("its history does not decode: {e}"));
                return None;
            }
        };
        for (expected, e) in (1u64..).zip(&events) {
            if e.seq != expected {
                report.add(
                    subject,
                    format_args!("its history jumps from event {} to {}", expected - 1, e.seq),
                );
                return None;
            }
        }
        let snapshot = match store.snapshot(id).await {
            Ok(snapshot) => snapshot,
            Err(e) => {
                report.add(subject, format_args!("its snapshot does not read: {e}"));
                None
            }
        };
        // Replayed up to the snapshot's event, compared with it, then to the end.
        let upto = snapshot.as_ref().map_or(0, |s| s.seq);
        let split = usize::try_from(upto).map_or(events.len(), |n| n.min(events.len()));
        let (before, after) = events.split_at(split);
        let mut case = match Case::replay(&wf, id, before) {
            Ok(case) => case,
            Err(e) => {
                report.add(subject, format_args!("its history does not replay: {e}"));
                return None;
            }
        };
        if let Some(snapshot) = snapshot {
            check_snapshot(&wf, &case, snapshot, report);
        }
        if let Err(e) = case.fold(&wf, after) {
            report.add(subject, format_args!("its history does not replay: {e}"));
            return None;
        }
        if case.last_seq() != row.version {
            report.add(
                subject,
                format_args!(
                    "its row says version {}, but its history ends at event {}",
                    row.version,
                    case.last_seq()
                ),
            );
        }
        if case.status() != row.status {
            report.add(
                subject,
                format_args!(
                    "its row says {}, but its history says {}",
                    row.status,
                    case.status()
                ),
            );
        }
        Some((case, wf))
    }
}

/// Checks a case's stored snapshot against `case`, its history replayed up to the snapshot's
/// event (or to its end, when the snapshot claims more). A snapshot in another format than
/// this build's is not a problem: loading ignores it, and the next one replaces it.
fn check_snapshot(
    wf: &knhk_core::Workflow,
    case: &Case,
    stored: knhk_store::SnapshotRecord,
    report: &mut StoreReport,
) {
    let subject = Subject::Case(case.id());
    if stored.seq != case.last_seq() {
        report.add(
            subject,
            format_args!(
                "its snapshot is of event {}, but its history ends at event {}",
                stored.seq,
                case.last_seq()
            ),
        );
        return;
    }
    let snapshot = knhk_core::CaseSnapshot {
        format: stored.format,
        seq: stored.seq,
        state: stored.state,
    };
    match Case::restore(wf, case.id(), &snapshot) {
        Ok(restored) if &restored == case => {}
        Ok(_) => report.add(
            subject,
            format_args!(
                "its snapshot at event {} is not the state its history reaches there",
                snapshot.seq
            ),
        ),
        Err(knhk_core::SnapshotError::UnknownFormat { .. }) => {}
        Err(e) => report.add(
            subject,
            format_args!(
                "its snapshot at event {} does not restore: {e}",
                snapshot.seq
            ),
        ),
    }
}
