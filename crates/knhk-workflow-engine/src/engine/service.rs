//! The long-running parts: the timer queue, recovery of unfinished cases, shutdown.

use super::*;

impl WorkflowEngine {
    /// Starts the timer queue and arms every stored timer; fired timers are fed to their cases.
    pub async fn spawn_timers(&self) -> Result<usize, Error> {
        let (tx, rx) = mpsc::unbounded_channel();
        let (fired_tx, mut fired_rx) = mpsc::unbounded_channel::<(CaseId, TimerId)>();
        let stored = self.inner.store.timers().await?;
        for t in &stored {
            let _ = tx.send(TimerCmd::Arm {
                case: t.case_id,
                timer: t.id,
                at: t.fires_at,
            });
        }
        *lock(&self.inner.timers) = Some(tx);
        self.inner.tracker.spawn(timers::run(
            self.inner.clock,
            rx,
            fired_tx,
            self.inner.cancel.clone(),
        ));
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
    /// flight are made again with their original idempotency keys, allocations are redone.
    /// Returns how many cases were picked up.
    pub async fn recover(&self) -> Result<usize, Error> {
        let filter = CaseFilter {
            // A suspended case may have had calls in flight too: their results are taken.
            status: vec![CaseStatus::Running, CaseStatus::Suspended],
            workflow: None,
            limit: None,
        };
        let cases = self.inner.store.cases(&filter).await?;
        let n = cases.len();
        for record in cases {
            let slot = self.slot(record.id);
            let mut guard = slot.lock().await;
            let live = self.load(record.id).await?;
            let effects: Vec<Effect> = live
                .case
                .outstanding(&live.wf.wf)
                .into_iter()
                // Timers come back from the store in `spawn_timers`.
                .filter(|e| !matches!(e, Effect::ArmTimer { .. }))
                .filter(|e| match e {
                    Effect::OfferWorkItem { item, .. } => {
                        live.case.work_item(item).is_some_and(|w| w.owner.is_none())
                    }
                    _ => true,
                })
                .collect();
            *guard = Some(live);
            self.perform(record.id, effects);
            drop(guard);
        }
        if n > 0 {
            info!(cases = n, "recovered unfinished cases");
        }
        Ok(n)
    }

    /// Stops everything the engine spawned and waits for it to end.
    pub async fn shutdown(&self) {
        self.inner.cancel.cancel();
        self.inner.tracker.close();
        self.inner.tracker.wait().await;
    }
}
