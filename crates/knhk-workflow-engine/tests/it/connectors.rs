//! Automated tasks through the HTTP connector, against a real server on port 0.

use std::net::SocketAddr;
use std::sync::{Arc, Mutex};

use axum::extract::{Path, State};
use axum::http::{HeaderMap, StatusCode};
use axum::routing::post;
use axum::{Json, Router};
use knhk_core::{CaseStatus, EventKind};
use serde_json::{Value, json};
use tokio::sync::{mpsc, watch};

use crate::support::*;

#[derive(Clone)]
struct Server {
    /// Idempotency keys seen, in arrival order, per path.
    keys: Arc<Mutex<Vec<(String, String)>>>,
    flaky_left: Arc<Mutex<u32>>,
    arrived: Option<mpsc::UnboundedSender<()>>,
    /// Holds `/slow` answers until set to true.
    release: Arc<watch::Sender<bool>>,
}

impl Default for Server {
    fn default() -> Server {
        Server {
            keys: Arc::default(),
            flaky_left: Arc::default(),
            arrived: None,
            release: Arc::new(watch::channel(false).0),
        }
    }
}

async fn serve(server: Server) -> SocketAddr {
    let app = Router::new()
        .route("/score/{id}", post(score))
        .route("/flaky", post(flaky))
        .route("/down", post(down))
        .route("/slow", post(slow))
        .with_state(server);
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    tokio::spawn(async move { axum::serve(listener, app).await });
    addr
}

fn key(s: &Server, path: &str, headers: &HeaderMap) {
    let k = headers
        .get("idempotency-key")
        .and_then(|v| v.to_str().ok())
        .unwrap_or("")
        .to_string();
    s.keys.lock().unwrap().push((path.to_string(), k));
}

async fn score(
    State(s): State<Server>,
    Path(id): Path<i64>,
    headers: HeaderMap,
    Json(body): Json<Value>,
) -> Json<Value> {
    key(&s, "score", &headers);
    let bonus = body["bonus"].as_i64().unwrap_or(0);
    Json(json!({"score": id * 10 + bonus}))
}

async fn flaky(State(s): State<Server>, headers: HeaderMap) -> (StatusCode, Json<Value>) {
    key(&s, "flaky", &headers);
    let mut left = s.flaky_left.lock().unwrap();
    if *left > 0 {
        *left -= 1;
        return (StatusCode::SERVICE_UNAVAILABLE, Json(json!({})));
    }
    (StatusCode::OK, Json(json!({"flaky": "ok"})))
}

async fn down(State(s): State<Server>, headers: HeaderMap) -> StatusCode {
    key(&s, "down", &headers);
    StatusCode::INTERNAL_SERVER_ERROR
}

async fn slow(State(s): State<Server>, headers: HeaderMap) -> Json<Value> {
    key(&s, "slow", &headers);
    if let Some(tx) = &s.arrived {
        let _ = tx.send(());
    }
    let mut released = s.release.subscribe();
    let _ = released.wait_for(|r| *r).await;
    Json(json!({"slow": "done"}))
}

