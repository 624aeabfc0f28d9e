//! Receipts: made for every leaf of small trees and verified with the key alone; every
//! changed field refused with a message naming it; the JSON form; the golden receipt of the
//! documentation.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use knhk_core::{CaseId, CaseStatus, ElementId, Event, EventKind, TaskRef, Timestamp};
use knhk_lockchain::canonical::{event_bytes, event_leaf};
use knhk_lockchain::merkle::{Hash, inclusion_proof, root_of};
use knhk_lockchain::note::{Checkpoint, Signer};
use knhk_lockchain::receipt::{RECEIPT_FORMAT, Receipt, ReceiptError};
use serde_json::json;
use uuid::Uuid;

const ORIGIN: &str = "knhk.example/log";

fn signer() -> Signer {
    Signer::from_seed(ORIGIN, [42; 32]).unwrap()
}

/// The `i`-th event of the test log: three cases taking turns.
fn event(i: u64) -> (CaseId, Event) {
    let case = CaseId(Uuid::from_u128(u128::from(i % 3) + 1));
    let kind = match i % 4 {
        0 => EventKind::TaskEnabled {
            task: TaskRef {
                net_instance: 0,
                task: ElementId::new(format!("t{i}")),
            },
        },
        1 => EventKind::DataUpdated {
            changes: json!({"n": i, "x": (i as f64) / 3.0, "s": "é😀"})
                .as_object()
                .cloned()
                .unwrap(),
        },
        2 => EventKind::CaseStateChanged {
            from: CaseStatus::Running,
            to: CaseStatus::Suspended,
            reason: Some(format!("pause {i}")),
        },
        _ => EventKind::TimerFired {
            timer: knhk_core::TimerId(Uuid::from_u128(u128::from(i))),
        },
    };
    (
        case,
        Event {
            seq: i / 3 + 1,
            time: Timestamp(1_767_225_600_000 + i as i64),
            kind,
        },
    )
}

struct Log {
    events: Vec<(CaseId, Event)>,
    leaves: Vec<Hash>,
}

fn log(size: u64) -> Log {
    let events: Vec<_> = (0..size).map(event).collect();
    let leaves = events
        .iter()
        .map(|(c, e)| event_leaf(*c, e).unwrap())
        .collect();
    Log { events, leaves }
}

fn receipt(log: &Log, signer: &Signer, leaf: u64, size: u64) -> Receipt {
    let leaves = &log.leaves[..size as usize];
    let checkpoint = Checkpoint {
        origin: ORIGIN.to_owned(),
        size,
        root: root_of(leaves),
        extensions: vec![],
    };
    let note = signer.sign(&checkpoint).unwrap();
    let proof = inclusion_proof(leaves, leaf, size).unwrap();
    let (case, event) = &log.events[leaf as usize];
    Receipt::new(
        *case,
        event.seq,
        leaf,
        size,
        &event_bytes(*case, event).unwrap(),
        &proof,
        note,
    )
}

fn refused(r: &Receipt, signer: &Signer) -> String {
    match r.verify(&signer.verifier()) {
        Err(ReceiptError::Invalid(m)) => m,
        Ok(v) => panic!("a changed receipt verified: {v:?}"),
    }
}

#[test]
fn every_leaf_of_small_trees_has_a_receipt_that_verifies() {
    let signer = signer();
    let log = log(300);
    for size in [1u64, 2, 3, 7, 8, 9, 64, 257, 300] {
        for leaf in [0, size / 2, size - 1] {
            let r = receipt(&log, &signer, leaf, size);
            let v = r.verify(&signer.verifier()).unwrap();
            let (case, event) = &log.events[leaf as usize];
            assert_eq!(v.origin, ORIGIN);
            assert_eq!(v.case, *case);
            assert_eq!(v.seq, event.seq);
            assert_eq!(v.time, event.time);
            assert_eq!(v.event_type, event.kind.name());
            assert_eq!(v.leaf_index, leaf);
            assert_eq!(v.tree_size, size);
            assert_eq!(v.root, root_of(&log.leaves[..size as usize]));
        }
    }
    // A tree of one leaf: the proof is empty, the root is the leaf.
    let one = receipt(&log, &signer, 0, 1);
    assert!(one.inclusion.is_empty());
    assert_eq!(one.format, RECEIPT_FORMAT);
    one.verify(&signer.verifier()).unwrap();
}

