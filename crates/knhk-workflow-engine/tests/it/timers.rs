//! Timers: they fire, and they survive a restart of the engine.

use knhk_core::{CaseStatus, EventKind};
use serde_json::json;

use crate::support::*;

fn timed(ms: u64) -> String {
    // A human task that expires after `ms` if nobody does it, then an empty task.
    let mut t = turtle(
        "Timed",
        &[
            (
                "wait",
                "knhk:role \"clerk\" ; yawl:hasTimer <#timer> ;",
                &["after"],
            ),
            ("after", "", &["end"]),
        ],
    );
    t.push_str(&format!(
        "<#timer> a yawl:Timer ; yawl:hasTrigger yawl:TimerTriggerOnEnabled ; \
         yawl:hasDurationParams [ yawl:ticks {ms} ; yawl:hasInterval yawl:TimerIntervalMsec ] .\n"
    ));
    t
}

#[tokio::test(start_paused = true)]
async fn an_expiry_timer_moves_the_case_on_when_nobody_does_the_work() {
    let engine = memory_engine();
    engine.start().await.unwrap();
    let wf = engine
        .register_workflow(
            "t.ttl",
            knhk_workflow_engine::SourceFormat::Turtle,
            &timed(3_600_000),
        )
        .await
        .unwrap()
        .workflow;
    let case = engine.create_case(wf.id, json!({}), true).await.unwrap();
    // The paused clock jumps to the timer as soon as everything else is idle.
    let done = engine.wait_until_ended(case.id).await.unwrap();
    assert_eq!(done.status, CaseStatus::Completed);
    let history = engine.history(case.id).await.unwrap();
    let fired = history
        .iter()
        .position(|e| matches!(e.kind, EventKind::TimerFired { .. }))
        .unwrap();
    let armed = history
        .iter()
        .find_map(|e| match e.kind {
            EventKind::TimerArmed { fires_at, .. } => Some(fires_at),
            _ => None,
        })
        .unwrap();
    assert!(history[fired].time >= armed);
    engine.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_timer_armed_before_a_restart_fires_after_it() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("k.db");
    let first = engine_on(sqlite(&path).await);
    let wf = first
        .register_workflow(
            "t.ttl",
            knhk_workflow_engine::SourceFormat::Turtle,
            &timed(300),
        )
        .await
        .unwrap()
        .workflow;
    let case = first.create_case(wf.id, json!({}), true).await.unwrap();
    first.shutdown().await;
    drop(first);
    let second = engine_on(sqlite(&path).await);
    assert_eq!(second.start().await.unwrap().armed_timers, 1);
    let done = second.wait_until_ended(case.id).await.unwrap();
    assert_eq!(done.status, CaseStatus::Completed);
    second.shutdown().await;
}

/// The in-memory store with commits that fail on demand: the only way to make a real store's
/// disk fail at a chosen moment.
#[derive(Debug, Default)]
struct FlakyStore {
    inner: knhk_store::MemoryStore,
    failures: std::sync::atomic::AtomicU32,
}

