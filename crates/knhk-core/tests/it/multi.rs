//! Multiple-instance tasks and composite tasks.

use knhk_core::model::ControlType::Xor;
use knhk_core::model::*;
use knhk_core::*;
use serde_json::json;

use crate::harness::*;

fn mi_net(threshold: Option<u32>, creation: CreationMode) -> Workflow {
    let mut review = human(task("review", Xor, Xor, vec![flow("end")]), "reviewer");
    review.multiple_instance = Some(MultipleInstance {
        minimum: 1,
        maximum: Some(4),
        threshold,
        creation,
        split: Some(Expression::cel("reviewers")),
        item_variable: "reviewer".into(),
        join_variable: Some("verdicts".into()),
    });
    review.output_mapping = Some(Expression::cel("{'by': reviewer, 'ok': output.ok}"));
    workflow(vec![net("n", vec![flow("review")], vec![], vec![review])])
}

#[test]
fn multiple_instances_split_a_list_and_join_their_outputs_in_instance_order() {
    let wf = mi_net(None, CreationMode::Static);
    let mut run = Run::start(&wf, json!({"reviewers": ["ann", "bob", "cy"]}));
    let offers: Vec<_> = run
        .effects()
        .iter()
        .filter_map(|e| match e {
            Effect::OfferWorkItem { item, input, .. } => Some((*item, input["reviewer"].clone())),
            _ => None,
        })
        .collect();
    assert_eq!(offers.len(), 3);
    assert_eq!(offers[1].1, "bob");
    for (i, (item, _)) in offers.iter().enumerate().rev() {
        run.input(Input::CompleteWorkItem {
            item: *item,
            user: "u".into(),
            output: json!({"ok": i != 1}),
        })
        .expect("complete");
    }
    assert_eq!(
        run.case().data()["verdicts"],
        json!([{"by": "ann", "ok": true}, {"by": "bob", "ok": false}, {"by": "cy", "ok": true}])
    );
    assert_eq!(run.case().status(), CaseStatus::Completed);
    run.check_replay();
}

#[test]
fn threshold_completes_the_task_and_cancels_the_remaining_instances() {
    let wf = mi_net(Some(2), CreationMode::Static);
    let mut run = Run::start(&wf, json!({"reviewers": ["ann", "bob", "cy"]}));
    let items = run.items("review");
    for item in &items[..2] {
        run.input(Input::CompleteWorkItem {
            item: *item,
            user: "u".into(),
            output: json!({"ok": true}),
        })
        .expect("complete");
    }
    assert!(
        run.effects()
            .contains(&Effect::WithdrawWorkItem { item: items[2] })
    );
    assert_eq!(
        run.case().data()["verdicts"].as_array().map(Vec::len),
        Some(2)
    );
    assert_eq!(run.case().status(), CaseStatus::Completed);
    run.check_replay();
}

#[test]
fn too_many_items_fail_the_task_with_the_bounds_in_the_reason() {
    let wf = mi_net(None, CreationMode::Static);
    let run = Run::start(&wf, json!({"reviewers": ["a", "b", "c", "d", "e"]}));
    assert_eq!(run.case().status(), CaseStatus::Failed);
    let reason = run.history().iter().find_map(|e| match &e.kind {
        EventKind::TaskFailed { reason, .. } => Some(reason.clone()),
        _ => None,
    });
    assert_eq!(
        reason.as_deref(),
        Some("5 instances are outside the bounds [1, 4]")
    );
}

#[test]
fn dynamic_instances_can_be_added_up_to_the_maximum_only() {
    let wf = mi_net(None, CreationMode::Dynamic);
    let mut run = Run::start(&wf, json!({"reviewers": ["ann", "bob", "cy"]}));
    let task = TaskRef {
        net_instance: 0,
        task: "review".into(),
    };
    run.input(Input::AddInstance {
        task: task.clone(),
        item: json!("dee"),
    })
    .expect("fourth");
    let err = run
        .input(Input::AddInstance {
            task,
            item: json!("eve"),
        })
        .expect_err("fifth");
    assert!(err.to_string().contains("maximum of 4"), "{err}");
    assert_eq!(run.items("review").len(), 4);
    for item in run.items("review") {
        run.input(Input::CompleteWorkItem {
            item,
            user: "u".into(),
            output: json!({"ok": true}),
        })
        .expect("complete");
    }
    assert_eq!(
        run.case().data()["verdicts"].as_array().map(Vec::len),
        Some(4)
    );
    run.check_replay();
}

