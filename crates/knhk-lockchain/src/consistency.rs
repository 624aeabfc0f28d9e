//! A consistency proof between two signed checkpoints: the older tree is a prefix of the
//! newer one, checked with nothing but the log's key.
//!
//! Its JSON form (`docs/lockchain.md`, "Commands and APIs") is what `knhk lockchain
//! consistency` prints and `verify-consistency` reads: both signed notes, their sizes, and the
//! RFC 6962 consistency proof between them.
//!
//! Why [`ConsistencyProof::verify`] is enough: each note's signature ties its root to the
//! log's key; the sizes the proof names must be the sizes the notes sign; and the proof ties
//! the old root to the new one (RFC 9162 §2.1.4.2), which holds only if the first `old_size`
//! leaves of the new tree are the old tree's. Changing any field makes one check fail, and
//! each failure says which.

use base64::Engine as _;
use base64::engine::general_purpose::STANDARD;
use serde::{Deserialize, Serialize};

use crate::merkle::{Hash, verify_consistency};
use crate::note::Verifier;

/// The value of [`ConsistencyProof::format`].
pub const CONSISTENCY_FORMAT: &str = "knhk-consistency/v1";

/// A consistency proof between two checkpoints, as `knhk lockchain consistency` prints it and
/// `verify-consistency` reads it.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ConsistencyProof {
    /// [`CONSISTENCY_FORMAT`].
    pub format: String,
    /// The size of the older tree.
    pub old_size: u64,
    /// The size of the newer tree.
    pub new_size: u64,
    /// The consistency proof, each hash base64 (RFC 6962 §2.1.2 order).
    pub proof: Vec<String>,
    /// The signed checkpoint (a signed note) of the tree of `old_size` leaves.
    pub old_checkpoint: String,
    /// The signed checkpoint (a signed note) of the tree of `new_size` leaves.
    pub new_checkpoint: String,
}

/// Why a consistency proof does not hold.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum ConsistencyError {
    /// The proof is malformed or one of its checks fails; the message says which.
    #[error("{0}")]
    Invalid(String),
}

fn invalid(message: impl Into<String>) -> ConsistencyError {
    ConsistencyError::Invalid(message.into())
}

/// What a consistency proof that holds proves.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Verified {
    /// The origin line of both checkpoints: the log.
    pub origin: String,
    pub old_size: u64,
    pub new_size: u64,
    /// The root the old checkpoint signs.
    pub old_root: Hash,
    /// The root the new checkpoint signs.
    pub new_root: Hash,
}

impl ConsistencyProof {
    /// Makes the proof between two signed notes from its hashes.
    pub fn new(
        old_size: u64,
        new_size: u64,
        proof: &[Hash],
        old_checkpoint: String,
        new_checkpoint: String,
    ) -> ConsistencyProof {
        ConsistencyProof {
            format: CONSISTENCY_FORMAT.to_owned(),
            old_size,
            new_size,
            proof: proof.iter().map(|h| STANDARD.encode(h)).collect(),
            old_checkpoint,
            new_checkpoint,
        }
    }

    /// Reads a proof from its JSON form, refusing unknown fields.
    pub fn from_json(text: &str) -> Result<ConsistencyProof, ConsistencyError> {
        serde_json::from_str(text).map_err(|e| invalid(format!("not a consistency proof: {e}")))
    }

    /// Returns the proof's JSON form, pretty-printed.
    pub fn to_json(&self) -> Result<String, ConsistencyError> {
        serde_json::to_string_pretty(self)
            .map_err(|e| invalid(format!("the consistency proof did not serialize: {e}")))
    }

    /// Returns the proof's hashes, decoded, naming the first that is not 32 bytes of base64.
    pub fn hashes(&self) -> Result<Vec<Hash>, ConsistencyError> {
        self.proof
            .iter()
            .enumerate()
            .map(|(i, text)| {
                let raw = STANDARD
                    .decode(text)
                    .map_err(|e| invalid(format!("proof hash {i} is not base64: {e}")))?;
                Hash::try_from(raw.as_slice())
                    .map_err(|_| invalid(format!("proof hash {i} is {} bytes, not 32", raw.len())))
            })
            .collect()
    }

    /// Checks the proof with nothing but the log's verifier key: its format, both
    /// checkpoints' signatures, origins and sizes, and the consistency proof between their
    /// roots.
    pub fn verify(&self, verifier: &Verifier) -> Result<Verified, ConsistencyError> {
        if self.format != CONSISTENCY_FORMAT {
            return Err(invalid(format!(
                "the proof's format is {:?}, expected {CONSISTENCY_FORMAT:?}",
                self.format
            )));
        }
        let old = verifier
            .verify(&self.old_checkpoint)
            .map_err(|e| invalid(format!("the old checkpoint: {e}")))?;
        let new = verifier
            .verify(&self.new_checkpoint)
            .map_err(|e| invalid(format!("the new checkpoint: {e}")))?;
        if old.size != self.old_size {
            return Err(invalid(format!(
                "the old checkpoint signs a tree of {} leaves, the proof's old_size is {}",
                old.size, self.old_size
            )));
        }
        if new.size != self.new_size {
            return Err(invalid(format!(
                "the new checkpoint signs a tree of {} leaves, the proof's new_size is {}",
                new.size, self.new_size
            )));
        }
        if old.origin != new.origin {
            return Err(invalid(format!(
                "the old checkpoint is of the log {:?}, the new one of {:?}",
                old.origin, new.origin
            )));
        }
        if self.old_size > self.new_size {
            return Err(invalid(format!(
                "old_size {} is larger than new_size {}",
                self.old_size, self.new_size
            )));
        }
        let proof = self.hashes()?;
        verify_consistency(self.old_size, self.new_size, &old.root, &new.root, &proof)
            .map_err(|e| invalid(format!("the consistency proof: {e}")))?;
        Ok(Verified {
            origin: new.origin,
            old_size: self.old_size,
            new_size: self.new_size,
            old_root: old.root,
            new_root: new.root,
        })
    }
}
