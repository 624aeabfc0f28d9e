//! The `kafka` kind. Settings, keys, config errors and the registry's behaviours against closed
//! and silent ports always run; the tests that produce to a broker run when `KNHK_TEST_KAFKA`
//! names one (`scripts/kafka-broker.sh` starts tansu, a Kafka-protocol broker, on
//! 127.0.0.1:9092) and say that they are skipped otherwise.

use std::collections::BTreeMap;
use std::sync::Arc;
use std::sync::atomic::{AtomicU32, Ordering};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use knhk_connectors::{
    BreakerPolicy, Connector, InstanceConfig, KafkaConnector, Registry, RetryPolicy, kinds,
};
use rskafka::client::ClientBuilder;
use rskafka::client::partition::UnknownTopicHandling;
use serde_json::{Value, json};

use crate::settings;

/// The broker of the live tests, if the environment names one.
fn broker() -> Option<String> {
    match std::env::var("KNHK_TEST_KAFKA") {
        Ok(b) if !b.is_empty() => Some(b),
        _ => {
            eprintln!(
                "skipped: KNHK_TEST_KAFKA is not set (scripts/kafka-broker.sh starts a broker; \
                 then KNHK_TEST_KAFKA=127.0.0.1:9092)"
            );
            None
        }
    }
}

/// A name no other test (or earlier run) uses.
fn unique(prefix: &str) -> String {
    static NEXT: AtomicU32 = AtomicU32::new(0);
    let nanos = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap()
        .subsec_nanos();
    let n = NEXT.fetch_add(1, Ordering::Relaxed);
    format!("{prefix}-{}-{nanos:x}-{n}", std::process::id())
}

/// An address where nothing listens: a port just bound and released.
fn closed_port() -> String {
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    listener.local_addr().unwrap().to_string()
}

fn config(name: &str, table: Value) -> InstanceConfig {
    InstanceConfig::parse(name, table.as_object().unwrap()).unwrap()
}

fn instance(name: &str, brokers: &str, extra: Value) -> KafkaConnector {
    let mut table = json!({
        "kind": "kafka",
        "brokers": brokers,
        "client_id": "knhk-test",
        "pool": {"max_size": 4, "acquire_timeout_ms": 400}
    });
    for (k, v) in extra.as_object().unwrap() {
        table[k] = v.clone();
    }
    KafkaConnector::from_config(&config(name, table)).unwrap()
}

fn registry(failures: u32, instances: Vec<KafkaConnector>) -> Registry {
    let mut registry = Registry::default().with_breaker_policy(BreakerPolicy {
        failure_threshold: failures,
        cooldown: Duration::from_secs(600),
    });
    for i in instances {
        registry.register(Arc::new(i));
    }
    registry
}

fn policy(max_attempts: u32, timeout: Duration) -> RetryPolicy {
    RetryPolicy {
        max_attempts,
        initial_backoff: Duration::from_millis(20),
        max_backoff: Duration::from_millis(40),
        timeout,
    }
}

fn to(topic: &str) -> BTreeMap<String, String> {
    settings([("topic", topic.to_owned())])
}

#[test]
fn config_errors_name_the_key() {
    let refused = |table: Value| {
        kinds::build(&config("events", table))
            .unwrap_err()
            .to_string()
    };
    assert_eq!(
        refused(json!({"kind": "kafka"})),
        "connectors.events.brokers: missing"
    );
    assert_eq!(
        refused(json!({"kind": "kafka", "brokers": "127.0.0.1:9092,localhost"})),
        "connectors.events.brokers: `localhost` is not host:port"
    );
    assert_eq!(
        refused(json!({"kind": "kafka", "brokers": "b:9092", "max_record_bytes": 0})),
        "connectors.events.max_record_bytes: must be at least 1"
    );
    assert!(
        refused(json!({"kind": "kafka", "brokers": "b:9092", "compression": "gzip"}))
            .starts_with("connectors.events.compression: unknown key for kind kafka")
    );
    let built = kinds::build(&config(
        "events",
        json!({"kind": "kafka", "brokers": "b:9092"}),
    ));
    assert_eq!(built.unwrap().kind(), "kafka");
}

