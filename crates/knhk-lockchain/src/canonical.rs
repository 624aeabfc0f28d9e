//! The canonical bytes of a history event: what its leaf hash is taken over.
//!
//! Version 1 (`docs/lockchain.md`, "Canonical event bytes"): the byte `0x01`, then the RFC 8785
//! canonical JSON (JCS, [`jcs`]) of the object
//! `{"case": "<case uuid>", "event": <the EventKind>, "seq": <seq>, "time": <ms since epoch>}`,
//! where the event kind is the JSON serde writes for [`EventKind`] (its `type` tag and its
//! fields). Integers are written exactly (the one place stricter than JCS); other numbers as
//! ECMAScript writes doubles.
//!
//! Why the same event always gives the same bytes: the bytes depend only on the JSON data
//! model of the event, never on the order of a map or of a struct's fields, nor on
//! serde_json's features; [`jcs`] gives each JSON value one form. The first byte names the
//! encoding, so a later one can change it without making old leaves ambiguous.
//!
//! [`decode`] reads the bytes back and checks that they are exactly the canonical bytes of
//! the event they decode to: a receipt's event is checked that way.

pub mod jcs;

use std::cell::RefCell;

use knhk_core::{CaseId, Event, EventKind, Timestamp};
use serde::Deserialize;

use crate::merkle::{Hash, leaf_hash};

/// The version of the encoding, its first byte.
pub const CANONICAL_VERSION: u8 = 1;

/// Why an event has no canonical bytes, or bytes are not an event's canonical bytes.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum CanonicalError {
    /// The event cannot be written canonically (a number with no JSON form, a repeated key).
    #[error("event {seq} of case {case}: {problem}")]
    Event {
        case: CaseId,
        seq: u64,
        problem: String,
    },
    /// The bytes are not the canonical bytes of an event.
    #[error("event bytes: {0}")]
    Bytes(String),
}

/// Returns the canonical bytes of event `event` of case `case`: the same event always gives
/// the same bytes.
pub fn event_bytes(case: CaseId, event: &Event) -> Result<Vec<u8>, CanonicalError> {
    let mut out = Vec::with_capacity(256);
    write_event(&mut out, case, event)?;
    Ok(out)
}

/// Appends the canonical bytes of event `event` of case `case` to `out` (so that a caller
/// hashing many events reuses one buffer). On error `out` is left as it was.
pub fn write_event(out: &mut Vec<u8>, case: CaseId, event: &Event) -> Result<(), CanonicalError> {
    let start = out.len();
    let written = write_fields(out, case, event);
    if written.is_err() {
        out.truncate(start);
    }
    written.map_err(|e| CanonicalError::Event {
        case,
        seq: event.seq,
        problem: e.0,
    })
}

fn write_fields(out: &mut Vec<u8>, case: CaseId, event: &Event) -> Result<(), jcs::JcsError> {
    // The four keys in JCS order: case, event, seq, time.
    out.push(CANONICAL_VERSION);
    // The case id is the JSON string of its hyphenated lowercase form, as serde writes a
    // UUID; it has nothing to escape, so it is written as it is.
    out.extend_from_slice(b"{\"case\":\"");
    let mut id = uuid::Uuid::encode_buffer();
    out.extend_from_slice(case.0.hyphenated().encode_lower(&mut id).as_bytes());
    out.extend_from_slice(b"\",\"event\":");
    jcs::write(out, &event.kind)?;
    out.extend_from_slice(b",\"seq\":");
    jcs::write_integer(out, false, u128::from(event.seq));
    out.extend_from_slice(b",\"time\":");
    let time = event.time.0;
    jcs::write_integer(out, time < 0, u128::from(time.unsigned_abs()));
    out.push(b'}');
    Ok(())
}

/// Returns the leaf hash of an event: `leaf_hash(event_bytes(case, event))`.
pub fn event_leaf(case: CaseId, event: &Event) -> Result<Hash, CanonicalError> {
    thread_local! {
        // The bytes of the last event hashed on this thread: a buffer kept, not allocated
        // for each event.
        static BYTES: RefCell<Vec<u8>> = RefCell::new(Vec::with_capacity(512));
    }
    BYTES.with(|cell| match cell.try_borrow_mut() {
        Ok(mut bytes) => {
            bytes.clear();
            write_event(&mut bytes, case, event)?;
            Ok(leaf_hash(&bytes))
        }
        Err(_) => Ok(leaf_hash(&event_bytes(case, event)?)),
    })
}

/// An event read back from its canonical bytes.
#[derive(Clone, Debug, PartialEq)]
pub struct DecodedEvent {
    pub case: CaseId,
    pub event: Event,
}

/// The JSON object of version 1.
#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct Wire {
    case: CaseId,
    event: EventKind,
    seq: u64,
    time: Timestamp,
}

/// Reads canonical bytes back into the event they are of, and checks that they are exactly
/// that event's canonical bytes (so that no two byte strings pass for one event).
pub fn decode(bytes: &[u8]) -> Result<DecodedEvent, CanonicalError> {
    let (&version, json) = bytes
        .split_first()
        .ok_or_else(|| CanonicalError::Bytes("empty".to_owned()))?;
    if version != CANONICAL_VERSION {
        return Err(CanonicalError::Bytes(format!(
            "version byte {version:#04x}, expected {CANONICAL_VERSION:#04x}"
        )));
    }
    let wire: Wire = serde_json::from_slice(json)
        .map_err(|e| CanonicalError::Bytes(format!("not an event's JSON: {e}")))?;
    let decoded = DecodedEvent {
        case: wire.case,
        event: Event {
            seq: wire.seq,
            time: wire.time,
            kind: wire.event,
        },
    };
    let again = event_bytes(decoded.case, &decoded.event)?;
    if again != bytes {
        let at = again
            .iter()
            .zip(bytes)
            .position(|(a, b)| a != b)
            .unwrap_or(again.len().min(bytes.len()));
        return Err(CanonicalError::Bytes(format!(
            "not in canonical form (they differ from the event's canonical bytes at byte {at})"
        )));
    }
    Ok(decoded)
}
