//! The connection pool every kind shares, with a small in-process manager standing in for a
//! server (the kinds' own tests use the real ones): reuse, growth, exhaustion, a broken
//! connection replaced, idle and lifetime expiry, and the metrics named in `pool.rs`.
//!
//! Every test runs on the paused tokio clock, on which the pool measures its timeouts and
//! connections' ages.

use std::collections::HashSet;
use std::sync::atomic::{AtomicBool, AtomicU32, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use deadpool::managed::{Manager, Metrics, RecycleError, RecycleResult};
use knhk_connectors::{CallError, Pool, PoolConfig};
use metrics_util::debugging::{DebugValue, DebuggingRecorder};

/// Connections are numbers, counted from 0; a number in `broken` fails validation.
#[derive(Debug, Default)]
struct Fake {
    next: AtomicU32,
    broken: Mutex<HashSet<u32>>,
    refuse: AtomicBool,
}

#[derive(Debug, Clone, Default)]
struct Server(Arc<Fake>);

impl Manager for Server {
    type Type = u32;
    type Error = String;

    async fn create(&self) -> Result<u32, String> {
        if self.0.refuse.load(Ordering::SeqCst) {
            return Err("connection refused".to_owned());
        }
        Ok(self.0.next.fetch_add(1, Ordering::SeqCst))
    }

    async fn recycle(&self, conn: &mut u32, _: &Metrics) -> RecycleResult<String> {
        if self.0.broken.lock().unwrap().contains(conn) {
            return Err(RecycleError::message("broken"));
        }
        Ok(())
    }
}

fn config(max_size: usize) -> PoolConfig {
    PoolConfig {
        max_size,
        acquire_timeout: Duration::from_millis(500),
        idle_timeout: None,
        max_lifetime: None,
    }
}

/// An instance name of its own for each test (the metrics are labelled with it).
fn name() -> String {
    use std::hash::{BuildHasher, RandomState};
    format!("pool-{:x}", RandomState::new().hash_one(0u8))
}

#[tokio::test(start_paused = true)]
async fn a_connection_given_back_is_reused() {
    let server = Server::default();
    let pool = Pool::new(&name(), server.clone(), config(4)).unwrap();
    let first = *pool.get().await.unwrap();
    let second = *pool.get().await.unwrap();
    assert_eq!(first, second);
    let s = pool.status();
    assert_eq!((s.created, s.idle, s.active), (1, 1, 0));
}

#[tokio::test(start_paused = true)]
async fn the_pool_grows_up_to_its_max_size() {
    let pool = Pool::new(&name(), Server::default(), config(3)).unwrap();
    let held = [
        pool.get().await.unwrap(),
        pool.get().await.unwrap(),
        pool.get().await.unwrap(),
    ];
    let ids: HashSet<u32> = held.iter().map(|c| **c).collect();
    assert_eq!(ids.len(), 3);
    let s = pool.status();
    assert_eq!((s.max_size, s.active, s.idle, s.created), (3, 3, 0, 3));
    drop(held);
    assert_eq!(pool.status().idle, 3);
}

#[tokio::test(start_paused = true)]
async fn an_exhausted_pool_fails_after_the_acquire_timeout_then_serves_again() {
    let instance = name();
    let pool = Arc::new(Pool::new(&instance, Server::default(), config(1)).unwrap());
    let held = pool.get().await.unwrap();
    let started = tokio::time::Instant::now();
    let e = pool.get().await.unwrap_err();
    let waited = started.elapsed();
    assert!(
        waited >= Duration::from_millis(500) && waited < Duration::from_millis(600),
        "{waited:?}"
    );
    assert!(e.is_retryable(), "{e:?}");
    let text = e.to_string();
    assert!(text.contains(&instance), "{text}");
    assert!(text.contains("no connection free within 500ms"), "{text}");
    assert!(text.contains("max_size 1"), "{text}");
    // A caller waiting when the connection comes back gets it.
    let waiting = tokio::spawn({
        let pool = pool.clone();
        async move { pool.get().await.map(|c| *c) }
    });
    while pool.status().waiters == 0 {
        tokio::task::yield_now().await;
    }
    let id = *held;
    drop(held);
    assert_eq!(waiting.await.unwrap().unwrap(), id);
    assert_eq!(pool.status().created, 1);
}

#[tokio::test(start_paused = true)]
async fn a_broken_connection_is_replaced_without_failing_the_caller() {
    let server = Server::default();
    let pool = Pool::new(&name(), server.clone(), config(2)).unwrap();
    let first = *pool.get().await.unwrap();
    server.0.broken.lock().unwrap().insert(first);
    let second = *pool.get().await.unwrap();
    assert_ne!(first, second);
    let s = pool.status();
    assert_eq!((s.created, s.closed, s.idle), (2, 1, 1));
}

#[tokio::test(start_paused = true)]
async fn a_server_that_refuses_connections_fails_retryably_and_is_counted() {
    let server = Server::default();
    server.0.refuse.store(true, Ordering::SeqCst);
    let instance = name();
    let pool = Pool::new(&instance, server.clone(), config(2)).unwrap();
    let e = pool.get().await.unwrap_err();
    assert!(
        matches!(&e, CallError::Retryable(m) if m.contains("cannot connect: connection refused") && m.contains(&instance)),
        "{e:?}"
    );
    assert_eq!(pool.status().failed, 1);
    server.0.refuse.store(false, Ordering::SeqCst);
    assert!(pool.get().await.is_ok());
}

#[tokio::test(start_paused = true)]
async fn the_reaper_closes_idle_connections() {
    let pool = Pool::new(
        &name(),
        Server::default(),
        PoolConfig {
            idle_timeout: Some(Duration::from_secs(30)),
            ..config(4)
        },
    )
    .unwrap();
    let held = [pool.get().await.unwrap(), pool.get().await.unwrap()];
    drop(held);
    tokio::time::sleep(Duration::from_secs(20)).await;
    assert_eq!(pool.status().idle, 2, "not idle long enough yet");
    // The reaper looks every 15 s: by 46 s it has seen them idle for 30 s.
    tokio::time::sleep(Duration::from_secs(26)).await;
    let s = pool.status();
    assert_eq!((s.idle, s.closed, s.created), (0, 2, 2));
    // The next call opens a new one.
    assert_eq!(*pool.get().await.unwrap(), 2);
}

#[tokio::test(start_paused = true)]
async fn a_connection_used_often_is_still_closed_past_its_max_lifetime() {
    let pool = Pool::new(
        &name(),
        Server::default(),
        PoolConfig {
            max_lifetime: Some(Duration::from_secs(60)),
            ..config(1)
        },
    )
    .unwrap();
    // Used every 10 s, never idle for long, it is replaced once 60 s old.
    let mut seen = Vec::new();
    for _ in 0..8 {
        seen.push(*pool.get().await.unwrap());
        tokio::time::sleep(Duration::from_secs(10)).await;
    }
    assert_eq!(seen[..6], [0; 6], "{seen:?}");
    assert_eq!(seen[7], 1, "{seen:?}");
    let s = pool.status();
    assert_eq!((s.created, s.closed), (2, 1));
}

#[test]
fn the_pool_reports_its_gauges_and_counters() {
    let recorder = DebuggingRecorder::new();
    let snapshotter = recorder.snapshotter();
    let instance = name();
    let server = Server::default();
    metrics::with_local_recorder(&recorder, || {
        let runtime = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .start_paused(true)
            .build()
            .unwrap();
        runtime.block_on(async {
            let pool = Pool::new(&instance, server.clone(), config(2)).unwrap();
            let a = pool.get().await.unwrap();
            let b = pool.get().await.unwrap();
            // Both held: the gauges say two active.
            assert!(pool.get().await.is_err());
            server.0.broken.lock().unwrap().insert(*a);
            drop((a, b));
            // The broken one is closed at its checkout and the other one served; the next
            // call opens a third.
            let c = pool.get().await.unwrap();
            let d = pool.get().await.unwrap();
            server.0.broken.lock().unwrap().extend([*c, *d]);
            drop((c, d));
            // Both free ones fail validation, and the server refuses a new one.
            server.0.refuse.store(true, Ordering::SeqCst);
            assert!(pool.get().await.is_err());
            pool.close();
        });
    });
    let mut seen = std::collections::BTreeMap::new();
    for (key, _, _, value) in snapshotter.snapshot().into_vec() {
        let key = key.key();
        let labels: Vec<String> = key
            .labels()
            .map(|l| format!("{}={}", l.key(), l.value()))
            .collect();
        assert!(
            labels.contains(&format!("instance={instance}")),
            "{} {labels:?}",
            key.name()
        );
        let state = labels
            .iter()
            .find_map(|l| l.strip_prefix("state="))
            .map(|s| format!("{{{s}}}"))
            .unwrap_or_default();
        seen.insert(format!("{}{state}", key.name()), value);
    }
    let counter = |name: &str| match seen.get(name) {
        Some(DebugValue::Counter(n)) => *n,
        other => panic!("{name}: {other:?} in {seen:?}"),
    };
    assert_eq!(counter("knhk_connector_pool_created_total"), 3);
    // The three broken ones, each at its checkout.
    assert_eq!(counter("knhk_connector_pool_closed_total"), 3);
    assert_eq!(counter("knhk_connector_pool_failed_total"), 1);
    let gauge = |name: &str| match seen.get(name) {
        Some(DebugValue::Gauge(v)) => v.into_inner(),
        other => panic!("{name}: {other:?} in {seen:?}"),
    };
    assert_eq!(gauge("knhk_connector_pool_connections{active}"), 0.0);
    assert_eq!(gauge("knhk_connector_pool_connections{idle}"), 0.0);
    assert_eq!(gauge("knhk_connector_pool_waiters"), 0.0);
    match seen.get("knhk_connector_pool_acquire_seconds") {
        // Six checkouts, the third of which waited the whole acquire timeout.
        Some(DebugValue::Histogram(v)) => {
            assert_eq!(v.len(), 6, "{v:?}");
            assert!(v.iter().any(|s| s.into_inner() >= 0.5), "{v:?}");
        }
        other => panic!("acquire_seconds: {other:?}"),
    }
}
