//! The conformance suite run against the SQLite store, and what only SQLite has: a file that
//! outlives the process, a format version, and group commit.

use std::sync::Arc;

use knhk_core::{CaseStatus, EventKind};
use knhk_store::{
    CaseFilter, Corruption, Error, FORMAT_VERSION, SqliteOptions, SqliteStore, Store,
    WorkItemFilter,
};

use crate::conformance::conformance_tests;
use crate::fixtures::*;

async fn sqlite() -> Fixture {
    let dir = tempfile::tempdir().unwrap();
    let store = SqliteStore::open(&dir.path().join("store.db"), SqliteOptions::default())
        .await
        .unwrap();
    Fixture {
        store: Arc::new(store),
        _dir: Some(dir),
        _schema: None,
    }
}

conformance_tests!(sqlite);

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn data_survives_close_and_reopen() {
    let dir = tempfile::tempdir().unwrap();
    // Parent directories are created on open.
    let path = dir.path().join("knhk-data").join("nested").join("store.db");
    let store = SqliteStore::open(&path, SqliteOptions::default())
        .await
        .unwrap();
    let wf = workflow(1, "order", 1);
    store.put_workflow(&wf).await.unwrap();
    let mut first = first_commit(
        case(1, wf.id, CaseStatus::Running, 10),
        events_from(1, every_event_kind()),
    );
    first
        .work_items
        .push(put(work_item(1, case_id(1), &["clerk"], None, 5)));
    first.timers.push(put(timer(1, case_id(1), 500)));
    first.idempotency = Some(idempotency("create-1", 10));
    let stored = first.case.clone();
    let events = first.events.clone();
    store.commit(first).await.unwrap();
    drop(store);

    let store = SqliteStore::open(&path, SqliteOptions::default())
        .await
        .unwrap();
    assert_eq!(store.workflows().await.unwrap(), vec![wf]);
    assert_eq!(store.case(stored.id).await.unwrap(), Some(stored.clone()));
    assert_eq!(store.events(stored.id, 0).await.unwrap(), events);
    assert_eq!(
        store.work_items(&WorkItemFilter::default()).await.unwrap(),
        vec![work_item(1, case_id(1), &["clerk"], None, 5)]
    );
    assert_eq!(
        store.timers().await.unwrap(),
        vec![timer(1, case_id(1), 500)]
    );
    assert_eq!(
        store.idempotency("create-1").await.unwrap(),
        Some(idempotency("create-1", 10))
    );
    // The history continues where it stopped.
    let step = next_step(&stored, vec![EventKind::NetEnded { net_instance: 0 }]);
    store.commit(step).await.unwrap();
    assert_eq!(
        store.case(stored.id).await.unwrap().unwrap().version,
        stored.version + 1
    );
}

#[tokio::test]
async fn newer_format_is_refused() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("store.db");
    {
        let conn = rusqlite::Connection::open(&path).unwrap();
        conn.pragma_update(None, "user_version", FORMAT_VERSION + 1)
            .unwrap();
    }
    match SqliteStore::open(&path, SqliteOptions::default()).await {
        Err(Error::UnsupportedFormat { found, supported }) => {
            assert_eq!((found, supported), (FORMAT_VERSION + 1, FORMAT_VERSION));
        }
        other => panic!("expected an unsupported format, got {other:?}"),
    }
    // The file is left as it was.
    let conn = rusqlite::Connection::open(&path).unwrap();
    let version: i64 = conn
        .query_row("PRAGMA user_version", [], |r| r.get(0))
        .unwrap();
    assert_eq!(version, FORMAT_VERSION + 1);
}

#[tokio::test]
async fn foreign_database_is_refused() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("other.db");
    rusqlite::Connection::open(&path)
        .unwrap()
        .execute_batch("CREATE TABLE people (name TEXT)")
        .unwrap();
    assert!(matches!(
        SqliteStore::open(&path, SqliteOptions::default()).await,
        Err(Error::Corrupt(Corruption::Unversioned { tables: 1 }))
    ));
}

