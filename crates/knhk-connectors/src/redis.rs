//! The `redis` connector: one command per call (`command` with `args`), or an append to a stream
//! deduplicated by the call's idempotency key (`stream`), on a pooled connection.

mod action;
mod reply;

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::Duration;

use async_trait::async_trait;
use redis::aio::MultiplexedConnection;
use redis::{
    AsyncConnectionConfig, Client, ErrorKind, IntoConnectionInfo, RedisError, ServerErrorKind,
    Value as Reply,
};
use serde_json::{Value, json};

use crate::config::{ConfigError, InstanceConfig};
use crate::connector::{Binding, CallError, CallRequest, Connector, Probe};
use crate::pool::{Counted, Object, Pool};
use crate::settings::SettingsError;
use action::Action;
use reply::{arg_text, reply_json};

/// The field of a stream entry that carries the call's idempotency key.
const KEY_FIELD: &str = "idempotency_key";

/// Appends the entry once per marker key: the marker holds the entry's id for `ttl` seconds,
/// and a call that finds it answers with that id instead of appending again. A script runs
/// atomically, so two attempts of one call racing each other append once.
const APPEND_ONCE: &str = r"
local existing = redis.call('GET', KEYS[2])
if existing then return {existing, 1} end
local maxlen = tonumber(ARGV[2])
local id
if maxlen > 0 then
  id = redis.call('XADD', KEYS[1], 'MAXLEN', maxlen, '*', unpack(ARGV, 3))
else
  id = redis.call('XADD', KEYS[1], '*', unpack(ARGV, 3))
end
redis.call('SET', KEYS[2], id, 'EX', tonumber(ARGV[1]))
return {id, 0}
";

/// A `kind = "redis"` instance: its pool of connections to one server and database.
#[derive(Debug)]
pub struct RedisConnector {
    name: String,
    pool: Arc<Pool<RedisServer>>,
}

/// Opens connections to one server and validates them with `PING` on checkout.
#[derive(Debug)]
pub struct RedisServer {
    client: Client,
    connect_timeout: Duration,
    /// The name each connection gives itself (`CLIENT SETNAME`), so that `CLIENT LIST` shows
    /// whose it is: `knhk-INSTANCE`.
    client_name: String,
}

impl deadpool::managed::Manager for RedisServer {
    type Type = MultiplexedConnection;
    type Error = RedisError;

    async fn create(&self) -> Result<MultiplexedConnection, RedisError> {
        let config = AsyncConnectionConfig::new()
            .set_connection_timeout(Some(self.connect_timeout))
            // The registry bounds each attempt; a connection-wide bound would only cut long
            // commands short.
            .set_response_timeout(None);
        let mut conn = self
            .client
            .get_multiplexed_async_connection_with_config(&config)
            .await?;
        redis::cmd("CLIENT")
            .arg("SETNAME")
            .arg(&self.client_name)
            .exec_async(&mut conn)
            .await?;
        Ok(conn)
    }

    async fn recycle(
        &self,
        conn: &mut MultiplexedConnection,
        _: &deadpool::managed::Metrics,
    ) -> deadpool::managed::RecycleResult<RedisError> {
        let pong: String = redis::cmd("PING").query_async(conn).await?;
        if pong == "PONG" {
            Ok(())
        } else {
            Err(deadpool::managed::RecycleError::message(format!(
                "PING answered {pong}"
            )))
        }
    }
}

impl RedisConnector {
    /// Creates the instance a `[connectors.NAME]` table declares: `url` (required,
    /// `redis://host:port/db`), `password` or `password_env` (instead of a password in the
    /// URL), `pool.*`. No connection is opened until a call or a probe needs one.
    pub fn from_config(config: &InstanceConfig) -> Result<RedisConnector, ConfigError> {
        let mut keys = config.keys();
        let url = keys.required("url")?;
        let password = keys.secret("password")?;
        keys.finish()?;
        let fault = |key: &str, problem: String| ConfigError {
            instance: config.name.clone(),
            key: key.to_owned(),
            problem,
        };
        if !url.starts_with("redis://") {
            return Err(fault("url", "must be a redis:// URL".to_owned()));
        }
        // The parser's message may quote the URL, which may hold the password: it is not shown.
        let mut info = url
            .as_str()
            .into_connection_info()
            .map_err(|_| fault("url", "not a valid redis:// URL".to_owned()))?;
        if let Some(password) = password {
            if info.redis_settings().password().is_some() {
                return Err(fault(
                    "password",
                    "the url has a password already".to_owned(),
                ));
            }
            let settings = info
                .redis_settings()
                .clone()
                .set_password(password.expose());
            info = info.set_redis_settings(settings);
        }
        let client = Client::open(info).map_err(|e| fault("url", e.to_string()))?;
        let server = RedisServer {
            client,
            connect_timeout: config.pool.acquire_timeout,
            client_name: format!("knhk-{}", config.name),
        };
        let pool = Pool::new(&config.name, server, config.pool).map_err(|e| fault("pool", e))?;
        Ok(RedisConnector {
            name: config.name.clone(),
            pool: Arc::new(pool),
        })
    }

    /// Returns the instance's pool (its status, for health and tests).
    pub fn pool(&self) -> &Pool<RedisServer> {
        &self.pool
    }
}

#[async_trait]
impl Connector for RedisConnector {
    fn name(&self) -> &str {
        &self.name
    }

    fn kind(&self) -> &str {
        "redis"
    }

