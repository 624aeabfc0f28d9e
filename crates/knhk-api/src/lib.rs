//! REST and gRPC over the knhk engine (placeholder until the API issue)
//!
//! Its place among the crates is in `ARCHITECTURE.md` at the repository root; it fills in
//! with the issue that builds the network API.
