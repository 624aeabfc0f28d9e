//! The `nats` connector against the NATS server of this machine (127.0.0.1:4222, JetStream on):
//! publish, request-reply, JetStream with deduplication, and the registry's behaviours.

use std::sync::Arc;
use std::time::Duration;

use futures_util::StreamExt;
use knhk_connectors::{Connector, NatsConnector, kinds};
use serde_json::{Value, json};

use crate::brokers::{self, build, closed_port, instance, policy, registry, settings, unique};

const URL: &str = "nats://127.0.0.1:4222";

fn up(name: &str) -> Arc<dyn Connector> {
    build(name, json!({"kind": "nats", "url": URL}))
}

async fn client() -> async_nats::Client {
    async_nats::connect(URL).await.unwrap()
}

#[tokio::test]
async fn publish_sends_the_input_as_json_with_the_idempotency_key() {
    let sfx = unique();
    let nc = client().await;
    let mut sub = nc.subscribe(format!("knhk.t.{sfx}.>")).await.unwrap();
    nc.flush().await.unwrap();
    let c = up(&format!("nats-{sfx}"));
    let s = settings(&[("subject", &format!("knhk.t.{sfx}.orders.{{region}}"))]);
    let input = json!({"region": "eu", "amount": 12});
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
        json!({"subject": format!("knhk.t.{sfx}.orders.eu")})
    );
    let msg = tokio::time::timeout(Duration::from_secs(5), sub.next())
        .await
        .unwrap()
        .unwrap();
    assert_eq!(msg.subject.as_str(), format!("knhk.t.{sfx}.orders.eu"));
    assert_eq!(
        serde_json::from_slice::<Value>(&msg.payload).unwrap(),
        input
    );
    let headers = msg.headers.unwrap();
    assert_eq!(
        headers.get("Idempotency-Key").unwrap().as_str(),
        "case/t/1/1"
    );
}

#[tokio::test]
async fn a_placeholder_value_cannot_widen_the_subject() {
    let sfx = unique();
    let c = up(&format!("nats-{sfx}"));
    let s = settings(&[("subject", &format!("knhk.t.{sfx}.{{id}}"))]);
    brokers::stops_at_permanent(c, &s, json!({"id": "a.>"}), "placeholder {id}").await;
}

#[tokio::test]
async fn an_idempotency_key_with_a_line_break_fails_permanently() {
    let sfx = unique();
    let c = up(&format!("nats-{sfx}"));
    let failure = registry([c.clone()])
        .call(
            c.name(),
            &settings(&[("subject", &format!("knhk.t.{sfx}.k"))]),
            json!({}),
            "a\r\nNats-Msg-Id: b",
            &policy(3, Duration::from_secs(5)),
        )
        .await
        .unwrap_err();
    assert_eq!(failure.attempts, 1, "{failure}");
    assert!(failure.error.message().contains("line break"), "{failure}");
}

#[tokio::test]
async fn request_returns_the_reply_as_json_or_as_text() {
    let sfx = unique();
    let nc = client().await;
    let subject = format!("knhk.t.{sfx}.svc");
    let mut sub = nc.subscribe(subject.clone()).await.unwrap();
    nc.flush().await.unwrap();
    let responder = nc.clone();
    tokio::spawn(async move {
        let mut n = 0;
        while let Some(msg) = sub.next().await {
            n += 1;
            let echoed: Value = serde_json::from_slice(&msg.payload).unwrap();
            let key = msg
                .headers
                .as_ref()
                .unwrap()
                .get("Idempotency-Key")
                .unwrap()
                .to_string();
            let reply = match n {
                1 => json!({"echo": echoed, "key": key}).to_string(),
                2 => "plain text".to_owned(),
                _ => "[1,2]".to_owned(),
            };
            responder
                .publish(msg.reply.unwrap(), reply.into())
                .await
                .unwrap();
        }
    });
    let c = up(&format!("nats-{sfx}"));
    let s = settings(&[("subject", &subject), ("mode", "request")]);
    let r = registry([c.clone()]);
    let p = policy(1, Duration::from_secs(5));
    let first = r
        .call(c.name(), &s, json!({"q": 1}), "k1", &p)
        .await
        .unwrap();
    assert_eq!(first.output, json!({"echo": {"q": 1}, "key": "k1"}));
    let second = r
        .call(c.name(), &s, json!({"q": 2}), "k2", &p)
        .await
        .unwrap();
    assert_eq!(second.output, json!({"body": "plain text"}));
    let third = r
        .call(c.name(), &s, json!({"q": 3}), "k3", &p)
        .await
        .unwrap();
    assert_eq!(third.output, json!({"reply": [1, 2]}));
}

