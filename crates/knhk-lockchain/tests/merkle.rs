//! The Merkle proofs against the published RFC 6962 test vectors, against the tree kept in
//! tiles, and against random trees.
//!
//! The vectors are those of transparency-dev/merkle (Apache-2.0), typed in here from
//! `testonly/constants.go` (`LeafInputs`, `NodeHashes`, `RootHashes`, `EmptyRootHash`),
//! `testonly/reference_test.go` (`TestRefInclusionProof`, `TestRefConsistencyProof`) and
//! `proof/verify_test.go` (`inclusionProofs`, `consistencyProofs`, and the ways
//! `corruptInclusionProof` / `corruptConsistencyProof` spoil a proof). Certificate
//! Transparency's Go and C++ tests use the same set.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use std::collections::{BTreeMap, BTreeSet};

use knhk_core::CaseId;
use knhk_lockchain::merkle::{
    self, Hash, NodeSource, ProofError, consistency_proof, consistency_proof_len, empty_root,
    inclusion_proof, inclusion_proof_len, leaf_hash, mean_inclusion_proof_len, root_of,
    verify_consistency, verify_inclusion, worst_inclusion_proof_len,
};
use knhk_lockchain::tiles::{LeafRef, Tail, Tile, TileId, TileSet};
use proptest::prelude::*;

fn bytes(hex: &str) -> Vec<u8> {
    (0..hex.len())
        .step_by(2)
        .map(|i| u8::from_str_radix(&hex[i..i + 2], 16).unwrap())
        .collect()
}

fn h(hex: &str) -> Hash {
    bytes(hex).try_into().unwrap()
}

/// `LeafInputs()`.
const LEAVES: [&str; 8] = [
    "",
    "00",
    "10",
    "2021",
    "3031",
    "40414243",
    "5051525354555657",
    "606162636465666768696a6b6c6d6e6f",
];

/// `RootHashes()`: the head of the tree of the first `n` leaves, `n` = 0 to 8.
const ROOTS: [&str; 9] = [
    "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855",
    "6e340b9cffb37a989ca544e6bb780a2c78901d3fb33738768511a30617afa01d",
    "fac54203e7cc696cf0dfcb42c92a1d9dbaf70ad9e621f4bd8d98662f00e3c125",
    "aeb6bcfe274b70a14fb067a5e5578264db0fa9b51af5e0ba159158f329e06e77",
    "d37ee418976dd95753c1c73862b9398fa2a2cf9b4ff0fdfe8b30cd95209614b7",
    "4e3bbb1f7b478dcfe71fb631631519a3bca12c9aefca1612bfce4c13a86264d4",
    "76e67dadbcdf1e10e1b74ddc608abd2f98dfb16fbce75277b5232a127f2087ef",
    "ddb89be403809e325750d3d263cd78929c2942b7942a34b77e122c9594a74c8c",
    "5dc9da79a70659a9ad559cb701ded9a2ab9d823aad2f4960cfe370eff4604328",
];

/// `NodeHashes()`: every perfect subtree of the 8 leaves, by height then index.
const NODES: [&[&str]; 4] = [
    &[
        "6e340b9cffb37a989ca544e6bb780a2c78901d3fb33738768511a30617afa01d",
        "96a296d224f285c67bee93c30f8a309157f0daa35dc5b87e410b78630a09cfc7",
        "0298d122906dcfc10892cb53a73992fc5b9f493ea4c9badb27b791b4127a7fe7",
        "07506a85fd9dd2f120eb694f86011e5bb4662e5c415a62917033d4a9624487e7",
        "bc1a0643b12e4d2d7c77918f44e0f4f79a838b6cf9ec5b5c283e1f4d88599e6b",
        "4271a26be0d8a84f0bd54c8c302e7cb3a3b5d1fa6780a40bcce2873477dab658",
        "b08693ec2e721597130641e8211e7eedccb4c26413963eee6c1e2ed16ffb1a5f",
        "46f6ffadd3d06a09ff3c5860d2755c8b9819db7df44251788c7d8e3180de8eb1",
    ],
    &[
        "fac54203e7cc696cf0dfcb42c92a1d9dbaf70ad9e621f4bd8d98662f00e3c125",
        "5f083f0a1a33ca076a95279832580db3e0ef4584bdff1f54c8a360f50de3031e",
        "0ebc5d3437fbe2db158b9f126a1d118e308181031d0a949f8dededebc558ef6a",
        "ca854ea128ed050b41b35ffc1b87b8eb2bde461e9e3b5596ece6b9d5975a0ae0",
    ],
    &[
        "d37ee418976dd95753c1c73862b9398fa2a2cf9b4ff0fdfe8b30cd95209614b7",
        "6b47aaf29ee3c2af9af889bc1fb9254dabd31177f16232dd6aab035ca39bf6e4",
    ],
    &["5dc9da79a70659a9ad559cb701ded9a2ab9d823aad2f4960cfe370eff4604328"],
];

