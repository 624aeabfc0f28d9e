//! How a backend serves its keyed and filtered reads, as its own query planner says, so that
//! the conformance suite can check, for every backend, that none of them reads a whole table
//! that grows with the cases.

use knhk_core::{CaseId, Timestamp, WorkItemId};

use crate::record::WorkItemFilter;

/// The reads every backend with a query planner explains, by [`QueryPlan::query`]: the
/// conformance suite requires a plan for each, and that no plan scans.
pub const EXPLAINED: &[&str] = &[
    "one case",
    "the workflows of one URI or name",
    "the version of one case",
    "the events of one case",
    "a page of the events of one case",
    "one work item",
    "work items of one case",
    "work items of one user",
    "work items of one role",
    "work items of one role and one case and one user",
    "a page of work items after a cursor",
    "a page of one role's work items after a cursor",
    "a page of one user's work items after a cursor",
    "work items in one state",
    "a page of work items in one state after a cursor",
    "work items of one role in one state",
    "cases in one status",
    "cases in two statuses",
    "cases of one workflow",
    "a page of cases after a cursor",
    "cases whose id starts with a prefix",
    "cases whose last group starts with a prefix",
    "work items whose id starts with a prefix",
    "work items whose last group starts with a prefix",
    "the queue lengths of three users",
    "the ids of running and suspended cases with work in flight",
    "settling a case's work in flight",
    "the lease of one node",
    "the owner of one case",
    "claiming the cases of dead nodes",
    "claiming the cases no node owns",
    "claiming due timers",
    "the leaf of one event",
    "one lockchain tile",
    "checkpoints after a size",
    "the latest checkpoint",
];

/// One read of a store and the plan its backend chooses for it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct QueryPlan {
    /// What the read is for, in words (one of [`EXPLAINED`], or another of the backend's).
    pub query: String,
    /// The statement as the backend runs it.
    pub sql: String,
    /// The plan, one line per step, in the planner's own words and order (SQLite: `SEARCH w
    /// USING INDEX work_items_by_case (case_id=?)`).
    pub plan: Vec<String>,
    /// The lines of `plan` that read every row of a table that grows with the cases (a scan,
    /// over the table or one of its indexes), as the backend reads its planner's words: none
    /// when the read costs what it returns.
    pub scans: Vec<String>,
}

/// Returns the work item filters whose reads every backend with a planner explains, each
/// named as in [`EXPLAINED`] (and a few more): one role, case or user and their combinations,
/// pages after a cursor, and one state with each of them. `case` is the sample case.
pub(crate) fn work_item_filters(case: CaseId) -> Vec<(String, WorkItemFilter)> {
    let mut out = Vec::new();
    for role in [None, Some("clerk")] {
        for case in [None, Some(case)] {
            for owner in [None, Some("ann")] {
                if role.is_none() && case.is_none() && owner.is_none() {
                    continue;
                }
                let f = WorkItemFilter {
                    role: role.map(str::to_owned),
                    case,
                    owner: owner.map(str::to_owned),
                    ..WorkItemFilter::default()
                };
                let named: Vec<&str> = [
                    role.map(|_| "one role"),
                    case.map(|_| "one case"),
                    owner.map(|_| "one user"),
                ]
                .into_iter()
                .flatten()
                .collect();
                out.push((format!("work items of {}", named.join(" and ")), f));
            }
        }
    }
    let cursor = Some((Timestamp(1_700_000_000_000), WorkItemId(uuid::Uuid::nil())));
    for (what, role, owner) in [
        ("a page of work items after a cursor", None, None),
        (
            "a page of one role's work items after a cursor",
            Some("clerk"),
            None,
        ),
        (
            "a page of one user's work items after a cursor",
            None,
            Some("ann"),
        ),
    ] {
        let f = WorkItemFilter {
            role: role.map(str::to_owned),
            owner: owner.map(str::to_owned),
            limit: Some(100),
            after: cursor,
            ..WorkItemFilter::default()
        };
        out.push((what.to_owned(), f));
    }
    let started = Some("started".to_owned());
    for (what, role, case, owner, after) in [
        ("work items in one state", None, None, None, None),
        (
            "a page of work items in one state after a cursor",
            None,
            None,
            None,
            cursor,
        ),
        (
            "work items of one role in one state",
            Some("clerk"),
            None,
            None,
            None,
        ),
        (
            "work items of one case in one state",
            None,
            Some(case),
            None,
            None,
        ),
        (
            "work items of one user in one state",
            None,
            None,
            Some("ann"),
            None,
        ),
    ] {
        let f = WorkItemFilter {
            role: role.map(str::to_owned),
            case,
            owner: owner.map(str::to_owned),
            state: started.clone(),
            limit: Some(100),
            after,
        };
        out.push((what.to_owned(), f));
    }
    out
}
