//! A receipt: one event's proof of being in a signed tree, checked with nothing else.
//!
//! A receipt carries the event's canonical bytes, its leaf index, the inclusion proof of that
//! leaf in the tree of `tree_size` leaves, and the signed checkpoint of that tree. Its JSON
//! form (`docs/lockchain.md`, "Receipts") is what `knhk lockchain receipt` prints and
//! `verify-receipt` reads.
//!
//! Why [`Receipt::verify`] is enough: the checkpoint's signature ties its root to the log's
//! key; the inclusion proof ties the event's leaf hash, at its index, to that root (RFC 9162
//! §2.1.3.2); and the leaf hash is taken over the very bytes the receipt carries, which must
//! be the canonical bytes of an event of the case and seq the receipt names. Changing any
//! field makes one of these checks fail, and each failure says which.

use base64::Engine as _;
use base64::engine::general_purpose::STANDARD;
use knhk_core::{CaseId, Timestamp};
use serde::{Deserialize, Serialize};

use crate::canonical;
use crate::merkle::{Hash, leaf_hash, verify_inclusion};
use crate::note::Verifier;

/// The value of [`Receipt::format`].
pub const RECEIPT_FORMAT: &str = "knhk-receipt/v1";

/// An event's receipt, as `knhk lockchain receipt` prints it and `verify-receipt` reads it.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Receipt {
    /// [`RECEIPT_FORMAT`].
    pub format: String,
    /// The case the event is of.
    pub case: CaseId,
    /// The event's seq in its case's history.
    pub seq: u64,
    /// The event's leaf index in the log.
    pub leaf_index: u64,
    /// The size of the tree the checkpoint signs, and the proof is of.
    pub tree_size: u64,
    /// The event's canonical bytes, base64.
    pub event: String,
    /// The inclusion proof, each hash base64, from the leaf up.
    pub inclusion: Vec<String>,
    /// The signed checkpoint (a signed note) of the tree of `tree_size` leaves.
    pub checkpoint: String,
}

/// Why a receipt does not hold.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum ReceiptError {
    /// The receipt is malformed or one of its checks fails; the message says which.
    #[error("{0}")]
    Invalid(String),
}

fn invalid(message: impl Into<String>) -> ReceiptError {
    ReceiptError::Invalid(message.into())
}

/// What a receipt that holds proves.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Verified {
    /// The origin line of the signed checkpoint: the log.
    pub origin: String,
    pub case: CaseId,
    pub seq: u64,
    /// When the event happened, as the event says.
    pub time: Timestamp,
    /// The event's type, as in the wire formats (`task_completed`...).
    pub event_type: String,
    pub leaf_index: u64,
    pub tree_size: u64,
    /// The root the checkpoint signs.
    pub root: Hash,
}

impl Receipt {
    /// Makes the receipt of an event from its canonical bytes, its proof and the signed note.
    pub fn new(
        case: CaseId,
        seq: u64,
        leaf_index: u64,
        tree_size: u64,
        event: &[u8],
        inclusion: &[Hash],
        checkpoint: String,
    ) -> Receipt {
        Receipt {
            format: RECEIPT_FORMAT.to_owned(),
            case,
            seq,
            leaf_index,
            tree_size,
            event: STANDARD.encode(event),
            inclusion: inclusion.iter().map(|h| STANDARD.encode(h)).collect(),
            checkpoint,
        }
    }

    /// Reads a receipt from its JSON form, refusing unknown fields.
    pub fn from_json(text: &str) -> Result<Receipt, ReceiptError> {
        serde_json::from_str(text).map_err(|e| invalid(format!("not a receipt: {e}")))
    }

    /// Returns the receipt's JSON form, pretty-printed.
    pub fn to_json(&self) -> Result<String, ReceiptError> {
        serde_json::to_string_pretty(self)
            .map_err(|e| invalid(format!("the receipt did not serialize: {e}")))
    }

    /// Returns the receipt's size in bytes as JSON (without pretty-printing).
    pub fn json_len(&self) -> Result<usize, ReceiptError> {
        serde_json::to_vec(self)
            .map(|v| v.len())
            .map_err(|e| invalid(format!("the receipt did not serialize: {e}")))
    }

    /// Checks the receipt with nothing but the log's verifier key: its format, the
    /// checkpoint's signature and tree size, the leaf index, the event's bytes (canonical,
    /// of the case and seq named), and the inclusion proof against the signed root.
    pub fn verify(&self, verifier: &Verifier) -> Result<Verified, ReceiptError> {
        if self.format != RECEIPT_FORMAT {
            return Err(invalid(format!(
                "the receipt's format is {:?}, expected {RECEIPT_FORMAT:?}",
                self.format
            )));
        }
        let checkpoint = verifier
            .verify(&self.checkpoint)
            .map_err(|e| invalid(format!("the checkpoint: {e}")))?;
        if checkpoint.size != self.tree_size {
            return Err(invalid(format!(
                "the checkpoint signs a tree of {} leaves, the receipt's tree_size is {}",
                checkpoint.size, self.tree_size
            )));
        }
        if self.leaf_index >= self.tree_size {
            return Err(invalid(format!(
                "leaf_index {} is not in a tree of {} leaves",
                self.leaf_index, self.tree_size
            )));
        }
        let bytes = STANDARD
            .decode(&self.event)
            .map_err(|e| invalid(format!("the event is not base64: {e}")))?;
        let decoded = canonical::decode(&bytes).map_err(|e| invalid(format!("the {e}")))?;
        if decoded.case != self.case {
            return Err(invalid(format!(
                "the event is of case {}, the receipt names case {}",
                decoded.case, self.case
            )));
        }
        if decoded.event.seq != self.seq {
            return Err(invalid(format!(
                "the event is seq {}, the receipt names seq {}",
                decoded.event.seq, self.seq
            )));
        }
        let proof = self
            .inclusion
            .iter()
            .enumerate()
            .map(|(i, text)| {
                let raw = STANDARD
                    .decode(text)
                    .map_err(|e| invalid(format!("inclusion hash {i} is not base64: {e}")))?;
                Hash::try_from(raw.as_slice()).map_err(|_| {
                    invalid(format!("inclusion hash {i} is {} bytes, not 32", raw.len()))
                })
            })
            .collect::<Result<Vec<Hash>, ReceiptError>>()?;
        verify_inclusion(
            &leaf_hash(&bytes),
            self.leaf_index,
            self.tree_size,
            &proof,
            &checkpoint.root,
        )
        .map_err(|e| invalid(format!("the inclusion proof: {e}")))?;
        Ok(Verified {
            origin: checkpoint.origin,
            case: decoded.case,
            seq: decoded.event.seq,
            time: decoded.event.time,
            event_type: decoded.event.kind.name().to_owned(),
            leaf_index: self.leaf_index,
            tree_size: self.tree_size,
            root: checkpoint.root,
        })
    }
}
