//! The long-running parts: start-up (the node's lease, the timer service, the cases with
//! work in flight taken up), the heartbeat that renews the lease and takes over the cases of
//! dead nodes, the service's `run`, and shutdown.
//!
//! Several engines may share one store, each a node with a lease in it. A case's work in
//! flight (connector calls, allocations) is its owner's, the node that committed the step
//! that set it going; when a node's lease expires, each live node's sweep claims its cases
//! (one node wins each) and does their work again, with the same idempotency keys. Due timers
//! are claimed before they are fired, so one node fires each.

use std::collections::HashSet;

use knhk_core::{CaseId, Effect, Input, TimerId, Timestamp, WorkItemId};
use knhk_store::Orphans;
use tokio::sync::mpsc;
use tokio_util::sync::CancellationToken;
use tracing::{debug, info, warn};

use super::{Live, WorkflowEngine, lock};
use crate::error::Error;
use crate::timers::TimerService;
use crate::view::QuarantinedCase;

/// What [`WorkflowEngine::start`] picked up.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Started {
    /// Running and suspended cases with work in flight taken up from their last committed
    /// step: those of dead nodes, and those no node owned.
    pub recovered_cases: usize,
    /// Stored timers armed again.
    pub armed_timers: usize,
    /// Unfinished cases that are quarantined (they did not load, now or before), with why; the
    /// others went on without them.
    pub quarantined: Vec<QuarantinedCase>,
    /// The fencing token of this engine's node in the store; `None` on a read-only store,
    /// where the process serves reads only: no node, no timers, no cases taken up.
    pub node: Option<u64>,
}

/// How many cases one claim of a sweep takes, and how many due timers one claim takes.
const CLAIM_BATCH: usize = 64;

impl WorkflowEngine {
    /// Runs the engine as a service until `shutdown` fires: starts it (timers, recovery), then
    /// waits, then stops everything it spawned.
    pub async fn run(self, shutdown: CancellationToken) -> Result<(), Error> {
        let started = self.start().await;
        if let Ok(s) = &started {
            info!(
                cases = s.recovered_cases,
                timers = s.armed_timers,
                node = s.node,
                "engine started"
            );
            shutdown.cancelled().await;
        }
        self.shutdown().await;
        started.map(|_| ())
    }

    /// Starts what a long-running process does besides taking inputs: registers the engine
    /// as a node of the store (with a lease it renews every
    /// [`EngineConfig::heartbeat_interval`](super::EngineConfig)), starts the timer service
    /// with every stored timer armed, and takes up the cases with work in flight that dead
    /// nodes, or no node, left. Call it once.
    pub async fn start(&self) -> Result<Started, Error> {
        let node = match self.register().await {
            Ok(node) => node,
            Err(Error::Store(knhk_store::Error::ReadOnly { .. })) => {
                warn!(
                    "the store is read-only: this process serves reads only, and fires no \
                     timers and takes up no cases"
                );
                return Ok(Started {
                    recovered_cases: 0,
                    armed_timers: 0,
                    quarantined: Vec::new(),
                    node: None,
                });
            }
            Err(e) => return Err(e),
        };
        let armed_timers = self.start_timers().await?;
        let (recovered_cases, quarantined) = self.sweep(Orphans::AlsoUnowned).await?;
        self.start_heartbeat();
        self.start_checkpointer();
        Ok(Started {
            recovered_cases,
            armed_timers,
            quarantined,
            node: Some(node),
        })
    }

    /// Returns when a lease taken or renewed at `now` ends.
    fn lease_end(&self, now: Timestamp) -> Timestamp {
        let ms = i64::try_from(self.inner.lease.as_millis()).unwrap_or(i64::MAX);
        Timestamp(now.0.saturating_add(ms))
    }

    /// Registers this engine as a node of the store, with a new fencing token.
    async fn register(&self) -> Result<u64, Error> {
        let now = self.inner.clock.now();
        let fence = self
            .inner
            .store
            .register_node(&self.inner.node_name, now, self.lease_end(now))
            .await?;
        *lock(&self.inner.fence) = Some(fence);
        info!(node = fence, name = %self.inner.node_name, "node registered");
        Ok(fence)
    }

