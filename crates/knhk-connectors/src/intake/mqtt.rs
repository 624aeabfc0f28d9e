//! The MQTT source: a topic (filter) subscribed at QoS 1 in a persistent MQTT 5 session with
//! manual acknowledgement, so that a message not acknowledged before the source goes is
//! delivered again when the subscription connects again.
//!
//! The session's client id is fixed by the subscription's name (`PREFIX-in-NAME`), and the
//! broker keeps the session for [`SESSION_EXPIRY_SECS`] after a disconnect. At most
//! `prefetch` messages are unacknowledged at once: it is the connection's receive maximum,
//! which the broker honours, and the capacity of the channel between the event loop and the
//! source.

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::Duration;

use rumqttc::v5::mqttbytes::QoS;
use rumqttc::v5::mqttbytes::v5::{Packet, Publish, PublishProperties, SubscribeReasonCode};
use rumqttc::v5::{AsyncClient, Event, EventLoop};
use tokio::sync::mpsc;
use tokio::task::JoinHandle;

use super::{Backlog, Prober, REASON_HEADER, Received, SUBSCRIPTION_HEADER, Settle, SourceError};
use crate::intake::config::{SourceSpec, Subscription};
use crate::mqtt::MqttEndpoint;

/// How long the broker keeps a subscription's session (and its unacknowledged messages)
/// after the connection goes: one day.
pub const SESSION_EXPIRY_SECS: u32 = 86_400;
/// The user properties that name a message, in the order they are looked for.
pub const ID_PROPERTIES: [&str; 2] = ["Idempotency-Key", "Message-Id"];
/// How long the event loop waits before it reconnects after a connection error.
const RECONNECT_DELAY: Duration = Duration::from_millis(500);

/// A subscription's MQTT topic source.
pub struct MqttSource {
    name: String,
    client: AsyncClient,
    received: mpsc::Receiver<Publish>,
    dead_letter: Option<String>,
    prober: Arc<MqttProber>,
    driver: JoinHandle<()>,
}

impl std::fmt::Debug for MqttSource {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("MqttSource")
            .field("subscription", &self.name)
            .finish_non_exhaustive()
    }
}

impl Drop for MqttSource {
    fn drop(&mut self) {
        // The connection goes with its event loop; the broker keeps the session.
        self.driver.abort();
    }
}

/// Makes the fixed client id of a subscription's session from its name: characters other
/// than letters, digits, `-` and `_` become `_`.
fn session_id(prefix: &str, subscription: &str) -> String {
    let name: String = subscription
        .chars()
        .map(|c| {
            if c.is_ascii_alphanumeric() || c == '-' || c == '_' {
                c
            } else {
                '_'
            }
        })
        .collect();
    format!("{prefix}-in-{name}")
}

impl MqttSource {
    /// Connects in the subscription's persistent session (its fixed client id, no clean
    /// start), subscribes to the topic at QoS 1 and runs the event loop in a task.
    pub(crate) async fn open(
        subscription: &Subscription,
        endpoint: &MqttEndpoint,
    ) -> Result<MqttSource, SourceError> {
        let SourceSpec::Topic { topic } = &subscription.source else {
            return Err(SourceError::Unsupported {
                subscription: subscription.name.clone(),
                problem: format!("MQTT cannot read {}", subscription.source.describe()),
            });
        };
        let broker = |what: &str, e: &dyn std::fmt::Display| SourceError::Broker {
            subscription: subscription.name.clone(),
            problem: format!("{what}: {e}"),
        };
        let prefetch = u16::try_from(subscription.prefetch).unwrap_or(u16::MAX);
        let mut options =
            endpoint.options(session_id(endpoint.client_id_prefix(), &subscription.name));
        options.set_clean_start(false);
        options.set_session_expiry_interval(Some(SESSION_EXPIRY_SECS));
        options.set_receive_maximum(Some(prefetch));
        options.set_manual_acks(true);
        let (client, mut events) = endpoint
            .connect_with(options, usize::from(prefetch).max(16))
            .await
            .map_err(|e| broker("connecting to MQTT", &e))?;
        client
            .subscribe(topic.clone(), QoS::AtLeastOnce)
            .await
            .map_err(|e| broker(&format!("subscribing to {topic}"), &e))?;
        let (tx, received) = mpsc::channel(usize::from(prefetch).max(1));
        // Waits for the SUBACK, so that a message published once `open` returns is received.
        // The session's unacknowledged messages may come first: at most the receive maximum,
        // which the channel holds.
        let subscribed = async {
            loop {
                match events.poll().await {
                    Ok(Event::Incoming(Packet::SubAck(ack))) => {
                        return match ack.return_codes.first() {
                            Some(SubscribeReasonCode::Success(_)) => Ok(()),
                            other => Err(format!("the broker refused it: {other:?}")),
                        };
                    }
                    Ok(Event::Incoming(Packet::Publish(p))) => {
                        if tx.try_send(p).is_err() {
                            return Err("more messages than the receive maximum".to_owned());
                        }
                    }
                    Ok(_) => {}
                    Err(e) => return Err(e.to_string()),
                }
            }
        };
        tokio::time::timeout(endpoint.connect_timeout(), subscribed)
            .await
            .map_err(|_| broker(&format!("subscribing to {topic}"), &"no SUBACK in time"))?
            .map_err(|e| broker(&format!("subscribing to {topic}"), &e))?;
        let driver = tokio::spawn(drive(
            subscription.name.clone(),
            topic.clone(),
            client.clone(),
            events,
            tx,
        ));
        Ok(MqttSource {
            name: subscription.name.clone(),
            client,
            received,
            dead_letter: subscription.dead_letter.clone(),
            prober: Arc::new(MqttProber {
                name: subscription.name.clone(),
                endpoint: endpoint.clone(),
            }),
            driver,
        })
    }
}