#[test]
fn static_instances_cannot_be_added() {
    let wf = mi_net(None, CreationMode::Static);
    let mut run = Run::start(&wf, json!({"reviewers": ["ann"]}));
    let err = run
        .input(Input::AddInstance {
            task: TaskRef {
                net_instance: 0,
                task: "review".into(),
            },
            item: json!("x"),
        })
        .expect_err("static");
    assert!(matches!(err, Error::CannotAddInstance { .. }));
}

#[test]
fn composite_task_runs_its_sub_net_and_continues_after_it() {
    let mut sub_task = task("approve", Xor, Xor, vec![flow("b")]);
    sub_task.decomposition = Some(NetId::new("sub"));
    let wf = workflow(vec![
        net(
            "root",
            vec![flow("approve")],
            vec![],
            vec![sub_task, task("b", Xor, Xor, vec![flow("end")])],
        ),
        net(
            "sub",
            vec![flow("check")],
            vec![],
            vec![human(task("check", Xor, Xor, vec![flow("end")]), "r")],
        ),
    ]);
    let mut run = Run::start(&wf, json!({}));
    let item = run.item("check");
    assert_eq!(
        run.case().work_item(&item).map(|w| w.task.net_instance),
        Some(1)
    );
    run.complete("check", json!({"approved": true}));
    assert_eq!(run.completed(), ["check", "approve", "b"]);
    assert_eq!(run.case().data()["approved"], true);
    assert_eq!(run.case().status(), CaseStatus::Completed);
    run.check_replay();
}

#[test]
fn forcing_a_running_multiple_instance_task_to_complete_withdraws_the_rest() {
    let wf = mi_net(None, CreationMode::Static);
    let mut run = Run::start(&wf, json!({"reviewers": ["ann", "bob", "cy"]}));
    let items = run.items("review");
    run.input(Input::CompleteWorkItem {
        item: items[0],
        user: "u".into(),
        output: json!({"ok": true}),
    })
    .expect("one");
    let task = TaskRef {
        net_instance: 0,
        task: "review".into(),
    };
    run.input(Input::CompleteTask { task: task.clone() })
        .expect("force");
    assert!(
        run.effects()
            .contains(&Effect::WithdrawWorkItem { item: items[1] })
    );
    assert!(
        run.effects()
            .contains(&Effect::WithdrawWorkItem { item: items[2] })
    );
    assert_eq!(
        run.case().data()["verdicts"].as_array().map(Vec::len),
        Some(1)
    );
    assert_eq!(run.case().status(), CaseStatus::Completed);
    assert!(matches!(
        run.input(Input::CompleteTask { task }),
        Err(Error::WrongCaseState { .. })
    ));
    run.check_replay();
}

#[test]
fn a_stuck_sub_net_does_not_fail_the_case_while_another_branch_can_still_end_it() {
    // The sub-net's AND-join waits for a token nothing produces; the root's other branch,
    // a human task, still leads to the end.
    let mut comp = task("comp", Xor, Xor, vec![flow("end")]);
    comp.decomposition = Some(NetId::new("sub"));
    let wf = workflow(vec![
        net(
            "root",
            vec![flow("split")],
            vec![],
            vec![
                task(
                    "split",
                    Xor,
                    ControlType::And,
                    vec![flow("comp"), flow("h")],
                ),
                comp,
                human(task("h", Xor, Xor, vec![flow("end")]), "r"),
            ],
        ),
        net(
            "sub",
            vec![flow("a")],
            vec![],
            vec![
                task(
                    "a",
                    Xor,
                    Xor,
                    vec![when("never", "false"), default_flow("j")],
                ),
                human(task("never", Xor, Xor, vec![flow("j")]), "r"),
                task("j", ControlType::And, Xor, vec![flow("end")]),
            ],
        ),
    ]);
    let mut run = Run::start(&wf, json!({}));
    assert_eq!(run.case().status(), CaseStatus::Running);
    assert!(
        !run.history()
            .iter()
            .any(|e| matches!(e.kind, EventKind::CaseDeadlocked { .. }))
    );
    run.complete("h", json!({}));
    assert_eq!(run.case().status(), CaseStatus::Completed);
    assert!(run.case().marking(&wf).iter().all(|(ni, _, _)| *ni == 0));
    run.check_replay();
}
