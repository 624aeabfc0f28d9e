//! Conformance tests of case snapshots: written with the step that carries them, one per case
//! (the latest), kept when a step carries none, never written by a refused commit, and never
//! of a state ahead of the history.

use std::sync::Arc;

use knhk_core::{CaseStatus, EventKind};
use knhk_store::{Error, SnapshotRecord, Store};

use crate::fixtures::*;

fn record(seq: u64, state: &str) -> SnapshotRecord {
    SnapshotRecord {
        seq,
        format: 1,
        state: state.to_owned(),
    }
}

pub async fn snapshots_are_written_with_their_step_one_per_case(s: Arc<dyn Store>) {
    let kind = || EventKind::TaskEnabled { task: task("a") };
    let stored = create_case(s.as_ref(), 1, workflow_id(1), CaseStatus::Running, 10).await;
    let other = create_case(s.as_ref(), 2, workflow_id(1), CaseStatus::Running, 11).await;
    assert_eq!(s.snapshot(stored.id).await.unwrap(), None);

    // A step carries the snapshot of its last event.
    let mut step = next_step(&stored, vec![kind(), kind()]);
    step.snapshot = Some(record(3, "at 3"));
    let at3 = step.case.clone();
    s.commit(step).await.unwrap();
    assert_eq!(
        s.snapshot(stored.id).await.unwrap(),
        Some(record(3, "at 3"))
    );
    assert_eq!(s.snapshot(other.id).await.unwrap(), None);

    // A step without one keeps the stored one.
    let plain = next_step(&at3, vec![kind()]);
    let at4 = plain.case.clone();
    s.commit(plain).await.unwrap();
    assert_eq!(
        s.snapshot(stored.id).await.unwrap(),
        Some(record(3, "at 3"))
    );

    // A refused commit (a lost race) writes no snapshot.
    let mut late = next_step(&at3, vec![kind()]);
    late.snapshot = Some(record(4, "lost"));
    assert!(matches!(s.commit(late).await, Err(Error::Conflict { .. })));
    assert_eq!(
        s.snapshot(stored.id).await.unwrap(),
        Some(record(3, "at 3"))
    );

    // A snapshot of a state ahead of the history is refused, and so is its step.
    let mut ahead = next_step(&at4, vec![kind()]);
    ahead.snapshot = Some(record(6, "ahead"));
    assert!(matches!(
        s.commit(ahead).await,
        Err(Error::Gap {
            expected_seq: 5,
            got: 6,
            ..
        })
    ));
    assert_eq!(s.case(stored.id).await.unwrap(), Some(at4.clone()));

    // The next one replaces it; the other case's is its own.
    let mut step = next_step(&at4, vec![kind()]);
    step.snapshot = Some(record(5, "at 5"));
    s.commit(step).await.unwrap();
    let mut theirs = next_step(&other, vec![kind()]);
    theirs.snapshot = Some(record(2, "theirs"));
    s.commit(theirs).await.unwrap();
    assert_eq!(
        s.snapshot(stored.id).await.unwrap(),
        Some(record(5, "at 5"))
    );
    assert_eq!(
        s.snapshot(other.id).await.unwrap(),
        Some(record(2, "theirs"))
    );
    assert_eq!(s.events(stored.id, 0).await.unwrap().len(), 5);
}
