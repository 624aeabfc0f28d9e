//! The `postgres` connector: one parameterized statement per call, on a pooled connection of a
//! `[connectors.NAME]` instance, with the rows back as JSON.

mod params;
mod rows;

use std::collections::BTreeMap;
use std::sync::Arc;

use async_trait::async_trait;
use deadpool_postgres::{ClientWrapper, Manager, ManagerConfig, RecyclingMethod};
use futures_util::{StreamExt, pin_mut};
use serde_json::{Value, json};
use tokio_postgres::NoTls;
use tokio_postgres::error::SqlState;

use crate::args::ListExpr;
use crate::config::{ConfigError, InstanceConfig};
use crate::connector::{Binding, CallError, CallRequest, Connector, Probe};
use crate::pool::{Counted, Object, Pool};
use crate::settings::SettingsError;
use params::JsonParam;
use rows::row_json;

/// A `kind = "postgres"` instance: its pool of connections to one database.
#[derive(Debug)]
pub struct PostgresConnector {
    name: String,
    pool: Arc<Pool<Manager>>,
}

type Connection = Object<Counted<Manager>>;

impl PostgresConnector {
    /// Creates the instance a `[connectors.NAME]` table declares: `url` (required, a
    /// `postgres://` URL), `password` or `password_env` (instead of a password in the URL) and
    /// `pool.*`. No connection is opened until a call or a probe needs one.
    pub fn from_config(config: &InstanceConfig) -> Result<PostgresConnector, ConfigError> {
        let mut keys = config.keys();
        let url = keys.required("url")?;
        let password = keys.secret("password")?;
        keys.finish()?;
        let fault = |key: &str, problem: String| ConfigError {
            instance: config.name.clone(),
            key: key.to_owned(),
            problem,
        };
        if !(url.starts_with("postgres://") || url.starts_with("postgresql://")) {
            return Err(fault(
                "url",
                "must be a postgres:// or postgresql:// URL".to_owned(),
            ));
        }
        let mut pg: tokio_postgres::Config = url.parse().map_err(|e: tokio_postgres::Error| {
            // The parser's message may quote a part of the URL, which may hold the password.
            let message = match url.split_once('@') {
                Some(_) => "not a valid URL".to_owned(),
                None => format!("not a valid URL: {e}"),
            };
            fault("url", message)
        })?;
        if let Some(password) = password {
            if pg.get_password().is_some() {
                return Err(fault(
                    "password",
                    "the url has a password already".to_owned(),
                ));
            }
            pg.password(password.expose());
        }
        if pg.get_application_name().is_none() {
            pg.application_name(format!("knhk connector {}", config.name));
        }
        pg.connect_timeout(config.pool.acquire_timeout);
        let manager = Manager::from_config(
            pg,
            NoTls,
            ManagerConfig {
                // A statement on checkout: a connection the server closed is dropped and
                // replaced before a call uses it.
                recycling_method: RecyclingMethod::Verified,
            },
        );
        let pool = Pool::new(&config.name, manager, config.pool).map_err(|e| fault("pool", e))?;
        Ok(PostgresConnector {
            name: config.name.clone(),
            pool: Arc::new(pool),
        })
    }

    /// Returns the instance's pool (its status, for health and tests).
    pub fn pool(&self) -> &Pool<Manager> {
        &self.pool
    }
}

#[async_trait]
impl Connector for PostgresConnector {
    fn name(&self) -> &str {
        &self.name
    }

    fn kind(&self) -> &str {
        "postgres"
    }

    fn prepare(
        &self,
        settings: &BTreeMap<String, String>,
    ) -> Result<Arc<dyn Binding>, SettingsError> {
        let mut statement = None;
        let mut params = None;
        let mut idempotency_param = false;
        for (key, value) in settings {
            match key.as_str() {
                "statement" if value.trim().is_empty() => {
                    return Err(SettingsError::Empty {
                        setting: key.clone(),
                    });
                }
                "statement" => statement = Some(value.clone()),
                "params" => params = Some(ListExpr::compile("params", value)?),
                "idempotency_param" => {
                    idempotency_param = match value.as_str() {
                        "true" => true,
                        "false" => false,
                        other => {
                            return Err(SettingsError::NotOneOf {
                                setting: key.clone(),
                                allowed: vec!["true".to_owned(), "false".to_owned()],
                                found: other.to_owned(),
                            });
                        }
                    }
                }
                _ => {
                    return Err(SettingsError::Unknown {
                        setting: key.clone(),
                    });
                }
            }
        }
        let statement = statement.ok_or_else(|| SettingsError::Missing {
            setting: "statement".to_owned(),
        })?;
        Ok(Arc::new(PostgresBinding {
            instance: self.name.clone(),
            pool: self.pool.clone(),
            statement,
            params,
            idempotency_param,
        }))
    }

    async fn probe(&self) -> Result<Probe, CallError> {
        let conn = self.pool.get().await?;
        let row = conn
            .query_one("SELECT current_setting('server_version')", &[])
            .await
            .map_err(|e| classify(&self.name, &e))?;
        let version: String = row.try_get(0).map_err(|e| classify(&self.name, &e))?;
        Ok(Probe {
            detail: Some(format!("PostgreSQL {version}")),
        })
    }

    async fn close(&self) {
        self.pool.close();
    }

    fn pool(&self) -> Option<crate::pool::PoolStatus> {
        Some(self.pool.status())
    }
}