/// The inclusion proofs listed: `(leaf index, tree size, proof)`. From `TestRefInclusionProof`
/// and `inclusionProofs` (whose leaf numbers count from 1: here they are indexes).
const INCLUSION: &[(u64, u64, &[&str])] = &[
    (0, 1, &[]),
    (
        0,
        2,
        &["96a296d224f285c67bee93c30f8a309157f0daa35dc5b87e410b78630a09cfc7"],
    ),
    (
        1,
        2,
        &["6e340b9cffb37a989ca544e6bb780a2c78901d3fb33738768511a30617afa01d"],
    ),
    (
        2,
        3,
        &["fac54203e7cc696cf0dfcb42c92a1d9dbaf70ad9e621f4bd8d98662f00e3c125"],
    ),
    (
        1,
        5,
        &[
            "6e340b9cffb37a989ca544e6bb780a2c78901d3fb33738768511a30617afa01d",
            "5f083f0a1a33ca076a95279832580db3e0ef4584bdff1f54c8a360f50de3031e",
            "bc1a0643b12e4d2d7c77918f44e0f4f79a838b6cf9ec5b5c283e1f4d88599e6b",
        ],
    ),
    (
        0,
        8,
        &[
            "96a296d224f285c67bee93c30f8a309157f0daa35dc5b87e410b78630a09cfc7",
            "5f083f0a1a33ca076a95279832580db3e0ef4584bdff1f54c8a360f50de3031e",
            "6b47aaf29ee3c2af9af889bc1fb9254dabd31177f16232dd6aab035ca39bf6e4",
        ],
    ),
    (
        5,
        8,
        &[
            "bc1a0643b12e4d2d7c77918f44e0f4f79a838b6cf9ec5b5c283e1f4d88599e6b",
            "ca854ea128ed050b41b35ffc1b87b8eb2bde461e9e3b5596ece6b9d5975a0ae0",
            "d37ee418976dd95753c1c73862b9398fa2a2cf9b4ff0fdfe8b30cd95209614b7",
        ],
    ),
];

/// The consistency proofs listed: `(old size, new size, proof)`. From `TestRefConsistencyProof`
/// and `consistencyProofs`.
const CONSISTENCY: &[(u64, u64, &[&str])] = &[
    (1, 1, &[]),
    (
        1,
        8,
        &[
            "96a296d224f285c67bee93c30f8a309157f0daa35dc5b87e410b78630a09cfc7",
            "5f083f0a1a33ca076a95279832580db3e0ef4584bdff1f54c8a360f50de3031e",
            "6b47aaf29ee3c2af9af889bc1fb9254dabd31177f16232dd6aab035ca39bf6e4",
        ],
    ),
    (
        2,
        5,
        &[
            "5f083f0a1a33ca076a95279832580db3e0ef4584bdff1f54c8a360f50de3031e",
            "bc1a0643b12e4d2d7c77918f44e0f4f79a838b6cf9ec5b5c283e1f4d88599e6b",
        ],
    ),
    (
        6,
        8,
        &[
            "0ebc5d3437fbe2db158b9f126a1d118e308181031d0a949f8dededebc558ef6a",
            "ca854ea128ed050b41b35ffc1b87b8eb2bde461e9e3b5596ece6b9d5975a0ae0",
            "d37ee418976dd95753c1c73862b9398fa2a2cf9b4ff0fdfe8b30cd95209614b7",
        ],
    ),
    (
        6,
        7,
        &[
            "0ebc5d3437fbe2db158b9f126a1d118e308181031d0a949f8dededebc558ef6a",
            "b08693ec2e721597130641e8211e7eedccb4c26413963eee6c1e2ed16ffb1a5f",
            "d37ee418976dd95753c1c73862b9398fa2a2cf9b4ff0fdfe8b30cd95209614b7",
        ],
    ),
];

