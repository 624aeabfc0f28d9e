//! Cases on a SQLite file: history, state changes, reopening, concurrent writers.

use knhk_core::{CaseStatus, EventKind};
use serde_json::json;

use crate::support::*;

fn sequence() -> String {
    turtle(
        "Sequence",
        &[("a", "", &["b"]), ("b", "", &["c"]), ("c", "", &["end"])],
    )
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_case_runs_to_its_end_and_its_history_is_stored_in_order() {
    let dir = tempfile::tempdir().unwrap();
    let engine = engine_on(sqlite(&dir.path().join("knhk.db")).await);
    let wf = engine
        .register_workflow(
            "seq.ttl",
            knhk_workflow_engine::SourceFormat::Turtle,
            &sequence(),
        )
        .await
        .unwrap()
        .workflow;
    assert_eq!((wf.name.as_str(), wf.version), ("Sequence", 1));
    let case = engine
        .create_case(wf.id, json!({"x": 1}), false)
        .await
        .unwrap();
    assert_eq!(case.status, CaseStatus::Created);
    let case = engine.execute(case.id).await.unwrap();
    assert_eq!(case.status, CaseStatus::Completed);
    let history = engine.history(case.id).await.unwrap();
    for (i, e) in history.iter().enumerate() {
        assert_eq!(e.seq, i as u64 + 1);
    }
    let changes: Vec<_> = history
        .iter()
        .filter_map(|e| match e.kind {
            EventKind::CaseStateChanged { from, to, .. } => Some((from, to)),
            _ => None,
        })
        .collect();
    assert_eq!(
        changes,
        [
            (CaseStatus::Created, CaseStatus::Running),
            (CaseStatus::Running, CaseStatus::Completed)
        ]
    );
    let done: Vec<_> = history
        .iter()
        .filter(|e| matches!(e.kind, EventKind::TaskCompleted { .. }))
        .map(|e| e.kind.task().unwrap().task.to_string())
        .collect();
    assert_eq!(done, ["a", "b", "c"]);
    // The same definition again is the version already stored; a changed one of the same
    // specification URI is the next version.
    let again = engine
        .register_workflow(
            "seq.ttl",
            knhk_workflow_engine::SourceFormat::Turtle,
            &sequence(),
        )
        .await
        .unwrap();
    assert!(again.already_registered);
    assert_eq!(again.workflow.id, wf.id);
    let changed = engine
        .register_workflow(
            "seq.ttl",
            knhk_workflow_engine::SourceFormat::Turtle,
            &sequence().replace("\"Sequence\"", "\"Sequence, renamed\""),
        )
        .await
        .unwrap();
    assert!(!changed.already_registered);
    assert_eq!(
        (changed.workflow.uri.as_str(), changed.workflow.version),
        (wf.uri.as_str(), 2)
    );
    assert_eq!(engine.workflows().await.unwrap().len(), 2);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn another_engine_on_the_same_file_sees_and_continues_the_case() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("knhk.db");
    let wf_text = turtle("Review", &[("review", "knhk:role \"clerk\" ;", &["end"])]);
    let first = engine_on(sqlite(&path).await);
    let wf = first
        .register_workflow(
            "review.ttl",
            knhk_workflow_engine::SourceFormat::Turtle,
            &wf_text,
        )
        .await
        .unwrap()
        .workflow;
    let case = first.create_case(wf.id, json!({}), true).await.unwrap();
    assert_eq!(case.status, CaseStatus::Running);
    // A second process on the same file (the CLI does this between commands).
    let second = engine_on(sqlite(&path).await);
    let items = second
        .work_items(&knhk_workflow_engine::WorkItemQuery {
            role: Some("clerk".into()),
            case: None,
            owner: None,
            ..Default::default()
        })
        .await
        .unwrap();
    assert_eq!(items.len(), 1);
    second
        .complete_work_item(items[0].id, "ann", json!({"ok": true}))
        .await
        .unwrap();
    // The first engine still caches the case at its old version: its next step conflicts,
    // reloads and then sees the case has ended.
    let err = first.cancel(case.id, "late").await.unwrap_err();
    assert!(err.to_string().contains("case is completed"), "{err}");
    assert_eq!(first.case(case.id).await.unwrap().data["ok"], true);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bad_input_is_refused_and_changes_nothing() {
    let engine = memory_engine();
    let err = engine
        .register_workflow(
            "broken.ttl",
            knhk_workflow_engine::SourceFormat::Turtle,
            "@prefix yawl: <http://www.yawlfoundation.org/yawlschema#> .\n<#a> a yawl:Task ;",
        )
        .await
        .unwrap_err();
    assert!(err.to_string().contains("broken.ttl"), "{err}");
    assert!(engine.workflows().await.unwrap().is_empty());
    let wf = engine
        .register_workflow(
            "seq.ttl",
            knhk_workflow_engine::SourceFormat::Turtle,
            &sequence(),
        )
        .await
        .unwrap()
        .workflow;
    let err = engine
        .create_case(wf.id, json!([1]), true)
        .await
        .unwrap_err();
    assert_eq!(err.to_string(), "case data must be a JSON object");
    let unknown = knhk_core::CaseId(uuid::Uuid::from_u128(9));
    let err = engine.execute(unknown).await.unwrap_err();
    assert_eq!(err.to_string(), format!("unknown case {unknown}"));
    let case = engine.create_case(wf.id, json!({}), true).await.unwrap();
    let before = engine.history(case.id).await.unwrap();
    let err = engine.suspend(case.id).await.unwrap_err();
    assert!(err.to_string().contains("case is completed"), "{err}");
    assert_eq!(engine.history(case.id).await.unwrap(), before);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn inputs_refused_by_an_ended_case_leave_nothing_cached() {
    let engine = memory_engine();
    let wf = engine
        .register_workflow(
            "seq.ttl",
            knhk_workflow_engine::SourceFormat::Turtle,
            &sequence(),
        )
        .await
        .unwrap()
        .workflow;
    let case = engine.create_case(wf.id, json!({}), true).await.unwrap();
    assert_eq!(case.status, CaseStatus::Completed);
    for _ in 0..3 {
        assert!(engine.cancel(case.id, "late").await.is_err());
    }
    assert_eq!(engine.cached_cases(), 0);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_running_case_stays_in_memory_and_unknown_or_ended_ones_do_not() {
    let engine = memory_engine();
    let wf = engine
        .register_workflow(
            "approve.ttl",
            knhk_workflow_engine::SourceFormat::Turtle,
            &turtle(
                "Approve",
                &[("approve", "knhk:role \"clerk\" ;", &["end"] as &[&str])],
            ),
        )
        .await
        .unwrap()
        .workflow;
    let unknown = knhk_core::CaseId(uuid::Uuid::from_u128(7));
    assert!(engine.suspend(unknown).await.is_err());
    assert_eq!(engine.cached_cases(), 0, "no entry for an unknown case");

    let case = engine.create_case(wf.id, json!({}), true).await.unwrap();
    assert_eq!(case.status, CaseStatus::Running);
    assert_eq!(engine.cached_cases(), 1, "the running case is kept");
    // Many steps waiting on one case's lock at once: every one is taken in turn.
    let steps: Vec<_> = (0..16)
        .map(|i| {
            let engine = engine.clone();
            tokio::spawn(async move {
                if i % 2 == 0 {
                    engine.suspend(case.id).await
                } else {
                    engine.resume(case.id).await
                }
            })
        })
        .collect();
    for step in steps {
        let _ = step.await.unwrap();
    }
    assert_eq!(engine.cached_cases(), 1);
    let cancelled = engine.cancel(case.id, "done").await.unwrap();
    assert_eq!(cancelled.status, CaseStatus::Cancelled);
    assert_eq!(engine.cached_cases(), 0, "an ended case is dropped");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn recovery_leaves_cases_that_wait_for_people_in_the_store_not_in_memory() {
    let store: std::sync::Arc<dyn knhk_store::Store> =
        std::sync::Arc::new(knhk_store::MemoryStore::default());
    let first = crate::support::engine_on(std::sync::Arc::clone(&store));
    let wf = first
        .register_workflow(
            "approve.ttl",
            knhk_workflow_engine::SourceFormat::Turtle,
            &turtle(
                "Approve",
                &[("approve", "knhk:role \"clerk\" ;", &["end"] as &[&str])],
            ),
        )
        .await
        .unwrap()
        .workflow;
    let mut cases = Vec::new();
    for _ in 0..5 {
        cases.push(first.create_case(wf.id, json!({}), true).await.unwrap().id);
    }
    first.shutdown().await;
    drop(first);

    let second = crate::support::engine_on(store);
    let started = second.start().await.unwrap();
    assert_eq!(
        started.recovered_cases, 0,
        "cases that wait for people have no work in flight to take up"
    );
    assert_eq!(
        second.cached_cases(),
        0,
        "waiting cases are loaded when an input comes, not at start"
    );
    // An input loads its case from the store as any other.
    let suspended = second.suspend(cases[0]).await.unwrap();
    assert_eq!(suspended.status, CaseStatus::Suspended);
    assert_eq!(second.cached_cases(), 1);
    second.shutdown().await;
}

/// A row that says its case has work in flight when it has none (as every row migrated from
/// before format 6 says) is put right by the first recovery, so the second reads nothing.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn recovery_settles_once_a_case_marked_in_flight_that_has_nothing_in_flight() {
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("knhk.db");
    let store = crate::support::sqlite(&file).await;
    let first = crate::support::engine_on(std::sync::Arc::clone(&store));
    let wf = first
        .register_workflow(
            "approve.ttl",
            knhk_workflow_engine::SourceFormat::Turtle,
            &turtle(
                "Approve",
                &[("approve", "knhk:role \"clerk\" ;", &["end"] as &[&str])],
            ),
        )
        .await
        .unwrap()
        .workflow;
    let waiting = first.create_case(wf.id, json!({}), true).await.unwrap();
    let other = first.create_case(wf.id, json!({}), true).await.unwrap();
    first.shutdown().await;
    drop(first);
    // As a migration from format 5 leaves them: every running case marked.
    let mut marked = store.case(waiting.id).await.unwrap().unwrap();
    marked.in_flight = true;
    let mut step = knhk_store::Commit {
        case: marked.clone(),
        expected_version: Some(marked.version),
        events: Vec::new(),
        work_items: Vec::new(),
        timers: Vec::new(),
        idempotency: None,
        snapshot: None,
        fencing: None,
        leaves: Vec::new(),
    };
    step.case.in_flight = true;
    store.commit(step).await.unwrap();
    let running = [CaseStatus::Running];
    assert_eq!(
        store.case_ids_in_flight(&running).await.unwrap(),
        vec![waiting.id]
    );

    let second = crate::support::engine_on(std::sync::Arc::clone(&store));
    assert_eq!(second.start().await.unwrap().recovered_cases, 1);
    second.shutdown().await;
    assert_eq!(
        store.case_ids_in_flight(&running).await.unwrap(),
        Vec::<knhk_core::CaseId>::new(),
        "recovery found nothing in flight and said so in the row"
    );
    let row = store.case(waiting.id).await.unwrap().unwrap();
    assert_eq!(row.version, marked.version, "no step was taken");
    let third = crate::support::engine_on(std::sync::Arc::clone(&store));
    assert_eq!(third.start().await.unwrap().recovered_cases, 0);
    // The case goes on as before.
    let of_case = knhk_workflow_engine::WorkItemQuery {
        case: Some(waiting.id),
        ..Default::default()
    };
    assert_eq!(third.work_items(&of_case).await.unwrap().len(), 1);
    assert_eq!(
        third.case(other.id).await.unwrap().status,
        CaseStatus::Running
    );
    third.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_case_cache_is_bounded_and_a_case_dropped_from_it_loads_again() {
    let engine =
        crate::support::engine_caching(std::sync::Arc::new(knhk_store::MemoryStore::default()), 2);
    let wf = engine
        .register_workflow(
            "approve.ttl",
            knhk_workflow_engine::SourceFormat::Turtle,
            &turtle(
                "Approve",
                &[("approve", "knhk:role \"clerk\" ;", &["end"] as &[&str])],
            ),
        )
        .await
        .unwrap()
        .workflow;
    let mut cases = Vec::new();
    for n in 1..=5 {
        cases.push(engine.create_case(wf.id, json!({}), true).await.unwrap().id);
        assert_eq!(engine.cached_cases(), n.min(2), "at most two cases held");
    }
    // The first case went from memory; its next step loads it and it is held again.
    let suspended = engine.suspend(cases[0]).await.unwrap();
    assert_eq!(suspended.status, CaseStatus::Suspended);
    let resumed = engine.resume(cases[0]).await.unwrap();
    assert_eq!(resumed.status, CaseStatus::Running);
    assert_eq!(engine.cached_cases(), 2);
    // Every case still takes its steps, from memory or from the store.
    for &case in &cases {
        assert_eq!(
            engine.cancel(case, "done").await.unwrap().status,
            CaseStatus::Cancelled
        );
    }
    assert_eq!(engine.cached_cases(), 0);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_page_of_cases_reads_on_past_quarantined_ones_so_paging_reaches_every_case() {
    let store: std::sync::Arc<dyn knhk_store::Store> =
        std::sync::Arc::new(knhk_store::MemoryStore::default());
    let engine = crate::support::engine_on(std::sync::Arc::clone(&store));
    let wf = engine
        .register_workflow(
            "approve.ttl",
            knhk_workflow_engine::SourceFormat::Turtle,
            &turtle("Approve", &[("approve", "knhk:role \"clerk\" ;", &["end"])]),
        )
        .await
        .unwrap()
        .workflow;
    for _ in 0..5 {
        engine.create_case(wf.id, json!({}), true).await.unwrap();
    }
    let all: Vec<_> = engine
        .cases(&knhk_workflow_engine::CaseQuery::default())
        .await
        .unwrap()
        .iter()
        .map(|c| c.id)
        .collect();
    assert_eq!(all.len(), 5);
    // The second and third cases of the list are set aside: a page of one after the first
    // case holds only quarantined rows in the store.
    for &case in &all[1..3] {
        store
            .quarantine(&knhk_store::QuarantineRecord {
                case,
                reason: "damaged for the test".to_owned(),
                at: knhk_core::Timestamp(0),
            })
            .await
            .unwrap();
    }
    let mut paged = Vec::new();
    let mut after = None;
    loop {
        let page = engine
            .cases(&knhk_workflow_engine::CaseQuery {
                limit: Some(1),
                after,
                ..knhk_workflow_engine::CaseQuery::default()
            })
            .await
            .unwrap();
        let Some(last) = page.last() else { break };
        after = Some(last.id);
        paged.extend(page.iter().map(|c| c.id));
    }
    assert_eq!(paged, [all[0], all[3], all[4]]);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_quarantined_case_is_released_only_once_it_replays_to_its_row() {
    use knhk_workflow_engine::{Error, ErrorCode};
    let store: std::sync::Arc<dyn knhk_store::Store> =
        std::sync::Arc::new(knhk_store::MemoryStore::default());
    let engine = crate::support::engine_on(std::sync::Arc::clone(&store));
    let wf = engine
        .register_workflow(
            "approve.ttl",
            knhk_workflow_engine::SourceFormat::Turtle,
            &turtle("Approve", &[("approve", "knhk:role \"clerk\" ;", &["end"])]),
        )
        .await
        .unwrap()
        .workflow;
    let case = engine.create_case(wf.id, json!({}), true).await.unwrap().id;
    engine.settled(case).await.unwrap();
    let sound = store.case(case).await.unwrap().unwrap();
    // Not quarantined: nothing to release.
    let err = engine.release_case(case).await.unwrap_err();
    assert!(
        matches!(err, Error::NotQuarantined(id) if id == case),
        "{err}"
    );
    assert_eq!(err.code(), ErrorCode::FailedPrecondition);
    let unknown = knhk_core::CaseId(uuid::Uuid::from_u128(7));
    assert!(matches!(
        engine.release_case(unknown).await,
        Err(Error::UnknownCase(id)) if id == unknown
    ));

    // Damaged: the row says completed, the history running. Set aside, it stays so.
    let mut damaged = sound.clone();
    damaged.status = knhk_core::CaseStatus::Completed;
    store
        .commit(knhk_store::Commit {
            case: damaged,
            expected_version: Some(sound.version),
            events: vec![],
            work_items: vec![],
            timers: vec![],
            idempotency: None,
            snapshot: None,
            fencing: None,
            leaves: Vec::new(),
        })
        .await
        .unwrap();
    let quarantine = knhk_store::QuarantineRecord {
        case,
        reason: "damaged for the test".to_owned(),
        at: knhk_core::Timestamp(0),
    };
    store.quarantine(&quarantine).await.unwrap();
    let err = engine.release_case(case).await.unwrap_err();
    assert_eq!(err.code(), ErrorCode::FailedPrecondition);
    assert_eq!(
        err.to_string(),
        format!(
            "case {case} stays quarantined: its row says completed, but its history says running"
        )
    );
    assert_eq!(store.quarantine_of(case).await.unwrap(), Some(quarantine));
    assert!(matches!(
        engine.case(case).await,
        Err(Error::Quarantined { id, .. }) if id == case
    ));

    // Repaired: released, and it runs again.
    store
        .commit(knhk_store::Commit {
            case: sound.clone(),
            expected_version: Some(sound.version),
            events: vec![],
            work_items: vec![],
            timers: vec![],
            idempotency: None,
            snapshot: None,
            fencing: None,
            leaves: Vec::new(),
        })
        .await
        .unwrap();
    let released = engine.release_case(case).await.unwrap();
    assert_eq!(released.id, case);
    assert_eq!(released.status, knhk_core::CaseStatus::Running);
    assert_eq!(store.quarantine_of(case).await.unwrap(), None);
    assert!(engine.quarantined().await.unwrap().is_empty());
    assert_eq!(
        engine.cancel(case, "done").await.unwrap().status,
        knhk_core::CaseStatus::Cancelled
    );
}
