//! The `mqtt` connector: a task publishes its input as JSON to an MQTT topic (MQTT 5), at QoS 1
//! by default, and its call ends when the broker acknowledges the message.
//!
//! Instance keys (`[connectors.NAME]`, `kind = "mqtt"`):
//!
//! | key | meaning |
//! |---|---|
//! | `host` | Required. The broker's host name or address. |
//! | `port` | The broker's port; default 1883. |
//! | `user` + `password` / `password_env` | Credentials, if the broker asks for them. |
//! | `client_id_prefix` | The start of each connection's client id (`PREFIX-<process>-<n>`); default `knhk`. |
//! | `pool.*` | The pool of connections (see the README). |
//!
//! Task settings:
//!
//! | setting | meaning |
//! |---|---|
//! | `topic` | Required. The topic; `{field}` is replaced by the top-level input field `field` (one level: no whitespace, `/`, `+` or `#`). |
//! | `qos` | `1` (default): the call ends at the broker's PUBACK. `2`: at its PUBCOMP. `0`: once the message is written to the connection (no acknowledgement). |
//! | `retain` | `false` (default); `true`: the broker keeps the message for later subscribers. |
//!
//! The connector speaks MQTT 5: the idempotency key travels as the user property
//! `Idempotency-Key` (the same on every attempt), the payload is the input as JSON with the content
//! type `application/json`. The output is `{"topic"}`. A lost connection and a timeout are
//! retryable, as are the broker's `quota exceeded` and `unspecified error` answers; its other
//! refusals (not authorized, topic name invalid, payload format invalid) are permanent.
//!
//! Each pooled connection runs its own event loop in a task; a checkout is exclusive, so a
//! connection has at most one publish in flight, and the acknowledgement a call awaits is the
//! one for the packet id of its own publish. A connection whose event loop failed is dropped at
//! checkout and replaced.

use std::collections::BTreeMap;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use async_trait::async_trait;
use deadpool::managed::{Manager, Metrics, RecycleError, RecycleResult};
use rumqttc::Outgoing;
use rumqttc::v5::mqttbytes::QoS;
use rumqttc::v5::mqttbytes::v5::{Packet, PubAckReason, PubRecReason, PublishProperties};
use rumqttc::v5::{AsyncClient, Event, EventLoop, MqttOptions};
use serde_json::{Value, json};
use tokio::sync::mpsc;
use tokio::task::JoinHandle;

use crate::config::{ConfigError, InstanceConfig, Secret};
use crate::connector::{Binding, CallError, CallRequest, Connector, Probe};
use crate::pool::Pool;
use crate::settings::SettingsError;
use crate::topic::TopicTemplate;

/// Characters a topic placeholder's value may not contain (with whitespace).
const TOPIC_FORBIDDEN: &[char] = &['/', '+', '#'];
/// Requests a client may queue before its event loop takes them.
const REQUEST_CAPACITY: usize = 16;

/// Client ids made by this process, for unique ids.
static CLIENT_IDS: AtomicU64 = AtomicU64::new(0);

/// Where an instance's connections go, and as whom.
#[derive(Clone, Debug)]
pub(crate) struct MqttEndpoint {
    host: String,
    port: u16,
    credentials: Option<(String, Option<Secret>)>,
    client_id_prefix: String,
    connect_timeout: Duration,
}

impl MqttEndpoint {
    /// Reads the keys of a `kind = "mqtt"` table, refusing any other.
    pub(crate) fn from_config(config: &InstanceConfig) -> Result<MqttEndpoint, ConfigError> {
        let mut keys = config.keys();
        let host = keys.required("host")?;
        let port = match keys.number("port")? {
            None => 1883,
            Some(p) => u16::try_from(p)
                .ok()
                .filter(|p| *p > 0)
                .ok_or_else(|| keys.fault("port", "must be between 1 and 65535"))?,
        };
        let user = keys.string("user")?;
        let password = keys.secret("password")?;
        let credentials = match (user, password) {
            (None, None) => None,
            (Some(u), Some(p)) => Some((u, Some(p))),
            (Some(u), None) => Some((u, None)),
            (None, Some(_)) => return Err(keys.fault("user", "missing (password is set)")),
        };
        let client_id_prefix = keys
            .string("client_id_prefix")?
            .unwrap_or_else(|| "knhk".to_owned());
        keys.finish()?;
        Ok(MqttEndpoint {
            host,
            port,
            credentials,
            client_id_prefix,
            connect_timeout: config.pool.acquire_timeout,
        })
    }

