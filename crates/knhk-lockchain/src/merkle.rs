//! RFC 6962 / RFC 9162 Merkle tree hashing over SHA-256, and the proofs of a tree.
//!
//! A leaf's hash is `H(0x00 || bytes)` and an interior node's `H(0x01 || left || right)`; the
//! tree over `n` leaves splits at the largest power of two smaller than `n` (RFC 6962 §2.1),
//! so that its head is the right fold of the roots of the perfect subtrees that `n`'s binary
//! digits name, largest first. Proofs are built from a [`NodeSource`]: the hashes of perfect
//! subtrees, which the store keeps in tiles.

use sha2::{Digest, Sha256};

/// A SHA-256 hash: of a leaf, a node or a tree.
pub type Hash = [u8; 32];

/// Why a proof could not be made or does not hold.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum ProofError {
    /// The source does not hold the hash of this perfect subtree.
    #[error("the tree has no node at height {height}, index {index}")]
    Missing { height: u8, index: u64 },
    /// The leaf or the sizes asked for do not fit the tree.
    #[error("{0}")]
    OutOfRange(String),
    /// The proof does not lead to the root it should.
    #[error("{0}")]
    Mismatch(String),
}

/// Returns the hash of a leaf with these bytes: `SHA-256(0x00 || bytes)`.
pub fn leaf_hash(bytes: &[u8]) -> Hash {
    let mut h = Sha256::new();
    h.update([0x00]);
    h.update(bytes);
    h.finalize().into()
}

/// Returns the hash of an interior node: `SHA-256(0x01 || left || right)`.
pub fn node_hash(left: &Hash, right: &Hash) -> Hash {
    let mut h = Sha256::new();
    h.update([0x01]);
    h.update(left);
    h.update(right);
    h.finalize().into()
}

/// Returns the head of the empty tree: the SHA-256 of no bytes.
pub fn empty_root() -> Hash {
    Sha256::digest([]).into()
}

/// Returns the largest power of two smaller than `n` (`n >= 2`): where RFC 6962 splits a tree.
pub fn split(n: u64) -> u64 {
    if n < 2 {
        return 0;
    }
    1 << (63 - (n - 1).leading_zeros())
}

/// Returns the head of the tree over these leaf hashes (RFC 6962's MTH).
pub fn root_of(leaves: &[Hash]) -> Hash {
    match leaves {
        [] => empty_root(),
        [one] => *one,
        _ => {
            let k = usize::try_from(split(leaves.len() as u64)).unwrap_or(leaves.len() / 2);
            node_hash(&root_of(&leaves[..k]), &root_of(&leaves[k..]))
        }
    }
}

/// Returns the right fold of the roots of consecutive perfect subtrees, left to right: the
/// head of the tree they make up (`roots` as [`perfect_subtrees`] lists them).
pub fn fold_right(roots: &[Hash]) -> Hash {
    let mut iter = roots.iter().rev();
    let Some(last) = iter.next() else {
        return empty_root();
    };
    iter.fold(*last, |acc, left| node_hash(left, &acc))
}

/// Returns the perfect subtrees, left to right, that the leaves `[start, start + size)` make
/// up when `start` is a multiple of the largest of them (as every range RFC 6962 hashes is):
/// each as `(height, index)`, the node at `height` with `index` covering the leaves
/// `[index << height, (index + 1) << height)`.
pub fn perfect_subtrees(start: u64, size: u64) -> Vec<(u8, u64)> {
    let mut out = Vec::new();
    let mut at = start;
    for bit in (0..64u8).rev() {
        if size & (1 << bit) != 0 {
            out.push((bit, at >> bit));
            at += 1 << bit;
        }
    }
    out
}

/// The hashes of perfect subtrees of one tree: what a proof is made from.
pub trait NodeSource {
    /// Returns the hash of the node at `height` (0: a leaf) with `index`, covering the leaves
    /// `[index << height, (index + 1) << height)`.
    fn node(&self, height: u8, index: u64) -> Result<Hash, ProofError>;

    /// Returns the head of the tree over the leaves `[start, start + size)`, `start` a multiple
    /// of the largest perfect subtree in the range.
    fn range_root(&self, start: u64, size: u64) -> Result<Hash, ProofError> {
        let roots = perfect_subtrees(start, size)
            .into_iter()
            .map(|(h, i)| self.node(h, i))
            .collect::<Result<Vec<_>, _>>()?;
        Ok(fold_right(&roots))
    }
}

/// Returns the inclusion proof of leaf `leaf` in the tree of `size` leaves (RFC 6962 §2.1.1
/// `PATH`), the sibling hashes from the leaf up.
pub fn inclusion_proof(
    src: &impl NodeSource,
    leaf: u64,
    size: u64,
) -> Result<Vec<Hash>, ProofError> {
    let _ = (src, leaf, size);
    Err(ProofError::OutOfRange(
        "inclusion proofs are being built".to_owned(),
    ))
}

/// Returns the consistency proof between the trees of `old` and `new` leaves (RFC 6962
/// §2.1.2 `PROOF`).
pub fn consistency_proof(
    src: &impl NodeSource,
    old: u64,
    new: u64,
) -> Result<Vec<Hash>, ProofError> {
    let _ = (src, old, new);
    Err(ProofError::OutOfRange(
        "consistency proofs are being built".to_owned(),
    ))
}

/// Checks that `proof` proves the leaf hash `leaf_hash` at `leaf` in the tree of `size` leaves
/// whose head is `root` (RFC 9162 §2.1.3.2).
pub fn verify_inclusion(
    leaf_hash: &Hash,
    leaf: u64,
    size: u64,
    proof: &[Hash],
    root: &Hash,
) -> Result<(), ProofError> {
    let _ = (leaf_hash, leaf, size, proof, root);
    Err(ProofError::Mismatch(
        "inclusion proofs are being built".to_owned(),
    ))
}

/// Checks that `proof` proves the tree of `old` leaves with head `old_root` a prefix of the
/// tree of `new` leaves with head `new_root` (RFC 9162 §2.1.4.2).
pub fn verify_consistency(
    old: u64,
    new: u64,
    old_root: &Hash,
    new_root: &Hash,
    proof: &[Hash],
) -> Result<(), ProofError> {
    let _ = (old, new, old_root, new_root, proof);
    Err(ProofError::Mismatch(
        "consistency proofs are being built".to_owned(),
    ))
}
