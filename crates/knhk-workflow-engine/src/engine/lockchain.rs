//! The engine's lockchain: the leaves of every step (in `commit_step`), the checkpointer
//! that signs the tree head every N events or T seconds, the task that owns the git anchor,
//! and the receipts.
//!
//! CONTRACT PLACEHOLDER: the `engine` helper builds it; the signatures below stay, so that
//! the CLI, REST and gRPC can be built against them at the same time.

use knhk_core::CaseId;
use knhk_lockchain::receipt::Receipt;

use super::WorkflowEngine;
use crate::error::Error;

/// The latest signed checkpoint, as the engine shows it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct CheckpointView {
    pub size: u64,
    /// The root hash, base64 (as in the note).
    pub root: String,
    /// The signed note, whole.
    pub note: String,
    pub at: knhk_core::Timestamp,
}

/// The lockchain's health: the anchor repository is writable, and the last anchor's age is
/// within its bound.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct LockchainHealth {
    /// `Ok` with a word of what was checked, or why it is not healthy.
    pub result: Result<String, String>,
}

impl WorkflowEngine {
    /// Returns the receipt of event `seq` of `case`: its leaf index, its inclusion proof, and
    /// the signed checkpoint that covers it (one is taken now when the latest does not).
    pub async fn receipt(&self, case: CaseId, seq: u64) -> Result<Receipt, Error> {
        let _ = (case, seq);
        Err(Error::Store(knhk_store::Error::Lockchain(
            "receipts are being built".to_owned(),
        )))
    }

    /// Returns the latest signed checkpoint, if one was taken.
    pub async fn latest_checkpoint(&self) -> Result<Option<CheckpointView>, Error> {
        Err(Error::Store(knhk_store::Error::Lockchain(
            "checkpoints are being built".to_owned(),
        )))
    }

    /// Returns the verifier key of the log's checkpoints (the signed-note text form).
    pub fn lockchain_public_key(&self) -> Result<String, Error> {
        Err(Error::Store(knhk_store::Error::Lockchain(
            "keys are being built".to_owned(),
        )))
    }

    /// Probes the lockchain: the anchor repository is writable and the last anchor is recent.
    pub async fn lockchain_health(&self) -> LockchainHealth {
        LockchainHealth {
            result: Err("the lockchain is being built".to_owned()),
        }
    }
}
