//! Integration tests of knhk-connectors: the HTTP connector against real servers on port 0, the
//! NATS, AMQP and MQTT connectors against the brokers of this machine, the registry's retry loop
//! on the paused clock, the retry policy, the `[connectors.NAME]` tables and the connection pool.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod amqp;
mod brokers;
mod config;
mod http;
mod http_settings;
mod mqtt;
mod nats;
mod pool;
mod registry;
mod retry;
mod server;

use std::collections::BTreeMap;

/// Builds connector settings from pairs.
fn settings<const N: usize>(pairs: [(&str, String); N]) -> BTreeMap<String, String> {
    pairs.into_iter().map(|(k, v)| (k.to_owned(), v)).collect()
}
