//! The `amqp` connector: a task publishes its input as JSON to a RabbitMQ exchange (AMQP 0-9-1)
//! with publisher confirms, the idempotency key as the message id.
//!
//! Instance keys (`[connectors.NAME]`, `kind = "amqp"`):
//!
//! | key | meaning |
//! |---|---|
//! | `url` | Required. `amqp://user:pass@host:5672/%2f` (the vhost percent-encoded; `%2f` is `/`). |
//! | `password` / `password_env` | The password (or the environment variable holding it), replacing the URL's. |
//! | `pool.*` | The pool of connections (see the README). |
//!
//! Task settings:
//!
//! | setting | meaning |
//! |---|---|
//! | `exchange` | The exchange; empty or absent for the default exchange (which routes by queue name). |
//! | `routing_key` | Required. The routing key; `{field}` is replaced by the top-level input field `field` (one token: no whitespace, `.`, `*` or `#`). |
//! | `persistent` | `true` (default): delivery mode 2, the broker writes the message to disk in durable queues; `false`: delivery mode 1. |
//! | `mandatory` | `false` (default); `true`: a message that no queue takes is returned, and the call fails. |
//!
//! The message has `content_type: application/json`, `message_id: <idempotency key>` (the same on
//! every attempt, so that consumers can drop a retried duplicate) and the header
//! `Idempotency-Key`. The call ends when the broker confirms the message; the output is
//! `{"exchange", "routing_key"}`.
//!
//! Errors: a lost connection, a timeout and a nack (the broker could not take the message now:
//! a full queue with `reject-publish`, a resource alarm) are retryable; an exchange that does not
//! exist, refused access and a returned mandatory message (no queue is bound for the routing key:
//! the topology, not the moment, is at fault) are permanent.
//!
//! Each pooled connection carries one channel in confirm mode. A checkout is exclusive, so the
//! confirm a call awaits is its own, and a call costs no channel open and `confirm.select`
//! round trips; a channel closed by the broker (after an error) fails validation, and the
//! connection is replaced.

use std::collections::BTreeMap;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};

use async_trait::async_trait;
use deadpool::managed::{Manager, Metrics, RecycleError, RecycleResult};
use lapin::options::{BasicPublishOptions, ConfirmSelectOptions};
use lapin::types::{AMQPValue, FieldTable, ShortString};
use lapin::uri::AMQPUri;
use lapin::{BasicProperties, Confirmation, ConnectionProperties, ErrorKind};
use serde_json::{Value, json};

use crate::config::{ConfigError, InstanceConfig};
use crate::connector::{Binding, CallError, CallRequest, Connector, Probe};
use crate::pool::Pool;
use crate::settings::SettingsError;
use crate::topic::TopicTemplate;

/// Characters a routing key placeholder's value may not contain (with whitespace).
const ROUTING_KEY_FORBIDDEN: &[char] = &['.', '*', '#'];

/// Where an instance's connections go, and as whom.
#[derive(Clone)]
pub(crate) struct AmqpEndpoint {
    instance: String,
    /// The URI with the password; never printed.
    uri: AMQPUri,
    /// Opened connections, numbered in their names.
    opened: Arc<AtomicU64>,
}

impl std::fmt::Debug for AmqpEndpoint {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("AmqpEndpoint")
            .field("instance", &self.instance)
            .field("host", &self.uri.authority.host)
            .field("port", &self.uri.authority.port)
            .field("vhost", &self.uri.vhost)
            .field("user", &self.uri.authority.userinfo.username)
            .finish_non_exhaustive()
    }
}

impl AmqpEndpoint {
    /// Reads the keys of a `kind = "amqp"` table (`url`, `password`), refusing any other.
    pub(crate) fn from_config(config: &InstanceConfig) -> Result<AmqpEndpoint, ConfigError> {
        let mut keys = config.keys();
        let url = keys.required("url")?;
        let password = keys.secret("password")?;
        // The parser's message could quote the URL, and with it a password: say only what is
        // expected.
        let mut uri: AMQPUri = url.parse().map_err(|_| {
            keys.fault(
                "url",
                "not an AMQP URI (amqp://user:pass@host:5672/%2f, the vhost percent-encoded)",
            )
        })?;
        if let Some(p) = password {
            uri.authority.userinfo.password = p.expose().to_owned();
        }
        keys.finish()?;
        Ok(AmqpEndpoint {
            instance: config.name.clone(),
            uri,
            opened: Arc::default(),
        })
    }

