//! The offline verifier of a whole log.
//!
//! CONTRACT PLACEHOLDER: the `verify` helper builds it.
