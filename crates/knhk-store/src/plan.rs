//! How a backend serves its keyed and filtered reads, as its own query planner says, so that
//! the conformance suite can check, for every backend, that none of them reads a whole table
//! that grows with the cases.

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