    fn prepare(
        &self,
        settings: &BTreeMap<String, String>,
    ) -> Result<Arc<dyn Binding>, SettingsError> {
        let action = Action::parse(settings)?;
        Ok(Arc::new(RedisBinding {
            instance: self.name.clone(),
            pool: self.pool.clone(),
            action,
        }))
    }

    async fn probe(&self) -> Result<Probe, CallError> {
        let mut conn = self.pool.get().await?;
        let info: String = redis::cmd("INFO")
            .arg("server")
            .query_async(&mut *conn)
            .await
            .map_err(|e| classify(&self.name, &e))?;
        let version = info
            .lines()
            .find_map(|l| l.strip_prefix("redis_version:"))
            .map(|v| format!("Redis {}", v.trim()));
        Ok(Probe { detail: version })
    }

    async fn close(&self) {
        self.pool.close();
    }

    fn pool(&self) -> Option<crate::pool::PoolStatus> {
        Some(self.pool.status())
    }
}
/// One task's command or stream, with the instance's pool.
#[derive(Debug)]
struct RedisBinding {
    instance: String,
    pool: Arc<Pool<RedisServer>>,
    action: Action,
}

#[async_trait]
impl Binding for RedisBinding {
    async fn call(&self, req: CallRequest) -> Result<Value, CallError> {
        let fail = |e: RedisError| classify(&self.instance, &e);
        match &self.action {
            Action::Command { words, args } => {
                let values = match args {
                    Some(args) => {
                        args.eval_with(&req.input, &[(KEY_FIELD, &req.idempotency_key)])?
                    }
                    None => Vec::new(),
                };
                let mut cmd = redis::Cmd::new();
                for word in words {
                    cmd.arg(word);
                }
                for (i, value) in values.iter().enumerate() {
                    cmd.arg(arg_text(value).ok_or_else(|| {
                        CallError::Permanent(format!(
                            "redis {}: args item {} is null, which Redis cannot take",
                            self.instance,
                            i + 1
                        ))
                    })?);
                }
                let mut guard = InFlight(Some(self.pool.get().await?));
                let reply: Result<Reply, RedisError> = match guard.0.as_deref_mut() {
                    Some(conn) => cmd.query_async(conn).await,
                    None => return Err(CallError::Retryable("redis: no connection".to_owned())),
                };
                guard.finish();
                Ok(json!({ "reply": reply_json(reply.map_err(fail)?)? }))
            }
            Action::Append {
                stream,
                maxlen,
                dedup_ttl_s,
            } => {
                let Value::Object(fields) = &req.input else {
                    return Err(CallError::Permanent(format!(
                        "redis {}: a stream entry is made of the input's fields; the input is \
                         not an object",
                        self.instance
                    )));
                };
                if fields.contains_key(KEY_FIELD) {
                    return Err(CallError::Permanent(format!(
                        "redis {}: the input has a field `{KEY_FIELD}`, which the connector \
                         sets itself",
                        self.instance
                    )));
                }
                let script = redis::Script::new(APPEND_ONCE);
                let mut invocation = script.prepare_invoke();
                invocation
                    .key(stream)
                    .key(format!("{stream}:knhk-dedup:{}", req.idempotency_key))
                    .arg(dedup_ttl_s)
                    .arg(maxlen)
                    .arg(KEY_FIELD)
                    .arg(&req.idempotency_key);
                for (name, value) in fields {
                    // A null field is sent as the JSON text `null`, as other non-strings are.
                    let text = arg_text(value).unwrap_or_else(|| "null".to_owned());
                    invocation.arg(name).arg(text);
                }
                let mut guard = InFlight(Some(self.pool.get().await?));
                let appended: Result<(String, i64), RedisError> = match guard.0.as_deref_mut() {
                    Some(conn) => invocation.invoke_async(conn).await,
                    None => return Err(CallError::Retryable("redis: no connection".to_owned())),
                };
                guard.finish();
                let (id, duplicate) = appended.map_err(fail)?;
                Ok(json!({ "id": id, "duplicate": duplicate == 1 }))
            }
        }
    }
}

/// A connection checked out for one call. Dropped before [`InFlight::finish`] (the call's
/// future abandoned on a timeout), it takes the connection out of the pool and closes it: a
/// command still running there (`WAIT`) would hold up the next call's checkout.
struct InFlight(Option<Object<Counted<RedisServer>>>);

impl InFlight {
    fn finish(mut self) {
        // Back to the pool, which pings it on the next checkout.
        self.0.take();
    }
}

impl Drop for InFlight {
    fn drop(&mut self) {
        if let Some(conn) = self.0.take() {
            drop(Object::take(conn));
        }
    }
}
/// Types an error: the connection (I/O, a dropped connection, a timeout) and a server that is
/// loading, read-only or asks to try again are retryable; a command the server refuses
/// (`WRONGTYPE`, a syntax error) is permanent.
fn classify(instance: &str, e: &RedisError) -> CallError {
    let message = format!("redis {instance}: {e}");
    let retryable = e.is_io_error()
        || e.is_connection_dropped()
        || e.is_connection_refusal()
        || e.is_timeout()
        || matches!(
            e.kind(),
            ErrorKind::Server(
                ServerErrorKind::BusyLoading
                    | ServerErrorKind::TryAgain
                    | ServerErrorKind::MasterDown
                    | ServerErrorKind::ClusterDown
                    | ServerErrorKind::ReadOnly
            )
        );
    if retryable {
        CallError::Retryable(message)
    } else {
        CallError::Permanent(message)
    }
}
