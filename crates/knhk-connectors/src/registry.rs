//! The connectors by name, and the loop that runs a call through timeouts and retries.

use std::collections::{BTreeMap, HashMap};
use std::sync::{Arc, PoisonError, RwLock};
use std::time::Duration;

use tracing::{debug, warn};

use crate::breaker::{Admission, BreakerPolicy, Breakers};
use crate::connector::{Binding, CallError, CallRequest, Connector, Probe};
use crate::http::HttpConnector;
use crate::retry::RetryPolicy;
use crate::settings::BindingError;

/// A call that failed for good: a permanent error, or a retryable one on the last attempt.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{connector} failed after {attempts} {}: {error}", if *.attempts == 1 { "attempt" } else { "attempts" })]
pub struct CallFailure {
    /// The connector's name as the task gave it.
    pub connector: String,
    /// Attempts made; 0 when the connector is unknown.
    pub attempts: u32,
    /// The error of the last attempt.
    pub error: CallError,
    /// The attempts before the last one, which failed and were retried.
    pub failed_attempts: Vec<FailedAttempt>,
}

/// A call that answered: its output, and the attempts that failed and were retried before.
#[derive(Debug, Clone, PartialEq)]
pub struct Answer {
    pub output: serde_json::Value,
    pub failed_attempts: Vec<FailedAttempt>,
}

/// An attempt that failed with a retryable error and was retried: its number (from 1) and
/// its error (a status line, a timeout or a transport error, never a response body).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FailedAttempt {
    pub attempt: u32,
    pub error: String,
}

/// The connector instances a runtime knows, by name, with a circuit breaker each and the tasks'
/// settings as each instance prepared them. Cloning is cheap; clones share the circuits and the
/// prepared bindings.
#[derive(Clone, Default, Debug)]
pub struct Registry {
    connectors: Arc<HashMap<String, Arc<dyn Connector>>>,
    breakers: Breakers,
    bindings: Bindings,
}

/// Settings prepared once per (instance, settings): by the instance name, the settings and their
/// binding. Workflows are few and their tasks' settings fewer, so a short scan finds one.
type Prepared = HashMap<String, Vec<(BTreeMap<String, String>, Arc<dyn Binding>)>>;

#[derive(Clone, Default, Debug)]
struct Bindings(Arc<RwLock<Prepared>>);

/// What a probe of one connector instance found.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct InstanceHealth {
    pub name: String,
    pub kind: String,
    /// How long the probe took (up to its timeout).
    pub latency: Duration,
    /// What the probe found, or why it failed (a timeout included).
    pub result: Result<Probe, CallError>,
}

impl Registry {
    /// Creates a registry with the built-in connectors: `http`.
    pub fn with_builtins() -> Registry {
        let mut registry = Registry::default();
        registry.register(Arc::new(HttpConnector::new()));
        registry
    }

    /// Returns this registry with circuits that open as `policy` says.
    pub fn with_breaker_policy(mut self, policy: BreakerPolicy) -> Registry {
        self.breakers = Breakers::new(policy);
        self
    }

    /// Returns the policy of the circuit breakers.
    pub fn breaker_policy(&self) -> BreakerPolicy {
        self.breakers.policy()
    }

    /// Adds a connector instance under its name, replacing one of the same name (and the
    /// settings prepared by the one replaced).
    pub fn register(&mut self, c: Arc<dyn Connector>) {
        self.bindings.forget(c.name());
        Arc::make_mut(&mut self.connectors).insert(c.name().to_owned(), c);
    }

    /// Returns the connector of this name.
    pub fn get(&self, name: &str) -> Option<Arc<dyn Connector>> {
        self.connectors.get(name).cloned()
    }

    /// Returns the names of the registered connectors, sorted.
    pub fn names(&self) -> Vec<&str> {
        let mut names: Vec<&str> = self.connectors.keys().map(String::as_str).collect();
        names.sort_unstable();
        names
    }

    /// Checks a task's binding at load time: the connector exists and accepts the settings,
    /// which it prepares once; later calls with the same settings use what it prepared.
    pub fn check_settings(
        &self,
        connector: &str,
        settings: &BTreeMap<String, String>,
    ) -> Result<(), BindingError> {
        self.binding(connector, settings).map(|_| ())
    }

    /// Returns the binding of a task's settings, preparing them if no call or check has.
    fn binding(
        &self,
        connector: &str,
        settings: &BTreeMap<String, String>,
    ) -> Result<Arc<dyn Binding>, BindingError> {
        if let Some(b) = self.bindings.get(connector, settings) {
            return Ok(b);
        }
        let c = self
            .get(connector)
            .ok_or_else(|| BindingError::UnknownConnector {
                connector: connector.to_owned(),
            })?;
        let binding = c
            .prepare(settings)
            .map_err(|source| BindingError::Settings {
                connector: connector.to_owned(),
                source,
            })?;
        self.bindings.put(connector, settings, binding.clone());
        Ok(binding)
    }

