//! The plans SQLite chooses for the store's keyed and filtered reads, so that a test (and an
//! operator) can see that each one is served by an index and costs what it returns, not what
//! the store holds.

use knhk_core::{CaseId, CaseStatus, Timestamp, WorkflowId};
use rusqlite::types::Value as SqlValue;
use rusqlite::{Connection, params_from_iter};

use crate::error::Error;
use crate::plan::QueryPlan;
use crate::record::CaseFilter;

use super::{lockchain, rows, sqlite, writer};

/// The tables that grow with the number of cases: a plan that scans one of them costs what
/// the store holds.
pub const GROWING: [&str; 8] = [
    "cases",
    "events",
    "work_items",
    "timers",
    "work_item_roles",
    "snapshots",
    "lockchain_tiles",
    "lockchain_checkpoints",
];

/// Returns the lines of an SQLite plan (of the statement `sql`) that read the whole of one
/// of `tables` (`SCAN t`, with or without an index: a scan over an index still visits every
/// row).
pub fn sqlite_scans(sql: &str, plan: &[String], tables: &[&str]) -> Vec<String> {
    plan.iter()
        .filter(|line| {
            let Some(rest) = line.strip_prefix("SCAN ") else {
                return false;
            };
            let name = rest.split_whitespace().next().unwrap_or("");
            tables.contains(&name) || aliases(sql, name).iter().any(|t| tables.contains(t))
        })
        .cloned()
        .collect()
}

/// Returns the tables `sql` names with `alias` (`work_items w` gives `w`).
fn aliases<'a>(sql: &'a str, alias: &str) -> Vec<&'a str> {
    let words: Vec<&str> = sql
        .split(|c: char| c.is_whitespace() || c == ',' || c == '(' || c == ')')
        .filter(|w| !w.is_empty() && !w.eq_ignore_ascii_case("AS"))
        .collect();
    words
        .windows(2)
        .filter_map(|pair| match pair {
            [table, a] if *a == alias => Some(*table),
            _ => None,
        })
        .collect()
}

