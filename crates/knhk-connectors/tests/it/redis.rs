//! The `redis` connector against the Redis server on this machine: commands, the stream append
//! deduplicated by the idempotency key, typed errors, the registry's behaviours and the pool.

use std::sync::Arc;
use std::time::Duration;

use knhk_connectors::{Binding, CallError, CallRequest, Connector, RedisConnector};
use serde_json::{Value, json};

use crate::services::{config, eventually, policy, redis, redis_admin, registry, task, unique};

async fn call(
    instance: &dyn Connector,
    settings: &[(&str, &str)],
    input: Value,
    key: &str,
) -> Result<Value, CallError> {
    let binding: Arc<dyn Binding> = instance.prepare(&task(settings)).unwrap();
    binding
        .call(CallRequest {
            input,
            idempotency_key: key.to_owned(),
            attempt: 1,
            timeout: Duration::from_secs(10),
        })
        .await
}

#[tokio::test]
async fn a_command_takes_its_arguments_from_the_input_and_answers_the_reply() {
    let rd = redis(json!({}));
    let prefix = unique("knhk");
    let input = json!({ "prefix": prefix, "id": 7, "order": { "qty": 2 } });
    let set = call(
        &*rd,
        &[
            ("command", "SET"),
            ("args", "[prefix + ':order:' + string(id), order, 'EX', 60]"),
        ],
        input.clone(),
        "k",
    )
    .await
    .unwrap();
    assert_eq!(set, json!({ "reply": "OK" }));
    let get = call(
        &*rd,
        &[
            ("command", "GET"),
            ("args", "[prefix + ':order:' + string(id)]"),
        ],
        input.clone(),
        "k",
    )
    .await
    .unwrap();
    assert_eq!(
        get,
        json!({ "reply": "{\"qty\":2}" }),
        "non-strings go as JSON text"
    );
    let hash = format!("{prefix}:h");
    call(
        &*rd,
        &[
            ("command", "HSET"),
            ("args", "[input.h, 'a', 1, 'b', 'two']"),
        ],
        json!({ "h": hash }),
        "k",
    )
    .await
    .unwrap();
    let all = call(
        &*rd,
        &[("command", "HGETALL"), ("args", "[h]")],
        json!({ "h": hash }),
        "k",
    )
    .await
    .unwrap();
    assert_eq!(all, json!({ "reply": ["a", "1", "b", "two"] }));
    let missing = call(
        &*rd,
        &[("command", "GET"), ("args", "[h + ':none']")],
        json!({ "h": hash }),
        "k",
    )
    .await
    .unwrap();
    assert_eq!(missing, json!({ "reply": null }));
    // The idempotency key is a variable of `args`.
    let keyed = call(
        &*rd,
        &[
            ("command", "SET"),
            (
                "args",
                "[prefix + ':' + idempotency_key, 1, 'NX', 'EX', 60]",
            ),
        ],
        input,
        "case-1/task/0",
    )
    .await
    .unwrap();
    assert_eq!(keyed, json!({ "reply": "OK" }));
    let mut admin = redis_admin().await;
    let exists: i64 = redis::cmd("EXISTS")
        .arg(format!("{prefix}:case-1/task/0"))
        .query_async(&mut admin)
        .await
        .unwrap();
    assert_eq!(exists, 1);
    let _: i64 = redis::cmd("DEL")
        .arg(format!("{prefix}:order:7"))
        .arg(&hash)
        .arg(format!("{prefix}:case-1/task/0"))
        .query_async(&mut admin)
        .await
        .unwrap();
}

