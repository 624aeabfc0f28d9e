//! Snapshots on a SQLite file: a case loads from its snapshot and the events after it,
//! without reading its history before the snapshot; a snapshot that does not restore is
//! ignored (the case loads from its history); `check_store` names a case whose snapshot is
//! not the state its history reaches.

use std::path::Path;
use std::sync::Arc;

use knhk_core::{CaseId, CaseStatus, WorkItemId};
use knhk_store::Store;
use knhk_workflow_engine::{Subject, WorkItemQuery, WorkflowEngine};
use rusqlite::Connection;
use serde_json::{Map, json};

use crate::support::*;

/// A store on `path` with a case of one human task whose data was set `updates` times, by
/// an engine that snapshots every `every` events; returns the case, its work item and the
/// store.
async fn case_with_updates(
    path: &Path,
    every: u64,
    updates: u32,
) -> (CaseId, WorkItemId, Arc<dyn Store>) {
    let store = sqlite(path).await;
    let engine = engine_snapshotting(store.clone(), every);
    let wf = engine
        .register_workflow(
            "one.ttl",
            knhk_workflow_engine::SourceFormat::Turtle,
            &turtle("One", &[("do", "knhk:role \"clerk\" ;", &["end"])]),
        )
        .await
        .unwrap()
        .workflow;
    let case = engine.create_case(wf.id, json!({}), true).await.unwrap().id;
    for n in 0..updates {
        let mut changes = Map::new();
        changes.insert("count".to_owned(), json!(n));
        engine.update_data(case, changes).await.unwrap();
    }
    let item = only_item(&engine, case).await;
    (case, item, store)
}

async fn only_item(engine: &WorkflowEngine, case: CaseId) -> WorkItemId {
    let items = engine
        .work_items(&WorkItemQuery {
            case: Some(case),
            ..WorkItemQuery::default()
        })
        .await
        .unwrap();
    assert_eq!(items.len(), 1);
    items[0].id
}

/// Runs `sql` on the store file, as a damaged disk or a hand edit would.
fn edit(path: &Path, sql: &str) -> usize {
    Connection::open(path).unwrap().execute(sql, []).unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_case_loads_from_its_snapshot_without_reading_the_history_before_it() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("knhk.db");
    let (case, item, store) = case_with_updates(&path, 5, 12).await;
    let snapshot = store.snapshot(case).await.unwrap().unwrap();
    let version = store.case(case).await.unwrap().unwrap().version;
    // Written by the step that brought the events since the last one to five.
    assert!(
        snapshot.seq > 5 && snapshot.seq <= version,
        "{snapshot:?} of {version}"
    );
    assert!(version - snapshot.seq < 5, "{snapshot:?} of {version}");
    // Every event up to the snapshot is made unreadable: a load that read one would fail.
    let damaged = edit(
        &path,
        &format!(
            "UPDATE events SET payload = 'damaged' WHERE case_id = '{case}' AND seq <= {}",
            snapshot.seq
        ),
    );
    assert_eq!(damaged as u64, snapshot.seq);

    // A fresh engine (nothing cached) loads it from the snapshot and moves it on.
    let engine = engine_snapshotting(store.clone(), 5);
    let waits = engine.waits(case).await.unwrap();
    assert_eq!(waits.len(), 1, "{waits:?}");
    let done = engine
        .complete_work_item(item, "ann", json!({"ok": true}))
        .await
        .unwrap();
    assert_eq!(done.status, CaseStatus::Completed);
    assert_eq!(done.data["count"], json!(11));

    // With snapshots off, the same history is read from its start, and does not load.
    let other = tempfile::tempdir().unwrap();
    let path = other.path().join("knhk.db");
    let (case, _, store) = case_with_updates(&path, 5, 12).await;
    edit(
        &path,
        &format!("UPDATE events SET payload = 'damaged' WHERE case_id = '{case}' AND seq = 1"),
    );
    let engine = engine_snapshotting(store, 0);
    assert!(engine.waits(case).await.is_err());
}

