//! The golden files of the stored formats: a SQL dump of a small store written by each format
//! must keep loading, with the same values, in every later version (an older file is migrated
//! when it is opened).
//!
//! The normal run only reads `tests/golden/format-vN.sql`. To rewrite the dump of the current
//! format (only while it is unreleased, and never to make a failing check pass after a change
//! to the stored format; add a new format and a new golden file instead), run
//! `KNHK_WRITE_GOLDEN=1 cargo test -p knhk-store golden`.

use std::path::{Path, PathBuf};

use knhk_core::{CaseStatus, EventKind, TaskRef, Timestamp};
use knhk_store::{
    CaseFilter, CaseRecord, Commit, FORMAT_VERSION, SnapshotRecord, SqliteOptions, SqliteStore,
    Store, WorkItemFilter, WorkflowRecord,
};
use rusqlite::Connection;
use serde_json::json;

use crate::conformance::lockchain::{assert_tree, leaf_of, with_leaves};
use crate::fixtures::*;

fn golden_path(format: i64) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join(format!("tests/golden/format-v{format}.sql"))
}

/// The two commits of the golden store: an order case with a work item, a timer and an
/// idempotency key, and a cancelled case.
fn golden_commits() -> Vec<Commit> {
    let wf = workflow_id(1);
    let mut order = first_commit(
        case(1, wf, CaseStatus::Running, 1_700_000_000_100),
        events_from(
            1,
            vec![
                EventKind::CaseCreated {
                    workflow: "order".to_owned(),
                    data: data(&[("amount", json!(120)), ("customer", json!("ACME"))]),
                },
                EventKind::CaseStateChanged {
                    from: CaseStatus::Created,
                    to: CaseStatus::Running,
                    reason: None,
                },
                EventKind::TaskEnabled {
                    task: task("approve"),
                },
                EventKind::TaskStarted {
                    task: task("approve"),
                    instances: vec![json!({ "amount": 120 })],
                },
                EventKind::WorkItemOffered {
                    item: item_id(1),
                    task: task("approve"),
                    instance: 0,
                    input: json!({ "amount": 120 }),
                },
                EventKind::TimerArmed {
                    timer: timer_id(1),
                    task: task("approve"),
                    fires_at: Timestamp(1_700_003_600_000),
                },
            ],
        ),
    );
    order.case.marking = json!({ "0": { "approve": 1 } });
    order.case.updated_at = Timestamp(1_700_000_000_200);
    order.work_items.push(put(work_item(
        1,
        case_id(1),
        &["manager", "finance"],
        None,
        1_700_000_000_150,
    )));
    order
        .timers
        .push(put(timer(1, case_id(1), 1_700_003_600_000)));
    order.idempotency = Some(idempotency("create-order-1", 1_700_000_000_100));
    order.snapshot = Some(golden_snapshot());

    let mut cancelled = first_commit(
        case(2, wf, CaseStatus::Cancelled, 1_700_000_000_300),
        events_from(
            1,
            vec![
                EventKind::CaseCreated {
                    workflow: "order".to_owned(),
                    data: data(&[]),
                },
                EventKind::CaseStateChanged {
                    from: CaseStatus::Created,
                    to: CaseStatus::Cancelled,
                    reason: Some("customer withdrew".to_owned()),
                },
                EventKind::TokensRemoved {
                    net_instance: 0,
                    condition: "start".into(),
                    count: 1,
                },
            ],
        ),
    );
    cancelled.case.marking = json!({});
    vec![order, cancelled]
}

