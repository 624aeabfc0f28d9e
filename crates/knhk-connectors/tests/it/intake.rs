//! The `[[subscriptions]]` of the config: each form parsed, and every refusal naming
//! `subscriptions[N].KEY`.

use knhk_connectors::InstanceConfig;
use knhk_connectors::intake::{
    Action, DEFAULT_PREFETCH, SourceSpec, StartFrom, Subscription, parse_subscriptions,
};
use serde_json::{Value, json};

fn instances() -> Vec<InstanceConfig> {
    [
        (
            "bus",
            json!({"kind": "nats", "url": "nats://127.0.0.1:4222"}),
        ),
        ("rabbit", json!({"kind": "amqp"})),
        ("mq", json!({"kind": "mqtt"})),
        ("web", json!({"kind": "http"})),
    ]
    .into_iter()
    .map(|(name, t)| InstanceConfig::parse(name, t.as_object().unwrap()).unwrap())
    .collect()
}

fn parse(value: Value) -> Result<Vec<Subscription>, String> {
    parse_subscriptions(&value, &instances()).map_err(|e| e.to_string())
}

#[test]
fn each_source_and_action_is_read_with_its_defaults() {
    let subs = parse(json!([
        {"connector": "bus", "subject": "orders.new", "queue_group": "knhk",
         "start": "Order", "mapping": "{'id': message.id}"},
        {"connector": "bus", "stream": "ORDERS", "consumer": "intake", "prefetch": 8,
         "deliver": "paid", "correlation": "message.case", "dead_letter": "orders.dead",
         "name": "payments"},
        {"connector": "rabbit", "queue": "q", "start": "Order"},
        {"connector": "mq", "topic": "t/1", "start": "Order"},
    ]))
    .unwrap();
    assert_eq!(
        subs[0].source,
        SourceSpec::NatsSubject {
            subject: "orders.new".into(),
            queue_group: Some("knhk".into())
        }
    );
    assert_eq!(subs[0].name, "bus/orders.new");
    assert_eq!(subs[0].prefetch, DEFAULT_PREFETCH);
    assert_eq!(subs[0].dead_letter, None);
    assert_eq!(
        subs[0].action,
        Action::Start {
            workflow: "Order".into(),
            mapping: Some("{'id': message.id}".into())
        }
    );
    assert_eq!(
        subs[1].source,
        SourceSpec::JetStream {
            stream: "ORDERS".into(),
            consumer: "intake".into()
        }
    );
    assert_eq!(subs[1].name, "payments");
    assert_eq!(subs[1].prefetch, 8);
    assert_eq!(subs[1].dead_letter.as_deref(), Some("orders.dead"));
    assert_eq!(
        subs[1].action,
        Action::Deliver {
            event: "paid".into(),
            correlation: "message.case".into()
        }
    );
    assert_eq!(subs[2].source, SourceSpec::AmqpQueue { queue: "q".into() });
    assert_eq!(
        subs[3].source,
        SourceSpec::Topic {
            topic: "t/1".into()
        }
    );
}

#[test]
fn a_refused_subscription_is_named_by_position_and_key() {
    let ok = json!({"connector": "bus", "subject": "a", "start": "W"});
    let cases = [
        (
            json!({"subject": "a", "start": "W"}),
            "subscriptions[1].connector: missing",
        ),
        (
            json!({"connector": "nope", "subject": "a", "start": "W"}),
            "subscriptions[1].connector: no connector instance named \"nope\"",
        ),
        (
            json!({"connector": "web", "subject": "a", "start": "W"}),
            "subscriptions[1].connector: instance \"web\" is of kind http",
        ),
        (
            json!({"connector": "bus", "start": "W"}),
            "subscriptions[1].subject: missing",
        ),
        (
            json!({"connector": "bus", "stream": "S", "start": "W"}),
            "subscriptions[1].consumer: missing",
        ),
        (
            json!({"connector": "bus", "subject": "a", "stream": "S", "consumer": "c", "start": "W"}),
            "subscriptions[1].subject: a subscription reads",
        ),
        (
            json!({"connector": "rabbit", "start": "W"}),
            "subscriptions[1].queue: missing",
        ),
        (
            json!({"connector": "bus", "subject": "a"}),
            "subscriptions[1].start: missing",
        ),
        (
            json!({"connector": "bus", "subject": "a", "start": "W", "deliver": "e", "correlation": "x"}),
            "subscriptions[1].deliver: a subscription has `start` or `deliver`",
        ),
        (
            json!({"connector": "bus", "subject": "a", "deliver": "e"}),
            "subscriptions[1].correlation: missing",
        ),
        (
            json!({"connector": "bus", "subject": "a", "start": "W", "prefetch": 0}),
            "subscriptions[1].prefetch: must be a whole number from 1 to",
        ),
        (
            json!({"connector": "bus", "subject": "a", "start": "W", "prefetch": 1_000_000}),
            "subscriptions[1].prefetch: must be a whole number from 1 to",
        ),
        (
            json!({"connector": "bus", "subject": "a", "start": "W", "colour": "red"}),
            "subscriptions[1].colour: unknown key",
        ),
        (
            json!({"connector": "bus", "subject": "a", "start": "W", "mapping": 3}),
            "subscriptions[1].mapping: must be a string",
        ),
        (
            ok.clone(),
            "subscriptions[1].name: another subscription is named \"bus/a\"",
        ),
    ];
    for (second, expected) in cases {
        let err = parse(json!([ok, second])).unwrap_err();
        assert!(err.starts_with(expected), "{err} (expected {expected})");
    }
    assert!(
        parse(json!({"connector": "bus"}))
            .unwrap_err()
            .contains("array of tables")
    );
}

#[test]
fn a_kafka_subscription_reads_a_topic_from_start_from() {
    let mut all = instances();
    all.push(
        InstanceConfig::parse(
            "log",
            json!({"kind": "kafka", "brokers": "127.0.0.1:9092"})
                .as_object()
                .unwrap(),
        )
        .unwrap(),
    );
    let parse = |value: Value| parse_subscriptions(&value, &all).map_err(|e| e.to_string());
    let subs = parse(json!([
        {"connector": "log", "topic": "orders", "start": "W"},
        {"connector": "log", "topic": "late", "start_from": "latest", "dead_letter": "late.dead",
         "start": "W"},
    ]))
    .unwrap();
    assert_eq!(
        subs[0].source,
        SourceSpec::KafkaTopic {
            topic: "orders".into(),
            start_from: StartFrom::Earliest
        }
    );
    assert_eq!(subs[0].name, "log/orders");
    assert_eq!(
        subs[1].source,
        SourceSpec::KafkaTopic {
            topic: "late".into(),
            start_from: StartFrom::Latest
        }
    );
    assert_eq!(subs[1].dead_letter.as_deref(), Some("late.dead"));
    let refused = [
        (
            json!({"connector": "log", "start": "W"}),
            "subscriptions[0].topic: missing",
        ),
        (
            json!({"connector": "log", "topic": "t", "start_from": "middle", "start": "W"}),
            "subscriptions[0].start_from: must be \"earliest\" or \"latest\", not \"middle\"",
        ),
        (
            json!({"connector": "mq", "topic": "t", "start_from": "latest", "start": "W"}),
            "subscriptions[0].start_from: is for kafka",
        ),
    ];
    for (entry, expected) in refused {
        let err = parse(json!([entry])).unwrap_err();
        assert!(err.starts_with(expected), "{err} (expected {expected})");
    }
}
