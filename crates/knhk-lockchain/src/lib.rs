//! Tamper-evident receipts for case history (placeholder until the lockchain issue)
//!
//! Its place among the crates is in `ARCHITECTURE.md` at the repository root; it fills in
//! with the issue that builds the lockchain.