#[tokio::test]
async fn a_request_nobody_answers_in_time_is_retried_and_then_answered() {
    let sfx = unique();
    let nc = client().await;
    let subject = format!("knhk.t.{sfx}.slow");
    let mut sub = nc.subscribe(subject.clone()).await.unwrap();
    nc.flush().await.unwrap();
    let responder = nc.clone();
    // The first request is left unanswered (the attempt times out); the second is answered.
    tokio::spawn(async move {
        let mut n = 0;
        while let Some(msg) = sub.next().await {
            n += 1;
            if n >= 2 {
                let body = json!({"answered": n}).to_string();
                responder
                    .publish(msg.reply.unwrap(), body.into())
                    .await
                    .unwrap();
            }
        }
    });
    let c = up(&format!("nats-{sfx}"));
    let s = settings(&[("subject", &subject), ("mode", "request")]);
    let answer = registry([c.clone()])
        .call(
            c.name(),
            &s,
            json!({}),
            "k",
            &policy(3, Duration::from_secs(1)),
        )
        .await
        .unwrap();
    assert_eq!(answer.output, json!({"answered": 2}));
    assert_eq!(answer.failed_attempts.len(), 1);
    assert!(
        answer.failed_attempts[0].error.contains("timed out"),
        "{:?}",
        answer.failed_attempts
    );
}

#[tokio::test]
async fn a_request_with_no_responders_is_retryable() {
    let sfx = unique();
    let c = up(&format!("nats-{sfx}"));
    let s = settings(&[
        ("subject", &format!("knhk.t.{sfx}.nobody")),
        ("mode", "request"),
    ]);
    let failure = registry([c.clone()])
        .call(
            c.name(),
            &s,
            json!({}),
            "k",
            &policy(2, Duration::from_secs(5)),
        )
        .await
        .unwrap_err();
    assert_eq!(failure.attempts, 2, "{failure}");
    assert!(
        failure.error.message().contains("no responders"),
        "{failure}"
    );
}

#[tokio::test]
async fn jetstream_publish_is_acknowledged_and_deduplicated_by_the_idempotency_key() {
    let sfx = unique();
    let js = async_nats::jetstream::new(client().await);
    let stream_name = format!("KNHK_T_{sfx}");
    let mut stream = js
        .create_stream(async_nats::jetstream::stream::Config {
            name: stream_name.clone(),
            subjects: vec![format!("knhk.js.{sfx}.>")],
            duplicate_window: Duration::from_secs(120),
            ..Default::default()
        })
        .await
        .unwrap();
    let c = up(&format!("nats-{sfx}"));
    let s = settings(&[
        ("subject", &format!("knhk.js.{sfx}.orders")),
        ("mode", "jetstream"),
    ]);
    let r = registry([c.clone()]);
    let p = policy(1, Duration::from_secs(5));
    let first = r
        .call(c.name(), &s, json!({"n": 1}), "case/a/1", &p)
        .await
        .unwrap();
    let again = r
        .call(c.name(), &s, json!({"n": 1}), "case/a/1", &p)
        .await
        .unwrap();
    let other = r
        .call(c.name(), &s, json!({"n": 2}), "case/b/1", &p)
        .await
        .unwrap();
    assert_eq!(first.output["stream"], json!(stream_name));
    assert_eq!(first.output["duplicate"], json!(false));
    assert_eq!(again.output["duplicate"], json!(true));
    assert_eq!(again.output["seq"], first.output["seq"]);
    assert_eq!(other.output["duplicate"], json!(false));
    assert_ne!(other.output["seq"], first.output["seq"]);
    assert_eq!(stream.info().await.unwrap().state.messages, 2);
    let stored = stream
        .get_raw_message(first.output["seq"].as_u64().unwrap())
        .await
        .unwrap();
    assert_eq!(
        serde_json::from_slice::<Value>(&stored.payload).unwrap(),
        json!({"n": 1})
    );
    js.delete_stream(&stream_name).await.unwrap();
}

#[tokio::test]
async fn jetstream_publish_to_a_subject_no_stream_captures_fails_permanently() {
    let sfx = unique();
    let c = up(&format!("nats-{sfx}"));
    let s = settings(&[
        ("subject", &format!("knhk.nostream.{sfx}")),
        ("mode", "jetstream"),
    ]);
    brokers::stops_at_permanent(c, &s, json!({}), "no stream").await;
}

