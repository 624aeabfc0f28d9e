//! The `http` connector against real servers on 127.0.0.1 port 0.

use std::collections::HashMap;
use std::sync::Arc;
use std::sync::atomic::{AtomicU32, Ordering};
use std::time::Duration;

use axum::Router;
use axum::body::Bytes;
use axum::extract::{Path, Query, State};
use axum::http::{HeaderMap, Method, StatusCode, Uri};
use axum::response::IntoResponse;
use axum::routing::{any, post};
use knhk_connectors::{CallError, Connector, HttpConnector, Registry, RetryPolicy};
use serde_json::{Value, json};
use tokio::sync::Notify;

use crate::server::{Recorder, drain, serve};
use crate::settings;

/// Short waits so the retry tests run fast on the real clock (they talk to real sockets, where
/// the paused clock would fire timeouts while the server works).
fn fast_policy(max_attempts: u32) -> RetryPolicy {
    RetryPolicy {
        max_attempts,
        initial_backoff: Duration::from_millis(1),
        max_backoff: Duration::from_millis(10),
        timeout: Duration::from_secs(10),
    }
}

/// A handler state: counts attempts and records requests.
#[derive(Clone)]
struct Counted {
    attempts: Arc<AtomicU32>,
    recorder: Recorder,
}

impl Counted {
    fn new() -> (
        Counted,
        tokio::sync::mpsc::UnboundedReceiver<crate::server::Seen>,
    ) {
        let (recorder, rx) = Recorder::new();
        let counted = Counted {
            attempts: Arc::new(AtomicU32::new(0)),
            recorder,
        };
        (counted, rx)
    }

    /// Records the request and returns its attempt number, from 1.
    fn arrive(&self, method: Method, uri: Uri, headers: HeaderMap, body: Bytes) -> u32 {
        self.recorder.record(method, uri, headers, body);
        self.attempts.fetch_add(1, Ordering::SeqCst) + 1
    }

    fn count(&self) -> u32 {
        self.attempts.load(Ordering::SeqCst)
    }
}

#[tokio::test]
async fn sends_json_to_a_templated_url_with_headers_and_bearer_token() {
    async fn order_lines(
        Path(id): Path<String>,
        Query(query): Query<HashMap<String, String>>,
        State(recorder): State<Recorder>,
        headers: HeaderMap,
        uri: Uri,
        axum::Json(body): axum::Json<Value>,
    ) -> axum::response::Response {
        recorder.record(
            Method::POST,
            uri,
            headers.clone(),
            Bytes::from(body.to_string()),
        );
        if headers.get("authorization").and_then(|v| v.to_str().ok()) != Some("Bearer s3cret") {
            return StatusCode::UNAUTHORIZED.into_response();
        }
        if headers.get("x-tenant").and_then(|v| v.to_str().ok()) != Some("acme") {
            return StatusCode::FORBIDDEN.into_response();
        }
        axum::Json(json!({ "order": id, "key": query.get("key"), "received": body }))
            .into_response()
    }
    let (recorder, mut rx) = Recorder::new();
    let server = serve(
        Router::new()
            .route("/orders/{id}/lines", post(order_lines))
            .with_state(recorder),
    )
    .await;
    let settings = settings([
        (
            "url",
            server.url("/orders/{order_id}/lines?key={idempotency_key}"),
        ),
        ("header.X-Tenant", "acme".to_owned()),
        ("bearer_token", "s3cret".to_owned()),
    ]);
    let input = json!({ "order_id": "A 1/2", "qty": 3 });
    let registry = Registry::with_builtins();
    registry.check_settings("http", &settings).unwrap();

    let output = registry
        .call(
            "http",
            &settings,
            input.clone(),
            "case-1/task-a/0",
            &fast_policy(1),
        )
        .await
        .unwrap()
        .output;

    assert_eq!(
        output,
        json!({ "order": "A 1/2", "key": "case-1/task-a/0", "received": input })
    );
    let seen = drain(&mut rx);
    assert_eq!(seen.len(), 1);
    let request = &seen[0];
    assert_eq!(
        request.uri.to_string(),
        "/orders/A%201%2F2/lines?key=case-1%2Ftask-a%2F0"
    );
    assert_eq!(request.header("idempotency-key"), Some("case-1/task-a/0"));
    assert_eq!(request.header("content-type"), Some("application/json"));
}

