//! Case and work item lifecycles: wrong states are typed errors that leave the case as it was.

use knhk_core::model::ControlType::Xor;
use knhk_core::model::*;
use knhk_core::*;
use serde_json::json;

use crate::harness::*;

fn one_human(four_eyes: bool) -> Workflow {
    let mut a = human(task("a", Xor, Xor, vec![flow("b")]), "clerk");
    let mut b = human(task("b", Xor, Xor, vec![flow("end")]), "clerk");
    for t in [&mut a, &mut b] {
        if let TaskBinding::Human(h) = &mut t.binding {
            h.four_eyes = four_eyes;
        }
    }
    workflow(vec![net("n", vec![flow("a")], vec![], vec![a, b])])
}

#[test]
fn claiming_twice_or_completing_someone_elses_item_is_refused_and_changes_nothing() {
    let wf = one_human(false);
    let mut run = Run::start(&wf, json!({}));
    let item = run.item("a");
    run.input(Input::AllocateWorkItem {
        item,
        user: "ann".into(),
    })
    .expect("claim");
    let before = run.case().clone();
    let err = run
        .input(Input::AllocateWorkItem {
            item,
            user: "bob".into(),
        })
        .expect_err("second claim");
    assert!(
        matches!(
            err,
            Error::WrongWorkItemState {
                state: "allocated",
                ..
            }
        ),
        "{err}"
    );
    let err = run
        .input(Input::CompleteWorkItem {
            item,
            user: "bob".into(),
            output: json!({}),
        })
        .expect_err("bob did not claim it");
    assert!(matches!(err, Error::NotAllocatedTo { .. }), "{err}");
    assert_eq!(run.case(), &before);
    let err = run
        .input(Input::CompleteWorkItem {
            item,
            user: "ann".into(),
            output: json!([1]),
        })
        .expect_err("output must be an object");
    assert_eq!(err, Error::OutputNotObject("a list"));
    assert_eq!(run.case(), &before);
    run.complete("a", json!({"x": 1}));
    let err = run
        .input(Input::CompleteWorkItem {
            item,
            user: "ann".into(),
            output: json!({}),
        })
        .expect_err("completed twice");
    assert_eq!(err, Error::UnknownWorkItem(item));
    run.check_replay();
}

#[test]
fn four_eyes_refuses_the_same_user_on_two_marked_tasks() {
    let wf = one_human(true);
    let mut run = Run::start(&wf, json!({}));
    run.complete("a", json!({}));
    let b = run.item("b");
    let err = run
        .input(Input::CompleteWorkItem {
            item: b,
            user: "ann".into(),
            output: json!({}),
        })
        .expect_err("four eyes");
    assert!(matches!(err, Error::FourEyes { .. }), "{err}");
    run.input(Input::CompleteWorkItem {
        item: b,
        user: "bob".into(),
        output: json!({}),
    })
    .expect("another user");
    assert_eq!(run.case().status(), CaseStatus::Completed);
    run.check_replay();
}

#[test]
fn suspended_case_refuses_work_until_resumed_and_cancel_withdraws_everything() {
    let wf = one_human(false);
    let mut run = Run::start(&wf, json!({}));
    let item = run.item("a");
    run.input(Input::Suspend).expect("suspend");
    assert_eq!(run.case().status(), CaseStatus::Suspended);
    let err = run
        .input(Input::StartWorkItem {
            item,
            user: "ann".into(),
        })
        .expect_err("suspended");
    assert!(matches!(
        err,
        Error::WrongCaseState {
            status: CaseStatus::Suspended,
            ..
        }
    ));
    assert!(run.input(Input::Suspend).is_err());
    run.input(Input::Resume).expect("resume");
    run.input(Input::Cancel {
        reason: "customer withdrew".into(),
    })
    .expect("cancel");
    assert_eq!(run.case().status(), CaseStatus::Cancelled);
    assert!(run.effects().contains(&Effect::WithdrawWorkItem { item }));
    assert_eq!(run.case().work_items().count(), 0);
    assert!(run.input(Input::Resume).is_err());
    assert!(
        run.input(Input::Cancel {
            reason: "again".into()
        })
        .is_err()
    );
    run.check_replay();
}

