//! Git anchoring of checkpoints: one commit per checkpoint, parent the previous one.
//!
//! CONTRACT PLACEHOLDER: the `engine` helper builds it (gix), with a reader of the chain
//! for the verifier.