#[tokio::test]
async fn a_stream_append_happens_once_per_idempotency_key() {
    let rd = redis(json!({}));
    let stream = unique("knhk_stream");
    let settings = [("stream", stream.as_str()), ("dedup_ttl_s", "120")];
    let input = json!({ "order_id": "A-1", "amount": 12.5, "lines": [1, 2] });
    let first = call(&*rd, &settings, input.clone(), "case/task/1")
        .await
        .unwrap();
    let again = call(&*rd, &settings, input.clone(), "case/task/1")
        .await
        .unwrap();
    let other = call(&*rd, &settings, input, "case/task/2").await.unwrap();
    assert_eq!(first["duplicate"], false);
    assert_eq!(again, json!({ "id": first["id"], "duplicate": true }));
    assert_eq!(other["duplicate"], false);
    assert_ne!(other["id"], first["id"]);
    let mut admin = redis_admin().await;
    let entries: Vec<(String, Vec<(String, String)>)> = redis::cmd("XRANGE")
        .arg(&stream)
        .arg("-")
        .arg("+")
        .query_async(&mut admin)
        .await
        .unwrap();
    assert_eq!(entries.len(), 2);
    let (id, fields) = &entries[0];
    assert_eq!(json!(id), first["id"]);
    let mut fields: Vec<(&str, &str)> = fields
        .iter()
        .map(|(k, v)| (k.as_str(), v.as_str()))
        .collect();
    assert_eq!(
        fields[0],
        ("idempotency_key", "case/task/1"),
        "the key comes first"
    );
    fields.sort_unstable();
    assert_eq!(
        fields,
        [
            ("amount", "12.5"),
            ("idempotency_key", "case/task/1"),
            ("lines", "[1,2]"),
            ("order_id", "A-1"),
        ]
    );
    let marker = format!("{stream}:knhk-dedup:case/task/1");
    let ttl: i64 = redis::cmd("TTL")
        .arg(&marker)
        .query_async(&mut admin)
        .await
        .unwrap();
    assert!((1..=120).contains(&ttl), "the marker expires: {ttl}");
    let refused = call(&*rd, &settings, json!({ "idempotency_key": "x" }), "k").await;
    assert!(!refused.unwrap_err().is_retryable());
    let _: i64 = redis::cmd("DEL")
        .arg(&stream)
        .arg(&marker)
        .arg(format!("{stream}:knhk-dedup:case/task/2"))
        .query_async(&mut admin)
        .await
        .unwrap();
}

#[tokio::test]
async fn a_stream_with_maxlen_keeps_its_newest_entries() {
    let rd = redis(json!({}));
    let stream = unique("knhk_stream");
    let settings = [("stream", stream.as_str()), ("maxlen", "2")];
    let mut ids = Vec::new();
    for n in 0..3 {
        let out = call(&*rd, &settings, json!({ "n": n }), &format!("{stream}/{n}")).await;
        ids.push(out.unwrap()["id"].as_str().unwrap().to_owned());
    }
    let mut admin = redis_admin().await;
    let kept: Vec<(String, Vec<(String, String)>)> = redis::cmd("XRANGE")
        .arg(&stream)
        .arg("-")
        .arg("+")
        .query_async(&mut admin)
        .await
        .unwrap();
    let kept: Vec<&str> = kept.iter().map(|(id, _)| id.as_str()).collect();
    assert_eq!(kept, [ids[1].as_str(), ids[2].as_str()]);
    let mut del = redis::cmd("DEL");
    del.arg(&stream);
    for n in 0..3 {
        del.arg(format!("{stream}:knhk-dedup:{stream}/{n}"));
    }
    let _: i64 = del.query_async(&mut admin).await.unwrap();
}

#[tokio::test]
async fn settings_are_checked_when_prepared() {
    let rd = redis(json!({}));
    let refused = |pairs: &[(&str, &str)]| rd.prepare(&task(pairs)).unwrap_err();
    assert_eq!(refused(&[("args", "[1]")]).setting(), "command");
    assert_eq!(refused(&[("command", "SUBSCRIBE")]).setting(), "command");
    assert_eq!(
        refused(&[("command", "select"), ("args", "[1]")]).setting(),
        "command"
    );
    assert_eq!(
        refused(&[("command", "GET"), ("stream", "s")]).setting(),
        "stream"
    );
    assert_eq!(
        refused(&[("stream", "s"), ("args", "[1]")]).setting(),
        "args"
    );
    assert_eq!(
        refused(&[("stream", "s"), ("dedup_ttl_s", "0")]).setting(),
        "dedup_ttl_s"
    );
    assert_eq!(
        refused(&[("command", "GET"), ("args", "[")]).setting(),
        "args"
    );
    assert_eq!(
        refused(&[("command", "GET"), ("colour", "red")]).setting(),
        "colour"
    );
}

