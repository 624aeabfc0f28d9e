//! The intake from a Kafka topic, against a Kafka-protocol broker when `KNHK_TEST_KAFKA` names
//! one (`scripts/kafka-broker.sh` starts tansu on 127.0.0.1:9092; the tests say they are
//! skipped otherwise), on a temporary SQLite store: each message starts a case and the
//! subscription's backlog is probed, a message redelivered after a restart before its offset
//! was saved starts no second case, a malformed message goes to the dead letter topic with its
//! reason and the next is taken.

use std::path::Path;
use std::time::Duration;

use knhk_connectors::InstanceConfig;
use knhk_connectors::intake::{
    self, Backlog, REASON_HEADER, SUBSCRIPTION_HEADER, Subscription, parse_subscriptions,
};
use knhk_workflow_engine::intake::{Intake, Outcome, Route, message_key, process, settle};
use knhk_workflow_engine::{CaseQuery, SourceFormat, WorkflowEngine};
use rskafka::client::ClientBuilder;
use rskafka::client::partition::{Compression, UnknownTopicHandling};
use rskafka::record::{Record, RecordAndOffset};
use serde_json::{Value, json};
use tokio_util::sync::CancellationToken;

use crate::support::*;

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

fn suffix() -> String {
    uuid::Uuid::new_v4().simple().to_string()[..12].to_owned()
}

fn instances(broker: &str) -> Vec<InstanceConfig> {
    let table = json!({"kind": "kafka", "brokers": broker});
    vec![InstanceConfig::parse("log", table.as_object().unwrap()).unwrap()]
}

fn subscriptions(broker: &str, value: Value) -> Vec<Subscription> {
    parse_subscriptions(&value, &instances(broker)).unwrap()
}

/// Creates the topics, of `partitions` partitions each.
async fn create(broker: &str, topics: &[&str], partitions: i32) {
    let client = ClientBuilder::new(vec![broker.to_owned()])
        .build()
        .await
        .unwrap();
    let controller = client.controller_client().unwrap();
    for topic in topics {
        controller
            .create_topic(*topic, partitions, 1, 5_000)
            .await
            .unwrap();
    }
}

/// Produces `body` to a partition, with the header `(key, value)` when given.
async fn produce(
    broker: &str,
    topic: &str,
    partition: i32,
    header: Option<(&str, &str)>,
    body: &[u8],
) {
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
        value: Some(body.to_vec()),
        headers: header
            .map(|(k, v)| (k.to_owned(), v.as_bytes().to_vec()))
            .into_iter()
            .collect(),
        timestamp: rskafka::chrono::DateTime::from_timestamp_millis(1_700_000_000_000).unwrap(),
    };
    pc.produce(vec![record], Compression::NoCompression)
        .await
        .unwrap();
}

/// Reads what a partition holds from offset 0.
async fn records(broker: &str, topic: &str, partition: i32) -> Vec<RecordAndOffset> {
    let client = ClientBuilder::new(vec![broker.to_owned()])
        .build()
        .await
        .unwrap();
    let pc = client
        .partition_client(topic, partition, UnknownTopicHandling::Retry)
        .await
        .unwrap();
    pc.fetch_records(0, 1..1_000_000, 100).await.unwrap().0
}