#[async_trait::async_trait]
impl knhk_store::Store for FlakyStore {
    async fn put_workflow(&self, w: &knhk_store::WorkflowRecord) -> Result<(), knhk_store::Error> {
        self.inner.put_workflow(w).await
    }
    async fn workflow(
        &self,
        id: knhk_core::WorkflowId,
    ) -> Result<Option<knhk_store::WorkflowRecord>, knhk_store::Error> {
        self.inner.workflow(id).await
    }
    async fn latest_workflow(
        &self,
        uri: &str,
    ) -> Result<Option<knhk_store::WorkflowRecord>, knhk_store::Error> {
        self.inner.latest_workflow(uri).await
    }
    async fn workflows(&self) -> Result<Vec<knhk_store::WorkflowRecord>, knhk_store::Error> {
        self.inner.workflows().await
    }
    async fn workflow_summaries(
        &self,
    ) -> Result<Vec<knhk_store::WorkflowSummary>, knhk_store::Error> {
        self.inner.workflow_summaries().await
    }
    async fn workflows_named(
        &self,
        key: &str,
    ) -> Result<Vec<knhk_store::WorkflowSummary>, knhk_store::Error> {
        self.inner.workflows_named(key).await
    }
    async fn commit(&self, c: knhk_store::Commit) -> Result<(), knhk_store::Error> {
        use std::sync::atomic::Ordering;
        if self
            .failures
            .fetch_update(Ordering::SeqCst, Ordering::SeqCst, |n| n.checked_sub(1))
            .is_ok()
        {
            return Err(knhk_store::Error::Io {
                doing: "appending to",
                path: "knhk.db".into(),
                source: std::io::Error::other("disk full"),
            });
        }
        self.inner.commit(c).await
    }
    async fn case(
        &self,
        id: knhk_core::CaseId,
    ) -> Result<Option<knhk_store::CaseRecord>, knhk_store::Error> {
        self.inner.case(id).await
    }
    async fn cases(
        &self,
        f: &knhk_store::CaseFilter,
    ) -> Result<Vec<knhk_store::CaseRecord>, knhk_store::Error> {
        self.inner.cases(f).await
    }
    async fn events(
        &self,
        case: knhk_core::CaseId,
        after_seq: u64,
    ) -> Result<Vec<knhk_core::Event>, knhk_store::Error> {
        self.inner.events(case, after_seq).await
    }
    async fn events_page(
        &self,
        case: knhk_core::CaseId,
        after_seq: u64,
        limit: usize,
    ) -> Result<Vec<knhk_core::Event>, knhk_store::Error> {
        self.inner.events_page(case, after_seq, limit).await
    }
    async fn snapshot(
        &self,
        case: knhk_core::CaseId,
    ) -> Result<Option<knhk_store::SnapshotRecord>, knhk_store::Error> {
        self.inner.snapshot(case).await
    }
    async fn case_ids(
        &self,
        status: &[knhk_core::CaseStatus],
    ) -> Result<Vec<knhk_core::CaseId>, knhk_store::Error> {
        self.inner.case_ids(status).await
    }
    async fn case_ids_in_flight(
        &self,
        status: &[knhk_core::CaseStatus],
    ) -> Result<Vec<knhk_core::CaseId>, knhk_store::Error> {
        self.inner.case_ids_in_flight(status).await
    }
    async fn integrity(&self, thorough: bool) -> Result<Vec<String>, knhk_store::Error> {
        self.inner.integrity(thorough).await
    }
    async fn settle_in_flight(
        &self,
        case: knhk_core::CaseId,
        version: u64,
    ) -> Result<bool, knhk_store::Error> {
        self.inner.settle_in_flight(case, version).await
    }
    async fn case_ids_by_prefix(
        &self,
        prefix: &str,
        limit: usize,
    ) -> Result<Vec<knhk_core::CaseId>, knhk_store::Error> {
        self.inner.case_ids_by_prefix(prefix, limit).await
    }
    async fn work_item_ids_by_prefix(
        &self,
        prefix: &str,
        limit: usize,
    ) -> Result<Vec<knhk_core::WorkItemId>, knhk_store::Error> {
        self.inner.work_item_ids_by_prefix(prefix, limit).await
    }
    async fn register_node(
        &self,
        name: &str,
        now: knhk_core::Timestamp,
        expires_at: knhk_core::Timestamp,
    ) -> Result<u64, knhk_store::Error> {
        self.inner.register_node(name, now, expires_at).await
    }
    async fn renew_lease(
        &self,
        fence: u64,
        now: knhk_core::Timestamp,
        expires_at: knhk_core::Timestamp,
    ) -> Result<bool, knhk_store::Error> {
        self.inner.renew_lease(fence, now, expires_at).await
    }
    async fn nodes(&self) -> Result<Vec<knhk_store::NodeRecord>, knhk_store::Error> {
        self.inner.nodes().await
    }
    async fn claim_cases(
        &self,
        fence: u64,
        now: knhk_core::Timestamp,
        which: knhk_store::Orphans,
        limit: usize,
    ) -> Result<Vec<knhk_core::CaseId>, knhk_store::Error> {
        self.inner.claim_cases(fence, now, which, limit).await
    }
    async fn claim_due_timers(
        &self,
        fence: u64,
        now: knhk_core::Timestamp,
        until: knhk_core::Timestamp,
        limit: usize,
    ) -> Result<Vec<knhk_store::TimerRecord>, knhk_store::Error> {
        self.inner.claim_due_timers(fence, now, until, limit).await
    }
    async fn query_plans(&self) -> Result<Vec<knhk_store::QueryPlan>, knhk_store::Error> {
        self.inner.query_plans().await
    }
    async fn quarantine(&self, q: &knhk_store::QuarantineRecord) -> Result<(), knhk_store::Error> {
        self.inner.quarantine(q).await
    }
    async fn release_quarantine(&self, case: knhk_core::CaseId) -> Result<bool, knhk_store::Error> {
        self.inner.release_quarantine(case).await
    }
    async fn quarantined(&self) -> Result<Vec<knhk_store::QuarantineRecord>, knhk_store::Error> {
        self.inner.quarantined().await
    }
    async fn quarantine_of(
        &self,
        case: knhk_core::CaseId,
    ) -> Result<Option<knhk_store::QuarantineRecord>, knhk_store::Error> {
        self.inner.quarantine_of(case).await
    }
    async fn work_items(
        &self,
        f: &knhk_store::WorkItemFilter,
    ) -> Result<Vec<knhk_store::WorkItemRecord>, knhk_store::Error> {
        self.inner.work_items(f).await
    }
    async fn queue_lengths(&self, users: &[String]) -> Result<Vec<u64>, knhk_store::Error> {
        self.inner.queue_lengths(users).await
    }
    async fn work_item(
        &self,
        id: knhk_core::WorkItemId,
    ) -> Result<Option<knhk_store::WorkItemRecord>, knhk_store::Error> {
        self.inner.work_item(id).await
    }
    async fn timers(&self) -> Result<Vec<knhk_store::TimerRecord>, knhk_store::Error> {
        self.inner.timers().await
    }
    async fn idempotency(
        &self,
        key: &str,
    ) -> Result<Option<knhk_store::IdempotencyRecord>, knhk_store::Error> {
        self.inner.idempotency(key).await
    }
    async fn next_in_sequence(&self, name: &str) -> Result<u64, knhk_store::Error> {
        self.inner.next_in_sequence(name).await
    }
    async fn ping(&self) -> Result<(), knhk_store::Error> {
        self.inner.ping().await
    }
    async fn lockchain_head(&self) -> Result<knhk_store::TreeHead, knhk_store::Error> {
        self.inner.lockchain_head().await
    }
    async fn lockchain_tiles(
        &self,
        ids: &[knhk_lockchain::TileId],
    ) -> Result<Vec<knhk_lockchain::Tile>, knhk_store::Error> {
        self.inner.lockchain_tiles(ids).await
    }
    async fn event_leaf(
        &self,
        case: knhk_core::CaseId,
        seq: u64,
    ) -> Result<Option<u64>, knhk_store::Error> {
        self.inner.event_leaf(case, seq).await
    }
    async fn put_checkpoint(
        &self,
        c: &knhk_store::CheckpointRecord,
    ) -> Result<bool, knhk_store::Error> {
        self.inner.put_checkpoint(c).await
    }
    async fn checkpoints(
        &self,
        after_size: u64,
        limit: usize,
    ) -> Result<Vec<knhk_store::CheckpointRecord>, knhk_store::Error> {
        self.inner.checkpoints(after_size, limit).await
    }
    async fn latest_checkpoint(
        &self,
    ) -> Result<Option<knhk_store::CheckpointRecord>, knhk_store::Error> {
        self.inner.latest_checkpoint().await
    }
}