#[test]
fn settings_are_checked_naming_the_one_at_fault() {
    let kafka = instance("events", "127.0.0.1:9", json!({}));
    let refused = |pairs: Vec<(&str, &str)>| {
        let task = pairs
            .into_iter()
            .map(|(k, v)| (k.to_owned(), v.to_owned()))
            .collect();
        kafka.check_settings(&task).unwrap_err().to_string()
    };
    assert_eq!(refused(vec![("key", "id")]), "topic: missing");
    assert_eq!(
        refused(vec![("topic", "orders/eu")]),
        "topic: `orders/eu` is not a Kafka topic name (1 to 249 of letters, digits, `.`, `_`, `-`)"
    );
    assert!(
        refused(vec![("topic", "t"), ("key", "customer +")])
            .starts_with("key: not a CEL expression")
    );
    assert!(refused(vec![("topic", "t"), ("partition", "-1")]).starts_with("partition: "));
    assert_eq!(
        refused(vec![("topic", "t"), ("acks", "1")]),
        "acks: acks=1 is not available: the Kafka client always waits for all in-sync replicas (`all`)"
    );
    assert_eq!(
        refused(vec![("topic", "t"), ("acks", "most")]),
        "acks: expected `all`, found `most`"
    );
    assert_eq!(
        refused(vec![("topic", "t"), ("headers", "x")]),
        "unknown setting headers"
    );
    let fine = settings([
        ("topic", "orders.v1".to_owned()),
        ("key", "customer.id + '-' + string(line)".to_owned()),
        ("partition", "2".to_owned()),
        ("acks", "all".to_owned()),
    ]);
    kafka.check_settings(&fine).unwrap();
}

#[tokio::test]
async fn a_record_larger_than_max_record_bytes_fails_permanently_before_any_connection() {
    let kafka = instance("events", &closed_port(), json!({"max_record_bytes": 100}));
    let registry = registry(5, vec![kafka]);
    let input = json!({"text": "x".repeat(100)});
    let failure = registry
        .call(
            "events",
            &to("t"),
            input,
            "case/t/1",
            &policy(3, Duration::from_secs(5)),
        )
        .await
        .unwrap_err();
    assert_eq!(failure.attempts, 1);
    assert!(!failure.error.is_retryable());
    assert!(
        failure
            .error
            .to_string()
            .starts_with("kafka events: the record is 1"),
        "{}",
        failure.error
    );
    assert!(
        failure
            .error
            .to_string()
            .ends_with("bytes, more than max_record_bytes (100)")
    );
}

#[tokio::test]
async fn a_key_that_does_not_evaluate_fails_permanently() {
    let kafka = instance("events", &closed_port(), json!({}));
    let registry = registry(5, vec![kafka]);
    let task = settings([("topic", "t".to_owned()), ("key", "customer.id".to_owned())]);
    let failure = registry
        .call(
            "events",
            &task,
            json!({"order": 1}),
            "k",
            &policy(3, Duration::from_secs(5)),
        )
        .await
        .unwrap_err();
    assert_eq!(failure.attempts, 1);
    assert!(
        failure.error.to_string().starts_with("key `customer.id`: "),
        "{}",
        failure.error
    );
    let listed = settings([("topic", "t".to_owned()), ("key", "lines".to_owned())]);
    let failure = registry
        .call(
            "events",
            &listed,
            json!({"lines": [1, 2]}),
            "k",
            &policy(3, Duration::from_secs(5)),
        )
        .await
        .unwrap_err();
    assert_eq!(
        failure.error.to_string(),
        "key `lines`: evaluates to a List, not a string, number, boolean or null"
    );
}

// The registry's behaviours with this kind: a timeout per attempt, retries with backoff on
// retryable errors only, a circuit breaker per instance.

#[tokio::test]
async fn a_broker_that_cannot_be_reached_fails_retryably_and_is_retried_with_backoff() {
    let kafka = instance("events", &closed_port(), json!({}));
    let registry = registry(5, vec![kafka]);
    let started = tokio::time::Instant::now();
    let failure = registry
        .call(
            "events",
            &to("t"),
            json!({}),
            "k",
            &policy(3, Duration::from_secs(5)),
        )
        .await
        .unwrap_err();
    assert_eq!(failure.attempts, 3);
    assert!(failure.error.is_retryable());
    let message = failure.error.to_string();
    assert!(
        message.starts_with("connector events: cannot connect: "),
        "{message}"
    );
    assert!(
        message.ends_with("Connection refused (os error 111)"),
        "{message}"
    );
    assert_eq!(failure.failed_attempts.len(), 2);
    // Backoff of 20 ms, then 40 ms, each at least halved by the jitter.
    assert!(started.elapsed() >= Duration::from_millis(30));
}