#[tokio::test]
async fn get_sends_no_body_and_reads_the_token_from_the_environment() {
    async fn lookup(
        State(recorder): State<Recorder>,
        method: Method,
        uri: Uri,
        headers: HeaderMap,
        body: Bytes,
    ) -> axum::Json<Value> {
        recorder.record(method, uri, headers, body);
        axum::Json(json!([1, 2, 3]))
    }
    let (recorder, mut rx) = Recorder::new();
    let server = serve(
        Router::new()
            .route("/lookup", any(lookup))
            .with_state(recorder),
    )
    .await;
    // Tests may not set variables (that is unsafe in edition 2024), so use one cargo always has.
    let path = std::env::var("PATH").unwrap();
    let settings = settings([
        ("url", server.url("/lookup?n={n}&ok={ok}")),
        ("method", "GET".to_owned()),
        ("bearer_token_env", "PATH".to_owned()),
    ]);

    let output = Registry::with_builtins()
        .call(
            "http",
            &settings,
            json!({"n": 42, "ok": true}),
            "k1",
            &fast_policy(1),
        )
        .await
        .unwrap()
        .output;

    assert_eq!(output, json!({ "response": [1, 2, 3] }));
    let seen = drain(&mut rx);
    assert_eq!(seen.len(), 1);
    assert_eq!(seen[0].method, Method::GET);
    assert_eq!(seen[0].uri.to_string(), "/lookup?n=42&ok=true");
    assert!(seen[0].body.is_empty());
    assert_eq!(
        seen[0].header("authorization"),
        Some(format!("Bearer {path}").as_str())
    );
    assert_eq!(seen[0].header("idempotency-key"), Some("k1"));
}

#[tokio::test]
async fn a_missing_token_variable_fails_permanently_naming_it() {
    let settings = settings([
        ("url", "http://127.0.0.1:9/never".to_owned()),
        (
            "bearer_token_env",
            "KNHK_TEST_SURELY_UNSET_TOKEN".to_owned(),
        ),
    ]);
    let failure = Registry::with_builtins()
        .call("http", &settings, json!({}), "k", &fast_policy(3))
        .await
        .unwrap_err();
    assert_eq!(failure.attempts, 1);
    assert_eq!(
        failure.error,
        CallError::Permanent(
            "bearer_token_env: environment variable KNHK_TEST_SURELY_UNSET_TOKEN is not set"
                .to_owned()
        )
    );
}

#[tokio::test]
async fn response_bodies_become_objects() {
    let server = serve(
        Router::new()
            .route("/object", post(|| async { axum::Json(json!({"id": 7})) }))
            .route("/number", post(|| async { axum::Json(json!(7)) }))
            .route("/empty", post(|| async { StatusCode::NO_CONTENT }))
            .route("/text", post(|| async { "plain words" })),
    )
    .await;
    let http = HttpConnector::new();
    let cases = [
        ("/object", json!({"id": 7})),
        ("/number", json!({"response": 7})),
        ("/empty", json!({})),
        ("/text", json!({"body": "plain words"})),
    ];
    for (path, expected) in cases {
        let binding = http
            .prepare(&settings([("url", server.url(path))]))
            .unwrap();
        let req = knhk_connectors::CallRequest {
            input: json!({}),
            idempotency_key: "k".to_owned(),
            attempt: 1,
            timeout: Duration::from_secs(10),
        };
        assert_eq!(binding.call(req).await.unwrap(), expected, "{path}");
    }
}

async fn flaky(
    State(state): State<Counted>,
    method: Method,
    uri: Uri,
    headers: HeaderMap,
    body: Bytes,
) -> axum::response::Response {
    match state.arrive(method, uri, headers, body) {
        // The body must not reach the record of failed attempts.
        1 | 2 => (StatusCode::SERVICE_UNAVAILABLE, "secret-ish detail").into_response(),
        n => axum::Json(json!({ "served_on_attempt": n })).into_response(),
    }
}

