//! The `nats` connector: a task publishes its input as JSON to a NATS subject, asks a service
//! for a reply, or publishes to a JetStream stream with an acknowledgement and deduplication.
//!
//! Instance keys (`[connectors.NAME]`, `kind = "nats"`):
//!
//! | key | meaning |
//! |---|---|
//! | `url` | Required. `nats://host:port`; several servers comma-separated (the client picks one and fails over). Credentials go in the keys below, never in the URL. |
//! | `token` / `token_env` | A token to authenticate with (or the environment variable holding it). |
//! | `user` + `password` / `password_env` | A user and password to authenticate with; exclusive with the token. |
//! | `pool.*` | The pool of clients (see the README): each client is one TCP connection. |
//!
//! Task settings:
//!
//! | setting | meaning |
//! |---|---|
//! | `subject` | Required. The subject; `{field}` is replaced by the top-level input field `field` (a string, number or boolean that is one token: no whitespace, `.`, `*` or `>`). |
//! | `mode` | `publish` (default): the call ends when the server has handled the message (a round trip after it on the same connection); the output is `{"subject"}`. `request`: request-reply within the call's timeout; a JSON object reply is the output as it is, other JSON is `{"reply": value}`, other text `{"body": text}`, an empty reply `{}`. `jetstream`: a JetStream publish, acknowledged by the stream; the output is `{"subject", "stream", "seq", "duplicate"}`. |
//!
//! Every message carries the header `Idempotency-Key: <key>`; a JetStream publish also carries
//! `Nats-Msg-Id: <key>`, so the stream drops a retried duplicate within its duplicate window (the
//! ack then says `duplicate: true`, with the sequence of the first). No responders, timeouts and
//! lost connections are retryable; an invalid subject, a message larger than the server takes and
//! a JetStream publish to a subject no stream captures are permanent.

use std::collections::BTreeMap;
use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::time::Duration;

use async_nats::client::RequestErrorKind;
use async_nats::jetstream::context::PublishErrorKind;
use async_nats::{ConnectOptions, HeaderMap, ServerAddr};
use async_trait::async_trait;
use deadpool::managed::{Manager, Metrics, RecycleError, RecycleResult};
use serde_json::{Value, json};

use crate::config::{ConfigError, InstanceConfig, Secret};
use crate::connector::{Binding, CallError, CallRequest, Connector, Probe};
use crate::pool::Pool;
use crate::settings::SettingsError;
use crate::topic::TopicTemplate;

/// The header that carries the idempotency key on every message.
const IDEMPOTENCY_KEY_HEADER: &str = "Idempotency-Key";
/// Characters a subject placeholder's value may not contain (with whitespace).
const SUBJECT_FORBIDDEN: &[char] = &['.', '*', '>'];

/// Where an instance's clients connect, and as whom.
#[derive(Clone, Debug)]
pub(crate) struct NatsEndpoint {
    instance: String,
    servers: Vec<ServerAddr>,
    auth: NatsAuth,
    connect_timeout: Duration,
}

#[derive(Clone, Debug)]
enum NatsAuth {
    None,
    Token(Secret),
    UserPassword(String, Secret),
}

