//! The engine's one clock: wall time in milliseconds, advanced by tokio's clock so that tests
//! with a paused runtime control time.

use std::time::{SystemTime, UNIX_EPOCH};

use knhk_core::Timestamp;
use tokio::time::Instant;

/// Reads the time for the engine. Cheap to copy.
#[derive(Clone, Copy, Debug)]
pub struct Clock {
    base_ms: i64,
    base: Instant,
}

impl Clock {
    /// Creates a clock that reads the system time now and follows tokio's clock from there.
    pub fn system() -> Clock {
        let base_ms = SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .map(|d| i64::try_from(d.as_millis()).unwrap_or(i64::MAX))
            .unwrap_or(0);
        Clock {
            base_ms,
            base: Instant::now(),
        }
    }

    /// Returns the current time.
    pub fn now(&self) -> Timestamp {
        let elapsed = i64::try_from(self.base.elapsed().as_millis()).unwrap_or(i64::MAX);
        Timestamp(self.base_ms.saturating_add(elapsed))
    }

    /// Returns the tokio instant at which `at` is reached (now if it is in the past).
    pub fn instant_of(&self, at: Timestamp) -> Instant {
        let now = self.now();
        let wait = u64::try_from(at.0.saturating_sub(now.0)).unwrap_or(0);
        Instant::now() + std::time::Duration::from_millis(wait)
    }
}