#[tokio::test]
async fn retries_503_with_the_same_idempotency_key_and_records_each_status() {
    let (state, mut rx) = Counted::new();
    let server = serve(
        Router::new()
            .route("/flaky", post(flaky))
            .with_state(state.clone()),
    )
    .await;
    let settings = settings([("url", server.url("/flaky"))]);

    let output = Registry::with_builtins()
        .call(
            "http",
            &settings,
            json!({"x": 1}),
            "case/t/1",
            &fast_policy(3),
        )
        .await
        .unwrap();

    assert_eq!(output.output, json!({ "served_on_attempt": 3 }));
    let failed: Vec<(u32, &str)> = output
        .failed_attempts
        .iter()
        .map(|a| (a.attempt, a.error.as_str()))
        .collect();
    assert_eq!(
        failed,
        [
            (1, "503 Service Unavailable"),
            (2, "503 Service Unavailable")
        ]
    );
    assert_eq!(state.count(), 3);
    let seen = drain(&mut rx);
    assert_eq!(seen.len(), 3);
    for request in &seen {
        assert_eq!(request.header("idempotency-key"), Some("case/t/1"));
        assert_eq!(request.body.as_ref(), br#"{"x":1}"#);
    }
}

#[tokio::test]
async fn gives_up_after_max_attempts_of_503() {
    let (state, _rx) = Counted::new();
    let server = serve(
        Router::new()
            .route("/flaky", post(flaky))
            .with_state(state.clone()),
    )
    .await;
    let settings = settings([("url", server.url("/flaky"))]);

    let failure = Registry::with_builtins()
        .call("http", &settings, json!({}), "k", &fast_policy(2))
        .await
        .unwrap_err();

    assert_eq!(state.count(), 2);
    assert_eq!(failure.attempts, 2);
    assert!(failure.error.is_retryable());
    assert_eq!(
        failure.to_string(),
        "http failed after 2 attempts: 503 Service Unavailable"
    );
}

#[tokio::test]
async fn retries_429() {
    async fn limited(
        State(state): State<Counted>,
        method: Method,
        uri: Uri,
        headers: HeaderMap,
        body: Bytes,
    ) -> axum::response::Response {
        match state.arrive(method, uri, headers, body) {
            1 => (StatusCode::TOO_MANY_REQUESTS, "slow down").into_response(),
            _ => axum::Json(json!({ "ok": true })).into_response(),
        }
    }
    let (state, _rx) = Counted::new();
    let server = serve(
        Router::new()
            .route("/limited", any(limited))
            .with_state(state.clone()),
    )
    .await;
    let settings = settings([
        ("url", server.url("/limited")),
        ("method", "put".to_owned()),
    ]);

    let output = Registry::with_builtins()
        .call("http", &settings, json!({}), "k", &fast_policy(3))
        .await
        .unwrap()
        .output;

    assert_eq!(output, json!({ "ok": true }));
    assert_eq!(state.count(), 2);
}

#[tokio::test]
async fn a_4xx_is_not_retried_and_carries_a_body_excerpt() {
    async fn reject(
        State(state): State<Counted>,
        method: Method,
        uri: Uri,
        headers: HeaderMap,
        body: Bytes,
    ) -> axum::response::Response {
        state.arrive(method, uri, headers, body);
        let long = format!("field qty is invalid {}", "x".repeat(1000));
        (StatusCode::UNPROCESSABLE_ENTITY, long).into_response()
    }
    let (state, _rx) = Counted::new();
    let server = serve(
        Router::new()
            .route("/reject", post(reject))
            .with_state(state.clone()),
    )
    .await;
    let settings = settings([("url", server.url("/reject"))]);

    let failure = Registry::with_builtins()
        .call("http", &settings, json!({}), "k", &fast_policy(5))
        .await
        .unwrap_err();

    assert_eq!(state.count(), 1);
    assert_eq!(failure.attempts, 1);
    let CallError::Permanent(message) = &failure.error else {
        panic!("expected a permanent error, got {failure}");
    };
    let excerpt = message
        .strip_prefix("422 Unprocessable Entity: field qty is invalid x")
        .unwrap();
    assert!(excerpt.ends_with('…'), "{message}");
    let excerpt_chars = message.chars().count() - "422 Unprocessable Entity: ".len() - 1;
    assert_eq!(excerpt_chars, 200);
    assert!(
        failure
            .to_string()
            .starts_with("http failed after 1 attempt: 422 Unprocessable Entity: field qty")
    );
}

#[tokio::test]
async fn an_attempt_that_times_out_is_retried() {
    #[derive(Clone)]
    struct Stalling {
        counted: Counted,
        release: Arc<Notify>,
    }
    async fn stall_first(
        State(state): State<Stalling>,
        method: Method,
        uri: Uri,
        headers: HeaderMap,
        body: Bytes,
    ) -> axum::Json<Value> {
        let attempt = state.counted.arrive(method, uri, headers, body);
        if attempt == 1 {
            // Never answers within the test unless told to.
            state.release.notified().await;
        }
        axum::Json(json!({ "attempt": attempt }))
    }
    let (counted, mut rx) = Counted::new();
    let release = Arc::new(Notify::new());
    let server = serve(
        Router::new()
            .route("/stall", post(stall_first))
            .with_state(Stalling {
                counted: counted.clone(),
                release: release.clone(),
            }),
    )
    .await;
    let settings = settings([("url", server.url("/stall"))]);
    let policy = RetryPolicy {
        timeout: Duration::from_millis(200),
        ..fast_policy(2)
    };

    let output = Registry::with_builtins()
        .call("http", &settings, json!({}), "stall-key", &policy)
        .await
        .unwrap()
        .output;
    release.notify_one();

    assert_eq!(output, json!({ "attempt": 2 }));
    assert_eq!(counted.count(), 2);
    let keys: Vec<_> = drain(&mut rx)
        .iter()
        .map(|s| s.header("idempotency-key").map(str::to_owned))
        .collect();
    assert_eq!(
        keys,
        [Some("stall-key".to_owned()), Some("stall-key".to_owned())]
    );
}

#[tokio::test]
async fn an_attempt_that_times_out_on_every_try_fails_as_retryable() {
    let release = Arc::new(Notify::new());
    let stalled = release.clone();
    let server = serve(Router::new().route(
        "/stall",
        post(move || {
            let stalled = stalled.clone();
            async move { stalled.notified().await }
        }),
    ))
    .await;
    let settings = settings([("url", server.url("/stall"))]);
    let policy = RetryPolicy {
        timeout: Duration::from_millis(200),
        ..fast_policy(2)
    };

    let failure = Registry::with_builtins()
        .call("http", &settings, json!({}), "k", &policy)
        .await
        .unwrap_err();
    release.notify_waiters();

    assert_eq!(failure.attempts, 2);
    assert_eq!(
        failure.error,
        CallError::Retryable("timed out after 200ms".to_owned())
    );
}

#[tokio::test]
async fn a_refused_connection_is_retried() {
    // A port that was just free: nothing listens on it once the listener is dropped.
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    drop(listener);
    let settings = settings([("url", format!("http://{addr}/x"))]);

    let failure = Registry::with_builtins()
        .call("http", &settings, json!({}), "k", &fast_policy(2))
        .await
        .unwrap_err();

    assert_eq!(failure.attempts, 2);
    assert!(failure.error.is_retryable(), "{failure}");
    assert!(!failure.to_string().contains("/x"), "{failure}");
}

#[tokio::test]
async fn an_unknown_placeholder_fails_permanently_naming_it() {
    let settings = settings([("url", "http://127.0.0.1:9/orders/{order_id}".to_owned())]);
    let failure = Registry::with_builtins()
        .call("http", &settings, json!({"id": 1}), "k", &fast_policy(3))
        .await
        .unwrap_err();
    assert_eq!(failure.attempts, 1);
    assert_eq!(
        failure.error,
        CallError::Permanent(
            "url: unknown placeholder {order_id}: the input has no field order_id".to_owned()
        )
    );
}

#[tokio::test]
async fn a_response_larger_than_max_response_bytes_fails_the_call_for_good() {
    let big = "x".repeat(2000);
    let server = serve(Router::new().route(
        "/big",
        post(move || {
            let big = big.clone();
            async move { big }
        }),
    ))
    .await;
    let http = HttpConnector::new();
    let call = |limit: &str| {
        let binding = http
            .prepare(&settings([
                ("url", server.url("/big")),
                ("max_response_bytes", limit.to_owned()),
            ]))
            .unwrap();
        let req = knhk_connectors::CallRequest {
            input: json!({}),
            idempotency_key: "k".to_owned(),
            attempt: 1,
            timeout: Duration::from_secs(10),
        };
        async move { binding.call(req).await }
    };
    let err = call("1000").await.unwrap_err();
    assert_eq!(
        err,
        CallError::Permanent(
            "the response body is 2000 bytes, more than the 1000 bytes the max_response_bytes \
             setting allows"
                .to_owned()
        )
    );
    let output = call("2000").await.unwrap();
    assert_eq!(output["body"].as_str().map(str::len), Some(2000));
    for bad in ["0", "ten", "-1"] {
        let err = http
            .check_settings(&settings([
                ("url", server.url("/big")),
                ("max_response_bytes", bad.to_owned()),
            ]))
            .unwrap_err();
        assert_eq!(err.setting(), "max_response_bytes", "{bad}");
    }
}