impl NatsEndpoint {
    /// Reads the keys of a `kind = "nats"` table (`url`, `token`, `user`, `password`), refusing
    /// any other.
    pub(crate) fn from_config(config: &InstanceConfig) -> Result<NatsEndpoint, ConfigError> {
        let mut keys = config.keys();
        let url = keys.required("url")?;
        let token = keys.secret("token")?;
        let user = keys.string("user")?;
        let password = keys.secret("password")?;
        let auth = match (token, user, password) {
            (None, None, None) => NatsAuth::None,
            (Some(t), None, None) => NatsAuth::Token(t),
            (None, Some(u), Some(p)) => NatsAuth::UserPassword(u, p),
            (Some(_), _, _) => return Err(keys.fault("token", "conflicts with user and password")),
            (None, Some(_), None) => return Err(keys.fault("password", "missing (user is set)")),
            (None, None, Some(_)) => return Err(keys.fault("user", "missing (password is set)")),
        };
        let mut servers = Vec::new();
        for one in url.split(',').map(str::trim) {
            // A URL's user info would put a secret where errors and logs show it.
            if one.contains('@') {
                return Err(keys.fault(
                    "url",
                    "credentials in the URL are refused; use token or user and password",
                ));
            }
            let addr: ServerAddr = one.parse().map_err(|e| {
                keys.fault("url", format!("`{one}` is not a NATS server address: {e}"))
            })?;
            servers.push(addr);
        }
        keys.finish()?;
        Ok(NatsEndpoint {
            instance: config.name.clone(),
            servers,
            auth,
            connect_timeout: config.pool.acquire_timeout,
        })
    }

    /// Opens a client and waits for the server's INFO, at most the pool's acquire timeout. The
    /// client does not retry a first connection that fails, so a server that is down is said at
    /// once; once connected, it reconnects on its own.
    pub(crate) async fn connect(&self) -> Result<async_nats::Client, String> {
        self.connect_with(self.options()).await
    }

    /// Returns the options of a client of this instance (name, timeout, credentials), for a
    /// caller that adds its own (the intake's subscription buffer).
    pub(crate) fn options(&self) -> ConnectOptions {
        let options = ConnectOptions::new()
            .name(format!("knhk {}", self.instance))
            .connection_timeout(self.connect_timeout);
        match &self.auth {
            NatsAuth::None => options,
            NatsAuth::Token(t) => options.token(t.expose().to_owned()),
            NatsAuth::UserPassword(u, p) => {
                options.user_and_password(u.clone(), p.expose().to_owned())
            }
        }
    }

    /// Opens a client with `options` to the instance's servers.
    pub(crate) async fn connect_with(
        &self,
        options: ConnectOptions,
    ) -> Result<async_nats::Client, String> {
        options
            .connect(self.servers.as_slice())
            .await
            .map_err(|e| format!("nats: {e}"))
    }
}

/// A pooled client with its JetStream context.
#[derive(Debug)]
pub struct NatsConnection {
    client: async_nats::Client,
    jetstream: async_nats::jetstream::Context,
}

/// Opens clients for an instance's pool; a client that is not connected at checkout is dropped.
#[derive(Debug)]
pub struct NatsManager {
    endpoint: NatsEndpoint,
}

impl Manager for NatsManager {
    type Type = NatsConnection;
    type Error = String;

    async fn create(&self) -> Result<NatsConnection, String> {
        let client = self.endpoint.connect().await?;
        let jetstream = async_nats::jetstream::new(client.clone());
        Ok(NatsConnection { client, jetstream })
    }

    async fn recycle(&self, conn: &mut NatsConnection, _: &Metrics) -> RecycleResult<String> {
        match conn.client.connection_state() {
            async_nats::connection::State::Connected => Ok(()),
            other => Err(RecycleError::message(format!("client is {other:?}"))),
        }
    }
}

/// An instance of kind `nats`; see the module documentation for its keys and settings.
#[derive(Debug)]
pub struct NatsConnector {
    name: String,
    pool: Arc<Pool<NatsManager>>,
}

