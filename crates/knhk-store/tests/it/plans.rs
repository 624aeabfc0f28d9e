//! The SQLite store's keyed and filtered reads are served by indexes: `EXPLAIN QUERY PLAN` of
//! each one (one case, its events, one work item, a case's work items, a user's, a role's,
//! cases by status or workflow...) reads no whole table of cases, events, work items or
//! timers, on a new store and on one migrated from an older format.

use knhk_store::{QueryPlan, SqliteOptions, SqliteStore};
use rusqlite::Connection;

/// The tables that grow with the number of cases.
const GROWING: [&str; 5] = ["cases", "events", "work_items", "timers", "snapshots"];

/// Fails naming every query whose plan scans a growing table.
fn assert_no_scans(plans: &[QueryPlan]) {
    let scans: Vec<String> = plans
        .iter()
        .filter(|p| !p.scans_of(&GROWING).is_empty())
        .map(|p| format!("{}: {:?}\n  {}", p.query, p.plan, p.sql))
        .collect();
    assert!(scans.is_empty(), "queries that scan:\n{}", scans.join("\n"));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn no_keyed_or_filtered_query_scans_a_table_that_grows_with_the_cases() {
    let dir = tempfile::tempdir().unwrap();
    let store = SqliteStore::open(&dir.path().join("store.db"), SqliteOptions::default())
        .await
        .unwrap();
    let plans = store.query_plans().await.unwrap();
    let named: Vec<&str> = plans.iter().map(|p| p.query.as_str()).collect();
    for query in [
        "one case",
        "the events of one case",
        "a page of the events of one case",
        "the snapshot of one case",
        "one work item",
        "work items of one case",
        "work items of one user",
        "work items of one role",
        "work items of one role and one case and one user",
        "cases of one workflow",
        "cases in two statuses",
        "the queue lengths of three users",
    ] {
        assert!(
            named.contains(&query),
            "{query} is not explained: {named:?}"
        );
    }
    assert!(plans.iter().all(|p| !p.plan.is_empty()), "{plans:?}");
    assert_no_scans(&plans);
    // The queries that drive by an index use the one meant.
    let plan = |query: &str| {
        plans
            .iter()
            .find(|p| p.query == query)
            .map(|p| p.plan.join("; "))
            .unwrap()
    };
    assert!(
        plan("work items of one case and one user").contains("work_items_by_case"),
        "{}",
        plan("work items of one case and one user")
    );
    assert!(
        plan("the snapshot of one case").contains("SEARCH snapshots USING PRIMARY KEY (case_id=?)"),
        "{}",
        plan("the snapshot of one case")
    );
    assert!(
        plan("work items of one role").contains("SEARCH r USING PRIMARY KEY (role=?)"),
        "{}",
        plan("work items of one role")
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_store_migrated_from_format_4_has_the_indexes_too() {
    let sql = std::fs::read_to_string(
        std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/golden/format-v4.sql"),
    )
    .unwrap();
    let dir = tempfile::tempdir().unwrap();
    let db = dir.path().join("store.db");
    Connection::open(&db).unwrap().execute_batch(&sql).unwrap();
    let store = SqliteStore::open(&db, SqliteOptions::default())
        .await
        .unwrap();
    assert_no_scans(&store.query_plans().await.unwrap());
}

/// The check itself sees a scan, whether over the table or over one of its indexes (the plan
/// of format 4's work item query, which read every item in offer order).
#[test]
fn a_scan_over_a_table_or_its_index_is_seen() {
    let old = QueryPlan {
        query: "work items of one case".to_owned(),
        sql: "SELECT w.id FROM work_items w WHERE (?2 IS NULL OR w.case_id = ?2)".to_owned(),
        plan: vec![
            "SCAN w USING INDEX work_items_by_offered".to_owned(),
            "CORRELATED SCALAR SUBQUERY 1".to_owned(),
            "SCAN r VIRTUAL TABLE INDEX 1:".to_owned(),
        ],
    };
    assert_eq!(
        old.scans_of(&GROWING),
        vec!["SCAN w USING INDEX work_items_by_offered"]
    );
    let full = QueryPlan {
        query: "cases".to_owned(),
        sql: "SELECT id FROM cases".to_owned(),
        plan: vec!["SCAN cases".to_owned()],
    };
    assert_eq!(full.scans_of(&GROWING), vec!["SCAN cases"]);
    let search = QueryPlan {
        query: "one case".to_owned(),
        sql: "SELECT id FROM cases WHERE id = ?1".to_owned(),
        plan: vec!["SEARCH cases USING INDEX sqlite_autoindex_cases_1 (id=?)".to_owned()],
    };
    assert!(search.scans_of(&GROWING).is_empty());
}
