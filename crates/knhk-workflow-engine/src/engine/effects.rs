//! Performing effects: the one `match` over `Effect` in the runtime, feeding results back,
//! and waiting for what was set going.

use std::future::Future;
use std::sync::Arc;

use knhk_core::model::Allocation;
use knhk_core::{CaseId, Effect, Input};
use tokio::sync::broadcast;
use tracing::{debug, error, info, warn};

use super::{CaseFault, CaseUpdate, FEED_ATTEMPTS, WorkflowEngine, lock};
use crate::error::{Error, ErrorCode};
use crate::view::CaseView;

impl WorkflowEngine {
    /// Performs the effects of one committed step: the one place that acts on them.
    ///
    /// The work set going here (connector calls, allocations) is owned by this engine's node
    /// as it stands now: its results are committed under that fencing token, and dropped if
    /// another node has taken the case over meanwhile.
    pub(super) fn perform(&self, case: CaseId, effects: Vec<Effect>) {
        let owned_by = self.fence();
        for effect in effects {
            match effect {
                Effect::CallConnector {
                    item,
                    binding,
                    hints,
                    input,
                    idempotency_key,
                    ..
                } => {
                    let engine = self.clone();
                    let policy = crate::retry::retry_policy(&hints);
                    let fut = async move {
                        let result = engine
                            .inner
                            .connectors
                            .call(
                                &binding.connector,
                                &binding.settings,
                                input,
                                &idempotency_key,
                                &policy,
                            )
                            .await;
                        lock(&engine.inner.calls).remove(&item);
                        let input = match result {
                            // An output over the engine's bound on one input fails the call
                            // rather than go into the history whole.
                            Ok(answer) => {
                                let failed_attempts = failed_attempts(answer.failed_attempts);
                                match engine.check_size("connector output", &answer.output) {
                                    Ok(()) => Input::ConnectorSucceeded {
                                        item,
                                        output: answer.output,
                                        failed_attempts,
                                    },
                                    Err(too_large) => Input::ConnectorFailed {
                                        item,
                                        error: too_large.to_string(),
                                        failed_attempts,
                                    },
                                }
                            }
                            Err(failure) => {
                                warn!(case = %case, item = %item, error = %failure, "connector call failed");
                                Input::ConnectorFailed {
                                    item,
                                    error: failure.to_string(),
                                    failed_attempts: failed_attempts(failure.failed_attempts),
                                }
                            }
                        };
                        engine.feed(case, input, owned_by).await;
                    };
                    let handle = self.spawn_for(case, fut);
                    lock(&self.inner.calls).insert(item, handle);
                }
                Effect::CancelConnectorCall { item } => {
                    if let Some(handle) = lock(&self.inner.calls).remove(&item) {
                        handle.abort();
                    }
                }
                Effect::OfferWorkItem { item, binding, .. } => match binding.allocation {
                    Allocation::RoleOffer => {}
                    Allocation::RoundRobin => {
                        let engine = self.clone();
                        self.spawn_for(case, async move {
                            if let Some(user) = engine.round_robin(&binding.roles).await {
                                engine
                                    .feed(case, Input::AllocateWorkItem { item, user }, owned_by)
                                    .await;
                            }
                        });
                    }
                    Allocation::ShortestQueue => {
                        let engine = self.clone();
                        self.spawn_for(case, async move {
                            if let Some(user) = engine.shortest_queue(&binding.roles).await {
                                engine
                                    .feed(case, Input::AllocateWorkItem { item, user }, owned_by)
                                    .await;
                            }
                        });
                    }
                },
                // The work item rows went away in the step's own commit.
                Effect::WithdrawWorkItem { .. } => {}
                Effect::ArmTimer { timer, fires_at } => {
                    if let Some(timers) = lock(&self.inner.timers).as_ref()
                        && !timers.arm(case, timer, fires_at)
                    {
                        debug!("timer service is gone");
                    }
                }
                Effect::CancelTimer { timer } => {
                    if let Some(timers) = lock(&self.inner.timers).as_ref()
                        && !timers.cancel(timer)
                    {
                        debug!("timer service is gone");
                    }
                }
                // Triggers arrive through `trigger`.
                Effect::AwaitTrigger { .. } => {}
                Effect::CaseEnded { status } => {
                    info!(case = %case, status = %status, "case ended");
                }
            }
        }
    }

