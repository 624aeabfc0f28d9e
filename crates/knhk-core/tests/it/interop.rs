//! What real YAWL files need: splits and joins with one flow, a threshold above the maximum,
//! the initial values of net variables, and work items an administrator distributes.

use knhk_core::model::ControlType::{And, Or, Xor};
use knhk_core::model::*;
use knhk_core::*;
use serde_json::json;

use crate::harness::*;

fn noted(wf: &Workflow, element: &str, words: &str) -> bool {
    wf.notes()
        .iter()
        .any(|n| n.element == element && n.rule.contains(words))
}

#[test]
fn an_and_split_with_one_false_default_flow_takes_it_and_is_noted() {
    // As the YAWL editor writes it: an AND split whose one flow is `false()` and the default.
    let mut only = flow("B");
    only.predicate = Some(Expression::xpath("false()"));
    only.is_default = true;
    let wf = workflow(vec![net(
        "n",
        vec![flow("A")],
        vec![],
        vec![
            task("A", And, And, vec![only]),
            task("B", Or, Or, vec![flow("end")]),
        ],
    )]);
    assert!(noted(&wf, "A", "AND split has one outgoing flow"));
    assert!(noted(&wf, "A", "AND join has one incoming flow"));
    assert!(noted(&wf, "B", "OR split has one outgoing flow"));
    assert!(noted(&wf, "B", "OR join has one incoming flow"));
    let run = Run::start(&wf, json!({}));
    assert_eq!(run.completed(), vec!["A", "B"]);
    assert_eq!(run.case().status(), CaseStatus::Completed);
    run.check_replay();
}

#[test]
fn an_or_split_with_one_flow_whose_predicate_fails_still_takes_it() {
    let wf = workflow(vec![net(
        "n",
        vec![flow("A")],
        vec![],
        vec![task("A", Xor, Or, vec![when("end", "false")])],
    )]);
    assert!(noted(&wf, "A", "taken whatever its predicate"));
    let run = Run::start(&wf, json!({}));
    assert_eq!(run.case().status(), CaseStatus::Completed);
}

#[test]
fn a_two_flow_and_split_with_a_predicate_is_still_an_error() {
    let spec = spec(vec![net(
        "n",
        vec![flow("A")],
        vec![],
        vec![
            task("A", Xor, And, vec![when("B", "true"), flow("C")]),
            task("B", Xor, Xor, vec![flow("end")]),
            task("C", Xor, Xor, vec![flow("end")]),
        ],
    )]);
    let err = Workflow::new(spec).expect_err("predicate on an AND split");
    assert!(err.to_string().contains("AND split cannot have predicates"));
}

#[test]
fn a_threshold_above_the_maximum_is_noted_and_capped_at_the_instances() {
    let mut review = human(task("review", Xor, Xor, vec![flow("end")]), "reviewer");
    review.multiple_instance = Some(MultipleInstance {
        minimum: 1,
        maximum: Some(2),
        threshold: Some(5),
        creation: CreationMode::Static,
        split: Some(Expression::cel("reviewers")),
        item_variable: "reviewer".into(),
        join_variable: None,
    });
    let wf = workflow(vec![net("n", vec![flow("review")], vec![], vec![review])]);
    assert!(noted(&wf, "review", "threshold 5 is above the maximum 2"));
    let mut run = Run::start(&wf, json!({"reviewers": ["ann", "bob"]}));
    let items = run.items("review");
    assert_eq!(items.len(), 2);
    for item in items {
        assert_eq!(run.case().status(), CaseStatus::Running);
        run.input(Input::CompleteWorkItem {
            item,
            user: "u".into(),
            output: json!({}),
        })
        .expect("complete");
    }
    // Two instances can never reach a threshold of 5: the task completes when both did.
    assert_eq!(run.case().status(), CaseStatus::Completed);
    run.check_replay();
}

#[test]
fn initial_values_start_the_case_data_under_what_creation_gives() {
    let mut spec = spec(vec![net(
        "n",
        vec![flow("route")],
        vec![],
        vec![task(
            "route",
            Xor,
            Xor,
            vec![when("yes", "approved == true"), default_flow("no")],
        )]
        .into_iter()
        .chain([
            human(task("yes", Xor, Xor, vec![flow("end")]), "r"),
            human(task("no", Xor, Xor, vec![flow("end")]), "r"),
        ])
        .collect(),
    )]);
    spec.initial_data.insert("approved".into(), json!(true));
    spec.initial_data.insert("amount".into(), json!(10));
    let wf = Workflow::new(spec).expect("valid");
    let run = Run::start(&wf, json!({"amount": 99}));
    assert_eq!(run.case().data()["approved"], json!(true));
    assert_eq!(run.case().data()["amount"], json!(99));
    assert_eq!(run.items("yes").len(), 1);
    assert!(run.items("no").is_empty());
    run.check_replay();
}

