//! The intake from an MQTT topic of the real Mosquitto of this machine (127.0.0.1:1883), on a
//! temporary SQLite store: a message starts a case, a message whose id (user property
//! `Idempotency-Key` or `Message-Id`) is stored starts no second one, a message left
//! unacknowledged by a dropped consumer is redelivered in its persistent session and
//! deduplicated, a malformed message goes to the dead letter topic with its reason.

use std::time::Duration;

use knhk_connectors::InstanceConfig;
use knhk_connectors::intake::{self, REASON_HEADER, Subscription, parse_subscriptions};
use knhk_workflow_engine::intake::{Intake, Outcome, Route, message_key, process, settle};
use knhk_workflow_engine::{CaseQuery, SourceFormat, WorkflowEngine};
use rumqttc::v5::mqttbytes::QoS;
use rumqttc::v5::mqttbytes::v5::{Packet, Publish, PublishProperties};
use rumqttc::v5::{AsyncClient, Event, MqttOptions};
use serde_json::{Value, json};
use tokio::sync::mpsc;
use tokio_util::sync::CancellationToken;

use crate::support::*;

fn suffix() -> String {
    uuid::Uuid::new_v4().simple().to_string()[..12].to_owned()
}

fn instances() -> Vec<InstanceConfig> {
    let table = json!({ "kind": "mqtt", "host": "127.0.0.1" });
    vec![InstanceConfig::parse("mq", table.as_object().unwrap()).unwrap()]
}

fn subscriptions(value: Value) -> Vec<Subscription> {
    parse_subscriptions(&value, &instances()).unwrap()
}

/// Publishes `body` at QoS 1 with the user property `(key, id)`, returning at the PUBACK.
async fn publish(topic: &str, property: Option<(&str, &str)>, body: &[u8]) {
    let options = MqttOptions::new(format!("knhk-test-pub-{}", suffix()), "127.0.0.1", 1883);
    let (client, mut events) = AsyncClient::new(options, 10);
    let properties = PublishProperties {
        user_properties: property
            .map(|(k, v)| vec![(k.to_owned(), v.to_owned())])
            .unwrap_or_default(),
        ..Default::default()
    };
    client
        .publish_with_properties(topic, QoS::AtLeastOnce, false, body.to_vec(), properties)
        .await
        .unwrap();
    tokio::time::timeout(Duration::from_secs(5), async {
        loop {
            if let Event::Incoming(Packet::PubAck(_)) = events.poll().await.unwrap() {
                return;
            }
        }
    })
    .await
    .expect("a PUBACK");
}