    /// Renews the lease every heartbeat interval and sweeps for the cases of dead nodes.
    fn start_heartbeat(&self) {
        let engine = self.clone();
        let cancel = self.inner.cancel.clone();
        let every = self.inner.heartbeat_interval;
        self.inner.tracker.spawn(async move {
            loop {
                tokio::select! {
                    () = cancel.cancelled() => return,
                    () = tokio::time::sleep(every) => {}
                }
                engine.heartbeat().await;
            }
        });
    }

    /// Renews the node's lease, then takes up what dead nodes left. A lease found expired
    /// (the process stalled, or the store was out of reach, past the lease) makes the node
    /// drop the work it owned, which the others take over, and register again.
    pub(super) async fn heartbeat(&self) {
        let Some(fence) = self.fence() else {
            return;
        };
        let now = self.inner.clock.now();
        match self
            .inner
            .store
            .renew_lease(fence, now, self.lease_end(now))
            .await
        {
            Ok(true) => {}
            Ok(false) => {
                warn!(
                    node = fence,
                    "node lease expired: its work is the other nodes' now; registering again"
                );
                self.drop_owned_work();
                if let Err(e) = self.register().await {
                    warn!(error = %e, "cannot register the node again; trying at the next heartbeat");
                    return;
                }
            }
            Err(e) => {
                warn!(node = fence, error = %e, "cannot renew the node lease; trying at the next heartbeat");
                return;
            }
        }
        let left: Vec<CaseId> = lock(&self.inner.untaken).drain().collect();
        for id in left {
            if let Err(e) = self.take_up(id).await {
                warn!(case = %id, error = %e, "cannot take up a claimed case; trying at the next heartbeat");
                lock(&self.inner.untaken).insert(id);
            }
        }
        if let Err(e) = self.sweep(Orphans::OfDeadNodes).await {
            warn!(error = %e, "cannot sweep for the cases of dead nodes; trying at the next heartbeat");
        }
    }

    /// Aborts the connector calls this node set going: their results would be refused, and
    /// the nodes that claim their cases make them again.
    fn drop_owned_work(&self) {
        let calls: Vec<_> = lock(&self.inner.calls).drain().collect();
        for (_, call) in calls {
            call.abort();
        }
    }

    /// Starts the timer service and arms every stored timer. A due timer is claimed in the
    /// store before it is fired, so that one node fires it.
    async fn start_timers(&self) -> Result<usize, Error> {
        let (fired_tx, mut fired_rx) = mpsc::unbounded_channel::<(CaseId, TimerId)>();
        let (service, timers) = TimerService::new(self.inner.clock, fired_tx);
        let stored = live_timers(self.inner.store.as_ref()).await?;
        for t in &stored {
            timers.arm(t.case_id, t.id, t.fires_at);
        }
        *lock(&self.inner.timers) = Some(timers.clone());
        // Another process sharing the store may arm timers after this start: read the stored
        // timers again now and then, so that the service wakes when they fall due, and claim
        // those due (a node that died holding a claim lets it end). Arming one the service
        // holds already changes nothing.
        let engine = self.clone();
        let poll = self.inner.timer_poll;
        let cancel = self.inner.cancel.clone();
        self.inner.tracker.spawn(async move {
            loop {
                tokio::select! {
                    () = cancel.cancelled() => return,
                    () = tokio::time::sleep(poll) => {}
                }
                match live_timers(engine.inner.store.as_ref()).await {
                    Ok(stored) => {
                        for t in &stored {
                            if !timers.arm(t.case_id, t.id, t.fires_at) {
                                return;
                            }
                        }
                    }
                    Err(e) => {
                        warn!(error = %e, "cannot read the stored timers; trying again later")
                    }
                }
                engine.fire_due_timers().await;
            }
        });
        self.inner
            .tracker
            .spawn(service.run(self.inner.cancel.clone()));
        let engine = self.clone();
        let cancel = self.inner.cancel.clone();
        self.inner.tracker.spawn(async move {
            loop {
                tokio::select! {
                    () = cancel.cancelled() => return,
                    next = fired_rx.recv() => match next {
                        None => return,
                        Some(_) => {
                            // Whatever else fell due meanwhile goes in the same claim.
                            while fired_rx.try_recv().is_ok() {}
                            engine.fire_due_timers().await;
                        }
                    }
                }
            }
        });
        Ok(stored.len())
    }

