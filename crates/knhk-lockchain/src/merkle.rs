//! RFC 6962 / RFC 9162 Merkle tree hashing over SHA-256, and the proofs of a tree.
//!
//! A leaf's hash is `H(0x00 || bytes)` and an interior node's `H(0x01 || left || right)`; the
//! tree over `n` leaves splits at the largest power of two smaller than `n` (RFC 6962 §2.1),
//! so that its head is the right fold of the roots of the perfect subtrees that `n`'s binary
//! digits name, largest first. Proofs are built from a [`NodeSource`]: the hashes of perfect
//! subtrees, which the store keeps in tiles.
//!
//! The proofs follow RFC 6962 §2.1.1 (`PATH`) and §2.1.2 (`PROOF`) literally: the recursion
//! is walked from the top, and each hash it names is the head of a range that starts at a
//! multiple of its largest perfect subtree, so a source of perfect subtrees answers it. The
//! checks are RFC 9162 §2.1.3.2 and §2.1.4.2 step by step, after a length check that names
//! the count a proof must have. The tests hold both to the published vectors of
//! transparency-dev/merkle and to random trees.

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
    // One buffer, one update: the hasher's own buffering is skipped.
    let mut input = [0u8; 65];
    input[0] = 0x01;
    input[1..33].copy_from_slice(left);
    input[33..].copy_from_slice(right);
    Sha256::digest(input).into()
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

/// Leaf hashes in order are a [`NodeSource`]: each perfect subtree is the head of its range.
///
/// Each node costs a hash of its whole range; this suits tests, the verifier that recomputes a
/// log from its events, and small trees. A store's tree is read from tiles instead.
impl NodeSource for [Hash] {
    fn node(&self, height: u8, index: u64) -> Result<Hash, ProofError> {
        let missing = || ProofError::Missing { height, index };
        let width = 1u64.checked_shl(u32::from(height)).ok_or_else(missing)?;
        let start = index.checked_mul(width).ok_or_else(missing)?;
        let end = start.checked_add(width).ok_or_else(missing)?;
        let (Ok(start), Ok(end)) = (usize::try_from(start), usize::try_from(end)) else {
            return Err(missing());
        };
        self.get(start..end).map(root_of).ok_or_else(missing)
    }
}

impl NodeSource for Vec<Hash> {
    fn node(&self, height: u8, index: u64) -> Result<Hash, ProofError> {
        self.as_slice().node(height, index)
    }
}

/// Returns the ranges `(start, size)` whose heads are the inclusion proof of `leaf` in the
/// tree of `size > leaf` leaves, from the leaf up.
///
/// It walks RFC 6962's `PATH(m, D[n])` from the top: at each split `k` the leaf goes to one
/// side and the head of the other side is a proof hash. Every range it names is a node of the
/// RFC's recursion, so its start is a multiple of its largest perfect subtree, as
/// [`NodeSource::range_root`] needs.
fn inclusion_ranges(leaf: u64, size: u64) -> Vec<(u64, u64)> {
    let mut out = Vec::new();
    let (mut start, mut n, mut m) = (0u64, size, leaf);
    while n > 1 {
        let k = split(n);
        if m < k {
            out.push((start + k, n - k));
            n = k;
        } else {
            out.push((start, k));
            start += k;
            m -= k;
            n -= k;
        }
    }
    out.reverse();
    out
}

/// Returns the ranges `(start, size)` whose heads are the consistency proof between the trees
/// of `0 < old < new` leaves, from the bottom up: RFC 6962's `SUBPROOF(m, D[n], b)` walked
/// from the top, `whole` being its `b` (the old tree's head is still the node in hand).
fn consistency_ranges(old: u64, new: u64) -> Vec<(u64, u64)> {
    let mut out = Vec::new();
    let (mut start, mut n, mut m, mut whole) = (0u64, new, old, true);
    // `0 < m <= n` holds throughout and `n` shrinks each turn, so `m == n` ends the walk.
    while m < n {
        let k = split(n);
        if m <= k {
            out.push((start + k, n - k));
            n = k;
        } else {
            out.push((start, k));
            start += k;
            m -= k;
            n -= k;
            whole = false;
        }
    }
    if !whole {
        out.push((start, m));
    }
    out.reverse();
    out
}