/// `sha256SomeHash` of `verify_test.go`: a hash that is no node of the tree.
const SOME_HASH: &str = "abacaba000000000000000000000000000000000000000000060061e00123456";

fn vector_leaves() -> Vec<Hash> {
    LEAVES.iter().map(|l| leaf_hash(&bytes(l))).collect()
}

fn hashes(hex: &[&str]) -> Vec<Hash> {
    hex.iter().map(|x| h(x)).collect()
}

#[test]
fn the_published_leaf_node_and_root_hashes_are_recomputed() {
    assert_eq!(empty_root(), h(ROOTS[0]), "the empty tree");
    let leaves = vector_leaves();
    for (n, root) in ROOTS.iter().enumerate() {
        assert_eq!(root_of(&leaves[..n]), h(root), "the head of {n} leaves");
    }
    for (height, nodes) in NODES.iter().enumerate() {
        for (index, node) in nodes.iter().enumerate() {
            assert_eq!(
                leaves.node(height as u8, index as u64).unwrap(),
                h(node),
                "node {height}/{index}"
            );
        }
    }
    // Past the leaves there is no node.
    assert_eq!(
        leaves.node(0, 8),
        Err(ProofError::Missing {
            height: 0,
            index: 8
        })
    );
    assert_eq!(
        leaves.node(3, 1),
        Err(ProofError::Missing {
            height: 3,
            index: 1
        })
    );
}

#[test]
fn the_published_inclusion_proofs_are_made_and_verify() {
    let leaves = vector_leaves();
    for &(leaf, size, want) in INCLUSION {
        let proof = inclusion_proof(&leaves[..size as usize], leaf, size).unwrap();
        assert_eq!(proof, hashes(want), "the proof of leaf {leaf} in {size}");
        assert_eq!(inclusion_proof_len(leaf, size).unwrap(), want.len());
        let root = h(ROOTS[size as usize]);
        verify_inclusion(&leaves[leaf as usize], leaf, size, &proof, &root).unwrap();
    }
    // Every leaf of every size, not just those listed.
    for size in 1..=8u64 {
        let root = h(ROOTS[size as usize]);
        for leaf in 0..size {
            let proof = inclusion_proof(&leaves[..size as usize], leaf, size).unwrap();
            verify_inclusion(&leaves[leaf as usize], leaf, size, &proof, &root)
                .unwrap_or_else(|e| panic!("leaf {leaf} in {size}: {e}"));
        }
    }
}

#[test]
fn the_published_consistency_proofs_are_made_and_verify() {
    let leaves = vector_leaves();
    for &(old, new, want) in CONSISTENCY {
        let proof = consistency_proof(&leaves, old, new).unwrap();
        assert_eq!(proof, hashes(want), "the proof from {old} to {new}");
        assert_eq!(consistency_proof_len(old, new).unwrap(), want.len());
        verify_consistency(
            old,
            new,
            &h(ROOTS[old as usize]),
            &h(ROOTS[new as usize]),
            &proof,
        )
        .unwrap();
    }
    for new in 0..=8u64 {
        for old in 0..=new {
            let proof = consistency_proof(&leaves, old, new).unwrap();
            verify_consistency(
                old,
                new,
                &h(ROOTS[old as usize]),
                &h(ROOTS[new as usize]),
                &proof,
            )
            .unwrap_or_else(|e| panic!("from {old} to {new}: {e}"));
        }
    }
}

