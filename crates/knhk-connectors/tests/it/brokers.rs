//! What the message connectors' tests share: unique names, instances from tables, peers that
//! refuse or never answer, and the registry behaviours every kind must show (a per-call timeout,
//! retries of retryable errors only, a breaker per instance).

use std::collections::BTreeMap;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use knhk_connectors::{
    BreakerPolicy, CallError, CallFailure, Connector, InstanceConfig, Registry, RetryPolicy, kinds,
};
use serde_json::{Value, json};
use tokio::net::TcpListener;
use tokio::task::JoinHandle;

/// Returns a suffix no other test of this run (or a recent run) uses, for subjects, queues,
/// topics and instance names.
pub fn unique() -> String {
    static N: AtomicU64 = AtomicU64::new(0);
    let nanos = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap()
        .as_nanos();
    format!(
        "{:x}{:x}{}",
        std::process::id(),
        nanos % 0xffff_ffff,
        N.fetch_add(1, Ordering::Relaxed)
    )
}

/// Parses a `[connectors.NAME]` table given as JSON.
pub fn instance(name: &str, table: Value) -> InstanceConfig {
    let Value::Object(table) = table else {
        panic!("a table is an object")
    };
    InstanceConfig::parse(name, &table).unwrap()
}

/// Builds the instance a table declares, through `kinds::build`.
pub fn build(name: &str, table: Value) -> Arc<dyn Connector> {
    kinds::build(&instance(name, table)).unwrap()
}

/// Returns a port on 127.0.0.1 where nothing listens (bound, then released).
pub fn closed_port() -> u16 {
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    listener.local_addr().unwrap().port()
}

/// A peer on 127.0.0.1 that accepts connections and never says a word: a stand-in for a broker
/// that hangs, which no real broker here can be made to do without troubling the other tests.
pub struct Silent {
    pub port: u16,
    task: JoinHandle<()>,
}

impl Drop for Silent {
    fn drop(&mut self) {
        self.task.abort();
    }
}

pub async fn silent() -> Silent {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let port = listener.local_addr().unwrap().port();
    let task = tokio::spawn(async move {
        let mut held = Vec::new();
        while let Ok((socket, _)) = listener.accept().await {
            held.push(socket);
        }
    });
    Silent { port, task }
}

/// Builds settings from pairs.
pub fn settings(pairs: &[(&str, &str)]) -> BTreeMap<String, String> {
    pairs
        .iter()
        .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
        .collect()
}

/// A policy with `attempts` attempts of at most `timeout` each, and short backoffs.
pub fn policy(attempts: u32, timeout: Duration) -> RetryPolicy {
    RetryPolicy {
        max_attempts: attempts,
        initial_backoff: Duration::from_millis(50),
        max_backoff: Duration::from_millis(200),
        timeout,
    }
}

/// Makes a registry of these instances.
pub fn registry<const N: usize>(instances: [Arc<dyn Connector>; N]) -> Registry {
    let mut registry = Registry::default();
    for c in instances {
        registry.register(c);
    }
    registry
}

/// A call on a stuck peer ends at the registry's per-call timeout, as a retryable failure, each
/// attempt bounded.
pub async fn times_out(stuck: Arc<dyn Connector>, settings: &BTreeMap<String, String>) {
    let registry = registry([stuck.clone()]);
    let started = tokio::time::Instant::now();
    let failure = registry
        .call(
            stuck.name(),
            settings,
            json!({"n": 1}),
            "key-timeout",
            &policy(2, Duration::from_millis(300)),
        )
        .await
        .unwrap_err();
    let took = started.elapsed();
    assert_eq!(failure.attempts, 2, "{failure}");
    assert!(failure.error.is_retryable(), "{failure}");
    assert!(failure.error.message().contains("timed out"), "{failure}");
    // Two attempts of 300 ms and a backoff of 25 to 50 ms (jitter); far less than the pool's
    // own 10 s wait.
    assert!(took >= Duration::from_millis(625), "{took:?}");
    assert!(took < Duration::from_secs(5), "{took:?}");
}

