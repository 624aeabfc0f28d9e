//! The `mqtt` connector against the Mosquitto of this machine (127.0.0.1:1883): publishes at
//! QoS 0, 1 and 2 with the idempotency key as an MQTT 5 user property, and the registry's
//! behaviours.

use std::sync::Arc;
use std::time::Duration;

use knhk_connectors::{Connector, MqttConnector, kinds};
use rumqttc::v5::mqttbytes::QoS;
use rumqttc::v5::mqttbytes::v5::{Packet, Publish};
use rumqttc::v5::{AsyncClient, Event, MqttOptions};
use serde_json::{Value, json};
use tokio::sync::mpsc;

use crate::brokers::{self, build, closed_port, instance, policy, registry, settings, unique};

fn up(name: &str) -> Arc<dyn Connector> {
    build(name, json!({"kind": "mqtt", "host": "127.0.0.1"}))
}

/// A subscriber of `filter` whose messages arrive on the receiver; it has its SUBACK when this
/// returns.
async fn subscribe(filter: &str) -> (AsyncClient, mpsc::UnboundedReceiver<Publish>) {
    let mut options = MqttOptions::new(format!("knhk-test-{}", unique()), "127.0.0.1", 1883);
    options.set_max_packet_size(Some(1 << 20));
    let (client, mut events) = AsyncClient::new(options, 10);
    client.subscribe(filter, QoS::AtLeastOnce).await.unwrap();
    let (tx, rx) = mpsc::unbounded_channel();
    let (subscribed, ready) = tokio::sync::oneshot::channel();
    tokio::spawn(async move {
        let mut subscribed = Some(subscribed);
        loop {
            match events.poll().await {
                Ok(Event::Incoming(Packet::SubAck(_))) => {
                    if let Some(s) = subscribed.take() {
                        let _ = s.send(());
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
    tokio::time::timeout(Duration::from_secs(5), ready)
        .await
        .unwrap()
        .unwrap();
    (client, rx)
}

async fn next(rx: &mut mpsc::UnboundedReceiver<Publish>) -> Publish {
    tokio::time::timeout(Duration::from_secs(5), rx.recv())
        .await
        .unwrap()
        .unwrap()
}

#[tokio::test]
async fn a_publish_is_acknowledged_and_carries_the_key_as_a_user_property() {
    let sfx = unique();
    let (_sub, mut rx) = subscribe(&format!("knhk/t/{sfx}/#")).await;
    let c = up(&format!("mqtt-{sfx}"));
    let s = settings(&[("topic", &format!("knhk/t/{sfx}/orders/{{region}}"))]);
    // 200 kB: far past the client's 10 kB limit on what it receives.
    let input = json!({"region": "eu", "amount": 3, "blob": "x".repeat(200_000)});
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
    let topic = format!("knhk/t/{sfx}/orders/eu");
    assert_eq!(answer.output, json!({"topic": topic}));
    let got = next(&mut rx).await;
    assert_eq!(String::from_utf8_lossy(&got.topic), topic);
    assert_eq!(got.qos, QoS::AtLeastOnce);
    assert_eq!(
        serde_json::from_slice::<Value>(&got.payload).unwrap(),
        input
    );
    let props = got.properties.unwrap();
    assert_eq!(
        props.user_properties,
        vec![("Idempotency-Key".to_owned(), "case/t/1/1".to_owned())]
    );
    assert_eq!(props.content_type.as_deref(), Some("application/json"));
}

#[tokio::test]
async fn qos_0_and_2_and_retain_are_honoured() {
    let sfx = unique();
    let (_sub, mut rx) = subscribe(&format!("knhk/t/{sfx}/#")).await;
    let c = up(&format!("mqtt-{sfx}"));
    let r = registry([c.clone()]);
    let p = policy(1, Duration::from_secs(5));
    for qos in ["0", "2"] {
        let s = settings(&[("topic", &format!("knhk/t/{sfx}/q{qos}")), ("qos", qos)]);
        r.call(c.name(), &s, json!({"qos": qos}), "k", &p)
            .await
            .unwrap();
        let got = next(&mut rx).await;
        assert_eq!(
            String::from_utf8_lossy(&got.topic),
            format!("knhk/t/{sfx}/q{qos}")
        );
    }
    let retained = format!("knhk/t/{sfx}/retained");
    let s = settings(&[("topic", &retained), ("retain", "true")]);
    r.call(c.name(), &s, json!({"kept": true}), "k", &p)
        .await
        .unwrap();
    next(&mut rx).await;
    // A subscriber that comes later gets the retained message.
    let (_late, mut late) = subscribe(&retained).await;
    let got = next(&mut late).await;
    assert!(got.retain);
    assert_eq!(
        serde_json::from_slice::<Value>(&got.payload).unwrap(),
        json!({"kept": true})
    );
    // An empty retained message clears it, so the broker keeps nothing of this test.
    let (cleaner, mut events) = AsyncClient::new(
        MqttOptions::new(format!("knhk-clean-{sfx}"), "127.0.0.1", 1883),
        10,
    );
    cleaner
        .publish(retained.clone(), QoS::AtLeastOnce, true, Vec::new())
        .await
        .unwrap();
    tokio::time::timeout(Duration::from_secs(5), async {
        while !matches!(
            events.poll().await.unwrap(),
            Event::Incoming(Packet::PubAck(_))
        ) {}
    })
    .await
    .unwrap();
}

#[tokio::test]
async fn the_pool_reuses_a_connection_for_sequential_publishes_and_the_probe_connects() {
    let sfx = unique();
    let c = Arc::new(
        MqttConnector::from_config(&instance(
            &format!("mqtt-{sfx}"),
            json!({"kind": "mqtt", "host": "127.0.0.1", "port": 1883, "client_id_prefix": format!("knhk-t-{sfx}")}),
        ))
        .unwrap(),
    );
    let (_sub, mut rx) = subscribe(&format!("knhk/t/{sfx}/#")).await;
    let s = settings(&[("topic", &format!("knhk/t/{sfx}/seq"))]);
    let r = registry([c.clone()]);
    for n in 0..5 {
        r.call(
            c.name(),
            &s,
            json!({"n": n}),
            &format!("k{n}"),
            &policy(1, Duration::from_secs(5)),
        )
        .await
        .unwrap();
    }
    for n in 0..5 {
        let got = next(&mut rx).await;
        assert_eq!(
            serde_json::from_slice::<Value>(&got.payload).unwrap(),
            json!({"n": n})
        );
    }
    assert_eq!(c.pool_status().created, 1);
    c.probe().await.unwrap();
    c.close().await;
}

#[tokio::test]
async fn concurrent_publishes_each_await_their_own_acknowledgement() {
    let sfx = unique();
    let pooled = Arc::new(
        MqttConnector::from_config(&instance(
            &format!("mqtt-{sfx}"),
            json!({"kind": "mqtt", "host": "127.0.0.1", "pool": {"max_size": 4}}),
        ))
        .unwrap(),
    );
    let c: Arc<dyn Connector> = pooled.clone();
    let (_sub, mut rx) = subscribe(&format!("knhk/t/{sfx}/#")).await;
    let r = registry([c.clone()]);
    let s = settings(&[("topic", &format!("knhk/t/{sfx}/{{n}}"))]);
    let calls = (0..20).map(|n| {
        let r = r.clone();
        let s = s.clone();
        let name = c.name().to_owned();
        async move {
            r.call(
                &name,
                &s,
                json!({"n": n}),
                &format!("k{n}"),
                &policy(1, Duration::from_secs(5)),
            )
            .await
        }
    });
    for answer in futures_util::future::join_all(calls).await {
        answer.unwrap();
    }
    let mut seen = Vec::new();
    for _ in 0..20 {
        seen.push(
            next(&mut rx).await.properties.unwrap().user_properties[0]
                .1
                .clone(),
        );
    }
    // Twenty calls at once shared at most four connections, one publish in flight on each.
    let status = pooled.pool_status();
    assert!(status.created <= 4, "{status:?}");
    assert_eq!(status.active, 0, "{status:?}");
    seen.sort();
    let mut expected: Vec<String> = (0..20).map(|n| format!("k{n}")).collect();
    expected.sort();
    assert_eq!(seen, expected);
}

#[tokio::test]
async fn settings_and_keys_are_checked_once_with_the_culprit_named() {
    let c = up("mqtt-settings");
    let refused = |pairs: &[(&str, &str)]| {
        c.check_settings(&settings(pairs))
            .unwrap_err()
            .setting()
            .to_owned()
    };
    assert_eq!(refused(&[("qos", "1")]), "topic");
    assert_eq!(refused(&[("topic", "a/+")]), "topic");
    assert_eq!(refused(&[("topic", "a/#")]), "topic");
    assert_eq!(refused(&[("topic", "a"), ("qos", "3")]), "qos");
    assert_eq!(refused(&[("topic", "a"), ("retain", "yes")]), "retain");
    assert_eq!(refused(&[("topic", "a"), ("subject", "b")]), "subject");

    let key_of = |table: Value| {
        let Err(e) = kinds::build(&instance("m", table)) else {
            panic!("accepted")
        };
        e.key
    };
    assert_eq!(key_of(json!({"kind": "mqtt"})), "host");
    assert_eq!(
        key_of(json!({"kind": "mqtt", "host": "h", "port": 70000})),
        "port"
    );
    assert_eq!(
        key_of(json!({"kind": "mqtt", "host": "h", "password": "p"})),
        "user"
    );
    assert_eq!(
        key_of(json!({"kind": "mqtt", "host": "h", "url": "mqtt://h"})),
        "url"
    );
}

#[tokio::test]
async fn a_placeholder_value_cannot_reach_another_topic() {
    let sfx = unique();
    let c = up(&format!("mqtt-{sfx}"));
    let s = settings(&[("topic", &format!("knhk/t/{sfx}/{{id}}"))]);
    brokers::stops_at_permanent(c, &s, json!({"id": "x/../#"}), "placeholder {id}").await;
}

#[tokio::test]
async fn a_broker_that_never_answers_is_bounded_by_the_call_timeout() {
    let stuck = brokers::silent().await;
    let c = build(
        &format!("mqtt-{}", unique()),
        json!({"kind": "mqtt", "host": "127.0.0.1", "port": stuck.port, "pool": {"acquire_timeout_ms": 10000}}),
    );
    brokers::times_out(c, &settings(&[("topic", "knhk/t/stuck")])).await;
}

#[tokio::test]
async fn a_broker_that_is_down_is_retried_with_backoff() {
    let down = build(
        &format!("mqtt-{}", unique()),
        json!({"kind": "mqtt", "host": "127.0.0.1", "port": closed_port()}),
    );
    brokers::retries_retryable(down, &settings(&[("topic", "knhk/t/down")])).await;
}

#[tokio::test]
async fn the_breaker_opens_for_the_instance_that_is_down_only() {
    let sfx = unique();
    let down = build(
        &format!("mqtt-down-{sfx}"),
        json!({"kind": "mqtt", "host": "127.0.0.1", "port": closed_port()}),
    );
    brokers::breaker_per_instance(
        down,
        up(&format!("mqtt-up-{sfx}")),
        &settings(&[("topic", &format!("knhk/t/{sfx}/b"))]),
    )
    .await;
}

#[tokio::test]
async fn a_connection_cut_under_the_pool_is_replaced_without_failing_the_task() {
    let sfx = unique();
    let relay = brokers::relay(1883).await;
    let c = Arc::new(
        MqttConnector::from_config(&instance(
            &format!("mqtt-{sfx}"),
            json!({"kind": "mqtt", "host": "127.0.0.1", "port": relay.port, "pool": {"max_size": 1}}),
        ))
        .unwrap(),
    );
    let (_sub, mut rx) = subscribe(&format!("knhk/t/{sfx}/#")).await;
    let s = settings(&[("topic", &format!("knhk/t/{sfx}/cut"))]);
    let r = registry([c.clone()]);
    let p = policy(3, Duration::from_secs(5));
    r.call(c.name(), &s, json!({"n": 1}), "k1", &p)
        .await
        .unwrap();
    relay.cut();
    let answer = r
        .call(c.name(), &s, json!({"n": 2}), "k2", &p)
        .await
        .unwrap();
    // The checkout saw the connection lost, or the publish on it failed and was retried.
    assert!(
        answer.failed_attempts.len() <= 1,
        "{:?}",
        answer.failed_attempts
    );
    assert_eq!(c.pool_status().created, 2);
    for n in 1..=2 {
        let got = next(&mut rx).await;
        assert_eq!(
            serde_json::from_slice::<Value>(&got.payload).unwrap(),
            json!({"n": n})
        );
    }
}

/// A Mosquitto of the test's own on a free port, asking for a password and letting user `knhk`
/// publish under `knhk/allowed/` only; it is killed when dropped.
struct OwnBroker {
    port: u16,
    _dir: tempfile::TempDir,
    _child: tokio::process::Child,
}

async fn own_broker() -> OwnBroker {
    let dir = tempfile::tempdir().unwrap();
    let passwords = dir.path().join("passwords");
    let status = tokio::process::Command::new("mosquitto_passwd")
        .args(["-b", "-c"])
        .arg(&passwords)
        .args(["knhk", "s3cret-pass"])
        .status()
        .await
        .unwrap();
    assert!(status.success());
    let acl = dir.path().join("acl");
    std::fs::write(&acl, "user knhk\ntopic write knhk/allowed/#\n").unwrap();
    let port = closed_port();
    let conf = dir.path().join("mosquitto.conf");
    std::fs::write(
        &conf,
        format!(
            "listener {port} 127.0.0.1\nallow_anonymous false\npassword_file {}\nacl_file {}\n",
            passwords.display(),
            acl.display()
        ),
    )
    .unwrap();
    let child = tokio::process::Command::new("mosquitto")
        .arg("-c")
        .arg(&conf)
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::null())
        .kill_on_drop(true)
        .spawn()
        .unwrap();
    // Polled every 10 ms, at most 10 s.
    let mut tick = tokio::time::interval(Duration::from_millis(10));
    let mut tries = 0;
    while tokio::net::TcpStream::connect(("127.0.0.1", port))
        .await
        .is_err()
    {
        tries += 1;
        assert!(tries < 1000, "mosquitto did not listen on {port}");
        tick.tick().await;
    }
    OwnBroker {
        port,
        _dir: dir,
        _child: child,
    }
}

#[tokio::test]
async fn credentials_authenticate_and_a_refused_publish_fails_permanently() {
    let sfx = unique();
    let broker = own_broker().await;
    let p = policy(3, Duration::from_secs(5));
    let good = build(
        &format!("mqtt-u-{sfx}"),
        json!({"kind": "mqtt", "host": "127.0.0.1", "port": broker.port, "user": "knhk", "password": "s3cret-pass"}),
    );
    let allowed = settings(&[("topic", "knhk/allowed/x")]);
    registry([good.clone()])
        .call(good.name(), &allowed, json!({}), "k", &p)
        .await
        .unwrap();
    // The broker refuses a topic the ACL does not grant with PUBACK reason "not authorized".
    let denied = settings(&[("topic", "knhk/denied/x")]);
    brokers::stops_at_permanent(good, &denied, json!({}), "NotAuthorized").await;

    let bad = build(
        &format!("mqtt-ub-{sfx}"),
        json!({"kind": "mqtt", "host": "127.0.0.1", "port": broker.port, "user": "knhk", "password": "hunter2"}),
    );
    let failure = registry([bad.clone()])
        .call(
            bad.name(),
            &allowed,
            json!({}),
            "k",
            &policy(1, Duration::from_secs(5)),
        )
        .await
        .unwrap_err();
    assert!(failure.error.is_retryable(), "{failure}");
    assert!(failure.error.message().contains("refused"), "{failure}");
    assert!(!failure.to_string().contains("hunter2"), "{failure}");
    assert!(!format!("{bad:?}").contains("hunter2"));
}