#[test]
fn the_config_never_shows_the_password() {
    let table = json!({ "kind": "redis", "url": "redis://:hunter2@127.0.0.1:6379/0",
                        "password": "other" });
    let error = RedisConnector::from_config(&config("cache", table)).unwrap_err();
    assert_eq!(error.key, "password");
    assert!(!error.to_string().contains("hunter2"), "{error}");
    let table = json!({ "kind": "redis", "url": "redis://127.0.0.1:6379/0",
                        "password": "hunter2" });
    let rd = RedisConnector::from_config(&config("cache", table)).unwrap();
    let shown = format!("{rd:?} {:?}", rd.pool().manager());
    assert!(!shown.contains("hunter2"), "{shown}");
    let table = json!({ "kind": "redis", "url": "redis://:hunter2@127.0.0.1:port/0" });
    let error = RedisConnector::from_config(&config("cache", table)).unwrap_err();
    assert_eq!(error.key, "url");
    assert!(!error.to_string().contains("hunter2"), "{error}");
}

#[tokio::test]
async fn a_refused_command_is_permanent_and_tried_once() {
    let rd = redis(json!({}));
    let registry = registry(rd.clone(), 100);
    let key = unique("knhk_str");
    let p = policy(3, Duration::from_secs(5));
    let set = task(&[("command", "SET"), ("args", "[k, 'v', 'EX', 60]")]);
    registry
        .call(rd.name(), &set, json!({ "k": key }), "a", &p)
        .await
        .unwrap();
    let push = task(&[("command", "LPUSH"), ("args", "[k, 'x']")]);
    let failure = registry
        .call(rd.name(), &push, json!({ "k": key }), "b", &p)
        .await
        .unwrap_err();
    assert_eq!(failure.attempts, 1, "{failure}");
    assert!(failure.error.message().contains("WRONGTYPE"), "{failure}");
}

#[tokio::test]
async fn a_command_over_its_timeout_is_retried_then_fails_retryably() {
    let rd = redis(json!({}));
    let registry = registry(rd.clone(), 100);
    // WAIT blocks this connection (only) until replicas acknowledge, which none will.
    let wait = task(&[("command", "WAIT"), ("args", "[1, 5000]")]);
    let failure = registry
        .call(
            rd.name(),
            &wait,
            json!({}),
            "k",
            &policy(2, Duration::from_millis(200)),
        )
        .await
        .unwrap_err();
    assert_eq!(failure.attempts, 2);
    assert!(failure.error.is_retryable() && failure.error.message().contains("timed out"));
    // The abandoned connections were closed, so the next call does not queue behind WAIT.
    let status = rd.pool().status();
    assert_eq!(
        (status.active, status.idle, status.closed),
        (0, 0, 2),
        "{status:?}"
    );
    let ping = task(&[("command", "PING")]);
    let answer = registry
        .call(
            rd.name(),
            &ping,
            json!({}),
            "k",
            &policy(1, Duration::from_secs(2)),
        )
        .await
        .unwrap();
    assert_eq!(answer.output, json!({ "reply": "PONG" }));
}

#[tokio::test]
async fn the_circuit_opens_after_repeated_failures_of_an_unreachable_server() {
    let name = unique("rd_down");
    let table = json!({ "kind": "redis", "url": "redis://127.0.0.1:1/0" });
    let rd = Arc::new(RedisConnector::from_config(&config(&name, table)).unwrap());
    let registry = registry(rd.clone(), 2);
    let ping = task(&[("command", "PING")]);
    let p = policy(1, Duration::from_secs(5));
    for _ in 0..2 {
        let failure = registry
            .call(&name, &ping, json!({}), "k", &p)
            .await
            .unwrap_err();
        assert!(failure.error.is_retryable(), "{failure}");
    }
    let failure = registry
        .call(&name, &ping, json!({}), "k", &p)
        .await
        .unwrap_err();
    assert!(failure.error.message().contains("circuit"), "{failure}");
    assert_eq!(rd.pool().status().failed, 2);
}

