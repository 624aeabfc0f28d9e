//! A worklist's moves on an allocated work item: giving it back (release) and handing it to
//! someone else (delegate), each an event that replay keeps.

use knhk_core::model::ControlType::Xor;
use knhk_core::*;
use serde_json::json;

use crate::harness::*;

fn one_task() -> Workflow {
    let t = human(task("A", Xor, Xor, vec![flow("end")]), "clerk");
    workflow(vec![net("n", vec![flow("A")], vec![], vec![t])])
}

fn allocate(run: &mut Run<'_>, item: WorkItemId, user: &str) {
    run.input(Input::AllocateWorkItem {
        item,
        user: user.into(),
    })
    .expect("allocate");
}

#[test]
fn a_released_work_item_is_offered_again_and_another_user_takes_it() {
    let wf = one_task();
    let mut run = Run::start(&wf, json!({}));
    let item = run.item("A");
    allocate(&mut run, item, "ann");
    // Only its owner may give it back.
    let before = run.case().clone();
    assert_eq!(
        run.input(Input::ReleaseWorkItem {
            item,
            user: "bob".into()
        }),
        Err(Error::NotAllocatedTo {
            item,
            owner: "ann".into(),
            user: "bob".into()
        })
    );
    assert_eq!(run.case(), &before);
    let step = run
        .input(Input::ReleaseWorkItem {
            item,
            user: "ann".into(),
        })
        .expect("release");
    assert_eq!(
        step.events
            .iter()
            .map(|e| e.kind.clone())
            .collect::<Vec<_>>(),
        vec![EventKind::WorkItemReleased {
            item,
            user: "ann".into()
        }]
    );
    let wi = run.case().work_item(&item).expect("live");
    assert_eq!((wi.state, wi.owner.clone()), (WorkItemState::Offered, None));
    // Offered again, it cannot be released twice.
    assert!(matches!(
        run.input(Input::ReleaseWorkItem {
            item,
            user: "ann".into()
        }),
        Err(Error::WrongWorkItemState { .. })
    ));
    allocate(&mut run, item, "bob");
    run.input(Input::CompleteWorkItem {
        item,
        user: "bob".into(),
        output: json!({}),
    })
    .expect("complete");
    assert_eq!(run.case().status(), CaseStatus::Completed);
    run.check_replay();
}

#[test]
fn a_delegated_work_item_belongs_to_its_new_user_and_the_history_says_who_gave_it() {
    let wf = one_task();
    let mut run = Run::start(&wf, json!({}));
    let item = run.item("A");
    // Nobody holds an offered item: there is nothing to delegate.
    assert!(matches!(
        run.input(Input::DelegateWorkItem {
            item,
            from: "ann".into(),
            to: "bob".into()
        }),
        Err(Error::WrongWorkItemState { .. })
    ));
    allocate(&mut run, item, "ann");
    run.input(Input::StartWorkItem {
        item,
        user: "ann".into(),
    })
    .expect("start");
    assert!(matches!(
        run.input(Input::DelegateWorkItem {
            item,
            from: "cy".into(),
            to: "bob".into()
        }),
        Err(Error::NotAllocatedTo { .. })
    ));
    let step = run
        .input(Input::DelegateWorkItem {
            item,
            from: "ann".into(),
            to: "bob".into(),
        })
        .expect("delegate");
    assert_eq!(
        step.events
            .iter()
            .map(|e| e.kind.clone())
            .collect::<Vec<_>>(),
        vec![EventKind::WorkItemDelegated {
            item,
            from: "ann".into(),
            to: "bob".into()
        }]
    );
    let wi = run.case().work_item(&item).expect("live");
    assert_eq!(
        (wi.state, wi.owner.as_deref()),
        (WorkItemState::Started, Some("bob"))
    );
    // The one who gave it away can no longer complete it.
    assert!(matches!(
        run.input(Input::CompleteWorkItem {
            item,
            user: "ann".into(),
            output: json!({})
        }),
        Err(Error::NotAllocatedTo { .. })
    ));
    run.input(Input::CompleteWorkItem {
        item,
        user: "bob".into(),
        output: json!({}),
    })
    .expect("complete");
    assert_eq!(run.case().status(), CaseStatus::Completed);
    run.check_replay();
}
