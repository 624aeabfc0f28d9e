//! The contract between the runtime and one kind of connector.

use std::collections::BTreeMap;
use std::time::Duration;

use crate::settings::SettingsError;

/// One attempt of a connector call.
#[derive(Clone, Debug, PartialEq)]
pub struct CallRequest {
    /// The task's connector settings, as the definition gives them.
    pub settings: BTreeMap<String, String>,
    /// The task's input data.
    pub input: serde_json::Value,
    /// The same for every attempt of one call, so that the far side can drop duplicates.
    pub idempotency_key: String,
    /// Which attempt this is, counted from 1.
    pub attempt: u32,
    /// How long this attempt may take; the registry also enforces it.
    pub timeout: Duration,
}

/// Why an attempt failed, and whether another one is worth it.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum CallError {
    /// A transport error, a timeout, a 5xx or 429 answer: another attempt may succeed.
    #[error("{0}")]
    Retryable(String),
    /// A 4xx answer, bad settings, a bad response: retrying will not help.
    #[error("{0}")]
    Permanent(String),
}

impl CallError {
    /// Tells whether another attempt may succeed.
    pub fn is_retryable(&self) -> bool {
        matches!(self, CallError::Retryable(_))
    }

    /// Returns the message without the kind.
    pub fn message(&self) -> &str {
        match self {
            CallError::Retryable(m) | CallError::Permanent(m) => m,
        }
    }
}

/// One kind of connector (HTTP, a message queue...), shared by every task that names it.
#[async_trait::async_trait]
pub trait Connector: Send + Sync + std::fmt::Debug + 'static {
    /// Returns the name tasks use to pick this connector.
    fn name(&self) -> &str;

    /// Checks settings once at registration or load time (e.g. that the URL template parses);
    /// the error names the setting at fault.
    fn check_settings(&self, settings: &BTreeMap<String, String>) -> Result<(), SettingsError>;

    /// Performs one attempt of a call.
    async fn call(&self, req: CallRequest) -> Result<serde_json::Value, CallError>;
}
