//! The registry's call loop, with fake connectors on the paused clock.

use std::collections::BTreeMap;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use knhk_connectors::{
    Binding, BindingError, CallError, CallFailure, CallRequest, Connector, FailedAttempt, Probe,
    Registry, RetryPolicy, SettingsError,
};
use serde_json::{Value, json};
use tokio::time::Instant;

/// Every attempt a scripted connector saw, with the settings of the binding that made it.
type Seen = Arc<Mutex<Vec<(BTreeMap<String, String>, CallRequest)>>>;

/// Fails with `errors` in order, then succeeds; records every request.
#[derive(Debug, Default)]
struct Scripted {
    errors: Vec<CallError>,
    hang: bool,
    /// Every attempt, with the settings of the binding that made it.
    seen: Seen,
}

#[async_trait::async_trait]
impl Connector for Scripted {
    fn name(&self) -> &str {
        "scripted"
    }

    fn kind(&self) -> &str {
        "scripted"
    }

    fn prepare(
        &self,
        settings: &BTreeMap<String, String>,
    ) -> Result<Arc<dyn Binding>, SettingsError> {
        match settings.get("mode").map(String::as_str) {
            Some("ok") | None => Ok(Arc::new(ScriptedBinding {
                settings: settings.clone(),
                errors: self.errors.clone(),
                hang: self.hang,
                seen: self.seen.clone(),
            })),
            Some(other) => Err(SettingsError::NotOneOf {
                setting: "mode".to_owned(),
                allowed: vec!["ok".to_owned()],
                found: other.to_owned(),
            }),
        }
    }

    async fn probe(&self) -> Result<Probe, CallError> {
        Ok(Probe::default())
    }
}

#[derive(Debug)]
struct ScriptedBinding {
    settings: BTreeMap<String, String>,
    errors: Vec<CallError>,
    hang: bool,
    seen: Seen,
}

#[async_trait::async_trait]
impl Binding for ScriptedBinding {
    async fn call(&self, req: CallRequest) -> Result<Value, CallError> {
        let attempt = req.attempt;
        self.seen.lock().unwrap().push((self.settings.clone(), req));
        if self.hang {
            std::future::pending::<()>().await;
        }
        match self.errors.get(attempt as usize - 1) {
            Some(error) => Err(error.clone()),
            None => Ok(json!({ "attempt": attempt })),
        }
    }
}

fn registry_with(connector: Arc<Scripted>) -> Registry {
    let mut registry = Registry::default();
    registry.register(connector);
    registry
}

fn policy(max_attempts: u32) -> RetryPolicy {
    RetryPolicy {
        max_attempts,
        ..RetryPolicy::default()
    }
}

#[tokio::test(start_paused = true)]
async fn retries_with_backoff_and_the_same_key_until_success() {
    let retryable = CallError::Retryable("503 Service Unavailable".to_owned());
    let connector = Arc::new(Scripted {
        errors: vec![retryable.clone(), retryable.clone(), retryable],
        ..Scripted::default()
    });
    let registry = registry_with(connector.clone());
    let settings = BTreeMap::from([("mode".to_owned(), "ok".to_owned())]);

    let start = Instant::now();
    let output = registry
        .call("scripted", &settings, json!({"a": 1}), "c/t/1", &policy(4))
        .await
        .unwrap();

    assert_eq!(output.output, json!({"attempt": 4}));
    let failed: Vec<(u32, &str)> = output
        .failed_attempts
        .iter()
        .map(|a| (a.attempt, a.error.as_str()))
        .collect();
    assert_eq!(
        failed,
        [
            (1, "503 Service Unavailable"),
            (2, "503 Service Unavailable"),
            (3, "503 Service Unavailable")
        ]
    );
    // 100ms + 200ms + 400ms of backoff at most, half of it at least (the jitter), and the
    // fake takes no time.
    let waited: Duration = (1..=3)
        .map(|attempt| policy(4).jittered_backoff(attempt, "c/t/1"))
        .sum();
    assert_eq!(start.elapsed(), waited);
    assert!(waited >= Duration::from_millis(350) && waited <= Duration::from_millis(700));
    let seen = connector.seen.lock().unwrap();
    let attempts: Vec<u32> = seen.iter().map(|(_, r)| r.attempt).collect();
    assert_eq!(attempts, [1, 2, 3, 4]);
    for (req_settings, req) in seen.iter() {
        assert_eq!(req.idempotency_key, "c/t/1");
        assert_eq!(req.input, json!({"a": 1}));
        assert_eq!(req_settings, &settings);
        assert_eq!(req.timeout, Duration::from_secs(30));
    }
}

