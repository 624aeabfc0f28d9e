//! Tests of further patterns: interleaving and critical sections (WCP 17, 39, 40), triggers
//! (WCP 23, 24), the blocking and cancelling discriminators (WCP 28, 29) and the cancelling
//! partial join for multiple instances (WCP 35).

use knhk_core::{CaseStatus, Effect, Error};
use serde_json::json;

use super::Run;

// ---------------------------------------------------------------------------------------------
// Interleaving: one mutex token, taken on start and given back on completion

#[test]
fn wcp17_interleaved_parallel_routing_runs_one_task_at_a_time_in_the_partial_order() {
    let mut run = Run::start("wcp17_interleaved_parallel_routing.ttl", json!({}));
    // B waits for A (the partial order); A and C compete for the mutex.
    assert_eq!(run.offered(), ["A", "C"]);
    let c = run.item("C");
    run.begin("A");
    assert!(run.stopped("C"), "C was not withdrawn while A runs");
    assert!(run.withdrawn_items().contains(&c));
    assert_eq!(run.offered(), ["A"]);
    run.complete("A", json!({}));
    // The mutex is back: B (now after A) and C are both offered.
    assert_eq!(run.offered(), ["B", "C"]);
    run.begin("C");
    assert_eq!(run.offered(), ["C"], "B offered while C runs");
    run.complete("C", json!({}));
    assert_eq!(run.offered(), ["B"]);
    run.complete("B", json!({}));
    assert_eq!(run.completed(), ["Fork", "A", "C", "B", "Join"]);
    run.finish(CaseStatus::Completed);
}

#[test]
fn wcp39_critical_section_keeps_the_two_sections_apart() {
    let mut run = Run::start("wcp39_critical_section.ttl", json!({}));
    assert_eq!(run.offered(), ["P1", "P2"]);
    run.complete("P1", json!({}));
    run.complete("P2", json!({}));
    assert_eq!(run.offered(), ["Crit2", "Enter1"]);
    let crit2 = run.item("Crit2");
    // Thread 1 enters its section: Crit2 loses the mutex until Leave1 gives it back.
    run.complete("Enter1", json!({}));
    assert!(run.withdrawn_items().contains(&crit2));
    assert_eq!(run.offered(), ["Leave1"]);
    run.complete("Leave1", json!({}));
    assert_eq!(run.offered(), ["Crit2", "Q1"]);
    // Thread 2 in its section: thread 1 goes on outside its own.
    run.begin("Crit2");
    run.complete("Q1", json!({}));
    run.complete("Crit2", json!({}));
    run.complete("Q2", json!({}));
    assert_eq!(
        run.completed(),
        [
            "Fork", "P1", "P2", "Enter1", "Leave1", "Q1", "Crit2", "Q2", "Join"
        ]
    );
    run.finish(CaseStatus::Completed);
}

#[test]
fn wcp39_critical_section_blocks_the_other_thread_at_its_entry() {
    let mut run = Run::start("wcp39_critical_section.ttl", json!({}));
    run.complete("P2", json!({}));
    run.begin("Crit2");
    // Thread 1 reaches its section while thread 2 is inside its own: Enter1 is not offered.
    run.complete("P1", json!({}));
    assert_eq!(run.offered(), ["Crit2"]);
    run.complete("Crit2", json!({}));
    assert_eq!(run.offered(), ["Enter1", "Q2"]);
    run.complete("Enter1", json!({}));
    run.complete("Leave1", json!({}));
    run.complete("Q1", json!({}));
    run.complete("Q2", json!({}));
    run.assert_before("Crit2", "Enter1");
    assert_eq!(run.times_completed("Join"), 1);
    run.finish(CaseStatus::Completed);
}

#[test]
fn wcp40_interleaved_routing_runs_each_task_once_in_any_order_never_two_at_once() {
    let mut run = Run::start("wcp40_interleaved_routing.ttl", json!({}));
    let mut left = vec!["P", "Q", "R", "S"];
    for next in ["R", "P", "S", "Q"] {
        assert_eq!(run.offered(), left, "before {next}");
        run.begin(next);
        assert_eq!(run.offered(), [next], "others offered while {next} runs");
        run.complete(next, json!({}));
        left.retain(|t| *t != next);
    }
    assert_eq!(run.completed(), ["Fork", "R", "P", "S", "Q", "Join"]);
    for task in ["P", "Q", "R", "S"] {
        assert_eq!(run.times_completed(task), 1, "{task}");
    }
    run.finish(CaseStatus::Completed);
}

// ---------------------------------------------------------------------------------------------
// Triggers

#[test]
fn wcp23_transient_trigger_is_lost_when_nothing_listens() {
    let mut run = Run::start("wcp23_transient_trigger.ttl", json!({}));
    let early = run.trigger("payment");
    assert!(
        matches!(early, Err(Error::NoTriggerWaiting(_))),
        "{early:?}"
    );
    run.complete("Prepare", json!({}));
    // The early event was not kept: Pay waits for one of its own.
    assert_eq!(run.completed(), ["Prepare"]);
    assert!(
        run.driver.effects().iter().any(|e| matches!(e,
        Effect::AwaitTrigger { task, event } if task.task.as_str() == "Pay" && event == "payment"))
    );
    assert_eq!(run.offered(), Vec::<String>::new());
    run.finish(CaseStatus::Running);
    run.trigger("payment").expect("Pay listens once enabled");
    assert_eq!(run.completed(), ["Prepare", "Pay"]);
    run.complete("Ship", json!({}));
    assert_eq!(run.completed(), ["Prepare", "Pay", "Ship"]);
    run.finish(CaseStatus::Completed);
}

