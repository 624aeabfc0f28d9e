//! The contract between the runtime and one connector instance: settings are prepared once into a
//! [`Binding`], and a binding performs the attempts of calls.

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::Duration;

use crate::settings::SettingsError;

/// One attempt of a connector call.
#[derive(Clone, Debug, PartialEq)]
pub struct CallRequest {
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
    /// A transport error, a timeout, a 5xx or 429 answer, a pool with no connection to spare:
    /// another attempt may succeed.
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

/// One connector instance (the built-in `http`, or a `[connectors.NAME]` of the config), shared by
/// every task that names it. It owns its connections (a pool), which it closes on [`close`].
///
/// [`close`]: Connector::close
#[async_trait::async_trait]
pub trait Connector: Send + Sync + std::fmt::Debug + 'static {
    /// Returns the name tasks use to pick this instance (`knhk:connector "NAME"`).
    fn name(&self) -> &str;

    /// Returns the kind of connector: `http`, `postgres`, `nats`...
    fn kind(&self) -> &str;

    /// Parses and checks a task's settings, once, when its workflow is registered or loaded;
    /// the error names the setting at fault. The binding performs that task's calls.
    fn prepare(
        &self,
        settings: &BTreeMap<String, String>,
    ) -> Result<Arc<dyn Binding>, SettingsError>;

    /// Checks a task's settings as [`Connector::prepare`] does, keeping nothing.
    fn check_settings(&self, settings: &BTreeMap<String, String>) -> Result<(), SettingsError> {
        self.prepare(settings).map(|_| ())
    }

    /// Checks that the far side answers: a checkout and a ping, or a metadata request. The
    /// registry bounds it with a timeout. A connector with no fixed endpoint (`http`) answers
    /// `Ok` with nothing to say.
    async fn probe(&self) -> Result<Probe, CallError>;

    /// Closes the instance's connections; calls made afterwards fail permanently.
    async fn close(&self) {}

    /// Returns what the instance's pool holds now; `None` for an instance without one
    /// (`http`, whose client keeps its own connections).
    fn pool(&self) -> Option<crate::pool::PoolStatus> {
        None
    }
}

/// A task's settings as one connector instance prepared them: what performs its calls.
#[async_trait::async_trait]
pub trait Binding: Send + Sync + std::fmt::Debug + 'static {
    /// Performs one attempt of a call.
    async fn call(&self, req: CallRequest) -> Result<serde_json::Value, CallError>;
}

/// What a probe found besides "it answers": a detail for people (a server version, a backlog).
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Probe {
    pub detail: Option<String>,
}