/// Returns every keyed and filtered query the store issues, with sample arguments.
fn queries() -> Vec<(String, String, Vec<SqlValue>)> {
    let id = |s: &str| SqlValue::Text(s.to_owned());
    let case = CaseId(uuid::Uuid::nil());
    let workflow = WorkflowId(uuid::Uuid::nil());
    let mut out = vec![
        ("one case".to_owned(), rows::case_sql(), vec![id("c")]),
        (
            "the workflows of one URI or name".to_owned(),
            rows::workflows_named_sql(),
            vec![id("urn:order")],
        ),
        (
            "the version of one case".to_owned(),
            rows::CASE_VERSION_SQL.to_owned(),
            vec![id("c")],
        ),
        (
            "the events of one case".to_owned(),
            rows::EVENTS_SQL.to_owned(),
            vec![id("c"), SqlValue::Integer(0)],
        ),
        (
            "a page of the events of one case".to_owned(),
            rows::EVENTS_PAGE_SQL.to_owned(),
            vec![id("c"), SqlValue::Integer(0), SqlValue::Integer(100)],
        ),
        (
            "the snapshot of one case".to_owned(),
            rows::SNAPSHOT_SQL.to_owned(),
            vec![id("c")],
        ),
        (
            "one work item".to_owned(),
            rows::work_item_sql(),
            vec![id("w")],
        ),
        (
            "settling a case's work in flight".to_owned(),
            rows::SETTLE_IN_FLIGHT_SQL.to_owned(),
            vec![id("c"), SqlValue::Integer(3)],
        ),
        (
            "the quarantine of one case".to_owned(),
            rows::QUARANTINE_OF_SQL.to_owned(),
            vec![id("c")],
        ),
        (
            "releasing a case from quarantine".to_owned(),
            writer::RELEASE_QUARANTINE_SQL.to_owned(),
            vec![id("c")],
        ),
        (
            "removing a work item".to_owned(),
            "DELETE FROM work_items WHERE id = ?1".to_owned(),
            vec![id("w")],
        ),
        (
            "removing a work item's roles".to_owned(),
            writer::DELETE_ROLES.to_owned(),
            vec![id("w")],
        ),
        (
            "the roles of a stored work item".to_owned(),
            writer::ROLES_OF_ITEM.to_owned(),
            vec![id("w")],
        ),
        (
            "removing one role of a work item".to_owned(),
            writer::DELETE_ROLE.to_owned(),
            vec![id("clerk"), SqlValue::Integer(0), id("w")],
        ),
        (
            "the lease of one node".to_owned(),
            rows::LEASE_SQL.to_owned(),
            vec![SqlValue::Integer(1)],
        ),
        (
            "the owner of one case".to_owned(),
            rows::CASE_OWNER_SQL.to_owned(),
            vec![id("c")],
        ),
        (
            "claiming the cases of dead nodes".to_owned(),
            rows::CLAIM_DEAD_SQL.to_owned(),
            vec![
                SqlValue::Integer(1),
                SqlValue::Integer(0),
                SqlValue::Integer(100),
            ],
        ),
        (
            "claiming the cases no node owns".to_owned(),
            rows::CLAIM_UNOWNED_SQL.to_owned(),
            vec![SqlValue::Integer(1), SqlValue::Integer(100)],
        ),
        (
            "claiming due timers".to_owned(),
            rows::CLAIM_TIMERS_SQL.to_owned(),
            vec![
                SqlValue::Integer(1),
                SqlValue::Integer(0),
                SqlValue::Integer(0),
                SqlValue::Integer(100),
            ],
        ),
        (
            "removing a timer".to_owned(),
            "DELETE FROM timers WHERE id = ?1".to_owned(),
            vec![id("t")],
        ),
        (
            "the leaf of one event".to_owned(),
            lockchain::EVENT_LEAF_SQL.to_owned(),
            vec![id("c"), SqlValue::Integer(1)],
        ),
        (
            "one lockchain tile".to_owned(),
            lockchain::TILE_SQL.to_owned(),
            vec![SqlValue::Integer((7 << 56) + 3 * 256)],
        ),
        (
            "the lockchain's size".to_owned(),
            lockchain::SIZE_SQL.to_owned(),
            vec![],
        ),
        (
            "checkpoints after a size".to_owned(),
            lockchain::CHECKPOINTS_SQL.to_owned(),
            vec![SqlValue::Integer(0), SqlValue::Integer(100)],
        ),
        (
            "the latest checkpoint".to_owned(),
            lockchain::LATEST_CHECKPOINT_SQL.to_owned(),
            vec![],
        ),
    ];
    let running = vec![CaseStatus::Running];
    let waiting = vec![CaseStatus::Running, CaseStatus::Suspended];
    let case_filters = [
        ("cases in one status", running.clone(), None, None),
        ("cases in two statuses", waiting.clone(), None, None),
        ("cases of one workflow", vec![], Some(workflow), Some(50)),
        (
            "cases of one workflow in one status",
            running,
            Some(workflow),
            None,
        ),
    ];
    for (what, status, workflow, limit) in case_filters {
        let (sql, args) = rows::cases_query(&CaseFilter {
            status,
            workflow,
            limit,
            after: None,
        });
        out.push((what.to_owned(), sql, args));
    }
    let (sql, args) = rows::cases_query(&CaseFilter {
        status: Vec::new(),
        workflow: None,
        limit: Some(100),
        after: Some((Timestamp(1_700_000_000_000), CaseId(uuid::Uuid::nil()))),
    });
    out.push(("a page of cases after a cursor".to_owned(), sql, args));
    let prefix = vec![id("0190"), id("0190g"), SqlValue::Integer(11)];
    for (table, what) in [("cases", "cases"), ("work_items", "work items")] {
        out.push((
            format!("{what} whose id starts with a prefix"),
            rows::ids_by_prefix_sql(table),
            prefix.clone(),
        ));
        out.push((
            format!("{what} whose last group starts with a prefix"),
            rows::ids_by_last_group_sql(table),
            prefix.clone(),
        ));
    }
    let users = ["ann", "bob", "cat"].map(str::to_owned);
    let (sql, args) = rows::queue_lengths_query(&users);
    out.push(("the queue lengths of three users".to_owned(), sql, args));
    let (sql, args) = rows::case_ids_query(&waiting);
    out.push((
        "the ids of running and suspended cases".to_owned(),
        sql,
        args,
    ));
    let (sql, args) = rows::case_ids_in_flight_query(&waiting);
    out.push((
        "the ids of running and suspended cases with work in flight".to_owned(),
        sql,
        args,
    ));
    for (what, f) in crate::plan::work_item_filters(case) {
        let (sql, args) = rows::work_items_query(&f);
        out.push((what, sql, args));
    }
    out
}

/// Returns the plan of every keyed and filtered query of the store.
pub(super) fn explain(conn: &Connection) -> Result<Vec<QueryPlan>, Error> {
    let mut plans = Vec::new();
    for (query, sql, args) in queries() {
        let mut stmt = conn
            .prepare(&format!("EXPLAIN QUERY PLAN {sql}"))
            .map_err(sqlite("explaining a query"))?;
        // Columns: id, parent, notused, detail.
        let plan = stmt
            .query_map(params_from_iter(args), |r| r.get::<_, String>(3))
            .map_err(sqlite("explaining a query"))?
            .collect::<Result<Vec<_>, _>>()
            .map_err(sqlite("reading a query plan"))?;
        let scans = sqlite_scans(&sql, &plan, &GROWING);
        plans.push(QueryPlan {
            query,
            sql,
            plan,
            scans,
        });
    }
    Ok(plans)
}
