//! Sequence, parallel split and synchronisation, choice, deferred choice, cancellation.

use knhk_core::model::ControlType::{And, Or, Xor};
use knhk_core::*;
use serde_json::json;

use crate::harness::*;

#[test]
fn sequence_of_empty_tasks_completes_in_order() {
    let wf = workflow(vec![net(
        "n",
        vec![flow("a")],
        vec![],
        vec![
            task("a", Xor, Xor, vec![flow("b")]),
            task("b", Xor, Xor, vec![flow("c")]),
            task("c", Xor, Xor, vec![flow("end")]),
        ],
    )]);
    let run = Run::start(&wf, json!({}));
    assert_eq!(run.completed(), ["a", "b", "c"]);
    assert_eq!(run.case().status(), CaseStatus::Completed);
    assert!(run.effects().contains(&Effect::CaseEnded {
        status: CaseStatus::Completed
    }));
    let changes: Vec<_> = run
        .history()
        .iter()
        .filter_map(|e| match e.kind {
            EventKind::CaseStateChanged { from, to, .. } => Some((from, to)),
            _ => None,
        })
        .collect();
    assert_eq!(
        changes,
        [
            (CaseStatus::Created, CaseStatus::Running),
            (CaseStatus::Running, CaseStatus::Completed)
        ]
    );
    run.check_replay();
}

#[test]
fn and_split_waits_for_every_branch_at_the_and_join() {
    let wf = workflow(vec![net(
        "n",
        vec![flow("split")],
        vec![],
        vec![
            task("split", Xor, And, vec![flow("x"), flow("y")]),
            human(task("x", Xor, Xor, vec![flow("join")]), "r"),
            human(task("y", Xor, Xor, vec![flow("join")]), "r"),
            task("join", And, Xor, vec![flow("end")]),
        ],
    )]);
    let mut run = Run::start(&wf, json!({}));
    assert_eq!(run.case().work_items().count(), 2);
    run.complete("y", json!({}));
    assert!(!run.completed().contains(&"join".to_string()));
    run.complete("x", json!({}));
    assert_eq!(run.completed(), ["split", "y", "x", "join"]);
    assert_eq!(run.case().status(), CaseStatus::Completed);
    run.check_replay();
}

fn choice(split: knhk_core::model::ControlType) -> Workflow {
    workflow(vec![net(
        "n",
        vec![flow("decide")],
        vec![],
        vec![
            task(
                "decide",
                Xor,
                split,
                vec![
                    when("big", "amount > 1000"),
                    when("vip", "tier == 'gold'"),
                    default_flow("small"),
                ],
            ),
            task("big", Xor, Xor, vec![flow("merge")]),
            task("vip", Xor, Xor, vec![flow("merge")]),
            task("small", Xor, Xor, vec![flow("merge")]),
            task(
                "merge",
                if split == Or { Or } else { Xor },
                Xor,
                vec![flow("end")],
            ),
        ],
    )])
}

#[test]
fn xor_split_takes_the_first_flow_that_holds_else_the_default() {
    let wf = choice(Xor);
    let run = Run::start(&wf, json!({"amount": 1500.5, "tier": "gold"}));
    assert_eq!(run.completed(), ["decide", "big", "merge"]);
    let run = Run::start(&wf, json!({"amount": 10, "tier": "gold"}));
    assert_eq!(run.completed(), ["decide", "vip", "merge"]);
    let run = Run::start(&wf, json!({"amount": 10, "tier": "bronze"}));
    assert_eq!(run.completed(), ["decide", "small", "merge"]);
    run.check_replay();
}

#[test]
fn or_split_takes_every_flow_that_holds_and_the_or_join_waits_for_them() {
    let wf = choice(Or);
    let run = Run::start(&wf, json!({"amount": 1500, "tier": "gold"}));
    let done = run.completed();
    assert_eq!(done.iter().filter(|t| *t == "merge").count(), 1, "{done:?}");
    assert_eq!(done.last().map(String::as_str), Some("merge"));
    assert!(done.contains(&"big".into()) && done.contains(&"vip".into()));
    assert!(!done.contains(&"small".into()));
    assert_eq!(run.case().status(), CaseStatus::Completed);
    run.check_replay();
}

#[test]
fn predicate_that_cannot_be_evaluated_fails_the_task_and_the_case_with_the_reason() {
    let wf = choice(Xor);
    let run = Run::start(&wf, json!({}));
    assert_eq!(run.case().status(), CaseStatus::Failed);
    let failed = run.history().iter().find_map(|e| match &e.kind {
        EventKind::TaskFailed { task, reason, .. } => Some((task.task.to_string(), reason.clone())),
        _ => None,
    });
    let (task, reason) = failed.expect("a task failed");
    assert_eq!(task, "decide");
    assert!(reason.contains("amount > 1000"), "{reason}");
    run.check_replay();
}