#[test]
fn every_changed_field_is_refused_and_named() {
    let signer = signer();
    let log = log(100);
    let good = receipt(&log, &signer, 37, 100);
    good.verify(&signer.verifier()).unwrap();

    let mut r = good.clone();
    r.format = "knhk-receipt/v2".to_owned();
    assert!(refused(&r, &signer).starts_with("the receipt's format is \"knhk-receipt/v2\""));

    // The checkpoint: another key, a changed signature, a changed size.
    let other = Signer::from_seed(ORIGIN, [7; 32]).unwrap();
    assert!(
        refused(&good, &other)
            .contains("the checkpoint: the signature by knhk.example/log names key hash")
    );
    let mut r = good.clone();
    r.checkpoint = r.checkpoint.replacen(" ", " A", 2).replacen(" A", " ", 1);
    assert!(
        refused(&r, &signer).starts_with("the checkpoint: "),
        "{}",
        refused(&r, &signer)
    );
    let mut r = good.clone();
    r.checkpoint = r.checkpoint.replacen("\n100\n", "\n101\n", 1);
    assert!(refused(&r, &signer).contains("does not verify"));

    // The tree size against the checkpoint, the leaf index against the tree.
    let mut r = good.clone();
    r.tree_size = 99;
    assert_eq!(
        refused(&r, &signer),
        "the checkpoint signs a tree of 100 leaves, the receipt's tree_size is 99"
    );
    let mut r = receipt(&log, &signer, 37, 100);
    r.leaf_index = 100;
    assert_eq!(
        refused(&r, &signer),
        "leaf_index 100 is not in a tree of 100 leaves"
    );
    let mut r = good.clone();
    r.leaf_index = 38;
    assert!(refused(&r, &signer).starts_with("the inclusion proof: "));

    // The event: another case or seq named, bytes changed, bytes not canonical.
    let mut r = good.clone();
    r.case = CaseId(Uuid::from_u128(99));
    assert!(refused(&r, &signer).starts_with("the event is of case "));
    let mut r = good.clone();
    r.seq += 1;
    assert!(refused(&r, &signer).starts_with("the event is seq "));
    let (case, event) = &log.events[37];
    let text = String::from_utf8(event_bytes(*case, event).unwrap()).unwrap();
    // Event 37 is a data update: its string changed, still canonical, another leaf.
    assert!(text.contains("é😀"));
    let mut r = good.clone();
    r.event = base64(text.replace("é😀", "e😀").as_bytes());
    assert!(refused(&r, &signer).starts_with("the inclusion proof: the proof of leaf 37"));
    let mut r = good.clone();
    r.event = base64(text.replace(",", ", ").as_bytes());
    assert!(refused(&r, &signer).starts_with("the event bytes: not in canonical form"));
    let mut r = good.clone();
    r.event = "not base64!".to_owned();
    assert!(refused(&r, &signer).starts_with("the event is not base64"));

    // The proof: a hash changed, dropped, added, not base64, not 32 bytes.
    let mut r = good.clone();
    r.inclusion[2] = base64(&[0; 32]);
    assert!(refused(&r, &signer).starts_with("the inclusion proof: "));
    let mut r = good.clone();
    r.inclusion.pop();
    assert!(refused(&r, &signer).starts_with("the inclusion proof: "));
    let mut r = good.clone();
    r.inclusion.push(base64(&[0; 32]));
    assert!(refused(&r, &signer).starts_with("the inclusion proof: "));
    let mut r = good.clone();
    r.inclusion[0] = "***".to_owned();
    assert!(refused(&r, &signer).starts_with("inclusion hash 0 is not base64"));
    let mut r = good.clone();
    r.inclusion[1] = base64(&[0; 31]);
    assert_eq!(refused(&r, &signer), "inclusion hash 1 is 31 bytes, not 32");
}

fn base64(bytes: &[u8]) -> String {
    use base64::Engine as _;
    base64::engine::general_purpose::STANDARD.encode(bytes)
}

#[test]
fn the_json_form_reads_back_and_refuses_unknown_fields() {
    let signer = signer();
    let log = log(10);
    let r = receipt(&log, &signer, 3, 10);
    let text = r.to_json().unwrap();
    assert_eq!(Receipt::from_json(&text).unwrap(), r);
    let value: serde_json::Value = serde_json::from_str(&text).unwrap();
    let keys: Vec<&str> = value
        .as_object()
        .unwrap()
        .keys()
        .map(|k| k.as_str())
        .collect();
    assert_eq!(
        keys,
        [
            "case",
            "checkpoint",
            "event",
            "format",
            "inclusion",
            "leaf_index",
            "seq",
            "tree_size"
        ]
    );
    let mut extra = value.clone();
    extra["note"] = json!("x");
    let err = Receipt::from_json(&extra.to_string()).unwrap_err();
    assert!(err.to_string().contains("unknown field `note`"), "{err}");
    let mut missing = value;
    missing.as_object_mut().unwrap().remove("inclusion");
    assert!(Receipt::from_json(&missing.to_string()).is_err());
}

const GOLDEN: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/tests/golden/receipt-v1.json");

/// The receipt of docs/lockchain.md: leaf 5 of a log of 6 events, signed with the seed
/// `[42; 32]`. Ed25519 is deterministic, so it is the same every time; it verifies with the
/// key printed in the docs. `KNHK_WRITE_GOLDEN=1` rewrites it.
#[test]
fn golden_receipt() {
    let signer = signer();
    let log = log(6);
    let r = receipt(&log, &signer, 5, 6);
    let written = r.to_json().unwrap() + "\n";
    if std::env::var("KNHK_WRITE_GOLDEN").as_deref() == Ok("1") {
        std::fs::write(GOLDEN, &written).unwrap();
    }
    let golden = std::fs::read_to_string(GOLDEN).unwrap();
    assert_eq!(golden, written);
    assert_eq!(
        signer.verifier_key(),
        "knhk.example/log+4bca78e1+ARl/ayPhbIUyxqvIOPrNXqeJvgx2spIDNAOb+os9No1h"
    );
    let read = Receipt::from_json(&golden).unwrap();
    let verifier = knhk_lockchain::note::Verifier::parse(&signer.verifier_key()).unwrap();
    read.verify(&verifier).unwrap();
}
