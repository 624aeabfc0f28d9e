//! The lockchain's part of the service layer: an event's receipt, a consistency proof between
//! two checkpoints, the latest signed checkpoint and the log's verifier key, each a typed call
//! over the engine's own lockchain calls (`WorkflowEngine::receipt`, `consistency_proof`,
//! `latest_checkpoint`, `lockchain_public_key`).
//!
//! The wire types here are not the lockchain's: [`Receipt`] and [`ConsistencyProof`] are
//! converted field by field from `knhk_lockchain`'s, and tests hold their JSON equal to the
//! domain types', because that JSON is the file `knhk lockchain verify-receipt` and
//! `verify-consistency` read. REST and gRPC call these same functions.

use base64::Engine as _;
use knhk_workflow_engine::CheckpointView;
use serde::{Deserialize, Serialize};
use utoipa::ToSchema;

use crate::error::{ApiError, Code};
use crate::service::{Service, case_id};

/// `GET /cases/{id}/events/{seq}/receipt`: one event's proof of being in a signed tree, the
/// JSON that `knhk lockchain verify-receipt` checks with nothing but the verifier key.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
pub struct Receipt {
    /// `knhk-receipt/v1`.
    pub format: String,
    /// The case id.
    pub case: String,
    /// The event's place in the case's history, from 1.
    pub seq: u64,
    /// The event's leaf index in the log.
    pub leaf_index: u64,
    /// The size of the tree the checkpoint signs, and the proof is of.
    pub tree_size: u64,
    /// The event's canonical bytes, base64.
    pub event: String,
    /// The inclusion proof, each hash base64, from the leaf up.
    pub inclusion: Vec<String>,
    /// The signed checkpoint (a C2SP signed note) of the tree of `tree_size` leaves.
    pub checkpoint: String,
}

impl Receipt {
    /// Converts the lockchain's receipt into its wire form.
    pub fn of(r: &knhk_lockchain::receipt::Receipt) -> Receipt {
        Receipt {
            format: r.format.clone(),
            case: r.case.to_string(),
            seq: r.seq,
            leaf_index: r.leaf_index,
            tree_size: r.tree_size,
            event: r.event.clone(),
            inclusion: r.inclusion.clone(),
            checkpoint: r.checkpoint.clone(),
        }
    }

    /// Returns the event's canonical bytes, decoded, naming the field when they are not
    /// base64.
    pub fn event_bytes(&self) -> Result<Vec<u8>, ApiError> {
        decode("event", &self.event)
    }

    /// Returns the inclusion proof's hashes, decoded.
    pub fn inclusion_bytes(&self) -> Result<Vec<Vec<u8>>, ApiError> {
        self.inclusion
            .iter()
            .map(|h| decode("inclusion", h))
            .collect()
    }
}

/// `GET /lockchain/consistency?from=OLD&to=NEW`: the proof that the signed tree of `old_size`
/// leaves is a prefix of the signed tree of `new_size` leaves, the JSON that `knhk lockchain
/// verify-consistency` checks with nothing but the verifier key.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
pub struct ConsistencyProof {
    /// `knhk-consistency/v1`.
    pub format: String,
    /// The size of the older tree.
    pub old_size: u64,
    /// The size of the newer tree.
    pub new_size: u64,
    /// The consistency proof, each hash base64 (RFC 6962 order).
    pub proof: Vec<String>,
    /// The signed checkpoint (a C2SP signed note) of the tree of `old_size` leaves.
    pub old_checkpoint: String,
    /// The signed checkpoint (a C2SP signed note) of the tree of `new_size` leaves.
    pub new_checkpoint: String,
}

impl ConsistencyProof {
    /// Converts the lockchain's consistency proof into its wire form.
    pub fn of(p: &knhk_lockchain::consistency::ConsistencyProof) -> ConsistencyProof {
        ConsistencyProof {
            format: p.format.clone(),
            old_size: p.old_size,
            new_size: p.new_size,
            proof: p.proof.clone(),
            old_checkpoint: p.old_checkpoint.clone(),
            new_checkpoint: p.new_checkpoint.clone(),
        }
    }

    /// Returns the proof's hashes, decoded.
    pub fn proof_bytes(&self) -> Result<Vec<Vec<u8>>, ApiError> {
        self.proof.iter().map(|h| decode("proof", h)).collect()
    }
}

/// `GET /lockchain/checkpoint` as JSON: the latest signed checkpoint of the log.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
pub struct Checkpoint {
    /// The tree size it signs.
    pub size: u64,
    /// The tree's root hash, base64 (as in the note).
    pub root: String,
    /// The signed note, whole: the C2SP `tlog-checkpoint` body, a blank line, the signature.
    pub note: String,
    /// When it was taken, RFC 3339 in UTC.
    pub taken_at: String,
}

impl Checkpoint {
    /// Converts the engine's view of a checkpoint into its wire form.
    pub fn of(c: &CheckpointView) -> Checkpoint {
        Checkpoint {
            size: c.size,
            root: c.root.clone(),
            note: c.note.clone(),
            taken_at: crate::types::rfc3339(c.at),
        }
    }

    /// Returns the root hash, decoded.
    pub fn root_bytes(&self) -> Result<Vec<u8>, ApiError> {
        decode("root", &self.root)
    }
}

/// Decodes standard base64, naming the field when the engine gave something else.
fn decode(field: &str, text: &str) -> Result<Vec<u8>, ApiError> {
    base64::engine::general_purpose::STANDARD
        .decode(text)
        .map_err(|e| {
            ApiError::new(
                Code::Internal,
                format!("the engine's {field} is not base64: {e}"),
            )
        })
}

