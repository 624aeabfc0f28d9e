//! The test-support driver: runs to quiescence under the simulated policy.

use knhk_core::driver::{CallAnswer, Driver, Quiescence, Simulated};
use knhk_core::model::ControlType::Xor;
use knhk_core::model::*;
use knhk_core::*;
use serde_json::{Map, json};

use crate::harness::*;

fn driver(wf: &Workflow) -> Driver<&Workflow> {
    Driver::create(
        wf,
        CaseId(uuid::Uuid::from_u128(3)),
        Timestamp(10),
        Map::new(),
    )
}

fn four_eyes(mut t: Task) -> Task {
    if let TaskBinding::Human(h) = &mut t.binding {
        h.four_eyes = true;
    }
    t
}

fn completed_by(d: &Driver<&Workflow>) -> Vec<String> {
    d.history()
        .iter()
        .filter_map(|e| match &e.kind {
            EventKind::WorkItemCompleted { user, .. } => Some(user.clone()),
            _ => None,
        })
        .collect()
}

#[test]
fn people_complete_work_items_until_the_case_ends() {
    let wf = workflow(vec![net(
        "n",
        vec![flow("a")],
        vec![],
        vec![
            four_eyes(human(task("a", Xor, Xor, vec![flow("b")]), "clerk")),
            four_eyes(human(task("b", Xor, Xor, vec![flow("end")]), "clerk")),
        ],
    )]);
    let mut d = driver(&wf);
    let end = d.run(&mut Simulated::default(), 100).unwrap();
    assert_eq!(end, Quiescence::Ended(CaseStatus::Completed));
    // The second four-eyes task needs another user than the first.
    assert_eq!(completed_by(&d), ["simulator", "simulator-2"]);
    d.check_replay().unwrap();
}

fn call_then_trigger() -> Workflow {
    let mut call = task("call", Xor, Xor, vec![flow("paid")]);
    call.binding = TaskBinding::Connector(ConnectorBinding {
        connector: "http".into(),
        settings: Default::default(),
    });
    let mut paid = task("paid", Xor, Xor, vec![flow("end")]);
    paid.binding = TaskBinding::Trigger {
        event: "paid".into(),
        trigger_kind: TriggerKind::Transient,
    };
    workflow(vec![net("n", vec![flow("call")], vec![], vec![call, paid])])
}

#[test]
fn a_run_stops_at_what_the_policy_leaves_to_the_outside_world() {
    let wf = call_then_trigger();
    let mut d = driver(&wf);
    let end = d.run(&mut Simulated::default(), 100).unwrap();
    let Quiescence::Waiting(waits) = end else {
        panic!("expected the case to wait, got {end:?}");
    };
    assert!(matches!(&waits[..], [Wait::Call { connector, .. }] if connector == "http"));

    let mut policy = Simulated {
        calls: CallAnswer::Succeed(json!({})),
        ..Simulated::default()
    };
    let end = d.run(&mut policy, 100).unwrap();
    assert!(
        matches!(&end, Quiescence::Waiting(w) if matches!(&w[..], [Wait::Trigger { event, .. }] if event == "paid"))
    );

    policy.triggers = Some(json!({"amount": 3}));
    assert_eq!(
        d.run(&mut policy, 100).unwrap(),
        Quiescence::Ended(CaseStatus::Completed)
    );
    assert_eq!(d.case().data()["amount"], 3);
    d.check_replay().unwrap();
}

#[test]
fn a_failing_connector_fails_the_case() {
    let wf = call_then_trigger();
    let mut d = driver(&wf);
    let mut policy = Simulated {
        calls: CallAnswer::Fail("503".into()),
        ..Simulated::default()
    };
    assert_eq!(
        d.run(&mut policy, 100).unwrap(),
        Quiescence::Ended(CaseStatus::Failed)
    );
}

#[test]
fn a_timer_fires_when_nothing_else_moves_and_the_clock_jumps_to_it() {
    let mut a = task("a", Xor, Xor, vec![flow("end")]);
    a.timer = Some(TaskTimer {
        trigger: TimerTrigger::OnEnabled,
        duration_ms: 60_000,
        action: TimerAction::Delay,
    });
    let wf = workflow(vec![net("n", vec![flow("a")], vec![], vec![a])]);
    let mut d = driver(&wf);
    assert_eq!(
        d.run(&mut Simulated::default(), 100).unwrap(),
        Quiescence::Ended(CaseStatus::Completed)
    );
    // Created at 10, started at 11, the timer due one minute later.
    assert_eq!(d.now(), Timestamp(60_011));
    d.check_replay().unwrap();
}

#[test]
fn a_loop_through_people_stops_after_the_most_inputs() {
    let wf = workflow(vec![net(
        "n",
        vec![flow("a")],
        vec![],
        vec![human(
            task("a", Xor, Xor, vec![when("a", "true"), default_flow("end")]),
            "clerk",
        )],
    )]);
    let mut d = driver(&wf);
    assert_eq!(
        d.run(&mut Simulated::default(), 5).unwrap(),
        Quiescence::TooManyInputs
    );
    // Start, then four completions.
    assert_eq!(completed_by(&d).len(), 4);
}
