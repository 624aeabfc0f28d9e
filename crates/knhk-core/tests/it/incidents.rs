//! Incidents: a task that fails with no failure flow fails its case with the rest of the case
//! frozen as it stood, until an operator retries the task (`Input::RetryTask`) or cancels.

use knhk_core::model::ControlType::{And, Xor};
use knhk_core::model::*;
use knhk_core::*;
use serde_json::json;

use crate::harness::*;

fn connector(mut t: Task) -> Task {
    t.binding = TaskBinding::Connector(ConnectorBinding {
        connector: "http".into(),
        settings: [("url".to_string(), "http://x/{id}".to_string())].into(),
    });
    t
}

/// start -> call (connector) -> end.
fn one_call() -> Workflow {
    let call = connector(task("call", Xor, Xor, vec![flow("end")]));
    workflow(vec![net("n", vec![flow("call")], vec![], vec![call])])
}

/// start -> split (AND) -> call (connector) and review (human) -> join (AND) -> end.
fn call_beside_review() -> Workflow {
    workflow(vec![net(
        "n",
        vec![flow("split")],
        vec![],
        vec![
            task("split", Xor, And, vec![flow("call"), flow("review")]),
            connector(task("call", Xor, Xor, vec![flow("join")])),
            human(task("review", Xor, Xor, vec![flow("join")]), "clerk"),
            task("join", And, Xor, vec![flow("end")]),
        ],
    )])
}

/// start -> split (AND) -> two connector tasks, c1 and c2 -> join (AND) -> end.
fn two_calls() -> Workflow {
    workflow(vec![net(
        "n",
        vec![flow("split")],
        vec![],
        vec![
            task("split", Xor, And, vec![flow("c1"), flow("c2")]),
            connector(task("c1", Xor, Xor, vec![flow("join")])),
            connector(task("c2", Xor, Xor, vec![flow("join")])),
            task("join", And, Xor, vec![flow("end")]),
        ],
    )])
}

fn kinds(step: &Step) -> Vec<&'static str> {
    step.events.iter().map(|e| e.kind.name()).collect()
}

fn calls(step: &Step) -> Vec<(WorkItemId, String)> {
    step.effects
        .iter()
        .filter_map(|e| match e {
            Effect::CallConnector {
                item,
                idempotency_key,
                ..
            } => Some((*item, idempotency_key.clone())),
            _ => None,
        })
        .collect()
}

fn fail_call(run: &mut Run, task: &str) -> Step {
    let item = run.item(task);
    run.input(Input::ConnectorFailed {
        item,
        error: "503 after 3 attempts".into(),
        failed_attempts: Vec::new(),
    })
    .expect("the failure is taken")
}

fn task_ref(task: &str) -> TaskRef {
    TaskRef {
        net_instance: 0,
        task: task.into(),
    }
}

#[test]
fn a_task_failing_without_a_failure_flow_opens_an_incident_and_freezes_the_rest() {
    let wf = call_beside_review();
    let mut run = Run::start(&wf, json!({"id": 1}));
    let review = run.item("review");
    let step = fail_call(&mut run, "call");
    assert_eq!(
        kinds(&step),
        [
            "connector_call_failed",
            "task_failed",
            "incident_raised",
            "case_state_changed"
        ]
    );
    assert!(matches!(
        &step.events[2].kind,
        EventKind::IncidentRaised { task, started: true, instances, .. }
            if task.task.as_str() == "call" && instances.is_empty()
    ));
    assert_eq!(run.case().status(), CaseStatus::Failed);
    // Nothing else was withdrawn: the review stays offered, frozen while the case is failed.
    assert!(run.case().work_item(&review).is_some());
    let [incident] = run.case().incidents() else {
        panic!("one incident: {:?}", run.case().incidents());
    };
    assert_eq!(incident.task, task_ref("call"));
    assert_eq!(incident.attempt, 1);
    assert!(incident.reason.contains("503"), "{}", incident.reason);
    assert!(matches!(
        run.case().waits(&wf).as_slice(),
        [Wait::Retry { task, attempt: 1, .. }] if task.task.as_str() == "call"
    ));
    let err = run
        .input(Input::AllocateWorkItem {
            item: review,
            user: "ann".into(),
        })
        .expect_err("people's work waits for the retry");
    assert!(
        matches!(
            err,
            Error::WrongCaseState {
                status: CaseStatus::Failed,
                ..
            }
        ),
        "{err}"
    );
    run.check_replay();
}

