//! The plans PostgreSQL chooses for the store's keyed and filtered reads, so that a test (and
//! an operator) can see that each one is served by an index and costs what it returns, not
//! what the store holds.

use deadpool_postgres::Client;
use knhk_core::{CaseId, CaseStatus, Timestamp, WorkflowId};

use crate::error::Error;
use crate::plan::QueryPlan;
use crate::record::CaseFilter;

use super::committer::WRITES;
use super::rows::{self, Param, refs};
use super::{lockchain, pg};

/// The tables that grow with the number of cases: a plan that scans one of them costs what
/// the store holds.
pub const POSTGRES_GROWING: [&str; 10] = [
    "cases",
    "events",
    "work_items",
    "timers",
    "work_item_roles",
    "snapshots",
    "idempotency",
    "quarantine",
    "lockchain_tiles",
    "lockchain_checkpoints",
];

/// Returns the lines of a PostgreSQL plan (`EXPLAIN (COSTS OFF)`, one line per node and per
/// property) that read the whole of one of `tables`: a `Seq Scan` of it, or an index scan of
/// it without an `Index Cond` (a walk of the whole index), or a bitmap index scan without
/// one.
pub fn postgres_scans(plan: &[String], tables: &[&str]) -> Vec<String> {
    let mut scans = Vec::new();
    for (i, line) in plan.iter().enumerate() {
        let node = line.trim_start().trim_start_matches("->").trim();
        let table = node
            .split(" on ")
            .nth(1)
            .and_then(|rest| rest.split_whitespace().next())
            .unwrap_or("");
        let growing = tables.contains(&table);
        // The node's properties: the lines after it up to the next node.
        let conditioned = plan
            .iter()
            .skip(i + 1)
            .take_while(|l| !l.trim_start().starts_with("->"))
            .any(|l| l.trim_start().starts_with("Index Cond:"));
        let scans_all = if node.starts_with("Seq Scan on ") {
            growing
        } else if node.starts_with("Index Scan") || node.starts_with("Index Only Scan") {
            growing && !conditioned
        } else {
            node.starts_with("Bitmap Index Scan") && !conditioned
        };
        if scans_all {
            scans.push(line.trim().to_owned());
        }
    }
    scans
}

