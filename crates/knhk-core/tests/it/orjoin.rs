//! The non-local OR-join (WCP-38): waits inside loops, does not wait for dead or cancelled
//! branches, and never hangs.

use knhk_core::model::ControlType::{And, Or, Xor};
use knhk_core::*;
use serde_json::json;

use crate::harness::*;

/// split (OR) -> a, b -> merge (OR-join); a runs through a loop (a -> check -> a) before it
/// reaches the merge.
fn loop_net() -> Workflow {
    workflow(vec![net(
        "n",
        vec![flow("split")],
        vec![],
        vec![
            task(
                "split",
                Xor,
                Or,
                vec![when("a", "want_a"), when("b", "want_b")],
            ),
            human(task("a", Xor, Xor, vec![flow("check")]), "r"),
            task(
                "check",
                Xor,
                Xor,
                vec![when("a", "again"), default_flow("merge")],
            ),
            human(task("b", Xor, Xor, vec![flow("merge")]), "r"),
            task("merge", Or, Xor, vec![flow("end")]),
        ],
    )])
}

#[test]
fn or_join_waits_for_a_token_still_travelling_in_a_loop() {
    let wf = loop_net();
    let mut run = Run::start(&wf, json!({"want_a": true, "want_b": true, "again": true}));
    run.complete("b", json!({}));
    // b's token is at the merge, but a is still active: the merge must wait.
    assert!(!run.completed().contains(&"merge".to_string()));
    run.complete("a", json!({"again": true}));
    // Looped back into a: still waiting.
    assert!(!run.completed().contains(&"merge".to_string()));
    assert_eq!(run.items("a").len(), 1);
    run.complete("a", json!({"again": false}));
    assert_eq!(
        run.completed(),
        ["split", "b", "a", "check", "a", "check", "merge"]
    );
    assert_eq!(run.case().status(), CaseStatus::Completed);
    run.check_replay();
}

#[test]
fn or_join_fires_at_once_when_the_other_branch_is_dead() {
    let wf = loop_net();
    let mut run = Run::start(
        &wf,
        json!({"want_a": false, "want_b": true, "again": false}),
    );
    assert!(run.items("a").is_empty(), "a was not chosen");
    run.complete("b", json!({}));
    assert_eq!(run.completed(), ["split", "b", "merge"]);
    assert_eq!(run.case().status(), CaseStatus::Completed);
    run.check_replay();
}

#[test]
fn or_join_does_not_hang_when_a_branch_is_cancelled() {
    // split (AND) -> a (human, long), b (human), k (human): completing k cancels a.
    let mut k = human(task("k", Xor, Xor, vec![flow("merge")]), "r");
    k.cancellation_set = vec!["a".into()];
    let wf = workflow(vec![net(
        "n",
        vec![flow("split")],
        vec![],
        vec![
            task("split", Xor, And, vec![flow("a"), flow("k")]),
            human(task("a", Xor, Xor, vec![flow("merge")]), "r"),
            k,
            task("merge", Or, Xor, vec![flow("end")]),
        ],
    )]);
    let mut run = Run::start(&wf, json!({}));
    let a = run.item("a");
    run.input(Input::StartWorkItem {
        item: a,
        user: "ann".into(),
    })
    .expect("start a");
    run.complete("k", json!({}));
    assert_eq!(
        run.names(|e| matches!(e, EventKind::TaskCancelled { .. })),
        ["a"]
    );
    assert_eq!(run.completed(), ["split", "k", "merge"]);
    assert_eq!(run.case().status(), CaseStatus::Completed);
    run.check_replay();
}

#[test]
fn or_join_ignores_a_branch_blocked_behind_an_and_join_that_can_never_fire() {
    // x feeds both an AND-join j (whose other input is never produced) and the merge; the
    // merge must not wait for j's output.
    let wf = workflow(vec![net(
        "n",
        vec![flow("split")],
        vec![],
        vec![
            task(
                "split",
                Xor,
                Or,
                vec![when("x", "true"), default_flow("never")],
            ),
            task("x", Xor, And, vec![flow("j"), flow("merge")]),
            human(task("never", Xor, Xor, vec![flow("j")]), "r"),
            task("j", And, Xor, vec![flow("merge")]),
            task("merge", Or, Xor, vec![flow("end")]),
        ],
    )]);
    let run = Run::start(&wf, json!({}));
    // j waits for `never` which was not chosen; the merge fires, the output is reached and
    // the leftover token in front of j is withdrawn with the case.
    assert!(run.completed().contains(&"merge".to_string()));
    assert_eq!(run.case().status(), CaseStatus::Completed);
    run.check_replay();
}