/// A call to an instance whose broker does not listen is retried (retryable) with backoff until
/// the attempts are spent.
pub async fn retries_retryable(down: Arc<dyn Connector>, settings: &BTreeMap<String, String>) {
    let registry = registry([down.clone()]);
    let started = tokio::time::Instant::now();
    let failure: CallFailure = registry
        .call(
            down.name(),
            settings,
            json!({"n": 1}),
            "key-retry",
            &policy(3, Duration::from_secs(5)),
        )
        .await
        .unwrap_err();
    assert_eq!(failure.attempts, 3, "{failure}");
    assert_eq!(failure.failed_attempts.len(), 2, "{failure}");
    assert!(failure.error.is_retryable(), "{failure}");
    assert!(failure.error.message().contains(down.name()), "{failure}");
    // Backoffs of 50 and 100 ms (each at least half that, the jitter) came between the three
    // attempts.
    let waited: Duration = (1..=2)
        .map(|a| policy(3, Duration::from_secs(5)).jittered_backoff(a, "key-retry"))
        .sum();
    assert!(waited >= Duration::from_millis(75));
    assert!(started.elapsed() >= waited);
    // The probe says so too.
    let health = registry.health(Duration::from_secs(5)).await;
    assert!(
        health[0]
            .result
            .as_ref()
            .is_err_and(CallError::is_retryable),
        "{health:?}"
    );
}

/// A permanent error ends the call at its first attempt.
pub async fn stops_at_permanent(
    up: Arc<dyn Connector>,
    settings: &BTreeMap<String, String>,
    input: Value,
    says: &str,
) {
    let registry = registry([up.clone()]);
    let failure = registry
        .call(
            up.name(),
            settings,
            input,
            "key-permanent",
            &policy(3, Duration::from_secs(5)),
        )
        .await
        .unwrap_err();
    assert_eq!(failure.attempts, 1, "{failure}");
    assert!(failure.failed_attempts.is_empty(), "{failure}");
    assert!(!failure.error.is_retryable(), "{failure}");
    assert!(failure.error.message().contains(says), "{failure}");
}

/// After `threshold` failed calls, the circuit of the instance that is down opens (its calls
/// fail at once without trying), while another instance of the same kind on the same registry
/// still answers.
pub async fn breaker_per_instance(
    down: Arc<dyn Connector>,
    up: Arc<dyn Connector>,
    settings: &BTreeMap<String, String>,
) {
    let registry = registry([down.clone(), up.clone()]).with_breaker_policy(BreakerPolicy {
        failure_threshold: 2,
        cooldown: Duration::from_secs(600),
    });
    let once = policy(1, Duration::from_secs(5));
    for n in 0..2 {
        let failure = registry
            .call(down.name(), settings, json!({"n": n}), "key-b", &once)
            .await
            .unwrap_err();
        assert!(!failure.error.message().contains("circuit"), "{failure}");
    }
    let refused = registry
        .call(down.name(), settings, json!({"n": 3}), "key-b", &once)
        .await
        .unwrap_err();
    assert!(
        refused.error.message().contains("circuit of connector"),
        "{refused}"
    );
    let answer = registry
        .call(up.name(), settings, json!({"n": 4}), "key-b", &once)
        .await
        .unwrap();
    assert!(answer.failed_attempts.is_empty());
}

/// A TCP relay on 127.0.0.1 to a broker's port, whose connections the test can cut: what a
/// broker restart or a network failure does to pooled connections.
pub struct Relay {
    pub port: u16,
    links: Arc<std::sync::Mutex<Vec<tokio::task::AbortHandle>>>,
    task: JoinHandle<()>,
}

impl Relay {
    /// Drops every connection relayed so far; new ones are still relayed.
    pub fn cut(&self) {
        for link in self.links.lock().unwrap().drain(..) {
            link.abort();
        }
    }
}

impl Drop for Relay {
    fn drop(&mut self) {
        self.cut();
        self.task.abort();
    }
}

pub async fn relay(to: u16) -> Relay {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let port = listener.local_addr().unwrap().port();
    let links: Arc<std::sync::Mutex<Vec<tokio::task::AbortHandle>>> = Arc::default();
    let held = links.clone();
    let task = tokio::spawn(async move {
        while let Ok((mut client, _)) = listener.accept().await {
            let link = tokio::spawn(async move {
                let mut broker = tokio::net::TcpStream::connect(("127.0.0.1", to))
                    .await
                    .unwrap();
                let _ = tokio::io::copy_bidirectional(&mut client, &mut broker).await;
            });
            held.lock().unwrap().push(link.abort_handle());
        }
    });
    Relay { port, links, task }
}