/// Runs the event loop: hands on each message received, subscribes again on each CONNACK
/// (a session the broker no longer had has no subscription), and reconnects after an error.
/// Ends when the source is dropped.
async fn drive(
    name: String,
    topic: String,
    client: AsyncClient,
    mut events: EventLoop,
    tx: mpsc::Sender<Publish>,
) {
    loop {
        match events.poll().await {
            Ok(Event::Incoming(Packet::Publish(p))) => {
                if tx.send(p).await.is_err() {
                    return;
                }
            }
            Ok(Event::Incoming(Packet::ConnAck(ack))) if !ack.session_present => {
                if let Err(e) = client.try_subscribe(topic.clone(), QoS::AtLeastOnce) {
                    tracing::warn!(subscription = %name, error = %e, "mqtt: subscribing again");
                }
            }
            Ok(_) => {}
            Err(e) => {
                if tx.is_closed() {
                    return;
                }
                tracing::warn!(subscription = %name, error = %e, "mqtt: connection lost; reconnecting");
                tokio::time::sleep(RECONNECT_DELAY).await;
            }
        }
    }
}

fn headers_of(properties: Option<&PublishProperties>) -> BTreeMap<String, String> {
    properties
        .map(|p| p.user_properties.iter().cloned().collect())
        .unwrap_or_default()
}

#[async_trait::async_trait]
impl super::Source for MqttSource {
    async fn next(&mut self) -> Result<Option<Received>, SourceError> {
        let Some(publish) = self.received.recv().await else {
            return Ok(None);
        };
        let headers = headers_of(publish.properties.as_ref());
        let id = ID_PROPERTIES
            .iter()
            .find_map(|k| headers.get(*k))
            .filter(|v| !v.is_empty())
            .cloned();
        let address = String::from_utf8_lossy(&publish.topic).into_owned();
        let payload = publish.payload.to_vec();
        let settle = Box::new(MqttSettle {
            name: self.name.clone(),
            client: self.client.clone(),
            dead_letter: self.dead_letter.clone(),
            publish,
        });
        Ok(Some(Received::new(id, address, headers, payload, settle)))
    }

    fn prober(&self) -> Arc<dyn Prober> {
        Arc::clone(&self.prober) as Arc<dyn Prober>
    }
}

/// Probes an MQTT source: a connection of its own up to the broker's CONNACK. MQTT does not
/// tell a backlog.
#[derive(Debug)]
struct MqttProber {
    name: String,
    endpoint: MqttEndpoint,
}

#[async_trait::async_trait]
impl Prober for MqttProber {
    async fn backlog(&self) -> Result<Backlog, SourceError> {
        let (client, mut events) = self
            .endpoint
            .connect(self.endpoint.client_id())
            .await
            .map_err(|problem| SourceError::Broker {
                subscription: self.name.clone(),
                problem: format!("probing: {problem}"),
            })?;
        // A clean DISCONNECT, best effort: the answer is the CONNACK already seen.
        if client.try_disconnect().is_ok() {
            let _ = tokio::time::timeout(Duration::from_secs(1), events.poll()).await;
        }
        Ok(Backlog::default())
    }
}

struct MqttSettle {
    name: String,
    client: AsyncClient,
    dead_letter: Option<String>,
    publish: Publish,
}

#[async_trait::async_trait]
impl Settle for MqttSettle {
    async fn ack(&self) -> Result<(), SourceError> {
        self.client
            .ack(&self.publish)
            .await
            .map_err(|e| SourceError::broker(&self.name, "acknowledging", e))
    }

    /// Publishes the copy at QoS 1 on the session's connection, ahead of the original's
    /// PUBACK: the session resends it after a reconnect until the broker acknowledges it.
    async fn dead_letter(
        &self,
        reason: &str,
        headers: &BTreeMap<String, String>,
        payload: &[u8],
    ) -> Result<(), SourceError> {
        let Some(topic) = &self.dead_letter else {
            tracing::warn!(subscription = %self.name, reason, "message refused; no dead letter");
            return Ok(());
        };
        let mut user_properties: Vec<(String, String)> = headers
            .iter()
            .map(|(k, v)| (k.clone(), v.clone()))
            .collect();
        user_properties.push((REASON_HEADER.to_owned(), reason.to_owned()));
        user_properties.push((SUBSCRIPTION_HEADER.to_owned(), self.name.clone()));
        let properties = PublishProperties {
            user_properties,
            ..Default::default()
        };
        self.client
            .publish_with_properties(
                topic.clone(),
                QoS::AtLeastOnce,
                false,
                payload.to_vec(),
                properties,
            )
            .await
            .map_err(|e| SourceError::Broker {
                subscription: self.name.clone(),
                problem: format!("publishing to the dead letter {topic}: {e}"),
            })
    }
}