/// A plain subscriber of `topic`, ready (SUBACK seen) when this returns.
async fn subscribe(topic: &str) -> mpsc::UnboundedReceiver<Publish> {
    let options = MqttOptions::new(format!("knhk-test-sub-{}", suffix()), "127.0.0.1", 1883);
    let (client, mut events) = AsyncClient::new(options, 10);
    client.subscribe(topic, QoS::AtLeastOnce).await.unwrap();
    let (tx, rx) = mpsc::unbounded_channel();
    let (ready, subscribed) = tokio::sync::oneshot::channel();
    tokio::spawn(async move {
        let _client = client;
        let mut ready = Some(ready);
        loop {
            match events.poll().await {
                Ok(Event::Incoming(Packet::SubAck(_))) => {
                    if let Some(r) = ready.take() {
                        let _ = r.send(());
                    }
                }
                Ok(Event::Incoming(Packet::Publish(p))) => {
                    if tx.send(p).is_err() {
                        return;
                    }
                }
                Ok(_) => {}
                Err(_) => return,
            }
        }
    });
    tokio::time::timeout(Duration::from_secs(5), subscribed)
        .await
        .unwrap()
        .unwrap();
    rx
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
async fn a_message_starts_a_case_named_by_its_idempotency_key_property() {
    let dir = tempfile::tempdir().unwrap();
    let s = suffix();
    let name = format!("MqttOrders{s}");
    let engine = engine_with(&dir, &name).await;
    let topic = format!("knhk/t/in/{s}");
    let subs = subscriptions(json!([{
        "connector": "mq", "topic": topic, "start": name,
        "mapping": "{'order': message.order, 'via': message.topic, 'id': message.message_id}",
    }]));
    let shutdown = CancellationToken::new();
    let intake = Intake::new(engine.clone(), subs, instances()).unwrap();
    let task = tokio::spawn(intake.run(shutdown.clone()));
    // The intake subscribes in its own task: the message is sent again (same id) until a
    // case shows; the copies are duplicates and make no case.
    eventually("the message starts a case", || async {
        publish(
            &topic,
            Some(("Idempotency-Key", "m-1")),
            br#"{"order": 17}"#,
        )
        .await;
        tokio::time::sleep(Duration::from_millis(100)).await;
        case_count(&engine).await >= 1
    })
    .await;
    let cases = engine.cases(&CaseQuery::default()).await.unwrap();
    assert_eq!(cases.len(), 1);
    let view = engine.case(cases[0].id).await.unwrap();
    assert_eq!(view.data["order"], 17);
    assert_eq!(view.data["via"], json!(topic));
    assert_eq!(view.data["id"], "m-1");
    let key = message_key(&format!("mq/{topic}"), "m-1");
    assert!(engine.has_key(&key).await.unwrap());
    shutdown.cancel();
    task.await.unwrap().unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_message_whose_message_id_property_is_stored_already_starts_no_second_case() {
    let dir = tempfile::tempdir().unwrap();
    let s = suffix();
    let name = format!("MqttTwice{s}");
    let engine = engine_with(&dir, &name).await;
    let topic = format!("knhk/t/twice/{s}");
    let sub =
        subscriptions(json!([{ "connector": "mq", "topic": topic, "start": name }])).remove(0);
    let route = Route::new(sub.clone()).unwrap();
    let mut source = intake::open(&sub, &instances()[0]).await.unwrap();
    let mut outcomes = Vec::new();
    for (id, body) in [
        ("m-1", "{\"n\": 1}"),
        ("m-1", "{\"n\": 1}"),
        ("m-2", "{\"n\": 2}"),
    ] {
        publish(&topic, Some(("Message-Id", id)), body.as_bytes()).await;
        let m = tokio::time::timeout(Duration::from_secs(10), source.next())
            .await
            .expect("received")
            .unwrap()
            .unwrap();
        assert_eq!(m.id.as_deref(), Some(id));
        let outcome = process(&engine, &route, &m).await;
        settle(&route, m, &outcome).await;
        outcomes.push(outcome);
    }
    assert!(matches!(outcomes[0], Outcome::Committed(_)));
    assert_eq!(outcomes[1], Outcome::Duplicate);
    assert!(matches!(outcomes[2], Outcome::Committed(_)));
    assert_eq!(case_count(&engine).await, 2);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_consumer_dropped_between_commit_and_ack_gets_the_redelivery_and_it_is_deduplicated() {
    let dir = tempfile::tempdir().unwrap();
    let s = suffix();
    let name = format!("MqttDropped{s}");
    let engine = engine_with(&dir, &name).await;
    let topic = format!("knhk/t/dropped/{s}");
    let sub =
        subscriptions(json!([{ "connector": "mq", "topic": topic, "start": name }])).remove(0);
    let route = Route::new(sub.clone()).unwrap();
    let instance = &instances()[0];
    // The first consumer commits the case and goes before acknowledging.
    let mut first = intake::open(&sub, instance).await.unwrap();
    publish(&topic, Some(("Idempotency-Key", "d-1")), br#"{"n": 1}"#).await;
    let message = tokio::time::timeout(Duration::from_secs(10), first.next())
        .await
        .expect("received")
        .unwrap()
        .unwrap();
    assert!(matches!(
        process(&engine, &route, &message).await,
        Outcome::Committed(_)
    ));
    message.abandon();
    drop(first);
    // The same subscription connects again in its session: Mosquitto resends the message it
    // had no PUBACK for, with the same id, and nothing is done twice.
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
    // The prober connects of its own; MQTT tells no backlog.
    assert_eq!(
        second.backlog().await.unwrap(),
        knhk_connectors::intake::Backlog::default()
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_malformed_message_goes_to_the_dead_letter_topic_with_its_reason_and_the_next_is_taken() {
    let dir = tempfile::tempdir().unwrap();
    let s = suffix();
    let name = format!("MqttMalformed{s}");
    let engine = engine_with(&dir, &name).await;
    let (topic, dead) = (format!("knhk/t/bad/{s}"), format!("knhk/t/bad/{s}/dead"));
    let mut dead_letters = subscribe(&dead).await;
    let subs = subscriptions(json!([{
        "connector": "mq", "topic": topic, "start": name, "dead_letter": dead, "prefetch": 1,
    }]));
    let shutdown = CancellationToken::new();
    let intake = Intake::new(engine.clone(), subs, instances()).unwrap();
    let task = tokio::spawn(intake.run(shutdown.clone()));
    let letter = loop {
        publish(
            &topic,
            Some(("Idempotency-Key", "bad-1")),
            b"this is not json",
        )
        .await;
        if let Ok(Some(m)) =
            tokio::time::timeout(Duration::from_millis(200), dead_letters.recv()).await
        {
            break m;
        }
    };
    let properties = letter.properties.unwrap().user_properties;
    let reason = properties
        .iter()
        .find(|(k, _)| k == REASON_HEADER)
        .map(|(_, v)| v.clone())
        .expect("a reason property");
    assert!(reason.contains("not JSON"), "{reason}");
    assert_eq!(letter.payload.as_ref(), b"this is not json");
    publish(&topic, Some(("Idempotency-Key", "good-1")), br#"{"n": 1}"#).await;
    eventually("the good message starts a case", || async {
        case_count(&engine).await == 1
    })
    .await;
    shutdown.cancel();
    task.await.unwrap().unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn prefetch_is_the_receive_maximum_so_the_broker_holds_back_past_it() {
    let s = suffix();
    let topic = format!("knhk/t/prefetch/{s}");
    let sub = subscriptions(json!([{
        "connector": "mq", "topic": topic, "start": "x", "prefetch": 2,
    }]))
    .remove(0);
    let mut source = intake::open(&sub, &instances()[0]).await.unwrap();
    for n in 0..3 {
        let id = format!("p-{n}");
        publish(
            &topic,
            Some(("Idempotency-Key", &id)),
            format!("{{\"n\": {n}}}").as_bytes(),
        )
        .await;
    }
    let one = source.next().await.unwrap().unwrap();
    let two = source.next().await.unwrap().unwrap();
    assert!(
        tokio::time::timeout(Duration::from_millis(500), source.next())
            .await
            .is_err(),
        "a third message came while two were unacknowledged"
    );
    one.ack().await.unwrap();
    let three = tokio::time::timeout(Duration::from_secs(10), source.next())
        .await
        .expect("a third once one is acknowledged")
        .unwrap()
        .unwrap();
    assert_eq!(three.id.as_deref(), Some("p-2"));
    two.ack().await.unwrap();
    three.ack().await.unwrap();
}
