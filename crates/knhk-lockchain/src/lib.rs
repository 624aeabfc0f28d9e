//! Tamper-evident receipts for case history (placeholder until the lockchain issue)
//!
//! This crate is laid out by `DESIGN.md` and fills in with the issue that builds it.