    /// Claims the timers due now that no other node holds, and fires each into its case.
    async fn fire_due_timers(&self) {
        let Some(fence) = self.fence() else {
            return;
        };
        loop {
            let now = self.inner.clock.now();
            let claimed = match self
                .inner
                .store
                .claim_due_timers(fence, now, self.lease_end(now), CLAIM_BATCH)
                .await
            {
                Ok(claimed) => claimed,
                Err(e) => {
                    warn!(error = %e, "cannot claim due timers; trying again later");
                    return;
                }
            };
            let full = claimed.len() == CLAIM_BATCH;
            for t in claimed {
                // A quarantined case would refuse it at every claim.
                if matches!(self.inner.store.quarantine_of(t.case_id).await, Ok(Some(_))) {
                    continue;
                }
                let engine = self.clone();
                let (case, timer) = (t.case_id, t.id);
                self.spawn_for(case, async move {
                    engine.feed(case, Input::TimerFired { timer }, None).await;
                });
            }
            if !full {
                return;
            }
        }
    }

    /// Claims the cases with work in flight that `which` names, a batch at a time, and takes
    /// each up. Returns how many were taken up, and those that are quarantined.
    async fn sweep(&self, which: Orphans) -> Result<(usize, Vec<QuarantinedCase>), Error> {
        let Some(fence) = self.fence() else {
            return Ok((0, Vec::new()));
        };
        let mut n = 0;
        let mut quarantined = Vec::new();
        loop {
            let now = self.inner.clock.now();
            let ids = self
                .inner
                .store
                .claim_cases(fence, now, which, CLAIM_BATCH)
                .await?;
            let full = ids.len() == CLAIM_BATCH;
            for id in ids {
                match self.take_up(id).await {
                    Ok(None) => n += 1,
                    Ok(Some(q)) => quarantined.push(q),
                    Err(e) => {
                        // Claimed, so no other node takes it while this one lives: the next
                        // heartbeat tries again.
                        warn!(case = %id, error = %e, "cannot take up a claimed case; trying at the next heartbeat");
                        lock(&self.inner.untaken).insert(id);
                    }
                }
            }
            if !full {
                break;
            }
        }
        if n > 0 {
            info!(cases = n, node = fence, "took up cases with work in flight");
        }
        Ok((n, quarantined))
    }