#[tokio::test]
async fn an_attempt_to_a_silent_broker_times_out_retryably() {
    // A listener that accepts and never answers: no real broker can be made to stall, so this
    // stands in for one that does.
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap().to_string();
    let silent = tokio::spawn(async move {
        let mut held = Vec::new();
        while let Ok((socket, _)) = listener.accept().await {
            held.push(socket);
        }
    });
    let kafka = instance(
        "events",
        &addr,
        json!({"pool": {"acquire_timeout_ms": 10000}}),
    );
    let registry = registry(5, vec![kafka]);
    let failure = registry
        .call(
            "events",
            &to("t"),
            json!({}),
            "k",
            &policy(2, Duration::from_millis(200)),
        )
        .await
        .unwrap_err();
    assert_eq!(failure.attempts, 2);
    assert_eq!(failure.error.to_string(), "timed out after 200ms");
    silent.abort();
}

#[tokio::test]
async fn the_circuit_of_an_unreachable_instance_opens_and_leaves_the_others_alone() {
    let down = instance("events-down", &closed_port(), json!({}));
    let other = instance("events-other", &closed_port(), json!({}));
    let registry = registry(2, vec![down, other]);
    let once = policy(1, Duration::from_secs(5));
    for _ in 0..2 {
        let failure = registry
            .call("events-down", &to("t"), json!({}), "k", &once)
            .await
            .unwrap_err();
        assert!(
            !failure.error.to_string().starts_with("circuit"),
            "{}",
            failure.error
        );
    }
    let started = tokio::time::Instant::now();
    let refused = registry
        .call("events-down", &to("t"), json!({}), "k", &once)
        .await
        .unwrap_err();
    assert!(
        refused
            .error
            .to_string()
            .starts_with("circuit of connector events-down is open"),
        "{}",
        refused.error
    );
    assert!(
        started.elapsed() < Duration::from_millis(100),
        "an open circuit fails at once"
    );
    let failure = registry
        .call("events-other", &to("t"), json!({}), "k", &once)
        .await
        .unwrap_err();
    assert!(
        !failure.error.to_string().starts_with("circuit"),
        "{}",
        failure.error
    );
}

#[tokio::test]
async fn the_probe_of_an_unreachable_broker_fails_retryably() {
    let kafka = instance("events", &closed_port(), json!({}));
    let probe = kafka.probe().await.unwrap_err();
    assert!(probe.is_retryable(), "{probe}");
}

// Against a broker (KNHK_TEST_KAFKA).

/// Creates a topic of `partitions` partitions on the broker.
async fn topic(broker: &str, partitions: i32) -> String {
    let name = unique("knhk-test");
    let client = ClientBuilder::new(vec![broker.to_owned()])
        .build()
        .await
        .unwrap();
    client
        .controller_client()
        .unwrap()
        .create_topic(&name, partitions, 1, 5_000)
        .await
        .unwrap();
    name
}

/// Reads the record at `offset` of a partition.
async fn record_at(
    broker: &str,
    topic: &str,
    partition: i32,
    offset: i64,
) -> rskafka::record::Record {
    let client = ClientBuilder::new(vec![broker.to_owned()])
        .build()
        .await
        .unwrap();
    let partition = client
        .partition_client(topic, partition, UnknownTopicHandling::Error)
        .await
        .unwrap();
    let (records, _) = partition
        .fetch_records(offset, 1..1_000_000, 1_000)
        .await
        .unwrap();
    records
        .into_iter()
        .find(|r| r.offset == offset)
        .unwrap()
        .record
}

#[tokio::test]
async fn produces_the_input_with_its_key_and_the_idempotency_key_header() {
    let Some(broker) = broker() else { return };
    let topic = topic(&broker, 3).await;
    let registry = registry(5, vec![instance("events", &broker, json!({}))]);
    let task = settings([("topic", topic.clone()), ("key", "customer".to_owned())]);
    let input = json!({"customer": "c-42", "total": 12.5});
    let once = policy(1, Duration::from_secs(10));
    let first = registry
        .call("events", &task, input.clone(), "case/t/1", &once)
        .await
        .unwrap();
    assert_eq!(first.output["topic"], topic.as_str());
    let partition = first.output["partition"].as_i64().unwrap() as i32;
    let offset = first.output["offset"].as_i64().unwrap();
    let record = record_at(&broker, &topic, partition, offset).await;
    assert_eq!(record.key.as_deref(), Some(&b"c-42"[..]));
    let value: Value = serde_json::from_slice(record.value.as_deref().unwrap()).unwrap();
    assert_eq!(value, input);
    assert_eq!(record.headers["idempotency-key"], b"case/t/1");
    // The same key goes to the same partition, next in line.
    let second = registry
        .call(
            "events",
            &task,
            json!({"customer": "c-42"}),
            "case/t/2",
            &once,
        )
        .await
        .unwrap();
    assert_eq!(second.output["partition"], first.output["partition"]);
    assert_eq!(second.output["offset"], json!(offset + 1));
}

