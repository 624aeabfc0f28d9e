//! Integration tests of knhk-connectors: the HTTP connector against real servers on port 0, the
//! registry's retry loop on the paused clock, the retry policy, the Kafka connector (against a
//! broker when `KNHK_TEST_KAFKA` names one) and the Salesforce connector against a stand-in.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod http;
mod http_settings;
mod kafka;
mod registry;
mod retry;
mod salesforce;
mod server;

use std::collections::BTreeMap;

/// Builds connector settings from pairs.
fn settings<const N: usize>(pairs: [(&str, String); N]) -> BTreeMap<String, String> {
    pairs.into_iter().map(|(k, v)| (k.to_owned(), v)).collect()
}
