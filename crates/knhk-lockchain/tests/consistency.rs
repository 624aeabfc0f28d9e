//! Consistency proofs between signed checkpoints: made for every pair of sizes of a small
//! tree and verified with the key alone; every changed field refused with a message naming
//! it; the JSON form.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use knhk_lockchain::consistency::{CONSISTENCY_FORMAT, ConsistencyProof};
use knhk_lockchain::merkle::{Hash, consistency_proof, leaf_hash, root_of};
use knhk_lockchain::note::{Checkpoint, Signer};

const ORIGIN: &str = "knhk.example/log";

fn signer() -> Signer {
    Signer::from_seed(ORIGIN, [42; 32]).unwrap()
}

fn leaves(n: u64) -> Vec<Hash> {
    (0..n).map(|i| leaf_hash(&i.to_be_bytes())).collect()
}

fn note(signer: &Signer, leaves: &[Hash], size: u64) -> String {
    signer
        .sign(&Checkpoint {
            origin: ORIGIN.to_owned(),
            size,
            root: root_of(&leaves[..size as usize]),
            extensions: vec![],
        })
        .unwrap()
}

fn proof(signer: &Signer, leaves: &[Hash], old: u64, new: u64) -> ConsistencyProof {
    let hashes = consistency_proof(&leaves[..new as usize], old, new).unwrap();
    ConsistencyProof::new(
        old,
        new,
        &hashes,
        note(signer, leaves, old),
        note(signer, leaves, new),
    )
}

fn problem(p: &ConsistencyProof) -> String {
    p.verify(&signer().verifier()).unwrap_err().to_string()
}

#[test]
fn every_proof_between_two_checkpoints_verifies() {
    let s = signer();
    let all = leaves(40);
    for new in 1..=40 {
        for old in 1..=new {
            let p = proof(&s, &all, old, new);
            let v = p.verify(&s.verifier()).unwrap();
            assert_eq!((v.old_size, v.new_size), (old, new));
            assert_eq!(v.origin, ORIGIN);
            assert_eq!(v.old_root, root_of(&all[..old as usize]));
            assert_eq!(v.new_root, root_of(&all[..new as usize]));
        }
    }
}

#[test]
fn a_changed_proof_hash_is_refused() {
    let s = signer();
    let all = leaves(40);
    let mut p = proof(&s, &all, 13, 37);
    p.proof[1] = knhk_lockchain::merkle::to_base64(&[7; 32]);
    assert!(
        problem(&p).starts_with("the consistency proof:"),
        "{}",
        problem(&p)
    );
    let mut p = proof(&s, &all, 13, 37);
    p.proof.pop();
    assert!(problem(&p).contains("hashes, it needs"), "{}", problem(&p));
    let mut p = proof(&s, &all, 13, 37);
    p.proof[0] = "not base64!".to_owned();
    assert!(
        problem(&p).contains("proof hash 0 is not base64"),
        "{}",
        problem(&p)
    );
    let mut p = proof(&s, &all, 13, 37);
    p.proof[0] = "AAAA".to_owned();
    assert!(
        problem(&p).contains("proof hash 0 is 3 bytes"),
        "{}",
        problem(&p)
    );
}

#[test]
fn a_root_of_another_tree_is_refused_though_signed() {
    let s = signer();
    let all = leaves(40);
    let mut other = all.clone();
    other[5] = leaf_hash(b"changed");
    let mut p = proof(&s, &all, 13, 37);
    // A signed checkpoint of a tree whose first 13 leaves differ: the proof fails.
    p.old_checkpoint = note(&s, &other, 13);
    assert!(
        problem(&p).starts_with("the consistency proof:"),
        "{}",
        problem(&p)
    );
}

#[test]
fn a_changed_note_or_size_is_named() {
    let s = signer();
    let all = leaves(40);
    let mut p = proof(&s, &all, 13, 37);
    p.new_checkpoint = p.new_checkpoint.replacen("37", "38", 1);
    assert!(
        problem(&p).starts_with("the new checkpoint:"),
        "{}",
        problem(&p)
    );
    let mut p = proof(&s, &all, 13, 37);
    p.old_checkpoint = note(&Signer::from_seed(ORIGIN, [1; 32]).unwrap(), &all, 13);
    assert!(
        problem(&p).starts_with("the old checkpoint:"),
        "{}",
        problem(&p)
    );
    let mut p = proof(&s, &all, 13, 37);
    p.old_size = 12;
    assert!(
        problem(&p)
            .contains("the old checkpoint signs a tree of 13 leaves, the proof's old_size is 12"),
        "{}",
        problem(&p)
    );
    let mut p = proof(&s, &all, 13, 37);
    p.new_size = 36;
    assert!(problem(&p).contains("new_size is 36"), "{}", problem(&p));
    let mut p = proof(&s, &all, 13, 37);
    std::mem::swap(&mut p.old_checkpoint, &mut p.new_checkpoint);
    (p.old_size, p.new_size) = (37, 13);
    assert!(
        problem(&p).contains("old_size 37 is larger than new_size 13"),
        "{}",
        problem(&p)
    );
    let mut p = proof(&s, &all, 13, 37);
    p.format = "knhk-consistency/v0".to_owned();
    assert!(problem(&p).contains("format"), "{}", problem(&p));
}

#[test]
fn the_json_form_goes_there_and_back_and_refuses_unknown_fields() {
    let s = signer();
    let all = leaves(40);
    let p = proof(&s, &all, 13, 37);
    let text = p.to_json().unwrap();
    let value: serde_json::Value = serde_json::from_str(&text).unwrap();
    assert_eq!(value["format"], CONSISTENCY_FORMAT);
    assert_eq!(value["old_size"], 13);
    assert_eq!(value["new_size"], 37);
    assert_eq!(ConsistencyProof::from_json(&text).unwrap(), p);
    let mut extra = value.clone();
    extra["extra"] = serde_json::json!(1);
    let e = ConsistencyProof::from_json(&extra.to_string()).unwrap_err();
    assert!(e.to_string().contains("extra"), "{e}");
}
