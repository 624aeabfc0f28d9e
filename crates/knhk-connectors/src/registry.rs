//! The connectors by name, and the loop that runs a call through timeouts and retries.

use std::collections::{BTreeMap, HashMap};
use std::sync::Arc;

use tracing::{debug, warn};

use crate::connector::{CallError, CallRequest, Connector};
use crate::http::HttpConnector;
use crate::retry::RetryPolicy;

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
}

/// The connectors a runtime knows, by name. Cloning is cheap.
#[derive(Clone, Default, Debug)]
pub struct Registry {
    connectors: Arc<HashMap<String, Arc<dyn Connector>>>,
}

impl Registry {
    /// Creates a registry with the built-in connectors: `http`.
    pub fn with_builtins() -> Registry {
        let mut registry = Registry::default();
        registry.register(Arc::new(HttpConnector::new()));
        registry
    }

    /// Adds a connector under its name, replacing one of the same name.
    pub fn register(&mut self, c: Arc<dyn Connector>) {
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

    /// Checks a task's binding at load time: the connector exists and accepts the settings.
    pub fn check_settings(
        &self,
        connector: &str,
        settings: &BTreeMap<String, String>,
    ) -> Result<(), String> {
        match self.get(connector) {
            Some(c) => c
                .check_settings(settings)
                .map_err(|e| format!("connector {connector}: {e}")),
            None => Err(format!("unknown connector {connector}")),
        }
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
    ) -> Result<serde_json::Value, CallFailure> {
        let failure = |attempts, error| CallFailure {
            connector: connector.to_owned(),
            attempts,
            error,
        };
        let Some(c) = self.get(connector) else {
            return Err(failure(
                0,
                CallError::Permanent(format!("unknown connector {connector}")),
            ));
        };
        let max_attempts = policy.max_attempts.max(1);
        let mut attempt = 1;
        loop {
            let req = CallRequest {
                settings: settings.clone(),
                input: input.clone(),
                idempotency_key: idempotency_key.to_owned(),
                attempt,
                timeout: policy.timeout,
            };
            debug!(connector, idempotency_key, attempt, "connector call");
            let result = match tokio::time::timeout(policy.timeout, c.call(req)).await {
                Ok(result) => result,
                Err(_) => Err(CallError::Retryable(format!(
                    "timed out after {:?}",
                    policy.timeout
                ))),
            };
            match result {
                Ok(output) => return Ok(output),
                Err(CallError::Retryable(error)) if attempt < max_attempts => {
                    let backoff = policy.backoff(attempt);
                    warn!(
                        connector,
                        idempotency_key,
                        attempt,
                        %error,
                        ?backoff,
                        "connector call failed, retrying"
                    );
                    tokio::time::sleep(backoff).await;
                    attempt += 1;
                }
                Err(error) => return Err(failure(attempt, error)),
            }
        }
    }
}