/// Returns the ways `corruptInclusionProof` spoils a good proof, each with its name:
/// `(leaf, size, leaf hash, proof, root)`.
#[allow(clippy::type_complexity)]
fn spoiled_inclusion(
    leaf: u64,
    size: u64,
    leaf_hash: Hash,
    proof: &[Hash],
    root: Hash,
) -> Vec<(String, u64, u64, Hash, Vec<Hash>, Hash)> {
    let mut out = Vec::new();
    let mut add = |name: &str, l: u64, s: u64, lh: Hash, p: Vec<Hash>, r: Hash| {
        out.push((name.to_owned(), l, s, lh, p, r))
    };
    let p = proof.to_vec();
    add(
        "leaf - 1",
        leaf.wrapping_sub(1),
        size,
        leaf_hash,
        p.clone(),
        root,
    );
    add("leaf + 1", leaf + 1, size, leaf_hash, p.clone(), root);
    add("leaf ^ 2", leaf ^ 2, size, leaf_hash, p.clone(), root);
    add("size * 2", leaf, size * 2, leaf_hash, p.clone(), root);
    add("size / 2", leaf, size / 2, leaf_hash, p.clone(), root);
    add(
        "wrong leaf",
        leaf,
        size,
        merkle::leaf_hash(b"WrongLeaf"),
        p.clone(),
        root,
    );
    add("empty root", leaf, size, leaf_hash, p.clone(), empty_root());
    add(
        "random root",
        leaf,
        size,
        leaf_hash,
        p.clone(),
        h(SOME_HASH),
    );
    let mut more = p.clone();
    more.push([0; 32]);
    add("trailing garbage", leaf, size, leaf_hash, more, root);
    let mut more = p.clone();
    more.push(root);
    add("trailing root", leaf, size, leaf_hash, more, root);
    let mut more = vec![[0; 32]];
    more.extend(&p);
    add("preceding garbage", leaf, size, leaf_hash, more, root);
    let mut more = vec![root];
    more.extend(&p);
    add("preceding root", leaf, size, leaf_hash, more, root);
    for i in 0..p.len() {
        let mut bad = p.clone();
        bad[i][0] ^= 8;
        add(
            &format!("proof[{i}] bit 3"),
            leaf,
            size,
            leaf_hash,
            bad,
            root,
        );
    }
    if !p.is_empty() {
        add(
            "removed",
            leaf,
            size,
            leaf_hash,
            p[..p.len() - 1].to_vec(),
            root,
        );
    }
    if p.len() > 1 {
        let mut bad = vec![p[0], h(SOME_HASH)];
        bad.extend(&p[1..]);
        add("inserted", leaf, size, leaf_hash, bad, root);
    }
    out
}

#[test]
fn spoiled_published_inclusion_proofs_fail() {
    let leaves = vector_leaves();
    for &(leaf, size, want) in INCLUSION {
        let root = h(ROOTS[size as usize]);
        for (name, l, s, lh, p, r) in
            spoiled_inclusion(leaf, size, leaves[leaf as usize], &hashes(want), root)
        {
            assert!(
                verify_inclusion(&lh, l, s, &p, &r).is_err(),
                "leaf {leaf} in {size}, {name}: verified"
            );
        }
    }
    // `TestVerifyInclusion`'s probes: no leaf is in the empty tree, and size 1 has only leaf 0.
    for (leaf, size) in [(0, 0), (1, 0), (2, 1)] {
        let err = verify_inclusion(&h(SOME_HASH), leaf, size, &[], &empty_root()).unwrap_err();
        assert!(matches!(err, ProofError::OutOfRange(_)), "{leaf} {size}");
    }
    // `TestVerifyInclusionSingleEntry`: the head of one leaf is the leaf.
    let one = leaf_hash(b"data");
    verify_inclusion(&one, 0, 1, &[], &one).unwrap();
    assert!(verify_inclusion(&one, 0, 1, &[], &empty_root()).is_err());
    assert!(verify_inclusion(&empty_root(), 0, 1, &[], &one).is_err());
}

#[test]
fn spoiled_published_consistency_proofs_fail() {
    for &(old, new, want) in CONSISTENCY {
        let proof = hashes(want);
        if proof.is_empty() {
            continue;
        }
        let (r1, r2) = (h(ROOTS[old as usize]), h(ROOTS[new as usize]));
        let wrong = merkle::leaf_hash(b"WrongRoot");
        let mut probes: Vec<(String, u64, u64, Hash, Hash, Vec<Hash>)> = vec![
            ("old - 1".into(), old - 1, new, r1, r2, proof.clone()),
            ("old + 1".into(), old + 1, new, r1, r2, proof.clone()),
            ("old ^ 2".into(), old ^ 2, new, r1, r2, proof.clone()),
            ("new * 2".into(), old, new * 2, r1, r2, proof.clone()),
            ("new / 2".into(), old, new / 2, r1, r2, proof.clone()),
            ("wrong old root".into(), old, new, wrong, r2, proof.clone()),
            ("wrong new root".into(), old, new, r1, wrong, proof.clone()),
            ("swapped roots".into(), old, new, r2, r1, proof.clone()),
            ("empty proof".into(), old, new, r1, r2, Vec::new()),
        ];
        for (name, extra, front) in [
            ("trailing garbage", [0u8; 32], false),
            ("trailing old root", r1, false),
            ("trailing new root", r2, false),
            ("preceding garbage", [0u8; 32], true),
            ("preceding old root", r1, true),
            ("preceding new root", r2, true),
            ("preceding proof[0]", proof[0], true),
        ] {
            let mut p = proof.clone();
            if front {
                p.insert(0, extra);
            } else {
                p.push(extra);
            }
            probes.push((name.into(), old, new, r1, r2, p));
        }
        probes.push((
            "truncated".into(),
            old,
            new,
            r1,
            r2,
            proof[..proof.len() - 1].to_vec(),
        ));
        for i in 0..proof.len() {
            let mut p = proof.clone();
            p[i][0] ^= 16;
            probes.push((format!("proof[{i}] bit 4"), old, new, r1, r2, p));
        }
        for (name, o, n, a, b, p) in probes {
            assert!(
                verify_consistency(o, n, &a, &b, &p).is_err(),
                "from {old} to {new}, {name}: verified"
            );
        }
    }
}

