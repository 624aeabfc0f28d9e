//! The intake against the real NATS server of this machine (JetStream on 4222), on a
//! temporary SQLite store: messages start cases and reach waiting trigger tasks, a
//! redelivered message is deduplicated by its id in the store, refused messages go to the
//! dead letter with their reason.

use std::time::Duration;

use async_nats::HeaderMap;
use async_nats::jetstream::consumer::{AckPolicy, pull};
use futures_util::StreamExt;
use knhk_connectors::InstanceConfig;
use knhk_connectors::intake::{self, REASON_HEADER, Subscription, parse_subscriptions};
use knhk_core::CaseStatus;
use knhk_workflow_engine::intake::{Intake, Outcome, Route, process, settle};
use knhk_workflow_engine::{CaseQuery, SourceFormat, WorkItemQuery, WorkflowEngine};
use serde_json::{Value, json};
use tokio_util::sync::CancellationToken;

use crate::support::*;

const NATS: &str = "nats://127.0.0.1:4222";

fn suffix() -> String {
    uuid::Uuid::new_v4().simple().to_string()[..12].to_owned()
}

fn instances() -> Vec<InstanceConfig> {
    let table = json!({ "kind": "nats", "url": NATS });
    vec![InstanceConfig::parse("bus", table.as_object().unwrap()).unwrap()]
}

fn subscriptions(value: Value) -> Vec<Subscription> {
    parse_subscriptions(&value, &instances()).unwrap()
}

async fn publish(client: &async_nats::Client, subject: &str, id: Option<&str>, body: &[u8]) {
    let mut h = HeaderMap::new();
    if let Some(id) = id {
        h.insert("Nats-Msg-Id", id);
    }
    client
        .publish_with_headers(subject.to_owned(), h, body.to_vec().into())
        .await
        .unwrap();
    client.flush().await.unwrap();
}

/// Runs the intake of `subs` in a task; cancels it on drop of the token.
async fn start_intake(
    engine: &WorkflowEngine,
    subs: Vec<Subscription>,
) -> (CancellationToken, tokio::task::JoinHandle<()>) {
    let shutdown = CancellationToken::new();
    let intake = Intake::new(engine.clone(), subs, instances()).unwrap();
    let token = shutdown.clone();
    let task = tokio::spawn(async move { intake.run(token).await.unwrap() });
    (shutdown, task)
}

