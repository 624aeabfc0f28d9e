//! Integration tests of the runtime: real SQLite files, a real HTTP server on port 0.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod connectors;
mod durable;
mod human;
mod support;
mod timers;