#[test]
fn consistency_of_equal_and_empty_trees_needs_an_empty_proof_and_the_right_heads() {
    // After `TestVerifyConsistency`. One difference: there any head of the empty tree passes;
    // here it must be the empty tree's head, which is known.
    let (r1, r2) = (leaf_hash(b"don't care 1"), leaf_hash(b"don't care 2"));
    let empty = empty_root();
    verify_consistency(0, 0, &empty, &empty, &[]).unwrap();
    verify_consistency(0, 1, &empty, &r2, &[]).unwrap();
    verify_consistency(1, 1, &r2, &r2, &[]).unwrap();
    assert!(verify_consistency(0, 0, &r1, &r1, &[]).is_err());
    assert!(verify_consistency(0, 1, &r1, &r2, &[]).is_err());
    assert!(verify_consistency(0, 0, &empty, &r2, &[]).is_err());
    assert!(verify_consistency(1, 1, &r1, &r2, &[]).is_err());
    assert!(verify_consistency(1, 1, &empty, &r2, &[]).is_err());
    for (old, new) in [(1, 0), (2, 1)] {
        let err = verify_consistency(old, new, &r1, &r2, &[]).unwrap_err();
        assert!(matches!(err, ProofError::OutOfRange(_)), "{old} {new}");
    }
    assert!(
        verify_consistency(1, 2, &r1, &r2, &[]).is_err(),
        "empty proof"
    );
    for (old, new) in [(0, 0), (0, 1), (1, 1)] {
        assert!(
            verify_consistency(old, new, &empty, &empty, &[empty]).is_err(),
            "a needless hash from {old} to {new}"
        );
    }
}

#[test]
fn errors_name_what_does_not_hold() {
    let leaves = vector_leaves();
    assert_eq!(
        inclusion_proof(&leaves, 8, 8).unwrap_err().to_string(),
        "leaf 8 is not in a tree of 8 leaves (the leaves are 0 to 8 - 1)"
    );
    assert_eq!(
        consistency_proof(&leaves, 5, 4).unwrap_err().to_string(),
        "a tree of 5 leaves is not a prefix of a tree of 4 leaves: it is larger"
    );
    let proof = inclusion_proof(&leaves, 5, 8).unwrap();
    let err = verify_inclusion(&leaves[5], 5, 8, &proof, &h(ROOTS[7])).unwrap_err();
    assert_eq!(
        err.to_string(),
        format!(
            "the proof of leaf 5 in a tree of 8 leaves leads to root {}, the checkpoint says {}",
            merkle::to_base64(&h(ROOTS[8])),
            merkle::to_base64(&h(ROOTS[7]))
        )
    );
    assert_eq!(
        verify_inclusion(&leaves[5], 5, 8, &proof[..2], &h(ROOTS[8]))
            .unwrap_err()
            .to_string(),
        "the proof of leaf 5 in a tree of 8 leaves has 2 hashes, it needs 3"
    );
    let proof = consistency_proof(&leaves, 6, 8).unwrap();
    assert_eq!(
        verify_consistency(6, 8, &h(ROOTS[5]), &h(ROOTS[8]), &proof)
            .unwrap_err()
            .to_string(),
        format!(
            "the consistency proof leads to the root {} for 6 leaves, the checkpoint says {}",
            merkle::to_base64(&h(ROOTS[6])),
            merkle::to_base64(&h(ROOTS[5]))
        )
    );
    // A source without the node asked for says which.
    assert_eq!(
        inclusion_proof(&leaves[..4], 0, 8).unwrap_err(),
        ProofError::Missing {
            height: 2,
            index: 1
        }
    );
}

