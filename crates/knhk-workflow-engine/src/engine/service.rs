//! The long-running parts: start-up (the timer service, recovery of unfinished cases), the
//! service's `run`, and shutdown.

use knhk_core::{CaseId, CaseStatus, Effect, Input, TimerId};
use tokio::sync::mpsc;
use tokio_util::sync::CancellationToken;
use tracing::{info, warn};

use super::{WorkflowEngine, lock};
use crate::error::Error;
use crate::timers::TimerService;
use crate::view::QuarantinedCase;

/// What [`WorkflowEngine::start`] picked up.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Started {
    /// Running and suspended cases resumed from their last committed step.
    pub recovered_cases: usize,
    /// Stored timers armed again.
    pub armed_timers: usize,
    /// Unfinished cases that are quarantined (they did not load, now or before), with why; the
    /// others went on without them.
    pub quarantined: Vec<QuarantinedCase>,
}

impl WorkflowEngine {
    /// Runs the engine as a service until `shutdown` fires: starts it (timers, recovery), then
    /// waits, then stops everything it spawned.
    pub async fn run(self, shutdown: CancellationToken) -> Result<(), Error> {
        let started = self.start().await;
        if let Ok(s) = &started {
            info!(
                cases = s.recovered_cases,
                timers = s.armed_timers,
                "engine started"
            );
            shutdown.cancelled().await;
        }
        self.shutdown().await;
        started.map(|_| ())
    }

    /// Starts what a long-running process does besides taking inputs: the timer service,
    /// with every stored timer armed, and the recovery of every unfinished case. Call it once.
    pub async fn start(&self) -> Result<Started, Error> {
        let armed_timers = self.start_timers().await?;
        let (recovered_cases, quarantined) = self.recover().await?;
        Ok(Started {
            recovered_cases,
            armed_timers,
            quarantined,
        })
    }

    /// Starts the timer service and arms every stored timer; fired timers are fed to their
    /// cases.
    async fn start_timers(&self) -> Result<usize, Error> {
        let (fired_tx, mut fired_rx) = mpsc::unbounded_channel::<(CaseId, TimerId)>();
        let (service, timers) = TimerService::new(self.inner.clock, fired_tx);
        let stored = live_timers(self.inner.store.as_ref()).await?;
        for t in &stored {
            timers.arm(t.case_id, t.id, t.fires_at);
        }
        *lock(&self.inner.timers) = Some(timers.clone());
        // Another process sharing the store may arm timers after this start: read the stored
        // timers again now and then. Arming one the service holds already changes nothing, and
        // one that fired meanwhile is refused by its case, so reading too many is harmless.
        let store = self.inner.store.clone();
        let poll = self.inner.timer_poll;
        let cancel = self.inner.cancel.clone();
        self.inner.tracker.spawn(async move {
            loop {
                tokio::select! {
                    () = cancel.cancelled() => return,
                    () = tokio::time::sleep(poll) => {}
                }
                match live_timers(store.as_ref()).await {
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
                        Some((case, timer)) => {
                            let engine2 = engine.clone();
                            engine.spawn_for(case, async move {
                                engine2.feed(case, Input::TimerFired { timer }).await;
                            });
                        }
                    }
                }
            }
        });
        Ok(stored.len())
    }

    /// Picks up every unfinished case from its last committed step: connector calls in
    /// flight are made again with their original idempotency keys, allocations are redone. A
    /// case that does not load is quarantined and left out; the others go on. Returns how
    /// many cases were picked up, and those that are quarantined.
    async fn recover(&self) -> Result<(usize, Vec<QuarantinedCase>), Error> {
        // Ids only: a case whose row does not decode must not hide the others.
        let ids = self
            .inner
            .store
            // A suspended case may have had calls in flight too: their results are taken.
            // Only the cases with work in flight: the others wait in the store for an input.
            .case_ids_in_flight(&[CaseStatus::Running, CaseStatus::Suspended])
            .await?;
        let mut n = 0;
        let mut quarantined = Vec::new();
        for id in ids {
            let mut guard = self.inner.cases.lock(id).await;
            let live = match self.load(id).await {
                Ok(live) => live,
                // Set aside now, or before (then it is named again: nothing runs it).
                Err(Error::Quarantined { reason, .. }) => {
                    let at = match self.inner.store.quarantine_of(id).await {
                        Ok(Some(q)) => q.at,
                        _ => self.inner.clock.now(),
                    };
                    quarantined.push(QuarantinedCase { id, reason, at });
                    continue;
                }
                // Damaged, but the store could not record the quarantine (it is failing
                // too): left alone in this run all the same.
                Err(e) if e.is_corruption() => {
                    quarantined.push(QuarantinedCase {
                        id,
                        reason: e.to_string(),
                        at: self.inner.clock.now(),
                    });
                    continue;
                }
                Err(e) => return Err(e),
            };
            let effects: Vec<Effect> = live
                .case
                .outstanding(&live.wf)
                .into_iter()
                // Timers come back from the store in `start_timers`.
                .filter(|e| !matches!(e, Effect::ArmTimer { .. }))
                .filter(|e| match e {
                    Effect::OfferWorkItem { item, .. } => {
                        live.case.work_item(item).is_some_and(|w| w.owner.is_none())
                    }
                    _ => true,
                })
                .collect();
            // A row that says the case has work in flight when it has none (every row
            // migrated from before format 6 says so until its next step) is put right once,
            // guarded by the version read, so that the next start-up skips the case.
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
            // Only a case with calls in flight stays in memory: their results come soon. One
            // that waits for people, events or timers is loaded again when its input comes, so
            // that a worker's memory does not grow with the cases that merely wait.
            if effects
                .iter()
                .any(|e| matches!(e, Effect::CallConnector { .. }))
            {
                *guard = Some(live);
            }
            self.perform(id, effects);
            drop(guard);
            n += 1;
        }
        if n > 0 {
            info!(cases = n, "recovered unfinished cases");
        }
        Ok((n, quarantined))
    }

    /// Stops everything the engine spawned and waits for it to end.
    pub async fn shutdown(&self) {
        self.inner.cancel.cancel();
        self.inner.tracker.close();
        self.inner.tracker.wait().await;
    }
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