/// Damages the snapshot of a case in `how`, then checks that a fresh engine loads the case
/// from its history, moves it on, and writes a good snapshot again.
async fn falls_back_to_the_history(how: &str) {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("knhk.db");
    let (case, item, store) = case_with_updates(&path, 3, 8).await;
    let before = store.snapshot(case).await.unwrap().unwrap();
    assert_eq!(
        edit(
            &path,
            &format!("UPDATE snapshots SET {how} WHERE case_id = '{case}'")
        ),
        1
    );
    let engine = engine_snapshotting(store.clone(), 3);
    assert_eq!(engine.waits(case).await.unwrap().len(), 1);
    assert!(engine.quarantined().await.unwrap().is_empty());
    let view = engine.case(case).await.unwrap();
    assert_eq!(view.data["count"], json!(7));
    let done = engine
        .complete_work_item(item, "ann", json!({}))
        .await
        .unwrap();
    assert_eq!(done.status, CaseStatus::Completed);
    // Loaded without a snapshot, the case took a new one at its next step.
    let after = store.snapshot(case).await.unwrap().unwrap();
    assert_eq!(after.format, before.format);
    assert_eq!(after.seq, done.version);
    assert!(engine.check_store().await.unwrap().is_clean());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_snapshot_of_an_unknown_format_is_ignored_and_the_history_replayed() {
    falls_back_to_the_history("format = 99").await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_snapshot_that_does_not_decode_is_ignored_and_the_history_replayed() {
    falls_back_to_the_history("state = '{\"status\": '").await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_snapshot_beyond_the_history_is_ignored_and_the_history_replayed() {
    falls_back_to_the_history("seq = 999").await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn store_check_names_a_case_whose_snapshot_is_not_its_history() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("knhk.db");
    let (case, _, store) = case_with_updates(&path, 3, 8).await;
    let engine = engine_snapshotting(store.clone(), 3);
    assert!(engine.check_store().await.unwrap().is_clean());
    let snapshot = store.snapshot(case).await.unwrap().unwrap();
    // The count the snapshot holds, changed: it still restores, to another state.
    let state: serde_json::Value = serde_json::from_str(&snapshot.state).unwrap();
    let count = format!("\"count\":{}", state["data"]["count"]);
    assert!(snapshot.state.contains(&count), "{}", snapshot.state);
    edit(
        &path,
        &format!(
            "UPDATE snapshots SET state = replace(state, '{count}', '\"count\":-1') \
             WHERE case_id = '{case}'"
        ),
    );
    let report = engine.check_store().await.unwrap();
    let problems: Vec<String> = report
        .problems
        .iter()
        .filter(|p| p.subject == Subject::Case(case))
        .map(|p| p.problem.clone())
        .collect();
    assert_eq!(
        problems,
        [format!(
            "its snapshot at event {} is not the state its history reaches there",
            snapshot.seq
        )]
    );

    // One of an event the history does not reach is named, with both numbers.
    edit(&path, "UPDATE snapshots SET seq = 999");
    let report = engine.check_store().await.unwrap();
    let version = store.case(case).await.unwrap().unwrap().version;
    assert_eq!(
        report
            .problems
            .iter()
            .map(|p| p.to_string())
            .collect::<Vec<_>>(),
        [format!(
            "case {case}: its snapshot is of event 999, but its history ends at event {version}"
        )]
    );
    edit(
        &path,
        &format!("UPDATE snapshots SET seq = {}", snapshot.seq),
    );

    // One that does not decode is named too, with why.
    edit(&path, "UPDATE snapshots SET state = 'x'");
    let report = engine.check_store().await.unwrap();
    assert_eq!(report.problems.len(), 1, "{:?}", report.problems);
    assert!(
        report.problems[0].problem.starts_with(&format!(
            "its snapshot at event {} does not restore",
            snapshot.seq
        )),
        "{:?}",
        report.problems
    );
}
