//! The Kafka source against a Kafka-protocol broker, when `KNHK_TEST_KAFKA` names one
//! (`scripts/kafka-broker.sh` starts tansu on 127.0.0.1:9092; the tests say they are skipped
//! otherwise): every partition read, ids from the headers or the position, offsets kept in the
//! state directory across a restart (only over a contiguous run of settled messages), a
//! message dropped unsettled delivered again, `start_from`, prefetch, the backlog.

use std::collections::BTreeMap;
use std::path::Path;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use knhk_connectors::InstanceConfig;
use knhk_connectors::intake::offsets::OffsetFile;
use knhk_connectors::intake::{
    self, Backlog, Received, Source, SourceError, Subscription, parse_subscriptions,
};
use rskafka::client::ClientBuilder;
use rskafka::client::partition::{Compression, UnknownTopicHandling};
use rskafka::record::Record;
use serde_json::{Value, json};

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

fn instance(broker: &str) -> InstanceConfig {
    let table = json!({"kind": "kafka", "brokers": broker});
    InstanceConfig::parse("log", table.as_object().unwrap()).unwrap()
}

fn subscription(broker: &str, extra: Value) -> Subscription {
    let mut table = json!({"connector": "log", "start": "W"});
    for (k, v) in extra.as_object().unwrap() {
        table[k] = v.clone();
    }
    parse_subscriptions(&json!([table]), &[instance(broker)])
        .unwrap()
        .remove(0)
}

