//! Several engine nodes on one store, on a paused clock: a dead node's connector call and
//! allocation are taken over by a live node once its lease expires, its late result is refused,
//! and a due timer is fired by one node only.

use std::collections::BTreeMap;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::time::Duration;

use knhk_connectors::{Binding, CallError, CallRequest, Connector, Probe, Registry, SettingsError};
use knhk_core::{CaseStatus, EventKind};
use knhk_store::MemoryStore;
use knhk_workflow_engine::{EngineConfig, WorkItemQuery, WorkItemStatus, WorkflowEngine};
use serde_json::{Value, json};
use tokio::sync::{mpsc, watch};

use crate::support::*;

/// A node's view of the shared store, which can be cut off (as if its process died or lost
/// the network): every call then fails. Counts the timers this node claimed.
#[derive(Debug)]
struct Severable {
    inner: MemoryStore,
    cut: AtomicBool,
    /// Cut off right after this many more commits (`usize::MAX`: never).
    commits_left: AtomicUsize,
    claimed_timers: AtomicUsize,
}

impl Severable {
    fn new(inner: MemoryStore) -> Arc<Severable> {
        Arc::new(Severable {
            inner,
            cut: AtomicBool::new(false),
            commits_left: AtomicUsize::new(usize::MAX),
            claimed_timers: AtomicUsize::new(0),
        })
    }

    fn check(&self) -> Result<(), knhk_store::Error> {
        if self.cut.load(Ordering::SeqCst) {
            return Err(knhk_store::Error::Io {
                doing: "reaching",
                path: "the store".into(),
                source: std::io::Error::other("node cut off"),
            });
        }
        Ok(())
    }

    fn count_commit(&self) {
        let left = self
            .commits_left
            .fetch_update(Ordering::SeqCst, Ordering::SeqCst, |n| n.checked_sub(1))
            .unwrap_or(0);
        if left == 1 {
            self.cut.store(true, Ordering::SeqCst);
        }
    }
}

/// A connector that holds every call until released, and reports each call (the node that
/// made it, its idempotency key) as it arrives. Answers with the node's name.
#[derive(Clone, Debug)]
struct Gate {
    node: &'static str,
    arrived: mpsc::UnboundedSender<(&'static str, String)>,
    release: watch::Receiver<bool>,
}

#[async_trait::async_trait]
impl Connector for Gate {
    fn name(&self) -> &str {
        "gate"
    }

    fn kind(&self) -> &str {
        "gate"
    }

    fn prepare(&self, _: &BTreeMap<String, String>) -> Result<Arc<dyn Binding>, SettingsError> {
        Ok(Arc::new(self.clone()))
    }

