//! A step is bounded: a loop of tasks that need nothing from outside fails the case, naming
//! the loop, instead of running for ever.

use knhk_core::model::ControlType::Xor;
use knhk_core::*;
use serde_json::json;

use crate::harness::*;

/// start -> a -> b; b's XOR split always loops back to a (its predicate holds).
fn xor_loop() -> Workflow {
    workflow(vec![net(
        "n",
        vec![flow("a")],
        vec![],
        vec![
            task("a", Xor, Xor, vec![flow("b")]),
            task("b", Xor, Xor, vec![when("a", "true"), default_flow("end")]),
        ],
    )])
}

/// start -> first -> c; c is a deferred choice between `again` (empty, back to c) and `leave`
/// (a human task, to end): `again` starts at once every time, before anyone can take `leave`.
fn deferred_choice_loop() -> Workflow {
    workflow(vec![net(
        "n",
        vec![flow("first")],
        vec![cond("c", vec![flow("again"), flow("leave")])],
        vec![
            task("first", Xor, Xor, vec![flow("c")]),
            task("again", Xor, Xor, vec![flow("c")]),
            human(task("leave", Xor, Xor, vec![flow("end")]), "clerk"),
        ],
    )])
}

fn incident(run: &Run) -> (u32, Vec<String>) {
    run.history()
        .iter()
        .find_map(|e| match &e.kind {
            EventKind::FiringLimitReached { firings, tasks } => {
                Some((*firings, tasks.iter().map(|t| t.task.to_string()).collect()))
            }
            _ => None,
        })
        .expect("a firing limit incident")
}

fn start_with(wf: &Workflow, options: ApplyOptions) -> Run<'_> {
    let mut run = Run::created(wf, json!({}));
    run.set_options(options);
    run.input(Input::Start).expect("start");
    run
}

#[test]
fn an_xor_loop_of_empty_tasks_fails_the_case_naming_the_loop() {
    let wf = xor_loop();
    let run = start_with(&wf, ApplyOptions::default().with_max_firings(1_000));
    assert_eq!(run.case().status(), CaseStatus::Failed);
    let (firings, tasks) = incident(&run);
    assert!(firings > 1_000, "fired {firings}");
    assert_eq!(tasks, ["a", "b"]);
    let reason = run
        .history()
        .iter()
        .find_map(|e| match &e.kind {
            EventKind::CaseStateChanged {
                to: CaseStatus::Failed,
                reason,
                ..
            } => reason.clone(),
            _ => None,
        })
        .expect("a failure reason");
    assert!(reason.contains("more than 1000 tasks"), "{reason}");
    assert!(reason.contains("a, b"), "{reason}");
    assert!(run.effects().contains(&Effect::CaseEnded {
        status: CaseStatus::Failed
    }));
    // What the step keeps grows with the bound, not with the loop: a few events a firing.
    assert!(
        run.history().len() < 4 * 1_000 + 20,
        "{} events",
        run.history().len()
    );
    run.check_replay();
}

#[test]
fn the_default_bound_is_one_hundred_thousand_firings() {
    assert_eq!(ApplyOptions::default().max_firings, 100_000);
    let wf = xor_loop();
    let run = Run::start(&wf, json!({}));
    assert_eq!(run.case().status(), CaseStatus::Failed);
    let (firings, tasks) = incident(&run);
    assert!((100_001..100_010).contains(&firings), "fired {firings}");
    assert_eq!(tasks, ["a", "b"]);
    assert!(
        run.history().len() < 4 * 100_000,
        "{} events",
        run.history().len()
    );
    run.check_replay();
}

#[test]
fn a_deferred_choice_whose_empty_branch_loops_fails_the_case() {
    let wf = deferred_choice_loop();
    let run = start_with(&wf, ApplyOptions::default().with_max_firings(500));
    assert_eq!(run.case().status(), CaseStatus::Failed);
    let (_, tasks) = incident(&run);
    assert_eq!(tasks, ["again"]);
    run.check_replay();
}

#[test]
fn a_loop_that_ends_within_the_bound_completes() {
    // b loops back while n < 5, counting through its output mapping.
    let mut b = task("b", Xor, Xor, vec![when("a", "n < 5"), default_flow("end")]);
    b.output_mapping = Some(model::Expression::cel("{'n': n + 1}"));
    let wf = workflow(vec![net(
        "n",
        vec![flow("a")],
        vec![],
        vec![task("a", Xor, Xor, vec![flow("b")]), b],
    )]);
    let mut run = Run::created(&wf, json!({"n": 0}));
    run.set_options(ApplyOptions::default().with_max_firings(10));
    run.input(Input::Start).expect("start");
    assert_eq!(run.case().status(), CaseStatus::Completed);
    assert_eq!(run.case().data()["n"], json!(5));
    assert!(
        !run.history()
            .iter()
            .any(|e| matches!(e.kind, EventKind::FiringLimitReached { .. }))
    );
}
