//! Tests of the basic control-flow patterns and advanced branching and synchronisation:
//! WCP 1-11 (sequence to implicit termination).

use knhk_core::{CaseStatus, EventKind};
use serde_json::json;

use super::Run;

// ---------------------------------------------------------------------------------------------
// Basic control flow

#[test]
fn wcp01_sequence_runs_tasks_one_after_the_other() {
    let mut run = Run::start("wcp01_sequence.ttl", json!({}));
    assert_eq!(run.completed(), ["A"]);
    assert_eq!(run.offered(), ["B"]);
    run.complete("B", json!({}));
    assert_eq!(run.completed(), ["A", "B", "C"]);
    run.finish(CaseStatus::Completed);
}

#[test]
fn wcp02_parallel_split_starts_both_branches_at_once() {
    let mut run = Run::start("wcp02_parallel_split.ttl", json!({}));
    assert_eq!(run.completed(), ["A"]);
    assert_eq!(run.offered(), ["B", "C"]);
    // The branches are independent: C may finish first.
    run.complete("C", json!({}));
    assert_eq!(run.offered(), ["B"]);
    run.complete("B", json!({}));
    assert_eq!(run.completed(), ["A", "C", "B", "D"]);
    run.finish(CaseStatus::Completed);
}

#[test]
fn wcp03_synchronization_waits_for_every_branch() {
    let mut run = Run::start("wcp03_synchronization.ttl", json!({}));
    assert_eq!(run.offered(), ["B", "C", "D"]);
    run.complete("B", json!({}));
    run.complete("D", json!({}));
    assert_eq!(run.times_completed("E"), 0, "E fired before C completed");
    assert_eq!(run.offered(), ["C"]);
    run.finish(CaseStatus::Running);
    run.complete("C", json!({}));
    assert_eq!(run.completed(), ["A", "B", "D", "C", "E"]);
    run.finish(CaseStatus::Completed);
}

fn exclusive_choice(amount: i64) -> Vec<String> {
    let mut run = Run::start("wcp04_exclusive_choice.ttl", json!({}));
    run.complete("A", json!({ "amount": amount }));
    run.finish(CaseStatus::Completed);
    run.completed()
}

#[test]
fn wcp04_exclusive_choice_takes_the_first_flow_by_ordering_that_holds() {
    // 5000 satisfies both predicates; Large has the lower ordering.
    assert_eq!(exclusive_choice(5000), ["A", "Large"]);
    assert_eq!(exclusive_choice(500), ["A", "Medium"]);
}

#[test]
fn wcp04_exclusive_choice_takes_the_default_flow_when_no_predicate_holds() {
    assert_eq!(exclusive_choice(5), ["A", "Small"]);
}

#[test]
fn wcp05_simple_merge_continues_once_after_the_branch_taken() {
    let mut run = Run::start("wcp05_simple_merge.ttl", json!({ "amount": 500 }));
    assert_eq!(run.offered(), ["B"]);
    run.complete("B", json!({}));
    assert_eq!(run.completed(), ["A", "B", "D"]);
    run.finish(CaseStatus::Completed);

    let mut run = Run::start("wcp05_simple_merge.ttl", json!({ "amount": 50 }));
    assert_eq!(run.offered(), ["C"]);
    run.complete("C", json!({}));
    assert_eq!(run.completed(), ["A", "C", "D"]);
    run.finish(CaseStatus::Completed);
}

#[test]
fn wcp06_multi_choice_starts_every_branch_whose_predicate_holds() {
    let data = json!({ "ship": true, "invoice": true, "notify": false });
    let mut run = Run::start("wcp06_multi_choice.ttl", data);
    assert_eq!(run.offered(), ["Invoice", "Ship"]);
    run.complete("Ship", json!({}));
    assert_eq!(
        run.times_completed("E"),
        0,
        "E fired before Invoice completed"
    );
    run.complete("Invoice", json!({}));
    assert_eq!(run.completed(), ["A", "Ship", "Invoice", "E"]);
    run.finish(CaseStatus::Completed);
}