#[test]
fn receipt_sizes_at_a_thousand_a_million_and_a_billion_leaves() {
    // The bench reports these; they are fixed by the shape of the tree.
    assert_eq!(worst_inclusion_proof_len(1), 0);
    assert_eq!(worst_inclusion_proof_len(1_000), 10);
    assert_eq!(worst_inclusion_proof_len(1_000_000), 20);
    assert_eq!(worst_inclusion_proof_len(1_000_000_000), 30);
    assert_eq!(worst_inclusion_proof_len(1 << 30), 30);
    assert_eq!(mean_inclusion_proof_len(1 << 20), 20.0);
    for size in [1_000u64, 1_000_000, 1_000_000_000] {
        let mean = mean_inclusion_proof_len(size);
        let worst = worst_inclusion_proof_len(size) as f64;
        assert!(mean > worst - 1.0 && mean <= worst, "{size}: {mean}");
        assert_eq!(inclusion_proof_len(0, size).unwrap() as f64, worst);
    }
    // The mean is the mean of the lengths, counted the long way on small trees.
    for size in 1..300u64 {
        let total: usize = (0..size)
            .map(|l| inclusion_proof_len(l, size).unwrap())
            .sum();
        let mean = mean_inclusion_proof_len(size);
        assert!(
            (mean - total as f64 / size as f64).abs() < 1e-9,
            "{size}: {mean}"
        );
        let worst = (0..size)
            .map(|l| inclusion_proof_len(l, size).unwrap())
            .max();
        assert_eq!(worst, Some(worst_inclusion_proof_len(size)), "{size}");
    }
}

fn leaf_ref(i: u64) -> LeafRef {
    LeafRef {
        case: CaseId(uuid::Uuid::from_u64_pair(7, i / 10)),
        seq: i % 10,
    }
}

fn test_leaf(seed: u64, i: u64) -> Hash {
    let mut b = seed.to_be_bytes().to_vec();
    b.extend(i.to_be_bytes());
    leaf_hash(&b)
}

/// The sizes to stop at: either side of tile borders at levels 0, 1 and 2.
const BORDERS: [u64; 11] = [
    1, 2, 255, 256, 257, 511, 512, 65_535, 65_536, 65_537, 65_793,
];

/// Leaves worth a proof in a tree of `size`: the ends, the middle and those by a tile border.
fn probe_leaves(size: u64) -> BTreeSet<u64> {
    [
        0,
        1,
        255,
        256,
        257,
        65_535,
        65_536,
        size / 2,
        size.saturating_sub(2),
        size - 1,
    ]
    .into_iter()
    .filter(|&l| l < size)
    .collect()
}