    async fn probe(&self) -> Result<Probe, CallError> {
        Ok(Probe::default())
    }
}

#[async_trait::async_trait]
impl Binding for Gate {
    async fn call(&self, req: CallRequest) -> Result<Value, CallError> {
        let _ = self.arrived.send((self.node, req.idempotency_key.clone()));
        let mut release = self.release.clone();
        let _ = release.wait_for(|r| *r).await;
        Ok(json!({ "by": self.node }))
    }
}

/// The lease of the nodes here, and their heartbeat.
const LEASE: Duration = Duration::from_secs(10);
const HEARTBEAT: Duration = Duration::from_secs(2);

/// A node named `name` on `store`, with a gate connector held until `release` says so.
fn node(
    name: &'static str,
    store: Arc<Severable>,
    arrived: mpsc::UnboundedSender<(&'static str, String)>,
    release: watch::Receiver<bool>,
) -> WorkflowEngine {
    let mut connectors = Registry::default();
    connectors.register(Arc::new(Gate {
        node: name,
        arrived,
        release,
    }));
    let mut config = EngineConfig::with_defaults(store, directory());
    config.connectors = connectors;
    config.timer_poll = Duration::from_millis(500);
    config.lease = LEASE;
    config.heartbeat_interval = HEARTBEAT;
    config.node_name = name.to_owned();
    WorkflowEngine::new(config)
}

const GATE_TASK: &str = "knhk:connector \"gate\" ; knhk:maxAttempts 1 ; knhk:timeoutMs 3600000 ;";

#[async_trait::async_trait]
impl knhk_store::Store for Severable {
    async fn put_workflow(&self, w: &knhk_store::WorkflowRecord) -> Result<(), knhk_store::Error> {
        self.check()?;
        self.inner.put_workflow(w).await
    }
    async fn workflow(
        &self,
        id: knhk_core::WorkflowId,
    ) -> Result<Option<knhk_store::WorkflowRecord>, knhk_store::Error> {
        self.check()?;
        self.inner.workflow(id).await
    }
    async fn latest_workflow(
        &self,
        uri: &str,
    ) -> Result<Option<knhk_store::WorkflowRecord>, knhk_store::Error> {
        self.check()?;
        self.inner.latest_workflow(uri).await
    }
    async fn workflows(&self) -> Result<Vec<knhk_store::WorkflowRecord>, knhk_store::Error> {
        self.check()?;
        self.inner.workflows().await
    }
    async fn workflow_summaries(
        &self,
    ) -> Result<Vec<knhk_store::WorkflowSummary>, knhk_store::Error> {
        self.check()?;
        self.inner.workflow_summaries().await
    }
    async fn workflows_named(
        &self,
        key: &str,
    ) -> Result<Vec<knhk_store::WorkflowSummary>, knhk_store::Error> {
        self.check()?;
        self.inner.workflows_named(key).await
    }
    async fn release_quarantine(&self, case: knhk_core::CaseId) -> Result<bool, knhk_store::Error> {
        self.check()?;
        self.inner.release_quarantine(case).await
    }
    async fn commit(&self, c: knhk_store::Commit) -> Result<(), knhk_store::Error> {
        self.check()?;
        self.inner.commit(c).await?;
        self.count_commit();
        Ok(())
    }
    async fn case(
        &self,
        id: knhk_core::CaseId,
    ) -> Result<Option<knhk_store::CaseRecord>, knhk_store::Error> {
        self.check()?;
        self.inner.case(id).await
    }
    async fn cases(
        &self,
        f: &knhk_store::CaseFilter,
    ) -> Result<Vec<knhk_store::CaseRecord>, knhk_store::Error> {
        self.check()?;
        self.inner.cases(f).await
    }
    async fn events(
        &self,
        case: knhk_core::CaseId,
        after_seq: u64,
    ) -> Result<Vec<knhk_core::Event>, knhk_store::Error> {
        self.check()?;
        self.inner.events(case, after_seq).await
    }
    async fn events_page(
        &self,
        case: knhk_core::CaseId,
        after_seq: u64,
        limit: usize,
    ) -> Result<Vec<knhk_core::Event>, knhk_store::Error> {
        self.check()?;
        self.inner.events_page(case, after_seq, limit).await
    }
    async fn snapshot(
        &self,
        case: knhk_core::CaseId,
    ) -> Result<Option<knhk_store::SnapshotRecord>, knhk_store::Error> {
        self.check()?;
        self.inner.snapshot(case).await
    }
    async fn case_ids(
        &self,
        status: &[knhk_core::CaseStatus],
    ) -> Result<Vec<knhk_core::CaseId>, knhk_store::Error> {
        self.check()?;
        self.inner.case_ids(status).await
    }
    async fn case_ids_in_flight(
        &self,
        status: &[knhk_core::CaseStatus],
    ) -> Result<Vec<knhk_core::CaseId>, knhk_store::Error> {
        self.check()?;
        self.inner.case_ids_in_flight(status).await
    }
    async fn integrity(&self, thorough: bool) -> Result<Vec<String>, knhk_store::Error> {
        self.check()?;
        self.inner.integrity(thorough).await
    }
    async fn settle_in_flight(
        &self,
        case: knhk_core::CaseId,
        version: u64,
    ) -> Result<bool, knhk_store::Error> {
        self.check()?;
        self.inner.settle_in_flight(case, version).await
    }
    async fn case_ids_by_prefix(
        &self,
        prefix: &str,
        limit: usize,
    ) -> Result<Vec<knhk_core::CaseId>, knhk_store::Error> {
        self.check()?;
        self.inner.case_ids_by_prefix(prefix, limit).await
    }
    async fn work_item_ids_by_prefix(
        &self,
        prefix: &str,
        limit: usize,
    ) -> Result<Vec<knhk_core::WorkItemId>, knhk_store::Error> {
        self.check()?;
        self.inner.work_item_ids_by_prefix(prefix, limit).await
    }
    async fn register_node(
        &self,
        name: &str,
        now: knhk_core::Timestamp,
        expires_at: knhk_core::Timestamp,
    ) -> Result<u64, knhk_store::Error> {
        self.check()?;
        self.inner.register_node(name, now, expires_at).await
    }
    async fn renew_lease(
        &self,
        fence: u64,
        now: knhk_core::Timestamp,
        expires_at: knhk_core::Timestamp,
    ) -> Result<bool, knhk_store::Error> {
        self.check()?;
        self.inner.renew_lease(fence, now, expires_at).await
    }
    async fn nodes(&self) -> Result<Vec<knhk_store::NodeRecord>, knhk_store::Error> {
        self.check()?;
        self.inner.nodes().await
    }
    async fn claim_cases(
        &self,
        fence: u64,
        now: knhk_core::Timestamp,
        which: knhk_store::Orphans,
        limit: usize,
    ) -> Result<Vec<knhk_core::CaseId>, knhk_store::Error> {
        self.check()?;
        self.inner.claim_cases(fence, now, which, limit).await
    }
    async fn claim_due_timers(
        &self,
        fence: u64,
        now: knhk_core::Timestamp,
        until: knhk_core::Timestamp,
        limit: usize,
    ) -> Result<Vec<knhk_store::TimerRecord>, knhk_store::Error> {
        self.check()?;
        let claimed = self
            .inner
            .claim_due_timers(fence, now, until, limit)
            .await?;
        self.claimed_timers
            .fetch_add(claimed.len(), std::sync::atomic::Ordering::SeqCst);
        Ok(claimed)
    }
    async fn query_plans(&self) -> Result<Vec<knhk_store::QueryPlan>, knhk_store::Error> {
        self.check()?;
        self.inner.query_plans().await
    }
    async fn quarantine(&self, q: &knhk_store::QuarantineRecord) -> Result<(), knhk_store::Error> {
        self.check()?;
        self.inner.quarantine(q).await
    }
    async fn quarantined(&self) -> Result<Vec<knhk_store::QuarantineRecord>, knhk_store::Error> {
        self.check()?;
        self.inner.quarantined().await
    }
    async fn quarantine_of(
        &self,
        case: knhk_core::CaseId,
    ) -> Result<Option<knhk_store::QuarantineRecord>, knhk_store::Error> {
        self.check()?;
        self.inner.quarantine_of(case).await
    }
    async fn work_items(
        &self,
        f: &knhk_store::WorkItemFilter,
    ) -> Result<Vec<knhk_store::WorkItemRecord>, knhk_store::Error> {
        self.check()?;
        self.inner.work_items(f).await
    }
    async fn queue_lengths(&self, users: &[String]) -> Result<Vec<u64>, knhk_store::Error> {
        self.check()?;
        self.inner.queue_lengths(users).await
    }
    async fn work_item(
        &self,
        id: knhk_core::WorkItemId,
    ) -> Result<Option<knhk_store::WorkItemRecord>, knhk_store::Error> {
        self.check()?;
        self.inner.work_item(id).await
    }
    async fn timers(&self) -> Result<Vec<knhk_store::TimerRecord>, knhk_store::Error> {
        self.check()?;
        self.inner.timers().await
    }
    async fn idempotency(
        &self,
        key: &str,
    ) -> Result<Option<knhk_store::IdempotencyRecord>, knhk_store::Error> {
        self.check()?;
        self.inner.idempotency(key).await
    }
    async fn next_in_sequence(&self, name: &str) -> Result<u64, knhk_store::Error> {
        self.check()?;
        self.inner.next_in_sequence(name).await
    }
    async fn ping(&self) -> Result<(), knhk_store::Error> {
        self.check()?;
        self.inner.ping().await
    }
    async fn lockchain_head(&self) -> Result<knhk_store::TreeHead, knhk_store::Error> {
        self.check()?;
        self.inner.lockchain_head().await
    }
    async fn lockchain_tiles(
        &self,
        ids: &[knhk_lockchain::TileId],
    ) -> Result<Vec<knhk_lockchain::Tile>, knhk_store::Error> {
        self.check()?;
        self.inner.lockchain_tiles(ids).await
    }
    async fn event_leaf(
        &self,
        case: knhk_core::CaseId,
        seq: u64,
    ) -> Result<Option<u64>, knhk_store::Error> {
        self.check()?;
        self.inner.event_leaf(case, seq).await
    }
    async fn put_checkpoint(
        &self,
        c: &knhk_store::CheckpointRecord,
    ) -> Result<bool, knhk_store::Error> {
        self.check()?;
        self.inner.put_checkpoint(c).await
    }
    async fn checkpoints(
        &self,
        after_size: u64,
        limit: usize,
    ) -> Result<Vec<knhk_store::CheckpointRecord>, knhk_store::Error> {
        self.check()?;
        self.inner.checkpoints(after_size, limit).await
    }
    async fn latest_checkpoint(
        &self,
    ) -> Result<Option<knhk_store::CheckpointRecord>, knhk_store::Error> {
        self.check()?;
        self.inner.latest_checkpoint().await
    }
}

/// Two nodes, A and B, on one store, each with its own gate; returns them with their views of
/// the store, where calls arrive, and the releases of A's and B's gates.
struct Pair {
    a: WorkflowEngine,
    b: WorkflowEngine,
    a_store: Arc<Severable>,
    b_store: Arc<Severable>,
    arrived: mpsc::UnboundedReceiver<(&'static str, String)>,
    release_a: watch::Sender<bool>,
    release_b: watch::Sender<bool>,
}

fn pair() -> Pair {
    let shared = MemoryStore::new();
    let (a_store, b_store) = (Severable::new(shared.clone()), Severable::new(shared));
    let (arrived_tx, arrived) = mpsc::unbounded_channel();
    let (release_a, a_gate) = watch::channel(false);
    let (release_b, b_gate) = watch::channel(false);
    Pair {
        a: node("a", Arc::clone(&a_store), arrived_tx.clone(), a_gate),
        b: node("b", Arc::clone(&b_store), arrived_tx, b_gate),
        a_store,
        b_store,
        arrived,
        release_a,
        release_b,
    }
}

#[tokio::test(start_paused = true)]
async fn a_dead_nodes_call_is_made_again_by_another_node_and_its_late_result_refused() {
    let mut p = pair();
    let wf =
        p.a.register_workflow(
            "gate.ttl",
            knhk_workflow_engine::SourceFormat::Turtle,
            &turtle("Gate", &[("call", GATE_TASK, &["end"])]),
        )
        .await
        .unwrap()
        .workflow;
    let a_node = p.a.start().await.unwrap().node.unwrap();
    let b_node = p.b.start().await.unwrap().node.unwrap();
    assert_ne!(a_node, b_node);
    // A commits the step that starts the call, then is cut off with the call in flight: it
    // heartbeats no more.
    p.a_store.commits_left.store(1, Ordering::SeqCst);
    let case = p.a.create_case(wf.id, json!({}), true).await.unwrap();
    let (by, key) = p.arrived.recv().await.unwrap();
    assert_eq!(by, "a");
    assert!(p.a_store.cut.load(Ordering::SeqCst));
    // B takes the case over once A's lease has expired (the paused clock runs on while the
    // test waits) and makes the call again, with the same idempotency key.
    let before = tokio::time::Instant::now();
    let (by_b, key_b) = p.arrived.recv().await.unwrap();
    let waited = before.elapsed();
    assert_eq!((by_b, key_b.as_str()), ("b", key.as_str()));
    assert!(
        waited >= LEASE - HEARTBEAT,
        "taken over after {waited:?}, before the lease expired"
    );
    // A comes back and its call ends: its result is refused (its lease expired, and the case
    // is B's now) and dropped.
    p.a_store.cut.store(false, Ordering::SeqCst);
    p.release_a.send_replace(true);
    p.a.settle(case.id).await;
    let stored = p.b.case(case.id).await.unwrap();
    assert_eq!(stored.status, CaseStatus::Running);
    assert!(!stored.data.contains_key("by"), "{:?}", stored.data);
    // B's call ends: the case completes with B's result, fed back once.
    p.release_b.send_replace(true);
    let done = p.b.wait_until_ended(case.id).await.unwrap();
    assert_eq!(done.status, CaseStatus::Completed);
    assert_eq!(done.data["by"], "b");
    let history = p.b.history(case.id).await.unwrap();
    let results = history
        .iter()
        .filter(|e| {
            matches!(
                e.kind,
                EventKind::ConnectorCallSucceeded { .. } | EventKind::ConnectorCallFailed { .. }
            )
        })
        .count();
    assert_eq!(results, 1, "{history:#?}");
    p.a.shutdown().await;
    p.b.shutdown().await;
}

#[tokio::test(start_paused = true)]
async fn an_allocation_left_by_a_dead_node_is_made_by_another() {
    let p = pair();
    let wf =
        p.a.register_workflow(
            "rr.ttl",
            knhk_workflow_engine::SourceFormat::Turtle,
            &turtle(
                "RR",
                &[(
                    "do",
                    "knhk:role \"clerk\" ; knhk:allocation knhk:RoundRobin ;",
                    &["end"],
                )],
            ),
        )
        .await
        .unwrap()
        .workflow;
    p.a.start().await.unwrap();
    p.b.start().await.unwrap();
    // A commits the offer, then dies before it allocates the work item.
    p.a_store.commits_left.store(1, Ordering::SeqCst);
    let case = p.a.create_case(wf.id, json!({}), true).await.unwrap();
    p.a.settle(case.id).await;
    let items = |e: WorkflowEngine| async move {
        e.work_items(&WorkItemQuery {
            case: Some(case.id),
            ..Default::default()
        })
        .await
        .unwrap()
    };
    assert_eq!(items(p.b.clone()).await[0].status, WorkItemStatus::Offered);
    // B takes it over once A's lease expired, and allocates it.
    let mut updates = p.b.subscribe();
    loop {
        let u = updates.recv().await.unwrap();
        if u.case == case.id {
            break;
        }
    }
    let allocated = items(p.b.clone()).await;
    assert_eq!(allocated.len(), 1);
    assert_eq!(allocated[0].status, WorkItemStatus::Allocated);
    assert_eq!(allocated[0].owner.as_deref(), Some("ann"));
    let history = p.b.history(case.id).await.unwrap();
    assert_eq!(
        history
            .iter()
            .filter(|e| matches!(e.kind, EventKind::WorkItemAllocated { .. }))
            .count(),
        1
    );
    drop(p.release_a);
    drop(p.arrived);
    p.a_store.cut.store(false, Ordering::SeqCst);
    p.a.shutdown().await;
    p.b.shutdown().await;
}

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

/// Reads a case from the store every simulated 100 ms until it has ended, for at most a
/// simulated minute.
async fn ended(e: &WorkflowEngine, case: knhk_core::CaseId) -> knhk_workflow_engine::CaseView {
    for _ in 0..600 {
        let view = e.case(case).await.unwrap();
        if view.status.is_final() {
            return view;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    panic!("case {case} has not ended after a minute");
}

#[tokio::test(start_paused = true)]
async fn a_due_timer_is_fired_by_one_of_two_live_nodes() {
    let p = pair();
    let wf =
        p.a.register_workflow(
            "t.ttl",
            knhk_workflow_engine::SourceFormat::Turtle,
            &timed(5_000),
        )
        .await
        .unwrap()
        .workflow;
    p.a.start().await.unwrap();
    p.b.start().await.unwrap();
    let mut cases = Vec::new();
    for _ in 0..8 {
        cases.push(p.a.create_case(wf.id, json!({}), true).await.unwrap().id);
    }
    for case in &cases {
        // Either node may fire it: the store is read (a node announces only its own steps).
        let done = ended(&p.b, *case).await;
        assert_eq!(done.status, CaseStatus::Completed);
        let fired =
            p.b.history(*case)
                .await
                .unwrap()
                .into_iter()
                .filter(|e| matches!(e.kind, EventKind::TimerFired { .. }))
                .count();
        assert_eq!(fired, 1);
    }
    // Both nodes had every timer armed (A armed them, B read them at its poll); each was
    // claimed once, by one of them.
    let (by_a, by_b) = (
        p.a_store.claimed_timers.load(Ordering::SeqCst),
        p.b_store.claimed_timers.load(Ordering::SeqCst),
    );
    assert_eq!(
        by_a + by_b,
        cases.len(),
        "a claimed {by_a}, b claimed {by_b}"
    );
    p.a.shutdown().await;
    p.b.shutdown().await;
}
