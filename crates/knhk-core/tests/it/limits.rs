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

/// A composite task `id` decomposing into net `into`, flowing to `to`.
fn composite(id: &str, into: &str, to: &str) -> model::Task {
    let mut t = task(id, Xor, Xor, vec![flow(to)]);
    t.decomposition = Some(NetId::new(into));
    t
}

/// main runs b (net nb); nb's net starts with `first` then runs c (net nc); nc runs b2 (net nb).
fn recursion(first: Option<model::Task>) -> Specification {
    let nb = match first {
        None => net(
            "nb",
            vec![flow("c")],
            vec![],
            vec![composite("c", "nc", "end")],
        ),
        Some(first) => {
            let name = first.id.to_string();
            net(
                "nb",
                vec![flow(&name)],
                vec![],
                vec![first, composite("c", "nc", "end")],
            )
        }
    };
    spec(vec![
        net(
            "main",
            vec![flow("b")],
            vec![],
            vec![composite("b", "nb", "end")],
        ),
        nb,
        net(
            "nc",
            vec![flow("b2")],
            vec![],
            vec![composite("b2", "nb", "end")],
        ),
    ])
}

#[test]
fn sub_nets_that_start_each_other_without_an_atomic_task_are_refused_naming_the_cycle() {
    let err = Workflow::new(recursion(None)).expect_err("refused");
    assert_eq!(err.violations.len(), 1, "{err}");
    let v = &err.violations[0];
    assert_eq!(v.element, "c");
    assert!(
        v.rule.contains(
            "composite task c of net nb starts net nc, whose composite task b2 starts net nb \
             again without any atomic task on the way: a recursion that never ends"
        ),
        "{v}"
    );
}

#[test]
fn a_sub_net_that_starts_itself_is_refused() {
    let wf = spec(vec![
        net(
            "main",
            vec![flow("b")],
            vec![],
            vec![composite("b", "nb", "end")],
        ),
        net(
            "nb",
            vec![flow("again")],
            vec![],
            vec![composite("again", "nb", "end")],
        ),
    ]);
    let err = Workflow::new(wf).expect_err("refused");
    assert!(
        err.to_string()
            .contains("composite task again of net nb starts net nb again"),
        "{err}"
    );
}

#[test]
fn recursion_that_reaches_a_human_task_first_is_valid() {
    let first = human(task("h", Xor, Xor, vec![flow("c")]), "clerk");
    Workflow::new(recursion(Some(first))).expect("valid: each level waits for a person");
}

fn failure_reason(run: &Run) -> String {
    run.history()
        .iter()
        .find_map(|e| match &e.kind {
            EventKind::CaseStateChanged {
                to: CaseStatus::Failed,
                reason,
                ..
            } => reason.clone(),
            _ => None,
        })
        .expect("a failure reason")
}

#[test]
fn recursion_through_an_empty_task_fails_the_case_at_the_sub_net_depth_bound() {
    let first = task("e", Xor, Xor, vec![flow("c")]);
    let wf = Workflow::new(recursion(Some(first))).expect("valid: e is an atomic task");
    let run = start_with(&wf, ApplyOptions::default().with_max_subnet_depth(10));
    assert_eq!(run.case().status(), CaseStatus::Failed);
    let reason = failure_reason(&run);
    assert!(
        reason.contains("sub-nets nested more than 10 deep"),
        "{reason}"
    );
    assert!(
        reason.contains("would start net n"),
        "names the task and the net: {reason}"
    );
    assert!(reason.contains("inside nc inside nb inside nc"), "{reason}");
    let started = run
        .history()
        .iter()
        .filter(|e| matches!(e.kind, EventKind::NetStarted { .. }))
        .count();
    assert_eq!(started, 10, "nets started before the bound");
    run.check_replay();
}

#[test]
fn the_default_sub_net_depth_bound_is_64() {
    assert_eq!(ApplyOptions::default().max_subnet_depth, 64);
    let first = task("e", Xor, Xor, vec![flow("c")]);
    let wf = Workflow::new(recursion(Some(first))).expect("valid");
    let run = Run::start(&wf, json!({}));
    assert_eq!(run.case().status(), CaseStatus::Failed);
    assert!(failure_reason(&run).contains("more than 64 deep"));
}

#[test]
fn sub_nets_nested_within_the_bound_run() {
    // main -> b (nb: e -> c (nc: x)) nests two deep.
    let wf = workflow(vec![
        net(
            "main",
            vec![flow("b")],
            vec![],
            vec![composite("b", "nb", "end")],
        ),
        net(
            "nb",
            vec![flow("e")],
            vec![],
            vec![
                task("e", Xor, Xor, vec![flow("c")]),
                composite("c", "nc", "end"),
            ],
        ),
        net(
            "nc",
            vec![flow("x")],
            vec![],
            vec![task("x", Xor, Xor, vec![flow("end")])],
        ),
    ]);
    let run = start_with(&wf, ApplyOptions::default().with_max_subnet_depth(2));
    assert_eq!(run.case().status(), CaseStatus::Completed);
}

fn one_human_task() -> Workflow {
    workflow(vec![net(
        "n",
        vec![flow("h")],
        vec![],
        vec![human(task("h", Xor, Xor, vec![flow("end")]), "clerk")],
    )])
}

#[test]
fn an_output_that_would_make_the_case_data_too_large_fails_the_task() {
    let wf = one_human_task();
    let mut run = Run::created(&wf, json!({"a": "x"}));
    run.set_options(ApplyOptions::default().with_max_data_bytes(1_000));
    run.input(Input::Start).expect("start");
    run.complete("h", json!({ "big": "y".repeat(1_000) }));
    assert_eq!(run.case().status(), CaseStatus::Failed);
    let reason = failure_reason(&run);
    assert!(
        reason.contains("its output would make the case data larger than the 1000 bytes allowed"),
        "{reason}"
    );
    assert_eq!(
        run.case().data().get("big"),
        None,
        "the output was not merged"
    );
    run.check_replay();
}

#[test]
fn an_output_within_the_bound_is_merged() {
    let wf = one_human_task();
    let mut run = Run::created(&wf, json!({"a": "x".repeat(500)}));
    run.set_options(ApplyOptions::default().with_max_data_bytes(1_000));
    run.input(Input::Start).expect("start");
    // Replacing a key counts the new value only.
    run.complete("h", json!({ "a": "y".repeat(900) }));
    assert_eq!(run.case().status(), CaseStatus::Completed);
    assert_eq!(ApplyOptions::default().max_data_bytes, 1024 * 1024);
}

#[test]
fn data_set_from_outside_that_would_make_the_case_data_too_large_is_refused() {
    let wf = one_human_task();
    let mut run = Run::created(&wf, json!({}));
    run.set_options(ApplyOptions::default().with_max_data_bytes(100));
    run.input(Input::Start).expect("start");
    let mut changes = serde_json::Map::new();
    changes.insert("big".into(), json!("z".repeat(200)));
    let before = run.history().len();
    let err = run
        .input(Input::UpdateData { changes })
        .expect_err("refused");
    assert_eq!(
        err.to_string(),
        "the data to set would make the case data larger than the 100 bytes allowed"
    );
    assert_eq!(run.history().len(), before, "nothing changed");
}
