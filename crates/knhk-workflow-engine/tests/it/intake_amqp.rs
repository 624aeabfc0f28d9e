//! The intake from an AMQP queue of the real RabbitMQ of this machine (127.0.0.1:5672), on a
//! temporary SQLite store: a message starts a case, a message whose `message_id` is stored
//! starts no second one, a message left unacknowledged by a dropped consumer is redelivered and
//! deduplicated, a malformed message goes to the dead letter queue with its reason.

use std::time::Duration;

use knhk_connectors::InstanceConfig;
use knhk_connectors::intake::{self, REASON_HEADER, Subscription, parse_subscriptions};
use knhk_workflow_engine::intake::{Intake, Outcome, Route, message_key, process, settle};
use knhk_workflow_engine::{CaseQuery, SourceFormat, WorkflowEngine};
use lapin::options::{
    BasicGetOptions, BasicPublishOptions, ConfirmSelectOptions, QueueDeclareOptions,
    QueueDeleteOptions,
};
use lapin::types::{AMQPValue, FieldTable, ShortString};
use lapin::{BasicProperties, Channel, Connection, ConnectionProperties};
use serde_json::{Value, json};
use tokio_util::sync::CancellationToken;

use crate::support::*;

const URL: &str = "amqp://guest:guest@127.0.0.1:5672/%2f";

fn suffix() -> String {
    uuid::Uuid::new_v4().simple().to_string()[..12].to_owned()
}

fn instances() -> Vec<InstanceConfig> {
    instances_named("rabbit")
}

fn instances_named(name: &str) -> Vec<InstanceConfig> {
    let table = json!({ "kind": "amqp", "url": URL });
    vec![InstanceConfig::parse(name, table.as_object().unwrap()).unwrap()]
}

fn subscriptions(value: Value) -> Vec<Subscription> {
    parse_subscriptions(&value, &instances()).unwrap()
}

/// The test's own connection: it declares the test's queues, publishes with confirms and
/// deletes the queues at the end.
struct Broker {
    channel: Channel,
    queues: Vec<String>,
    _connection: Connection,
}

impl Broker {
    async fn new(queues: &[&str]) -> Broker {
        let connection = Connection::connect(URL, ConnectionProperties::default())
            .await
            .unwrap();
        let channel = connection.create_channel().await.unwrap();
        channel
            .confirm_select(ConfirmSelectOptions::default())
            .await
            .unwrap();
        for q in queues {
            channel
                .queue_declare(
                    (*q).into(),
                    QueueDeclareOptions::default(),
                    FieldTable::default(),
                )
                .await
                .unwrap();
        }
        Broker {
            channel,
            queues: queues.iter().map(|q| (*q).to_owned()).collect(),
            _connection: connection,
        }
    }

    async fn publish(&self, queue: &str, id: Option<&str>, body: &[u8]) {
        let mut headers = FieldTable::default();
        headers.insert("Origin".into(), AMQPValue::LongString("test".into()));
        let mut properties = BasicProperties::default().with_headers(headers);
        if let Some(id) = id {
            properties = properties.with_message_id(ShortString::from(id));
        }
        self.channel
            .basic_publish(
                ShortString::from(""),
                queue.into(),
                BasicPublishOptions::default(),
                body,
                properties,
            )
            .await
            .unwrap()
            .await
            .unwrap();
    }

    async fn get(&self, queue: &str) -> Option<lapin::message::BasicGetMessage> {
        self.channel
            .basic_get(queue.into(), BasicGetOptions { no_ack: true })
            .await
            .unwrap()
    }

    async fn delete(self) {
        for q in &self.queues {
            self.channel
                .queue_delete(q.as_str().into(), QueueDeleteOptions::default())
                .await
                .unwrap();
        }
    }
}

