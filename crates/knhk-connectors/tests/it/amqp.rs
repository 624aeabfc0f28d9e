//! The `amqp` connector against the RabbitMQ of this machine (127.0.0.1:5672, guest/guest):
//! confirmed publishes with the message id, refusals, a connection closed by the server, and the
//! registry's behaviours.

use std::sync::Arc;
use std::time::Duration;

use knhk_connectors::{AmqpConnector, Connector, kinds};
use lapin::options::{BasicGetOptions, QueueDeclareOptions, QueueDeleteOptions};
use lapin::types::FieldTable;
use serde_json::{Value, json};

use crate::brokers::{self, build, closed_port, instance, policy, registry, settings, unique};

const URL: &str = "amqp://guest:guest@127.0.0.1:5672/%2f";

fn up(name: &str) -> Arc<dyn Connector> {
    build(name, json!({"kind": "amqp", "url": URL}))
}

/// A queue of its own on a connection of the test's, deleted on drop... by hand: `delete`.
struct TestQueue {
    name: String,
    channel: lapin::Channel,
    _connection: lapin::Connection,
}

impl TestQueue {
    async fn new() -> TestQueue {
        let connection = lapin::Connection::connect(URL, lapin::ConnectionProperties::default())
            .await
            .unwrap();
        let channel = connection.create_channel().await.unwrap();
        let name = format!("knhk-t-{}", unique());
        channel
            .queue_declare(
                name.as_str().into(),
                QueueDeclareOptions::default(),
                FieldTable::default(),
            )
            .await
            .unwrap();
        TestQueue {
            name,
            channel,
            _connection: connection,
        }
    }

    /// Takes the next message, if any.
    async fn get(&self) -> Option<lapin::message::BasicGetMessage> {
        self.channel
            .basic_get(self.name.as_str().into(), BasicGetOptions { no_ack: true })
            .await
            .unwrap()
    }

    async fn delete(self) {
        self.channel
            .queue_delete(self.name.as_str().into(), QueueDeleteOptions::default())
            .await
            .unwrap();
    }
}

#[tokio::test]
async fn a_confirmed_publish_carries_the_json_input_and_the_message_id() {
    let q = TestQueue::new().await;
    let c = up(&format!("amqp-{}", unique()));
    let s = settings(&[("exchange", ""), ("routing_key", &q.name)]);
    let input = json!({"order": 7, "lines": ["a", "b"]});
    let answer = registry([c.clone()])
        .call(
            c.name(),
            &s,
            input.clone(),
            "case/t/1/1",
            &policy(1, Duration::from_secs(5)),
        )
        .await
        .unwrap();
    assert_eq!(
        answer.output,
        json!({"exchange": "", "routing_key": q.name})
    );
    // The confirm came after the broker queued the message: it is there now.
    let got = q.get().await.expect("the message is in the queue");
    assert_eq!(
        serde_json::from_slice::<Value>(&got.delivery.data).unwrap(),
        input
    );
    let props = &got.delivery.properties;
    assert_eq!(props.message_id().as_ref().unwrap().as_str(), "case/t/1/1");
    assert_eq!(
        props.content_type().as_ref().unwrap().as_str(),
        "application/json"
    );
    assert_eq!(*props.delivery_mode(), Some(2));
    q.delete().await;
}

#[tokio::test]
async fn persistent_false_sends_transient_messages() {
    let q = TestQueue::new().await;
    let c = up(&format!("amqp-{}", unique()));
    let s = settings(&[("routing_key", &q.name), ("persistent", "false")]);
    registry([c.clone()])
        .call(
            c.name(),
            &s,
            json!({}),
            "k",
            &policy(1, Duration::from_secs(5)),
        )
        .await
        .unwrap();
    let got = q.get().await.unwrap();
    assert_eq!(*got.delivery.properties.delivery_mode(), Some(1));
    q.delete().await;
}