    /// Feeds the result of an effect back; a result the case no longer wants is dropped. When
    /// the store fails (full, unavailable), the result is offered again with backoff; if that
    /// keeps failing, or the failure is not one that passes (a corrupt case), it is given up
    /// loudly: logged as an error, announced to [`WorkflowEngine::subscribe_faults`] and kept
    /// for [`WorkflowEngine::settled`]. The case stays as committed, and `recover` redoes the
    /// effect after a restart.
    ///
    /// `owned_by` is the fencing token under which this node owned the work whose result this
    /// is; when another node owns the case now (it took the case over from this node, whose
    /// lease expired, or a step it committed took the work over), the result is dropped: that
    /// node does the work again, with the same idempotency keys.
    pub(super) async fn feed(&self, case: CaseId, input: Input, owned_by: Option<u64>) {
        let mut backoff = std::time::Duration::from_millis(50);
        for attempt in 1..=FEED_ATTEMPTS {
            match self.apply_boxed(case, input.clone(), owned_by).await {
                Ok(_) => return,
                Err(Error::Case(e)) => {
                    debug!(case = %case, error = %e, "result no longer wanted");
                    return;
                }
                Err(Error::Store(
                    e @ (knhk_store::Error::Fenced { .. } | knhk_store::Error::LeaseExpired { .. }),
                )) => {
                    info!(case = %case, error = %e, "result dropped: another node owns the case's work now");
                    return;
                }
                Err(Error::ShuttingDown) => return,
                Err(e)
                    if attempt < FEED_ATTEMPTS
                        && matches!(e.code(), ErrorCode::Unavailable | ErrorCode::Aborted) =>
                {
                    warn!(case = %case, error = %e, attempt, "cannot feed a result back; trying again");
                    tokio::select! {
                        () = self.inner.cancel.cancelled() => return,
                        () = tokio::time::sleep(backoff) => {}
                    }
                    backoff = (backoff * 2).min(std::time::Duration::from_secs(5));
                }
                Err(e) => {
                    if self.fence().is_some() {
                        // A node takes the case up again at its next heartbeat, from its last
                        // committed step: the work whose result is lost is done again, with
                        // the same idempotency keys, once the store answers.
                        error!(case = %case, error = %e, attempts = attempt, "cannot feed a result back; the case is taken up again at the next heartbeat");
                        lock(&self.inner.untaken).insert(case);
                    } else {
                        error!(case = %case, error = %e, attempts = attempt, "cannot feed a result back; giving up until a restart");
                    }
                    let fault = CaseFault {
                        case,
                        attempts: attempt,
                        error: Arc::new(e),
                    };
                    lock(&self.inner.lost)
                        .entry(case)
                        .or_insert_with(|| fault.clone());
                    // Nobody listening is fine: the fault is kept for `settled` too.
                    let _ = self.inner.faults.send(fault);
                    return;
                }
            }
        }
    }

    /// Returns a receiver of every result given up from now on (see [`WorkflowEngine::feed`]).
    pub fn subscribe_faults(&self) -> broadcast::Receiver<CaseFault> {
        self.inner.faults.subscribe()
    }

    /// Returns the user whose turn it is in the first of `roles` that has members. The turn
    /// is a sequence in the store, so every process sharing it takes the same turns.
    pub(super) async fn round_robin(&self, roles: &[String]) -> Option<String> {
        let role = self.inner.directory.round_robin_role(roles)?;
        match self
            .inner
            .store
            .next_in_sequence(&format!("round_robin/{role}"))
            .await
        {
            Ok(turn) => self.inner.directory.member_for_turn(role, turn),
            Err(e) => {
                warn!(error = %e, role, "cannot take a round-robin turn");
                None
            }
        }
    }

