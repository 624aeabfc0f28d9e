//! Connectors perform automated tasks: a task names a connector and its settings in the workflow
//! definition, and the runtime calls it with the task's input data and an idempotency key.
//!
//! - [`Connector`] is the trait one kind of connector implements: it checks its settings once at load
//!   time (a [`SettingsError`] names the setting at fault) and performs one attempt of a call, reporting a [`CallError`] that says whether another
//!   attempt is worth it ([`CallError::Retryable`]) or not ([`CallError::Permanent`]).
//! - [`Registry`] holds the connectors by name and runs a call to its end: a timeout per attempt,
//!   retries with exponential backoff and jitter on retryable errors (see [`RetryPolicy`]; the
//!   runtime builds one per call), and the same idempotency key on every attempt. Each connector has a circuit
//!   breaker ([`BreakerPolicy`]): after repeated retryable failures its attempts fail at once for a
//!   cooldown, then one trial call decides whether it closes again.
//! - [`HttpConnector`] (name `http`) is the built-in connector.
//! - [`KafkaConnector`] (kind `kafka`) produces records with rskafka, and
//!   [`SalesforceConnector`] (kind `salesforce`) calls the Salesforce REST API; the README
//!   documents their keys and settings.
//! - [`NatsConnector`], [`AmqpConnector`] and [`MqttConnector`] publish a task's input to a
//!   message broker (kinds `nats`, `amqp`, `mqtt`); their modules document their keys and
//!   settings.
//! - Named instances come from the config file's `[connectors.NAME]` tables
//!   ([`InstanceConfig`], built by [`kinds::build`]); each owns a [`Pool`] of connections.
//!   [`PostgresConnector`] (`kind = "postgres"`: a parameterized statement per call, rows as
//!   JSON) and [`RedisConnector`] (`kind = "redis"`: a command, or a stream append deduplicated
//!   by the idempotency key) are two of them; the README documents their keys and settings.
//!
//! # The `http` connector
//!
//! | setting | meaning |
//! |---|---|
//! | `url` | Required. A URL template: `{name}` is replaced by the top-level input field `name` (a string, number or boolean, percent-encoded), `{idempotency_key}` by the call's idempotency key (even if the input has a field of that name). A placeholder that the input does not have fails the call permanently. |
//! | `method` | `GET`, `POST`, `PUT`, `PATCH` or `DELETE`; default `POST`. |
//! | `header.<Name>` | Sends the header `<Name>` with this value; any number of them. |
//! | `bearer_token` | Sends `Authorization: Bearer <value>`. |
//! | `bearer_token_env` | Sends `Authorization: Bearer <token>` with the token read from this environment variable at call time; an unset variable fails the call permanently. Exclusive with `bearer_token`. |
//! | `body` | `input` sends the whole input as a JSON body, `none` sends no body; default `input` except for `GET`. |
//!
//! Every request carries `Idempotency-Key: <key>` (the same on every attempt), so the server can
//! recognize a retried call. Unknown settings are rejected.
//!
//! The response becomes the task's output: a 2xx JSON object as it is, other 2xx JSON as
//! `{"response": value}`, an empty 2xx body as `{}`, a non-JSON 2xx body as `{"body": "text"}`.
//! Transport errors, timeouts, 5xx and 429 are retried; other statuses fail permanently with the
//! status and the first 200 characters of the body.

mod amqp;
mod args;
mod breaker;
mod config;
mod connector;
mod http;
mod kafka;
pub mod kinds;
mod mqtt;
mod nats;
pub mod pool;
mod postgres;
mod redis;
mod registry;
mod retry;
mod salesforce;
mod settings;
mod topic;

pub use amqp::AmqpConnector;
pub use breaker::BreakerPolicy;
pub use config::{ConfigError, InstanceConfig, Keys, Secret};
pub use connector::{Binding, CallError, CallRequest, Connector, Probe};
pub use http::HttpConnector;
pub use kafka::KafkaConnector;
pub use mqtt::MqttConnector;
pub use nats::NatsConnector;
pub use pool::{Pool, PoolConfig, PoolStatus};
pub use postgres::PostgresConnector;
pub use redis::RedisConnector;
pub use registry::{Answer, CallFailure, FailedAttempt, InstanceHealth, Registry};
pub use retry::RetryPolicy;
pub use salesforce::SalesforceConnector;
pub use settings::{BindingError, Cause, SettingsError};
