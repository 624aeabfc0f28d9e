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
    /// Returns the longest wait after failed attempt number `attempt` (from 1):
    /// `initial_backoff` doubled `attempt - 1` times, capped at `max_backoff`.
    pub fn backoff(&self, attempt: u32) -> Duration {
        let doublings = attempt.saturating_sub(1);
        let factor = 1u32.checked_shl(doublings).unwrap_or(u32::MAX);
        self.initial_backoff
            .saturating_mul(factor)
            .min(self.max_backoff)
    }
}

impl RetryPolicy {
    /// Returns the wait the registry makes after failed attempt `attempt` of the call with
    /// this idempotency key: half of [`RetryPolicy::backoff`], plus a share of the other half
    /// drawn from a hash of the key and the attempt ("equal jitter"). Calls that failed
    /// together (a service that went down under many of them) come back spread out instead of
    /// in one wave; one call waits the same every time it is replayed.
    pub fn jittered_backoff(&self, attempt: u32, idempotency_key: &str) -> Duration {
        let full = self.backoff(attempt);
        let half = full / 2;
        let share = fnv1a(idempotency_key.as_bytes(), attempt) as f64 / u64::MAX as f64;
        let wait = half + (full - half).mul_f64(share);
        // Whole milliseconds: timers have no finer grain.
        Duration::from_millis(u64::try_from(wait.as_millis()).unwrap_or(u64::MAX)).max(half)
    }
}

/// FNV-1a over the bytes then the attempt: a hash that stays the same across Rust versions and
/// processes (unlike the standard library's), so that waits are reproducible.
fn fnv1a(bytes: &[u8], attempt: u32) -> u64 {
    let mut hash: u64 = 0xcbf2_9ce4_8422_2325;
    for b in bytes.iter().chain(attempt.to_le_bytes().iter()) {
        hash ^= u64::from(*b);
        hash = hash.wrapping_mul(0x0000_0100_0000_01b3);
    }
    hash
}