    /// Takes up a case this node claimed, from its last committed step: connector calls in
    /// flight are made again with their original idempotency keys, allocations are redone.
    /// Returns the quarantine of a case that does not load (it is left out).
    async fn take_up(&self, id: CaseId) -> Result<Option<QuarantinedCase>, Error> {
        let mut guard = self.inner.cases.lock(id).await;
        let live = match self.load(id).await {
            Ok(live) => live,
            // Set aside now, or before (then it is named again: nothing runs it).
            Err(Error::Quarantined { reason, .. }) => {
                let at = match self.inner.store.quarantine_of(id).await {
                    Ok(Some(q)) => q.at,
                    _ => self.inner.clock.now(),
                };
                return Ok(Some(QuarantinedCase { id, reason, at }));
            }
            // Damaged, but the store could not record the quarantine (it is failing too):
            // left alone in this run all the same.
            Err(e) if e.is_corruption() => {
                return Ok(Some(QuarantinedCase {
                    id,
                    reason: e.to_string(),
                    at: self.inner.clock.now(),
                }));
            }
            Err(e) => return Err(e),
        };
        let effects = outstanding_work(&live);
        // A row that says the case has work in flight when it has none (every row migrated
        // from before format 6 says so until its next step) is put right once, guarded by
        // the version read, so that the next start-up skips the case.
        if !crate::records::has_work_in_flight(&live.case, &live.wf) {
            match self
                .inner
                .store
                .settle_in_flight(id, live.case.last_seq())
                .await
            {
                Ok(_) => {}
                // Only a cost: the next start-up reads the case again.
                Err(e) => warn!(case = %id, error = %e, "cannot mark a case as settled"),
            }
        }
        // Only a case with calls in flight stays in memory: their results come soon. One that
        // waits for people, events or timers is loaded again when its input comes, so that a
        // worker's memory does not grow with the cases that merely wait. A copy cached before
        // the claim names the old owner: it goes, lest the next step take the work over again.
        if effects
            .iter()
            .any(|e| matches!(e, Effect::CallConnector { .. }))
        {
            *guard = Some(live);
        } else {
            guard.take();
        }
        debug!(case = %id, "case taken up");
        self.perform(id, effects);
        drop(guard);
        Ok(None)
    }

    /// Stops everything the engine spawned and waits for it to end; a node then ends its
    /// lease, so that the other nodes take its cases with work in flight over at once. Last,
    /// the connector instances close their connections.
    pub async fn shutdown(&self) {
        // A node's last leaves get a checkpoint, anchored before the anchor stops.
        if self.inner.lockchain.is_some()
            && self.fence().is_some()
            && let Err(e) = self.take_checkpoint().await
        {
            warn!(error = %e, "cannot take the last lockchain checkpoint");
        }
        self.inner.cancel.cancel();
        self.inner.tracker.close();
        self.inner.tracker.wait().await;
        if let Some(fence) = self.fence() {
            let now = self.inner.clock.now();
            if let Err(e) = self.inner.store.renew_lease(fence, now, now).await {
                warn!(node = fence, error = %e, "cannot end the node lease; it expires by itself");
            }
        }
        // Nothing calls a connector any more: their pools close their connections.
        self.inner.connectors.close().await;
    }
}

/// Returns the work in flight of a case that its owner performs: connector calls, and the
/// allocation of work items nobody holds (timers come back from the store, claimed).
fn outstanding_work(live: &Live) -> Vec<Effect> {
    live.case
        .outstanding(&live.wf)
        .into_iter()
        .filter(|e| !matches!(e, Effect::ArmTimer { .. }))
        .filter(|e| match e {
            Effect::OfferWorkItem { item, .. } => {
                live.case.work_item(item).is_some_and(|w| w.owner.is_none())
            }
            _ => true,
        })
        .collect()
}

/// Returns the work in flight of a case that a step of this node took over from its owner,
/// besides what the step itself set going (`performed`): it is done again, as after a crash.
pub(super) fn taken_over(live: &Live, performed: &[Effect]) -> Vec<Effect> {
    let started: HashSet<WorkItemId> = performed
        .iter()
        .filter_map(|e| match e {
            Effect::CallConnector { item, .. } | Effect::OfferWorkItem { item, .. } => Some(*item),
            _ => None,
        })
        .collect();
    outstanding_work(live)
        .into_iter()
        .filter(|e| match e {
            Effect::CallConnector { item, .. } | Effect::OfferWorkItem { item, .. } => {
                !started.contains(item)
            }
            _ => false,
        })
        .collect()
}

/// Returns the stored timers of the cases that are not quarantined: a quarantined case's
/// timers would fire again at every poll, and be refused each time.
async fn live_timers(store: &dyn knhk_store::Store) -> Result<Vec<knhk_store::TimerRecord>, Error> {
    let set_aside: std::collections::HashSet<CaseId> = store
        .quarantined()
        .await?
        .into_iter()
        .map(|q| q.case)
        .collect();
    let mut timers = store.timers().await?;
    timers.retain(|t| !set_aside.contains(&t.case_id));
    Ok(timers)
}