#[tokio::test(start_paused = true)]
async fn gives_up_after_max_attempts_with_the_last_error() {
    let connector = Arc::new(Scripted {
        errors: vec![
            CallError::Retryable("first".to_owned()),
            CallError::Retryable("second".to_owned()),
        ],
        ..Scripted::default()
    });
    let registry = registry_with(connector.clone());

    let failure = registry
        .call("scripted", &BTreeMap::new(), json!({}), "k", &policy(2))
        .await
        .unwrap_err();

    assert_eq!(
        failure,
        CallFailure {
            connector: "scripted".to_owned(),
            attempts: 2,
            error: CallError::Retryable("second".to_owned()),
            failed_attempts: vec![FailedAttempt {
                attempt: 1,
                error: "first".to_owned(),
            }],
        }
    );
    assert_eq!(
        failure.to_string(),
        "scripted failed after 2 attempts: second"
    );
    assert_eq!(connector.seen.lock().unwrap().len(), 2);
}

#[tokio::test(start_paused = true)]
async fn stops_at_a_permanent_error() {
    let connector = Arc::new(Scripted {
        errors: vec![
            CallError::Retryable("flaky".to_owned()),
            CallError::Permanent("400 Bad Request".to_owned()),
        ],
        ..Scripted::default()
    });
    let registry = registry_with(connector.clone());

    let failure = registry
        .call("scripted", &BTreeMap::new(), json!({}), "k", &policy(5))
        .await
        .unwrap_err();

    assert_eq!(failure.attempts, 2);
    assert_eq!(
        failure.error,
        CallError::Permanent("400 Bad Request".to_owned())
    );
    assert_eq!(connector.seen.lock().unwrap().len(), 2);
}

#[tokio::test(start_paused = true)]
async fn an_attempt_that_never_answers_times_out_and_is_retried() {
    let connector = Arc::new(Scripted {
        hang: true,
        ..Scripted::default()
    });
    let registry = registry_with(connector.clone());

    let start = Instant::now();
    let failure = registry
        .call("scripted", &BTreeMap::new(), json!({}), "k", &policy(2))
        .await
        .unwrap_err();

    // Two timeouts of 30 s, and the wait between them.
    assert_eq!(
        start.elapsed(),
        Duration::from_secs(60) + policy(2).jittered_backoff(1, "k")
    );
    assert_eq!(failure.attempts, 2);
    assert_eq!(
        failure.error,
        CallError::Retryable("timed out after 30s".to_owned())
    );
    assert_eq!(connector.seen.lock().unwrap().len(), 2);
}

#[tokio::test]
async fn an_unknown_connector_fails_without_an_attempt() {
    let registry = Registry::with_builtins();
    let failure = registry
        .call(
            "nope",
            &BTreeMap::new(),
            json!({}),
            "k",
            &RetryPolicy::default(),
        )
        .await
        .unwrap_err();
    assert_eq!(failure.attempts, 0);
    assert_eq!(
        failure.error,
        CallError::Permanent("unknown connector nope".to_owned())
    );
    assert_eq!(
        failure.to_string(),
        "nope failed after 0 attempts: unknown connector nope"
    );
}

#[test]
fn registry_holds_connectors_by_name() {
    let builtins = Registry::with_builtins();
    assert_eq!(builtins.names(), ["http"]);
    assert_eq!(builtins.get("http").unwrap().name(), "http");
    assert!(builtins.get("scripted").is_none());

    // Registering on a clone leaves the original alone.
    let mut extended = builtins.clone();
    extended.register(Arc::new(Scripted::default()));
    assert_eq!(extended.names(), ["http", "scripted"]);
    assert_eq!(builtins.names(), ["http"]);
}

