//! `Case::waits`: what a case waits for, in every state.

use knhk_core::model::ControlType::{And, Xor};
use knhk_core::model::*;
use knhk_core::*;
use serde_json::json;

use crate::harness::*;

/// start -> split (AND) -> review (human, clerk; a 1 s expiry timer), call (http connector),
/// paid (trigger "paid") -> join (AND) -> end.
fn everything() -> Workflow {
    let mut review = human(task("review", Xor, Xor, vec![flow("join")]), "clerk");
    review.timer = Some(TaskTimer {
        trigger: TimerTrigger::OnEnabled,
        duration_ms: 1000,
        action: TimerAction::Expire,
    });
    let mut call = task("call", Xor, Xor, vec![flow("join")]);
    call.binding = TaskBinding::Connector(ConnectorBinding {
        connector: "http".into(),
        settings: Default::default(),
    });
    let mut paid = task("paid", Xor, Xor, vec![flow("join")]);
    paid.binding = TaskBinding::Trigger {
        event: "paid".into(),
        trigger_kind: TriggerKind::Transient,
    };
    workflow(vec![net(
        "n",
        vec![flow("split")],
        vec![],
        vec![
            task(
                "split",
                Xor,
                And,
                vec![flow("review"), flow("call"), flow("paid")],
            ),
            review,
            call,
            paid,
            task("join", And, Xor, vec![flow("end")]),
        ],
    )])
}

fn root(task: &str) -> TaskRef {
    TaskRef {
        net_instance: 0,
        task: task.into(),
    }
}

#[test]
fn a_created_case_waits_to_be_started() {
    let wf = everything();
    let run = Run::created(&wf, json!({}));
    assert_eq!(run.case().waits(&wf), [Wait::Start]);
}

#[test]
fn a_running_case_waits_for_work_items_calls_timers_and_triggers() {
    let wf = everything();
    let run = Run::start(&wf, json!({}));
    let review = run.item("review");
    let call = run.item("call");
    let (timer, _) = run.case().timers().next().expect("a timer");
    let key = run
        .case()
        .work_item(&call)
        .and_then(|w| match &w.kind {
            WorkItemKind::Call {
                idempotency_key, ..
            } => Some(idempotency_key.clone()),
            WorkItemKind::Human => None,
        })
        .expect("the call");
    assert!(!key.is_empty());
    let mut items = vec![
        Wait::WorkItem {
            item: review,
            task: root("review"),
            state: WorkItemState::Offered,
            roles: vec!["clerk".into()],
            user: None,
            since: Timestamp(1),
        },
        Wait::Call {
            item: call,
            task: root("call"),
            connector: "http".into(),
            idempotency_key: key,
            since: Timestamp(1),
        },
    ];
    // Work items and calls come in the order they were created (by id).
    if call < review {
        items.reverse();
    }
    items.push(Wait::Timer {
        timer: *timer,
        task: root("review"),
        fires_at: Timestamp(1001),
    });
    items.push(Wait::Trigger {
        task: root("paid"),
        event: "paid".into(),
    });
    assert_eq!(run.case().waits(&wf), items);
}

#[test]
fn a_claimed_work_item_names_its_user() {
    let wf = everything();
    let mut run = Run::start(&wf, json!({}));
    let review = run.item("review");
    let state_of = |run: &Run| {
        run.case().waits(&wf).into_iter().find_map(|w| match w {
            Wait::WorkItem { state, user, .. } => Some((state, user)),
            _ => None,
        })
    };
    run.input(Input::AllocateWorkItem {
        item: review,
        user: "ann".into(),
    })
    .unwrap();
    assert_eq!(
        state_of(&run),
        Some((WorkItemState::Allocated, Some("ann".into())))
    );
    run.input(Input::StartWorkItem {
        item: review,
        user: "ann".into(),
    })
    .unwrap();
    assert_eq!(
        state_of(&run),
        Some((WorkItemState::Started, Some("ann".into())))
    );
}

#[test]
fn a_suspended_case_waits_to_be_resumed_and_for_calls_and_timers() {
    let wf = everything();
    let mut run = Run::start(&wf, json!({}));
    run.input(Input::Suspend).unwrap();
    let waits = run.case().waits(&wf);
    assert_eq!(waits.first(), Some(&Wait::Resume));
    let kinds: Vec<&str> = waits
        .iter()
        .map(|w| match w {
            Wait::Resume => "resume",
            Wait::Call { .. } => "call",
            Wait::Timer { .. } => "timer",
            _ => "other",
        })
        .collect();
    assert_eq!(kinds, ["resume", "call", "timer"]);
}

#[test]
fn an_ended_case_waits_for_nothing() {
    let wf = everything();
    let mut run = Run::start(&wf, json!({}));
    run.input(Input::Cancel {
        reason: "no longer wanted".into(),
    })
    .unwrap();
    assert_eq!(run.case().status(), CaseStatus::Cancelled);
    assert!(run.case().waits(&wf).is_empty());
}

#[test]
fn a_case_rebuilt_from_its_history_waits_for_the_same() {
    let wf = everything();
    let run = Run::start(&wf, json!({}));
    let replayed = Case::replay(&wf, run.case().id(), run.history()).unwrap();
    assert_eq!(replayed.waits(&wf), run.case().waits(&wf));
    assert_eq!(replayed.waits(&wf).len(), 4);
}
