//! What the tests of the pooled kinds share: the servers' addresses on this machine, names no
//! other test uses, instances built from config tables, and a bounded poll.

use std::collections::BTreeMap;
use std::future::Future;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use knhk_connectors::{
    BreakerPolicy, Connector, InstanceConfig, PostgresConnector, RedisConnector, Registry,
    RetryPolicy,
};
use serde_json::{Value, json};

/// The PostgreSQL server of the tests (trust authentication, database `test`).
pub fn postgres_url() -> String {
    std::env::var("KNHK_TEST_POSTGRES_URL")
        .or_else(|_| std::env::var("KNHK_TEST_POSTGRES"))
        .unwrap_or_else(|_| "postgres://postgres@127.0.0.1:5432/test".to_owned())
}

/// The Redis server of the tests.
pub fn redis_url() -> String {
    std::env::var("KNHK_TEST_REDIS_URL").unwrap_or_else(|_| "redis://127.0.0.1:6379/0".to_owned())
}

/// Returns a name no other test (of this or another process) uses: `prefix_PID_N_NANOS`.
pub fn unique(prefix: &str) -> String {
    static NEXT: AtomicU64 = AtomicU64::new(0);
    let nanos = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.subsec_nanos())
        .unwrap_or(0);
    format!(
        "{prefix}_{}_{}_{nanos}",
        std::process::id(),
        NEXT.fetch_add(1, Ordering::Relaxed)
    )
}

/// Parses a `[connectors.NAME]` table given as JSON.
pub fn config(name: &str, table: Value) -> InstanceConfig {
    let Value::Object(table) = table else {
        panic!("a table is an object")
    };
    InstanceConfig::parse(name, &table).unwrap()
}

/// A postgres instance of a unique name on the test server, with these pool settings.
pub fn postgres(pool: Value) -> Arc<PostgresConnector> {
    let name = unique("pg");
    let table = json!({ "kind": "postgres", "url": postgres_url(), "pool": pool });
    Arc::new(PostgresConnector::from_config(&config(&name, table)).unwrap())
}

/// A redis instance of a unique name on the test server, with these pool settings.
pub fn redis(pool: Value) -> Arc<RedisConnector> {
    let name = unique("rd");
    let table = json!({ "kind": "redis", "url": redis_url(), "pool": pool });
    Arc::new(RedisConnector::from_config(&config(&name, table)).unwrap())
}

/// A registry of one instance, with circuits that open after `threshold` failures.
pub fn registry(instance: Arc<dyn Connector>, threshold: u32) -> Registry {
    let mut registry = Registry::default().with_breaker_policy(BreakerPolicy {
        failure_threshold: threshold,
        cooldown: Duration::from_secs(60),
    });
    registry.register(instance);
    registry
}

/// Retries with short waits, on the real clock (the calls talk to real servers).
pub fn policy(max_attempts: u32, timeout: Duration) -> RetryPolicy {
    RetryPolicy {
        max_attempts,
        initial_backoff: Duration::from_millis(5),
        max_backoff: Duration::from_millis(20),
        timeout,
    }
}

/// Builds task settings from pairs.
pub fn task(pairs: &[(&str, &str)]) -> BTreeMap<String, String> {
    pairs
        .iter()
        .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
        .collect()
}

/// Polls `check` until it holds, for at most 10 s; panics naming `what` otherwise.
pub async fn eventually<F, Fut>(what: &str, mut check: F)
where
    F: FnMut() -> Fut,
    Fut: Future<Output = bool>,
{
    let deadline = tokio::time::Instant::now() + Duration::from_secs(10);
    while !check().await {
        assert!(
            tokio::time::Instant::now() < deadline,
            "not within 10 s: {what}"
        );
        tokio::task::yield_now().await;
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
}

/// A connection of the test's own to the PostgreSQL server.
pub async fn admin() -> tokio_postgres::Client {
    let (client, connection) = tokio_postgres::connect(&postgres_url(), tokio_postgres::NoTls)
        .await
        .unwrap();
    tokio::spawn(connection);
    client
}

/// A connection of the test's own to the Redis server.
pub async fn redis_admin() -> redis::aio::MultiplexedConnection {
    redis::Client::open(redis_url())
        .unwrap()
        .get_multiplexed_async_connection()
        .await
        .unwrap()
}
