//! knhk-api: the network API of the engine.
//!
//! One service layer ([`Service`]) holds every operation as a typed call over the engine's
//! own boundary (`WorkflowEngine` and its views, never the store), with one error vocabulary
//! ([`Code`], mapped once to HTTP and once to gRPC); the lockchain's receipts, checkpoints and key
//! are its calls too ([`lockchain`]). REST ([`rest::router`], axum) and gRPC
//! ([`grpc::serve`], tonic, from `proto/knhk/v1/workflow.proto`) call the same functions. Its place among the crates is in
//! `ARCHITECTURE.md` at the repository root.

pub mod error;
pub mod grpc;
pub mod json;
pub mod lockchain;
pub mod rest;
pub mod service;
pub mod types;

pub use error::{ApiError, Code};
pub use service::{Limits, Made, Service, Watched};
