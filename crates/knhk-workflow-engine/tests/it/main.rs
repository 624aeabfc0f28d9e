//! Integration tests of the runtime: real SQLite files, a real HTTP server on port 0.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod connectors;
mod directory;
mod durable;
mod error_codes;
mod human;
mod idempotency;
mod instances;
mod intake;
mod intake_amqp;
mod intake_kafka;
mod intake_mqtt;
mod lockchain;
mod lockchain_verify;
mod nodes;
mod orjoin;
mod snapshots;
mod support;
mod timers;