#[tokio::test]
async fn new_file_gets_the_format_version() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("store.db");
    drop(
        SqliteStore::open(&path, SqliteOptions::default())
            .await
            .unwrap(),
    );
    let conn = rusqlite::Connection::open(&path).unwrap();
    let version: i64 = conn
        .query_row("PRAGMA user_version", [], |r| r.get(0))
        .unwrap();
    assert_eq!(version, FORMAT_VERSION);
    let mode: String = conn
        .query_row("PRAGMA journal_mode", [], |r| r.get(0))
        .unwrap();
    assert_eq!(mode, "wal");
    // The default writer runs synchronous=FULL (2).
    let store = SqliteStore::open(&path, SqliteOptions::default())
        .await
        .unwrap();
    assert_eq!(store.synchronous(), Some(2));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn group_commit_batches_concurrent_commits() {
    let dir = tempfile::tempdir().unwrap();
    let store = Arc::new(
        SqliteStore::open(&dir.path().join("store.db"), SqliteOptions::default())
            .await
            .unwrap(),
    );
    let tasks: Vec<_> = (0..200u128)
        .map(|n| {
            let store = Arc::clone(&store);
            tokio::spawn(async move {
                let c = first_commit(
                    case(n, workflow_id(1), CaseStatus::Created, 1),
                    events_from(1, vec![EventKind::TaskEnabled { task: task("a") }]),
                );
                store.commit(c).await
            })
        })
        .collect();
    for t in tasks {
        t.await.unwrap().unwrap();
    }
    let stats = store.stats();
    assert_eq!(stats.commits, 200);
    assert!(stats.batches >= 1);
    assert!(
        stats.batches < stats.commits,
        "commits were not grouped: {stats:?}"
    );
    assert_eq!(
        store.cases(&CaseFilter::default()).await.unwrap().len(),
        200
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_refused_commit_does_not_fail_its_batch() {
    // With max_batch large and many writers, refused and accepted commits share transactions;
    // each gets its own outcome.
    let dir = tempfile::tempdir().unwrap();
    let store = Arc::new(
        SqliteStore::open(&dir.path().join("store.db"), SqliteOptions::default())
            .await
            .unwrap(),
    );
    let tasks: Vec<_> = (0..100u128)
        .map(|n| {
            let store = Arc::clone(&store);
            tokio::spawn(async move {
                let mut c = first_commit(
                    case(n, workflow_id(1), CaseStatus::Created, 1),
                    events_from(1, vec![EventKind::TaskEnabled { task: task("a") }]),
                );
                // Every odd commit breaks the history rule.
                if n % 2 == 1 {
                    c.events[0].seq = 2;
                }
                (n, store.commit(c).await)
            })
        })
        .collect();
    for t in tasks {
        match t.await.unwrap() {
            (n, Ok(())) => assert_eq!(n % 2, 0),
            (n, Err(Error::Gap { .. })) => assert_eq!(n % 2, 1),
            (n, other) => panic!("commit {n}: unexpected {other:?}"),
        }
    }
    let cases = store.cases(&CaseFilter::default()).await.unwrap();
    assert_eq!(cases.len(), 50);
    assert!(cases.iter().all(|c| c.id.0.as_u128() % 2 == 0));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn synchronous_normal_is_opt_in_and_works() {
    assert!(SqliteOptions::default().synchronous_full);
    let dir = tempfile::tempdir().unwrap();
    let opts = SqliteOptions {
        synchronous_full: false,
        max_batch: 1,
        readers: 1,
        max_pages: None,
        ..SqliteOptions::default()
    };
    let store = SqliteStore::open(&dir.path().join("store.db"), opts)
        .await
        .unwrap();
    // The writer connection runs NORMAL (1), not FULL (2).
    assert_eq!(store.synchronous(), Some(1));
    let c = create_case(&store, 1, workflow_id(1), CaseStatus::Running, 1).await;
    let c2 = create_case(&store, 2, workflow_id(1), CaseStatus::Running, 2).await;
    assert_eq!(store.case(c.id).await.unwrap(), Some(c));
    assert_eq!(store.case(c2.id).await.unwrap(), Some(c2));
    // max_batch 1: one transaction per commit.
    assert_eq!(store.stats().batches, 2);
}

#[tokio::test]
async fn a_directory_that_cannot_be_created_is_an_io_error_naming_it() {
    let dir = tempfile::tempdir().unwrap();
    let blocker = dir.path().join("file");
    std::fs::write(&blocker, "not a directory").unwrap();
    let err = SqliteStore::open(&blocker.join("knhk.db"), SqliteOptions::default())
        .await
        .unwrap_err();
    match &err {
        Error::Io { path, .. } => assert_eq!(path, &blocker),
        other => panic!("expected an io error, got {other:?}"),
    }
    assert!(
        err.to_string()
            .starts_with(&format!("creating {}: ", blocker.display())),
        "{err}"
    );
    assert!(std::error::Error::source(&err).is_some());
}

fn chmod(path: &std::path::Path, mode: u32) {
    use std::os::unix::fs::PermissionsExt;
    std::fs::set_permissions(path, std::fs::Permissions::from_mode(mode)).unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_store_without_write_permission_opens_for_reading_only() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("store.db");
    let store = SqliteStore::open(&path, SqliteOptions::default())
        .await
        .unwrap();
    let c = create_case(&store, 1, workflow_id(1), CaseStatus::Running, 1).await;
    assert!(!store.is_read_only());
    drop(store);
    // Closing cleanly leaves one file, no -wal or -shm, and no marker of an open store.
    let files: Vec<_> = std::fs::read_dir(dir.path()).unwrap().collect();
    assert_eq!(files.len(), 1, "{files:?}");

    chmod(dir.path(), 0o555);
    let store = SqliteStore::open(&path, SqliteOptions::default())
        .await
        .unwrap();
    assert!(store.is_read_only());
    assert_eq!(store.case(c.id).await.unwrap(), Some(c.clone()));
    assert_eq!(store.case_ids(&[]).await.unwrap(), vec![c.id]);
    let step = next_step(
        &c,
        vec![EventKind::CaseStateChanged {
            from: CaseStatus::Running,
            to: CaseStatus::Suspended,
            reason: None,
        }],
    );
    match store.commit(step).await {
        Err(Error::ReadOnly { path: p }) => assert_eq!(p, path),
        other => panic!("expected read-only, got {other:?}"),
    }
    assert!(matches!(
        store.next_in_sequence("turns").await,
        Err(Error::ReadOnly { .. })
    ));
    drop(store);
    assert_eq!(std::fs::read_dir(dir.path()).unwrap().count(), 1);
    chmod(dir.path(), 0o755);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_read_only_store_left_with_its_wal_says_so() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("store.db");
    let store = SqliteStore::open(&path, SqliteOptions::default())
        .await
        .unwrap();
    create_case(&store, 1, workflow_id(1), CaseStatus::Running, 1).await;
    // A copy taken while the store is open holds its WAL, as a crash would leave it.
    let copy = tempfile::tempdir().unwrap();
    for name in ["store.db", "store.db-wal"] {
        std::fs::copy(dir.path().join(name), copy.path().join(name)).unwrap();
    }
    drop(store);
    chmod(copy.path(), 0o555);
    let opened = SqliteStore::open(&copy.path().join("store.db"), SqliteOptions::default()).await;
    chmod(copy.path(), 0o755);
    match opened {
        Err(e @ Error::ReadOnlyUnclean { .. }) => {
            assert!(e.to_string().contains("was not closed cleanly"), "{e}")
        }
        other => panic!("expected a read-only store left unclean, got {other:?}"),
    }
}