    /// Returns a client id no other connection of this process has, and unlikely in another:
    /// the broker drops the older of two connections with one id.
    pub(crate) fn client_id(&self) -> String {
        let n = CLIENT_IDS.fetch_add(1, Ordering::Relaxed);
        let started = SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .map(|d| d.subsec_nanos())
            .unwrap_or_default();
        format!(
            "{}-{:x}{:x}-{n}",
            self.client_id_prefix,
            std::process::id(),
            started
        )
    }

    /// Opens a connection with a clean start and polls its event loop until the broker's
    /// CONNACK, at most the pool's acquire timeout. The caller drives the event loop afterwards.
    pub(crate) async fn connect(
        &self,
        client_id: String,
    ) -> Result<(AsyncClient, EventLoop), String> {
        let options = self.options(client_id);
        self.connect_with(options, REQUEST_CAPACITY).await
    }

    /// Returns the options of a connection as `client_id` with a clean start: the broker,
    /// the credentials, the keep-alive and the connect timeout.
    pub(crate) fn options(&self, client_id: String) -> MqttOptions {
        let mut options = MqttOptions::new(client_id, self.host.clone(), self.port);
        options.set_clean_start(true);
        options.set_keep_alive(Duration::from_secs(30));
        options.set_connection_timeout(self.connect_timeout.as_secs().max(1));
        if let Some((user, password)) = &self.credentials {
            let password = password.as_ref().map(Secret::expose).unwrap_or_default();
            options.set_credentials(user.clone(), password.to_owned());
        }
        options
    }

    /// Returns how long a connection may take to be acknowledged (the pool's acquire timeout).
    pub(crate) fn connect_timeout(&self) -> std::time::Duration {
        self.connect_timeout
    }

    /// Returns the start of the client ids of this instance's connections.
    pub(crate) fn client_id_prefix(&self) -> &str {
        &self.client_id_prefix
    }

    /// Opens a connection with `options` (a client queueing at most `capacity` requests) and
    /// polls its event loop until the broker's CONNACK, at most the pool's acquire timeout.
    pub(crate) async fn connect_with(
        &self,
        options: MqttOptions,
        capacity: usize,
    ) -> Result<(AsyncClient, EventLoop), String> {
        let (client, mut events) = AsyncClient::new(options, capacity);
        let at = format!("mqtt {}:{}", self.host, self.port);
        let connack = async {
            loop {
                match events.poll().await {
                    Ok(Event::Incoming(Packet::ConnAck(_))) => return Ok(()),
                    Ok(_) => {}
                    Err(e) => return Err(format!("{at}: {e}")),
                }
            }
        };
        match tokio::time::timeout(self.connect_timeout, connack).await {
            Ok(Ok(())) => Ok((client, events)),
            Ok(Err(e)) => Err(e),
            Err(_) => Err(format!(
                "{at}: no CONNACK within {:?}",
                self.connect_timeout
            )),
        }
    }
}

/// What a connection's event loop reports to the call that holds it.
#[derive(Debug)]
enum Report {
    /// A publish went out with this packet id (0 at QoS 0).
    Sent(u16),
    /// The broker acknowledged packet id (PUBACK at QoS 1, PUBCOMP at QoS 2), or refused it.
    Acked(u16, Result<(), CallError>),
    /// The event loop failed; the connection is gone.
    Lost(String),
}

/// A pooled connection: a client, and the task that runs its event loop.
#[derive(Debug)]
pub struct MqttConnection {
    client: AsyncClient,
    reports: mpsc::UnboundedReceiver<Report>,
    alive: Arc<AtomicBool>,
    driver: JoinHandle<()>,
}

impl Drop for MqttConnection {
    fn drop(&mut self) {
        // Ending the event loop closes the socket; the broker forgets the clean session.
        self.driver.abort();
    }
}