#[test]
fn or_joins_waiting_on_each_other_do_not_hang() {
    // Two OR-joins, each downstream of the other (a vicious circle): the engine lets the
    // first fire rather than wait forever.
    let wf = workflow(vec![net(
        "n",
        vec![flow("s")],
        vec![],
        vec![
            task("s", Xor, And, vec![flow("o1"), flow("o2")]),
            task("o1", Or, Xor, vec![when("o2", "again"), default_flow("e1")]),
            task("o2", Or, Xor, vec![when("o1", "again"), default_flow("e2")]),
            task("e1", Xor, Xor, vec![flow("done")]),
            task("e2", Xor, Xor, vec![flow("done")]),
            task("done", And, Xor, vec![flow("end")]),
        ],
    )]);
    let run = Run::start(&wf, json!({"again": false}));
    assert_eq!(
        run.case().status(),
        CaseStatus::Completed,
        "{:?}",
        run.completed()
    );
    let done = run.completed();
    assert!(done.contains(&"o1".into()) && done.contains(&"o2".into()));
    run.check_replay();
}

/// Two OR-joins waiting on each other, the first with two tokens on one input: `go` (AND)
/// puts two tokens in p1 (through a and b) and one in q1 (through c). j1 (p1, p2) leads to the
/// human task x, which may lead to q2; j2 (q1, q2) leads to p2 through y. Each join may receive a
/// token from the other, so neither may fire by the rule, and the fallback lets j1 fire once.
/// After that the rule applies again: with its second token on p1, j1 must wait while x, still
/// offered, can send a token round to p2. (It used to fire a second time in the same step.)
#[test]
fn the_fallback_fires_an_or_join_once_then_the_rule_applies_again() {
    let wf = workflow(vec![net(
        "n",
        vec![flow("go")],
        vec![
            cond("p1", vec![flow("j1")]),
            cond("p2", vec![flow("j1")]),
            cond("q1", vec![flow("j2")]),
            cond("q2", vec![flow("j2")]),
        ],
        vec![
            task("go", Xor, And, vec![flow("a"), flow("b"), flow("c")]),
            task("a", Xor, Xor, vec![flow("p1")]),
            task("b", Xor, Xor, vec![flow("p1")]),
            task("c", Xor, Xor, vec![flow("q1")]),
            task("j1", Or, Xor, vec![flow("x")]),
            human(
                task("x", Xor, Xor, vec![when("q2", "back"), default_flow("end")]),
                "r",
            ),
            task("j2", Or, Xor, vec![flow("y")]),
            task("y", Xor, Xor, vec![flow("p2")]),
        ],
    )]);
    let run = Run::start(&wf, json!({"back": true}));
    let j1 = run.completed().iter().filter(|t| *t == "j1").count();
    assert_eq!(j1, 1, "the fallback fires j1 once: {:?}", run.completed());
    assert_eq!(run.items("x").len(), 1, "one work item of x");
    run.check_replay();
}

#[test]
fn or_join_fires_where_the_only_way_to_its_other_input_takes_its_token() {
    // a -> p1; p1 feeds the OR-join t and the human task u; u -> p2 -> t. A marking with
    // p1 and p2 marked cannot be reached (u takes p1's token), so t fires at once, as in
    // YAWL, and u's offer is withdrawn.
    let wf = workflow(vec![net(
        "n",
        vec![flow("a")],
        vec![
            cond("p1", vec![flow("t"), flow("u")]),
            cond("p2", vec![flow("t")]),
        ],
        vec![
            task("a", Xor, And, vec![flow("p1")]),
            human(task("u", Xor, And, vec![flow("p2")]), "r"),
            task("t", Or, And, vec![flow("end")]),
        ],
    )]);
    let run = Run::start(&wf, json!({}));
    assert_eq!(run.completed(), ["a", "t"]);
    assert_eq!(run.case().status(), CaseStatus::Completed);
    assert!(wf.or_join_stats().exact_checks >= 1);
    assert_eq!(wf.or_join_stats().over_budget, 0);
    run.check_replay();
}