/// Creates a topic of `partitions` partitions, named for no other test.
async fn topic(broker: &str, partitions: i32) -> String {
    let nanos = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap()
        .as_nanos();
    let name = format!("knhk-in-{}-{nanos:x}", std::process::id());
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

/// Produces `body` to a partition, with the headers given; returns its offset.
async fn produce(
    broker: &str,
    topic: &str,
    partition: i32,
    headers: &[(&str, &str)],
    body: &str,
) -> i64 {
    let client = ClientBuilder::new(vec![broker.to_owned()])
        .build()
        .await
        .unwrap();
    let pc = client
        .partition_client(topic, partition, UnknownTopicHandling::Retry)
        .await
        .unwrap();
    let record = Record {
        key: None,
        value: Some(body.as_bytes().to_vec()),
        headers: headers
            .iter()
            .map(|(k, v)| (k.to_string(), v.as_bytes().to_vec()))
            .collect(),
        timestamp: rskafka::chrono::DateTime::from_timestamp_millis(1_700_000_000_000).unwrap(),
    };
    pc.produce(vec![record], Compression::NoCompression)
        .await
        .unwrap()[0]
}

async fn open(sub: &Subscription, broker: &str, dir: &Path) -> Box<dyn Source> {
    intake::open_in(sub, &instance(broker), Some(dir))
        .await
        .unwrap()
}

async fn next(source: &mut Box<dyn Source>) -> Received {
    tokio::time::timeout(Duration::from_secs(10), source.next())
        .await
        .expect("a message within 10 s")
        .unwrap()
        .expect("the source is open")
}

/// Waits until the offsets file says `expected`.
async fn saved(file: &OffsetFile, expected: BTreeMap<i32, i64>) {
    let deadline = tokio::time::Instant::now() + Duration::from_secs(5);
    loop {
        let now = file.load().unwrap();
        if now == expected {
            return;
        }
        assert!(
            tokio::time::Instant::now() < deadline,
            "the offsets file says {now:?}, not {expected:?}"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

#[tokio::test]
async fn without_a_state_directory_a_kafka_subscription_is_refused_naming_it() {
    let sub = subscription("127.0.0.1:9092", json!({"topic": "orders"}));
    let err = intake::open(&sub, &instance("127.0.0.1:9092"))
        .await
        .unwrap_err();
    assert!(matches!(err, SourceError::Unsupported { .. }));
    assert_eq!(
        err.to_string(),
        "subscription log/orders: a kafka subscription keeps its committed offsets in a state \
         directory, and none was given"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_partition_is_read_and_a_message_is_named_by_its_header_or_its_position() {
    let Some(broker) = broker() else { return };
    let dir = tempfile::tempdir().unwrap();
    let topic = topic(&broker, 3).await;
    produce(&broker, &topic, 0, &[("idempotency-key", "k-0")], "{}").await;
    produce(&broker, &topic, 1, &[("Message-Id", "m-1")], "{}").await;
    produce(&broker, &topic, 2, &[("other", "x")], r#"{"n": 2}"#).await;
    let sub = subscription(&broker, json!({"topic": topic}));
    let mut source = open(&sub, &broker, dir.path()).await;
    let mut ids = Vec::new();
    for _ in 0..3 {
        let m = next(&mut source).await;
        assert_eq!(m.address, topic);
        ids.push(m.id.clone().unwrap());
        if m.id.as_deref() == Some(&format!("{topic}/2/0")) {
            assert_eq!(m.payload, br#"{"n": 2}"#);
            assert_eq!(m.headers["other"], "x");
        }
        m.ack().await.unwrap();
    }
    ids.sort();
    let mut expected = vec!["k-0".to_owned(), "m-1".to_owned(), format!("{topic}/2/0")];
    expected.sort();
    assert_eq!(ids, expected);
    let file = OffsetFile::new(dir.path(), &sub.name, &topic);
    saved(&file, [(0, 1), (1, 1), (2, 1)].into_iter().collect()).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_committed_offset_survives_a_restart_and_moves_only_over_settled_runs() {
    let Some(broker) = broker() else { return };
    let dir = tempfile::tempdir().unwrap();
    let topic = topic(&broker, 1).await;
    for n in 0..4 {
        produce(&broker, &topic, 0, &[], &format!("{{\"n\": {n}}}")).await;
    }
    let sub = subscription(&broker, json!({"topic": topic}));
    let file = OffsetFile::new(dir.path(), &sub.name, &topic);
    let mut source = open(&sub, &broker, dir.path()).await;
    // The start is written at once.
    assert_eq!(file.load().unwrap(), [(0, 0)].into_iter().collect());
    let mut got = Vec::new();
    for _ in 0..4 {
        got.push(next(&mut source).await);
    }
    let ids: Vec<_> = got.iter().map(|m| m.id.clone().unwrap()).collect();
    assert_eq!(
        ids,
        (0..4).map(|n| format!("{topic}/0/{n}")).collect::<Vec<_>>()
    );
    // 0 and 2 and 3 are settled, 1 is not: the committed offset stops at 1.
    let mut got = got.into_iter();
    let (m0, m1, m2, m3) = (
        got.next().unwrap(),
        got.next().unwrap(),
        got.next().unwrap(),
        got.next().unwrap(),
    );
    m3.ack().await.unwrap();
    m2.ack().await.unwrap();
    m0.ack().await.unwrap();
    saved(&file, [(0, 1)].into_iter().collect()).await;
    // A process that dies here has the case of 1 committed, maybe; it goes unsettled.
    m1.abandon();
    drop(source);
    assert_eq!(file.load().unwrap(), [(0, 1)].into_iter().collect());
    // After the restart: 1 again, and 2 and 3, settled before but above the gap.
    let mut source = open(&sub, &broker, dir.path()).await;
    for n in 1..4 {
        let m = next(&mut source).await;
        assert_eq!(m.id, Some(format!("{topic}/0/{n}")));
        m.ack().await.unwrap();
    }
    saved(&file, [(0, 4)].into_iter().collect()).await;
    drop(source);
    // Nothing is delivered again once everything is settled and written.
    let mut source = open(&sub, &broker, dir.path()).await;
    produce(&broker, &topic, 0, &[], r#"{"n": 4}"#).await;
    let m = next(&mut source).await;
    assert_eq!(m.id, Some(format!("{topic}/0/4")));
    m.ack().await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_message_dropped_unsettled_is_delivered_again_while_the_source_runs() {
    let Some(broker) = broker() else { return };
    let dir = tempfile::tempdir().unwrap();
    let topic = topic(&broker, 1).await;
    produce(&broker, &topic, 0, &[("idempotency-key", "again")], "{}").await;
    let sub = subscription(&broker, json!({"topic": topic}));
    let mut source = open(&sub, &broker, dir.path()).await;
    let first = next(&mut source).await;
    let began = tokio::time::Instant::now();
    first.abandon();
    let again = next(&mut source).await;
    assert_eq!(again.id.as_deref(), Some("again"));
    assert!(began.elapsed() >= intake::REDELIVERY_DELAY);
    again.ack().await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn start_from_latest_skips_what_the_topic_held_when_the_subscription_first_opened() {
    let Some(broker) = broker() else { return };
    let dir = tempfile::tempdir().unwrap();
    let topic = topic(&broker, 1).await;
    produce(&broker, &topic, 0, &[], r#"{"old": 1}"#).await;
    let sub = subscription(&broker, json!({"topic": topic, "start_from": "latest"}));
    let mut source = open(&sub, &broker, dir.path()).await;
    drop(source);
    // The position was written at the first open: what comes in between is not skipped.
    produce(&broker, &topic, 0, &[], r#"{"new": 1}"#).await;
    source = open(&sub, &broker, dir.path()).await;
    let m = next(&mut source).await;
    assert_eq!(m.payload, br#"{"new": 1}"#);
    m.ack().await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn prefetch_bounds_what_is_unsettled_and_the_backlog_says_the_rest() {
    let Some(broker) = broker() else { return };
    let dir = tempfile::tempdir().unwrap();
    let topic = topic(&broker, 2).await;
    for n in 0..3 {
        produce(&broker, &topic, 0, &[], &format!("{{\"n\": {n}}}")).await;
    }
    produce(&broker, &topic, 1, &[], r#"{"n": 9}"#).await;
    let sub = subscription(&broker, json!({"topic": topic, "prefetch": 2}));
    let mut source = open(&sub, &broker, dir.path()).await;
    let one = next(&mut source).await;
    let two = next(&mut source).await;
    assert!(
        tokio::time::timeout(Duration::from_millis(500), source.next())
            .await
            .is_err(),
        "a third message came while two were unsettled"
    );
    assert_eq!(
        source.backlog().await.unwrap(),
        Backlog {
            pending: Some(2),
            unacknowledged: Some(2)
        }
    );
    one.ack().await.unwrap();
    let three = next(&mut source).await;
    two.ack().await.unwrap();
    let four = next(&mut source).await;
    three.ack().await.unwrap();
    four.ack().await.unwrap();
    assert_eq!(
        source.backlog().await.unwrap(),
        Backlog {
            pending: Some(0),
            unacknowledged: Some(0)
        }
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_topic_that_does_not_exist_or_a_bad_offsets_file_is_refused_naming_it() {
    let Some(broker) = broker() else { return };
    let dir = tempfile::tempdir().unwrap();
    let sub = subscription(&broker, json!({"topic": "knhk-no-such-topic"}));
    let err = intake::open_in(&sub, &instance(&broker), Some(dir.path()))
        .await
        .unwrap_err()
        .to_string();
    assert_eq!(
        err,
        "subscription log/knhk-no-such-topic: topic knhk-no-such-topic: it does not exist, or has \
         no partitions"
    );
    let topic = topic(&broker, 1).await;
    let sub = subscription(
        &broker,
        json!({"topic": topic, "dead_letter": "knhk-no-such-dl"}),
    );
    let err = intake::open_in(&sub, &instance(&broker), Some(dir.path()))
        .await
        .unwrap_err()
        .to_string();
    assert!(
        err.ends_with("dead letter topic knhk-no-such-dl: it does not exist, or has no partitions"),
        "{err}"
    );
    let sub = subscription(&broker, json!({"topic": topic}));
    let file = OffsetFile::new(dir.path(), &sub.name, &topic);
    std::fs::write(file.path(), "garbage").unwrap();
    let err = intake::open_in(&sub, &instance(&broker), Some(dir.path()))
        .await
        .unwrap_err()
        .to_string();
    assert!(err.contains("the offsets file: "), "{err}");
    assert!(err.contains("is not an offsets file"), "{err}");
}
