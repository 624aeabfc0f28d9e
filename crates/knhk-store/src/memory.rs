//! An in-memory store for tests: the reference behaviour the conformance suite pins down.

use knhk_core::WorkflowId;
use std::collections::{BTreeMap, HashMap};
use std::ops::Bound;
use std::sync::{Arc, Mutex, MutexGuard};

use knhk_core::{CaseId, CaseStatus, Event, TimerId, Timestamp, WorkItemId};
use knhk_lockchain::{Tail, Tile, TileId};

use crate::commit;
use crate::error::Error;
use crate::plan::QueryPlan;
use crate::record::{
    CaseFilter, CaseRecord, Change, CheckpointRecord, Commit, IdempotencyRecord, NodeRecord,
    Orphans, QuarantineRecord, SnapshotRecord, TimerRecord, TreeHead, WorkItemFilter,
    WorkItemRecord, WorkflowRecord, WorkflowSummary, named_by,
};
use crate::store::Store;

/// A store that keeps everything in memory and loses it when the last handle is dropped.
/// Clones share the same data.
#[derive(Clone, Debug, Default)]
pub struct MemoryStore {
    state: Arc<Mutex<State>>,
}

#[derive(Debug, Default)]
struct State {
    workflows: BTreeMap<WorkflowId, WorkflowRecord>,
    cases: HashMap<CaseId, CaseRecord>,
    events: HashMap<CaseId, Vec<Event>>,
    work_items: BTreeMap<WorkItemId, WorkItemRecord>,
    timers: BTreeMap<TimerId, TimerRecord>,
    idempotency: HashMap<String, IdempotencyRecord>,
    sequences: HashMap<String, u64>,
    quarantine: HashMap<CaseId, QuarantineRecord>,
    snapshots: HashMap<CaseId, SnapshotRecord>,
    nodes: BTreeMap<u64, NodeRecord>,
    /// The last fencing token given.
    last_fence: u64,
    /// The claims of timers: the node's token and until when.
    timer_claims: HashMap<TimerId, (u64, Timestamp)>,
    /// The lockchain tree's right edge, its stored tiles and each leaf's index by event.
    tree: Tail,
    tiles: HashMap<TileId, Tile>,
    leaf_of: HashMap<(CaseId, u64), u64>,
    checkpoints: BTreeMap<u64, CheckpointRecord>,
}

impl State {
    /// Returns whether the node holding `fence` has a lease that has not expired at `now`.
    fn live(&self, fence: u64, now: Timestamp) -> bool {
        self.nodes.get(&fence).is_some_and(|n| n.expires_at > now)
    }

    /// Refuses a node whose lease has expired at `now`.
    fn check_live(&self, fence: u64, now: Timestamp) -> Result<(), Error> {
        if self.live(fence, now) {
            Ok(())
        } else {
            Err(Error::LeaseExpired { fence })
        }
    }
}

impl MemoryStore {
    /// Returns the ids of the cases in any of `status` (all when empty) that `keep` keeps, in
    /// the order of the case lists.
    fn ids_in(&self, status: &[CaseStatus], keep: fn(&CaseRecord) -> bool) -> Vec<CaseId> {
        let filter = CaseFilter {
            status: status.to_vec(),
            ..CaseFilter::default()
        };
        let mut found: Vec<&CaseRecord> = Vec::new();
        let state = self.lock();
        found.extend(
            state
                .cases
                .values()
                .filter(|c| filter.matches(c) && keep(c)),
        );
        found.sort_by_key(|c| (c.created_at, c.id));
        found.into_iter().map(|c| c.id).collect()
    }

    /// Creates an empty store.
    pub fn new() -> MemoryStore {
        MemoryStore::default()
    }

    fn lock(&self) -> MutexGuard<'_, State> {
        // Every mutation below is checked before it starts and cannot fail halfway, so a
        // poisoned lock still guards consistent data.
        self.state.lock().unwrap_or_else(|e| e.into_inner())
    }
}

#[async_trait::async_trait]
impl Store for MemoryStore {
    async fn put_workflow(&self, w: &WorkflowRecord) -> Result<(), Error> {
        let mut s = self.lock();
        if s.workflows.contains_key(&w.id) {
            return Err(Error::DuplicateWorkflow(w.id));
        }
        if s.workflows
            .values()
            .any(|o| o.uri == w.uri && o.version == w.version)
        {
            return Err(Error::DuplicateVersion {
                uri: w.uri.clone(),
                version: w.version,
            });
        }
        s.workflows.insert(w.id, w.clone());
        Ok(())
    }