fn not_in_tree(leaf: u64, size: u64) -> ProofError {
    ProofError::OutOfRange(format!(
        "leaf {leaf} is not in a tree of {size} leaves (the leaves are 0 to {size} - 1)"
    ))
}

fn not_a_prefix(old: u64, new: u64) -> ProofError {
    ProofError::OutOfRange(format!(
        "a tree of {old} leaves is not a prefix of a tree of {new} leaves: it is larger"
    ))
}

/// Returns a hash as the checkpoints print it: standard base64.
pub fn to_base64(hash: &Hash) -> String {
    use base64::Engine as _;
    base64::engine::general_purpose::STANDARD.encode(hash)
}

/// Returns the inclusion proof of leaf `leaf` in the tree of `size` leaves (RFC 6962 §2.1.1
/// `PATH`), the sibling hashes from the leaf up.
pub fn inclusion_proof(
    src: &(impl NodeSource + ?Sized),
    leaf: u64,
    size: u64,
) -> Result<Vec<Hash>, ProofError> {
    if leaf >= size {
        return Err(not_in_tree(leaf, size));
    }
    inclusion_ranges(leaf, size)
        .into_iter()
        .map(|(start, n)| src.range_root(start, n))
        .collect()
}

/// Returns the consistency proof between the trees of `old` and `new` leaves (RFC 6962
/// §2.1.2 `PROOF`): empty when `old` is 0 or `new`.
pub fn consistency_proof(
    src: &(impl NodeSource + ?Sized),
    old: u64,
    new: u64,
) -> Result<Vec<Hash>, ProofError> {
    if old > new {
        return Err(not_a_prefix(old, new));
    }
    if old == 0 || old == new {
        return Ok(Vec::new());
    }
    consistency_ranges(old, new)
        .into_iter()
        .map(|(start, n)| src.range_root(start, n))
        .collect()
}

/// Returns the number of hashes in the inclusion proof of `leaf` in the tree of `size` leaves.
///
/// The leaf and the last leaf share the path down to the bit where they first differ; below
/// it every level gives one hash (`inner`), above it one for each set bit, where the leaf's
/// side has a left sibling (`border`). This is the length [`verify_inclusion`] insists on.
pub fn inclusion_proof_len(leaf: u64, size: u64) -> Result<usize, ProofError> {
    if leaf >= size {
        return Err(not_in_tree(leaf, size));
    }
    let inner = 64 - (leaf ^ (size - 1)).leading_zeros();
    let border = leaf.checked_shr(inner).unwrap_or(0).count_ones();
    Ok((inner + border) as usize)
}

/// Returns the number of hashes in the consistency proof between the trees of `old` and `new`
/// leaves.
pub fn consistency_proof_len(old: u64, new: u64) -> Result<usize, ProofError> {
    if old > new {
        return Err(not_a_prefix(old, new));
    }
    if old == 0 || old == new {
        return Ok(0);
    }
    Ok(consistency_ranges(old, new).len())
}

/// Returns the longest inclusion proof in a tree of `size` leaves, in hashes: that of leaf 0,
/// `ceil(log2(size))`. A receipt carries this many hashes at most.
pub fn worst_inclusion_proof_len(size: u64) -> usize {
    if size < 2 {
        return 0;
    }
    (64 - (size - 1).leading_zeros()) as usize
}

/// Returns the mean length of the inclusion proofs of all leaves of a tree of `size` leaves,
/// in hashes: the typical receipt.
///
/// A proof has one hash per level above its leaf, so the sum over all leaves is the sum of
/// their depths: `S(n) = n + S(k) + S(n - k)` at the split `k`, where the perfect left side
/// gives `S(k) = k log2 k`. The right side is walked down, `log2 n` steps in all.
pub fn mean_inclusion_proof_len(size: u64) -> f64 {
    if size == 0 {
        return 0.0;
    }
    let mut total = 0u128;
    let mut n = size;
    while n > 1 {
        let k = split(n);
        total += u128::from(n) + u128::from(k) * u128::from(k.trailing_zeros());
        n -= k;
    }
    total as f64 / size as f64
}

