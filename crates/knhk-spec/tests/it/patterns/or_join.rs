//! Tests of the OR-join patterns: the local (WCP 37) and general (WCP 38) synchronizing merge,
//! including loops and cancellation around the join.

use knhk_core::CaseStatus;
use serde_json::json;

use super::Run;

#[test]
fn wcp37_local_synchronizing_merge_waits_for_the_longer_path() {
    let data = json!({ "needB": true, "needC": true, "viaD": true });
    let mut run = Run::start("wcp37_local_synchronizing_merge.ttl", data);
    assert_eq!(run.offered(), ["B", "C"]);
    run.complete("B", json!({}));
    run.complete("C", json!({}));
    assert_eq!(run.offered(), ["D"]);
    assert_eq!(
        run.times_completed("J"),
        0,
        "J fired while D could still reach it"
    );
    run.complete("D", json!({}));
    assert_eq!(run.completed(), ["A", "B", "C", "D", "J"]);
    run.finish(CaseStatus::Completed);
}

#[test]
fn wcp37_local_synchronizing_merge_fires_when_the_active_paths_are_done() {
    let data = json!({ "needB": false, "needC": true, "viaD": false });
    let mut run = Run::start("wcp37_local_synchronizing_merge.ttl", data);
    assert_eq!(run.offered(), ["C"]);
    run.complete("C", json!({}));
    assert_eq!(run.completed(), ["A", "C", "J"]);
    run.finish(CaseStatus::Completed);

    let data = json!({ "needB": true, "needC": true, "viaD": false });
    let mut run = Run::start("wcp37_local_synchronizing_merge.ttl", data);
    run.complete("C", json!({}));
    assert_eq!(run.times_completed("J"), 0, "J fired while B was running");
    run.complete("B", json!({}));
    assert_eq!(run.completed(), ["A", "C", "B", "J"]);
    run.finish(CaseStatus::Completed);
}

#[test]
fn wcp38_or_join_in_a_loop_waits_for_a_token_travelling_in_the_loop() {
    let data = json!({ "needB": true, "needC": true, "redoC": false, "again": false });
    let mut run = Run::start("wcp38_general_synchronizing_merge_loop.ttl", data);
    assert_eq!(run.offered(), ["B", "C"]);
    run.complete("B", json!({}));
    run.complete("C", json!({}));
    assert_eq!(run.times_completed("J"), 0, "J fired while E was running");
    // E sends the token back into the C..E loop: it can still reach J, so J keeps waiting.
    run.complete("E", json!({ "redoC": true }));
    assert_eq!(run.offered(), ["C"]);
    assert_eq!(
        run.times_completed("J"),
        0,
        "J fired while a token was in the loop"
    );
    run.complete("C", json!({}));
    run.complete("E", json!({ "redoC": false }));
    assert_eq!(run.completed(), ["A", "B", "C", "E", "C", "E", "J"]);
    assert_eq!(run.offered(), ["F"]);
    // Second round of the outer loop, with only B chosen: J must not wait for C.
    run.complete("F", json!({ "again": true, "needC": false }));
    assert_eq!(run.offered(), ["B"]);
    run.complete("B", json!({}));
    assert_eq!(
        run.times_completed("J"),
        2,
        "J waited for the unchosen C branch"
    );
    run.complete("F", json!({ "again": false }));
    assert_eq!(
        run.completed(),
        ["A", "B", "C", "E", "C", "E", "J", "F", "A", "B", "J", "F"]
    );
    run.finish(CaseStatus::Completed);
}

#[test]
fn wcp38_or_join_fires_without_waiting_for_a_dead_branch() {
    let data = json!({ "needB": true, "needC": false });
    let mut run = Run::start("wcp38_general_synchronizing_merge_dead_branch.ttl", data);
    assert_eq!(run.completed(), ["A", "S"]);
    assert_eq!(run.offered(), ["B", "P"]);
    run.complete("B", json!({}));
    // C was not chosen, and the token at P cannot reach J: J fires now.
    assert_eq!(run.completed(), ["A", "S", "B", "J"]);
    run.complete("P", json!({}));
    run.assert_before("J", "P");
    assert_eq!(run.completed(), ["A", "S", "B", "J", "P", "Z"]);
    run.finish(CaseStatus::Completed);
}

#[test]
fn wcp38_or_join_waits_for_a_live_longer_branch() {
    let data = json!({ "needB": true, "needC": true });
    let mut run = Run::start("wcp38_general_synchronizing_merge_dead_branch.ttl", data);
    assert_eq!(run.offered(), ["B", "C", "P"]);
    run.complete("B", json!({}));
    run.complete("C", json!({}));
    assert_eq!(
        run.times_completed("J"),
        0,
        "J fired while D could still reach it"
    );
    run.complete("P", json!({}));
    assert_eq!(
        run.times_completed("J"),
        0,
        "J fired while D could still reach it"
    );
    run.complete("D", json!({}));
    assert_eq!(run.completed(), ["A", "S", "B", "C", "P", "D", "J", "Z"]);
    run.finish(CaseStatus::Completed);
}

#[test]
fn wcp38_or_join_fires_after_its_waiting_branch_is_cancelled() {
    let mut run = Run::start(
        "wcp38_general_synchronizing_merge_cancellation.ttl",
        json!({}),
    );
    assert_eq!(run.offered(), ["B", "C", "X"]);
    run.complete("B", json!({}));
    run.complete("C", json!({}));
    assert_eq!(run.offered(), ["D", "X"]);
    let d = run.item("D");
    // X removes the token in cC and withdraws D: J has nothing left to wait for.
    run.complete("X", json!({}));
    assert!(run.stopped("D"), "D was not withdrawn");
    assert!(run.withdrawn_items().contains(&d));
    assert_eq!(run.completed(), ["A", "B", "C", "X", "J"]);
    run.finish(CaseStatus::Completed);
}

#[test]
fn wcp38_or_join_fires_after_a_running_task_is_cancelled() {
    let mut run = Run::start(
        "wcp38_general_synchronizing_merge_cancellation.ttl",
        json!({}),
    );
    run.complete("B", json!({}));
    run.begin("C");
    run.complete("X", json!({}));
    assert!(run.cancelled("C"), "C was not cancelled");
    assert_eq!(run.completed(), ["A", "B", "X", "J"]);
    run.finish(CaseStatus::Completed);
}

#[test]
fn wcp38_or_join_after_cancellation_still_waits_for_live_branches() {
    let mut run = Run::start(
        "wcp38_general_synchronizing_merge_cancellation.ttl",
        json!({}),
    );
    run.complete("X", json!({}));
    assert!(run.stopped("C"), "C was not withdrawn");
    assert_eq!(run.times_completed("J"), 0, "J fired while B was running");
    assert_eq!(run.offered(), ["B"]);
    run.complete("B", json!({}));
    assert_eq!(run.completed(), ["A", "X", "B", "J"]);
    run.finish(CaseStatus::Completed);
}

#[test]
fn wcp38_or_join_waits_for_the_cancelling_task_itself() {
    let mut run = Run::start(
        "wcp38_general_synchronizing_merge_cancellation.ttl",
        json!({}),
    );
    run.complete("B", json!({}));
    run.complete("C", json!({}));
    run.complete("D", json!({}));
    assert_eq!(run.times_completed("J"), 0, "J fired while X was running");
    run.complete("X", json!({}));
    assert_eq!(run.completed(), ["A", "B", "C", "D", "X", "J"]);
    run.finish(CaseStatus::Completed);
}