fn connector_net() -> Workflow {
    let mut call = task("call", Xor, Xor, vec![flow("end")]);
    call.binding = TaskBinding::Connector(ConnectorBinding {
        connector: "http".into(),
        settings: [("url".to_string(), "http://x/{id}".to_string())].into(),
    });
    call.output_mapping = Some(Expression::cel("{'status': output.code}"));
    workflow(vec![net("n", vec![flow("call")], vec![], vec![call])])
}

#[test]
fn connector_task_asks_for_a_call_with_a_stable_idempotency_key_and_maps_the_output() {
    let wf = connector_net();
    let mut run = Run::start(&wf, json!({"id": 5}));
    let Some(Effect::CallConnector {
        item,
        idempotency_key,
        input,
        ..
    }) = run
        .effects()
        .iter()
        .find(|e| matches!(e, Effect::CallConnector { .. }))
        .cloned()
    else {
        panic!("no connector call")
    };
    assert_eq!(input, json!({"id": 5}));
    assert!(idempotency_key.starts_with(&run.case().id().to_string()));
    assert!(idempotency_key.contains("/call/"));
    run.input(Input::ConnectorSucceeded {
        item,
        output: json!({"code": 201}),
        failed_attempts: Vec::new(),
    })
    .expect("result");
    assert_eq!(run.case().data()["status"], 201);
    assert_eq!(run.case().status(), CaseStatus::Completed);
    run.check_replay();
}

#[test]
fn a_work_item_says_whether_it_is_for_people_or_a_connector_call() {
    let wf = connector_net();
    let run = Run::start(&wf, json!({"id": 5}));
    let call = run.item("call");
    let key = run
        .effects()
        .iter()
        .find_map(|e| match e {
            Effect::CallConnector {
                idempotency_key, ..
            } => Some(idempotency_key.clone()),
            _ => None,
        })
        .expect("a connector call");
    let wi = run.case().work_item(&call).expect("the call");
    assert!(wi.is_call());
    assert_eq!(
        wi.kind,
        WorkItemKind::Call {
            connector: "http".into(),
            idempotency_key: key,
        }
    );

    let wf = one_human(false);
    let run = Run::start(&wf, json!({}));
    let wi = run.case().work_item(&run.item("a")).expect("the work item");
    assert!(!wi.is_call());
    assert_eq!(wi.kind, WorkItemKind::Human);
}

#[test]
fn connector_failure_fails_the_task_and_the_case_naming_the_connector() {
    let wf = connector_net();
    let mut run = Run::start(&wf, json!({}));
    let item = run.item("call");
    run.input(Input::ConnectorFailed {
        item,
        error: "503 after 3 attempts".into(),
        failed_attempts: Vec::new(),
    })
    .expect("failure");
    assert_eq!(run.case().status(), CaseStatus::Failed);
    let reason = run.history().iter().rev().find_map(|e| match &e.kind {
        EventKind::CaseStateChanged { reason, .. } => reason.clone(),
        _ => None,
    });
    let reason = reason.expect("reason");
    assert!(
        reason.contains("call") && reason.contains("http") && reason.contains("503"),
        "{reason}"
    );
    run.check_replay();
}

#[test]
fn expiry_timer_completes_a_task_nobody_did_and_the_case_goes_on() {
    let mut a = human(task("a", Xor, Xor, vec![flow("b")]), "clerk");
    a.timer = Some(TaskTimer {
        trigger: TimerTrigger::OnEnabled,
        duration_ms: 60_000,
        action: TimerAction::Expire,
    });
    let b = human(task("b", Xor, Xor, vec![flow("end")]), "clerk");
    let wf = workflow(vec![net("n", vec![flow("a")], vec![], vec![a, b])]);
    let mut run = Run::start(&wf, json!({}));
    let (timer, at) = run
        .case()
        .timers()
        .next()
        .map(|(t, at)| (*t, at))
        .expect("armed");
    assert_eq!(at, Timestamp(1 + 60_000));
    let a_item = run.item("a");
    run.input(Input::TimerFired { timer }).expect("fire");
    assert!(
        run.effects()
            .contains(&Effect::WithdrawWorkItem { item: a_item })
    );
    assert_eq!(run.completed(), ["a"]);
    assert_eq!(run.items("b").len(), 1);
    assert_eq!(
        run.input(Input::TimerFired { timer })
            .expect_err("fired twice"),
        Error::UnknownTimer(timer)
    );
    run.check_replay();
}

