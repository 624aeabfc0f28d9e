//! Integration tests of knhk-store: the conformance suite run for every backend, the
//! SQLite- and PostgreSQL-specific behaviour, and the golden file of the stored format.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod conformance;
mod fixtures;
mod golden;
mod lockchain;
mod memory;
mod plans;
mod postgres;
mod sqlite;