/// Runs a connection's event loop, reporting what a publishing call waits for, until it fails.
/// It does not reconnect: the pool replaces a lost connection.
async fn drive(
    mut events: EventLoop,
    reports: mpsc::UnboundedSender<Report>,
    alive: Arc<AtomicBool>,
) {
    loop {
        let report = match events.poll().await {
            Ok(Event::Outgoing(Outgoing::Publish(pkid))) => Report::Sent(pkid),
            Ok(Event::Incoming(Packet::PubAck(ack))) => Report::Acked(ack.pkid, puback(ack.reason)),
            Ok(Event::Incoming(Packet::PubRec(rec)))
                if rec.reason != PubRecReason::Success
                    && rec.reason != PubRecReason::NoMatchingSubscribers =>
            {
                Report::Acked(
                    rec.pkid,
                    refusal(
                        &format!("{:?}", rec.reason),
                        rec.reason == PubRecReason::QuotaExceeded
                            || rec.reason == PubRecReason::UnspecifiedError,
                    ),
                )
            }
            Ok(Event::Incoming(Packet::PubComp(comp))) => Report::Acked(comp.pkid, Ok(())),
            Ok(Event::Incoming(Packet::Disconnect(d))) => {
                alive.store(false, Ordering::Release);
                let _ = reports.send(Report::Lost(format!(
                    "the broker disconnected: {:?}",
                    d.reason_code
                )));
                return;
            }
            Ok(_) => continue,
            Err(e) => {
                alive.store(false, Ordering::Release);
                let _ = reports.send(Report::Lost(e.to_string()));
                return;
            }
        };
        if reports.send(report).is_err() {
            return;
        }
    }
}

/// Sorts a PUBACK's reason code.
fn puback(reason: PubAckReason) -> Result<(), CallError> {
    match reason {
        PubAckReason::Success | PubAckReason::NoMatchingSubscribers => Ok(()),
        PubAckReason::QuotaExceeded | PubAckReason::UnspecifiedError => {
            refusal(&format!("{reason:?}"), true)
        }
        other => refusal(&format!("{other:?}"), false),
    }
}

fn refusal(reason: &str, retryable: bool) -> Result<(), CallError> {
    let message = format!("mqtt: the broker refused the message: {reason}");
    Err(if retryable {
        CallError::Retryable(message)
    } else {
        CallError::Permanent(message)
    })
}

/// Opens connections for an instance's pool; one whose event loop has failed is dropped at
/// checkout.
#[derive(Debug)]
pub struct MqttManager {
    endpoint: MqttEndpoint,
}

impl Manager for MqttManager {
    type Type = MqttConnection;
    type Error = String;

    async fn create(&self) -> Result<MqttConnection, String> {
        let (client, events) = self.endpoint.connect(self.endpoint.client_id()).await?;
        let (tx, reports) = mpsc::unbounded_channel();
        let alive = Arc::new(AtomicBool::new(true));
        let driver = tokio::spawn(drive(events, tx, alive.clone()));
        Ok(MqttConnection {
            client,
            reports,
            alive,
            driver,
        })
    }

    async fn recycle(&self, conn: &mut MqttConnection, _: &Metrics) -> RecycleResult<String> {
        if conn.alive.load(Ordering::Acquire) && !conn.driver.is_finished() {
            Ok(())
        } else {
            Err(RecycleError::message("connection lost"))
        }
    }
}

/// An instance of kind `mqtt`; see the module documentation for its keys and settings.
#[derive(Debug)]
pub struct MqttConnector {
    name: String,
    pool: Arc<Pool<MqttManager>>,
}

impl MqttConnector {
    /// Creates the instance a `kind = "mqtt"` table declares; no connection is opened yet.
    pub fn from_config(config: &InstanceConfig) -> Result<MqttConnector, ConfigError> {
        let endpoint = MqttEndpoint::from_config(config)?;
        let pool = Pool::new(&config.name, MqttManager { endpoint }, config.pool).map_err(|e| {
            ConfigError {
                instance: config.name.clone(),
                key: "pool".to_owned(),
                problem: e,
            }
        })?;
        Ok(MqttConnector {
            name: config.name.clone(),
            pool: Arc::new(pool),
        })
    }

    /// Returns what the instance's pool holds now.
    pub fn pool_status(&self) -> crate::PoolStatus {
        self.pool.status()
    }
}

#[async_trait]
impl Connector for MqttConnector {
    fn name(&self) -> &str {
        &self.name
    }

    fn kind(&self) -> &str {
        "mqtt"
    }