#[test]
fn proofs_from_tiles_equal_proofs_from_the_leaves_across_tile_borders() {
    let all: Vec<Hash> = (0..*BORDERS.last().unwrap())
        .map(|i| test_leaf(1, i))
        .collect();
    // A perfect subtree does not depend on the size of the tree around it, so the nodes of
    // the largest tree answer for every smaller one. They are tied to `root_of` here; the
    // plain leaf slice (a hash of the whole range per node) serves the small sizes.
    let levels = Levels::new(&all);
    assert_eq!(
        levels.range_root(0, all.len() as u64).unwrap(),
        root_of(&all)
    );
    let mut tail = Tail::empty();
    let mut stored: BTreeMap<TileId, Tile> = BTreeMap::new();
    let mut at = 0u64;
    let mut earlier: Vec<(u64, Hash)> = Vec::new();
    for size in BORDERS {
        let batch: Vec<(LeafRef, Hash)> =
            (at..size).map(|i| (leaf_ref(i), all[i as usize])).collect();
        for t in tail.append(&batch) {
            stored.insert(t.id, t);
        }
        at = size;
        let leaves = &all[..size as usize];
        let root = levels.range_root(0, size).unwrap();
        if size <= 512 {
            assert_eq!(root_of(leaves), root, "the head at {size}");
        }
        let from_leaves = |make: &dyn Fn(&dyn NodeSource) -> Vec<Hash>| {
            if size <= 512 {
                make(&leaves.to_vec())
            } else {
                make(&levels)
            }
        };
        assert_eq!(tail.root(), root, "the tail's head at {size}");
        let tiles = TileSet::new(stored.values().cloned());
        assert_eq!(
            tiles.range_root(0, size).unwrap(),
            root,
            "the tiles' head at {size}"
        );
        for leaf in probe_leaves(size) {
            let want = from_leaves(&|s| inclusion_proof(s, leaf, size).unwrap());
            let from_tiles = inclusion_proof(&tiles, leaf, size).unwrap();
            assert_eq!(from_tiles, want, "leaf {leaf} in {size}");
            verify_inclusion(&all[leaf as usize], leaf, size, &from_tiles, &root).unwrap();
            // The tiles `needed` names are enough, and are at most two a level.
            let ids = TileSet::needed(|s| inclusion_proof(s, leaf, size));
            let levels: BTreeSet<u8> = ids.iter().map(|id| id.level).collect();
            assert!(ids.len() <= 2 * levels.len(), "{ids:?}");
            let few = TileSet::new(ids.iter().map(|id| stored[id].clone()));
            assert_eq!(
                inclusion_proof(&few, leaf, size).unwrap(),
                want,
                "leaf {leaf} in {size} from the tiles needed: {ids:?}"
            );
        }
        for &(old, old_root) in &earlier {
            let want = from_leaves(&|s| consistency_proof(s, old, size).unwrap());
            let from_tiles = consistency_proof(&tiles, old, size).unwrap();
            assert_eq!(from_tiles, want, "from {old} to {size}");
            verify_consistency(old, size, &old_root, &root, &from_tiles).unwrap();
            let ids = TileSet::needed(|s| consistency_proof(s, old, size));
            let few = TileSet::new(ids.iter().map(|id| stored[id].clone()));
            assert_eq!(
                consistency_proof(&few, old, size).unwrap(),
                want,
                "from {old} to {size} from the tiles needed: {ids:?}"
            );
        }
        earlier.push((size, root));
    }
}

/// Every node of a tree, level by level, made bottom up: a third way to the same hashes,
/// and cheap enough to prove every leaf of a random tree.
struct Levels(Vec<Vec<Hash>>);

impl Levels {
    fn new(leaves: &[Hash]) -> Levels {
        let mut levels = vec![leaves.to_vec()];
        while let Some(last) = levels.last()
            && last.len() > 1
        {
            let up = last
                .chunks_exact(2)
                .map(|pair| merkle::node_hash(&pair[0], &pair[1]))
                .collect();
            levels.push(up);
        }
        Levels(levels)
    }
}

impl NodeSource for Levels {
    fn node(&self, height: u8, index: u64) -> Result<Hash, ProofError> {
        self.0
            .get(usize::from(height))
            .and_then(|level| level.get(index as usize))
            .copied()
            .ok_or(ProofError::Missing { height, index })
    }
}

fn flip(proof: &[Hash], which: usize, bit: u8) -> Vec<Hash> {
    let mut bad = proof.to_vec();
    let at = which % bad.len();
    bad[at][usize::from(bit / 8) % 32] ^= 1 << (bit % 8);
    bad
}

