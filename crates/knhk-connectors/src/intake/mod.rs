//! Inbound messages: the subscriptions of the config ([`config`]) and the [`Source`]s that
//! receive their messages from a broker, each with an id, a body and a handle that
//! acknowledges it or sends it to the dead letter.
//!
//! The runtime (`knhk-workflow-engine`'s intake service) decides what a message does, commits
//! the step it causes with the message's id, and only then settles the message: a message
//! is never acknowledged before its effect is durable.

mod amqp;
pub mod config;
mod kafka;
mod mqtt;
mod nats;
pub mod offsets;

use std::collections::BTreeMap;
use std::fmt;
use std::path::Path;
use std::sync::Arc;

pub use amqp::AmqpSource;
pub use config::{
    Action, DEFAULT_PREFETCH, MAX_PREFETCH, SourceSpec, StartFrom, Subscription, SubscriptionError,
    parse_subscriptions,
};
pub use kafka::{FETCH_MAX_BYTES, FLUSH_INTERVAL, KAFKA_ID_HEADERS, KafkaSource, REDELIVERY_DELAY};
pub use mqtt::{ID_PROPERTIES, MqttSource, SESSION_EXPIRY_SECS};
pub use nats::NatsSource;

use crate::config::InstanceConfig;

/// The header (NATS) or property that carries why a message was sent to the dead letter.
pub const REASON_HEADER: &str = "Knhk-Dead-Letter-Reason";
/// The header that names the subscription that refused a dead-lettered message.
pub const SUBSCRIPTION_HEADER: &str = "Knhk-Subscription";

/// Why receiving or settling a message failed.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum SourceError {
    /// The broker could not be reached, or refused the subscription.
    #[error("subscription {subscription}: {problem}")]
    Broker {
        subscription: String,
        problem: String,
    },
    /// The subscription names a source this build cannot read.
    #[error("subscription {subscription}: {problem}")]
    Unsupported {
        subscription: String,
        problem: String,
    },
}

impl SourceError {
    /// The broker failed `subscription` while it was `doing` something.
    pub(crate) fn broker(
        subscription: &str,
        doing: &str,
        error: impl std::fmt::Display,
    ) -> SourceError {
        SourceError::Broker {
            subscription: subscription.to_owned(),
            problem: format!("{doing}: {error}"),
        }
    }
}

/// One message received and not yet settled.
pub struct Received {
    /// The message's id, the same on every redelivery: on NATS the `Nats-Msg-Id` header, else
    /// (on JetStream) the stream and its sequence number; on AMQP the `message_id` property; on
    /// MQTT the user property `Idempotency-Key`, else `Message-Id`. `None` without one: such a
    /// message cannot be told apart from a redelivery, and is not deduplicated.
    pub id: Option<String>,
    /// The subject, queue or topic it came on.
    pub address: String,
    pub headers: BTreeMap<String, String>,
    pub payload: Vec<u8>,
    settle: Box<dyn Settle>,
}

impl fmt::Debug for Received {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Received")
            .field("id", &self.id)
            .field("address", &self.address)
            .field("bytes", &self.payload.len())
            .finish_non_exhaustive()
    }
}

impl Received {
    /// Makes a message to hand to the runtime; `settle` acknowledges it.
    pub fn new(
        id: Option<String>,
        address: String,
        headers: BTreeMap<String, String>,
        payload: Vec<u8>,
        settle: Box<dyn Settle>,
    ) -> Received {
        Received {
            id,
            address,
            headers,
            payload,
            settle,
        }
    }

    /// Acknowledges the message: the broker will not deliver it again.
    pub async fn ack(self) -> Result<(), SourceError> {
        self.settle.ack().await
    }

    /// Sends the message to the subscription's dead letter with `reason`, then acknowledges
    /// it. Without a dead letter, the message is acknowledged (dropped) only.
    pub async fn dead_letter(self, reason: &str) -> Result<(), SourceError> {
        self.settle
            .dead_letter(reason, &self.headers, &self.payload)
            .await?;
        self.settle.ack().await
    }

    /// Drops the message without acknowledging it: a broker that redelivers (JetStream,
    /// AMQP, MQTT with a persistent session) delivers it again, as after a crash.
    pub fn abandon(self) {}
}

/// How a source settles one of its messages.
#[async_trait::async_trait]
pub trait Settle: Send + Sync {
    /// Acknowledges the message to the broker.
    async fn ack(&self) -> Result<(), SourceError>;