fn admin_net() -> Workflow {
    let mut t = human(task("A", Xor, Xor, vec![flow("end")]), "admin");
    if let TaskBinding::Human(h) = &mut t.binding {
        h.distributed_at_runtime = true;
    }
    workflow(vec![net("n", vec![flow("A")], vec![], vec![t])])
}

#[test]
fn an_administrator_offers_a_work_item_to_other_roles_and_replay_keeps_it() {
    let wf = admin_net();
    let mut run = Run::start(&wf, json!({}));
    let item = run.item("A");
    assert_eq!(
        run.case().work_item(&item).map(|w| w.offered_to.clone()),
        Some(None)
    );
    let step = run
        .input(Input::OfferWorkItem {
            item,
            roles: vec!["clerk".into(), " clerk ".into(), "boss".into()],
        })
        .expect("offer");
    assert_eq!(
        step.events
            .iter()
            .map(|e| e.kind.clone())
            .collect::<Vec<_>>(),
        vec![EventKind::WorkItemReoffered {
            item,
            roles: vec!["clerk".into(), "boss".into()],
        }]
    );
    let wi = run.case().work_item(&item).expect("live");
    assert_eq!(wi.state, WorkItemState::Offered);
    assert_eq!(wi.offered_to, Some(vec!["clerk".into(), "boss".into()]));
    run.check_replay();
    // Offered again, the new roles replace the earlier ones.
    run.input(Input::OfferWorkItem {
        item,
        roles: vec!["audit".into()],
    })
    .expect("offer again");
    assert_eq!(
        run.case()
            .work_item(&item)
            .and_then(|w| w.offered_to.clone()),
        Some(vec!["audit".into()])
    );
    // What the case waits for names the roles it is offered to now.
    let waits = run.case().waits(&wf);
    assert!(
        matches!(&waits[..], [knhk_core::Wait::WorkItem { roles, .. }] if roles == &["audit"]),
        "{waits:?}"
    );
    run.input(Input::AllocateWorkItem {
        item,
        user: "ann".into(),
    })
    .expect("allocate");
    run.complete("A", json!({}));
    assert_eq!(run.case().status(), CaseStatus::Completed);
    run.check_replay();
}

#[test]
fn offering_an_allocated_item_or_to_no_role_is_refused_and_changes_nothing() {
    let wf = admin_net();
    let mut run = Run::start(&wf, json!({}));
    let item = run.item("A");
    let err = run
        .input(Input::OfferWorkItem {
            item,
            roles: vec![" ".into()],
        })
        .expect_err("no role");
    assert_eq!(err, Error::NoRoles(item));
    run.input(Input::AllocateWorkItem {
        item,
        user: "ann".into(),
    })
    .expect("allocate");
    let before = run.case().clone();
    let err = run
        .input(Input::OfferWorkItem {
            item,
            roles: vec!["clerk".into()],
        })
        .expect_err("allocated");
    assert_eq!(
        err,
        Error::WrongWorkItemState {
            item,
            state: "allocated",
            action: "offer",
        }
    );
    assert_eq!(run.case(), &before);
    let unknown = WorkItemId(uuid::Uuid::from_u128(99));
    assert_eq!(
        run.input(Input::OfferWorkItem {
            item: unknown,
            roles: vec!["clerk".into()],
        }),
        Err(Error::UnknownWorkItem(unknown))
    );
}

#[test]
fn replay_refuses_a_reoffer_after_allocation() {
    let wf = admin_net();
    let mut run = Run::start(&wf, json!({}));
    let item = run.item("A");
    run.input(Input::AllocateWorkItem {
        item,
        user: "ann".into(),
    })
    .expect("allocate");
    let mut events = run.history().to_vec();
    events.push(Event {
        seq: events.len() as u64 + 1,
        time: Timestamp(9),
        kind: EventKind::WorkItemReoffered {
            item,
            roles: vec!["clerk".into()],
        },
    });
    assert!(matches!(
        Case::replay(&wf, run.case().id(), &events),
        Err(Error::Replay { .. })
    ));
}