/// Returns the head that `proof` leads to from the leaf hash `leaf_hash` at `leaf` in a tree
/// of `size` leaves: RFC 9162 §2.1.3.2, without the final comparison.
pub fn inclusion_root(
    leaf_hash: &Hash,
    leaf: u64,
    size: u64,
    proof: &[Hash],
) -> Result<Hash, ProofError> {
    if leaf >= size {
        return Err(not_in_tree(leaf, size));
    }
    let want = inclusion_proof_len(leaf, size)?;
    if proof.len() != want {
        return Err(ProofError::Mismatch(format!(
            "the proof of leaf {leaf} in a tree of {size} leaves has {} hashes, it needs {want}",
            proof.len()
        )));
    }
    // RFC 9162 §2.1.3.2, step by step: `fnode` is the leaf's node at each level, `snode`
    // the last leaf's; a proof hash goes on the left where the node is a right child or the
    // last node of its level (then it has no right sibling and climbs until it has one).
    let (mut fnode, mut snode) = (leaf, size - 1);
    let mut r = *leaf_hash;
    for p in proof {
        if snode == 0 {
            return Err(ProofError::Mismatch(format!(
                "the proof of leaf {leaf} in a tree of {size} leaves is longer than the tree is high"
            )));
        }
        if fnode & 1 == 1 || fnode == snode {
            r = node_hash(p, &r);
            while fnode & 1 == 0 && fnode != 0 {
                fnode >>= 1;
                snode >>= 1;
            }
        } else {
            r = node_hash(&r, p);
        }
        fnode >>= 1;
        snode >>= 1;
    }
    if snode != 0 {
        return Err(ProofError::Mismatch(format!(
            "the proof of leaf {leaf} in a tree of {size} leaves stops short of the root"
        )));
    }
    Ok(r)
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
    let got = inclusion_root(leaf_hash, leaf, size, proof)?;
    if got != *root {
        return Err(ProofError::Mismatch(format!(
            "the proof of leaf {leaf} in a tree of {size} leaves leads to root {}, the checkpoint says {}",
            to_base64(&got),
            to_base64(root)
        )));
    }
    Ok(())
}