#[tokio::test]
async fn the_pool_reuses_its_client_and_the_probe_asks_the_server() {
    let sfx = unique();
    let c = Arc::new(
        NatsConnector::from_config(&instance(
            &format!("nats-{sfx}"),
            json!({"kind": "nats", "url": format!("{URL}, nats://localhost:4222")}),
        ))
        .unwrap(),
    );
    let s = settings(&[("subject", &format!("knhk.t.{sfx}.x"))]);
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
    let probe = c.probe().await.unwrap();
    assert!(probe.detail.unwrap().starts_with("nats-server "));
    let health = r.health(Duration::from_secs(5)).await;
    assert!(health[0].result.is_ok(), "{health:?}");
    c.close().await;
    let closed = r
        .call(
            c.name(),
            &s,
            json!({}),
            "k",
            &policy(1, Duration::from_secs(5)),
        )
        .await
        .unwrap_err();
    assert!(!closed.error.is_retryable(), "{closed}");
}

#[tokio::test]
async fn settings_and_keys_are_checked_once_with_the_culprit_named() {
    let c = up("nats-settings");
    let refused = |pairs: &[(&str, &str)]| {
        c.check_settings(&settings(pairs))
            .unwrap_err()
            .setting()
            .to_owned()
    };
    assert_eq!(refused(&[("mode", "publish")]), "subject");
    assert_eq!(refused(&[("subject", "a.b"), ("mode", "fire")]), "mode");
    assert_eq!(refused(&[("subject", "a.*")]), "subject");
    assert_eq!(refused(&[("subject", "a..b")]), "subject");
    assert_eq!(refused(&[("subject", "a.{b")]), "subject");
    assert_eq!(refused(&[("subject", "a"), ("queue", "q")]), "queue");

    let key_of = |table: Value| {
        let Err(e) = kinds::build(&instance("n", table)) else {
            panic!("accepted")
        };
        assert!(!e.to_string().contains("hunter2"), "{e}");
        e.key
    };
    assert_eq!(key_of(json!({"kind": "nats"})), "url");
    assert_eq!(
        key_of(json!({"kind": "nats", "url": "nats://u:hunter2@h:4222"})),
        "url"
    );
    assert_eq!(
        key_of(
            json!({"kind": "nats", "url": URL, "token": "t", "user": "u", "password": "hunter2"})
        ),
        "token"
    );
    assert_eq!(
        key_of(json!({"kind": "nats", "url": URL, "user": "u"})),
        "password"
    );
    assert_eq!(
        key_of(json!({"kind": "nats", "url": URL, "subject": "x"})),
        "subject"
    );
}

#[tokio::test]
async fn a_server_that_never_answers_is_bounded_by_the_call_timeout() {
    let stuck = brokers::silent().await;
    let c = build(
        &format!("nats-{}", unique()),
        json!({"kind": "nats", "url": format!("nats://127.0.0.1:{}", stuck.port), "pool": {"acquire_timeout_ms": 10000}}),
    );
    brokers::times_out(c, &settings(&[("subject", "knhk.t.stuck")])).await;
}

#[tokio::test]
async fn a_server_that_is_down_is_retried_with_backoff() {
    let down = build(
        &format!("nats-{}", unique()),
        json!({"kind": "nats", "url": format!("nats://127.0.0.1:{}", closed_port())}),
    );
    brokers::retries_retryable(down, &settings(&[("subject", "knhk.t.down")])).await;
}

#[tokio::test]
async fn the_breaker_opens_for_the_instance_that_is_down_only() {
    let sfx = unique();
    let down = build(
        &format!("nats-down-{sfx}"),
        json!({"kind": "nats", "url": format!("nats://127.0.0.1:{}", closed_port())}),
    );
    brokers::breaker_per_instance(
        down,
        up(&format!("nats-up-{sfx}")),
        &settings(&[("subject", &format!("knhk.t.{sfx}.b"))]),
    )
    .await;
}