    /// Opens a connection named `knhk <instance> #<n>` (as the broker's connection list shows
    /// it). Errors name the host, never the password.
    pub(crate) async fn connect(&self) -> Result<lapin::Connection, String> {
        let n = self.opened.fetch_add(1, Ordering::Relaxed) + 1;
        let properties = ConnectionProperties::default()
            .with_connection_name(format!("knhk {} #{n}", self.instance).into());
        lapin::Connection::connect_uri(self.uri.clone(), properties)
            .await
            .map_err(|e| {
                format!(
                    "amqp {}:{}: {e}",
                    self.uri.authority.host, self.uri.authority.port
                )
            })
    }
}

/// A pooled connection with its channel in confirm mode.
#[derive(Debug)]
pub struct AmqpConnection {
    connection: lapin::Connection,
    channel: lapin::Channel,
}

/// Opens connections for an instance's pool; one whose connection or channel is no longer open
/// at checkout is dropped.
#[derive(Debug)]
pub struct AmqpManager {
    endpoint: AmqpEndpoint,
}

impl Manager for AmqpManager {
    type Type = AmqpConnection;
    type Error = String;

    async fn create(&self) -> Result<AmqpConnection, String> {
        let connection = self.endpoint.connect().await?;
        let channel = connection
            .create_channel()
            .await
            .map_err(|e| format!("amqp: channel.open: {e}"))?;
        channel
            .confirm_select(ConfirmSelectOptions::default())
            .await
            .map_err(|e| format!("amqp: confirm.select: {e}"))?;
        Ok(AmqpConnection {
            connection,
            channel,
        })
    }

    async fn recycle(&self, conn: &mut AmqpConnection, _: &Metrics) -> RecycleResult<String> {
        if !conn.connection.status().connected() {
            return Err(RecycleError::message("connection closed"));
        }
        if !conn.channel.status().connected() {
            return Err(RecycleError::message("channel closed"));
        }
        Ok(())
    }
}

/// An instance of kind `amqp`; see the module documentation for its keys and settings.
#[derive(Debug)]
pub struct AmqpConnector {
    name: String,
    pool: Arc<Pool<AmqpManager>>,
}