proptest! {
    // Each case proves every leaf of a tree of up to 3000 leaves; a dozen keep the debug
    // build (an unoptimised SHA-256) quick.
    #![proptest_config(ProptestConfig::with_cases(12))]

    #[test]
    fn every_inclusion_proof_of_a_random_tree_verifies(
        size in 1u64..3000,
        seed in any::<u64>(),
    ) {
        let leaves: Vec<Hash> = (0..size).map(|i| test_leaf(seed, i)).collect();
        let root = root_of(&leaves);
        let levels = Levels::new(&leaves);
        prop_assert_eq!(levels.range_root(0, size).unwrap(), root);
        for leaf in 0..size {
            let proof = inclusion_proof(&levels, leaf, size).unwrap();
            prop_assert_eq!(proof.len(), inclusion_proof_len(leaf, size).unwrap());
            prop_assert!(
                verify_inclusion(&leaves[leaf as usize], leaf, size, &proof, &root).is_ok(),
                "leaf {} in {}", leaf, size
            );
        }
    }
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(64))]

    #[test]
    fn a_spoiled_inclusion_proof_fails(
        size in 1u64..3000,
        seed in any::<u64>(),
        pick in any::<u64>(),
        which in any::<usize>(),
        bit in any::<u8>(),
    ) {
        let leaves: Vec<Hash> = (0..size).map(|i| test_leaf(seed, i)).collect();
        let levels = Levels::new(&leaves);
        let root = levels.range_root(0, size).unwrap();
        let leaf = pick % size;
        let proof = inclusion_proof(&levels, leaf, size).unwrap();
        prop_assert_eq!(&inclusion_proof(leaves.as_slice(), leaf, size).unwrap(), &proof);
        let lh = leaves[leaf as usize];
        prop_assert!(verify_inclusion(&lh, leaf, size, &proof, &root).is_ok());
        if !proof.is_empty() {
            prop_assert!(verify_inclusion(&lh, leaf, size, &flip(&proof, which, bit), &root).is_err());
        }
        let mut wrong = lh;
        wrong[usize::from(bit / 8) % 32] ^= 1 << (bit % 8);
        prop_assert!(verify_inclusion(&wrong, leaf, size, &proof, &root).is_err());
        for other in [leaf.wrapping_sub(1), leaf + 1, leaf ^ 2, (pick >> 32) % size] {
            if other != leaf {
                prop_assert!(
                    verify_inclusion(&lh, other, size, &proof, &root).is_err(),
                    "leaf {} taken for {} in {}", leaf, other, size
                );
            }
        }
        // The proof does not bind every size (the signed checkpoint does): leaf 0 of 3 and
        // of 4 take the same turns. A size whose walk turns otherwise must fail.
        for other in [size * 2, size / 2, size + 1, size - 1, 1 + (pick >> 16) % 4000] {
            let same_turns = other > leaf && turns(leaf, other) == turns(leaf, size);
            if other != size && !same_turns {
                prop_assert!(
                    verify_inclusion(&lh, leaf, other, &proof, &root).is_err(),
                    "leaf {} of {} taken for a tree of {}", leaf, size, other
                );
            }
        }
    }

    #[test]
    fn consistency_between_random_sizes_verifies_and_fails_when_a_root_is_altered(
        new in 1u64..3000,
        pick in any::<u64>(),
        seed in any::<u64>(),
        which in any::<usize>(),
        bit in any::<u8>(),
    ) {
        let leaves: Vec<Hash> = (0..new).map(|i| test_leaf(seed, i)).collect();
        let levels = Levels::new(&leaves);
        let old = 1 + pick % new;
        let (old_root, new_root) = (root_of(&leaves[..old as usize]), root_of(&leaves));
        let proof = consistency_proof(&levels, old, new).unwrap();
        prop_assert_eq!(&consistency_proof(leaves.as_slice(), old, new).unwrap(), &proof);
        prop_assert_eq!(proof.len(), consistency_proof_len(old, new).unwrap());
        prop_assert!(verify_consistency(old, new, &old_root, &new_root, &proof).is_ok());
        let mut altered = old_root;
        altered[usize::from(bit / 8) % 32] ^= 1 << (bit % 8);
        prop_assert!(verify_consistency(old, new, &altered, &new_root, &proof).is_err());
        prop_assert!(verify_consistency(old, new, &old_root, &altered, &proof).is_err());
        let mut altered = new_root;
        altered[usize::from(bit / 8) % 32] ^= 1 << (bit % 8);
        prop_assert!(verify_consistency(old, new, &old_root, &altered, &proof).is_err());
        if !proof.is_empty() {
            prop_assert!(
                verify_consistency(old, new, &old_root, &new_root, &flip(&proof, which, bit)).is_err()
            );
        }
        // From nothing, any tree: an empty proof and the empty head.
        prop_assert!(verify_consistency(0, new, &empty_root(), &new_root, &[]).is_ok());
    }
}

/// Returns the turns of the RFC 9162 walk of `leaf` in a tree of `size` leaves: at each
/// step, whether the proof hash goes on the left. One proof serves two sizes with the same.
fn turns(leaf: u64, size: u64) -> Vec<bool> {
    let (mut f, mut s) = (leaf, size - 1);
    let mut out = Vec::new();
    while s > 0 {
        let left = f & 1 == 1 || f == s;
        out.push(left);
        if left {
            while f & 1 == 0 && f != 0 {
                f >>= 1;
                s >>= 1;
            }
        }
        f >>= 1;
        s >>= 1;
    }
    out
}