    /// Returns the candidate of `roles` who holds the fewest work items (the first of them
    /// on a tie), the queue lengths counted by the store in one query.
    pub(super) async fn shortest_queue(&self, roles: &[String]) -> Option<String> {
        let candidates = self.inner.directory.candidates(roles);
        let lengths = match self.inner.store.queue_lengths(&candidates).await {
            Ok(lengths) => lengths,
            Err(e) => {
                warn!(error = %e, "cannot count work items for allocation");
                return None;
            }
        };
        candidates
            .into_iter()
            .zip(lengths)
            .min_by_key(|(_, n)| *n)
            .map(|(user, _)| user)
    }

    /// Spawns work on behalf of a case, counted until it ends so that `settle` can wait.
    pub(super) fn spawn_for(
        &self,
        case: CaseId,
        fut: impl Future<Output = ()> + Send + 'static,
    ) -> tokio::task::AbortHandle {
        *lock(&self.inner.pending).entry(case).or_insert(0) += 1;
        let engine = self.clone();
        let cancel = self.inner.cancel.clone();
        let task = self.inner.tracker.spawn(async move {
            let _done = Done { engine, case };
            tokio::select! {
                () = cancel.cancelled() => {}
                () = fut => {}
            }
        });
        task.abort_handle()
    }

    pub(super) fn announce(&self, record: &CaseView, previous: u64) {
        // Nobody listening is fine.
        let _ = self.inner.updates.send(CaseUpdate {
            case: record.id,
            previous,
            version: record.version,
            status: record.status,
        });
    }

    /// Returns a receiver of every step committed from now on.
    pub fn subscribe(&self) -> broadcast::Receiver<CaseUpdate> {
        self.inner.updates.subscribe()
    }

    /// Waits until a case ends (completed, cancelled or failed) and returns it.
    pub async fn wait_until_ended(&self, case: CaseId) -> Result<CaseView, Error> {
        let mut updates = self.subscribe();
        loop {
            let view = self.case(case).await?;
            if view.status.is_final() {
                return Ok(view);
            }
            loop {
                match updates.recv().await {
                    Ok(u) if u.case == case && u.status.is_final() => break,
                    Ok(_) => {}
                    // Missed some updates: look at the store again.
                    Err(broadcast::error::RecvError::Lagged(_)) => break,
                    Err(broadcast::error::RecvError::Closed) => return Err(Error::ShuttingDown),
                }
            }
        }
    }

    /// Waits like [`WorkflowEngine::settle`], then says whether every result was fed back:
    /// the first result of `case` given up since the last call is [`Error::ResultLost`].
    pub async fn settled(&self, case: CaseId) -> Result<(), Error> {
        self.settle(case).await;
        match lock(&self.inner.lost).remove(&case) {
            Some(fault) => Err(Error::ResultLost {
                case,
                attempts: fault.attempts,
                source: fault.error,
            }),
            None => Ok(()),
        }
    }

    /// Waits until nothing the engine started for `case` is still running (connector calls,
    /// allocations). Timers do not count: a case waiting for a timer is settled.
    pub async fn settle(&self, case: CaseId) {
        loop {
            let notified = self.inner.settled.notified();
            tokio::pin!(notified);
            notified.as_mut().enable();
            if lock(&self.inner.pending).get(&case).copied().unwrap_or(0) == 0 {
                return;
            }
            notified.await;
        }
    }
}

/// Decrements a case's pending count when a spawned task ends, however it ends.
struct Done {
    engine: WorkflowEngine,
    case: CaseId,
}

impl Drop for Done {
    fn drop(&mut self) {
        let mut pending = lock(&self.engine.inner.pending);
        if let Some(n) = pending.get_mut(&self.case) {
            *n = n.saturating_sub(1);
            if *n == 0 {
                pending.remove(&self.case);
            }
        }
        drop(pending);
        self.engine.inner.settled.notify_waiters();
    }
}

/// Translates the connectors' record of retried attempts into the history's.
fn failed_attempts(attempts: Vec<knhk_connectors::FailedAttempt>) -> Vec<knhk_core::FailedAttempt> {
    attempts
        .into_iter()
        .map(|a| knhk_core::FailedAttempt {
            attempt: a.attempt,
            error: a.error,
        })
        .collect()
}