#[test]
fn wcp06_multi_choice_takes_the_default_flow_too_when_its_own_predicate_holds() {
    // Notify is the default flow, but it also carries a predicate: on an OR-split every flow
    // whose predicate holds is taken (YAWL's doOrSplit); the default is only the fallback.
    let data = json!({ "ship": true, "invoice": false, "notify": true });
    let mut run = Run::start("wcp06_multi_choice.ttl", data);
    assert_eq!(run.offered(), ["Notify", "Ship"]);
    run.complete("Ship", json!({}));
    assert_eq!(
        run.times_completed("E"),
        0,
        "E fired before Notify completed"
    );
    run.complete("Notify", json!({}));
    assert_eq!(run.completed(), ["A", "Ship", "Notify", "E"]);
    run.finish(CaseStatus::Completed);

    let data = json!({ "ship": true, "invoice": true, "notify": true });
    let mut run = Run::start("wcp06_multi_choice.ttl", data);
    assert_eq!(run.offered(), ["Invoice", "Notify", "Ship"]);
    for task in ["Invoice", "Ship", "Notify"] {
        run.complete(task, json!({}));
    }
    assert_eq!(run.completed(), ["A", "Invoice", "Ship", "Notify", "E"]);
    run.finish(CaseStatus::Completed);
}

#[test]
fn wcp06_multi_choice_takes_the_default_branch_when_no_predicate_holds() {
    let data = json!({ "ship": false, "invoice": false, "notify": false });
    let mut run = Run::start("wcp06_multi_choice.ttl", data);
    assert_eq!(run.offered(), ["Notify"]);
    run.complete("Notify", json!({}));
    assert_eq!(run.completed(), ["A", "Notify", "E"]);
    run.finish(CaseStatus::Completed);
}

#[test]
fn wcp07_structured_synchronizing_merge_waits_for_both_chosen_branches() {
    let mut run = Run::start("wcp07_structured_synchronizing_merge.ttl", json!({}));
    run.complete("A", json!({ "needB": true, "needC": true }));
    assert_eq!(run.offered(), ["B", "C"]);
    run.complete("B", json!({}));
    assert_eq!(run.times_completed("E"), 0, "E fired before C completed");
    assert_eq!(run.offered(), ["C"]);
    run.complete("C", json!({}));
    assert_eq!(run.completed(), ["A", "B", "C", "E"]);
    run.finish(CaseStatus::Completed);
}

#[test]
fn wcp07_structured_synchronizing_merge_fires_at_once_after_the_only_chosen_branch() {
    let mut run = Run::start("wcp07_structured_synchronizing_merge.ttl", json!({}));
    run.complete("A", json!({ "needB": false, "needC": true }));
    assert_eq!(run.offered(), ["C"]);
    run.complete("C", json!({}));
    assert_eq!(run.completed(), ["A", "C", "E"]);
    run.finish(CaseStatus::Completed);

    let mut run = Run::start("wcp07_structured_synchronizing_merge.ttl", json!({}));
    run.complete("A", json!({ "needB": true, "needC": false }));
    assert_eq!(run.offered(), ["B"]);
    run.complete("B", json!({}));
    assert_eq!(run.completed(), ["A", "B", "E"]);
    run.finish(CaseStatus::Completed);
}

#[test]
fn wcp07_structured_synchronizing_merge_runs_the_default_branch_when_nothing_was_chosen() {
    let mut run = Run::start("wcp07_structured_synchronizing_merge.ttl", json!({}));
    run.complete("A", json!({ "needB": false, "needC": false }));
    assert_eq!(run.offered(), ["D"]);
    run.complete("D", json!({}));
    assert_eq!(run.completed(), ["A", "D", "E"]);
    run.finish(CaseStatus::Completed);
}