#[test]
fn check_settings_names_the_connector_and_the_setting() {
    let registry = registry_with(Arc::new(Scripted::default()));
    assert!(
        registry
            .check_settings("scripted", &BTreeMap::new())
            .is_ok()
    );
    let bad = BTreeMap::from([("mode".to_owned(), "weird".to_owned())]);
    let err = registry.check_settings("scripted", &bad).unwrap_err();
    assert_eq!(
        err.to_string(),
        "connector scripted: mode: expected `ok`, found `weird`"
    );
    match &err {
        BindingError::Settings { connector, source } => {
            assert_eq!(connector, "scripted");
            assert_eq!(source.setting(), "mode");
        }
        other => panic!("expected Settings, got {other:?}"),
    }
    let err = registry
        .check_settings("nope", &BTreeMap::new())
        .unwrap_err();
    assert_eq!(err.to_string(), "unknown connector nope");
    assert!(
        matches!(&err, BindingError::UnknownConnector { connector } if connector == "nope"),
        "{err:?}"
    );
}

/// Answers 503 while `down` is set, then succeeds; counts the calls that reached it.
#[derive(Debug, Default)]
struct Flaky {
    down: Arc<std::sync::atomic::AtomicBool>,
    calls: Arc<std::sync::atomic::AtomicU32>,
}

#[async_trait::async_trait]
impl Connector for Flaky {
    fn name(&self) -> &str {
        "flaky"
    }

    fn kind(&self) -> &str {
        "flaky"
    }

    fn prepare(&self, _: &BTreeMap<String, String>) -> Result<Arc<dyn Binding>, SettingsError> {
        Ok(Arc::new(Flaky {
            down: self.down.clone(),
            calls: self.calls.clone(),
        }))
    }

    async fn probe(&self) -> Result<Probe, CallError> {
        Ok(Probe::default())
    }
}

#[async_trait::async_trait]
impl Binding for Flaky {
    async fn call(&self, _: CallRequest) -> Result<Value, CallError> {
        use std::sync::atomic::Ordering;
        self.calls.fetch_add(1, Ordering::SeqCst);
        if self.down.load(Ordering::SeqCst) {
            Err(CallError::Retryable("503 Service Unavailable".to_owned()))
        } else {
            Ok(json!({"ok": true}))
        }
    }
}

#[tokio::test(start_paused = true)]
async fn the_circuit_opens_after_repeated_failures_and_a_trial_call_closes_it() {
    use std::sync::atomic::Ordering;
    let flaky = Arc::new(Flaky::default());
    flaky.down.store(true, Ordering::SeqCst);
    let mut registry = Registry::default().with_breaker_policy(knhk_connectors::BreakerPolicy {
        failure_threshold: 4,
        cooldown: Duration::from_secs(30),
    });
    registry.register(flaky.clone());
    let call = |r: Registry| async move {
        r.call("flaky", &BTreeMap::new(), json!({}), "k", &policy(3))
            .await
    };
    // 3 failures in the first call; the 4th, the second call's first attempt, opens the
    // circuit: its other attempts fail at once without reaching the service.
    assert!(call(registry.clone()).await.is_err());
    let failure = call(registry.clone()).await.unwrap_err();
    assert_eq!(flaky.calls.load(Ordering::SeqCst), 4);
    assert!(failure.error.message().contains("circuit"), "{failure}");
    // While open, nothing reaches the service.
    flaky.down.store(false, Ordering::SeqCst);
    let before = Instant::now();
    let failure = call(registry.clone()).await.unwrap_err();
    assert_eq!(flaky.calls.load(Ordering::SeqCst), 4);
    assert!(failure.error.message().contains("open"), "{failure}");
    assert!(Instant::now() - before < Duration::from_secs(30));
    // After the cooldown (the paused clock jumps there at once) one trial goes through; it
    // succeeds and closes the circuit.
    tokio::time::sleep(Duration::from_secs(30)).await;
    assert_eq!(
        call(registry.clone()).await.unwrap().output,
        json!({"ok": true})
    );
    assert_eq!(call(registry).await.unwrap().output, json!({"ok": true}));
    assert_eq!(flaky.calls.load(Ordering::SeqCst), 6);
}