#[tokio::test]
async fn a_connection_cut_under_the_pool_does_not_fail_the_task() {
    let sfx = unique();
    let relay = brokers::relay(4222).await;
    let c = Arc::new(
        NatsConnector::from_config(&instance(
            &format!("nats-{sfx}"),
            json!({"kind": "nats", "url": format!("nats://127.0.0.1:{}", relay.port), "pool": {"max_size": 1}}),
        ))
        .unwrap(),
    );
    let nc = client().await;
    let mut sub = nc.subscribe(format!("knhk.t.{sfx}.>")).await.unwrap();
    nc.flush().await.unwrap();
    let s = settings(&[("subject", &format!("knhk.t.{sfx}.cut"))]);
    let r = registry([c.clone()]);
    // An attempt whose message went out on the connection that broke waits for its
    // confirmation until its timeout.
    let p = policy(3, Duration::from_secs(1));
    r.call(c.name(), &s, json!({"n": 1}), "k1", &p)
        .await
        .unwrap();
    relay.cut();
    // The client reconnects on its own, or the checkout drops it and opens another; either
    // way the call goes through.
    r.call(c.name(), &s, json!({"n": 2}), "k2", &p)
        .await
        .unwrap();
    for n in 1..=2 {
        let msg = tokio::time::timeout(Duration::from_secs(5), sub.next())
            .await
            .unwrap()
            .unwrap();
        assert_eq!(
            serde_json::from_slice::<Value>(&msg.payload).unwrap(),
            json!({"n": n})
        );
    }
}

/// A nats-server of the test's own on a free port, with the given authorization options; it is
/// killed when dropped.
async fn own_server(auth: &[&str]) -> (tokio::process::Child, u16) {
    use tokio::io::AsyncBufReadExt;
    let mut child = tokio::process::Command::new("nats-server")
        .args(["-a", "127.0.0.1", "-p", "-1"])
        .args(auth)
        .stderr(std::process::Stdio::piped())
        .kill_on_drop(true)
        .spawn()
        .unwrap();
    let mut lines = tokio::io::BufReader::new(child.stderr.take().unwrap()).lines();
    let port = tokio::time::timeout(Duration::from_secs(10), async {
        while let Some(line) = lines.next_line().await.unwrap() {
            if let Some(at) = line
                .split("Listening for client connections on 127.0.0.1:")
                .nth(1)
            {
                return at.trim().parse::<u16>().unwrap();
            }
        }
        panic!("nats-server ended before listening")
    })
    .await
    .unwrap();
    // Keep reading its log, so that the server never blocks on a full pipe.
    tokio::spawn(async move { while let Ok(Some(_)) = lines.next_line().await {} });
    (child, port)
}

#[tokio::test]
async fn a_token_or_a_user_and_password_authenticate_and_never_show_in_errors() {
    let sfx = unique();
    let s = settings(&[("subject", &format!("knhk.t.{sfx}.auth"))]);
    let p = policy(1, Duration::from_secs(5));

    let (_token_server, port) = own_server(&["--auth", "s3cret-token"]).await;
    let url = format!("nats://127.0.0.1:{port}");
    let good = build(
        &format!("nats-t-{sfx}"),
        json!({"kind": "nats", "url": url, "token": "s3cret-token"}),
    );
    registry([good.clone()])
        .call(good.name(), &s, json!({}), "k", &p)
        .await
        .unwrap();
    let bad = build(
        &format!("nats-tb-{sfx}"),
        json!({"kind": "nats", "url": url, "token": "hunter2"}),
    );
    let failure = registry([bad.clone()])
        .call(bad.name(), &s, json!({}), "k", &p)
        .await
        .unwrap_err();
    assert!(
        failure.error.message().contains("authorization"),
        "{failure}"
    );
    assert!(!failure.to_string().contains("hunter2"), "{failure}");

    let (_user_server, port) = own_server(&["--user", "knhk", "--pass", "s3cret-pass"]).await;
    let url = format!("nats://127.0.0.1:{port}");
    let good = build(
        &format!("nats-u-{sfx}"),
        json!({"kind": "nats", "url": url, "user": "knhk", "password": "s3cret-pass"}),
    );
    registry([good.clone()])
        .call(good.name(), &s, json!({}), "k", &p)
        .await
        .unwrap();
    let bad = build(
        &format!("nats-ub-{sfx}"),
        json!({"kind": "nats", "url": url, "user": "knhk", "password": "hunter2"}),
    );
    let failure = registry([bad.clone()])
        .call(bad.name(), &s, json!({}), "k", &p)
        .await
        .unwrap_err();
    assert!(failure.error.is_retryable(), "{failure}");
    assert!(!failure.to_string().contains("hunter2"), "{failure}");
    assert!(!format!("{bad:?}").contains("hunter2"));
}