/// One task's statement and parameters, with the instance's pool.
#[derive(Debug)]
struct PostgresBinding {
    instance: String,
    pool: Arc<Pool<Manager>>,
    statement: String,
    params: Option<ListExpr>,
    idempotency_param: bool,
}

#[async_trait]
impl Binding for PostgresBinding {
    async fn call(&self, req: CallRequest) -> Result<Value, CallError> {
        let mut values = match &self.params {
            Some(params) => params.eval(&req.input)?,
            None => Vec::new(),
        };
        if self.idempotency_param {
            values.push(Value::String(req.idempotency_key.clone()));
        }
        let mut guard = InFlight {
            conn: Some(self.pool.get().await?),
        };
        let conn = guard.conn()?;
        let result = self.run(conn, &values).await;
        // Only a call that ran to its end gives its connection back: one dropped mid-statement
        // (a timeout) leaves `guard` to cancel the statement and close the connection.
        guard.finish();
        result
    }
}

impl PostgresBinding {
    async fn run(&self, conn: &ClientWrapper, values: &[Value]) -> Result<Value, CallError> {
        let fail = |e: tokio_postgres::Error| classify(&self.instance, &e);
        let statement = conn.prepare_cached(&self.statement).await.map_err(fail)?;
        let expected = statement.params().len();
        if expected != values.len() {
            return Err(CallError::Permanent(format!(
                "postgres {}: the statement takes {expected} parameters, the call gives {}{}",
                self.instance,
                values.len(),
                if self.idempotency_param {
                    " (the idempotency key the last of them)"
                } else {
                    ""
                },
            )));
        }
        let params = values.iter().map(JsonParam);
        let stream = conn.query_raw(&statement, params).await.map_err(fail)?;
        pin_mut!(stream);
        let mut rows = Vec::new();
        while let Some(row) = stream.next().await {
            let row = row.map_err(fail)?;
            rows.push(row_json(&row).map_err(fail)?);
        }
        let row_count = stream.rows_affected().unwrap_or(rows.len() as u64);
        Ok(json!({ "rows": rows, "row_count": row_count }))
    }
}

/// A connection checked out for one call. Dropped before [`InFlight::finish`] (the call's
/// future abandoned on a timeout), it takes the connection out of the pool and cancels the
/// statement on the server, so that no later call waits behind it.
struct InFlight {
    conn: Option<Connection>,
}

impl InFlight {
    fn conn(&mut self) -> Result<&ClientWrapper, CallError> {
        self.conn
            .as_deref()
            .ok_or_else(|| CallError::Retryable("postgres: no connection".to_owned()))
    }

    fn finish(mut self) {
        // Back to the pool, which validates it on the next checkout.
        self.conn.take();
    }
}

impl Drop for InFlight {
    fn drop(&mut self) {
        let Some(conn) = self.conn.take() else {
            return;
        };
        let client = Object::take(conn);
        let cancel = client.cancel_token();
        if let Ok(runtime) = tokio::runtime::Handle::try_current() {
            runtime.spawn(async move {
                // Best effort: the connection is closed anyway when `client` drops.
                let _ = cancel.cancel_query(NoTls).await;
                drop(client);
            });
        }
    }
}

/// Types an error: what another attempt may get past (the connection, a serialization failure,
/// a deadlock, a shutdown, too many connections) is retryable; what the statement or its data
/// cause (syntax, constraints, conversions) is permanent. The message never holds the URL.
fn classify(instance: &str, e: &tokio_postgres::Error) -> CallError {
    let Some(db) = e.as_db_error() else {
        let message = format!("postgres {instance}: {}", error_chain(e));
        // Without a server's answer: the connection broke, or a value did not convert.
        return if e.is_closed() || io_cause(e) {
            CallError::Retryable(message)
        } else {
            CallError::Permanent(message)
        };
    };
    let code = db.code();
    let mut message = format!(
        "postgres {instance}: {} {}: {}",
        db.severity(),
        code.code(),
        db.message()
    );
    if let Some(constraint) = db.constraint() {
        message.push_str(&format!(" (constraint {constraint})"));
    }
    let retryable = code.code().starts_with("08")
        || [
            SqlState::T_R_SERIALIZATION_FAILURE,
            SqlState::T_R_DEADLOCK_DETECTED,
            SqlState::ADMIN_SHUTDOWN,
            SqlState::CRASH_SHUTDOWN,
            SqlState::CANNOT_CONNECT_NOW,
            SqlState::TOO_MANY_CONNECTIONS,
            SqlState::LOCK_NOT_AVAILABLE,
            SqlState::QUERY_CANCELED,
        ]
        .contains(code);
    if retryable {
        CallError::Retryable(message)
    } else {
        CallError::Permanent(message)
    }
}

/// Tells whether an I/O error lies under `e`.
fn io_cause(e: &tokio_postgres::Error) -> bool {
    let mut source = std::error::Error::source(e);
    while let Some(s) = source {
        if s.is::<std::io::Error>() {
            return true;
        }
        source = s.source();
    }
    false
}

/// Renders an error with its causes.
fn error_chain(e: &dyn std::error::Error) -> String {
    let mut text = e.to_string();
    let mut source = e.source();
    while let Some(s) = source {
        let s_text = s.to_string();
        if !text.contains(&s_text) {
            text.push_str(": ");
            text.push_str(&s_text);
        }
        source = s.source();
    }
    text
}