    /// Probes every instance at once, each bounded by `timeout`, sorted by name.
    pub async fn health(&self, timeout: Duration) -> Vec<InstanceHealth> {
        let probes = self.connectors.values().map(|c| probe(c, timeout));
        let mut all = futures_util::future::join_all(probes).await;
        all.sort_by(|a, b| a.name.cmp(&b.name));
        all
    }

    /// Probes the instance of this name, bounded by `timeout`; `None` when there is none.
    pub async fn probe(&self, name: &str, timeout: Duration) -> Option<InstanceHealth> {
        let c = self.connectors.get(name)?;
        Some(probe(c, timeout).await)
    }

    /// Closes every instance's connections (on shutdown).
    pub async fn close(&self) {
        futures_util::future::join_all(self.connectors.values().map(|c| c.close())).await;
    }

    /// Runs a call to its end: a timeout per attempt, retries with backoff on retryable errors,
    /// a stop on a permanent one. Every attempt carries the same idempotency key.
    ///
    /// Dropping the returned future abandons the call, including an attempt in flight.
    pub async fn call(
        &self,
        connector: &str,
        settings: &BTreeMap<String, String>,
        input: serde_json::Value,
        idempotency_key: &str,
        policy: &RetryPolicy,
    ) -> Result<Answer, CallFailure> {
        let failure = |attempts, error, failed_attempts| CallFailure {
            connector: connector.to_owned(),
            attempts,
            error,
            failed_attempts,
        };
        let c = match self.binding(connector, settings) {
            Ok(c) => c,
            Err(e) => return Err(failure(0, CallError::Permanent(e.to_string()), Vec::new())),
        };
        let mut failed_attempts = Vec::new();
        let max_attempts = policy.max_attempts.max(1);
        let mut attempt = 1;
        loop {
            let req = CallRequest {
                input: input.clone(),
                idempotency_key: idempotency_key.to_owned(),
                attempt,
                timeout: policy.timeout,
            };
            debug!(connector, idempotency_key, attempt, "connector call");
            let result = match self.breakers.admit(connector) {
                // The circuit is open: this attempt fails without troubling the service.
                Admission::Refused(why) => Err(CallError::Retryable(why)),
                Admission::Go => {
                    let result = match tokio::time::timeout(policy.timeout, c.call(req)).await {
                        Ok(result) => result,
                        Err(_) => Err(CallError::Retryable(format!(
                            "timed out after {:?}",
                            policy.timeout
                        ))),
                    };
                    let answered = !matches!(result, Err(CallError::Retryable(_)));
                    self.breakers.record(connector, answered);
                    result
                }
            };
            match result {
                Ok(output) => {
                    return Ok(Answer {
                        output,
                        failed_attempts,
                    });
                }
                Err(CallError::Retryable(error)) if attempt < max_attempts => {
                    let backoff = policy.jittered_backoff(attempt, idempotency_key);
                    warn!(
                        connector,
                        idempotency_key,
                        attempt,
                        %error,
                        ?backoff,
                        "connector call failed, retrying"
                    );
                    failed_attempts.push(FailedAttempt {
                        attempt,
                        error: error.clone(),
                    });
                    tokio::time::sleep(backoff).await;
                    attempt += 1;
                }
                Err(error) => return Err(failure(attempt, error, failed_attempts)),
            }
        }
    }
}

/// Probes one instance, bounded by `timeout`, timing it.
async fn probe(c: &Arc<dyn Connector>, timeout: Duration) -> InstanceHealth {
    let started = tokio::time::Instant::now();
    let result = match tokio::time::timeout(timeout, c.probe()).await {
        Ok(result) => result,
        Err(_) => Err(CallError::Retryable(format!(
            "no answer within {timeout:?}"
        ))),
    };
    InstanceHealth {
        name: c.name().to_owned(),
        kind: c.kind().to_owned(),
        latency: started.elapsed(),
        result,
    }
}

impl Bindings {
    fn get(
        &self,
        connector: &str,
        settings: &BTreeMap<String, String>,
    ) -> Option<Arc<dyn Binding>> {
        let prepared = self.0.read().unwrap_or_else(PoisonError::into_inner);
        let of_connector = prepared.get(connector)?;
        of_connector
            .iter()
            .find(|(s, _)| s == settings)
            .map(|(_, b)| b.clone())
    }

    fn put(&self, connector: &str, settings: &BTreeMap<String, String>, binding: Arc<dyn Binding>) {
        let mut prepared = self.0.write().unwrap_or_else(PoisonError::into_inner);
        let of_connector = prepared.entry(connector.to_owned()).or_default();
        if !of_connector.iter().any(|(s, _)| s == settings) {
            of_connector.push((settings.clone(), binding));
        }
    }

    fn forget(&self, connector: &str) {
        self.0
            .write()
            .unwrap_or_else(PoisonError::into_inner)
            .remove(connector);
    }
}
