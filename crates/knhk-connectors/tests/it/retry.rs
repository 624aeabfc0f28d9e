//! The retry policy: defaults and the backoff sequence.

use std::time::Duration;

use knhk_connectors::RetryPolicy;

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
fn defaults() {
    assert_eq!(
        RetryPolicy::default(),
        RetryPolicy {
            max_attempts: 3,
            initial_backoff: Duration::from_millis(100),
            max_backoff: Duration::from_secs(10),
            timeout: Duration::from_secs(30),
        }
    );
}

#[test]
fn jitter_keeps_each_wait_between_half_and_all_of_the_backoff_and_spreads_calls() {
    let policy = RetryPolicy::default();
    for attempt in 1..12 {
        let full = policy.backoff(attempt);
        let mut waits = std::collections::BTreeSet::new();
        for call in 0..50 {
            let key = format!("case-{call}/0/charge/1/0");
            let wait = policy.jittered_backoff(attempt, &key);
            assert!(
                wait >= full / 2 && wait <= full,
                "{attempt} {key}: {wait:?}"
            );
            // A replayed call waits the same.
            assert_eq!(wait, policy.jittered_backoff(attempt, &key));
            waits.insert(wait);
        }
        assert!(
            waits.len() >= 20,
            "attempt {attempt}: the calls' waits spread out: {waits:?}"
        );
    }
}
