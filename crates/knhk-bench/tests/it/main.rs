//! Integration tests of the `knhk-bench` binary: each test runs the built binary as a real
//! process, on a data directory of its own.

// Helpers outside `#[test]` functions fail loudly too.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod bench;
mod connectors;
mod history;
mod load;
mod lockchain;
mod recovery;
mod scale;
