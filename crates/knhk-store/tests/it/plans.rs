//! The SQLite store's keyed and filtered reads are served by indexes: `EXPLAIN QUERY PLAN` of
//! each one (one case, its events, one work item, a case's work items, a user's, a role's,
//! cases by status or workflow...) reads no whole table of cases, events, work items or
//! timers, on a new store and on one migrated from an older format.

use knhk_store::{GROWING, QueryPlan, SqliteOptions, SqliteStore, Store, sqlite_scans};
use rusqlite::Connection;

/// Fails naming every query whose plan scans a growing table.
fn assert_no_scans(plans: &[QueryPlan]) {
    let scans: Vec<String> = plans
        .iter()
        .filter(|p| !p.scans.is_empty() || !sqlite_scans(&p.sql, &p.plan, &GROWING).is_empty())
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
        "cases whose last group starts with a prefix",
        "work items whose last group starts with a prefix",
        "a page of work items after a cursor",
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
    for (query, index) in [
        (
            "cases whose last group starts with a prefix",
            "cases_by_last_group",
        ),
        (
            "work items whose last group starts with a prefix",
            "work_items_by_last_group",
        ),
        ("cases whose id starts with a prefix", "(id>? AND id<?)"),
        (
            "a page of work items after a cursor",
            "work_items_by_offered",
        ),
    ] {
        assert!(plan(query).contains(index), "{query}: {}", plan(query));
    }
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
    let lines = |l: &[&str]| l.iter().map(|s| (*s).to_owned()).collect::<Vec<_>>();
    let old = lines(&[
        "SCAN w USING INDEX work_items_by_offered",
        "CORRELATED SCALAR SUBQUERY 1",
        "SCAN r VIRTUAL TABLE INDEX 1:",
    ]);
    assert_eq!(
        sqlite_scans(
            "SELECT w.id FROM work_items w WHERE (?2 IS NULL OR w.case_id = ?2)",
            &old,
            &GROWING
        ),
        vec!["SCAN w USING INDEX work_items_by_offered"]
    );
    assert_eq!(
        sqlite_scans("SELECT id FROM cases", &lines(&["SCAN cases"]), &GROWING),
        vec!["SCAN cases"]
    );
    let search = lines(&["SEARCH cases USING INDEX sqlite_autoindex_cases_1 (id=?)"]);
    assert!(sqlite_scans("SELECT id FROM cases WHERE id = ?1", &search, &GROWING).is_empty());
}