#[tokio::test(start_paused = true)]
async fn a_timer_whose_commit_fails_is_fed_again_until_the_store_takes_it() {
    let store = std::sync::Arc::new(FlakyStore::default());
    let engine = engine_on(store.clone());
    engine.start().await.unwrap();
    let wf = engine
        .register_workflow(
            "t.ttl",
            knhk_workflow_engine::SourceFormat::Turtle,
            &timed(60_000),
        )
        .await
        .unwrap()
        .workflow;
    let case = engine.create_case(wf.id, json!({}), true).await.unwrap();
    // The next three commits (the timer firing) fail; the fourth goes through.
    store.failures.store(3, std::sync::atomic::Ordering::SeqCst);
    // On the paused clock a lost result would make this time out at once, not hang.
    let done = tokio::time::timeout(
        std::time::Duration::from_secs(24 * 3600),
        engine.wait_until_ended(case.id),
    )
    .await
    .expect("the case ends")
    .unwrap();
    assert_eq!(done.status, CaseStatus::Completed);
    assert_eq!(store.failures.load(std::sync::atomic::Ordering::SeqCst), 0);
    engine.shutdown().await;
}

#[tokio::test(start_paused = true)]
async fn a_timer_whose_commit_keeps_failing_is_given_up_loudly_and_the_case_kept() {
    let store = std::sync::Arc::new(FlakyStore::default());
    let engine = engine_on(store.clone());
    let mut faults = engine.subscribe_faults();
    engine.start().await.unwrap();
    let wf = engine
        .register_workflow(
            "t.ttl",
            knhk_workflow_engine::SourceFormat::Turtle,
            &timed(60_000),
        )
        .await
        .unwrap();
    let case = engine
        .create_case(wf.workflow.id, json!({}), true)
        .await
        .unwrap();
    // Every commit from now on fails, as on a disk that stays full.
    store
        .failures
        .store(u32::MAX, std::sync::atomic::Ordering::SeqCst);
    let fault = tokio::time::timeout(std::time::Duration::from_secs(24 * 3600), faults.recv())
        .await
        .expect("the result is given up, not retried for ever")
        .unwrap();
    assert_eq!(fault.case, case.id);
    assert_eq!(fault.attempts, 8);
    assert!(
        fault.error.to_string().contains("disk full"),
        "{}",
        fault.error
    );
    // The case stays as last committed, and `settled` reports the loss once.
    assert_eq!(engine.case(case.id).await.unwrap().version, case.version);
    match engine.settled(case.id).await {
        Err(knhk_workflow_engine::Error::ResultLost { case: c, .. }) => assert_eq!(c, case.id),
        other => panic!("expected a lost result, got {other:?}"),
    }
    assert!(engine.settled(case.id).await.is_ok());
    engine.shutdown().await;
}

