//! The AMQP 0-9-1 source: a RabbitMQ queue consumed with manual acknowledgement and at most
//! `prefetch` messages unacknowledged (`basic.qos`); a message left unacknowledged when the
//! source goes (its channel closed) is put back in the queue by the broker and redelivered.
//! A lost connection (closed by the broker, a network failure) is opened again by the source.

use std::collections::BTreeMap;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use futures_util::StreamExt;
use lapin::Acker;
use lapin::options::{
    BasicAckOptions, BasicConsumeOptions, BasicPublishOptions, BasicQosOptions,
    ConfirmSelectOptions, QueueDeclareOptions,
};
use lapin::types::{AMQPValue, FieldTable, ShortString};
use lapin::{BasicProperties, Channel, Confirmation, Connection};

use super::{Backlog, Prober, REASON_HEADER, Received, SUBSCRIPTION_HEADER, Settle, SourceError};
use crate::amqp::AmqpEndpoint;
use crate::intake::config::{SourceSpec, Subscription};

/// A subscription's AMQP queue source.
pub struct AmqpSource {
    subscription: Subscription,
    endpoint: AmqpEndpoint,
    queue: String,
    consumer: lapin::Consumer,
    /// A channel in confirm mode for dead letters, apart from the consumer's.
    publisher: Channel,
    prober: Arc<AmqpProber>,
}

impl std::fmt::Debug for AmqpSource {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("AmqpSource")
            .field("subscription", &self.subscription.name)
            .field("queue", &self.queue)
            .finish_non_exhaustive()
    }
}

/// What one connection of a source holds: the connection, its consumer and its dead letter
/// channel.
struct Consuming {
    connection: Arc<Connection>,
    consumer: lapin::Consumer,
    publisher: Channel,
}

/// How long a lost source waits before it connects again, at first and at most.
const RECONNECT_FIRST: Duration = Duration::from_millis(100);
const RECONNECT_MAX: Duration = Duration::from_secs(5);

impl AmqpSource {
    /// Connects as the instance does, sets the channel's prefetch and consumes the queue
    /// with manual acknowledgement. The queue must exist (it is not declared here: its
    /// durability and arguments are the broker's configuration).
    pub(crate) async fn open(
        subscription: &Subscription,
        endpoint: &AmqpEndpoint,
    ) -> Result<AmqpSource, SourceError> {
        let SourceSpec::AmqpQueue { queue } = &subscription.source else {
            return Err(SourceError::Unsupported {
                subscription: subscription.name.clone(),
                problem: format!("AMQP cannot read {}", subscription.source.describe()),
            });
        };
        let c = consume(subscription, endpoint, queue).await?;
        Ok(AmqpSource {
            subscription: subscription.clone(),
            endpoint: endpoint.clone(),
            queue: queue.clone(),
            consumer: c.consumer,
            publisher: c.publisher,
            prober: Arc::new(AmqpProber {
                name: subscription.name.clone(),
                queue: queue.clone(),
                connection: Mutex::new(c.connection),
            }),
        })
    }

    /// Connects again after the connection or the consumer was lost, until it succeeds,
    /// waiting longer after each failure. The messages in flight on the lost connection fail
    /// to be acknowledged, and RabbitMQ delivers them again (found duplicates once committed).
    async fn reconnect(&mut self) {
        let mut delay = RECONNECT_FIRST;
        loop {
            match consume(&self.subscription, &self.endpoint, &self.queue).await {
                Ok(c) => {
                    self.consumer = c.consumer;
                    self.publisher = c.publisher;
                    *self
                        .prober
                        .connection
                        .lock()
                        .unwrap_or_else(|p| p.into_inner()) = c.connection;
                    tracing::info!(subscription = %self.subscription.name, "amqp: consuming again");
                    return;
                }
                Err(e) => {
                    tracing::warn!(subscription = %self.subscription.name, error = %e, ?delay, "amqp: reconnecting failed");
                    tokio::time::sleep(delay).await;
                    delay = (delay * 2).min(RECONNECT_MAX);
                }
            }
        }
    }
}

async fn consume(
    subscription: &Subscription,
    endpoint: &AmqpEndpoint,
    queue: &str,
) -> Result<Consuming, SourceError> {
    let broker = |what: &str, e: &dyn std::fmt::Display| SourceError::Broker {
        subscription: subscription.name.clone(),
        problem: format!("{what}: {e}"),
    };
    let connection = endpoint
        .connect()
        .await
        .map_err(|e| broker("connecting to AMQP", &e))?;
    let channel = connection
        .create_channel()
        .await
        .map_err(|e| broker("opening a channel", &e))?;
    // The prefetch is at most 10,000 (MAX_PREFETCH), within basic.qos's 16 bits.
    let prefetch = u16::try_from(subscription.prefetch).unwrap_or(u16::MAX);
    channel
        .basic_qos(prefetch, BasicQosOptions::default())
        .await
        .map_err(|e| broker("basic.qos", &e))?;
    let consumer = channel
        .basic_consume(
            queue.into(),
            format!("knhk {}", subscription.name).into(),
            BasicConsumeOptions::default(),
            FieldTable::default(),
        )
        .await
        .map_err(|e| broker(&format!("consuming queue {queue}"), &e))?;
    let publisher = connection
        .create_channel()
        .await
        .map_err(|e| broker("opening the dead letter channel", &e))?;
    publisher
        .confirm_select(ConfirmSelectOptions::default())
        .await
        .map_err(|e| broker("confirm.select", &e))?;
    Ok(Consuming {
        connection: Arc::new(connection),
        consumer,
        publisher,
    })
}

