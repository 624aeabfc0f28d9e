//! Human tasks: work items by role, claims, completion races, allocation policies.

use std::sync::Arc;

use knhk_core::{CaseStatus, EventKind};
use knhk_workflow_engine::{ErrorCode, WorkItemQuery, WorkItemStatus};
use serde_json::json;

use crate::support::*;

fn by_role(role: &str) -> WorkItemQuery {
    WorkItemQuery {
        role: Some(role.into()),
        case: None,
        owner: None,
        ..Default::default()
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_work_item_is_listed_by_role_claimed_started_and_completed_once() {
    let dir = tempfile::tempdir().unwrap();
    let engine = engine_on(sqlite(&dir.path().join("k.db")).await);
    let wf = engine
        .register_workflow(
            "approve.ttl",
            knhk_workflow_engine::SourceFormat::Turtle,
            &turtle(
                "Approve",
                &[("approve", "knhk:role \"manager\" ;", &["end"])],
            ),
        )
        .await
        .unwrap()
        .workflow;
    let case = engine
        .create_case(wf.id, json!({"amount": 5}), true)
        .await
        .unwrap();
    assert!(
        engine
            .work_items(&by_role("clerk"))
            .await
            .unwrap()
            .is_empty()
    );
    let items = engine.work_items(&by_role("manager")).await.unwrap();
    assert_eq!(items.len(), 1);
    let item = &items[0];
    assert_eq!(
        (item.task.task.as_str(), item.status.as_str()),
        ("approve", "offered")
    );
    assert_eq!(item.input, json!({"amount": 5}));
    // Someone outside the item's role may not take it, whatever its state.
    let err = engine.claim(item.id, "eve").await.unwrap_err();
    assert!(err.to_string().contains("eve holds none of them"), "{err}");
    assert_eq!(err.code(), ErrorCode::PermissionDenied);
    for refused in [
        engine.start_work_item(item.id, "eve").await,
        engine.complete_work_item(item.id, "eve", json!({})).await,
        engine.fail_work_item(item.id, "eve", "no").await,
    ] {
        assert_eq!(refused.unwrap_err().code(), ErrorCode::PermissionDenied);
    }
    engine.claim(item.id, "max").await.unwrap();
    let err = engine.claim(item.id, "max").await.unwrap_err();
    assert!(
        err.to_string().contains("is allocated, cannot allocate"),
        "{err}"
    );
    assert_eq!(err.code(), ErrorCode::FailedPrecondition);
    let claimed = engine.work_items(&by_role("manager")).await.unwrap();
    assert_eq!(claimed[0].owner.as_deref(), Some("max"));
    assert_eq!(claimed[0].status, WorkItemStatus::Allocated);
    engine.start_work_item(item.id, "max").await.unwrap();
    let done = engine
        .complete_work_item(item.id, "max", json!({"approved": true}))
        .await
        .unwrap();
    assert_eq!(done.status, CaseStatus::Completed);
    assert_eq!(done.data["approved"], true);
    assert!(
        engine
            .work_items(&by_role("manager"))
            .await
            .unwrap()
            .is_empty()
    );
    let err = engine
        .complete_work_item(item.id, "max", json!({}))
        .await
        .unwrap_err();
    assert_eq!(err.to_string(), format!("unknown work item {}", item.id));
    assert_eq!(err.code(), ErrorCode::NotFound);
    // The case has ended: cancelling it is refused as a wrong state, not as an unknown case.
    let err = engine.cancel(case.id, "too late").await.unwrap_err();
    assert_eq!(err.code(), ErrorCode::FailedPrecondition, "{err}");
    let err = engine
        .cancel(knhk_core::CaseId(uuid::Uuid::from_u128(7)), "nobody")
        .await
        .unwrap_err();
    assert_eq!(err.code(), ErrorCode::NotFound, "{err}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn thirty_two_concurrent_completions_of_one_item_complete_it_exactly_once() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("k.db");
    let engine = engine_on(sqlite(&path).await);
    let wf = engine
        .register_workflow(
            "one.ttl",
            knhk_workflow_engine::SourceFormat::Turtle,
            &turtle("One", &[("do", "knhk:role \"clerk\" ;", &["end"])]),
        )
        .await
        .unwrap()
        .workflow;
    let case = engine.create_case(wf.id, json!({}), true).await.unwrap();
    let item = engine.work_items(&by_role("clerk")).await.unwrap()[0].id;
    // Half of the racers go through a second engine on the same file, like another process.
    let other = engine_on(sqlite(&path).await);
    let mut racers = Vec::new();
    for i in 0..32 {
        let e = if i % 2 == 0 {
            engine.clone()
        } else {
            other.clone()
        };
        racers.push(tokio::spawn(async move {
            e.complete_work_item(item, "ann", json!({"by": i})).await
        }));
    }
    let mut ok = 0;
    for r in racers {
        if r.await.unwrap().is_ok() {
            ok += 1;
        }
    }
    assert_eq!(ok, 1);
    let history = engine.history(case.id).await.unwrap();
    let completions = history
        .iter()
        .filter(|e| matches!(e.kind, EventKind::WorkItemCompleted { .. }))
        .count();
    assert_eq!(completions, 1);
    assert_eq!(
        engine.case(case.id).await.unwrap().status,
        CaseStatus::Completed
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn round_robin_allocates_to_each_clerk_in_turn() {
    let engine = Arc::new(memory_engine());
    let wf = engine
        .register_workflow(
            "rr.ttl",
            knhk_workflow_engine::SourceFormat::Turtle,
            &turtle(
                "RR",
                &[(
                    "do",
                    "knhk:role \"clerk\" ; knhk:allocation knhk:RoundRobin ;",
                    &["end"],
                )],
            ),
        )
        .await
        .unwrap()
        .workflow;
    let mut owners = Vec::new();
    for _ in 0..4 {
        let case = engine.create_case(wf.id, json!({}), true).await.unwrap();
        engine.settle(case.id).await;
        let items = engine
            .work_items(&WorkItemQuery {
                role: None,
                case: Some(case.id),
                owner: None,
                ..Default::default()
            })
            .await
            .unwrap();
        assert_eq!(items[0].status, WorkItemStatus::Allocated);
        owners.push(items[0].owner.clone().unwrap());
    }
    assert_eq!(owners, ["ann", "bob", "cy", "ann"]);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn shortest_queue_allocates_to_the_clerk_with_the_fewest_items() {
    let engine = memory_engine();
    let manual = engine
        .register_workflow(
            "m.ttl",
            knhk_workflow_engine::SourceFormat::Turtle,
            &turtle("Manual", &[("do", "knhk:role \"clerk\" ;", &["end"])]),
        )
        .await
        .unwrap()
        .workflow;
    let sq = engine
        .register_workflow(
            "sq.ttl",
            knhk_workflow_engine::SourceFormat::Turtle,
            &turtle(
                "SQ",
                &[(
                    "do",
                    "knhk:role \"clerk\" ; knhk:allocation knhk:ShortestQueue ;",
                    &["end"],
                )],
            ),
        )
        .await
        .unwrap()
        .workflow;
    // ann holds two items, bob one, cy none.
    for user in ["ann", "ann", "bob"] {
        let case = engine
            .create_case(manual.id, json!({}), true)
            .await
            .unwrap();
        let item = engine
            .work_items(&WorkItemQuery {
                role: None,
                case: Some(case.id),
                owner: None,
                ..Default::default()
            })
            .await
            .unwrap()[0]
            .id;
        engine.claim(item, user).await.unwrap();
    }
    let case = engine.create_case(sq.id, json!({}), true).await.unwrap();
    engine.settle(case.id).await;
    let items = engine
        .work_items(&WorkItemQuery {
            role: None,
            case: Some(case.id),
            owner: None,
            ..Default::default()
        })
        .await
        .unwrap();
    assert_eq!(items[0].owner.as_deref(), Some("cy"));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn four_eyes_tasks_need_two_different_users() {
    let engine = memory_engine();
    let wf = engine
        .register_workflow(
            "4e.ttl",
            knhk_workflow_engine::SourceFormat::Turtle,
            &turtle(
                "FourEyes",
                &[
                    (
                        "prepare",
                        "knhk:role \"clerk\" ; knhk:fourEyes true ;",
                        &["check"],
                    ),
                    (
                        "check",
                        "knhk:role \"clerk\" ; knhk:fourEyes true ;",
                        &["end"],
                    ),
                ],
            ),
        )
        .await
        .unwrap()
        .workflow;
    let case = engine.create_case(wf.id, json!({}), true).await.unwrap();
    let item = |engine: knhk_workflow_engine::WorkflowEngine| async move {
        engine.work_items(&by_role("clerk")).await.unwrap()[0].id
    };
    let first = item(engine.clone()).await;
    engine
        .complete_work_item(first, "ann", json!({}))
        .await
        .unwrap();
    let second = item(engine.clone()).await;
    let err = engine
        .complete_work_item(second, "ann", json!({}))
        .await
        .unwrap_err();
    assert!(err.to_string().contains("four-eyes"), "{err}");
    assert_eq!(err.code(), ErrorCode::PermissionDenied);
    let done = engine
        .complete_work_item(second, "bob", json!({}))
        .await
        .unwrap();
    assert_eq!(done.status, CaseStatus::Completed);
    let _ = case;
}

/// Ids are time-ordered (UUIDv7); a shortened one names its case or work item by the start of
/// the id or of its last group, from the store's index ranges.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_shortened_id_names_its_case_or_work_item_by_its_start_or_its_last_group() {
    use knhk_workflow_engine::Error;
    let engine = memory_engine();
    let wf = engine
        .register_workflow(
            "approve.ttl",
            knhk_workflow_engine::SourceFormat::Turtle,
            &turtle(
                "Approve",
                &[("approve", "knhk:role \"clerk\" ;", &["end"] as &[&str])],
            ),
        )
        .await
        .unwrap()
        .workflow;
    let mut cases = Vec::new();
    for _ in 0..3 {
        cases.push(engine.create_case(wf.id, json!({}), true).await.unwrap().id);
    }
    let text: Vec<String> = cases.iter().map(ToString::to_string).collect();
    assert!(text.iter().all(|id| &id[14..15] == "7"), "UUIDv7: {text:?}");
    assert!(
        text.windows(2).all(|w| w[0] < w[1]),
        "in creation order: {text:?}"
    );
    for (id, case) in text.iter().zip(&cases) {
        let last = id.rsplit('-').next().unwrap();
        assert_eq!(engine.resolve_case(last).await.unwrap(), *case);
        assert_eq!(
            engine.resolve_case(&format!("...{last}")).await.unwrap(),
            *case
        );
        assert_eq!(engine.resolve_case(id).await.unwrap(), *case);
    }
    // Made within about a minute, they share their first 8 digits (the time), unless the
    // run straddled a change of those.
    let same_start: Vec<&String> = text.iter().filter(|id| id[..8] == text[0][..8]).collect();
    match engine.resolve_case(&text[0][..8]).await {
        Err(e @ Error::AmbiguousId { .. }) => {
            let message = e.to_string();
            assert!(same_start.len() > 1, "{message}");
            assert!(
                same_start.iter().all(|id| message.contains(id.as_str())),
                "{message}"
            );
        }
        Ok(case) => assert_eq!((same_start.len(), case), (1, cases[0])),
        other => panic!("expected an ambiguous id, got {other:?}"),
    }
    assert!(matches!(
        engine.resolve_case("xyz").await,
        Err(Error::NotAnId { .. })
    ));
    let item = engine.work_items(&by_role("clerk")).await.unwrap()[1].id;
    let last = item.to_string().rsplit('-').next().unwrap().to_owned();
    assert_eq!(engine.resolve_work_item(&last[..10]).await.unwrap(), item);
    // A case's id names no work item.
    let case_last = text[0].rsplit('-').next().unwrap().to_owned();
    match engine.resolve_work_item(&case_last).await {
        Err(Error::UnknownId { what, .. }) => assert_eq!(what, "work item"),
        other => panic!("expected an unknown id, got {other:?}"),
    }
}

/// A page of work items starts after an item, or after its place in the list, which holds
/// once the item is completed.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn work_items_come_in_pages_after_an_item_or_its_place() {
    use knhk_workflow_engine::{Error, ItemCursor};
    let engine = memory_engine();
    let wf = engine
        .register_workflow(
            "approve.ttl",
            knhk_workflow_engine::SourceFormat::Turtle,
            &turtle(
                "Approve",
                &[("approve", "knhk:role \"clerk\" ;", &["end"] as &[&str])],
            ),
        )
        .await
        .unwrap()
        .workflow;
    for _ in 0..4 {
        engine.create_case(wf.id, json!({}), true).await.unwrap();
    }
    let all = engine.work_items(&by_role("clerk")).await.unwrap();
    assert_eq!(all.len(), 4);
    let page = |after, limit| {
        let engine = engine.clone();
        async move {
            engine
                .work_items(&WorkItemQuery {
                    limit,
                    after,
                    ..by_role("clerk")
                })
                .await
                .map(|items| items.into_iter().map(|w| w.id).collect::<Vec<_>>())
        }
    };
    let ids: Vec<_> = all.iter().map(|w| w.id).collect();
    assert_eq!(page(None, Some(2)).await.unwrap(), ids[..2]);
    let after_first = Some(ItemCursor::Item(ids[0]));
    assert_eq!(page(after_first, Some(2)).await.unwrap(), ids[1..3]);
    let first = &all[0];
    engine
        .complete_work_item(first.id, "ann", json!({}))
        .await
        .unwrap();
    engine.settled(first.case).await.unwrap();
    // The item is gone: its place still says where the next page starts.
    let place = Some(ItemCursor::At(first.offered_at, first.id));
    assert_eq!(page(place, None).await.unwrap(), ids[1..]);
    assert!(matches!(
        page(after_first, None).await,
        Err(Error::UnknownWorkItem(id)) if id == first.id
    ));
    // A status is a condition of the page too, read from the store's index of states.
    engine.claim(ids[2], "bob").await.unwrap();
    let in_status = |status, after, limit| {
        let engine = engine.clone();
        async move {
            engine
                .work_items(&WorkItemQuery {
                    status: Some(status),
                    limit,
                    after,
                    ..by_role("clerk")
                })
                .await
                .map(|items| items.into_iter().map(|w| w.id).collect::<Vec<_>>())
                .unwrap()
        }
    };
    assert_eq!(
        in_status(WorkItemStatus::Allocated, None, None).await,
        vec![ids[2]]
    );
    assert_eq!(
        in_status(WorkItemStatus::Offered, None, None).await,
        vec![ids[1], ids[3]]
    );
    let after_second = Some(ItemCursor::Item(ids[1]));
    assert_eq!(
        in_status(WorkItemStatus::Offered, after_second, Some(1)).await,
        vec![ids[3]]
    );
    assert_eq!(
        in_status(WorkItemStatus::Started, None, None).await,
        Vec::new()
    );
}