#[tokio::test(start_paused = true)]
async fn the_timer_example_sends_its_reminder_when_the_payment_does_not_come() {
    let engine = memory_engine();
    engine.start().await.unwrap();
    let file = std::path::Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("../../examples/invoice_reminder.ttl");
    let wf = engine.register_file(&file).await.unwrap().workflow;
    let case = engine.create_case(wf.id, json!({}), true).await.unwrap();
    // Nobody records the payment: after three (paused) days the timer expires the wait.
    let done = engine.wait_until_ended(case.id).await.unwrap();
    assert_eq!(done.status, CaseStatus::Completed);
    let history = engine.history(case.id).await.unwrap();
    let completed: Vec<&str> = history
        .iter()
        .filter_map(|e| match &e.kind {
            EventKind::TaskCompleted { task, .. } => Some(task.task.as_str()),
            _ => None,
        })
        .collect();
    assert_eq!(
        completed,
        ["send_invoice", "await_payment", "send_reminder", "close"]
    );
    let armed = history
        .iter()
        .find_map(|e| match e.kind {
            EventKind::TimerArmed { fires_at, .. } => Some(fires_at),
            _ => None,
        })
        .unwrap();
    assert_eq!(
        armed.0 - history[0].time.0,
        3 * 24 * 3_600_000,
        "three days"
    );
    engine.shutdown().await;
}

/// A case failed by a task keeps its timers armed in its state but none in the store, so
/// that no timer service fires them; its retry stores them again, due when they were.
#[tokio::test]
async fn a_failed_case_stores_no_timer_until_it_is_retried() {
    let store: std::sync::Arc<dyn knhk_store::Store> =
        std::sync::Arc::new(knhk_store::MemoryStore::default());
    let engine = engine_on(store.clone());
    let mut t = turtle(
        "Timed beside a check",
        &[
            (
                "split",
                "yawl:hasSplit yawl:ControlTypeAnd ;",
                &["wait", "check"],
            ),
            (
                "wait",
                "knhk:role \"clerk\" ; yawl:hasTimer <#timer> ;",
                &["join"],
            ),
            ("check", "knhk:role \"clerk\" ;", &["join"]),
            ("join", "yawl:hasJoin yawl:ControlTypeAnd ;", &["end"]),
        ],
    );
    t.push_str(
        "<#timer> a yawl:Timer ; yawl:hasTrigger yawl:TimerTriggerOnEnabled ; \
         yawl:hasDurationParams [ yawl:ticks 3600000 ; yawl:hasInterval yawl:TimerIntervalMsec ] .\n",
    );
    let wf = engine
        .register_workflow("t.ttl", knhk_workflow_engine::SourceFormat::Turtle, &t)
        .await
        .unwrap();
    let case = engine
        .create_case(wf.workflow.id, json!({}), true)
        .await
        .unwrap();
    let armed = store.timers().await.unwrap();
    assert_eq!(armed.len(), 1);
    let items = engine
        .work_items(&knhk_workflow_engine::WorkItemQuery {
            case: Some(case.id),
            ..Default::default()
        })
        .await
        .unwrap();
    let check = items
        .iter()
        .find(|i| i.task.task.as_str() == "check")
        .unwrap();
    let failed = engine
        .fail_work_item(check.id, "ann", "cannot check")
        .await
        .unwrap();
    assert_eq!(failed.status, CaseStatus::Failed);
    assert!(store.timers().await.unwrap().is_empty());
    // The other branch's work item stays, frozen: claims wait for the retry.
    let wait = items
        .iter()
        .find(|i| i.task.task.as_str() == "wait")
        .unwrap();
    assert!(engine.claim(wait.id, "bob").await.is_err());

    let retried = engine.retry_case(case.id, None).await.unwrap();
    assert_eq!(retried.status, CaseStatus::Running);
    assert_eq!(store.timers().await.unwrap(), armed);
    engine.claim(wait.id, "bob").await.unwrap();
    let history = engine.history(case.id).await.unwrap();
    assert!(
        history
            .iter()
            .any(|e| matches!(e.kind, EventKind::TaskRetried { attempt: 2, .. }))
    );
}
