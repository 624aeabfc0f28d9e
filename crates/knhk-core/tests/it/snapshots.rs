//! Snapshots of a waiting case: restored as they were taken, and refused when written in
//! another format, when their state does not decode, or when it names what the workflow does
//! not have. (The property tests check restoring against replay on random histories.)

use knhk_core::model::ControlType::Xor;
use knhk_core::*;
use serde_json::json;

use crate::harness::*;

fn one_human_task(id: &str) -> Workflow {
    workflow(vec![net(
        "n",
        vec![flow(id)],
        vec![],
        vec![human(task(id, Xor, Xor, vec![flow("end")]), "clerk")],
    )])
}

#[test]
fn a_waiting_case_restores_from_its_snapshot() {
    let wf = one_human_task("a");
    let run = Run::start(&wf, json!({"n": 1}));
    let snapshot = run.case().snapshot(&wf).unwrap();
    assert_eq!(snapshot.format, CaseSnapshot::FORMAT);
    assert_eq!(snapshot.seq, run.case().last_seq());
    let restored = Case::restore(&wf, run.case().id(), &snapshot).unwrap();
    assert_eq!(&restored, run.case());
}

#[test]
fn a_snapshot_of_another_format_is_refused_naming_both_formats() {
    let wf = one_human_task("a");
    let run = Run::start(&wf, json!({}));
    let mut snapshot = run.case().snapshot(&wf).unwrap();
    snapshot.format = CaseSnapshot::FORMAT + 1;
    let err = Case::restore(&wf, run.case().id(), &snapshot).unwrap_err();
    assert_eq!(
        err,
        SnapshotError::UnknownFormat {
            found: CaseSnapshot::FORMAT + 1,
            known: CaseSnapshot::FORMAT
        }
    );
    assert_eq!(
        err.to_string(),
        format!(
            "snapshot format {} is not the format this build reads ({})",
            CaseSnapshot::FORMAT + 1,
            CaseSnapshot::FORMAT
        )
    );
}

#[test]
fn a_snapshot_that_does_not_decode_is_refused() {
    let wf = one_human_task("a");
    let run = Run::start(&wf, json!({}));
    let mut snapshot = run.case().snapshot(&wf).unwrap();
    snapshot.state.truncate(snapshot.state.len() / 2);
    let err = Case::restore(&wf, run.case().id(), &snapshot).unwrap_err();
    assert!(matches!(err, SnapshotError::Decode(_)), "{err}");
}

#[test]
fn a_snapshot_of_another_workflow_is_refused_naming_the_task() {
    let wf = one_human_task("a");
    let other = one_human_task("b");
    let run = Run::start(&wf, json!({}));
    let snapshot = run.case().snapshot(&wf).unwrap();
    let err = Case::restore(&other, run.case().id(), &snapshot).unwrap_err();
    assert!(matches!(err, SnapshotError::Misfit(_)), "{err}");
    assert!(err.to_string().contains("no task a"), "{err}");
}