/// Returns every keyed and filtered query of the store, with sample arguments.
fn queries() -> Vec<(String, String, Vec<Param>)> {
    let text = |s: &str| -> Param { Box::new(s.to_owned()) };
    let int = |n: i64| -> Param { Box::new(n) };
    let case = CaseId(uuid::Uuid::nil());
    let workflow = WorkflowId(uuid::Uuid::nil());
    let mut out: Vec<(String, String, Vec<Param>)> = vec![
        ("one case".to_owned(), rows::case_sql(), vec![text("c")]),
        (
            "the workflows of one URI or name".to_owned(),
            rows::workflows_named_sql(),
            vec![text("urn:order")],
        ),
        (
            "releasing a case from quarantine".to_owned(),
            rows::RELEASE_QUARANTINE_SQL.to_owned(),
            vec![text("c")],
        ),
        (
            "the version of one case".to_owned(),
            rows::CASE_VERSION_SQL.to_owned(),
            vec![text("c")],
        ),
        (
            "the events of one case".to_owned(),
            rows::EVENTS_SQL.to_owned(),
            vec![text("c"), int(0)],
        ),
        (
            "a page of the events of one case".to_owned(),
            rows::EVENTS_PAGE_SQL.to_owned(),
            vec![text("c"), int(0), int(100)],
        ),
        (
            "the snapshot of one case".to_owned(),
            rows::SNAPSHOT_SQL.to_owned(),
            vec![text("c")],
        ),
        (
            "one work item".to_owned(),
            rows::work_item_sql(),
            vec![text("w")],
        ),
        (
            "settling a case's work in flight".to_owned(),
            rows::SETTLE_IN_FLIGHT_SQL.to_owned(),
            vec![text("c"), int(3)],
        ),
        (
            "the quarantine of one case".to_owned(),
            rows::QUARANTINE_OF_SQL.to_owned(),
            vec![text("c")],
        ),
        (
            "one idempotency key".to_owned(),
            rows::IDEMPOTENCY_SQL.to_owned(),
            vec![text("k")],
        ),
        (
            "the lease of one node".to_owned(),
            rows::LEASE_SQL.to_owned(),
            vec![int(1)],
        ),
        (
            "the owner of one case".to_owned(),
            rows::CASE_OWNER_SQL.to_owned(),
            vec![text("c")],
        ),
        (
            "claiming the cases of dead nodes".to_owned(),
            rows::CLAIM_DEAD_SQL.to_owned(),
            vec![int(1), int(0), int(100)],
        ),
        (
            "claiming the cases no node owns".to_owned(),
            rows::CLAIM_UNOWNED_SQL.to_owned(),
            vec![int(1), int(100)],
        ),
        (
            "claiming due timers".to_owned(),
            rows::CLAIM_TIMERS_SQL.to_owned(),
            vec![int(1), int(0), int(0), int(100)],
        ),
    ];
    let pairs = || -> Vec<Param> {
        vec![
            Box::new(vec!["c".to_owned()]),
            Box::new(vec!["w".to_owned()]),
        ]
    };
    for (what, sql) in WRITES {
        let args = match what {
            "updating a case at its version" => vec![
                text("c"),
                text("w"),
                text("running"),
                text("{}"),
                text("{}"),
                int(2),
                int(0),
                int(0),
                Box::new(true) as Param,
                Box::new(None::<i64>) as Param,
                int(1),
            ],
            "storing a work item" => {
                let texts = || -> Param { Box::new(vec!["x".to_owned()]) };
                let ints = || -> Param { Box::new(vec![0_i64]) };
                vec![
                    texts(),
                    texts(),
                    texts(),
                    ints(),
                    ints(),
                    texts(),
                    texts(),
                    texts(),
                    Box::new(vec![Some("ann".to_owned())]),
                    texts(),
                    ints(),
                ]
            }
            "storing a timer" => {
                let mut args = pairs();
                args.push(Box::new(vec![0_i64]));
                args
            }
            _ => pairs(),
        };
        out.push((what.to_owned(), sql.to_owned(), args));
    }
    out.extend([
        (
            "the leaf of one event".to_owned(),
            lockchain::EVENT_LEAF_SQL.to_owned(),
            vec![text("c"), int(1)],
        ),
        (
            "one lockchain tile".to_owned(),
            lockchain::TILES_SQL.to_owned(),
            vec![
                Box::new(vec![0_i16]) as Param,
                Box::new(vec![3_i64]) as Param,
            ],
        ),
        (
            "the tail tiles of the lockchain".to_owned(),
            lockchain::TAIL_TILES_SQL.to_owned(),
            vec![int(-1)],
        ),
        (
            "checkpoints after a size".to_owned(),
            lockchain::CHECKPOINTS_SQL.to_owned(),
            vec![int(0), int(100)],
        ),
        (
            "the latest checkpoint".to_owned(),
            lockchain::LATEST_CHECKPOINT_SQL.to_owned(),
            vec![],
        ),
    ]);
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
    let prefix = || vec![text("0190"), text("0190g"), int(11)];
    for (table, what) in [("cases", "cases"), ("work_items", "work items")] {
        out.push((
            format!("{what} whose id starts with a prefix"),
            rows::ids_by_prefix_sql(table),
            prefix(),
        ));
        out.push((
            format!("{what} whose last group starts with a prefix"),
            rows::ids_by_last_group_sql(table),
            prefix(),
        ));
    }
    out.push((
        "the queue lengths of three users".to_owned(),
        rows::QUEUE_LENGTHS_SQL.to_owned(),
        vec![Box::new(["ann", "bob", "cat"].map(str::to_owned).to_vec())],
    ));
    let (sql, args) = rows::case_ids_query(&waiting, false);
    out.push((
        "the ids of running and suspended cases".to_owned(),
        sql,
        args,
    ));
    let (sql, args) = rows::case_ids_query(&waiting, true);
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
///
/// The plans are asked for with `enable_seqscan` off, in a transaction that ends by rolling
/// back: on the small tables of a new store (and of the tests) a sequential scan is the
/// cheapest plan for everything, which says nothing of a store that has grown. With it off
/// the planner still falls back to a scan where no index can serve the read, so what is
/// checked is that an index can, which is what it will choose once the table is large.
pub(super) async fn explain(client: &mut Client) -> Result<Vec<QueryPlan>, Error> {
    let tx = client
        .transaction()
        .await
        .map_err(pg("starting to explain queries"))?;
    tx.batch_execute("SET LOCAL enable_seqscan = off")
        .await
        .map_err(pg("turning sequential scans off"))?;
    let mut plans = Vec::new();
    for (query, sql, args) in queries() {
        let lines = tx
            .query(&format!("EXPLAIN (COSTS OFF) {sql}"), &refs(&args))
            .await
            .map_err(pg("explaining a query"))?;
        let plan = lines
            .iter()
            .map(|r| r.try_get::<_, String>(0))
            .collect::<Result<Vec<_>, _>>()
            .map_err(pg("reading a query plan"))?;
        let scans = postgres_scans(&plan, &POSTGRES_GROWING);
        plans.push(QueryPlan {
            query,
            sql,
            plan,
            scans,
        });
    }
    tx.rollback().await.map_err(pg("ending the explanation"))?;
    Ok(plans)
}