    fn prepare(
        &self,
        settings: &BTreeMap<String, String>,
    ) -> Result<Arc<dyn Binding>, SettingsError> {
        let mut topic = None;
        let mut qos = QoS::AtLeastOnce;
        let mut retain = false;
        for (key, value) in settings {
            match key.as_str() {
                "topic" => {
                    let t = TopicTemplate::parse("topic", value, TOPIC_FORBIDDEN)?;
                    if t.sample("x").contains(['+', '#', '\0']) {
                        return Err(SettingsError::malformed(
                            "topic",
                            "a topic to publish to has no wildcard (`+`, `#`)".to_owned(),
                        ));
                    }
                    topic = Some(t);
                }
                "qos" => {
                    qos = match value.as_str() {
                        "0" => QoS::AtMostOnce,
                        "1" => QoS::AtLeastOnce,
                        "2" => QoS::ExactlyOnce,
                        other => {
                            return Err(SettingsError::NotOneOf {
                                setting: "qos".to_owned(),
                                allowed: vec!["0".into(), "1".into(), "2".into()],
                                found: other.to_owned(),
                            });
                        }
                    };
                }
                "retain" => {
                    retain = match value.as_str() {
                        "true" => true,
                        "false" => false,
                        other => {
                            return Err(SettingsError::NotOneOf {
                                setting: "retain".to_owned(),
                                allowed: vec!["true".into(), "false".into()],
                                found: other.to_owned(),
                            });
                        }
                    };
                }
                other => {
                    return Err(SettingsError::Unknown {
                        setting: other.to_owned(),
                    });
                }
            }
        }
        let topic = topic.ok_or_else(|| SettingsError::Missing {
            setting: "topic".to_owned(),
        })?;
        Ok(Arc::new(MqttBinding {
            pool: self.pool.clone(),
            topic,
            qos,
            retain,
        }))
    }

    async fn probe(&self) -> Result<Probe, CallError> {
        // A new connection, so that the probe sees the broker accept one now.
        let endpoint = &self.pool.manager().endpoint;
        let (client, mut events) = endpoint
            .connect(endpoint.client_id())
            .await
            .map_err(CallError::Retryable)?;
        // The DISCONNECT goes out on the next poll; a broker that is gone by then changes
        // nothing the probe found.
        if client.disconnect().await.is_ok() {
            let _ = tokio::time::timeout(Duration::from_secs(1), events.poll()).await;
        }
        Ok(Probe::default())
    }

    async fn close(&self) {
        self.pool.close();
    }

    fn pool(&self) -> Option<crate::pool::PoolStatus> {
        Some(self.pool.status())
    }
}

/// One task's MQTT settings, with the instance's pool.
#[derive(Debug)]
struct MqttBinding {
    pool: Arc<Pool<MqttManager>>,
    topic: TopicTemplate,
    qos: QoS,
    retain: bool,
}

#[async_trait]
impl Binding for MqttBinding {
    async fn call(&self, req: CallRequest) -> Result<Value, CallError> {
        let topic = self.topic.render(&req.input)?;
        let body = serde_json::to_vec(&req.input)
            .map_err(|e| CallError::Permanent(format!("mqtt: the input is not JSON: {e}")))?;
        let properties = PublishProperties {
            content_type: Some("application/json".to_owned()),
            user_properties: vec![("Idempotency-Key".to_owned(), req.idempotency_key.clone())],
            ..PublishProperties::default()
        };
        let mut conn = self.pool.get().await?;
        // A call dropped before its acknowledgement (the registry's timeout) would leave reports
        // that the next call could take for its own: the connection is then retired.
        let in_flight = InFlight {
            alive: conn.alive.clone(),
            done: false,
        };
        conn.client
            .publish_with_properties(topic.clone(), self.qos, self.retain, body, properties)
            .await
            .map_err(|e| CallError::Retryable(format!("mqtt: publish: {e}")))?;
        let mut sent = None;
        loop {
            let report = conn.reports.recv().await.ok_or_else(|| {
                CallError::Retryable("mqtt: the connection's event loop ended".to_owned())
            })?;
            match (report, sent) {
                (Report::Lost(e), _) => {
                    return Err(CallError::Retryable(format!("mqtt: connection lost: {e}")));
                }
                (Report::Sent(pkid), None) => {
                    if self.qos == QoS::AtMostOnce {
                        break;
                    }
                    sent = Some(pkid);
                }
                (Report::Acked(pkid, verdict), Some(ours)) if pkid == ours => {
                    // The exchange is over either way: the connection can serve the next call.
                    in_flight.finish();
                    verdict?;
                    return Ok(json!({ "topic": topic }));
                }
                // An acknowledgement of an earlier call's publish, or a publish before ours.
                _ => {}
            }
        }
        in_flight.finish();
        Ok(json!({ "topic": topic }))
    }
}

/// Marks a connection lost when a call leaves it without having seen its publish through.
struct InFlight {
    alive: Arc<AtomicBool>,
    done: bool,
}

impl InFlight {
    fn finish(mut self) {
        self.done = true;
    }
}

impl Drop for InFlight {
    fn drop(&mut self) {
        if !self.done {
            self.alive.store(false, Ordering::Release);
        }
    }
}
