//! NATS sources: a core subject (optionally in a queue group) and a JetStream durable pull
//! consumer with explicit acknowledgement and at most `prefetch` messages unacknowledged.

use std::collections::BTreeMap;
use std::sync::Arc;

use async_nats::jetstream::consumer::{AckPolicy, PullConsumer, pull};
use async_nats::jetstream::message::Acker;
use async_nats::{Client, HeaderMap};
use futures_util::StreamExt;

use super::{Backlog, Prober, REASON_HEADER, Received, SUBSCRIPTION_HEADER, Settle, SourceError};
use crate::intake::config::{SourceSpec, Subscription};

/// The header by which a NATS publisher names its message (JetStream deduplicates by it).
const MSG_ID: &str = "Nats-Msg-Id";

/// A subscription's NATS source.
pub struct NatsSource {
    name: String,
    client: Client,
    dead_letter: Option<String>,
    inner: Inner,
    prober: Arc<NatsProber>,
}

enum Inner {
    Core(async_nats::Subscriber),
    // Boxed: the pull stream is large, and a source holds one variant.
    JetStream(Box<async_nats::jetstream::consumer::pull::Stream>),
}

impl std::fmt::Debug for NatsSource {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("NatsSource")
            .field("subscription", &self.name)
            .finish_non_exhaustive()
    }
}

impl NatsSource {
    /// Connects to the instance's servers and subscribes as `subscription` says. The client's buffer of
    /// received messages holds `prefetch` (core NATS drops past it, and says so as a slow
    /// consumer); a JetStream consumer has at most `prefetch` messages unacknowledged.
    pub(crate) async fn open(
        subscription: &Subscription,
        endpoint: &crate::nats::NatsEndpoint,
    ) -> Result<NatsSource, SourceError> {
        let broker = |what: &str, e: &dyn std::fmt::Display| SourceError::Broker {
            subscription: subscription.name.clone(),
            problem: format!("{what}: {e}"),
        };
        let prefetch = subscription.prefetch as usize;
        let client = endpoint
            .connect_with(endpoint.options().subscription_capacity(prefetch.max(1)))
            .await
            .map_err(|e| broker("connecting to NATS", &e))?;
        let mut probed = None;
        let inner = match &subscription.source {
            SourceSpec::NatsSubject {
                subject,
                queue_group,
            } => {
                let sub = match queue_group {
                    Some(group) => client.queue_subscribe(subject.clone(), group.clone()).await,
                    None => client.subscribe(subject.clone()).await,
                };
                Inner::Core(sub.map_err(|e| broker("subscribing", &e))?)
            }
            SourceSpec::JetStream { stream, consumer } => {
                let js = async_nats::jetstream::new(client.clone());
                let stream = js
                    .get_stream(stream)
                    .await
                    .map_err(|e| broker(&format!("JetStream stream {stream}"), &e))?;
                let consumer: PullConsumer = stream
                    .get_or_create_consumer(
                        consumer,
                        pull::Config {
                            durable_name: Some(consumer.clone()),
                            ack_policy: AckPolicy::Explicit,
                            max_ack_pending: prefetch as i64,
                            ..Default::default()
                        },
                    )
                    .await
                    .map_err(|e| broker(&format!("JetStream consumer {consumer}"), &e))?;
                let messages = consumer
                    .stream()
                    .max_messages_per_batch(prefetch.max(1))
                    .messages()
                    .await
                    .map_err(|e| broker("pulling from the consumer", &e))?;
                probed = Some(Box::new(consumer));
                Inner::JetStream(Box::new(messages))
            }
            other => {
                return Err(SourceError::Unsupported {
                    subscription: subscription.name.clone(),
                    problem: format!("NATS cannot read {}", other.describe()),
                });
            }
        };
        Ok(NatsSource {
            name: subscription.name.clone(),
            prober: Arc::new(NatsProber {
                name: subscription.name.clone(),
                client: client.clone(),
                consumer: probed,
            }),
            client,
            dead_letter: subscription.dead_letter.clone(),
            inner,
        })
    }

    fn settle(&self, acker: Option<Acker>) -> Box<dyn Settle> {
        Box::new(NatsSettle {
            name: self.name.clone(),
            client: self.client.clone(),
            dead_letter: self.dead_letter.clone(),
            acker,
        })
    }
}

