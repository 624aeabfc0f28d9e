//! A task's runtime hints as the connector registry's retry policy: knhk-connectors knows
//! nothing of nets, so the engine translates.

use std::time::Duration;

use knhk_connectors::RetryPolicy;
use knhk_core::model::RuntimeHints;

/// Builds the retry policy of a connector task from its runtime hints; hints it lacks keep the
/// registry's defaults.
///
/// `max_attempts` of 0 counts as 1. A `backoff_ms` above the default cap raises the cap, so
/// that the first wait is the one the definition asked for.
pub(crate) fn retry_policy(hints: &RuntimeHints) -> RetryPolicy {
    let default = RetryPolicy::default();
    let initial_backoff = hints
        .backoff_ms
        .map_or(default.initial_backoff, Duration::from_millis);
    RetryPolicy {
        max_attempts: hints
            .max_attempts
            .map_or(default.max_attempts, |n| n.max(1)),
        initial_backoff,
        max_backoff: default.max_backoff.max(initial_backoff),
        timeout: hints
            .timeout_ms
            .map_or(default.timeout, Duration::from_millis),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn no_hints_keep_the_defaults() {
        assert_eq!(
            retry_policy(&RuntimeHints::default()),
            RetryPolicy::default()
        );
    }

    #[test]
    fn hints_set_attempts_backoff_and_timeout() {
        let hints = RuntimeHints {
            max_attempts: Some(5),
            backoff_ms: Some(250),
            timeout_ms: Some(1500),
            slo_class: Some("gold".to_owned()),
        };
        let policy = retry_policy(&hints);
        assert_eq!(
            policy,
            RetryPolicy {
                max_attempts: 5,
                initial_backoff: Duration::from_millis(250),
                max_backoff: RetryPolicy::default().max_backoff,
                timeout: Duration::from_millis(1500),
            }
        );
        assert_eq!(policy.backoff(3), Duration::from_millis(1000));
    }

    #[test]
    fn zero_attempts_means_one_and_a_long_backoff_raises_the_cap() {
        let hints = RuntimeHints {
            max_attempts: Some(0),
            backoff_ms: Some(20_000),
            ..RuntimeHints::default()
        };
        let policy = retry_policy(&hints);
        assert_eq!(policy.max_attempts, 1);
        assert_eq!(policy.backoff(1), Duration::from_secs(20));
        assert_eq!(policy.backoff(2), Duration::from_secs(20));
        assert_eq!(policy.timeout, RetryPolicy::default().timeout);
    }
}