#[test]
fn a_retry_calls_the_connector_again_with_a_new_item_and_idempotency_key() {
    let wf = one_call();
    let mut run = Run::start(&wf, json!({"id": 1}));
    let started = Step {
        events: Vec::new(),
        effects: run.effects().to_vec(),
    };
    let [(first, first_key)] = &calls(&started)[..] else {
        panic!("one call");
    };
    fail_call(&mut run, "call");
    let step = run
        .input(Input::RetryTask { task: None })
        .expect("the retry");
    assert_eq!(
        kinds(&step),
        [
            "task_retried",
            "case_state_changed",
            "connector_call_started"
        ]
    );
    assert!(matches!(
        &step.events[0].kind,
        EventKind::TaskRetried { task, attempt: 2 } if task.task.as_str() == "call"
    ));
    assert!(matches!(
        &step.events[1].kind,
        EventKind::CaseStateChanged {
            from: CaseStatus::Failed,
            to: CaseStatus::Running,
            ..
        }
    ));
    let [(second, second_key)] = &calls(&step)[..] else {
        panic!("one new call: {:?}", step.effects);
    };
    assert_ne!(second, first);
    assert_ne!(second_key, first_key);
    assert!(run.case().incidents().is_empty());
    run.input(Input::ConnectorSucceeded {
        item: *second,
        output: json!({}),
        failed_attempts: Vec::new(),
    })
    .expect("the second call succeeds");
    assert_eq!(run.case().status(), CaseStatus::Completed);
    run.check_replay();
}

#[test]
fn a_failed_human_task_is_offered_again_by_a_retry() {
    let wf = workflow(vec![net(
        "n",
        vec![flow("a")],
        vec![],
        vec![
            human(task("a", Xor, Xor, vec![flow("b")]), "clerk"),
            human(task("b", Xor, Xor, vec![flow("end")]), "clerk"),
        ],
    )]);
    let mut run = Run::start(&wf, json!({}));
    let first = run.item("a");
    run.input(Input::FailWorkItem {
        item: first,
        reason: "cannot reach the customer".into(),
    })
    .expect("fail");
    assert_eq!(run.case().status(), CaseStatus::Failed);
    let step = run
        .input(Input::RetryTask {
            task: Some(task_ref("a")),
        })
        .expect("the retry");
    assert_eq!(
        kinds(&step),
        [
            "task_retried",
            "case_state_changed",
            "task_enabled",
            "work_item_offered"
        ]
    );
    let second = run.item("a");
    assert_ne!(second, first);
    run.complete("a", json!({}));
    run.complete("b", json!({}));
    assert_eq!(run.case().status(), CaseStatus::Completed);
    run.check_replay();
}

#[test]
fn a_failed_case_takes_results_of_its_calls_but_no_timer_and_retries_one_task_at_a_time() {
    let wf = two_calls();
    let mut run = Run::start(&wf, json!({"id": 1}));
    fail_call(&mut run, "c1");
    // The other call was made: its failure is taken, and opens a second incident.
    let step = fail_call(&mut run, "c2");
    assert_eq!(
        kinds(&step),
        ["connector_call_failed", "task_failed", "incident_raised"]
    );
    let err = run
        .input(Input::RetryTask { task: None })
        .expect_err("which one?");
    assert_eq!(
        err.to_string(),
        "2 tasks failed (c1, c2): name the one to retry"
    );
    let err = run
        .input(Input::RetryTask {
            task: Some(task_ref("join")),
        })
        .expect_err("join did not fail");
    assert_eq!(
        err.to_string(),
        "task join has no incident; the failed tasks are c1, c2"
    );
    // Retrying one task runs it again; the case stays failed while the other is open.
    let step = run
        .input(Input::RetryTask {
            task: Some(task_ref("c2")),
        })
        .expect("retry c2");
    assert_eq!(kinds(&step), ["task_retried", "connector_call_started"]);
    assert_eq!(run.case().status(), CaseStatus::Failed);
    let item = run.item("c2");
    run.input(Input::ConnectorSucceeded {
        item,
        output: json!({}),
        failed_attempts: Vec::new(),
    })
    .expect("c2 succeeds while the case is failed");
    let step = run
        .input(Input::RetryTask { task: None })
        .expect("retry the last one");
    assert_eq!(
        kinds(&step),
        [
            "task_retried",
            "case_state_changed",
            "connector_call_started"
        ]
    );
    let item = run.item("c1");
    run.input(Input::ConnectorSucceeded {
        item,
        output: json!({}),
        failed_attempts: Vec::new(),
    })
    .expect("c1 succeeds");
    assert_eq!(run.case().status(), CaseStatus::Completed);
    run.check_replay();
}