#[test]
fn deferred_choice_withdraws_the_sibling_when_one_starts() {
    let wf = workflow(vec![net(
        "n",
        vec![flow("a")],
        vec![cond("c", vec![flow("left"), flow("right")])],
        vec![
            task("a", Xor, Xor, vec![flow("c")]),
            human(task("left", Xor, Xor, vec![flow("end")]), "r"),
            human(task("right", Xor, Xor, vec![flow("end")]), "r"),
        ],
    )]);
    let mut run = Run::start(&wf, json!({}));
    assert_eq!(run.case().enabled_tasks(&wf).len(), 2);
    let right = run.item("right");
    let left = run.item("left");
    run.input(Input::StartWorkItem {
        item: right,
        user: "bob".into(),
    })
    .expect("start right");
    assert_eq!(
        run.names(|k| matches!(k, EventKind::TaskWithdrawn { .. })),
        ["left"]
    );
    assert!(
        run.effects()
            .contains(&Effect::WithdrawWorkItem { item: left })
    );
    let err = run
        .input(Input::CompleteWorkItem {
            item: left,
            user: "bob".into(),
            output: json!({}),
        })
        .expect_err("withdrawn item");
    assert_eq!(err, Error::UnknownWorkItem(left));
    run.input(Input::CompleteWorkItem {
        item: right,
        user: "bob".into(),
        output: json!({"picked": "right"}),
    })
    .expect("complete");
    assert_eq!(run.completed(), ["a", "right"]);
    assert_eq!(run.case().data()["picked"], "right");
    run.check_replay();
}

#[test]
fn cancellation_set_cancels_a_running_task_and_empties_conditions() {
    // a splits into a long human task and a cancelling task; the canceller removes the
    // long task; the case then completes through the canceller alone.
    let mut canceller = task("cancel", Xor, Xor, vec![flow("end")]);
    canceller.cancellation_set = vec!["long".into(), "c".into()];
    let wf = workflow(vec![net(
        "n",
        vec![flow("a")],
        vec![cond("c", vec![flow("long")])],
        vec![
            task("a", Xor, And, vec![flow("c"), flow("gate")]),
            human(task("gate", Xor, Xor, vec![flow("cancel")]), "r"),
            human(task("long", Xor, Xor, vec![flow("end")]), "r"),
            canceller,
        ],
    )]);
    let mut run = Run::start(&wf, json!({}));
    let long = run.item("long");
    run.input(Input::StartWorkItem {
        item: long,
        user: "ann".into(),
    })
    .expect("start long");
    run.complete("gate", json!({}));
    assert_eq!(
        run.names(|k| matches!(k, EventKind::TaskCancelled { .. })),
        ["long"]
    );
    assert!(
        run.effects()
            .contains(&Effect::WithdrawWorkItem { item: long })
    );
    assert_eq!(run.case().status(), CaseStatus::Completed);
    assert_eq!(run.case().work_items().count(), 0);
    run.check_replay();
}

#[test]
fn tokens_left_with_nothing_enabled_is_a_deadlock_not_a_completion() {
    // x's branch ends in an AND-join that y's branch never feeds (y goes to the end).
    let wf = workflow(vec![net(
        "n",
        vec![flow("a")],
        vec![],
        vec![
            task(
                "a",
                Xor,
                Xor,
                vec![when("x", "go == 'x'"), default_flow("y")],
            ),
            task("x", Xor, And, vec![flow("j"), flow("end")]),
            task("y", Xor, Xor, vec![flow("j2")]),
            task("j2", Xor, Xor, vec![flow("j"), flow("end")]),
            task("j", And, Xor, vec![flow("end")]),
        ],
    )]);
    // Through y, j2 is an XOR split: its first flow goes to j, which waits for x forever.
    let run = Run::start(&wf, json!({"go": "y"}));
    assert_eq!(
        run.case().status(),
        CaseStatus::Failed,
        "{:?}",
        run.completed()
    );
    assert!(
        run.history()
            .iter()
            .any(|e| matches!(&e.kind, EventKind::CaseDeadlocked { marked } if !marked.is_empty()))
    );
    run.check_replay();
}

#[test]
fn a_thread_that_ends_in_a_task_without_outgoing_flows_terminates_implicitly() {
    let wf = workflow(vec![net(
        "n",
        vec![flow("fork")],
        vec![],
        vec![
            task(
                "fork",
                Xor,
                Xor,
                vec![when("done", "quick"), default_flow("a")],
            ),
            task("done", Xor, Xor, vec![flow("end")]),
            task("a", Xor, And, vec![flow("b"), flow("c")]),
            task("b", Xor, Xor, vec![]),
            human(task("c", Xor, Xor, vec![]), "r"),
        ],
    )]);
    let mut run = Run::start(&wf, json!({"quick": false}));
    assert_eq!(
        run.case().status(),
        CaseStatus::Running,
        "c is still offered"
    );
    run.complete("c", json!({}));
    assert_eq!(run.completed(), ["fork", "a", "b", "c"]);
    assert_eq!(run.case().status(), CaseStatus::Completed);
    run.check_replay();
}