#[tokio::test]
async fn the_pool_reuses_a_connection_and_replaces_one_the_server_kills() {
    let rd = redis(json!({}));
    let registry = registry(rd.clone(), 100);
    let ping = task(&[("command", "PING")]);
    let once = policy(1, Duration::from_secs(5));
    for _ in 0..3 {
        registry
            .call(rd.name(), &ping, json!({}), "k", &once)
            .await
            .unwrap();
    }
    assert_eq!(
        rd.pool().status().created,
        1,
        "one connection served every call"
    );
    let probe = rd.probe().await.unwrap();
    assert!(probe.detail.unwrap_or_default().starts_with("Redis "));
    let mut admin = redis_admin().await;
    let id = client_id(&mut admin, rd.name())
        .await
        .expect("the pool's connection is listed");
    let killed: i64 = redis::cmd("CLIENT")
        .arg("KILL")
        .arg("ID")
        .arg(id)
        .query_async(&mut admin)
        .await
        .unwrap();
    assert_eq!(killed, 1);
    let answer = registry
        .call(rd.name(), &ping, json!({}), "k", &once)
        .await
        .unwrap();
    assert_eq!(answer.output, json!({ "reply": "PONG" }));
    let status = rd.pool().status();
    assert_eq!((status.created, status.closed), (2, 1), "{status:?}");
    let replaced = client_id(&mut admin, rd.name()).await;
    assert!(replaced.is_some_and(|new| new != id));
    rd.close().await;
    eventually("the closed pool's connection leaves the server", || async {
        client_id(&mut redis_admin().await, rd.name())
            .await
            .is_none()
    })
    .await;
}

/// Finds the id of the connection an instance named itself with (`knhk-NAME`).
async fn client_id(admin: &mut redis::aio::MultiplexedConnection, instance: &str) -> Option<i64> {
    let list: String = redis::cmd("CLIENT")
        .arg("LIST")
        .query_async(admin)
        .await
        .unwrap();
    let name = format!("name=knhk-{instance}");
    list.lines()
        .filter(|line| line.split(' ').any(|field| field == name))
        .find_map(|line| line.split(' ').find_map(|f| f.strip_prefix("id=")))
        .and_then(|id| id.parse().ok())
}

#[tokio::test]
async fn the_pool_grows_to_its_maximum_and_an_exhausted_pool_times_out_clearly() {
    // `WAIT 1 0` holds a connection until a replica acknowledges, which none will, or until the
    // test unblocks it with CLIENT UNBLOCK: calls overlap without any sleep.
    let rd = redis(json!({ "max_size": 4, "acquire_timeout_ms": 300 }));
    let hold: Arc<dyn Binding> = rd
        .prepare(&task(&[("command", "WAIT"), ("args", "[1, 0]")]))
        .unwrap();
    let request = || CallRequest {
        input: json!({}),
        idempotency_key: "k".to_owned(),
        attempt: 1,
        timeout: Duration::from_secs(10),
    };
    let calls: Vec<_> = (0..4)
        .map(|_| {
            let (hold, req) = (hold.clone(), request());
            tokio::spawn(async move { hold.call(req).await })
        })
        .collect();
    eventually("four connections are held", || async {
        let s = rd.pool().status();
        s.active == 4 && s.created == 4
    })
    .await;
    let name = rd.name().to_owned();
    eventually(
        "the server sees four connections blocked in WAIT",
        || async { blocked(&mut redis_admin().await, &name).await.len() == 4 },
    )
    .await;
    let ping = rd.prepare(&task(&[("command", "PING")])).unwrap();
    let error = ping.call(request()).await.unwrap_err();
    assert!(error.is_retryable(), "{error}");
    assert!(
        error.message().contains("no connection free within 300ms"),
        "{error}"
    );
    let mut admin = redis_admin().await;
    for id in blocked(&mut admin, &name).await {
        let _: i64 = redis::cmd("CLIENT")
            .arg("UNBLOCK")
            .arg(id)
            .query_async(&mut admin)
            .await
            .unwrap();
    }
    for call in calls {
        assert_eq!(call.await.unwrap().unwrap(), json!({ "reply": 0 }));
    }
    assert_eq!(
        ping.call(request()).await.unwrap(),
        json!({ "reply": "PONG" })
    );
    let status = rd.pool().status();
    assert_eq!((status.created, status.active), (4, 0), "{status:?}");
}

/// Finds the ids of an instance's connections blocked in `WAIT`.
async fn blocked(admin: &mut redis::aio::MultiplexedConnection, instance: &str) -> Vec<i64> {
    let list: String = redis::cmd("CLIENT")
        .arg("LIST")
        .query_async(admin)
        .await
        .unwrap();
    let name = format!("name=knhk-{instance}");
    list.lines()
        .filter(|line| {
            line.split(' ').any(|f| f == name) && line.split(' ').any(|f| f == "cmd=wait")
        })
        .filter_map(|line| line.split(' ').find_map(|f| f.strip_prefix("id=")))
        .filter_map(|id| id.parse().ok())
        .collect()
}