#[tokio::test]
async fn an_exchange_that_does_not_exist_fails_permanently_and_the_next_call_works() {
    let sfx = unique();
    let c = up(&format!("amqp-{sfx}"));
    let missing = settings(&[
        ("exchange", &format!("knhk-none-{sfx}")),
        ("routing_key", "x"),
    ]);
    brokers::stops_at_permanent(c.clone(), &missing, json!({}), "NOT_FOUND").await;
    // The broker closed that channel; the pool replaces its connection at the next checkout.
    let q = TestQueue::new().await;
    let s = settings(&[("routing_key", &q.name)]);
    registry([c.clone()])
        .call(
            c.name(),
            &s,
            json!({}),
            "k",
            &policy(1, Duration::from_secs(5)),
        )
        .await
        .unwrap();
    assert!(q.get().await.is_some());
    q.delete().await;
}

#[tokio::test]
async fn a_mandatory_message_that_no_queue_takes_fails_permanently() {
    let sfx = unique();
    let c = up(&format!("amqp-{sfx}"));
    let unbound = format!("knhk-unbound-{sfx}");
    let mandatory = settings(&[
        ("exchange", "amq.direct"),
        ("routing_key", &unbound),
        ("mandatory", "true"),
    ]);
    brokers::stops_at_permanent(c.clone(), &mandatory, json!({}), "returned the message").await;
    // Without `mandatory`, the broker drops it and confirms.
    let dropped = settings(&[("exchange", "amq.direct"), ("routing_key", &unbound)]);
    registry([c.clone()])
        .call(
            c.name(),
            &dropped,
            json!({}),
            "k",
            &policy(1, Duration::from_secs(5)),
        )
        .await
        .unwrap();
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
        let line = text.lines().find(|l| l.contains(connection_name));
        if let Some(line) = line {
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

#[tokio::test]
async fn a_connection_closed_by_the_server_is_replaced_without_failing_the_task() {
    let sfx = unique();
    let name = format!("amqp-{sfx}");
    let c = Arc::new(
        AmqpConnector::from_config(&instance(
            &name,
            json!({"kind": "amqp", "url": URL, "pool": {"max_size": 1}}),
        ))
        .unwrap(),
    );
    let q = TestQueue::new().await;
    let s = settings(&[("routing_key", &q.name)]);
    let r = registry([c.clone()]);
    let p = policy(3, Duration::from_secs(5));
    r.call(&name, &s, json!({"n": 1}), "k1", &p).await.unwrap();
    assert_eq!(c.pool_status().created, 1);

    close_from_server(&format!("knhk {name} #1")).await;

    let answer = r.call(&name, &s, json!({"n": 2}), "k2", &p).await.unwrap();
    // Either the checkout saw the connection closed, or the publish on it failed and was
    // retried: the task did not fail, and a second connection carried the message.
    assert!(
        answer.failed_attempts.len() <= 1,
        "{:?}",
        answer.failed_attempts
    );
    assert_eq!(c.pool_status().created, 2);
    let first = q.get().await.unwrap();
    let second = q.get().await.unwrap();
    assert_eq!(
        serde_json::from_slice::<Value>(&first.delivery.data).unwrap(),
        json!({"n": 1})
    );
    assert_eq!(
        serde_json::from_slice::<Value>(&second.delivery.data).unwrap(),
        json!({"n": 2})
    );
    q.delete().await;
}

#[tokio::test]
async fn the_pool_reuses_its_connection_and_the_probe_opens_a_channel() {
    let sfx = unique();
    let c = Arc::new(
        AmqpConnector::from_config(&instance(
            &format!("amqp-{sfx}"),
            json!({"kind": "amqp", "url": URL}),
        ))
        .unwrap(),
    );
    let q = TestQueue::new().await;
    let s = settings(&[("routing_key", &q.name)]);
    let r = registry([c.clone()]);
    for n in 0..3 {
        r.call(
            c.name(),
            &s,
            json!({"n": n}),
            "k",
            &policy(1, Duration::from_secs(5)),
        )
        .await
        .unwrap();
    }
    assert_eq!(c.pool_status().created, 1);
    c.probe().await.unwrap();
    c.close().await;
    q.delete().await;
}

#[tokio::test]
async fn settings_and_keys_are_checked_once_with_the_culprit_named() {
    let c = up("amqp-settings");
    let refused = |pairs: &[(&str, &str)]| {
        c.check_settings(&settings(pairs))
            .unwrap_err()
            .setting()
            .to_owned()
    };
    assert_eq!(refused(&[("exchange", "x")]), "routing_key");
    assert_eq!(
        refused(&[("routing_key", "a"), ("persistent", "yes")]),
        "persistent"
    );
    assert_eq!(
        refused(&[("routing_key", "a"), ("mandatory", "1")]),
        "mandatory"
    );
    assert_eq!(refused(&[("routing_key", "a.{b")]), "routing_key");
    assert_eq!(refused(&[("routing_key", "a"), ("queue", "q")]), "queue");

    let key_of = |table: Value| {
        let Err(e) = kinds::build(&instance("a", table)) else {
            panic!("accepted")
        };
        assert!(!e.to_string().contains("hunter2"), "{e}");
        e.key
    };
    assert_eq!(key_of(json!({"kind": "amqp"})), "url");
    assert_eq!(
        key_of(json!({"kind": "amqp", "url": "http://u:hunter2@h x"})),
        "url"
    );
    assert_eq!(
        key_of(json!({"kind": "amqp", "url": URL, "password": "a", "password_env": "B"})),
        "password"
    );
    assert_eq!(
        key_of(json!({"kind": "amqp", "url": URL, "exchange": "x"})),
        "exchange"
    );
}

#[tokio::test]
async fn the_password_may_come_from_the_environment_and_never_shows() {
    let sfx = unique();
    let var = format!("KNHK_TEST_AMQP_PASSWORD_{sfx}");
    let table =
        json!({"kind": "amqp", "url": "amqp://guest@127.0.0.1:5672/%2f", "password_env": var});
    let config = instance(&format!("amqp-{sfx}"), table);
    let env = |name: &str| (name == var).then(|| "not-the-password".to_owned());
    assert!(
        config
            .keys_with_env(&env)
            .secret("password")
            .unwrap()
            .is_some()
    );
    // The real process environment has no such variable: the instance is refused, naming it.
    let Err(e) = kinds::build(&config) else {
        panic!("accepted")
    };
    assert_eq!(e.key, "password_env");
    assert!(e.problem.contains(&var), "{e}");
    // A wrong password: the call fails retryably, and the error does not carry the password.
    let wrong = build(
        &format!("amqp-wrong-{sfx}"),
        json!({"kind": "amqp", "url": "amqp://guest:hunter2@127.0.0.1:5672/%2f"}),
    );
    let failure = registry([wrong.clone()])
        .call(
            wrong.name(),
            &settings(&[("routing_key", "x")]),
            json!({}),
            "k",
            &policy(1, Duration::from_secs(5)),
        )
        .await
        .unwrap_err();
    assert!(!failure.to_string().contains("hunter2"), "{failure}");
    assert!(!format!("{wrong:?}").contains("hunter2"));
}

#[tokio::test]
async fn a_broker_that_never_answers_is_bounded_by_the_call_timeout() {
    let stuck = brokers::silent().await;
    let c = build(
        &format!("amqp-{}", unique()),
        json!({"kind": "amqp", "url": format!("amqp://guest:guest@127.0.0.1:{}/%2f", stuck.port), "pool": {"acquire_timeout_ms": 10000}}),
    );
    brokers::times_out(c, &settings(&[("routing_key", "x")])).await;
}

#[tokio::test]
async fn a_broker_that_is_down_is_retried_with_backoff() {
    let down = build(
        &format!("amqp-{}", unique()),
        json!({"kind": "amqp", "url": format!("amqp://guest:guest@127.0.0.1:{}/%2f", closed_port())}),
    );
    brokers::retries_retryable(down, &settings(&[("routing_key", "x")])).await;
}

#[tokio::test]
async fn the_breaker_opens_for_the_instance_that_is_down_only() {
    let sfx = unique();
    let down = build(
        &format!("amqp-down-{sfx}"),
        json!({"kind": "amqp", "url": format!("amqp://guest:guest@127.0.0.1:{}/%2f", closed_port())}),
    );
    // The up instance publishes to the default exchange with a routing key no queue has: the
    // broker drops the message and confirms it.
    brokers::breaker_per_instance(
        down,
        up(&format!("amqp-up-{sfx}")),
        &settings(&[("routing_key", &format!("knhk-none-{sfx}"))]),
    )
    .await;
}
