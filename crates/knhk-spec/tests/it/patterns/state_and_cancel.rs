//! Tests of the state-based, cancellation and termination patterns: deferred choice, cancel
//! task, case, region and MI activity, loops, recursion, the generalised AND-join (WCP 16-33)
//! and explicit termination (WCP 43).

use knhk_core::{CaseStatus, Effect, Error, Input, WorkItemId};
use serde_json::json;

use super::{Run, USER};

// ---------------------------------------------------------------------------------------------
// State-based: deferred choice

#[test]
fn wcp16_deferred_choice_starting_one_task_withdraws_the_other() {
    let mut run = Run::start("wcp16_deferred_choice.ttl", json!({}));
    assert_eq!(run.offered(), ["Approve"]);
    assert!(run.driver.effects().iter().any(|e| matches!(e,
        Effect::AwaitTrigger { task, event }
            if task.task.as_str() == "CustomerCancel" && event == "customer_cancelled")));
    run.begin("Approve");
    assert!(
        run.stopped("CustomerCancel"),
        "CustomerCancel was not withdrawn"
    );
    let late = run.trigger("customer_cancelled");
    assert!(matches!(late, Err(Error::NoTriggerWaiting(_))), "{late:?}");
    run.complete("Approve", json!({}));
    assert_eq!(run.completed(), ["A", "Approve"]);
    run.finish(CaseStatus::Completed);
}

#[test]
fn wcp16_deferred_choice_outside_event_withdraws_the_work_item() {
    let mut run = Run::start("wcp16_deferred_choice.ttl", json!({}));
    let approve = run.item("Approve");
    run.trigger("customer_cancelled")
        .expect("CustomerCancel waits for the event");
    assert_eq!(run.completed(), ["A", "CustomerCancel"]);
    assert!(run.stopped("Approve"), "Approve was not withdrawn");
    assert!(run.withdrawn_items().contains(&approve));
    run.finish(CaseStatus::Completed);
}

// ---------------------------------------------------------------------------------------------
// Cancellation and termination

#[test]
fn wcp19_cancel_task_cancels_a_running_task() {
    let mut run = Run::start("wcp19_cancel_task.ttl", json!({}));
    let work = run.item("Work");
    run.begin("Work");
    run.complete("Abort", json!({}));
    assert!(run.cancelled("Work"), "Work was not cancelled");
    assert!(run.withdrawn_items().contains(&work));
    assert_eq!(run.completed(), ["A", "Abort", "D"]);
    run.finish(CaseStatus::Completed);
}

#[test]
fn wcp19_cancel_task_has_no_effect_when_the_task_finished_first() {
    let mut run = Run::start("wcp19_cancel_task.ttl", json!({}));
    run.complete("Work", json!({}));
    assert_eq!(run.completed(), ["A", "Work", "D"]);
    run.finish(CaseStatus::Completed);
}

#[test]
fn wcp20_cancel_case_by_a_task_whose_cancellation_set_is_the_net() {
    let mut run = Run::start("wcp20_cancel_case.ttl", json!({}));
    run.complete("B", json!({}));
    assert_eq!(run.offered(), ["D", "Kill"]);
    run.complete("Kill", json!({}));
    assert!(run.stopped("D"), "D was not withdrawn");
    assert_eq!(run.completed(), ["A", "B", "Kill"]);
    run.finish(CaseStatus::Completed);
}

#[test]
fn wcp20_cancel_case_from_outside() {
    let mut run = Run::start("wcp20_cancel_case.ttl", json!({}));
    run.begin("B");
    let live: Vec<WorkItemId> = run.case().work_items().map(|(id, _)| *id).collect();
    assert_eq!(live.len(), 2);
    run.apply(Input::Cancel {
        reason: "customer withdrew".into(),
    });
    let withdrawn = run.withdrawn_items();
    assert!(live.iter().all(|item| withdrawn.contains(item)));
    assert_eq!(run.completed(), ["A"]);
    let after = run.try_apply(Input::CompleteWorkItem {
        item: live[0],
        user: USER.into(),
        output: json!({}),
    });
    assert!(after.is_err(), "a cancelled case took more work");
    run.finish(CaseStatus::Cancelled);
}

#[test]
fn wcp21_structured_loop_repeats_until_the_condition_fails() {
    let mut run = Run::start("wcp21_structured_loop.ttl", json!({}));
    run.complete("Work", json!({ "again": true }));
    assert_eq!(run.offered(), ["Work"]);
    run.complete("Work", json!({ "again": true }));
    run.complete("Work", json!({ "again": false }));
    assert_eq!(
        run.completed(),
        [
            "A", "Work", "Check", "Work", "Check", "Work", "Check", "Done"
        ]
    );
    run.finish(CaseStatus::Completed);

    let mut run = Run::start("wcp21_structured_loop.ttl", json!({}));
    run.complete("Work", json!({ "again": false }));
    assert_eq!(run.completed(), ["A", "Work", "Check", "Done"]);
    run.finish(CaseStatus::Completed);
}

