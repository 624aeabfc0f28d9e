//! REST and gRPC over the knhk engine (placeholder until the API issue)
//!
//! This crate is laid out by `DESIGN.md` and fills in with the issue that builds it.
