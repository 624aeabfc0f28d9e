//! The conformance suite run against the PostgreSQL store, each test in a fresh schema of
//! the `test` database (dropped afterwards, so that parallel tests never see each other), and
//! what only PostgreSQL has: a schema version, the schema chosen by the address, several
//! processes opening one schema at once, and group commit over a pool.
//!
//! The server is the one at `KNHK_TEST_POSTGRES_URL` (or `KNHK_TEST_POSTGRES`), by default
//! `postgres://postgres@127.0.0.1:5432/test`. When it cannot be reached the tests fail, saying
//! to run `.ci/services`: they are never skipped.

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};

use knhk_core::CaseStatus;
use knhk_store::{
    CaseFilter, Corruption, Error, POSTGRES_FORMAT_VERSION, PostgresOptions, PostgresStore, Store,
    redact_address,
};

use crate::conformance::conformance_tests;
use crate::fixtures::*;

/// The server the tests use.
pub fn server() -> String {
    std::env::var("KNHK_TEST_POSTGRES_URL")
        .or_else(|_| std::env::var("KNHK_TEST_POSTGRES"))
        .unwrap_or_else(|_| "postgres://postgres@127.0.0.1:5432/test".to_owned())
}

/// A schema of its own for one test, dropped (with everything in it) when this is dropped.
#[derive(Debug)]
pub struct Schema {
    pub name: String,
    /// The server's address with the schema as its search_path.
    pub address: String,
}

impl Schema {
    /// Names a schema no other test (of this or another process) uses; it is created by
    /// the store that opens it first.
    pub fn fresh() -> Schema {
        static NEXT: AtomicU64 = AtomicU64::new(0);
        let nanos = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map(|d| d.subsec_nanos())
            .unwrap_or(0);
        let name = format!(
            "knhk_test_{}_{}_{nanos}",
            std::process::id(),
            NEXT.fetch_add(1, Ordering::Relaxed)
        );
        let base = server();
        let join = if base.contains('?') { '&' } else { '?' };
        let address = format!("{base}{join}options=-csearch_path%3D{name}");
        Schema { name, address }
    }
}

impl Drop for Schema {
    fn drop(&mut self) {
        let name = self.name.clone();
        // Drop runs inside the test's runtime, which cannot block on a future: a thread of
        // its own connects and drops the schema.
        let dropped = std::thread::spawn(move || {
            let rt = tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()
                .ok()?;
            rt.block_on(async move {
                let (client, conn) = tokio_postgres::connect(&server(), tokio_postgres::NoTls)
                    .await
                    .ok()?;
                tokio::spawn(conn);
                client
                    .batch_execute(&format!("DROP SCHEMA IF EXISTS \"{name}\" CASCADE"))
                    .await
                    .ok()
            })
        })
        .join();
        if !matches!(dropped, Ok(Some(()))) {
            eprintln!("could not drop the test schema {}", self.name);
        }
    }
}

/// Opens a store in `schema`, failing the test with what to do when the server is not there.
pub async fn open(schema: &Schema) -> PostgresStore {
    PostgresStore::open(&schema.address, PostgresOptions::default())
        .await
        .unwrap_or_else(|e| {
            panic!(
                "PostgreSQL at {} cannot be used ({e}): run .ci/services to start it, or set \
                 KNHK_TEST_POSTGRES_URL",
                redact_address(&server())
            )
        })
}

async fn postgres() -> Fixture {
    let schema = Schema::fresh();
    let store = open(&schema).await;
    Fixture {
        store: Arc::new(store),
        _dir: None,
        _schema: Some(schema),
    }
}