    /// Publishes a copy of the message, with `reason`, to the dead letter (when there is one).
    async fn dead_letter(
        &self,
        reason: &str,
        headers: &BTreeMap<String, String>,
        payload: &[u8],
    ) -> Result<(), SourceError>;
}

/// What a source's broker says of its backlog.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Backlog {
    /// Messages waiting to be delivered (JetStream `num_pending`); `None` where the broker
    /// does not tell (core NATS).
    pub pending: Option<u64>,
    /// Messages delivered and not yet acknowledged (JetStream `num_ack_pending`).
    pub unacknowledged: Option<u64>,
}

/// The messages of one subscription.
#[async_trait::async_trait]
pub trait Source: Send + Sync + fmt::Debug {
    /// Waits for the next message; `None` once the source is closed.
    async fn next(&mut self) -> Result<Option<Received>, SourceError>;

    /// Asks the broker for the backlog: a real round trip, so also a probe.
    async fn backlog(&self) -> Result<Backlog, SourceError> {
        self.prober().backlog().await
    }

    /// Returns what probes the source's broker apart from the stream of messages, so that a
    /// health check can ask while the source is being consumed.
    fn prober(&self) -> Arc<dyn Prober>;
}

/// Probes one subscription's broker: a round trip that says the backlog where the broker
/// tells it.
#[async_trait::async_trait]
pub trait Prober: Send + Sync + fmt::Debug {
    /// Asks the broker for the backlog.
    async fn backlog(&self) -> Result<Backlog, SourceError>;
}

/// Opens the source of `subscription` through its connector `instance`, read as the
/// instance's kind reads it (servers, credentials), without a state directory: a Kafka
/// subscription, which keeps its offsets there, is refused ([`open_in`] gives one).
pub async fn open(
    subscription: &Subscription,
    instance: &InstanceConfig,
) -> Result<Box<dyn Source>, SourceError> {
    open_in(subscription, instance, None).await
}

/// Opens the source of `subscription` through its connector `instance`; `state_dir` is where
/// a source keeps what must outlive the process: a Kafka subscription's committed offsets
/// (`knhk serve` gives `DATA_DIR/intake`).
pub async fn open_in(
    subscription: &Subscription,
    instance: &InstanceConfig,
    state_dir: Option<&Path>,
) -> Result<Box<dyn Source>, SourceError> {
    match (&subscription.source, instance.kind.as_str()) {
        (SourceSpec::NatsSubject { .. } | SourceSpec::JetStream { .. }, "nats") => {
            // The instance's own reading of its table: servers, credentials, timeout.
            let endpoint = crate::nats::NatsEndpoint::from_config(instance).map_err(|e| {
                SourceError::Broker {
                    subscription: subscription.name.clone(),
                    problem: e.to_string(),
                }
            })?;
            Ok(Box::new(NatsSource::open(subscription, &endpoint).await?))
        }
        (SourceSpec::AmqpQueue { .. }, "amqp") => {
            let endpoint = crate::amqp::AmqpEndpoint::from_config(instance)
                .map_err(|e| broker(subscription, e))?;
            Ok(Box::new(AmqpSource::open(subscription, &endpoint).await?))
        }
        (SourceSpec::Topic { .. }, "mqtt") => {
            let endpoint = crate::mqtt::MqttEndpoint::from_config(instance)
                .map_err(|e| broker(subscription, e))?;
            Ok(Box::new(MqttSource::open(subscription, &endpoint).await?))
        }
        (SourceSpec::KafkaTopic { .. }, "kafka") => match state_dir {
            Some(dir) => Ok(Box::new(
                KafkaSource::open(subscription, instance, dir).await?,
            )),
            None => Err(SourceError::Unsupported {
                subscription: subscription.name.clone(),
                problem: "a kafka subscription keeps its committed offsets in a state \
                          directory, and none was given"
                    .to_owned(),
            }),
        },
        (_, kind) => Err(SourceError::Unsupported {
            subscription: subscription.name.clone(),
            problem: format!("subscriptions of kind {kind} are not available in this build"),
        }),
    }
}

fn broker(subscription: &Subscription, e: impl fmt::Display) -> SourceError {
    SourceError::Broker {
        subscription: subscription.name.clone(),
        problem: e.to_string(),
    }
}