async fn registered(engine: &WorkflowEngine, text: &str) {
    engine
        .register_workflow("intake.ttl", SourceFormat::Turtle, text)
        .await
        .unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_message_starts_a_case_through_the_intake_with_the_data_its_mapping_gives() {
    let dir = tempfile::tempdir().unwrap();
    let engine = engine_on(sqlite(&dir.path().join("knhk.db")).await);
    let name = format!("Orders{}", suffix());
    registered(
        &engine,
        &turtle(&name, &[("a", "knhk:role \"clerk\" ;", &["end"])]),
    )
    .await;
    let subject = format!("knhk.test.orders.{}", suffix());
    let subs = subscriptions(json!([{
        "connector": "bus",
        "subject": subject,
        "start": name,
        "mapping": "{'order': message.order, 'via': message.subject, 'id': message.message_id}",
    }]));
    let client = async_nats::connect(NATS).await.unwrap();
    let (shutdown, task) = start_intake(&engine, subs).await;
    // The intake subscribes in its own task: the message is sent again (same id) until a
    // case shows, so that a publish before the subscription is not a failure; the copies
    // are duplicates and make no case.
    eventually("the message starts a case", || async {
        publish(&client, &subject, Some("m-1"), br#"{"order": 17}"#).await;
        tokio::time::sleep(Duration::from_millis(100)).await;
        case_count(&engine).await >= 1
    })
    .await;
    let cases = engine.cases(&CaseQuery::default()).await.unwrap();
    assert_eq!(cases.len(), 1);
    let view = engine.case(cases[0].id).await.unwrap();
    assert_eq!(view.status, CaseStatus::Running);
    assert_eq!(view.data["order"], 17);
    assert_eq!(view.data["via"], json!(subject));
    assert_eq!(view.data["id"], "m-1");
    assert!(
        engine
            .has_key(&intake_key(&name_of(&subject), "m-1"))
            .await
            .unwrap()
    );
    shutdown.cancel();
    task.await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_message_whose_id_is_stored_already_starts_no_second_case() {
    let dir = tempfile::tempdir().unwrap();
    let engine = engine_on(sqlite(&dir.path().join("knhk.db")).await);
    let name = format!("Twice{}", suffix());
    registered(
        &engine,
        &turtle(&name, &[("a", "knhk:role \"clerk\" ;", &["end"])]),
    )
    .await;
    let subject = format!("knhk.test.twice.{}", suffix());
    let sub =
        subscriptions(json!([{ "connector": "bus", "subject": subject, "start": name }])).remove(0);
    let route = Route::new(sub.clone()).unwrap();
    let mut source = intake::open(&sub, &instances()[0]).await.unwrap();
    let client = async_nats::connect(NATS).await.unwrap();
    let mut outcomes = Vec::new();
    for (id, body) in [
        ("m-1", "{\"n\": 1}"),
        ("m-1", "{\"n\": 1}"),
        ("m-2", "{\"n\": 2}"),
    ] {
        publish(&client, &subject, Some(id), body.as_bytes()).await;
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
}

fn name_of(subject: &str) -> String {
    format!("bus/{subject}")
}

fn intake_key(subscription: &str, id: &str) -> String {
    knhk_workflow_engine::intake::message_key(subscription, id)
}

/// A workflow whose trigger task `paid` (of `kind`) follows a human task `review`.
fn review_then_paid(name: &str, kind: &str) -> String {
    turtle(
        name,
        &[
            ("review", "knhk:role \"clerk\" ;", &["paid"]),
            (
                "paid",
                &format!("knhk:trigger \"paid\" ; knhk:triggerKind \"{kind}\" ;"),
                &["end"],
            ),
        ],
    )
}

async fn complete_review(engine: &WorkflowEngine, case: knhk_core::CaseId) {
    let items = engine
        .work_items(&WorkItemQuery {
            case: Some(case),
            ..Default::default()
        })
        .await
        .unwrap();
    engine
        .complete_work_item(items[0].id, "ann", json!({}))
        .await
        .unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_message_reaches_the_waiting_trigger_task_of_the_case_its_correlation_names() {
    let dir = tempfile::tempdir().unwrap();
    let engine = engine_on(sqlite(&dir.path().join("knhk.db")).await);
    let name = format!("Pay{}", suffix());
    let wf = engine
        .register_workflow(
            "pay.ttl",
            SourceFormat::Turtle,
            &review_then_paid(&name, "transient"),
        )
        .await
        .unwrap()
        .workflow;
    let case = engine.create_case(wf.id, json!({}), true).await.unwrap().id;
    complete_review(&engine, case).await;
    let subject = format!("knhk.test.paid.{}", suffix());
    let subs = subscriptions(json!([{
        "connector": "bus", "subject": subject, "deliver": "paid",
        "correlation": "message.case",
    }]));
    let client = async_nats::connect(NATS).await.unwrap();
    let (shutdown, task) = start_intake(&engine, subs).await;
    let body = json!({"case": case.to_string(), "amount": 5}).to_string();
    eventually("the event completes the case", || async {
        publish(&client, &subject, Some("p-1"), body.as_bytes()).await;
        tokio::time::sleep(Duration::from_millis(50)).await;
        engine.case(case).await.unwrap().status == CaseStatus::Completed
    })
    .await;
    let view = engine.case(case).await.unwrap();
    assert_eq!(view.data["amount"], 5);
    shutdown.cancel();
    task.await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_early_event_is_kept_by_a_persistent_trigger_and_dead_lettered_by_a_transient_one() {
    let dir = tempfile::tempdir().unwrap();
    let engine = engine_on(sqlite(&dir.path().join("knhk.db")).await);
    let s = suffix();
    let mut cases = Vec::new();
    for kind in ["persistent", "transient"] {
        let wf = engine
            .register_workflow(
                &format!("{kind}.ttl"),
                SourceFormat::Turtle,
                &review_then_paid(&format!("Pay{kind}{s}"), kind),
            )
            .await
            .unwrap()
            .workflow;
        cases.push(engine.create_case(wf.id, json!({}), true).await.unwrap().id);
    }
    let subject = format!("knhk.test.early.{s}");
    let dead = format!("knhk.test.early.dead.{s}");
    let client = async_nats::connect(NATS).await.unwrap();
    let mut dead_letters = client.subscribe(dead.clone()).await.unwrap();
    let subs = subscriptions(json!([{
        "connector": "bus", "subject": subject, "deliver": "paid",
        "correlation": "message.case", "dead_letter": dead, "prefetch": 1,
    }]));
    let (shutdown, task) = start_intake(&engine, subs).await;
    // Persistent: the event arrives while `review` runs; the case keeps it.
    let early = json!({"case": cases[0].to_string(), "amount": 7}).to_string();
    eventually("the persistent case keeps the event", || async {
        publish(&client, &subject, Some(&format!("e-{s}")), early.as_bytes()).await;
        tokio::time::sleep(Duration::from_millis(50)).await;
        engine
            .history(cases[0])
            .await
            .unwrap()
            .iter()
            .any(|e| e.kind.name() == "trigger_kept")
    })
    .await;
    complete_review(&engine, cases[0]).await;
    let done = engine.case(cases[0]).await.unwrap();
    assert_eq!(done.status, CaseStatus::Completed);
    assert_eq!(done.data["amount"], 7);
    // Transient: the event is refused, and goes to the dead letter with the reason.
    let lost = json!({"case": cases[1].to_string(), "amount": 8}).to_string();
    publish(&client, &subject, Some(&format!("t-{s}")), lost.as_bytes()).await;
    let letter = tokio::time::timeout(Duration::from_secs(10), dead_letters.next())
        .await
        .expect("a dead letter")
        .unwrap();
    let reason = letter.headers.as_ref().unwrap().get(REASON_HEADER).unwrap();
    assert!(reason.as_str().contains("paid"), "{}", reason.as_str());
    assert_eq!(letter.payload.as_ref(), lost.as_bytes());
    complete_review(&engine, cases[1]).await;
    assert_eq!(
        engine.case(cases[1]).await.unwrap().status,
        CaseStatus::Running,
        "the transient trigger still waits: the early event was lost"
    );
    shutdown.cancel();
    task.await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_malformed_message_goes_to_the_dead_letter_with_its_reason_and_the_next_one_is_taken() {
    let dir = tempfile::tempdir().unwrap();
    let engine = engine_on(sqlite(&dir.path().join("knhk.db")).await);
    let s = suffix();
    let name = format!("Malformed{s}");
    registered(
        &engine,
        &turtle(&name, &[("a", "knhk:role \"clerk\" ;", &["end"])]),
    )
    .await;
    let subject = format!("knhk.test.malformed.{s}");
    let dead = format!("knhk.test.malformed.dead.{s}");
    let client = async_nats::connect(NATS).await.unwrap();
    let mut dead_letters = client.subscribe(dead.clone()).await.unwrap();
    let subs = subscriptions(json!([{
        "connector": "bus", "subject": subject, "start": name, "dead_letter": dead,
        "prefetch": 1,
    }]));
    let (shutdown, task) = start_intake(&engine, subs).await;
    let letter = loop {
        publish(&client, &subject, Some("bad-1"), b"this is not json").await;
        if let Ok(Some(m)) =
            tokio::time::timeout(Duration::from_millis(200), dead_letters.next()).await
        {
            break m;
        }
    };
    let reason = letter.headers.as_ref().unwrap().get(REASON_HEADER).unwrap();
    assert!(reason.as_str().contains("not JSON"), "{}", reason.as_str());
    assert_eq!(letter.payload.as_ref(), b"this is not json");
    publish(&client, &subject, Some("good-1"), br#"{"n": 1}"#).await;
    eventually("the good message starts a case", || async {
        case_count(&engine).await == 1
    })
    .await;
    shutdown.cancel();
    task.await.unwrap();
}

/// Makes a JetStream stream on `subject` and a durable consumer whose unacknowledged
/// messages come back after 300 ms.
async fn stream_with_consumer(
    client: &async_nats::Client,
    stream: &str,
    subject: &str,
    consumer: &str,
    max_ack_pending: i64,
) {
    let js = async_nats::jetstream::new(client.clone());
    let stream = js
        .create_stream(async_nats::jetstream::stream::Config {
            name: stream.to_owned(),
            subjects: vec![subject.to_owned()],
            max_age: Duration::from_secs(600),
            ..Default::default()
        })
        .await
        .unwrap();
    stream
        .create_consumer(pull::Config {
            durable_name: Some(consumer.to_owned()),
            ack_policy: AckPolicy::Explicit,
            ack_wait: Duration::from_millis(300),
            max_ack_pending,
            ..Default::default()
        })
        .await
        .unwrap();
}

async fn delete_stream(client: &async_nats::Client, stream: &str) {
    let js = async_nats::jetstream::new(client.clone());
    let _ = js.delete_stream(stream).await;
}

async fn js_publish(client: &async_nats::Client, subject: &str, body: &[u8]) {
    let js = async_nats::jetstream::new(client.clone());
    js.publish(subject.to_owned(), body.to_vec().into())
        .await
        .unwrap()
        .await
        .unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_consumer_killed_between_commit_and_ack_gets_the_redelivery_and_it_is_deduplicated() {
    let dir = tempfile::tempdir().unwrap();
    let engine = engine_on(sqlite(&dir.path().join("knhk.db")).await);
    let s = suffix();
    let name = format!("Killed{s}");
    registered(
        &engine,
        &turtle(&name, &[("a", "knhk:role \"clerk\" ;", &["end"])]),
    )
    .await;
    let (stream, subject, consumer) = (format!("KNHK_{s}"), format!("knhk.js.{s}"), "intake");
    let client = async_nats::connect(NATS).await.unwrap();
    stream_with_consumer(&client, &stream, &subject, consumer, 16).await;
    js_publish(&client, &subject, br#"{"n": 1}"#).await;
    let sub = subscriptions(json!([{
        "connector": "bus", "stream": stream, "consumer": consumer, "start": name,
    }]))
    .remove(0);
    let route = Route::new(sub.clone()).unwrap();
    let instance = &instances()[0];
    // The first consumer commits the case and dies before acknowledging.
    let mut first = intake::open(&sub, instance).await.unwrap();
    let message = first.next().await.unwrap().unwrap();
    let id = message.id.clone().unwrap();
    assert!(matches!(
        process(&engine, &route, &message).await,
        Outcome::Committed(_)
    ));
    message.abandon();
    drop(first);
    // A new consumer gets the message again, with the same id: nothing is done twice.
    let mut second = intake::open(&sub, instance).await.unwrap();
    let again = tokio::time::timeout(Duration::from_secs(10), second.next())
        .await
        .expect("redelivered")
        .unwrap()
        .unwrap();
    assert_eq!(again.id.as_deref(), Some(id.as_str()));
    let outcome = process(&engine, &route, &again).await;
    assert_eq!(outcome, Outcome::Duplicate);
    settle(&route, again, &outcome).await;
    assert_eq!(case_count(&engine).await, 1);
    eventually("the redelivery is acknowledged", || {
        let second = &second;
        async move {
            let b = second.backlog().await.unwrap();
            b.pending == Some(0) && b.unacknowledged == Some(0)
        }
    })
    .await;
    delete_stream(&client, &stream).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn prefetch_bounds_the_messages_in_flight_and_the_backlog_says_what_waits() {
    let s = suffix();
    let (stream, subject, consumer) = (format!("KNHKP_{s}"), format!("knhk.jsp.{s}"), "bounded");
    let client = async_nats::connect(NATS).await.unwrap();
    // The intake creates the consumer with max_ack_pending = prefetch.
    let js = async_nats::jetstream::new(client.clone());
    js.create_stream(async_nats::jetstream::stream::Config {
        name: stream.clone(),
        subjects: vec![subject.clone()],
        ..Default::default()
    })
    .await
    .unwrap();
    for n in 0..5 {
        js_publish(&client, &subject, format!("{{\"n\": {n}}}").as_bytes()).await;
    }
    let sub = subscriptions(json!([{
        "connector": "bus", "stream": stream, "consumer": consumer, "start": "x",
        "prefetch": 2,
    }]))
    .remove(0);
    let mut source = intake::open(&sub, &instances()[0]).await.unwrap();
    let one = source.next().await.unwrap().unwrap();
    let two = source.next().await.unwrap().unwrap();
    // A third is not delivered while two are unacknowledged.
    assert!(
        tokio::time::timeout(Duration::from_millis(500), source.next())
            .await
            .is_err(),
        "a third message came while two were in flight"
    );
    let backlog = source.backlog().await.unwrap();
    assert_eq!(backlog.unacknowledged, Some(2));
    assert_eq!(backlog.pending, Some(3));
    one.ack().await.unwrap();
    let three = tokio::time::timeout(Duration::from_secs(10), source.next())
        .await
        .expect("a third once one is acknowledged")
        .unwrap()
        .unwrap();
    two.ack().await.unwrap();
    three.ack().await.unwrap();
    delete_stream(&client, &stream).await;
}

#[test]
fn an_expression_that_does_not_compile_is_refused_at_start_naming_its_key() {
    let subs = subscriptions(json!([
        {"connector": "bus", "subject": "a", "start": "W"},
        {"connector": "bus", "subject": "b", "deliver": "e", "correlation": "message.("},
    ]));
    let err = Route::new(subs[1].clone()).unwrap_err().to_string();
    assert!(err.starts_with("subscriptions[1].correlation: "), "{err}");
    let subs = subscriptions(json!([
        {"connector": "bus", "subject": "a", "start": "W", "mapping": "{'a': }"},
    ]));
    let err = Intake::new(memory_engine(), subs, instances())
        .unwrap_err()
        .to_string();
    assert!(err.starts_with("subscriptions[0].mapping: "), "{err}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_health_probe_answers_for_each_subscription_once_it_runs() {
    let engine = memory_engine();
    let subs = subscriptions(json!([
        {"connector": "bus", "subject": format!("knhk.test.health.{}", suffix()), "start": "W"},
    ]));
    let intake = Intake::new(engine.clone(), subs, instances()).unwrap();
    let health = intake.health();
    let before = health.probe(Duration::from_secs(2)).await;
    assert_eq!(before.len(), 1);
    assert_eq!(
        before[0].result,
        Err("the subscription is not running".to_owned())
    );
    let shutdown = CancellationToken::new();
    let task = tokio::spawn(intake.run(shutdown.clone()));
    eventually("the probe answers", || async {
        health.probe(Duration::from_secs(2)).await[0].result
            == Ok(knhk_connectors::intake::Backlog::default())
    })
    .await;
    shutdown.cancel();
    task.await.unwrap().unwrap();
}