/// Writes the golden store through the store API, then dumps it as SQL text.
async fn write_golden(path: &Path) {
    let dir = tempfile::tempdir().unwrap();
    let db = dir.path().join("store.db");
    let store = SqliteStore::open(&db, SqliteOptions::default())
        .await
        .unwrap();
    store.put_workflow(&workflow(1, "order", 1)).await.unwrap();
    // Format 11: every event of the golden commits has its leaf.
    for c in golden_commits() {
        store.commit(with_leaves(c)).await.unwrap();
    }
    // Format 2: the turn of a round-robin role. (Format 3's URI is the workflow's.)
    store.next_in_sequence("round_robin/clerk").await.unwrap();
    store.next_in_sequence("round_robin/clerk").await.unwrap();
    // Format 4: a quarantined case.
    store.quarantine(&golden_quarantine()).await.unwrap();
    // Format 10: a node, and its claim of the order's timer (due at 1_700_003_600_000).
    let fence = store
        .register_node(
            "golden-host/42",
            Timestamp(GOLDEN_NODE_START),
            Timestamp(GOLDEN_LEASE),
        )
        .await
        .unwrap();
    let claimed = store
        .claim_due_timers(
            fence,
            Timestamp(1_700_003_600_000),
            Timestamp(GOLDEN_CLAIM),
            10,
        )
        .await
        .unwrap();
    assert_eq!(claimed.len(), 1);
    // Format 11: a checkpoint of the tree.
    assert!(store.put_checkpoint(&golden_checkpoint()).await.unwrap());
    drop(store);
    let conn = Connection::open(&db).unwrap();
    std::fs::write(path, dump(&conn)).unwrap();
}