/// Checks that `proof` proves the tree of `old` leaves with head `old_root` a prefix of the
/// tree of `new` leaves with head `new_root` (RFC 9162 §2.1.4.2).
///
/// The trees of 0 leaves and of `new` leaves need an empty proof: the first must have the
/// empty head, the second the same head on both sides.
pub fn verify_consistency(
    old: u64,
    new: u64,
    old_root: &Hash,
    new_root: &Hash,
    proof: &[Hash],
) -> Result<(), ProofError> {
    if old > new {
        return Err(not_a_prefix(old, new));
    }
    let want = consistency_proof_len(old, new)?;
    if proof.len() != want {
        return Err(ProofError::Mismatch(format!(
            "the consistency proof from {old} to {new} leaves has {} hashes, it needs {want}",
            proof.len()
        )));
    }
    if old == 0 {
        let empty = empty_root();
        if *old_root != empty {
            return Err(ProofError::Mismatch(format!(
                "the tree of 0 leaves has the head {}, the checkpoint says {}",
                to_base64(&empty),
                to_base64(old_root)
            )));
        }
    }
    if old == new {
        if old_root != new_root {
            return Err(ProofError::Mismatch(format!(
                "two checkpoints of {old} leaves differ: {} and {}",
                to_base64(old_root),
                to_base64(new_root)
            )));
        }
        return Ok(());
    }
    if old == 0 {
        return Ok(());
    }
    // RFC 9162 §2.1.4.2. When the old tree is perfect its head is the first node of the walk
    // and the proof leaves it out, so it is put back in front.
    let mut path: Vec<&Hash> = Vec::with_capacity(proof.len() + 1);
    if old.is_power_of_two() {
        path.push(old_root);
    }
    path.extend(proof);
    let Some((first, rest)) = path.split_first() else {
        return Err(ProofError::Mismatch(format!(
            "the consistency proof from {old} to {new} leaves is empty"
        )));
    };
    let (mut fnode, mut snode) = (old - 1, new - 1);
    while fnode & 1 == 1 {
        fnode >>= 1;
        snode >>= 1;
    }
    let (mut fr, mut sr) = (**first, **first);
    for c in rest {
        if snode == 0 {
            return Err(ProofError::Mismatch(format!(
                "the consistency proof from {old} to {new} leaves is longer than the tree is high"
            )));
        }
        if fnode & 1 == 1 || fnode == snode {
            fr = node_hash(c, &fr);
            sr = node_hash(c, &sr);
            while fnode & 1 == 0 && fnode != 0 {
                fnode >>= 1;
                snode >>= 1;
            }
        } else {
            sr = node_hash(&sr, c);
        }
        fnode >>= 1;
        snode >>= 1;
    }
    if snode != 0 {
        return Err(ProofError::Mismatch(format!(
            "the consistency proof from {old} to {new} leaves stops short of the root"
        )));
    }
    if fr != *old_root {
        return Err(ProofError::Mismatch(format!(
            "the consistency proof leads to the root {} for {old} leaves, the checkpoint says {}",
            to_base64(&fr),
            to_base64(old_root)
        )));
    }
    if sr != *new_root {
        return Err(ProofError::Mismatch(format!(
            "the consistency proof leads to the root {} for {new} leaves, the checkpoint says {}",
            to_base64(&sr),
            to_base64(new_root)
        )));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Says whether `(start, size)` is a range [`NodeSource::range_root`] can hash: `start` a
    /// multiple of its largest perfect subtree.
    fn aligned(start: u64, size: u64) -> bool {
        size > 0 && start.is_multiple_of(1 << (63 - size.leading_zeros()))
    }

    #[test]
    fn the_walks_name_aligned_ranges_and_the_lengths_count_them() {
        for size in 1..=300u64 {
            for leaf in 0..size {
                let ranges = inclusion_ranges(leaf, size);
                assert!(ranges.iter().all(|&(s, n)| aligned(s, n)), "{ranges:?}");
                // The ranges and the leaf cover the tree once each.
                let covered: u64 = ranges.iter().map(|r| r.1).sum();
                assert_eq!(covered + 1, size, "leaf {leaf} in {size}");
                assert_eq!(inclusion_proof_len(leaf, size), Ok(ranges.len()));
            }
            for old in 1..size {
                let ranges = consistency_ranges(old, size);
                assert!(ranges.iter().all(|&(s, n)| aligned(s, n)), "{ranges:?}");
                assert!(!ranges.is_empty() && ranges.len() <= 2 * 64);
            }
        }
    }

    #[test]
    fn split_is_the_largest_power_of_two_below() {
        for (n, k) in [
            (0, 0),
            (1, 0),
            (2, 1),
            (3, 2),
            (7, 4),
            (8, 4),
            (9, 8),
            (28_937, 16_384),
        ] {
            assert_eq!(split(n), k, "{n}");
        }
        assert_eq!(split(u64::MAX), 1 << 63);
    }

    #[test]
    fn a_slice_has_no_node_past_its_end_or_past_the_widest() {
        let leaves: Vec<Hash> = (0u8..5).map(|i| leaf_hash(&[i])).collect();
        assert_eq!(leaves.node(2, 0), Ok(root_of(&leaves[..4])));
        assert_eq!(leaves.node(0, 4), Ok(leaves[4]));
        for (height, index) in [(0, 5), (2, 1), (3, 0), (64, 0), (200, 1), (1, u64::MAX)] {
            assert_eq!(
                leaves.node(height, index),
                Err(ProofError::Missing { height, index })
            );
        }
    }

    #[test]
    fn proof_lengths_at_the_ends_of_u64() {
        assert_eq!(inclusion_proof_len(0, u64::MAX), Ok(64));
        assert_eq!(inclusion_proof_len(u64::MAX - 1, u64::MAX), Ok(63));
        assert_eq!(worst_inclusion_proof_len(u64::MAX), 64);
        assert!(inclusion_proof_len(u64::MAX, u64::MAX).is_err());
        assert_eq!(
            consistency_proof_len(u64::MAX - 1, u64::MAX).map(|n| n > 0),
            Ok(true)
        );
        assert!((mean_inclusion_proof_len(u64::MAX) - 64.0).abs() < 1e-6);
    }
}
