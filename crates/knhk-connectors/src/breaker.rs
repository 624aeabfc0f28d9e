//! A circuit breaker per connector: after repeated failures of a connector's calls, attempts
//! fail fast for a while instead of piling onto a service that is down, then one trial call
//! decides whether it is back.

use std::collections::HashMap;
use std::sync::{Arc, Mutex, PoisonError};
use std::time::Duration;

use tokio::time::Instant;

/// When a connector's circuit opens and how long it stays open.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct BreakerPolicy {
    /// Consecutive retryable failures (transport errors, timeouts, 5xx, 429) that open it.
    pub failure_threshold: u32,
    /// How long it stays open before one trial call may go through.
    pub cooldown: Duration,
}

impl Default for BreakerPolicy {
    fn default() -> Self {
        BreakerPolicy {
            failure_threshold: 5,
            cooldown: Duration::from_secs(30),
        }
    }
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum State {
    Closed {
        failures: u32,
    },
    Open {
        until: Instant,
    },
    /// One trial call is in flight; others fail fast until it answers.
    HalfOpen,
}

/// The circuits of every connector, shared by the clones of a registry.
#[derive(Clone, Debug, Default)]
pub(crate) struct Breakers {
    policy: BreakerPolicy,
    circuits: Arc<Mutex<HashMap<String, State>>>,
}

/// What the breaker says about an attempt about to be made.
#[derive(Debug, PartialEq, Eq)]
pub(crate) enum Admission {
    Go,
    /// The circuit is open: the attempt fails at once, with this reason.
    Refused(String),
}

impl Breakers {
    pub(crate) fn new(policy: BreakerPolicy) -> Breakers {
        Breakers {
            policy,
            circuits: Arc::default(),
        }
    }

    pub(crate) fn policy(&self) -> BreakerPolicy {
        self.policy
    }

    fn with<T>(&self, f: impl FnOnce(&mut HashMap<String, State>) -> T) -> T {
        // Each update is a single assignment: a poisoned map is still consistent.
        let mut map = self.circuits.lock().unwrap_or_else(PoisonError::into_inner);
        f(&mut map)
    }

    /// Decides whether an attempt on `connector` may go out now.
    pub(crate) fn admit(&self, connector: &str) -> Admission {
        let now = Instant::now();
        self.with(|map| {
            let state = map
                .entry(connector.to_owned())
                .or_insert(State::Closed { failures: 0 });
            match *state {
                State::Closed { .. } => Admission::Go,
                State::Open { until } if now >= until => {
                    *state = State::HalfOpen;
                    Admission::Go
                }
                State::Open { until } => Admission::Refused(format!(
                    "circuit of connector {connector} is open for another {:?} after repeated failures",
                    until.saturating_duration_since(now)
                )),
                State::HalfOpen => Admission::Refused(format!(
                    "circuit of connector {connector} is half open: a trial call is in flight"
                )),
            }
        })
    }

    /// Records how an admitted attempt ended: `true` for an answer (success or a permanent
    /// error: the service is up), `false` for a retryable failure.
    pub(crate) fn record(&self, connector: &str, service_answered: bool) {
        let policy = self.policy;
        self.with(|map| {
            let state = map
                .entry(connector.to_owned())
                .or_insert(State::Closed { failures: 0 });
            *state = match (*state, service_answered) {
                (_, true) => State::Closed { failures: 0 },
                (State::Closed { failures }, false)
                    if failures + 1 < policy.failure_threshold.max(1) =>
                {
                    State::Closed {
                        failures: failures + 1,
                    }
                }
                (_, false) => State::Open {
                    until: Instant::now() + policy.cooldown,
                },
            };
        });
    }
}
