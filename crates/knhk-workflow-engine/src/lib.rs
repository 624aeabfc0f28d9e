//! The durable knhk runtime (placeholder until the runtime issue)
//!
//! This crate is laid out by `DESIGN.md` and fills in with the issue that builds it.