/// What is said when no checkpoint was taken yet (REST, gRPC and the CLI say the same).
pub const NO_CHECKPOINT: &str = "no checkpoint was taken yet: the log has no leaves, or its \
                                 first checkpoint is still to come";

/// Reads the sequence number of a path (`/cases/{id}/events/{seq}/receipt`): an integer;
/// [`Service::receipt`] refuses 0, as it does for gRPC.
pub fn parse_seq(text: &str) -> Result<u64, ApiError> {
    text.parse::<u64>().map_err(|_| {
        ApiError::invalid(
            "seq",
            format!("seq: {text:?} is not an event's sequence number (an integer from 1)"),
        )
    })
}

impl Service {
    /// Returns the receipt of event `seq` of case `id`: its leaf index, its inclusion proof
    /// and the signed checkpoint that covers it. An unknown case or event is `not_found`; an
    /// event committed without the lockchain (no leaf) is `failed_precondition`.
    pub async fn receipt(&self, id: &str, seq: u64) -> Result<Receipt, ApiError> {
        let case = case_id(id)?;
        if seq == 0 {
            return Err(ApiError::invalid(
                "seq",
                "seq: 0 is not an event's sequence number (they start at 1)",
            ));
        }
        let receipt = self.engine().receipt(case, seq).await?;
        Ok(Receipt::of(&receipt))
    }

    /// Returns the consistency proof between the stored checkpoints of tree sizes `from` and
    /// `to` (the latest when `None`). A size with no stored checkpoint is `not_found`, naming
    /// the nearest stored sizes; `from` larger than `to` is `invalid_argument`.
    pub async fn consistency(
        &self,
        from: u64,
        to: Option<u64>,
    ) -> Result<ConsistencyProof, ApiError> {
        let proof = self.engine().consistency_proof(from, to).await?;
        Ok(ConsistencyProof::of(&proof))
    }

    /// Returns the latest signed checkpoint; `not_found` when none was taken yet.
    pub async fn checkpoint(&self) -> Result<Checkpoint, ApiError> {
        match self.engine().latest_checkpoint().await? {
            Some(c) => Ok(Checkpoint::of(&c)),
            None => Err(ApiError::not_found(NO_CHECKPOINT)),
        }
    }

    /// Returns the verifier key of the log's checkpoints, in the signed-note text form
    /// `name+hash+base64key`.
    pub fn public_key(&self) -> Result<String, ApiError> {
        Ok(self.engine().lockchain_public_key()?)
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;

    /// The wire receipt's JSON is the lockchain receipt's, field for field: the file that
    /// `verify-receipt` reads, whether the receipt came from the CLI, REST or gRPC.
    #[test]
    fn the_wire_receipt_writes_the_json_of_the_lockchain_receipt() {
        let case = knhk_core::CaseId(uuid::Uuid::from_u128(7));
        let domain = knhk_lockchain::receipt::Receipt {
            format: knhk_lockchain::receipt::RECEIPT_FORMAT.to_owned(),
            case,
            seq: 3,
            leaf_index: 12,
            tree_size: 40,
            event: "AQID".to_owned(),
            inclusion: vec!["AAAA".to_owned(), "BBBB".to_owned()],
            checkpoint: "origin\n40\nroot\n\n— origin sig\n".to_owned(),
        };
        let wire = Receipt::of(&domain);
        assert_eq!(
            serde_json::to_value(&wire).unwrap(),
            serde_json::to_value(&domain).unwrap()
        );
        let back: knhk_lockchain::receipt::Receipt =
            serde_json::from_value(serde_json::to_value(&wire).unwrap()).unwrap();
        assert_eq!(back, domain);
        assert_eq!(wire.event_bytes().unwrap(), vec![1, 2, 3]);
        assert_eq!(wire.inclusion_bytes().unwrap().len(), 2);
    }

    /// The wire consistency proof's JSON is the lockchain's, field for field: the file that
    /// `verify-consistency` reads.
    #[test]
    fn the_wire_consistency_proof_writes_the_json_of_the_lockchain_proof() {
        let domain = knhk_lockchain::consistency::ConsistencyProof::new(
            3,
            40,
            &[[1; 32], [2; 32]],
            "origin\n3\nroot\n\n— origin sig\n".to_owned(),
            "origin\n40\nroot\n\n— origin sig\n".to_owned(),
        );
        let wire = ConsistencyProof::of(&domain);
        assert_eq!(
            serde_json::to_value(&wire).unwrap(),
            serde_json::to_value(&domain).unwrap()
        );
        let back: knhk_lockchain::consistency::ConsistencyProof =
            serde_json::from_value(serde_json::to_value(&wire).unwrap()).unwrap();
        assert_eq!(back, domain);
        assert_eq!(wire.proof_bytes().unwrap(), vec![vec![1; 32], vec![2; 32]]);
    }

    #[test]
    fn a_sequence_number_is_an_integer_from_one() {
        assert_eq!(parse_seq("1").unwrap(), 1);
        for bad in ["-1", "x", "", "1.5", "18446744073709551616"] {
            let e = parse_seq(bad).unwrap_err();
            assert_eq!(e.code, Code::InvalidArgument, "{bad}");
            assert_eq!(e.details["field"], "seq", "{bad}");
        }
    }

    #[test]
    fn a_bad_base64_field_is_named() {
        let c = Checkpoint {
            size: 1,
            root: "not base64!".to_owned(),
            note: String::new(),
            taken_at: String::new(),
        };
        let e = c.root_bytes().unwrap_err();
        assert!(e.message.contains("root"), "{e}");
    }
}