impl AmqpConnector {
    /// Creates the instance a `kind = "amqp"` table declares; no connection is opened yet.
    pub fn from_config(config: &InstanceConfig) -> Result<AmqpConnector, ConfigError> {
        let endpoint = AmqpEndpoint::from_config(config)?;
        let pool = Pool::new(&config.name, AmqpManager { endpoint }, config.pool).map_err(|e| {
            ConfigError {
                instance: config.name.clone(),
                key: "pool".to_owned(),
                problem: e,
            }
        })?;
        Ok(AmqpConnector {
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
impl Connector for AmqpConnector {
    fn name(&self) -> &str {
        &self.name
    }

    fn kind(&self) -> &str {
        "amqp"
    }

    fn prepare(
        &self,
        settings: &BTreeMap<String, String>,
    ) -> Result<Arc<dyn Binding>, SettingsError> {
        let mut exchange = String::new();
        let mut routing_key = None;
        let mut persistent = true;
        let mut mandatory = false;
        for (key, value) in settings {
            match key.as_str() {
                "exchange" => exchange = value.clone(),
                "routing_key" => {
                    routing_key = Some(TopicTemplate::parse(
                        "routing_key",
                        value,
                        ROUTING_KEY_FORBIDDEN,
                    )?);
                }
                "persistent" => persistent = boolean(key, value)?,
                "mandatory" => mandatory = boolean(key, value)?,
                other => {
                    return Err(SettingsError::Unknown {
                        setting: other.to_owned(),
                    });
                }
            }
        }
        let routing_key = routing_key.ok_or_else(|| SettingsError::Missing {
            setting: "routing_key".to_owned(),
        })?;
        // AMQP short strings carry at most 255 bytes.
        if exchange.len() > 255 {
            return Err(SettingsError::malformed(
                "exchange",
                "longer than 255 bytes".to_owned(),
            ));
        }
        Ok(Arc::new(AmqpBinding {
            pool: self.pool.clone(),
            exchange,
            routing_key,
            persistent,
            mandatory,
        }))
    }

    async fn probe(&self) -> Result<Probe, CallError> {
        let conn = self.pool.get().await?;
        // Opening and closing a second channel is a round trip the broker must answer.
        let channel = conn
            .connection
            .create_channel()
            .await
            .map_err(|e| amqp_error("channel.open", &e))?;
        channel
            .close(200, "probe".into())
            .await
            .map_err(|e| amqp_error("channel.close", &e))?;
        Ok(Probe::default())
    }

    async fn close(&self) {
        self.pool.close();
    }

    fn pool(&self) -> Option<crate::pool::PoolStatus> {
        Some(self.pool.status())
    }
}

fn boolean(setting: &str, value: &str) -> Result<bool, SettingsError> {
    match value {
        "true" => Ok(true),
        "false" => Ok(false),
        other => Err(SettingsError::NotOneOf {
            setting: setting.to_owned(),
            allowed: vec!["true".into(), "false".into()],
            found: other.to_owned(),
        }),
    }
}

/// One task's AMQP settings, with the instance's pool.
#[derive(Debug)]
struct AmqpBinding {
    pool: Arc<Pool<AmqpManager>>,
    exchange: String,
    routing_key: TopicTemplate,
    persistent: bool,
    mandatory: bool,
}

#[async_trait]
impl Binding for AmqpBinding {
    async fn call(&self, req: CallRequest) -> Result<Value, CallError> {
        let routing_key = self.routing_key.render(&req.input)?;
        if routing_key.len() > 255 || req.idempotency_key.len() > 255 {
            return Err(CallError::Permanent(
                "amqp: the routing key and the message id take at most 255 bytes".to_owned(),
            ));
        }
        let body = serde_json::to_vec(&req.input)
            .map_err(|e| CallError::Permanent(format!("amqp: the input is not JSON: {e}")))?;
        let mut headers = FieldTable::default();
        headers.insert(
            "Idempotency-Key".into(),
            AMQPValue::LongString(req.idempotency_key.as_str().into()),
        );
        let properties = BasicProperties::default()
            .with_content_type("application/json".into())
            .with_message_id(ShortString::from(req.idempotency_key.as_str()))
            .with_delivery_mode(if self.persistent { 2 } else { 1 })
            .with_headers(headers);
        let options = BasicPublishOptions {
            mandatory: self.mandatory,
            immediate: false,
        };
        let conn = self.pool.get().await?;
        let confirm = conn
            .channel
            .basic_publish(
                self.exchange.as_str().into(),
                routing_key.as_str().into(),
                options,
                &body,
                properties,
            )
            .await
            .map_err(|e| amqp_error("basic.publish", &e))?
            .await
            .map_err(|e| amqp_error("confirm", &e))?;
        match confirm {
            Confirmation::Ack(None) | Confirmation::NotRequested => {
                Ok(json!({ "exchange": self.exchange, "routing_key": routing_key }))
            }
            Confirmation::Ack(Some(returned)) => Err(CallError::Permanent(format!(
                "amqp: the broker returned the message: {} {} (no queue is bound to exchange `{}` \
                 for routing key `{routing_key}`)",
                returned.reply_code, returned.reply_text, self.exchange
            ))),
            Confirmation::Nack(_) => Err(CallError::Retryable(
                "amqp: the broker refused the message (nack)".to_owned(),
            )),
        }
    }
}

/// Sorts a lapin error: a channel-level refusal from the broker (no such exchange, access
/// refused, a precondition) is permanent; transport errors, a closed connection and
/// connection-level errors are retryable.
fn amqp_error(what: &str, e: &lapin::Error) -> CallError {
    let message = format!("amqp: {what}: {e}");
    match e.kind() {
        ErrorKind::ProtocolError(_) if e.is_amqp_soft_error() => CallError::Permanent(message),
        _ => CallError::Retryable(message),
    }
}