#[test]
fn wcp24_persistent_trigger_keeps_an_early_event() {
    let mut run = Run::start("wcp24_persistent_trigger.ttl", json!({}));
    run.trigger("payment")
        .expect("Receive listens from the start");
    // The event is kept as a token; Ship still waits for Prepare.
    assert_eq!(run.offered(), ["Prepare"]);
    run.complete("Prepare", json!({}));
    run.complete("Ship", json!({}));
    assert_eq!(run.completed(), ["Fork", "Receive", "Prepare", "Ship"]);
    run.finish(CaseStatus::Completed);
}

#[test]
fn wcp24_persistent_trigger_waits_for_a_late_event() {
    let mut run = Run::start("wcp24_persistent_trigger.ttl", json!({}));
    run.complete("Prepare", json!({}));
    assert_eq!(
        run.offered(),
        Vec::<String>::new(),
        "Ship ran without the event"
    );
    run.finish(CaseStatus::Running);
    run.trigger("payment").expect("Receive still listens");
    run.complete("Ship", json!({}));
    assert_eq!(run.completed(), ["Fork", "Prepare", "Receive", "Ship"]);
    run.finish(CaseStatus::Completed);
}

// ---------------------------------------------------------------------------------------------
// Discriminators

#[test]
fn wcp28_blocking_discriminator_blocks_the_next_round_until_it_resets() {
    let mut run = Run::start(
        "wcp28_blocking_discriminator.ttl",
        json!({ "again": false }),
    );
    assert_eq!(run.offered(), ["B", "C"]);
    run.complete("C", json!({}));
    assert_eq!(run.times_completed("FirstC"), 1);
    assert_eq!(run.offered(), ["B", "Follow"]);
    // Follow starts a second round while B of the first round has not arrived yet.
    run.complete("Follow", json!({ "again": true }));
    assert_eq!(run.times_completed("Fork"), 2);
    assert_eq!(run.offered(), ["B", "C"]);
    // The second round's C arrives first: the discriminator has not reset, so it is blocked.
    run.complete("C", json!({}));
    assert_eq!(run.times_completed("FirstC"), 1, "fired before the reset");
    assert_eq!(run.times_completed("LaterC"), 0);
    assert_eq!(run.offered(), ["B"]);
    run.finish(CaseStatus::Running);
    // The first round's B arrives: the discriminator resets and takes the blocked arrival.
    run.complete("B", json!({}));
    assert_eq!(run.times_completed("Reset"), 1);
    assert_eq!(run.times_completed("FirstC"), 2);
    assert_eq!(run.offered(), ["B", "Follow"]);
    run.complete("Follow", json!({ "again": false }));
    assert_eq!(run.times_completed("Close"), 0, "closed before the reset");
    run.complete("B", json!({}));
    assert_eq!(
        run.completed(),
        [
            "Init", "Fork", "C", "FirstC", "Follow", "Fork", "C", "B", "LaterB", "Reset", "FirstC",
            "Follow", "B", "LaterB", "Reset", "Close"
        ]
    );
    assert_eq!(run.times_completed("FirstB"), 0);
    run.finish(CaseStatus::Completed);
}

#[test]
fn wcp29_cancelling_discriminator_cancels_the_other_branches() {
    let mut run = Run::start("wcp29_cancelling_discriminator.ttl", json!({}));
    assert_eq!(run.offered(), ["B", "C", "D"]);
    let d = run.item("D");
    let c = run.item("C");
    run.begin("C");
    run.complete("B", json!({}));
    assert!(run.cancelled("C"), "running C was not cancelled");
    assert!(run.stopped("D"), "offered D was not withdrawn");
    let withdrawn = run.withdrawn_items();
    assert!(withdrawn.contains(&c) && withdrawn.contains(&d));
    assert_eq!(run.offered(), ["Follow"]);
    run.complete("Follow", json!({}));
    assert_eq!(run.completed(), ["Fork", "B", "Disc", "Follow"]);
    run.finish(CaseStatus::Completed);
}

// ---------------------------------------------------------------------------------------------
// Multiple instances

#[test]
fn wcp35_cancelling_partial_join_withdraws_the_remaining_instances() {
    let data = json!({ "reviewers": ["kim", "lee", "max", "ola"] });
    let mut run = Run::start("wcp35_cancelling_partial_join_mi.ttl", data);
    let reviews = run.items("Review");
    assert_eq!(reviews.len(), 4);
    run.begin("Review"); // instance 0 is started, and will be cancelled
    run.complete_item(reviews[3], json!({ "score": 4 }));
    assert_eq!(run.completed(), Vec::<String>::new());
    run.complete_item(reviews[1], json!({ "score": 2 }));
    assert_eq!(run.completed(), ["Review"]);
    let withdrawn = run.withdrawn_items();
    assert!(withdrawn.contains(&reviews[0]) && withdrawn.contains(&reviews[2]));
    assert!(run.items("Review").is_empty());
    assert_eq!(
        run.data("reviews"),
        Some(&json!([{ "score": 2 }, { "score": 4 }]))
    );
    assert_eq!(run.offered(), ["Decide"]);
    run.complete("Decide", json!({}));
    assert_eq!(run.completed(), ["Review", "Decide"]);
    run.finish(CaseStatus::Completed);
}