#[test]
fn wcp22_recursion_runs_the_sub_net_inside_itself() {
    let mut run = Run::start("wcp22_recursion.ttl", json!({}));
    assert_eq!(run.net_starts(), 1);
    let outer = run.task_ref("X").net_instance;
    run.complete("X", json!({ "more": true }));
    assert_eq!(run.net_starts(), 2);
    let middle = run.task_ref("X").net_instance;
    assert_ne!(middle, outer);
    run.complete("X", json!({ "more": true }));
    assert_eq!(run.net_starts(), 3);
    let inner = run.task_ref("X").net_instance;
    assert_ne!(inner, middle);
    run.complete("X", json!({ "more": false }));
    assert_eq!(run.completed(), ["X", "X", "X", "Recurse", "Recurse", "A"]);
    run.finish(CaseStatus::Completed);
}

#[test]
fn wcp25_cancel_region_withdraws_the_active_part_of_the_region() {
    let mut run = Run::start("wcp25_cancel_region.ttl", json!({}));
    run.complete("B", json!({}));
    let c = run.item("C");
    run.complete("Withdraw", json!({}));
    assert!(run.stopped("C"), "C was not withdrawn");
    assert!(run.withdrawn_items().contains(&c));
    assert_eq!(run.completed(), ["A", "B", "Withdraw", "F"]);
    run.finish(CaseStatus::Completed);
}

#[test]
fn wcp25_cancel_region_cancels_work_in_progress() {
    let mut run = Run::start("wcp25_cancel_region.ttl", json!({}));
    run.begin("B");
    run.complete("Withdraw", json!({}));
    assert!(run.cancelled("B"), "B was not cancelled");
    assert_eq!(run.completed(), ["A", "Withdraw", "F"]);
    run.finish(CaseStatus::Completed);
}

#[test]
fn wcp25_outside_the_region_the_net_runs_normally() {
    let mut run = Run::start("wcp25_cancel_region.ttl", json!({}));
    run.complete("B", json!({}));
    run.complete("C", json!({}));
    assert_eq!(run.completed(), ["A", "B", "C", "F"]);
    run.finish(CaseStatus::Completed);
}

#[test]
fn wcp26_cancel_mi_activity_cancels_the_remaining_instances() {
    let data = json!({ "items": [1, 2, 3] });
    let mut run = Run::start("wcp26_cancel_mi_activity.ttl", data);
    let reviews = run.items("Review");
    assert_eq!(reviews.len(), 3);
    run.complete_item(reviews[1], json!({}));
    run.complete("Stop", json!({}));
    assert!(run.cancelled("Review"), "Review was not cancelled");
    let withdrawn = run.withdrawn_items();
    assert!(withdrawn.contains(&reviews[0]) && withdrawn.contains(&reviews[2]));
    assert_eq!(run.completed(), ["A", "Stop", "D"]);
    run.finish(CaseStatus::Completed);
}

#[test]
fn wcp26_without_cancellation_all_instances_complete() {
    let data = json!({ "items": [1, 2, 3] });
    let mut run = Run::start("wcp26_cancel_mi_activity.ttl", data);
    for item in run.items("Review") {
        run.complete_item(item, json!({}));
    }
    assert_eq!(run.completed(), ["A", "Review", "D"]);
    run.finish(CaseStatus::Completed);
}

#[test]
fn wcp27_complete_mi_activity_completes_at_the_threshold() {
    let data = json!({ "items": ["n", "e", "s", "w"] });
    let mut run = Run::start("wcp27_complete_mi_activity.ttl", data);
    let bids = run.items("Bid");
    assert_eq!(bids.len(), 4);
    run.complete_item(bids[2], json!({ "bid": 10 }));
    assert_eq!(run.completed(), ["A"]);
    run.complete_item(bids[0], json!({ "bid": 12 }));
    assert_eq!(run.completed(), ["A", "Bid"]);
    let withdrawn = run.withdrawn_items();
    assert!(withdrawn.contains(&bids[1]) && withdrawn.contains(&bids[3]));
    assert!(run.items("Bid").is_empty());
    assert_eq!(run.offered(), ["C"]);
    run.complete("C", json!({}));
    assert_eq!(run.completed(), ["A", "Bid", "C"]);
    run.finish(CaseStatus::Completed);
}

#[test]
fn wcp33_generalized_and_join_fires_once_per_set_of_tokens() {
    let mut run = Run::start("wcp33_generalized_and_join.ttl", json!({}));
    assert_eq!(run.offered(), ["P", "Q", "R", "S"]);
    run.complete("P", json!({}));
    run.complete("Q", json!({}));
    assert_eq!(run.times_completed("J"), 0, "J fired without a right token");
    run.complete("R", json!({}));
    assert_eq!(run.times_completed("J"), 1);
    run.finish(CaseStatus::Running);
    run.complete("S", json!({}));
    assert_eq!(
        run.completed(),
        ["A", "P", "Q", "R", "J", "First", "S", "J", "Second"]
    );
    run.finish(CaseStatus::Completed);
}

#[test]
fn wcp43_explicit_termination_ends_the_case_and_withdraws_other_work() {
    let mut run = Run::start("wcp43_explicit_termination.ttl", json!({}));
    run.complete("C", json!({}));
    assert_eq!(run.offered(), ["B", "D"]);
    let d = run.item("D");
    run.complete("B", json!({}));
    assert_eq!(run.completed(), ["A", "C", "B"]);
    assert!(run.stopped("D"), "D was not withdrawn");
    assert!(run.withdrawn_items().contains(&d));
    run.finish(CaseStatus::Completed);
}
