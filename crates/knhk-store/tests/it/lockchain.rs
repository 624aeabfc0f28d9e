//! The lockchain where the backends differ: a tree that outlives the process, a store opened
//! for reading only, several writers (processes on one SQLite file, nodes on one PostgreSQL
//! schema) appending to one tree, a schema migrated from before the lockchain, and tiles kept
//! as the segments appended to them.

use std::sync::Arc;

use knhk_core::{CaseStatus, EventKind, Timestamp};
use knhk_store::{CheckpointRecord, SqliteOptions, SqliteStore, Store};

use crate::conformance::lockchain::{assert_tree, commit_with_leaves, with_leaves};
use crate::fixtures::*;
use crate::postgres::{Schema, open};

/// Commits through two stores on one tree at once, then through each after the other's
/// appends: the tree holds every leaf once, in one order both stores agree on.
async fn two_writers_share_one_tree(a: Arc<dyn Store>, b: Arc<dyn Store>) {
    let (from_a, from_b) = tokio::join!(
        commit_with_leaves(&a, 1, 16, 10),
        commit_with_leaves(&b, 101, 16, 10)
    );
    let mut events = from_a;
    events.extend(from_b);
    let head = assert_tree(a.as_ref(), &events).await;
    assert_eq!(head.size, 2 * 16 * 12);
    assert_eq!(b.lockchain_head().await.unwrap(), head);
    // Each writer's cached edge is behind the other's appends now: it must go on from the
    // stored tree, not from what it last wrote.
    for round in 0..3u128 {
        events.extend(commit_with_leaves(&a, 200 + round, 1, 2).await);
        events.extend(commit_with_leaves(&b, 300 + round, 1, 2).await);
    }
    assert_tree(b.as_ref(), &events).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn sqlite_two_stores_on_one_file_share_one_tree() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("store.db");
    let a = SqliteStore::open(&path, SqliteOptions::default())
        .await
        .unwrap();
    let b = SqliteStore::open(&path, SqliteOptions::default())
        .await
        .unwrap();
    two_writers_share_one_tree(Arc::new(a), Arc::new(b)).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn postgres_two_nodes_on_one_schema_share_one_tree() {
    let schema = Schema::fresh();
    let a = open(&schema).await;
    let b = open(&schema).await;
    two_writers_share_one_tree(Arc::new(a), Arc::new(b)).await;
}

/// Commits, closes the store, opens it again with `reopen` and commits more: the tree goes
/// on from where it stood.
async fn the_tree_goes_on_after_a_restart<F, Fut>(first: Arc<dyn Store>, reopen: F)
where
    F: FnOnce() -> Fut,
    Fut: std::future::Future<Output = Arc<dyn Store>>,
{
    let mut events = commit_with_leaves(&first, 1, 4, 70).await;
    let before = assert_tree(first.as_ref(), &events).await;
    drop(first);
    let again = reopen().await;
    assert_eq!(again.lockchain_head().await.unwrap(), before);
    events.extend(commit_with_leaves(&again, 10, 3, 5).await);
    let after = assert_tree(again.as_ref(), &events).await;
    assert_eq!(after.size, before.size + 3 * 7);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn sqlite_tree_goes_on_after_a_restart() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("store.db");
    let store = SqliteStore::open(&path, SqliteOptions::default())
        .await
        .unwrap();
    the_tree_goes_on_after_a_restart(Arc::new(store), || async {
        let store = SqliteStore::open(&path, SqliteOptions::default())
            .await
            .unwrap();
        Arc::new(store) as Arc<dyn Store>
    })
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn postgres_tree_goes_on_after_a_restart() {
    let schema = Schema::fresh();
    let store = open(&schema).await;
    the_tree_goes_on_after_a_restart(Arc::new(store), || async {
        Arc::new(open(&schema).await) as Arc<dyn Store>
    })
    .await;
}

fn chmod(path: &std::path::Path, mode: u32) {
    use std::os::unix::fs::PermissionsExt;
    std::fs::set_permissions(path, std::fs::Permissions::from_mode(mode)).unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_read_only_sqlite_store_serves_the_lockchain() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("store.db");
    let store: Arc<dyn Store> = Arc::new(
        SqliteStore::open(&path, SqliteOptions::default())
            .await
            .unwrap(),
    );
    let events = commit_with_leaves(&store, 1, 3, 100).await;
    let head = assert_tree(store.as_ref(), &events).await;
    let checkpoint = CheckpointRecord {
        size: head.size,
        root: head.root,
        note: "knhk\n".to_owned(),
        at: Timestamp(1),
    };
    assert!(store.put_checkpoint(&checkpoint).await.unwrap());
    drop(store);

    chmod(dir.path(), 0o555);
    let read_only = SqliteStore::open(&path, SqliteOptions::default())
        .await
        .unwrap();
    assert!(read_only.is_read_only());
    assert_eq!(assert_tree(&read_only, &events).await, head);
    assert_eq!(
        read_only.latest_checkpoint().await.unwrap(),
        Some(checkpoint.clone())
    );
    assert_eq!(
        read_only.checkpoints(0, 10).await.unwrap(),
        vec![checkpoint.clone()]
    );
    assert!(matches!(
        read_only.put_checkpoint(&checkpoint).await,
        Err(knhk_store::Error::ReadOnly { .. })
    ));
    drop(read_only);
    chmod(dir.path(), 0o755);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_postgres_schema_of_format_1_is_migrated_and_its_events_have_no_leaf() {
    let schema = Schema::fresh();
    let store = open(&schema).await;
    let old = create_case(&store, 1, workflow_id(1), CaseStatus::Running, 1).await;
    drop(store);
    // Take the schema back to format 1, as a store written before the lockchain left it.
    let (client, conn) = tokio_postgres::connect(&schema.address, tokio_postgres::NoTls)
        .await
        .unwrap();
    tokio::spawn(conn);
    client
        .batch_execute(
            "ALTER TABLE events DROP COLUMN leaf;
             DROP TABLE lockchain_head, lockchain_tiles, lockchain_checkpoints;
             UPDATE knhk_format SET version = 1;",
        )
        .await
        .unwrap();

    let store: Arc<dyn Store> = Arc::new(open(&schema).await);
    let version: i64 = client
        .query_one("SELECT version FROM knhk_format", &[])
        .await
        .unwrap()
        .get(0);
    assert_eq!(version, knhk_store::POSTGRES_FORMAT_VERSION);
    assert_eq!(store.event_leaf(old.id, 1).await.unwrap(), None);
    assert_eq!(store.lockchain_head().await.unwrap().size, 0);
    // The old case takes steps with leaves; its old event keeps none.
    let step = with_leaves(next_step(
        &old,
        vec![EventKind::TaskEnabled { task: task("a") }],
    ));
    store.commit(step).await.unwrap();
    let mut events = vec![(old.id, 2)];
    events.extend(commit_with_leaves(&store, 2, 2, 1).await);
    assert_tree(store.as_ref(), &events).await;
    assert_eq!(store.event_leaf(old.id, 1).await.unwrap(), None);
}

/// Fills the first tile but for six leaves, then, while `refuse` makes the database refuse
/// the second level-0 tile, commits a step that needs it: the whole transaction fails, and
/// the tree (stored, and as the writer holds it) is as it was. A step that fits goes on from
/// there, and once `allow`ed the second tile is written.
async fn a_failed_transaction_leaves_the_tree_as_it_was<R, A, RF, AF>(
    s: Arc<dyn Store>,
    refuse: R,
    allow: A,
) where
    R: FnOnce() -> RF,
    RF: std::future::Future<Output = ()>,
    A: FnOnce() -> AF,
    AF: std::future::Future<Output = ()>,
{
    let mut events = commit_with_leaves(&s, 1, 1, 248).await;
    let head = assert_tree(s.as_ref(), &events).await;
    assert_eq!(head.size, 250);
    let mut c = s.case(case_id(1)).await.unwrap().unwrap();
    let ten = |c: &knhk_store::CaseRecord| {
        with_leaves(next_step(
            c,
            (0..10)
                .map(|i| EventKind::TaskEnabled {
                    task: task(&format!("t{i}")),
                })
                .collect(),
        ))
    };
    refuse().await;
    let err = s.commit(ten(&c)).await.unwrap_err();
    assert!(err.to_string().contains("refused by the test"), "{err}");
    assert_eq!(s.lockchain_head().await.unwrap(), head);
    assert_eq!(s.case(c.id).await.unwrap().unwrap().version, c.version);
    assert_eq!(s.event_leaf(c.id, c.version + 1).await.unwrap(), None);

    let three = with_leaves(next_step(
        &c,
        vec![
            EventKind::TaskEnabled { task: task("a") },
            EventKind::TaskEnabled { task: task("b") },
            EventKind::TaskEnabled { task: task("c") },
        ],
    ));
    c = three.case.clone();
    s.commit(three).await.unwrap();
    events.extend((c.version - 2..=c.version).map(|seq| (c.id, seq)));
    assert_eq!(assert_tree(s.as_ref(), &events).await.size, 253);

    allow().await;
    let step = ten(&c);
    c = step.case.clone();
    s.commit(step).await.unwrap();
    events.extend((c.version - 9..=c.version).map(|seq| (c.id, seq)));
    assert_eq!(assert_tree(s.as_ref(), &events).await.size, 263);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sqlite_a_failed_transaction_leaves_the_tree_as_it_was() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("store.db");
    let store = SqliteStore::open(&path, SqliteOptions::default())
        .await
        .unwrap();
    let run = |sql: &'static str| {
        let path = path.clone();
        move || async move {
            let conn = rusqlite::Connection::open(&path).unwrap();
            conn.busy_timeout(std::time::Duration::from_secs(5))
                .unwrap();
            conn.execute_batch(sql).unwrap();
        }
    };
    a_failed_transaction_leaves_the_tree_as_it_was(
        Arc::new(store),
        run("CREATE TRIGGER refuse_tile BEFORE INSERT ON lockchain_tiles
             WHEN NEW.at >= (7 << 56) + 256 AND NEW.at < (7 << 56) + 512
             BEGIN SELECT RAISE(ABORT, 'refused by the test'); END;"),
        run("DROP TRIGGER refuse_tile;"),
    )
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn postgres_a_failed_transaction_leaves_the_tree_as_it_was() {
    let schema = Schema::fresh();
    let store = open(&schema).await;
    let run = |sql: &'static str| {
        let address = schema.address.clone();
        move || async move {
            let (client, conn) = tokio_postgres::connect(&address, tokio_postgres::NoTls)
                .await
                .unwrap();
            tokio::spawn(conn);
            client.batch_execute(sql).await.unwrap();
        }
    };
    a_failed_transaction_leaves_the_tree_as_it_was(
        Arc::new(store),
        run(
            "CREATE FUNCTION refuse_tile() RETURNS trigger LANGUAGE plpgsql AS $$
             BEGIN
               IF NEW.level = 0 AND NEW.idx = 1 THEN
                 RAISE EXCEPTION 'refused by the test';
               END IF;
               RETURN NEW;
             END $$;
             CREATE TRIGGER refuse_tile BEFORE INSERT ON lockchain_tiles
               FOR EACH ROW EXECUTE FUNCTION refuse_tile();",
        ),
        run("DROP TRIGGER refuse_tile ON lockchain_tiles;"),
    )
    .await;
}

/// Fills tiles a leaf at a time and a few hundred at a time, then returns each tile's rows as
/// `rows` reads them: `(level, idx, segments)`. A tile filled in more segments than the store
/// keeps is one row; one filled in a few keeps them; one not full keeps all of its own; and
/// every tile reads back whole.
async fn tiles_are_stored_in_segments<F, Fut>(s: Arc<dyn Store>, rows: F)
where
    F: FnOnce() -> Fut,
    Fut: std::future::Future<Output = Vec<(i64, i64, i64)>>,
{
    // Two leaves, then 299 steps of one: tile 0/0 fills in 255 segments, 0/1 holds 45.
    let mut events = commit_with_leaves(&s, 1, 1, 299).await;
    let mut c = s.case(case_id(1)).await.unwrap().unwrap();
    // Then steps of 211, 100 and 156 events: 0/1 fills in 46 segments, 0/2 in two.
    for n in [211usize, 100, 156] {
        let step = with_leaves(next_step(
            &c,
            (0..n)
                .map(|i| EventKind::TaskEnabled {
                    task: task(&format!("t{i}")),
                })
                .collect(),
        ));
        c = step.case.clone();
        s.commit(step).await.unwrap();
        events.extend((c.version + 1 - n as u64..=c.version).map(|seq| (c.id, seq)));
    }
    assert_eq!(assert_tree(s.as_ref(), &events).await.size, 768);
    assert_eq!(
        rows().await,
        vec![(0, 0, 1), (0, 1, 1), (0, 2, 2), (1, 0, 3)],
        "(level, index, rows) of each tile"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sqlite_tiles_are_stored_in_segments() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("store.db");
    let store = SqliteStore::open(&path, SqliteOptions::default())
        .await
        .unwrap();
    tiles_are_stored_in_segments(Arc::new(store), || async move {
        let conn = rusqlite::Connection::open(&path).unwrap();
        let mut st = conn
            .prepare(
                "SELECT 7 - (at >> 56), (at & 72057594037927935) >> 8, count(*)
                 FROM lockchain_tiles GROUP BY 1, 2 ORDER BY 1, 2",
            )
            .unwrap();
        st.query_map([], |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?)))
            .unwrap()
            .collect::<Result<_, _>>()
            .unwrap()
    })
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn postgres_tiles_are_stored_in_segments() {
    let schema = Schema::fresh();
    let store = open(&schema).await;
    let address = schema.address.clone();
    tiles_are_stored_in_segments(Arc::new(store), || async move {
        let (client, conn) = tokio_postgres::connect(&address, tokio_postgres::NoTls)
            .await
            .unwrap();
        tokio::spawn(conn);
        client
            .query(
                "SELECT level::bigint, idx, count(*) FROM lockchain_tiles
                 GROUP BY level, idx ORDER BY level, idx",
                &[],
            )
            .await
            .unwrap()
            .iter()
            .map(|r| (r.get(0), r.get(1), r.get(2)))
            .collect()
    })
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_postgres_schema_of_format_2_keeps_its_tiles_as_first_segments() {
    let schema = Schema::fresh();
    let store: Arc<dyn Store> = Arc::new(open(&schema).await);
    let mut events = commit_with_leaves(&store, 1, 1, 0).await;
    drop(store);
    // Take the schema back to format 2, whose tiles were one row each, naming each entry's
    // event in 24 bytes (the case's UUID, the seq).
    let (client, conn) = tokio_postgres::connect(&schema.address, tokio_postgres::NoTls)
        .await
        .unwrap();
    tokio::spawn(conn);
    let mut each = Vec::new();
    for &(case, seq) in &events {
        each.extend_from_slice(case.0.as_bytes());
        each.extend_from_slice(&seq.to_be_bytes());
    }
    client
        .execute(
            "UPDATE lockchain_tiles SET leaves = $1, runs = NULL WHERE level = 0 AND idx = 0",
            &[&each],
        )
        .await
        .unwrap();
    client
        .batch_execute(
            "ALTER TABLE lockchain_tiles DROP CONSTRAINT lockchain_tiles_pkey;
             ALTER TABLE lockchain_tiles DROP COLUMN start;
             ALTER TABLE lockchain_tiles DROP COLUMN runs;
             ALTER TABLE lockchain_tiles ADD PRIMARY KEY (level, idx);
             UPDATE knhk_format SET version = 2;",
        )
        .await
        .unwrap();

    let store: Arc<dyn Store> = Arc::new(open(&schema).await);
    let version: i64 = client
        .query_one("SELECT version FROM knhk_format", &[])
        .await
        .unwrap()
        .get(0);
    assert_eq!(version, knhk_store::POSTGRES_FORMAT_VERSION);
    assert_tree(store.as_ref(), &events).await;
    // The tile goes on after its old row.
    events.extend(commit_with_leaves(&store, 2, 3, 2).await);
    assert_tree(store.as_ref(), &events).await;
}
