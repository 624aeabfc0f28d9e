//! Tests of the milestone (WCP 18) and of the thread split and merge (WCP 42, 41).
//!
//! WCP 34, the static partial join for multiple instances, has no net: a multiple-instance
//! task's threshold always withdraws the instances that have not completed (WCP 35), so the
//! remaining instances cannot run to completion without affecting the flow.

use knhk_core::{CaseStatus, Input, WorkItemId};
use serde_json::json;

use super::{Run, USER};

// ---------------------------------------------------------------------------------------------
// Milestone: B takes the milestone's token and puts it back

#[test]
fn wcp18_milestone_offers_b_while_the_milestone_holds() {
    let mut run = Run::start("wcp18_milestone.ttl", json!({}));
    // The milestone is not reached yet: B waits.
    assert_eq!(run.offered(), ["A"]);
    run.complete("A", json!({}));
    assert_eq!(run.offered(), ["B", "C"]);
    let c = run.item("C");
    // B holds the milestone's token while it runs: C cannot move the case on meanwhile.
    run.begin("B");
    assert!(run.withdrawn_items().contains(&c));
    assert_eq!(run.offered(), ["B"]);
    run.complete("B", json!({}));
    // B put the token back: the case is in the milestone state again.
    assert_eq!(run.offered(), ["C"]);
    run.complete("C", json!({}));
    assert_eq!(run.offered(), ["D"]);
    run.complete("D", json!({}));
    assert_eq!(run.completed(), ["Fork", "A", "B", "C", "D"]);
    run.finish(CaseStatus::Completed);
}

#[test]
fn wcp18_milestone_does_not_offer_b_once_the_milestone_has_passed() {
    let mut run = Run::start("wcp18_milestone.ttl", json!({}));
    run.complete("A", json!({}));
    assert_eq!(run.offered(), ["B", "C"]);
    let b = run.item("B");
    // C takes the milestone's token: the case has moved past the state B needs.
    run.begin("C");
    assert!(run.stopped("B"), "B was not withdrawn");
    assert!(run.withdrawn_items().contains(&b));
    assert_eq!(run.offered(), ["C"]);
    run.complete("C", json!({}));
    assert_eq!(run.offered(), ["D"], "B offered after the milestone");
    run.finish(CaseStatus::Running);
    run.complete("D", json!({}));
    assert_eq!(run.times_completed("B"), 0);
    assert_eq!(run.completed(), ["Fork", "A", "C", "D"]);
    run.finish(CaseStatus::Completed);
}

// ---------------------------------------------------------------------------------------------
// Thread split and merge: a multiple-instance composite task, one sub-net instance per thread

/// Returns the net instance (the thread) a live work item runs in.
fn thread(run: &Run, item: WorkItemId) -> u32 {
    run.case()
        .work_item(&item)
        .map(|w| w.task.net_instance)
        .expect("live work item")
}

#[test]
fn wcp42_thread_split_starts_the_nominated_number_of_concurrent_threads() {
    let mut run = Run::start("wcp41_42_thread_split_and_merge.ttl", json!({}));
    assert_eq!(run.net_starts(), 0);
    run.complete("Receive", json!({}));
    // Three threads in the one branch, each in its own sub-net instance, all at Pack.
    assert_eq!(run.net_starts(), 3);
    let packs = run.items("Pack");
    assert_eq!(packs.len(), 3);
    let threads: Vec<u32> = packs.iter().map(|p| thread(&run, *p)).collect();
    assert!(threads[0] != threads[1] && threads[1] != threads[2] && threads[0] != threads[2]);
    // The threads run concurrently: all three Packs are started at once.
    for pack in &packs {
        run.apply(Input::StartWorkItem {
            item: *pack,
            user: USER.into(),
        });
    }
    assert_eq!(run.items("Pack").len(), 3);
    // And independently: the second thread moves on to Label while the others still pack.
    run.complete_item(packs[1], json!({}));
    let labels = run.items("Label");
    assert_eq!(labels.len(), 1);
    assert_eq!(thread(&run, labels[0]), threads[1]);
    assert_eq!(run.items("Pack"), [packs[0], packs[2]]);
    run.complete_item(labels[0], json!({}));
    assert_eq!(run.offered(), ["Pack"]);
    assert_eq!(run.completed(), ["Receive", "Pack", "Label"]);
    run.finish(CaseStatus::Running);
}

#[test]
fn wcp41_thread_merge_continues_one_thread_once_all_threads_ended() {
    let mut run = Run::start("wcp41_42_thread_split_and_merge.ttl", json!({}));
    run.complete("Receive", json!({}));
    let packs = run.items("Pack");
    assert_eq!(packs.len(), 3);
    run.complete_item(packs[2], json!({}));
    run.complete_item(packs[0], json!({}));
    run.complete("Label", json!({}));
    run.complete("Label", json!({}));
    // Two threads have ended; the merge waits for the third.
    assert_eq!(run.offered(), ["Pack"]);
    assert_eq!(run.times_completed("Ship"), 0);
    run.complete_item(packs[1], json!({}));
    assert_eq!(
        run.times_completed("Ship"),
        0,
        "merged before the last thread ended"
    );
    run.complete("Label", json!({}));
    // One thread of control goes on: Ship completes once and Invoice is offered once.
    assert_eq!(run.times_completed("Ship"), 1);
    assert_eq!(run.offered(), ["Invoice"]);
    assert_eq!(run.items("Invoice").len(), 1);
    run.complete("Invoice", json!({}));
    assert_eq!(
        run.completed(),
        [
            "Receive", "Pack", "Pack", "Label", "Label", "Pack", "Label", "Ship", "Invoice"
        ]
    );
    assert_eq!(run.times_completed("Invoice"), 1);
    run.finish(CaseStatus::Completed);
}