conformance_tests!(postgres);

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn data_survives_close_and_reopen_in_the_schema_the_address_names() {
    let schema = Schema::fresh();
    let store = open(&schema).await;
    assert_eq!(store.schema(), schema.name);
    let wf = workflow(1, "order", 1);
    store.put_workflow(&wf).await.unwrap();
    let c = first_commit(
        case(1, wf.id, CaseStatus::Running, 10),
        events_from(1, every_event_kind()),
    );
    let stored = c.case.clone();
    store.commit(c).await.unwrap();
    drop(store);

    let store = open(&schema).await;
    assert_eq!(store.workflows().await.unwrap(), vec![wf]);
    assert_eq!(store.case(stored.id).await.unwrap(), Some(stored));

    // Another schema of the same database is another store.
    let other = Schema::fresh();
    let elsewhere = open(&other).await;
    assert_eq!(elsewhere.workflows().await.unwrap(), vec![]);
    assert_eq!(
        elsewhere.cases(&CaseFilter::default()).await.unwrap(),
        vec![]
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_newer_schema_version_is_refused() {
    let schema = Schema::fresh();
    let store = open(&schema).await;
    drop(store);
    let (client, conn) = tokio_postgres::connect(&schema.address, tokio_postgres::NoTls)
        .await
        .unwrap();
    tokio::spawn(conn);
    client
        .batch_execute("UPDATE knhk_format SET version = 99")
        .await
        .unwrap();
    match PostgresStore::open(&schema.address, PostgresOptions::default()).await {
        Err(e @ Error::UnsupportedFormat { found: 99, .. }) => assert_eq!(
            e.to_string(),
            format!("store format 99 is newer than the supported format {POSTGRES_FORMAT_VERSION}")
        ),
        other => panic!("expected a refusal, got {other:?}"),
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_schema_of_other_tables_is_not_taken_for_a_store() {
    let schema = Schema::fresh();
    let (client, conn) = tokio_postgres::connect(&server(), tokio_postgres::NoTls)
        .await
        .unwrap();
    tokio::spawn(conn);
    client
        .batch_execute(&format!(
            "CREATE SCHEMA \"{0}\"; CREATE TABLE \"{0}\".orders (id int)",
            schema.name
        ))
        .await
        .unwrap();
    match PostgresStore::open(&schema.address, PostgresOptions::default()).await {
        Err(Error::Corrupt(Corruption::UnversionedSchema { tables: 1, .. })) => {}
        other => panic!("expected a refusal, got {other:?}"),
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn processes_opening_a_new_schema_at_once_create_it_once() {
    let schema = Schema::fresh();
    let opened = futures_util::future::join_all((0..6).map(|_| {
        let address = schema.address.clone();
        async move { PostgresStore::open(&address, PostgresOptions::default()).await }
    }))
    .await;
    let stores: Vec<PostgresStore> = opened.into_iter().map(|s| s.unwrap()).collect();
    // Each sees what another writes: one set of tables.
    let wf = workflow(1, "order", 1);
    stores[0].put_workflow(&wf).await.unwrap();
    for s in &stores {
        assert_eq!(s.workflow(wf.id).await.unwrap(), Some(wf.clone()));
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn concurrent_commits_share_transactions_and_round_trips() {
    let schema = Schema::fresh();
    let store = open(&schema).await;
    let commits = (0..128u128).map(|n| {
        let store = store.clone();
        async move {
            let c = first_commit(
                case(n, workflow_id(1), CaseStatus::Running, 10),
                events_from(1, every_event_kind()),
            );
            store.commit(c).await
        }
    });
    for result in futures_util::future::join_all(commits).await {
        result.unwrap();
    }
    let stats = store.stats();
    assert_eq!(stats.commits, 128);
    assert!(
        stats.batches < 128,
        "128 concurrent commits took {} transactions",
        stats.batches
    );
    assert!(stats.round_trips <= 2 * stats.batches, "{stats:?}");
}

#[tokio::test]
async fn addresses_are_shown_without_their_password() {
    assert_eq!(
        redact_address("postgres://ann:s3cret@db.example:5432/knhk?options=-csearch_path%3Dt1"),
        "postgres://ann:***@db.example:5432/knhk?options=-csearch_path%3Dt1"
    );
    assert_eq!(
        redact_address("postgresql://ann@db/knhk?password=s3cret&sslmode=disable"),
        "postgresql://ann@db/knhk?password=***&sslmode=disable"
    );
    assert_eq!(
        redact_address("host=db user=ann password=s3cret dbname=knhk"),
        "host=db user=ann password=*** dbname=knhk"
    );
    assert_eq!(
        redact_address("postgres://postgres@127.0.0.1:5432/test"),
        "postgres://postgres@127.0.0.1:5432/test"
    );
    match PostgresStore::open(
        "postgres://ann:s3cret@[bad/knhk",
        PostgresOptions::default(),
    )
    .await
    {
        Err(e @ Error::Address(_)) => {
            let text = e.to_string();
            assert!(!text.contains("s3cret"), "{text}");
            assert!(text.contains("not valid"), "{text}");
        }
        other => panic!("expected a refused address, got {other:?}"),
    }
}

#[tokio::test]
async fn an_unreachable_server_is_a_clear_error() {
    // A port nothing listens on: bound, then closed.
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let address = format!("postgres://ann:s3cret@127.0.0.1:{port}/test");
    match PostgresStore::open(&address, PostgresOptions::default()).await {
        Err(e @ (Error::Postgres { .. } | Error::Pool { .. })) => {
            let text = e.to_string();
            assert!(text.starts_with("PostgreSQL store, connecting"), "{text}");
            assert!(!text.contains("s3cret"), "{text}");
        }
        other => panic!("expected a connection error, got {other:?}"),
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_refused_commit_in_a_group_fails_alone_with_its_own_error() {
    let schema = Schema::fresh();
    let store = open(&schema).await;
    let mut cases = Vec::new();
    for n in 0..32u128 {
        cases.push(create_case(&store, n, workflow_id(1), CaseStatus::Running, 10).await);
    }
    // A key already taken, by a step without events (the version stays).
    let mut taking = next_step(&cases[0], vec![]);
    taking.idempotency = Some(idempotency("taken", 10));
    store.commit(taking).await.unwrap();
    // For every case a good step (with a key of its own), a stale one (a node that read an
    // older version); for eight other cases a step carrying the taken key.
    let kind = || knhk_core::EventKind::NetEnded { net_instance: 0 };
    let mut steps = Vec::new();
    for (i, c) in cases.iter().enumerate() {
        let mut good = next_step(c, vec![kind()]);
        good.idempotency = Some(idempotency(&format!("key-{i}"), 10));
        steps.push(("good", i, good));
        // Consistent in itself (its events continue version 0), so that only the stored
        // version refuses it, inside the group.
        let mut stale = next_step(c, vec![kind()]);
        stale.expected_version = Some(0);
        stale.events[0].seq = 1;
        stale.case.version = 1;
        steps.push(("stale", i, stale));
    }
    for n in 100..108u128 {
        let c = create_case(&store, n, workflow_id(1), CaseStatus::Running, 10).await;
        let mut duplicate = next_step(&c, vec![kind()]);
        duplicate.idempotency = Some(idempotency("taken", 10));
        steps.push(("duplicate", n as usize, duplicate));
    }
    let outcomes = futures_util::future::join_all(steps.into_iter().map(|(what, i, step)| {
        let store = store.clone();
        async move { (what, i, store.commit(step).await) }
    }))
    .await;
    for (what, i, outcome) in outcomes {
        match (what, &outcome) {
            ("good", Ok(())) => {}
            (
                "stale",
                Err(Error::Conflict {
                    expected, actual, ..
                }),
            ) => {
                assert_eq!(*expected, Some(0), "case {i}");
                assert!(actual.is_some_and(|v| v >= 1), "case {i}: {outcome:?}");
            }
            ("duplicate", Err(Error::DuplicateKey(key))) => {
                assert_eq!(key, "taken");
                let stored = store.case(case_id(i as u128)).await.unwrap().unwrap();
                assert_eq!(stored.version, 1, "case {i}: nothing of the refused step");
            }
            other => panic!("case {i}: {other:?}"),
        }
    }
    for (i, c) in cases.iter().enumerate() {
        let stored = store.case(c.id).await.unwrap().unwrap();
        assert_eq!(stored.version, c.version + 1, "case {i}");
        assert_eq!(
            store.events(c.id, 0).await.unwrap().len() as u64,
            c.version + 1,
            "case {i}"
        );
        assert!(
            store
                .idempotency(&format!("key-{i}"))
                .await
                .unwrap()
                .is_some(),
            "case {i}"
        );
    }
}
