//! The pool of a `postgres` instance on the real server: reuse, growth to the maximum,
//! exhaustion, idle expiry, and a connection the server kills. Calls are held on the server by
//! an advisory lock the test holds, so that they overlap without any sleep.

use std::collections::BTreeSet;
use std::sync::Arc;
use std::time::Duration;

use knhk_connectors::{Binding, CallRequest, Connector, PostgresConnector};
use serde_json::{Value, json};

use crate::services::{admin, eventually, policy, postgres, registry, task};

/// A statement that waits for the advisory lock `$1` (shared, so that calls do not wait for
/// each other) and answers its connection's backend pid.
const HELD: &str =
    "SELECT pg_backend_pid() AS pid FROM (SELECT pg_advisory_xact_lock_shared($1)) l";
const PID: &str = "SELECT pg_backend_pid() AS pid";

fn binding(pg: &PostgresConnector, statement: &str, params: Option<&str>) -> Arc<dyn Binding> {
    let mut pairs = vec![("statement", statement)];
    pairs.extend(params.map(|p| ("params", p)));
    pg.prepare(&task(&pairs)).unwrap()
}

fn request(input: Value) -> CallRequest {
    CallRequest {
        input,
        idempotency_key: "k".to_owned(),
        attempt: 1,
        timeout: Duration::from_secs(10),
    }
}

async fn pid(binding: &dyn Binding, input: Value) -> i64 {
    let out = binding.call(request(input)).await.unwrap();
    out["rows"][0]["pid"].as_i64().unwrap()
}

/// A lock key of this test: the lock's holder is the test's own connection.
fn lock_key() -> i64 {
    let nanos = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_nanos())
        .unwrap_or(0);
    (nanos as i64) ^ (i64::from(std::process::id()) << 40)
}

/// Counts the server's backends of an instance (by its application name) and those of them
/// waiting for a lock.
async fn backends(client: &tokio_postgres::Client, instance: &str) -> (i64, i64) {
    let row = client
        .query_one(
            "SELECT count(*), count(*) FILTER (WHERE wait_event_type = 'Lock') \
             FROM pg_stat_activity WHERE application_name = $1",
            &[&format!("knhk connector {instance}")],
        )
        .await
        .unwrap();
    (row.get(0), row.get(1))
}

#[tokio::test]
async fn one_connection_serves_successive_calls() {
    let pg = postgres(json!({}));
    let b = binding(&pg, PID, None);
    let mut pids = BTreeSet::new();
    for _ in 0..5 {
        pids.insert(pid(&*b, json!({})).await);
    }
    assert_eq!(pids.len(), 1, "{pids:?}");
    let status = pg.pool().status();
    assert_eq!(
        (status.created, status.idle, status.active),
        (1, 1, 0),
        "{status:?}"
    );
}

#[tokio::test]
async fn concurrent_calls_grow_the_pool_up_to_its_maximum() {
    let pg = postgres(json!({ "max_size": 4 }));
    let b = binding(&pg, HELD, Some("[lock]"));
    let admin = admin().await;
    let key = lock_key();
    admin
        .execute("SELECT pg_advisory_lock($1)", &[&key])
        .await
        .unwrap();
    let calls: Vec<_> = (0..8)
        .map(|_| {
            let b = b.clone();
            tokio::spawn(async move { pid(&*b, json!({ "lock": key })).await })
        })
        .collect();
    eventually(
        "four calls hold connections and four wait for one",
        || async {
            let s = pg.pool().status();
            s.active == 4 && s.waiters == 4
        },
    )
    .await;
    eventually("four backends wait on the lock", || async {
        backends(&admin, pg.name()).await == (4, 4)
    })
    .await;
    admin
        .execute("SELECT pg_advisory_unlock($1)", &[&key])
        .await
        .unwrap();
    let mut pids = BTreeSet::new();
    for call in calls {
        pids.insert(call.await.unwrap());
    }
    assert_eq!(pids.len(), 4, "eight calls on four connections: {pids:?}");
    let status = pg.pool().status();
    assert_eq!(
        (status.created, status.idle, status.active),
        (4, 4, 0),
        "{status:?}"
    );
}

#[tokio::test]
async fn an_exhausted_pool_times_out_clearly_then_serves_once_a_connection_returns() {
    let pg = postgres(json!({ "max_size": 1, "acquire_timeout_ms": 300 }));
    let held = binding(&pg, HELD, Some("[lock]"));
    let quick = binding(&pg, PID, None);
    let admin = admin().await;
    let key = lock_key();
    admin
        .execute("SELECT pg_advisory_lock($1)", &[&key])
        .await
        .unwrap();
    let first = {
        let held = held.clone();
        tokio::spawn(async move { pid(&*held, json!({ "lock": key })).await })
    };
    eventually("the one connection is taken", || async {
        pg.pool().status().active == 1
    })
    .await;
    let error = quick.call(request(json!({}))).await.unwrap_err();
    assert!(error.is_retryable(), "{error}");
    assert!(
        error.message().contains("no connection free within 300ms"),
        "{error}"
    );
    admin
        .execute("SELECT pg_advisory_unlock($1)", &[&key])
        .await
        .unwrap();
    let first = first.await.unwrap();
    assert_eq!(
        pid(&*quick, json!({})).await,
        first,
        "the connection came back"
    );
}

#[tokio::test]
async fn an_idle_connection_is_closed_after_the_idle_timeout() {
    let pg = postgres(json!({ "idle_timeout_ms": 200 }));
    let b = binding(&pg, PID, None);
    let pid = pid(&*b, json!({})).await;
    assert_eq!(pg.pool().status().created, 1);
    eventually("the pool closes its idle connection", || async {
        let s = pg.pool().status();
        s.idle == 0 && s.closed == 1
    })
    .await;
    let admin = admin().await;
    eventually("the server no longer has the backend", || async {
        let row = admin
            .query_one(
                "SELECT count(*) FROM pg_stat_activity WHERE pid = $1",
                &[&(pid as i32)],
            )
            .await
            .unwrap();
        row.get::<_, i64>(0) == 0
    })
    .await;
}

#[tokio::test]
async fn a_connection_the_server_kills_is_replaced_without_the_call_failing() {
    let pg = postgres(json!({}));
    let registry = registry(pg.clone(), 100);
    let settings = task(&[("statement", PID)]);
    let once = policy(1, Duration::from_secs(5));
    let call = || registry.call(pg.name(), &settings, json!({}), "k", &once);
    let before = call().await.unwrap().output["rows"][0]["pid"]
        .as_i64()
        .unwrap();
    let admin = admin().await;
    let before_i32 = before as i32;
    admin
        .execute("SELECT pg_terminate_backend($1)", &[&before_i32])
        .await
        .unwrap();
    eventually("the backend is gone", || async {
        let row = admin
            .query_one(
                "SELECT count(*) FROM pg_stat_activity WHERE pid = $1",
                &[&before_i32],
            )
            .await
            .unwrap();
        row.get::<_, i64>(0) == 0
    })
    .await;
    // One attempt only: the pool finds the dead connection on checkout and opens another.
    let answer = call().await.unwrap();
    let after = answer.output["rows"][0]["pid"].as_i64().unwrap();
    assert!(answer.failed_attempts.is_empty());
    assert_ne!(after, before);
    let status = pg.pool().status();
    assert_eq!((status.created, status.closed), (2, 1), "{status:?}");
}
