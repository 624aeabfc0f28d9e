//! The kinds of connector a `[connectors.NAME]` table may name, and the one place that builds an
//! instance of each from its table.

use std::sync::Arc;

use crate::amqp::AmqpConnector;
use crate::config::{ConfigError, InstanceConfig};
use crate::connector::Connector;
use crate::http::HttpConnector;
use crate::kafka::KafkaConnector;
use crate::mqtt::MqttConnector;
use crate::nats::NatsConnector;
use crate::postgres::PostgresConnector;
use crate::redis::RedisConnector;
use crate::salesforce::SalesforceConnector;

/// The kinds a table may name in `kind`.
pub const KINDS: [&str; 8] = [
    "http",
    "postgres",
    "nats",
    "amqp",
    "kafka",
    "redis",
    "mqtt",
    "salesforce",
];

/// Builds the instance a table declares. No connection is opened here: pools open them when
/// calls need them, and the instance's probe says whether the far side answers.
pub fn build(config: &InstanceConfig) -> Result<Arc<dyn Connector>, ConfigError> {
    match config.kind.as_str() {
        "http" => Ok(Arc::new(HttpConnector::from_config(config)?)),
        "kafka" => Ok(Arc::new(KafkaConnector::from_config(config)?)),
        "salesforce" => Ok(Arc::new(SalesforceConnector::from_config(config)?)),
        "nats" => Ok(Arc::new(NatsConnector::from_config(config)?)),
        "amqp" => Ok(Arc::new(AmqpConnector::from_config(config)?)),
        "mqtt" => Ok(Arc::new(MqttConnector::from_config(config)?)),
        "postgres" => Ok(Arc::new(PostgresConnector::from_config(config)?)),
        "redis" => Ok(Arc::new(RedisConnector::from_config(config)?)),
        other if KINDS.contains(&other) => Err(ConfigError {
            instance: config.name.clone(),
            key: "kind".to_owned(),
            problem: format!("kind {other} is not available in this build"),
        }),
        other => Err(ConfigError {
            instance: config.name.clone(),
            key: "kind".to_owned(),
            problem: format!("unknown kind `{other}` (one of {})", KINDS.join(", ")),
        }),
    }
}