async fn engine_with(dir: &Path, name: &str) -> WorkflowEngine {
    let engine = engine_on(sqlite(&dir.join("knhk.db")).await);
    engine
        .register_workflow(
            "intake.ttl",
            SourceFormat::Turtle,
            &turtle(name, &[("a", "knhk:role \"clerk\" ;", &["end"])]),
        )
        .await
        .unwrap();
    engine
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn each_message_starts_a_case_and_the_backlog_is_probed() {
    let Some(broker) = broker() else { return };
    let dir = tempfile::tempdir().unwrap();
    let s = suffix();
    let name = format!("KafkaOrders{s}");
    let engine = engine_with(dir.path(), &name).await;
    let topic = format!("knhk-orders-{s}");
    create(&broker, &[&topic], 2).await;
    produce(
        &broker,
        &topic,
        0,
        Some(("idempotency-key", "o-1")),
        br#"{"order": 1}"#,
    )
    .await;
    produce(&broker, &topic, 1, None, br#"{"order": 2}"#).await;
    produce(
        &broker,
        &topic,
        1,
        Some(("Message-Id", "o-3")),
        br#"{"order": 3}"#,
    )
    .await;
    let subs = subscriptions(
        &broker,
        json!([{
            "connector": "log", "topic": topic, "start": name,
            "mapping": "{'order': message.order, 'via': message.topic, 'id': message.message_id}",
        }]),
    );
    let shutdown = CancellationToken::new();
    let intake = Intake::new(engine.clone(), subs, instances(&broker))
        .unwrap()
        .with_state_dir(dir.path().join("intake"));
    let health = intake.health();
    let task = tokio::spawn(intake.run(shutdown.clone()));
    eventually("the three messages start three cases", || async {
        case_count(&engine).await == 3
    })
    .await;
    let mut ids: Vec<String> = Vec::new();
    for case in engine.cases(&CaseQuery::default()).await.unwrap() {
        let view = engine.case(case.id).await.unwrap();
        assert_eq!(view.data["via"], json!(topic));
        ids.push(view.data["id"].as_str().unwrap().to_owned());
    }
    ids.sort();
    assert_eq!(
        ids,
        vec![format!("{topic}/1/0"), "o-1".to_owned(), "o-3".to_owned()]
    );
    let sub = format!("log/{topic}");
    assert!(engine.has_key(&message_key(&sub, "o-1")).await.unwrap());
    // Everything settled: the probe finds nothing pending, nothing unacknowledged.
    eventually("the backlog is empty", || async {
        let probes = health.probe(Duration::from_secs(5)).await;
        probes.len() == 1
            && probes[0].name == sub
            && probes[0].result
                == Ok(Backlog {
                    pending: Some(0),
                    unacknowledged: Some(0),
                })
    })
    .await;
    shutdown.cancel();
    task.await.unwrap().unwrap();
    // The committed offsets are in the state directory.
    let file = intake::offsets::OffsetFile::new(&dir.path().join("intake"), &sub, &topic);
    assert_eq!(file.load().unwrap(), [(0, 1), (1, 2)].into_iter().collect());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_message_redelivered_after_a_restart_before_its_offset_was_saved_starts_no_second_case() {
    let Some(broker) = broker() else { return };
    let dir = tempfile::tempdir().unwrap();
    let s = suffix();
    let name = format!("KafkaRestart{s}");
    let engine = engine_with(dir.path(), &name).await;
    let topic = format!("knhk-restart-{s}");
    create(&broker, &[&topic], 1).await;
    let sub = subscriptions(
        &broker,
        json!([{"connector": "log", "topic": topic, "start": name}]),
    )
    .remove(0);
    let route = Route::new(sub.clone()).unwrap();
    let instance = &instances(&broker)[0];
    let state = dir.path().join("intake");
    // No id header: the message is named by its position, the same on every delivery.
    produce(&broker, &topic, 0, None, br#"{"n": 1}"#).await;
    let mut first = intake::open_in(&sub, instance, Some(&state)).await.unwrap();
    let message = tokio::time::timeout(Duration::from_secs(10), first.next())
        .await
        .expect("received")
        .unwrap()
        .unwrap();
    assert_eq!(message.id, Some(format!("{topic}/0/0")));
    assert!(matches!(
        process(&engine, &route, &message).await,
        Outcome::Committed(_)
    ));
    // The process dies after the commit, before the offset moved past the message.
    message.abandon();
    drop(first);
    let mut second = intake::open_in(&sub, instance, Some(&state)).await.unwrap();
    let again = tokio::time::timeout(Duration::from_secs(10), second.next())
        .await
        .expect("redelivered")
        .unwrap()
        .unwrap();
    assert_eq!(again.id, Some(format!("{topic}/0/0")));
    let outcome = process(&engine, &route, &again).await;
    assert_eq!(outcome, Outcome::Duplicate);
    settle(&route, again, &outcome).await;
    drop(second);
    assert_eq!(case_count(&engine).await, 1);
    // Acknowledged and written this time; a crash before the write is the file as it was
    // before the acknowledgement.
    let file = intake::offsets::OffsetFile::new(&state, &sub.name, &topic);
    assert_eq!(file.load().unwrap(), [(0, 1)].into_iter().collect());
    file.save(&[(0, 0)].into_iter().collect()).unwrap();
    let mut third = intake::open_in(&sub, instance, Some(&state)).await.unwrap();
    let once_more = tokio::time::timeout(Duration::from_secs(10), third.next())
        .await
        .expect("redelivered")
        .unwrap()
        .unwrap();
    assert_eq!(once_more.id, Some(format!("{topic}/0/0")));
    assert_eq!(
        process(&engine, &route, &once_more).await,
        Outcome::Duplicate
    );
    assert_eq!(case_count(&engine).await, 1);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_malformed_message_goes_to_the_dead_letter_topic_with_its_reason_and_the_next_is_taken() {
    let Some(broker) = broker() else { return };
    let dir = tempfile::tempdir().unwrap();
    let s = suffix();
    let name = format!("KafkaMalformed{s}");
    let engine = engine_with(dir.path(), &name).await;
    let (topic, dead) = (format!("knhk-bad-{s}"), format!("knhk-bad-{s}-dead"));
    create(&broker, &[&topic, &dead], 1).await;
    produce(
        &broker,
        &topic,
        0,
        Some(("idempotency-key", "bad-1")),
        b"this is not json",
    )
    .await;
    produce(
        &broker,
        &topic,
        0,
        Some(("idempotency-key", "good-1")),
        br#"{"n": 1}"#,
    )
    .await;
    let subs = subscriptions(
        &broker,
        json!([{"connector": "log", "topic": topic, "start": name, "dead_letter": dead,
                "prefetch": 1}]),
    );
    let shutdown = CancellationToken::new();
    let intake = Intake::new(engine.clone(), subs, instances(&broker))
        .unwrap()
        .with_state_dir(dir.path().join("intake"));
    let task = tokio::spawn(intake.run(shutdown.clone()));
    eventually("the good message starts a case", || async {
        case_count(&engine).await == 1
    })
    .await;
    let letters = records(&broker, &dead, 0).await;
    assert_eq!(letters.len(), 1);
    let letter = &letters[0].record;
    assert_eq!(letter.value.as_deref(), Some(&b"this is not json"[..]));
    let reason = String::from_utf8(letter.headers[REASON_HEADER].clone()).unwrap();
    assert!(reason.contains("not JSON"), "{reason}");
    assert_eq!(
        letter.headers[SUBSCRIPTION_HEADER],
        format!("log/{topic}").into_bytes()
    );
    assert_eq!(letter.headers["idempotency-key"], b"bad-1");
    shutdown.cancel();
    task.await.unwrap().unwrap();
}
