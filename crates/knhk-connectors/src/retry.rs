//! How long each attempt may take, how many there are, and how long to wait between them.

use std::time::Duration;

/// Timeouts and retries of a connector call.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct RetryPolicy {
    /// Attempts in all, including the first; at least 1 is made.
    pub max_attempts: u32,
    /// The wait after the first failed attempt; it doubles after each further one.
    pub initial_backoff: Duration,
    /// The longest wait between two attempts.
    pub max_backoff: Duration,
    /// How long one attempt may take.
    pub timeout: Duration,
}

impl Default for RetryPolicy {
    fn default() -> Self {
        RetryPolicy {
            max_attempts: 3,
            initial_backoff: Duration::from_millis(100),
            max_backoff: Duration::from_secs(10),
            timeout: Duration::from_secs(30),
        }
    }
}

impl RetryPolicy {
    /// Returns the wait after failed attempt number `attempt` (from 1): `initial_backoff` doubled
    /// `attempt - 1` times, capped at `max_backoff`. There is no jitter, so a replayed call waits
    /// the same.
    pub fn backoff(&self, attempt: u32) -> Duration {
        let doublings = attempt.saturating_sub(1);
        let factor = 1u32.checked_shl(doublings).unwrap_or(u32::MAX);
        self.initial_backoff
            .saturating_mul(factor)
            .min(self.max_backoff)
    }
}
