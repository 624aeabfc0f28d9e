//! Persistent and transient triggers (WCP-24 and WCP-23): what happens to an event that
//! arrives before a task waits for it.

use knhk_core::model::ControlType::{And, Xor};
use knhk_core::model::*;
use knhk_core::*;
use serde_json::json;

use crate::harness::*;

/// start -> review (human, clerk) -> paid (trigger "paid" of `kind`) -> end.
fn review_then_paid(kind: TriggerKind) -> Workflow {
    let review = human(task("review", Xor, Xor, vec![flow("paid")]), "clerk");
    let mut paid = task("paid", Xor, Xor, vec![flow("end")]);
    paid.binding = TaskBinding::Trigger {
        event: "paid".into(),
        trigger_kind: kind,
    };
    workflow(vec![net(
        "n",
        vec![flow("review")],
        vec![],
        vec![review, paid],
    )])
}

fn paid(amount: i64) -> Input {
    Input::TriggerReceived {
        event: "paid".into(),
        data: json!({ "amount": amount }),
    }
}

#[test]
fn a_transient_trigger_refuses_an_event_no_task_waits_for_and_the_case_is_unchanged() {
    let wf = review_then_paid(TriggerKind::Transient);
    let mut run = Run::start(&wf, json!({}));
    let before = run.case().clone();
    assert_eq!(
        run.input(paid(3)).expect_err("nobody waits yet"),
        Error::NoTriggerWaiting("paid".into())
    );
    assert_eq!(run.case(), &before);
    run.complete("review", json!({}));
    // The event was lost: the trigger task waits for a new one.
    assert!(
        run.case()
            .waits(&wf)
            .iter()
            .any(|w| matches!(w, Wait::Trigger { event, .. } if event == "paid"))
    );
    assert!(run.case().data().get("amount").is_none());
    run.check_replay();
}

#[test]
fn a_persistent_trigger_keeps_an_early_event_until_its_task_is_enabled_and_consumes_it_at_once() {
    let wf = review_then_paid(TriggerKind::Persistent);
    let mut run = Run::start(&wf, json!({}));
    let step = run.input(paid(3)).expect("kept");
    assert!(matches!(
        &step.events[..],
        [Event { kind: EventKind::TriggerKept { event, data }, .. }]
            if event == "paid" && data["amount"] == 3
    ));
    assert_eq!(run.case().kept_triggers().len(), 1);
    assert_eq!(run.case().status(), CaseStatus::Running);
    run.complete("review", json!({}));
    let kinds: Vec<&str> = run.history().iter().map(|e| e.kind.name()).collect();
    let consumed = kinds.iter().position(|k| *k == "trigger_consumed");
    assert!(consumed.is_some(), "{kinds:?}");
    assert!(
        !run.effects()
            .iter()
            .any(|e| matches!(e, Effect::AwaitTrigger { .. })),
        "a task that consumes a kept event waits for nothing"
    );
    assert_eq!(run.completed(), ["review", "paid"]);
    assert_eq!(run.case().data()["amount"], 3);
    assert!(run.case().kept_triggers().is_empty());
    assert_eq!(run.case().status(), CaseStatus::Completed);
    run.check_replay();
}

#[test]
fn a_persistent_trigger_that_waits_takes_the_event_at_once_as_a_transient_one_does() {
    let wf = review_then_paid(TriggerKind::Persistent);
    let mut run = Run::start(&wf, json!({}));
    run.complete("review", json!({}));
    let step = run.input(paid(5)).expect("taken");
    assert!(
        !step
            .events
            .iter()
            .any(|e| matches!(e.kind, EventKind::TriggerKept { .. }))
    );
    assert_eq!(run.case().data()["amount"], 5);
    assert_eq!(run.case().status(), CaseStatus::Completed);
}

#[test]
fn kept_events_are_consumed_oldest_first_one_per_enabling() {
    // start -> AND split -> {review (human), paid (persistent)} ; review loops back once
    // through "again": paid is enabled twice, each time taking the oldest kept event.
    let review = human(task("review", Xor, Xor, vec![flow("paid")]), "clerk");
    let mut paid_task = task(
        "paid",
        Xor,
        Xor,
        vec![when("again", "amount == 1"), default_flow("end")],
    );
    paid_task.binding = TaskBinding::Trigger {
        event: "paid".into(),
        trigger_kind: TriggerKind::Persistent,
    };
    let again = human(task("again", Xor, Xor, vec![flow("paid")]), "clerk");
    let wf = workflow(vec![net(
        "n",
        vec![flow("review")],
        vec![],
        vec![review, paid_task, again],
    )]);
    let mut run = Run::start(&wf, json!({}));
    run.input(paid(1)).expect("kept first");
    run.input(paid(2)).expect("kept second");
    assert_eq!(run.case().kept_triggers().len(), 2);
    run.complete("review", json!({}));
    assert_eq!(run.case().data()["amount"], 1);
    assert_eq!(run.case().kept_triggers().len(), 1);
    run.complete("again", json!({}));
    assert_eq!(run.case().data()["amount"], 2);
    assert!(run.case().kept_triggers().is_empty());
    assert_eq!(run.case().status(), CaseStatus::Completed);
    run.check_replay();
}

#[test]
fn a_snapshot_keeps_the_kept_events() {
    let wf = review_then_paid(TriggerKind::Persistent);
    let mut run = Run::start(&wf, json!({}));
    run.input(paid(3)).expect("kept");
    let snapshot = run.case().snapshot(&wf).unwrap();
    let restored = Case::restore(&wf, run.case().id(), &snapshot).unwrap();
    assert_eq!(&restored, run.case());
    assert_eq!(restored.kept_triggers().len(), 1);
    // A snapshot without kept events encodes as before the field existed.
    let plain = Run::start(&wf, json!({}));
    let text = plain.case().snapshot(&wf).unwrap().state;
    assert!(!text.contains("kept"), "{text}");
}

#[test]
fn an_and_join_after_a_persistent_trigger_sees_both_branches() {
    // The kept event does not start the trigger task before its join is satisfied.
    let mut paid_task = task("paid", And, Xor, vec![flow("end")]);
    paid_task.binding = TaskBinding::Trigger {
        event: "paid".into(),
        trigger_kind: TriggerKind::Persistent,
    };
    let a = human(task("a", Xor, Xor, vec![flow("paid")]), "clerk");
    let b = human(task("b", Xor, Xor, vec![flow("paid")]), "clerk");
    let split = task("split", Xor, And, vec![flow("a"), flow("b")]);
    let wf = workflow(vec![net(
        "n",
        vec![flow("split")],
        vec![],
        vec![split, a, b, paid_task],
    )]);
    let mut run = Run::start(&wf, json!({}));
    run.input(paid(4)).expect("kept");
    run.complete("a", json!({}));
    assert_eq!(run.case().kept_triggers().len(), 1);
    run.complete("b", json!({}));
    assert!(run.case().kept_triggers().is_empty());
    assert_eq!(run.case().status(), CaseStatus::Completed);
    run.check_replay();
}