    async fn workflow(&self, id: WorkflowId) -> Result<Option<WorkflowRecord>, Error> {
        Ok(self.lock().workflows.get(&id).cloned())
    }

    async fn latest_workflow(&self, uri: &str) -> Result<Option<WorkflowRecord>, Error> {
        Ok(self
            .lock()
            .workflows
            .values()
            .filter(|w| w.uri == uri)
            .max_by_key(|w| w.version)
            .cloned())
    }

    async fn workflows(&self) -> Result<Vec<WorkflowRecord>, Error> {
        let mut all: Vec<_> = self.lock().workflows.values().cloned().collect();
        all.sort_by(|a, b| (&a.name, a.version, a.id).cmp(&(&b.name, b.version, b.id)));
        Ok(all)
    }

    async fn workflow_summaries(&self) -> Result<Vec<WorkflowSummary>, Error> {
        let mut all: Vec<_> = self
            .lock()
            .workflows
            .values()
            .map(WorkflowSummary::of)
            .collect();
        all.sort_by(|a, b| (&a.name, a.version, a.id).cmp(&(&b.name, b.version, b.id)));
        Ok(all)
    }

    async fn workflows_named(&self, key: &str) -> Result<Vec<WorkflowSummary>, Error> {
        let mut found: Vec<_> = self
            .lock()
            .workflows
            .values()
            .filter(|w| w.uri == key || w.name == key)
            .map(WorkflowSummary::of)
            .collect();
        found.sort_by(|a, b| (&a.uri, a.version).cmp(&(&b.uri, b.version)));
        Ok(found)
    }

    async fn commit(&self, c: Commit) -> Result<(), Error> {
        let mut s = self.lock();
        if let Some(f) = c.fencing {
            let lease = s.nodes.get(&f.node).map(|n| n.expires_at);
            let owner = s.cases.get(&c.case.id).and_then(|r| r.owner);
            commit::check_fencing(&c, lease, owner)?;
        }
        commit::check(&c, s.cases.get(&c.case.id).map(|r| r.version))?;
        if let Some(i) = &c.idempotency
            && s.idempotency.contains_key(&i.key)
        {
            return Err(Error::DuplicateKey(i.key.clone()));
        }
        // Every check passed: the leaves go in with the events, nothing after can fail.
        if !c.leaves.is_empty() {
            let leaves: Vec<_> = crate::lockchain::leaves_of(&c).collect();
            let first = s.tree.size();
            for (i, (leaf, _)) in leaves.iter().enumerate() {
                s.leaf_of.insert((leaf.case, leaf.seq), first + i as u64);
            }
            for t in s.tree.append(&leaves) {
                s.tiles.insert(t.id, t);
            }
        }
        let Commit {
            case,
            events,
            work_items,
            timers,
            idempotency,
            snapshot,
            ..
        } = c;
        if let Some(snapshot) = snapshot {
            s.snapshots.insert(case.id, snapshot);
        }
        s.events.entry(case.id).or_default().extend(events);
        s.cases.insert(case.id, case);
        for change in work_items {
            match change {
                Change::Put(w) => {
                    s.work_items.insert(w.id, w);
                }
                Change::Delete(id) => {
                    s.work_items.remove(&id);
                }
            }
        }
        for change in timers {
            match change {
                Change::Put(t) => {
                    s.timer_claims.remove(&t.id);
                    s.timers.insert(t.id, t);
                }
                Change::Delete(id) => {
                    s.timers.remove(&id);
                    s.timer_claims.remove(&id);
                }
            }
        }
        if let Some(i) = idempotency {
            s.idempotency.insert(i.key.clone(), i);
        }
        Ok(())
    }

    async fn case(&self, id: CaseId) -> Result<Option<CaseRecord>, Error> {
        Ok(self.lock().cases.get(&id).cloned())
    }

    async fn cases(&self, f: &CaseFilter) -> Result<Vec<CaseRecord>, Error> {
        let mut found: Vec<_> = self
            .lock()
            .cases
            .values()
            .filter(|c| f.matches(c))
            .cloned()
            .collect();
        found.sort_by_key(|c| (c.created_at, c.id));
        if let Some(limit) = f.limit {
            found.truncate(limit);
        }
        Ok(found)
    }

    async fn case_ids_in_flight(&self, status: &[CaseStatus]) -> Result<Vec<CaseId>, Error> {
        Ok(self.ids_in(status, |c| c.in_flight))
    }

    async fn case_ids(&self, status: &[CaseStatus]) -> Result<Vec<CaseId>, Error> {
        Ok(self.ids_in(status, |_| true))
    }

