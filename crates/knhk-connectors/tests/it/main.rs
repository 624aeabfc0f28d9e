//! Integration tests of knhk-connectors: the HTTP connector against real servers on port 0, the
//! NATS, AMQP and MQTT connectors against the brokers of this machine, the postgres and redis
//! connectors and their pools against the servers of this machine, the Kafka connector (against
//! a broker when `KNHK_TEST_KAFKA` names one), the Salesforce connector against a stand-in, the
//! registry's retry loop on the paused clock, the retry policy, the `[connectors.NAME]` tables
//! and the connection pool with an in-process manager.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod amqp;
mod brokers;
mod config;
mod http;
mod http_settings;
mod intake;
mod intake_kafka;
mod kafka;
mod mqtt;
mod nats;
mod pool;
mod postgres;
mod postgres_pool;
mod redis;
mod registry;
mod retry;
mod salesforce;
mod server;
mod services;

use std::collections::BTreeMap;

/// Builds connector settings from pairs.
fn settings<const N: usize>(pairs: [(&str, String); N]) -> BTreeMap<String, String> {
    pairs.into_iter().map(|(k, v)| (k.to_owned(), v)).collect()
}