#[test]
fn wcp08_multi_merge_runs_the_merge_once_per_arriving_branch() {
    let mut run = Run::start("wcp08_multi_merge.ttl", json!({}));
    assert_eq!(run.offered(), ["B", "C"]);
    run.complete("B", json!({}));
    assert_eq!(run.completed(), ["A", "B", "D"]);
    assert_eq!(run.offered(), ["C", "E"]);
    run.complete("C", json!({}));
    assert_eq!(run.completed(), ["A", "B", "D", "C", "D"]);
    run.complete("E", json!({}));
    assert_eq!(run.completed(), ["A", "B", "D", "C", "D", "E"]);
    run.finish(CaseStatus::Completed);
}

// ---------------------------------------------------------------------------------------------
// Advanced branching and synchronisation

#[test]
fn wcp09_structured_discriminator_fires_on_the_first_branch_only() {
    let mut run = Run::start("wcp09_structured_discriminator.ttl", json!({}));
    assert_eq!(run.offered(), ["B", "C", "D"]);
    run.complete("C", json!({}));
    assert_eq!(run.completed(), ["A", "C", "Disc"]);
    // The other branches keep running: the discriminator does not cancel them.
    assert_eq!(run.offered(), ["B", "D", "Follow"]);
    run.complete("B", json!({}));
    run.assert_before("Disc", "B");
    assert_eq!(
        run.times_completed("Disc"),
        1,
        "a later branch re-fired Disc"
    );
    run.complete("Follow", json!({}));
    assert_eq!(run.times_completed("Z"), 0, "Z fired before D completed");
    run.finish(CaseStatus::Running);
    run.complete("D", json!({}));
    assert_eq!(run.completed(), ["A", "C", "Disc", "B", "Follow", "D", "Z"]);
    run.finish(CaseStatus::Completed);
}

#[test]
fn wcp10_arbitrary_cycles_enter_the_cycle_at_either_task() {
    let mut run = Run::start("wcp10_arbitrary_cycles.ttl", json!({}));
    run.complete("A", json!({ "startAt": "C" }));
    assert_eq!(run.offered(), ["C"]);
    run.complete("C", json!({ "again": true }));
    assert_eq!(run.offered(), ["B"]);
    run.complete("B", json!({}));
    run.complete("C", json!({ "again": false }));
    assert_eq!(run.completed(), ["A", "C", "B", "C", "D"]);
    run.finish(CaseStatus::Completed);

    let mut run = Run::start("wcp10_arbitrary_cycles.ttl", json!({}));
    run.complete("A", json!({ "startAt": "B" }));
    assert_eq!(run.offered(), ["B"]);
    run.complete("B", json!({}));
    run.complete("C", json!({ "again": true }));
    run.complete("B", json!({}));
    run.complete("C", json!({ "again": false }));
    assert_eq!(run.completed(), ["A", "B", "C", "B", "C", "D"]);
    run.finish(CaseStatus::Completed);
}

#[test]
fn wcp11_implicit_termination_completes_when_nothing_is_left_to_do() {
    // DESIGN.md: the case completes "when nothing is enabled or running any more". B and C end
    // their branches without an outgoing flow, which is the only way a net can run dry without
    // a token reaching the output condition.
    let mut run = Run::start("wcp11_implicit_termination.ttl", json!({ "abort": false }));
    assert_eq!(run.completed(), ["A", "Fork"]);
    run.complete("B", json!({}));
    run.finish(CaseStatus::Running);
    run.complete("C", json!({}));
    assert_eq!(run.completed(), ["A", "Fork", "B", "C"]);
    let reached_end = run.driver.history().iter().any(|e| {
        matches!(&e.kind, EventKind::TaskCompleted { produced, .. }
            if produced.iter().any(|c| c.as_str() == "end"))
    });
    assert!(
        !reached_end,
        "no token was meant to reach the output condition"
    );
    run.finish(CaseStatus::Completed);
}