    async fn settle_in_flight(&self, case: CaseId, version: u64) -> Result<bool, Error> {
        let mut state = self.lock();
        match state.cases.get_mut(&case) {
            Some(c) if c.version == version => {
                c.in_flight = false;
                Ok(true)
            }
            _ => Ok(false),
        }
    }

    async fn case_ids_by_prefix(&self, prefix: &str, limit: usize) -> Result<Vec<CaseId>, Error> {
        let state = self.lock();
        let mut ids: Vec<CaseId> = state
            .cases
            .keys()
            .filter(|id| named_by(&id.to_string(), prefix))
            .copied()
            .collect();
        ids.sort_unstable();
        ids.truncate(limit);
        Ok(ids)
    }

    async fn work_item_ids_by_prefix(
        &self,
        prefix: &str,
        limit: usize,
    ) -> Result<Vec<WorkItemId>, Error> {
        Ok(self
            .lock()
            .work_items
            .keys()
            .filter(|id| named_by(&id.to_string(), prefix))
            .take(limit)
            .copied()
            .collect())
    }

    async fn query_plans(&self) -> Result<Vec<QueryPlan>, Error> {
        // Memory has no planner: every read is a walk of a map, fine for tests.
        Ok(Vec::new())
    }

    async fn integrity(&self, _thorough: bool) -> Result<Vec<String>, Error> {
        // Memory holds what was written, checked as it was written.
        Ok(Vec::new())
    }

    async fn events(&self, case: CaseId, after_seq: u64) -> Result<Vec<Event>, Error> {
        Ok(self
            .lock()
            .events
            .get(&case)
            .map(|all| all.iter().filter(|e| e.seq > after_seq).cloned().collect())
            .unwrap_or_default())
    }

    async fn events_page(
        &self,
        case: CaseId,
        after_seq: u64,
        limit: usize,
    ) -> Result<Vec<Event>, Error> {
        Ok(self
            .lock()
            .events
            .get(&case)
            .map(|all| {
                all.iter()
                    .filter(|e| e.seq > after_seq)
                    .take(limit)
                    .cloned()
                    .collect()
            })
            .unwrap_or_default())
    }

    async fn snapshot(&self, case: CaseId) -> Result<Option<SnapshotRecord>, Error> {
        Ok(self.lock().snapshots.get(&case).cloned())
    }

    async fn work_items(&self, f: &WorkItemFilter) -> Result<Vec<WorkItemRecord>, Error> {
        let mut found: Vec<_> = self
            .lock()
            .work_items
            .values()
            .filter(|w| f.matches(w))
            .cloned()
            .collect();
        found.sort_by_key(|w| (w.offered_at, w.id));
        if let Some(limit) = f.limit {
            found.truncate(limit);
        }
        Ok(found)
    }

    async fn queue_lengths(&self, users: &[String]) -> Result<Vec<u64>, Error> {
        let state = self.lock();
        Ok(users
            .iter()
            .map(|u| {
                state
                    .work_items
                    .values()
                    .filter(|w| w.owner.as_ref() == Some(u))
                    .count() as u64
            })
            .collect())
    }

    async fn work_item(&self, id: WorkItemId) -> Result<Option<WorkItemRecord>, Error> {
        Ok(self.lock().work_items.get(&id).cloned())
    }

    async fn timers(&self) -> Result<Vec<TimerRecord>, Error> {
        let mut all: Vec<_> = self.lock().timers.values().cloned().collect();
        all.sort_by_key(|t| (t.fires_at, t.id));
        Ok(all)
    }

    async fn idempotency(&self, key: &str) -> Result<Option<IdempotencyRecord>, Error> {
        Ok(self.lock().idempotency.get(key).cloned())
    }

    async fn next_in_sequence(&self, name: &str) -> Result<u64, Error> {
        let mut state = self.lock();
        let n = state.sequences.entry(name.to_owned()).or_insert(0);
        *n += 1;
        Ok(*n)
    }

    async fn quarantine(&self, q: &QuarantineRecord) -> Result<(), Error> {
        self.lock()
            .quarantine
            .entry(q.case)
            .or_insert_with(|| q.clone());
        Ok(())
    }

    async fn release_quarantine(&self, case: CaseId) -> Result<bool, Error> {
        Ok(self.lock().quarantine.remove(&case).is_some())
    }

    async fn quarantined(&self) -> Result<Vec<QuarantineRecord>, Error> {
        let mut all: Vec<_> = self.lock().quarantine.values().cloned().collect();
        all.sort_by_key(|q| (q.at, q.case));
        Ok(all)
    }