#[test]
fn delay_timer_holds_a_task_until_it_fires() {
    let mut a = task("a", Xor, Xor, vec![flow("end")]);
    a.timer = Some(TaskTimer {
        trigger: TimerTrigger::OnEnabled,
        duration_ms: 500,
        action: TimerAction::Delay,
    });
    let wf = workflow(vec![net("n", vec![flow("a")], vec![], vec![a])]);
    let mut run = Run::start(&wf, json!({}));
    assert!(run.completed().is_empty());
    assert_eq!(run.case().status(), CaseStatus::Running);
    let timer = *run.case().timers().next().expect("armed").0;
    run.input(Input::TimerFired { timer }).expect("fire");
    assert_eq!(run.completed(), ["a"]);
    assert_eq!(run.case().status(), CaseStatus::Completed);
    run.check_replay();
}

#[test]
fn trigger_task_waits_for_its_event() {
    let mut a = task("a", Xor, Xor, vec![flow("end")]);
    a.binding = TaskBinding::Trigger {
        event: "paid".into(),
        trigger_kind: TriggerKind::Transient,
    };
    let wf = workflow(vec![net("n", vec![flow("a")], vec![], vec![a])]);
    let mut run = Run::start(&wf, json!({}));
    assert!(
        run.effects()
            .iter()
            .any(|e| matches!(e, Effect::AwaitTrigger { event, .. } if event == "paid"))
    );
    assert_eq!(
        run.input(Input::TriggerReceived {
            event: "refund".into(),
            data: json!({})
        })
        .expect_err("nobody waits"),
        Error::NoTriggerWaiting("refund".into())
    );
    run.input(Input::TriggerReceived {
        event: "paid".into(),
        data: json!({"amount": 3}),
    })
    .expect("event");
    assert_eq!(run.case().data()["amount"], 3);
    assert_eq!(run.case().status(), CaseStatus::Completed);
    run.check_replay();
}

#[test]
fn invalid_definitions_name_the_element_and_the_rule() {
    let bad = spec(vec![net(
        "n",
        vec![],
        vec![cond("lonely", vec![])],
        vec![task(
            "a",
            knhk_core::model::ControlType::And,
            Xor,
            vec![flow("ghost")],
        )],
    )]);
    let err = Workflow::new(bad).expect_err("invalid");
    let rules: Vec<String> = err.violations.iter().map(|v| v.to_string()).collect();
    for expected in [
        "start: the input condition has no outgoing flow",
        "end: the output condition has no incoming flow",
        "lonely: not reachable from the input condition",
        "a: flow to unknown element ghost",
        "a: task has no incoming flow",
    ] {
        assert!(
            rules.iter().any(|r| r == expected),
            "missing {expected:?} in {rules:#?}"
        );
    }
}