#[tokio::test]
async fn a_partition_setting_chooses_the_partition() {
    let Some(broker) = broker() else { return };
    let topic = topic(&broker, 3).await;
    let registry = registry(5, vec![instance("events", &broker, json!({}))]);
    let task = settings([("topic", topic.clone()), ("partition", "2".to_owned())]);
    let once = policy(1, Duration::from_secs(10));
    let answer = registry
        .call("events", &task, json!({"n": 1}), "k", &once)
        .await
        .unwrap();
    assert_eq!(
        answer.output,
        json!({"topic": topic, "partition": 2, "offset": 0})
    );
    // A keyless record goes by its idempotency key: a retried call lands where the first did.
    let keyless = to(&topic);
    let a = registry
        .call("events", &keyless, json!({}), "case/x/1", &once)
        .await
        .unwrap();
    let b = registry
        .call("events", &keyless, json!({}), "case/x/1", &once)
        .await
        .unwrap();
    assert_eq!(a.output["partition"], b.output["partition"]);
}

#[tokio::test]
async fn an_unknown_topic_fails_permanently() {
    let Some(broker) = broker() else { return };
    let registry = registry(5, vec![instance("events", &broker, json!({}))]);
    let missing = unique("knhk-missing");
    let failure = registry
        .call(
            "events",
            &to(&missing),
            json!({}),
            "k",
            &policy(3, Duration::from_secs(10)),
        )
        .await
        .unwrap_err();
    assert_eq!(failure.attempts, 1);
    assert_eq!(
        failure.error.to_string(),
        format!("kafka events: unknown topic {missing}")
    );
    let pinned = settings([("topic", missing.clone()), ("partition", "0".to_owned())]);
    let failure = registry
        .call(
            "events",
            &pinned,
            json!({}),
            "k",
            &policy(3, Duration::from_secs(10)),
        )
        .await
        .unwrap_err();
    assert_eq!(failure.attempts, 1, "{}", failure.error);
    assert!(!failure.error.is_retryable());
    assert_eq!(
        failure.error.to_string(),
        format!("kafka events: topic {missing}: the broker answered UNKNOWN_TOPIC_OR_PARTITION")
    );
}

#[tokio::test]
async fn the_probe_asks_the_broker_for_its_metadata() {
    let Some(broker) = broker() else { return };
    topic(&broker, 1).await;
    let kafka = instance("events", &broker, json!({}));
    let probe = kafka.probe().await.unwrap();
    assert!(probe.detail.unwrap().ends_with(" topics"));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn concurrent_calls_share_the_pool_and_every_record_gets_its_own_offset() {
    let Some(broker) = broker() else { return };
    let topic = topic(&broker, 4).await;
    let kafka = Arc::new(instance(
        "events",
        &broker,
        json!({"pool": {"max_size": 4, "acquire_timeout_ms": 5000}}),
    ));
    let mut registry = Registry::default();
    registry.register(kafka.clone());
    let task = settings([("topic", topic.clone()), ("key", "n".to_owned())]);
    let calls: u32 = 400;
    let started = std::time::Instant::now();
    let mut tasks = tokio::task::JoinSet::new();
    for n in 0..calls {
        let (registry, task) = (registry.clone(), task.clone());
        tasks.spawn(async move {
            registry
                .call(
                    "events",
                    &task,
                    json!({"n": n}),
                    &format!("case/{n}"),
                    &policy(3, Duration::from_secs(10)),
                )
                .await
                .unwrap()
                .output
        });
    }
    let mut seen = std::collections::HashSet::new();
    while let Some(output) = tasks.join_next().await {
        let output = output.unwrap();
        assert!(seen.insert((output["partition"].clone(), output["offset"].clone())));
    }
    let elapsed = started.elapsed();
    assert_eq!(seen.len(), calls as usize);
    let status = kafka.pool().status();
    assert!(status.created <= 4, "{status:?}");
    eprintln!(
        "kafka: {calls} records in {elapsed:?} ({:.0}/s) over {} pooled clients",
        f64::from(calls) / elapsed.as_secs_f64(),
        status.created
    );
}