fn headers_of(headers: Option<&HeaderMap>) -> BTreeMap<String, String> {
    let mut out = BTreeMap::new();
    if let Some(h) = headers {
        for (name, values) in h.iter() {
            if let Some(v) = values.first() {
                out.insert(name.to_string(), v.as_str().to_owned());
            }
        }
    }
    out
}

#[async_trait::async_trait]
impl super::Source for NatsSource {
    async fn next(&mut self) -> Result<Option<Received>, SourceError> {
        match &mut self.inner {
            Inner::Core(sub) => {
                let Some(m) = sub.next().await else {
                    return Ok(None);
                };
                let headers = headers_of(m.headers.as_ref());
                let id = headers.get(MSG_ID).cloned();
                let settle = self.settle(None);
                Ok(Some(Received::new(
                    id,
                    m.subject.to_string(),
                    headers,
                    m.payload.to_vec(),
                    settle,
                )))
            }
            Inner::JetStream(messages) => {
                let Some(m) = messages.next().await else {
                    return Ok(None);
                };
                let m = m.map_err(|e| SourceError::broker(&self.name, "receiving", e))?;
                let sequence = m
                    .info()
                    .map(|i| format!("{}:{}", i.stream, i.stream_sequence))
                    .ok();
                let (m, acker) = m.split();
                let headers = headers_of(m.headers.as_ref());
                let id = headers.get(MSG_ID).cloned().or(sequence);
                let settle = self.settle(Some(acker));
                Ok(Some(Received::new(
                    id,
                    m.subject.to_string(),
                    headers,
                    m.payload.to_vec(),
                    settle,
                )))
            }
        }
    }

    fn prober(&self) -> Arc<dyn Prober> {
        Arc::clone(&self.prober) as Arc<dyn Prober>
    }
}

/// Probes a NATS source: a flush on a core subject (core NATS keeps no backlog), the
/// consumer's info on JetStream.
#[derive(Debug)]
struct NatsProber {
    name: String,
    client: Client,
    consumer: Option<Box<PullConsumer>>,
}

#[async_trait::async_trait]
impl Prober for NatsProber {
    async fn backlog(&self) -> Result<Backlog, SourceError> {
        let fault =
            |what: &str, e: &dyn std::fmt::Display| SourceError::broker(&self.name, what, e);
        let Some(consumer) = &self.consumer else {
            self.client
                .flush()
                .await
                .map_err(|e| fault("probing", &e))?;
            return Ok(Backlog::default());
        };
        let info = consumer
            .get_info()
            .await
            .map_err(|e| fault("consumer info", &e))?;
        Ok(Backlog {
            pending: Some(info.num_pending),
            unacknowledged: Some(info.num_ack_pending as u64),
        })
    }
}

struct NatsSettle {
    name: String,
    client: Client,
    dead_letter: Option<String>,
    /// The JetStream message's acknowledgement; `None` for core NATS (nothing to ack).
    acker: Option<Acker>,
}

#[async_trait::async_trait]
impl Settle for NatsSettle {
    async fn ack(&self) -> Result<(), SourceError> {
        let Some(acker) = &self.acker else {
            return Ok(());
        };
        // Double ack: the call returns once the server has recorded the ack, so that the
        // message is not redelivered after we report it settled.
        acker
            .double_ack()
            .await
            .map_err(|e| SourceError::broker(&self.name, "acknowledging", e))
    }

    async fn dead_letter(
        &self,
        reason: &str,
        headers: &BTreeMap<String, String>,
        payload: &[u8],
    ) -> Result<(), SourceError> {
        let Some(subject) = &self.dead_letter else {
            tracing::warn!(subscription = %self.name, reason, "message refused; no dead letter");
            return Ok(());
        };
        let mut h = HeaderMap::new();
        for (k, v) in headers {
            h.insert(k.as_str(), v.as_str());
        }
        h.insert(REASON_HEADER, reason);
        h.insert(SUBSCRIPTION_HEADER, self.name.as_str());
        self.client
            .publish_with_headers(subject.clone(), h, payload.to_vec().into())
            .await
            .map_err(|e| SourceError::Broker {
                subscription: self.name.clone(),
                problem: format!("publishing to the dead letter {subject}: {e}"),
            })?;
        self.client.flush().await.map_err(|e| SourceError::Broker {
            subscription: self.name.clone(),
            problem: format!("flushing the dead letter {subject}: {e}"),
        })
    }
}