async fn engine_with(dir: &tempfile::TempDir, name: &str) -> WorkflowEngine {
    let engine = engine_on(sqlite(&dir.path().join("knhk.db")).await);
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
async fn a_queued_message_starts_a_case_named_by_its_message_id() {
    let dir = tempfile::tempdir().unwrap();
    let s = suffix();
    let name = format!("AmqpOrders{s}");
    let engine = engine_with(&dir, &name).await;
    let queue = format!("knhk-in-{s}");
    let broker = Broker::new(&[&queue]).await;
    broker
        .publish(&queue, Some("m-1"), br#"{"order": 17}"#)
        .await;
    let subs = subscriptions(json!([{
        "connector": "rabbit", "queue": queue, "start": name,
        "mapping": "{'order': message.order, 'via': message.subject, 'id': message.message_id, 'origin': message.headers.Origin}",
    }]));
    let shutdown = CancellationToken::new();
    let intake = Intake::new(engine.clone(), subs, instances()).unwrap();
    let task = tokio::spawn(intake.run(shutdown.clone()));
    eventually("the message starts a case", || async {
        case_count(&engine).await == 1
    })
    .await;
    let cases = engine.cases(&CaseQuery::default()).await.unwrap();
    let view = engine.case(cases[0].id).await.unwrap();
    assert_eq!(view.data["order"], 17);
    assert_eq!(view.data["via"], json!(queue));
    assert_eq!(view.data["id"], "m-1");
    assert_eq!(view.data["origin"], "test");
    let key = message_key(&format!("rabbit/{queue}"), "m-1");
    assert!(engine.has_key(&key).await.unwrap());
    shutdown.cancel();
    task.await.unwrap().unwrap();
    // Acknowledged after the commit: nothing is left in the queue once the intake stops.
    assert!(broker.get(&queue).await.is_none());
    broker.delete().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_message_whose_id_is_stored_already_starts_no_second_case() {
    let dir = tempfile::tempdir().unwrap();
    let s = suffix();
    let name = format!("AmqpTwice{s}");
    let engine = engine_with(&dir, &name).await;
    let queue = format!("knhk-twice-{s}");
    let broker = Broker::new(&[&queue]).await;
    for (id, body) in [
        ("m-1", "{\"n\": 1}"),
        ("m-1", "{\"n\": 1}"),
        ("m-2", "{\"n\": 2}"),
    ] {
        broker.publish(&queue, Some(id), body.as_bytes()).await;
    }
    let sub =
        subscriptions(json!([{ "connector": "rabbit", "queue": queue, "start": name }])).remove(0);
    let route = Route::new(sub.clone()).unwrap();
    let mut source = intake::open(&sub, &instances()[0]).await.unwrap();
    let mut outcomes = Vec::new();
    for _ in 0..3 {
        let m = tokio::time::timeout(Duration::from_secs(10), source.next())
            .await
            .expect("received")
            .unwrap()
            .unwrap();
        let outcome = process(&engine, &route, &m).await;
        settle(&route, m, &outcome).await;
        outcomes.push(outcome);
    }
    assert!(matches!(outcomes[0], Outcome::Committed(_)));
    assert_eq!(outcomes[1], Outcome::Duplicate);
    assert!(matches!(outcomes[2], Outcome::Committed(_)));
    assert_eq!(case_count(&engine).await, 2);
    broker.delete().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_consumer_dropped_between_commit_and_ack_gets_the_redelivery_and_it_is_deduplicated() {
    let dir = tempfile::tempdir().unwrap();
    let s = suffix();
    let name = format!("AmqpDropped{s}");
    let engine = engine_with(&dir, &name).await;
    let queue = format!("knhk-dropped-{s}");
    let broker = Broker::new(&[&queue]).await;
    broker.publish(&queue, Some("d-1"), br#"{"n": 1}"#).await;
    let sub =
        subscriptions(json!([{ "connector": "rabbit", "queue": queue, "start": name }])).remove(0);
    let route = Route::new(sub.clone()).unwrap();
    let instance = &instances()[0];
    // The first consumer commits the case and goes before acknowledging.
    let mut first = intake::open(&sub, instance).await.unwrap();
    let message = first.next().await.unwrap().unwrap();
    assert!(matches!(
        process(&engine, &route, &message).await,
        Outcome::Committed(_)
    ));
    message.abandon();
    drop(first);
    // Its connection closed, RabbitMQ puts the message back: a new consumer gets it, with the
    // same id, and nothing is done twice.
    let mut second = intake::open(&sub, instance).await.unwrap();
    let again = tokio::time::timeout(Duration::from_secs(10), second.next())
        .await
        .expect("redelivered")
        .unwrap()
        .unwrap();
    assert_eq!(again.id.as_deref(), Some("d-1"));
    let outcome = process(&engine, &route, &again).await;
    assert_eq!(outcome, Outcome::Duplicate);
    settle(&route, again, &outcome).await;
    assert_eq!(case_count(&engine).await, 1);
    assert_eq!(second.backlog().await.unwrap().pending, Some(0));
    drop(second);
    assert!(
        broker.get(&queue).await.is_none(),
        "the redelivery was acknowledged"
    );
    broker.delete().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_malformed_message_goes_to_the_dead_letter_queue_with_its_reason_and_the_next_is_taken() {
    let dir = tempfile::tempdir().unwrap();
    let s = suffix();
    let name = format!("AmqpMalformed{s}");
    let engine = engine_with(&dir, &name).await;
    let (queue, dead) = (format!("knhk-bad-{s}"), format!("knhk-bad-dead-{s}"));
    let broker = Broker::new(&[&queue, &dead]).await;
    broker
        .publish(&queue, Some("bad-1"), b"this is not json")
        .await;
    broker.publish(&queue, Some("good-1"), br#"{"n": 1}"#).await;
    let subs = subscriptions(json!([{
        "connector": "rabbit", "queue": queue, "start": name, "dead_letter": dead,
        "prefetch": 1,
    }]));
    let shutdown = CancellationToken::new();
    let intake = Intake::new(engine.clone(), subs, instances()).unwrap();
    let task = tokio::spawn(intake.run(shutdown.clone()));
    eventually("the good message starts a case", || async {
        case_count(&engine).await == 1
    })
    .await;
    let letter = broker.get(&dead).await.expect("a dead letter");
    let headers = letter.delivery.properties.headers().clone().unwrap();
    let reason = match headers.inner().get(REASON_HEADER) {
        Some(AMQPValue::LongString(r)) => String::from_utf8_lossy(r.as_bytes()).into_owned(),
        other => panic!("no reason header: {other:?}"),
    };
    assert!(reason.contains("not JSON"), "{reason}");
    assert_eq!(letter.delivery.data, b"this is not json");
    shutdown.cancel();
    task.await.unwrap().unwrap();
    assert!(broker.get(&queue).await.is_none(), "both were acknowledged");
    broker.delete().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn prefetch_bounds_the_messages_in_flight_and_the_backlog_counts_the_ready_ones() {
    let s = suffix();
    let queue = format!("knhk-prefetch-{s}");
    let broker = Broker::new(&[&queue]).await;
    for n in 0..5 {
        let id = format!("p-{n}");
        broker
            .publish(&queue, Some(&id), format!("{{\"n\": {n}}}").as_bytes())
            .await;
    }
    let sub = subscriptions(json!([{
        "connector": "rabbit", "queue": queue, "start": "x", "prefetch": 2,
    }]))
    .remove(0);
    let mut source = intake::open(&sub, &instances()[0]).await.unwrap();
    let one = source.next().await.unwrap().unwrap();
    let two = source.next().await.unwrap().unwrap();
    assert!(
        tokio::time::timeout(Duration::from_millis(500), source.next())
            .await
            .is_err(),
        "a third message came while two were in flight"
    );
    assert_eq!(source.backlog().await.unwrap().pending, Some(3));
    one.ack().await.unwrap();
    let three = tokio::time::timeout(Duration::from_secs(10), source.next())
        .await
        .expect("a third once one is acknowledged")
        .unwrap()
        .unwrap();
    two.ack().await.unwrap();
    three.ack().await.unwrap();
    broker.delete().await;
}

/// Closes, from the broker's side, the connection whose client name is `connection_name`.
async fn close_from_server(connection_name: &str) {
    let deadline = tokio::time::Instant::now() + Duration::from_secs(20);
    let pid = loop {
        let out = tokio::process::Command::new("rabbitmqctl")
            .args([
                "list_connections",
                "-q",
                "--no-table-headers",
                "pid",
                "client_properties",
            ])
            .output()
            .await
            .unwrap();
        let text = String::from_utf8_lossy(&out.stdout).into_owned();
        if let Some(line) = text.lines().find(|l| l.contains(connection_name)) {
            break line.split('\t').next().unwrap().to_owned();
        }
        assert!(
            tokio::time::Instant::now() < deadline,
            "{connection_name} not listed: {text}"
        );
    };
    let status = tokio::process::Command::new("rabbitmqctl")
        .args(["close_connection", &pid, "closed by a knhk test"])
        .status()
        .await
        .unwrap();
    assert!(status.success());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_connection_closed_by_the_broker_is_opened_again_and_the_subscription_goes_on() {
    let dir = tempfile::tempdir().unwrap();
    let s = suffix();
    let name = format!("AmqpClosed{s}");
    let engine = engine_with(&dir, &name).await;
    let queue = format!("knhk-closed-{s}");
    let broker = Broker::new(&[&queue]).await;
    let instance = format!("rabbit{s}");
    let subs = parse_subscriptions(
        &json!([{ "connector": instance, "queue": queue, "start": name }]),
        &instances_named(&instance),
    )
    .unwrap();
    let shutdown = CancellationToken::new();
    let intake = Intake::new(engine.clone(), subs, instances_named(&instance)).unwrap();
    let task = tokio::spawn(intake.run(shutdown.clone()));
    broker.publish(&queue, Some("c-1"), br#"{"n": 1}"#).await;
    eventually("the first message starts a case", || async {
        case_count(&engine).await == 1
    })
    .await;
    close_from_server(&format!("knhk {instance} #1")).await;
    broker.publish(&queue, Some("c-2"), br#"{"n": 2}"#).await;
    eventually("the message after the close starts a case", || async {
        case_count(&engine).await == 2
    })
    .await;
    shutdown.cancel();
    task.await.unwrap().unwrap();
    broker.delete().await;
}
