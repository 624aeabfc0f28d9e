//! Semantics tests of knhk-core: small nets written as data, driven through `Case::apply`,
//! asserting the events and effects returned.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod basics;
mod driver;
mod expressions;
mod harness;
mod incidents;
mod interop;
mod lifecycle;
mod limits;
mod multi;
mod orjoin;
mod properties;
mod snapshots;
mod triggers;
mod waits;
mod worklist;