/// Returns the schema and rows of a SQLite database as SQL text, in a stable order.
fn dump(conn: &Connection) -> String {
    let mut out = format!(
        "-- knhk store, format {FORMAT_VERSION}: written by tests/it/golden.rs \
         (KNHK_WRITE_GOLDEN=1), do not edit.\nBEGIN TRANSACTION;\n"
    );
    let tables: Vec<(String, String)> = conn
        .prepare("SELECT name, sql FROM sqlite_master WHERE type = 'table' ORDER BY name")
        .unwrap()
        .query_map([], |r| Ok((r.get(0)?, r.get(1)?)))
        .unwrap()
        .map(Result::unwrap)
        .collect();
    for (name, sql) in &tables {
        // SQLite makes `sqlite_sequence` itself with the first AUTOINCREMENT table (format 10's
        // nodes), and refuses to have it made: its rows are dump enough.
        if name != "sqlite_sequence" {
            out.push_str(&format!("{sql};\n"));
        }
        let columns: Vec<String> = conn
            .prepare(&format!(
                "SELECT name FROM pragma_table_info('{name}') ORDER BY cid"
            ))
            .unwrap()
            .query_map([], |r| r.get(0))
            .unwrap()
            .map(Result::unwrap)
            .collect();
        let quoted = columns
            .iter()
            .map(|c| format!("quote(\"{c}\")"))
            .collect::<Vec<_>>()
            .join(" || ',' || ");
        let rows: Vec<String> = conn
            .prepare(&format!("SELECT {quoted} FROM \"{name}\" ORDER BY 1"))
            .unwrap()
            .query_map([], |r| r.get(0))
            .unwrap()
            .map(Result::unwrap)
            .collect();
        for row in rows {
            out.push_str(&format!("INSERT INTO \"{name}\" VALUES({row});\n"));
        }
    }
    let indexes: Vec<String> = conn
        .prepare(
            "SELECT sql FROM sqlite_master WHERE type = 'index' AND sql IS NOT NULL ORDER BY name",
        )
        .unwrap()
        .query_map([], |r| r.get(0))
        .unwrap()
        .map(Result::unwrap)
        .collect();
    for sql in indexes {
        out.push_str(&format!("{sql};\n"));
    }
    let version: i64 = conn
        .query_row("PRAGMA user_version", [], |r| r.get(0))
        .unwrap();
    out.push_str(&format!("PRAGMA user_version = {version};\nCOMMIT;\n"));
    out
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn golden_format_v1_loads_and_is_migrated() {
    let (store, _dir) = load_golden(1).await;
    // Format 1 had no sequences: the migration adds them, starting afresh.
    assert_eq!(
        store.next_in_sequence("round_robin/clerk").await.unwrap(),
        1
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn golden_format_v2_loads_and_is_migrated() {
    let (store, _dir) = load_golden(2).await;
    assert_eq!(
        store.next_in_sequence("round_robin/clerk").await.unwrap(),
        3
    );
    // Format 2 had no quarantine: the migration adds it, empty.
    assert_eq!(store.quarantined().await.unwrap(), vec![]);
}

/// The quarantined case of the golden store (format 4).
fn golden_quarantine() -> knhk_store::QuarantineRecord {
    knhk_store::QuarantineRecord {
        case: case_id(2),
        reason: "stored history of case 2 does not replay".to_owned(),
        at: Timestamp(1_700_000_000_400),
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn golden_format_v3_loads_and_is_migrated() {
    let (store, _dir) = load_golden(3).await;
    // Format 3 had no quarantine: the migration adds it, empty.
    assert_eq!(store.quarantined().await.unwrap(), vec![]);
    assert_eq!(
        store.next_in_sequence("round_robin/clerk").await.unwrap(),
        3
    );
    // Format 3: the workflow's URI, with versions unique per URI.
    let order = workflow(1, "order", 1);
    assert_eq!(order.uri, "urn:knhk:workflow:order");
    assert_eq!(
        store.latest_workflow(&order.uri).await.unwrap(),
        Some(order.clone())
    );
    let taken = WorkflowRecord {
        id: workflow_id(2),
        ..order
    };
    assert!(matches!(
        store.put_workflow(&taken).await,
        Err(knhk_store::Error::DuplicateVersion { version: 1, .. })
    ));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn golden_format_v4_loads_and_is_migrated() {
    let (store, _dir) = load_golden(4).await;
    assert_v4(&store).await;
    // Format 4 kept roles only as JSON: the migration fills the role table from it (the
    // role filter of `load_golden` found the item by its second role), and the item's roles
    // follow it from then on.
    assert_eq!(
        store
            .work_items(&WorkItemFilter {
                role: Some("manager".to_owned()),
                case: Some(case_id(1)),
                ..WorkItemFilter::default()
            })
            .await
            .unwrap()
            .len(),
        1
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn golden_format_v5_loads_and_is_migrated() {
    let (store, _dir) = load_golden(5).await;
    assert_v4(&store).await;
    // Format 5 did not say which cases have work in flight: every running one is taken to.
    assert_eq!(
        store
            .case_ids_in_flight(&[CaseStatus::Running])
            .await
            .unwrap(),
        vec![case_id(1)]
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn golden_format_v6_loads_and_is_migrated() {
    let (store, _dir) = load_golden(6).await;
    assert_v4(&store).await;
    assert_eq!(
        store
            .case_ids_in_flight(&[CaseStatus::Running])
            .await
            .unwrap(),
        vec![case_id(1)]
    );
    // Format 6 had no snapshots: its cases load from their histories.
    assert_eq!(store.snapshot(case_id(1)).await.unwrap(), None);
}

/// The snapshot of the order case (format 7): its state after its sixth event, opaque to the
/// store.
fn golden_snapshot() -> SnapshotRecord {
    SnapshotRecord {
        seq: 6,
        format: 1,
        state: r#"{"status":"running","data":{"amount":120,"customer":"ACME"}}"#.to_owned(),
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn golden_format_v7_loads_and_is_migrated() {
    let (store, _dir) = load_golden(7).await;
    assert_v4(&store).await;
    assert_eq!(
        store.snapshot(case_id(1)).await.unwrap(),
        Some(golden_snapshot())
    );
    assert_eq!(store.snapshot(case_id(2)).await.unwrap(), None);
    // The migration to format 8 indexes the last groups of the ids already stored.
    let last = case_id(1).to_string()[24..].to_owned();
    assert_eq!(
        store.case_ids_by_prefix(&last, 10).await.unwrap(),
        vec![case_id(1)]
    );
}

/// When the golden node started, its lease's end, and the end of its claim of the timer.
const GOLDEN_NODE_START: i64 = 1_700_000_000_300;
const GOLDEN_LEASE: i64 = 1_700_003_700_000;
const GOLDEN_CLAIM: i64 = 1_700_003_610_000;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn golden_format_v8_loads_and_is_migrated() {
    let (store, _dir) = load_golden(8).await;
    assert_v4(&store).await;
    assert_eq!(
        store.snapshot(case_id(1)).await.unwrap(),
        Some(golden_snapshot())
    );
    // Format 8 names a case by the start of its last group, through its index.
    let last = case_id(1).to_string()[24..].to_owned();
    assert_eq!(
        store.case_ids_by_prefix(&last, 10).await.unwrap(),
        vec![case_id(1)]
    );
    // The migration to format 10 adds no node; the stored cases have no owner and the timers
    // no claim, so a node starting up claims the case and fires the timer when due.
    assert_eq!(store.nodes().await.unwrap(), vec![]);
    assert_eq!(store.case(case_id(1)).await.unwrap().unwrap().owner, None);
    let fence = store
        .register_node("n", Timestamp(0), Timestamp(i64::MAX))
        .await
        .unwrap();
    assert_eq!(
        store
            .claim_due_timers(fence, Timestamp(1_700_003_600_000), Timestamp(i64::MAX), 10)
            .await
            .unwrap(),
        vec![timer(1, case_id(1), 1_700_003_600_000)]
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn golden_format_v9_loads_and_is_migrated() {
    let (store, _dir) = load_golden(9).await;
    assert_v4(&store).await;
    // Format 9 lists the work items in one state through its index.
    let offered = store
        .work_items(&WorkItemFilter {
            state: Some("offered".to_owned()),
            ..WorkItemFilter::default()
        })
        .await
        .unwrap();
    assert_eq!(
        offered.iter().map(|w| w.id).collect::<Vec<_>>(),
        vec![item_id(1)]
    );
    let started = store
        .work_items(&WorkItemFilter {
            state: Some("started".to_owned()),
            ..WorkItemFilter::default()
        })
        .await
        .unwrap();
    assert_eq!(started, vec![]);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn golden_format_v10_loads_and_is_migrated() {
    let (store, _dir) = load_golden(10).await;
    assert_v4(&store).await;
    assert_v10(&store).await;
    // Format 10 had no lockchain: the stored events have no leaf, the tree starts empty and
    // takes the leaves of the next steps.
    assert_eq!(store.event_leaf(case_id(1), 1).await.unwrap(), None);
    assert_eq!(store.event_leaf(case_id(1), 7).await.unwrap(), None);
    assert_eq!(store.lockchain_head().await.unwrap().size, 0);
    assert_eq!(store.latest_checkpoint().await.unwrap(), None);
    let order = store.case(case_id(1)).await.unwrap().unwrap();
    let step = with_leaves(next_step(
        &order,
        vec![EventKind::TaskEnabled {
            task: task("approve"),
        }],
    ));
    store.commit(step).await.unwrap();
    assert_tree(&store, &[(case_id(1), 8)]).await;
}

/// The checkpoint of the golden store (format 11).
fn golden_checkpoint() -> knhk_store::CheckpointRecord {
    knhk_store::CheckpointRecord {
        size: 9,
        root: golden_root(),
        note: "knhk.example/golden\n9\nroot\n\n— golden sig\n".to_owned(),
        at: Timestamp(1_700_000_000_500),
    }
}

/// The root of the golden store's tree: the leaves of the order's six events, then the
/// cancelled case's three.
fn golden_root() -> knhk_lockchain::Hash {
    let leaves: Vec<_> = (1..=6)
        .map(|seq| leaf_of(case_id(1), seq))
        .chain((1..=3).map(|seq| leaf_of(case_id(2), seq)))
        .collect();
    knhk_lockchain::merkle::root_of(&leaves)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn golden_format_v11_loads_and_is_migrated() {
    let (store, _dir) = load_golden(11).await;
    assert_v11(&store).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn golden_format_v12_loads() {
    if std::env::var("KNHK_WRITE_GOLDEN").as_deref() == Ok("1") {
        write_golden(&golden_path(FORMAT_VERSION)).await;
    }
    // Format 12 keeps each tile as its segments: the golden commits wrote tile 0/0 in two,
    // the order's six leaves and the cancelled case's three.
    let sql = std::fs::read_to_string(golden_path(12)).unwrap();
    let conn = Connection::open_in_memory().unwrap();
    conn.execute_batch(&sql).unwrap();
    let segments: Vec<(i64, i64)> = conn
        .prepare("SELECT at, length(hashes) FROM lockchain_tiles ORDER BY at")
        .unwrap()
        .query_map([], |r| Ok((r.get(0)?, r.get(1)?)))
        .unwrap()
        .collect::<Result<_, _>>()
        .unwrap();
    let leaf = 7 << 56;
    assert_eq!(segments, vec![(leaf, 6 * 32), (leaf + 6, 3 * 32)]);
    let (store, _dir) = load_golden(12).await;
    assert_v11(&store).await;
}

/// Checks what format 11 added: the tree of the golden commits' nine leaves, and its
/// checkpoint; the step `load_golden` committed without leaves has none, the next with leaves
/// goes on from 9.
async fn assert_v11(store: &SqliteStore) {
    assert_v4(store).await;
    assert_v10(store).await;
    let mut events: Vec<_> = (1..=6).map(|seq| (case_id(1), seq)).collect();
    events.extend((1..=3).map(|seq| (case_id(2), seq)));
    let head = assert_tree(store, &events).await;
    assert_eq!(head.root, golden_root());
    assert_eq!(store.event_leaf(case_id(2), 3).await.unwrap(), Some(8));
    assert_eq!(store.event_leaf(case_id(1), 7).await.unwrap(), None);
    assert_eq!(
        store.latest_checkpoint().await.unwrap(),
        Some(golden_checkpoint())
    );
    let order = store.case(case_id(1)).await.unwrap().unwrap();
    let step = with_leaves(next_step(
        &order,
        vec![EventKind::TaskEnabled {
            task: task("approve"),
        }],
    ));
    store.commit(step).await.unwrap();
    events.push((case_id(1), 8));
    assert_tree(store, &events).await;
}

/// Checks what format 10 added: the golden node and its claim of the timer.
async fn assert_v10(store: &SqliteStore) {
    // Format 10: the node with its lease, and its claim of the due timer, which holds until
    // it ends and then lets another node claim the timer.
    let nodes = store.nodes().await.unwrap();
    assert_eq!(
        nodes,
        vec![knhk_store::NodeRecord {
            fence: 1,
            name: "golden-host/42".to_owned(),
            started_at: Timestamp(GOLDEN_NODE_START),
            expires_at: Timestamp(GOLDEN_LEASE),
        }]
    );
    let other = store
        .register_node("other", Timestamp(GOLDEN_NODE_START), Timestamp(i64::MAX))
        .await
        .unwrap();
    assert!(other > 1, "a new token is above every stored one");
    let claim = |now: i64| store.claim_due_timers(other, Timestamp(now), Timestamp(now + 1), 10);
    assert_eq!(claim(GOLDEN_CLAIM - 1).await.unwrap(), vec![]);
    assert_eq!(
        claim(GOLDEN_CLAIM).await.unwrap(),
        vec![timer(1, case_id(1), 1_700_003_600_000)]
    );
}

/// Checks what format 4 added: the quarantine, with the sequences of format 2.
async fn assert_v4(store: &SqliteStore) {
    assert_eq!(
        store.next_in_sequence("round_robin/clerk").await.unwrap(),
        3
    );
    assert_eq!(
        store.quarantined().await.unwrap(),
        vec![golden_quarantine()]
    );
    assert_eq!(
        store.quarantine_of(case_id(2)).await.unwrap(),
        Some(golden_quarantine())
    );
    assert_eq!(store.quarantine_of(case_id(1)).await.unwrap(), None);
}

/// A store of format 2 whose workflows were numbered per display name: opening it gives each
/// the URI its specification names and numbers versions per URI, in registration order.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn format_v2_workflows_get_their_uris_and_are_numbered_per_uri() {
    let sql = std::fs::read_to_string(golden_path(2)).unwrap();
    let dir = tempfile::tempdir().unwrap();
    let db = dir.path().join("store.db");
    let conn = Connection::open(&db).unwrap();
    conn.execute_batch(&sql).unwrap();
    // (id, name, version as numbered per name, spec, registered_at)
    let old = [
        ("f101", "Order", 1, r#"{"id":"urn:shop:order"}"#, 10),
        (
            "f102",
            "Order (renamed)",
            1,
            r#"{"id":"urn:shop:order"}"#,
            20,
        ),
        ("f103", "Order", 2, r#"{"id":"urn:other:order"}"#, 30),
        ("f104", "Order", 3, r#"{"id":"urn:shop:order"}"#, 40),
        ("f105", "anonymous", 1, "{}", 50),
    ];
    for (id, name, version, spec, at) in old {
        conn.execute(
            "INSERT INTO workflows (id, name, version, format, source, spec, registered_at)
             VALUES (?1, ?2, ?3, 'turtle', '', ?4, ?5)",
            rusqlite::params![
                format!("00000000-0000-0000-0000-00000000{id}"),
                name,
                version,
                spec,
                at
            ],
        )
        .unwrap();
    }
    drop(conn);
    let store = SqliteStore::open(&db, SqliteOptions::default())
        .await
        .unwrap();
    let mut found: Vec<(String, String, u32)> = store
        .workflows()
        .await
        .unwrap()
        .into_iter()
        .map(|w| (w.uri, w.name, w.version))
        .collect();
    found.sort();
    let expected = [
        ("urn:knhk:workflow:anonymous", "anonymous", 1),
        ("urn:knhk:workflow:order", "order", 1),
        ("urn:other:order", "Order", 1),
        ("urn:shop:order", "Order", 1),
        ("urn:shop:order", "Order", 3),
        ("urn:shop:order", "Order (renamed)", 2),
    ]
    .map(|(u, n, v)| (u.to_owned(), n.to_owned(), v));
    assert_eq!(found, expected);
}

/// Loads the golden dump of `format` into a fresh file, opens it with this version's store,
/// and checks every record of the golden store; returns the store, now at the current format,
/// with the directory that holds its file.
async fn load_golden(format: i64) -> (SqliteStore, tempfile::TempDir) {
    let sql = std::fs::read_to_string(golden_path(format)).unwrap();
    assert!(
        sql.contains(&format!("PRAGMA user_version = {format};")),
        "not a format {format} dump"
    );

    let dir = tempfile::tempdir().unwrap();
    let db = dir.path().join("store.db");
    Connection::open(&db).unwrap().execute_batch(&sql).unwrap();
    let store = SqliteStore::open(&db, SqliteOptions::default())
        .await
        .unwrap();

    assert_eq!(
        store.workflows().await.unwrap(),
        vec![workflow(1, "order", 1)]
    );
    let commits = golden_commits();
    let cases: Vec<CaseRecord> = commits.iter().map(|c| c.case.clone()).collect();
    assert_eq!(store.cases(&CaseFilter::default()).await.unwrap(), cases);
    for c in &commits {
        assert_eq!(store.case(c.case.id).await.unwrap().as_ref(), Some(&c.case));
        assert_eq!(store.events(c.case.id, 0).await.unwrap(), c.events);
    }
    // A few values spelled out, so a fixture change cannot silently agree with itself.
    let order = store.case(case_id(1)).await.unwrap().unwrap();
    assert_eq!(order.version, 6);
    assert_eq!(order.status, CaseStatus::Running);
    assert_eq!(order.data["label"], json!("case 1"));
    let events = store.events(case_id(1), 4).await.unwrap();
    assert_eq!(
        events[1].kind,
        EventKind::TimerArmed {
            timer: timer_id(1),
            task: TaskRef {
                net_instance: 0,
                task: "approve".into(),
            },
            fires_at: Timestamp(1_700_003_600_000),
        }
    );
    assert_eq!(events[1].seq, 6);

    let items = store
        .work_items(&WorkItemFilter {
            role: Some("finance".to_owned()),
            ..WorkItemFilter::default()
        })
        .await
        .unwrap();
    assert_eq!(
        items,
        vec![work_item(
            1,
            case_id(1),
            &["manager", "finance"],
            None,
            1_700_000_000_150
        )]
    );
    assert_eq!(
        store.timers().await.unwrap(),
        vec![timer(1, case_id(1), 1_700_003_600_000)]
    );
    assert_eq!(
        store.idempotency("create-order-1").await.unwrap(),
        Some(idempotency("create-order-1", 1_700_000_000_100))
    );

    // The loaded store takes new steps.
    let step = next_step(
        &order,
        vec![EventKind::TaskCancelled {
            task: task("approve"),
        }],
    );
    store.commit(step).await.unwrap();
    assert_eq!(store.events(case_id(1), 0).await.unwrap().len(), 7);
    let version: i64 = Connection::open(&db)
        .unwrap()
        .query_row("PRAGMA user_version", [], |r| r.get(0))
        .unwrap();
    assert_eq!(
        version, FORMAT_VERSION,
        "opening migrates to the current format"
    );
    (store, dir)
}
