//! The retry policy: defaults, runtime hints and the backoff sequence.

use std::time::Duration;

use knhk_connectors::RetryPolicy;
use knhk_core::model::RuntimeHints;

#[test]
fn backoff_doubles_from_the_initial_wait_up_to_the_cap() {
    let policy = RetryPolicy::default();
    let waits: Vec<u64> = (1..=9)
        .map(|attempt| policy.backoff(attempt).as_millis() as u64)
        .collect();
    assert_eq!(
        waits,
        [100, 200, 400, 800, 1600, 3200, 6400, 10_000, 10_000]
    );
    assert_eq!(policy.backoff(0), Duration::from_millis(100));
    assert_eq!(policy.backoff(40), Duration::from_secs(10));
    assert_eq!(policy.backoff(u32::MAX), Duration::from_secs(10));
}

#[test]
fn backoff_is_the_same_every_time() {
    let policy = RetryPolicy::default();
    for attempt in 1..20 {
        assert_eq!(policy.backoff(attempt), policy.backoff(attempt));
    }
}

#[test]
fn defaults_without_hints() {
    let policy = RetryPolicy::from_hints(&RuntimeHints::default());
    assert_eq!(policy, RetryPolicy::default());
    assert_eq!(
        policy,
        RetryPolicy {
            max_attempts: 3,
            initial_backoff: Duration::from_millis(100),
            max_backoff: Duration::from_secs(10),
            timeout: Duration::from_secs(30),
        }
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
    let policy = RetryPolicy::from_hints(&hints);
    assert_eq!(policy.max_attempts, 5);
    assert_eq!(policy.timeout, Duration::from_millis(1500));
    assert_eq!(policy.backoff(1), Duration::from_millis(250));
    assert_eq!(policy.backoff(3), Duration::from_millis(1000));
}

#[test]
fn zero_attempts_means_one_and_a_long_backoff_raises_the_cap() {
    let hints = RuntimeHints {
        max_attempts: Some(0),
        backoff_ms: Some(20_000),
        ..RuntimeHints::default()
    };
    let policy = RetryPolicy::from_hints(&hints);
    assert_eq!(policy.max_attempts, 1);
    assert_eq!(policy.backoff(1), Duration::from_secs(20));
    assert_eq!(policy.backoff(2), Duration::from_secs(20));
}