impl NatsConnector {
    /// Creates the instance a `kind = "nats"` table declares; no connection is opened yet.
    pub fn from_config(config: &InstanceConfig) -> Result<NatsConnector, ConfigError> {
        let endpoint = NatsEndpoint::from_config(config)?;
        let pool = Pool::new(&config.name, NatsManager { endpoint }, config.pool).map_err(|e| {
            ConfigError {
                instance: config.name.clone(),
                key: "pool".to_owned(),
                problem: e,
            }
        })?;
        Ok(NatsConnector {
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
impl Connector for NatsConnector {
    fn name(&self) -> &str {
        &self.name
    }

    fn kind(&self) -> &str {
        "nats"
    }

    fn prepare(
        &self,
        settings: &BTreeMap<String, String>,
    ) -> Result<Arc<dyn Binding>, SettingsError> {
        let mut subject = None;
        let mut mode = Mode::Publish;
        for (key, value) in settings {
            match key.as_str() {
                "subject" => {
                    let t = TopicTemplate::parse("subject", value, SUBJECT_FORBIDDEN)?;
                    check_subject(&t.sample("x"))?;
                    subject = Some(t);
                }
                "mode" => mode = Mode::parse(value)?,
                other => {
                    return Err(SettingsError::Unknown {
                        setting: other.to_owned(),
                    });
                }
            }
        }
        let subject = subject.ok_or_else(|| SettingsError::Missing {
            setting: "subject".to_owned(),
        })?;
        Ok(Arc::new(NatsBinding {
            pool: self.pool.clone(),
            subject,
            mode,
        }))
    }

    async fn probe(&self) -> Result<Probe, CallError> {
        let conn = self.pool.get().await?;
        // The registry bounds the probe; the round trip needs no bound of its own.
        confirm(&conn.client, Duration::from_secs(3600)).await?;
        let info = conn.client.server_info();
        Ok(Probe {
            detail: Some(format!("nats-server {}", info.version)),
        })
    }

    async fn close(&self) {
        self.pool.close();
    }

    fn pool(&self) -> Option<crate::pool::PoolStatus> {
        Some(self.pool.status())
    }
}

/// How a task's message goes out.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Mode {
    Publish,
    Request,
    JetStream,
}

impl Mode {
    fn parse(value: &str) -> Result<Mode, SettingsError> {
        match value {
            "publish" => Ok(Mode::Publish),
            "request" => Ok(Mode::Request),
            "jetstream" => Ok(Mode::JetStream),
            other => Err(SettingsError::NotOneOf {
                setting: "mode".to_owned(),
                allowed: vec!["publish".into(), "request".into(), "jetstream".into()],
                found: other.to_owned(),
            }),
        }
    }
}

/// Why a subject is refused.
#[derive(Debug, thiserror::Error)]
#[error(
    "`{0}` is not a subject to publish to (tokens separated by `.`, no whitespace, no `*` or `>`)"
)]
struct BadSubject(String);

/// Checks that a subject (with its placeholders filled) can be published to.
fn check_subject(subject: &str) -> Result<(), SettingsError> {
    let bad = subject.is_empty()
        || subject.split('.').any(|token| {
            token.is_empty()
                || token == "*"
                || token == ">"
                || token.chars().any(char::is_whitespace)
        });
    if bad {
        return Err(SettingsError::malformed(
            "subject",
            BadSubject(subject.to_owned()),
        ));
    }
    Ok(())
}

/// One task's NATS settings, with the instance's pool.
#[derive(Debug)]
struct NatsBinding {
    pool: Arc<Pool<NatsManager>>,
    subject: TopicTemplate,
    mode: Mode,
}

#[async_trait]
impl Binding for NatsBinding {
    async fn call(&self, req: CallRequest) -> Result<Value, CallError> {
        let subject = self.subject.render(&req.input)?;
        // Header values end at a line break; the client refuses one by panicking.
        if req.idempotency_key.contains(['\r', '\n']) {
            return Err(CallError::Permanent(
                "nats: the idempotency key contains a line break".to_owned(),
            ));
        }
        let body = serde_json::to_vec(&req.input)
            .map_err(|e| CallError::Permanent(format!("nats: the input is not JSON: {e}")))?;
        let mut headers = HeaderMap::new();
        headers.insert(IDEMPOTENCY_KEY_HEADER, req.idempotency_key.as_str());
        let mut conn = self.pool.get().await?;
        match self.mode {
            Mode::Publish => {
                let connects = conn.client.statistics().connects.load(Ordering::Relaxed);
                conn.client
                    .publish_with_headers(subject.clone(), headers, body.into())
                    .await
                    .map_err(|e| CallError::Retryable(format!("nats: publish: {e}")))?;
                confirm(&conn.client, req.timeout).await?;
                // A message written to a connection that broke is lost, while the request
                // after it may have gone out on the new one: only one connection proves it.
                if conn.client.statistics().connects.load(Ordering::Relaxed) != connects {
                    return Err(CallError::Retryable(
                        "nats: the connection was re-established during the publish".to_owned(),
                    ));
                }
                Ok(json!({ "subject": subject }))
            }
            Mode::Request => {
                let request = async_nats::Request::new()
                    .payload(body.into())
                    .headers(headers)
                    .timeout(Some(req.timeout));
                let reply =
                    conn.client
                        .send_request(subject, request)
                        .await
                        .map_err(|e| match e.kind() {
                            RequestErrorKind::TimedOut | RequestErrorKind::NoResponders => {
                                CallError::Retryable(format!("nats: request: {e}"))
                            }
                            RequestErrorKind::InvalidSubject
                            | RequestErrorKind::MaxPayloadExceeded => {
                                CallError::Permanent(format!("nats: request: {e}"))
                            }
                            _ => CallError::Retryable(format!("nats: request: {e}")),
                        })?;
                Ok(output_from_reply(&reply.payload))
            }
            Mode::JetStream => {
                conn.jetstream.set_timeout(req.timeout);
                let message = async_nats::jetstream::message::PublishMessage::build()
                    .payload(body.into())
                    .headers(headers)
                    .message_id(&req.idempotency_key);
                let ack = conn
                    .jetstream
                    .send_publish(subject.clone(), message)
                    .await
                    .map_err(jetstream_error)?
                    .await
                    .map_err(jetstream_error)?;
                Ok(json!({
                    "subject": subject,
                    "stream": ack.stream,
                    "seq": ack.sequence,
                    "duplicate": ack.duplicate,
                }))
            }
        }
    }
}

/// Waits until the server has handled what the client sent before: a request to a subject no
/// one listens on, which the server answers with "no responders" after the messages before it
/// (it handles a connection's messages in order). A flush alone only writes to the socket.
async fn confirm(client: &async_nats::Client, timeout: Duration) -> Result<(), CallError> {
    let probe = async_nats::Request::new().timeout(Some(timeout));
    match client.send_request(client.new_inbox(), probe).await {
        Ok(_) => Ok(()),
        Err(e) if matches!(e.kind(), RequestErrorKind::NoResponders) => Ok(()),
        Err(e) => Err(CallError::Retryable(format!(
            "nats: the server did not confirm the publish: {e}"
        ))),
    }
}

/// Sorts a JetStream publish error: no stream for the subject and oversized messages will not
/// change on a retry; the rest (timeouts, a lost connection) may.
fn jetstream_error(e: async_nats::jetstream::context::PublishError) -> CallError {
    let message = format!("nats: jetstream publish: {e}");
    match e.kind() {
        PublishErrorKind::StreamNotFound
        | PublishErrorKind::MaxPayloadExceeded
        | PublishErrorKind::WrongLastMessageId
        | PublishErrorKind::WrongLastSequence => CallError::Permanent(message),
        _ => CallError::Retryable(message),
    }
}

/// Makes a task output of a reply: a JSON object as it is, other JSON under `reply`, other text
/// under `body`, nothing as `{}`.
fn output_from_reply(payload: &[u8]) -> Value {
    if payload.is_empty() {
        return json!({});
    }
    match serde_json::from_slice::<Value>(payload) {
        Ok(Value::Object(o)) => Value::Object(o),
        Ok(other) => json!({ "reply": other }),
        Err(_) => json!({ "body": String::from_utf8_lossy(payload) }),
    }
}