#[test]
fn a_failed_case_fires_no_timer_until_retried_and_then_arms_it_again() {
    let mut review = human(task("review", Xor, Xor, vec![flow("join")]), "clerk");
    review.timer = Some(TaskTimer {
        trigger: TimerTrigger::OnEnabled,
        duration_ms: 60_000,
        action: TimerAction::Expire,
    });
    let wf = workflow(vec![net(
        "n",
        vec![flow("split")],
        vec![],
        vec![
            task("split", Xor, And, vec![flow("call"), flow("review")]),
            connector(task("call", Xor, Xor, vec![flow("join")])),
            review,
            task("join", And, Xor, vec![flow("end")]),
        ],
    )]);
    let mut run = Run::start(&wf, json!({"id": 1}));
    let (timer, fires_at) = run
        .case()
        .timers()
        .map(|(t, at)| (*t, at))
        .next()
        .expect("the review's timer");
    fail_call(&mut run, "call");
    let err = run
        .input(Input::TimerFired { timer })
        .expect_err("no timer fires while failed");
    assert!(matches!(err, Error::WrongCaseState { .. }), "{err}");
    let step = run.input(Input::RetryTask { task: None }).expect("retry");
    assert!(
        step.effects.contains(&Effect::ArmTimer { timer, fires_at }),
        "{:?}",
        step.effects
    );
    run.input(Input::TimerFired { timer })
        .expect("the timer fires once the case runs");
    run.check_replay();
}

#[test]
fn an_operator_may_cancel_a_case_failed_by_a_task() {
    let wf = call_beside_review();
    let mut run = Run::start(&wf, json!({"id": 1}));
    let review = run.item("review");
    fail_call(&mut run, "call");
    run.input(Input::Cancel {
        reason: "gave up".into(),
    })
    .expect("cancel");
    assert_eq!(run.case().status(), CaseStatus::Cancelled);
    assert!(run.case().work_item(&review).is_none());
    assert!(run.case().incidents().is_empty());
    let err = run
        .input(Input::RetryTask { task: None })
        .expect_err("cancelled");
    assert_eq!(err.to_string(), "the case is cancelled, not failed");
    run.check_replay();
}

#[test]
fn a_retry_is_refused_unless_a_task_failed_the_case() {
    let wf = one_call();
    let mut run = Run::start(&wf, json!({"id": 1}));
    let before = run.case().clone();
    let err = run
        .input(Input::RetryTask { task: None })
        .expect_err("running");
    assert_eq!(err.to_string(), "the case is running, not failed");
    assert_eq!(run.case(), &before);

    // A deadlock: through y, j waits for x for ever.
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
    let mut run = Run::start(&wf, json!({"go": "y"}));
    assert_eq!(run.case().status(), CaseStatus::Failed);
    let err = run
        .input(Input::RetryTask { task: None })
        .expect_err("deadlocked");
    let msg = err.to_string();
    assert!(
        msg.starts_with("the case failed with no task to run again (deadlock:"),
        "{msg}"
    );
    // Cancelling gives up on incidents only: a deadlocked case has ended.
    let err = run
        .input(Input::Cancel { reason: "x".into() })
        .expect_err("ended");
    assert!(matches!(err, Error::WrongCaseState { .. }), "{err}");

    // The firing bound: a loop of empty tasks.
    let wf = workflow(vec![net(
        "n",
        vec![flow("a")],
        vec![],
        vec![
            task("a", Xor, Xor, vec![flow("b")]),
            task("b", Xor, Xor, vec![when("a", "true"), default_flow("end")]),
        ],
    )]);
    let mut run = Run::created(&wf, json!({}));
    run.set_options(ApplyOptions::default().with_max_firings(100));
    run.input(Input::Start).expect("start");
    let err = run
        .input(Input::RetryTask { task: None })
        .expect_err("looped");
    let msg = err.to_string();
    assert!(
        msg.starts_with(
            "the case failed with no task to run again (one step started more than 100 tasks"
        ),
        "{msg}"
    );
}

#[test]
fn a_multiple_instance_task_runs_all_its_instances_again() {
    let mut each = connector(task("each", Xor, Xor, vec![flow("end")]));
    each.multiple_instance = Some(MultipleInstance {
        minimum: 1,
        maximum: None,
        threshold: None,
        creation: CreationMode::Static,
        split: Some(Expression::cel("items")),
        item_variable: "item".into(),
        join_variable: None,
    });
    let wf = workflow(vec![net("n", vec![flow("each")], vec![], vec![each])]);
    let mut run = Run::start(&wf, json!({"items": [1, 2], "id": 1}));
    let items = run.items("each");
    run.input(Input::ConnectorSucceeded {
        item: items[0],
        output: json!({}),
        failed_attempts: Vec::new(),
    })
    .expect("first instance");
    run.input(Input::ConnectorFailed {
        item: items[1],
        error: "boom".into(),
        failed_attempts: Vec::new(),
    })
    .expect("second instance fails");
    assert!(run.history().iter().any(|e| matches!(
        &e.kind,
        EventKind::IncidentRaised { instances, started: true, .. } if instances == &[json!(1), json!(2)]
    )));
    let step = run.input(Input::RetryTask { task: None }).expect("retry");
    assert_eq!(calls(&step).len(), 2);
    for item in run.items("each") {
        run.input(Input::ConnectorSucceeded {
            item,
            output: json!({}),
            failed_attempts: Vec::new(),
        })
        .expect("instance");
    }
    assert_eq!(run.case().status(), CaseStatus::Completed);
    run.check_replay();
}