#[test]
fn a_case_rebuilt_from_its_history_knows_what_to_pick_up_again() {
    let mut call = task("call", Xor, Xor, vec![flow("end")]);
    call.binding = TaskBinding::Connector(ConnectorBinding {
        connector: "http".into(),
        settings: Default::default(),
    });
    let mut wait = human(task("wait", Xor, Xor, vec![flow("end")]), "clerk");
    wait.timer = Some(TaskTimer {
        trigger: TimerTrigger::OnEnabled,
        duration_ms: 1000,
        action: TimerAction::Expire,
    });
    let wf = workflow(vec![net(
        "n",
        vec![flow("split")],
        vec![],
        vec![
            task(
                "split",
                Xor,
                knhk_core::model::ControlType::And,
                vec![flow("call"), flow("wait")],
            ),
            call,
            wait,
        ],
    )]);
    let run = Run::start(&wf, json!({"n": 1}));
    let replayed = Case::replay(&wf, run.case().id(), run.history()).expect("replay");
    let mut again = replayed.outstanding(&wf);
    let mut first: Vec<Effect> = run
        .effects()
        .iter()
        .filter(|e| {
            matches!(
                e,
                Effect::CallConnector { .. }
                    | Effect::OfferWorkItem { .. }
                    | Effect::ArmTimer { .. }
            )
        })
        .cloned()
        .collect();
    let key = |e: &Effect| format!("{e:?}");
    again.sort_by_key(key);
    first.sort_by_key(key);
    assert_eq!(again, first);
    assert_eq!(again.len(), 3);
}

#[test]
fn a_failure_flow_routes_a_failed_task_and_the_case_goes_on() {
    let mut call = task("call", Xor, Xor, vec![flow("end")]);
    call.binding = TaskBinding::Connector(ConnectorBinding {
        connector: "http".into(),
        settings: Default::default(),
    });
    call.flows.push(Flow {
        on_failure: true,
        ..flow("apologise")
    });
    let wf = workflow(vec![net(
        "n",
        vec![flow("call")],
        vec![],
        vec![
            call,
            human(task("apologise", Xor, Xor, vec![flow("end")]), "clerk"),
        ],
    )]);
    let mut run = Run::start(&wf, json!({}));
    let item = run.item("call");
    run.input(Input::ConnectorFailed {
        item,
        error: "503 after 3 attempts".into(),
        failed_attempts: Vec::new(),
    })
    .expect("failure");
    assert_eq!(run.case().status(), CaseStatus::Running);
    assert_eq!(
        run.case().data()["last_error"],
        json!({"task": "call", "reason": "connector http failed: 503 after 3 attempts"})
    );
    run.complete("apologise", json!({}));
    assert_eq!(run.completed(), ["apologise"]);
    assert_eq!(run.case().status(), CaseStatus::Completed);
    run.check_replay();
}

#[test]
fn a_failure_flow_is_refused_with_a_predicate_or_alone() {
    let mut a = task("a", Xor, Xor, vec![]);
    a.flows = vec![Flow {
        on_failure: true,
        ..when("end", "x > 1")
    }];
    let err =
        Workflow::new(spec(vec![net("n", vec![flow("a")], vec![], vec![a])])).expect_err("invalid");
    let rules: Vec<String> = err.violations.iter().map(|v| v.to_string()).collect();
    assert!(
        rules.contains(
            &"a: a failure flow cannot have a predicate or be the default flow".to_string()
        ),
        "{rules:?}"
    );
    assert!(
        rules.contains(&"a: a task needs a flow besides its failure flow".to_string()),
        "{rules:?}"
    );
}

#[test]
fn a_connector_result_arriving_while_suspended_is_kept_and_the_case_goes_on_after_resume() {
    let mut call = task("call", Xor, Xor, vec![flow("after")]);
    call.binding = TaskBinding::Connector(ConnectorBinding {
        connector: "http".into(),
        settings: Default::default(),
    });
    let wf = workflow(vec![net(
        "n",
        vec![flow("call")],
        vec![],
        vec![
            call,
            human(task("after", Xor, Xor, vec![flow("end")]), "clerk"),
        ],
    )]);
    let mut run = Run::start(&wf, json!({}));
    let item = run.item("call");
    run.input(Input::Suspend).expect("suspend");
    run.input(Input::ConnectorSucceeded {
        item,
        output: json!({"paid": true}),
        failed_attempts: Vec::new(),
    })
    .expect("result kept while suspended");
    assert_eq!(run.case().status(), CaseStatus::Suspended);
    assert!(
        run.items("after").is_empty(),
        "nothing new starts while suspended"
    );
    run.input(Input::Resume).expect("resume");
    assert_eq!(run.items("after").len(), 1);
    assert_eq!(run.case().data()["paid"], true);
    run.check_replay();
}
