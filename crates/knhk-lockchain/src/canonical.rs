//! The canonical bytes of a history event: what its leaf hash is taken over.
//!
//! CONTRACT PLACEHOLDER: the `canonical` helper replaces the encoding below with the
//! documented, versioned one (docs/lockchain.md) and its golden vectors; the signatures stay.

use knhk_core::{CaseId, Event};

use crate::merkle::{Hash, leaf_hash};

/// The version of the encoding, its first byte.
pub const CANONICAL_VERSION: u8 = 1;

/// Why an event has no canonical bytes.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum CanonicalError {
    #[error("event {seq} of case {case}: {problem}")]
    Event {
        case: CaseId,
        seq: u64,
        problem: String,
    },
}

/// Returns the canonical bytes of event `event` of case `case`: the same event always gives
/// the same bytes.
pub fn event_bytes(case: CaseId, event: &Event) -> Result<Vec<u8>, CanonicalError> {
    let json = serde_json::to_vec(&(case, event)).map_err(|e| CanonicalError::Event {
        case,
        seq: event.seq,
        problem: e.to_string(),
    })?;
    let mut out = Vec::with_capacity(json.len() + 1);
    out.push(CANONICAL_VERSION);
    out.extend_from_slice(&json);
    Ok(out)
}

/// Returns the leaf hash of an event: `leaf_hash(event_bytes(case, event))`.
pub fn event_leaf(case: CaseId, event: &Event) -> Result<Hash, CanonicalError> {
    Ok(leaf_hash(&event_bytes(case, event)?))
}