    async fn quarantine_of(&self, case: CaseId) -> Result<Option<QuarantineRecord>, Error> {
        Ok(self.lock().quarantine.get(&case).cloned())
    }

    async fn ping(&self) -> Result<(), Error> {
        Ok(())
    }

    async fn register_node(
        &self,
        name: &str,
        now: Timestamp,
        expires_at: Timestamp,
    ) -> Result<u64, Error> {
        let mut s = self.lock();
        s.last_fence += 1;
        let fence = s.last_fence;
        s.nodes.insert(
            fence,
            NodeRecord {
                fence,
                name: name.to_owned(),
                started_at: now,
                expires_at,
            },
        );
        Ok(fence)
    }

    async fn renew_lease(
        &self,
        fence: u64,
        now: Timestamp,
        expires_at: Timestamp,
    ) -> Result<bool, Error> {
        let mut s = self.lock();
        match s.nodes.get_mut(&fence) {
            Some(n) if n.expires_at > now => {
                n.expires_at = expires_at;
                Ok(true)
            }
            _ => Ok(false),
        }
    }

    async fn nodes(&self) -> Result<Vec<NodeRecord>, Error> {
        Ok(self.lock().nodes.values().cloned().collect())
    }

    async fn claim_cases(
        &self,
        fence: u64,
        now: Timestamp,
        which: Orphans,
        limit: usize,
    ) -> Result<Vec<CaseId>, Error> {
        let mut s = self.lock();
        s.check_live(fence, now)?;
        let mut found: Vec<(Timestamp, CaseId)> = s
            .cases
            .values()
            .filter(|c| {
                c.in_flight
                    && matches!(c.status, CaseStatus::Running | CaseStatus::Suspended)
                    && match c.owner {
                        None => which == Orphans::AlsoUnowned,
                        Some(owner) => s.nodes.get(&owner).is_some_and(|n| n.expires_at <= now),
                    }
            })
            .map(|c| (c.created_at, c.id))
            .collect();
        found.sort_unstable();
        found.truncate(limit);
        let ids: Vec<CaseId> = found.into_iter().map(|(_, id)| id).collect();
        for id in &ids {
            if let Some(c) = s.cases.get_mut(id) {
                c.owner = Some(fence);
            }
        }
        Ok(ids)
    }

    async fn claim_due_timers(
        &self,
        fence: u64,
        now: Timestamp,
        until: Timestamp,
        limit: usize,
    ) -> Result<Vec<TimerRecord>, Error> {
        let mut s = self.lock();
        s.check_live(fence, now)?;
        let mut due: Vec<TimerRecord> = s
            .timers
            .values()
            .filter(|t| {
                t.fires_at <= now
                    && s.timer_claims
                        .get(&t.id)
                        .is_none_or(|&(_, claimed_until)| claimed_until <= now)
            })
            .cloned()
            .collect();
        due.sort_by_key(|t| (t.fires_at, t.id));
        due.truncate(limit);
        for t in &due {
            s.timer_claims.insert(t.id, (fence, until));
        }
        Ok(due)
    }

    async fn lockchain_head(&self) -> Result<TreeHead, Error> {
        Ok(crate::lockchain::head_of(&self.lock().tree))
    }

    async fn lockchain_tiles(&self, ids: &[TileId]) -> Result<Vec<Tile>, Error> {
        let s = self.lock();
        Ok(ids
            .iter()
            .filter_map(|id| s.tiles.get(id).cloned())
            .collect())
    }

    async fn event_leaf(&self, case: CaseId, seq: u64) -> Result<Option<u64>, Error> {
        Ok(self.lock().leaf_of.get(&(case, seq)).copied())
    }

    async fn put_checkpoint(&self, c: &CheckpointRecord) -> Result<bool, Error> {
        let mut s = self.lock();
        if s.checkpoints.contains_key(&c.size) {
            return Ok(false);
        }
        s.checkpoints.insert(c.size, c.clone());
        Ok(true)
    }

    async fn checkpoints(
        &self,
        after_size: u64,
        limit: usize,
    ) -> Result<Vec<CheckpointRecord>, Error> {
        let s = self.lock();
        let after = (Bound::Excluded(after_size), Bound::Unbounded);
        Ok(s.checkpoints
            .range(after)
            .take(limit)
            .map(|(_, c)| c.clone())
            .collect())
    }

    async fn latest_checkpoint(&self) -> Result<Option<CheckpointRecord>, Error> {
        Ok(self.lock().checkpoints.values().next_back().cloned())
    }
}