/// Reads the headers table, keeping the values that are strings (short or long).
fn headers_of(table: Option<&FieldTable>) -> BTreeMap<String, String> {
    let mut out = BTreeMap::new();
    for (k, v) in table.map(|t| t.inner().iter()).into_iter().flatten() {
        let value = match v {
            AMQPValue::LongString(s) => String::from_utf8_lossy(s.as_bytes()).into_owned(),
            AMQPValue::ShortString(s) => s.as_str().to_owned(),
            _ => continue,
        };
        out.insert(k.as_str().to_owned(), value);
    }
    out
}

#[async_trait::async_trait]
impl super::Source for AmqpSource {
    async fn next(&mut self) -> Result<Option<Received>, SourceError> {
        let d = loop {
            match self.consumer.next().await {
                Some(Ok(d)) => break d,
                Some(Err(e)) => {
                    tracing::warn!(subscription = %self.subscription.name, error = %e, "amqp: consumer lost; reconnecting");
                }
                None => {
                    tracing::warn!(subscription = %self.subscription.name, "amqp: consumer ended; reconnecting");
                }
            }
            self.reconnect().await;
        };
        let id = d
            .properties
            .message_id()
            .as_ref()
            .map(|m| m.as_str().to_owned())
            .filter(|m| !m.is_empty());
        let headers = headers_of(d.properties.headers().as_ref());
        let settle = Box::new(AmqpSettle {
            name: self.subscription.name.clone(),
            publisher: self.publisher.clone(),
            dead_letter: self.subscription.dead_letter.clone(),
            acker: d.acker,
        });
        Ok(Some(Received::new(
            id,
            self.queue.clone(),
            headers,
            d.data,
            settle,
        )))
    }

    fn prober(&self) -> Arc<dyn Prober> {
        Arc::clone(&self.prober) as Arc<dyn Prober>
    }
}

/// Probes an AMQP source: a passive `queue.declare` on a channel of its own (a refusal
/// closes the channel it came on), whose answer counts the messages ready in the queue.
#[derive(Debug)]
struct AmqpProber {
    name: String,
    queue: String,
    /// The source's connection, replaced when it connects again.
    connection: Mutex<Arc<Connection>>,
}

#[async_trait::async_trait]
impl Prober for AmqpProber {
    async fn backlog(&self) -> Result<Backlog, SourceError> {
        let fault =
            |what: &str, e: &dyn std::fmt::Display| SourceError::broker(&self.name, what, e);
        let connection = Arc::clone(&self.connection.lock().unwrap_or_else(|p| p.into_inner()));
        let channel = connection
            .create_channel()
            .await
            .map_err(|e| fault("opening a probe channel", &e))?;
        let declared = channel
            .queue_declare(
                self.queue.as_str().into(),
                QueueDeclareOptions {
                    passive: true,
                    ..Default::default()
                },
                FieldTable::default(),
            )
            .await
            .map_err(|e| fault(&format!("queue {}", self.queue), &e))?;
        // A failed close leaves a channel the connection closes in time; the answer stands.
        let _ = channel.close(200, "probe done".into()).await;
        Ok(Backlog {
            pending: Some(u64::from(declared.message_count())),
            unacknowledged: None,
        })
    }
}

struct AmqpSettle {
    name: String,
    publisher: Channel,
    dead_letter: Option<String>,
    acker: Acker,
}

#[async_trait::async_trait]
impl Settle for AmqpSettle {
    async fn ack(&self) -> Result<(), SourceError> {
        self.acker
            .ack(BasicAckOptions::default())
            .await
            .map(|_| ())
            .map_err(|e| SourceError::broker(&self.name, "acknowledging", e))
    }

    async fn dead_letter(
        &self,
        reason: &str,
        headers: &BTreeMap<String, String>,
        payload: &[u8],
    ) -> Result<(), SourceError> {
        let Some(queue) = &self.dead_letter else {
            tracing::warn!(subscription = %self.name, reason, "message refused; no dead letter");
            return Ok(());
        };
        let fault = |what: &str, e: &dyn std::fmt::Display| SourceError::Broker {
            subscription: self.name.clone(),
            problem: format!("{what} the dead letter {queue}: {e}"),
        };
        let mut table = FieldTable::default();
        for (k, v) in headers {
            table.insert(k.as_str().into(), AMQPValue::LongString(v.as_str().into()));
        }
        table.insert(REASON_HEADER.into(), AMQPValue::LongString(reason.into()));
        table.insert(
            SUBSCRIPTION_HEADER.into(),
            AMQPValue::LongString(self.name.as_str().into()),
        );
        let properties = BasicProperties::default()
            .with_delivery_mode(2)
            .with_headers(table);
        // Mandatory: a dead letter queue that does not exist is an error, not a silent drop.
        let confirm = self
            .publisher
            .basic_publish(
                ShortString::from(""),
                queue.as_str().into(),
                BasicPublishOptions {
                    mandatory: true,
                    immediate: false,
                },
                payload,
                properties,
            )
            .await
            .map_err(|e| fault("publishing to", &e))?
            .await
            .map_err(|e| fault("confirming", &e))?;
        match confirm {
            Confirmation::Ack(None) | Confirmation::NotRequested => Ok(()),
            Confirmation::Ack(Some(_)) => Err(fault("publishing to", &"no such queue")),
            Confirmation::Nack(_) => Err(fault("publishing to", &"the broker refused it")),
        }
    }
}