fn http_task(url: &str) -> String {
    format!(
        "knhk:connector \"http\" ; knhk:setting [ knhk:key \"url\" ; knhk:value \"{url}\" ] ; \
         knhk:maxAttempts 3 ; knhk:backoffMs 1 ; knhk:timeoutMs 5000 ;"
    )
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn http_tasks_run_in_sequence_and_their_outputs_merge_into_the_case_data() {
    let server = Server::default();
    *server.flaky_left.lock().unwrap() = 2;
    let addr = serve(server.clone()).await;
    let dir = tempfile::tempdir().unwrap();
    let engine = engine_on(sqlite(&dir.path().join("k.db")).await);
    let score = http_task(&format!("http://{addr}/score/{{id}}"));
    let flaky = http_task(&format!("http://{addr}/flaky"));
    let wf = engine
        .register_workflow(
            "http.ttl",
            knhk_workflow_engine::SourceFormat::Turtle,
            &turtle(
                "Http",
                &[("score", &score, &["flaky"]), ("flaky", &flaky, &["end"])],
            ),
        )
        .await
        .unwrap()
        .workflow;
    let case = engine
        .create_case(wf.id, json!({"id": 4, "bonus": 2}), true)
        .await
        .unwrap();
    let done = engine.wait_until_ended(case.id).await.unwrap();
    assert_eq!(done.status, CaseStatus::Completed);
    assert_eq!(done.data["score"], 42);
    assert_eq!(done.data["flaky"], "ok");
    let keys = server.keys.lock().unwrap().clone();
    let flaky_keys: Vec<_> = keys.iter().filter(|(p, _)| p == "flaky").collect();
    assert_eq!(flaky_keys.len(), 3, "two 503s then success");
    assert!(
        flaky_keys
            .iter()
            .all(|(_, k)| k == &flaky_keys[0].1 && !k.is_empty())
    );
    let history = engine.history(case.id).await.unwrap();
    assert!(
        history
            .iter()
            .any(|e| matches!(e.kind, EventKind::ConnectorCallSucceeded { .. }))
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_connector_that_keeps_failing_fails_the_case_with_the_reason() {
    let server = Server::default();
    let addr = serve(server.clone()).await;
    let engine = memory_engine();
    let down = http_task(&format!("http://{addr}/down"));
    let wf = engine
        .register_workflow(
            "down.ttl",
            knhk_workflow_engine::SourceFormat::Turtle,
            &turtle("Down", &[("pay", &down, &["end"])]),
        )
        .await
        .unwrap()
        .workflow;
    let case = engine.create_case(wf.id, json!({}), true).await.unwrap();
    let done = engine.wait_until_ended(case.id).await.unwrap();
    assert_eq!(done.status, CaseStatus::Failed);
    let history = engine.history(case.id).await.unwrap();
    let reason = history
        .iter()
        .find_map(|e| match &e.kind {
            EventKind::TaskFailed { reason, .. } => Some(reason.clone()),
            _ => None,
        })
        .unwrap();
    assert!(
        reason.contains("http") && reason.contains("3 attempts") && reason.contains("500"),
        "{reason}"
    );
    assert_eq!(server.keys.lock().unwrap().len(), 3);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn after_a_crash_the_call_in_flight_is_made_again_with_the_same_idempotency_key() {
    let (arrived_tx, mut arrived) = mpsc::unbounded_channel();
    let server = Server {
        arrived: Some(arrived_tx),
        ..Server::default()
    };
    let addr = serve(server.clone()).await;
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("k.db");
    let slow = http_task(&format!("http://{addr}/slow"));
    let first = engine_on(sqlite(&path).await);
    let wf = first
        .register_workflow(
            "slow.ttl",
            knhk_workflow_engine::SourceFormat::Turtle,
            &turtle("Slow", &[("wait", &slow, &["end"])]),
        )
        .await
        .unwrap()
        .workflow;
    let case = first.create_case(wf.id, json!({}), true).await.unwrap();
    arrived.recv().await.unwrap();
    // The process dies with the call in flight: nothing after the commit happened.
    first.shutdown().await;
    drop(first);
    let second = engine_on(sqlite(&path).await);
    assert_eq!(second.start().await.unwrap().recovered_cases, 1);
    arrived.recv().await.unwrap();
    server.release.send_replace(true);
    let done = second.wait_until_ended(case.id).await.unwrap();
    assert_eq!(done.status, CaseStatus::Completed);
    assert_eq!(done.data["slow"], "done");
    let keys = server.keys.lock().unwrap().clone();
    assert_eq!(keys.len(), 2);
    assert_eq!(
        keys[0].1, keys[1].1,
        "the retried call carries the same key"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_workflow_naming_an_unknown_connector_or_bad_settings_is_refused_at_registration() {
    let engine = memory_engine();
    let bad = turtle(
        "Bad",
        &[
            ("queue", "knhk:connector \"carrier-pigeon\" ;", &["pay"]),
            (
                "pay",
                "knhk:connector \"http\" ; knhk:setting [ knhk:key \"method\" ; knhk:value \"POST\" ] ;",
                &["end"],
            ),
        ],
    );
    let err = engine
        .register_workflow("bad.ttl", knhk_workflow_engine::SourceFormat::Turtle, &bad)
        .await
        .unwrap_err();
    let text = err.to_string();
    assert!(
        text.contains("queue: unknown connector carrier-pigeon"),
        "{text}"
    );
    assert!(text.contains("pay: connector http: url: missing"), "{text}");
    // Typed: each problem names the task, and the settings error names the setting.
    let knhk_workflow_engine::Error::Connectors { problems, .. } = &err else {
        panic!("expected a connectors error, got {err:?}");
    };
    let tasks: Vec<&str> = problems.iter().map(|p| p.task.as_str()).collect();
    assert_eq!(tasks, ["queue", "pay"]);
    match &problems[1].error {
        knhk_connectors::BindingError::Settings { connector, source } => {
            assert_eq!(connector, "http");
            assert_eq!(source.setting(), "url");
        }
        other => panic!("expected a settings error, got {other:?}"),
    }
    assert_eq!(err.code(), knhk_workflow_engine::ErrorCode::InvalidArgument);
    assert!(engine.workflows().await.unwrap().is_empty());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_workflow_naming_only_missing_connectors_fails_a_precondition() {
    let engine = memory_engine();
    let bad = turtle(
        "Bad",
        &[("queue", "knhk:connector \"carrier-pigeon\" ;", &["end"])],
    );
    let err = engine
        .register_workflow("bad.ttl", knhk_workflow_engine::SourceFormat::Turtle, &bad)
        .await
        .unwrap_err();
    assert_eq!(
        err.code(),
        knhk_workflow_engine::ErrorCode::FailedPrecondition,
        "{err}"
    );
}
