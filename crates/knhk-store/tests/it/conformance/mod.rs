//! The backend conformance suite: generic tests every `Store` must pass. A backend's module
//! runs them all with `conformance_tests!(its_fixture_fn)`.

use std::sync::Arc;

use knhk_core::{CaseStatus, EventKind};
use knhk_store::{CaseFilter, Change, Error, Store, WorkItemFilter};
use serde_json::json;

use crate::fixtures::*;

mod concurrency;
pub mod lockchain;
mod lookups;
mod nodes;
mod snapshots;
mod versions;
pub use concurrency::{concurrent_commits_to_64_cases, race_on_one_case_has_one_winner};
pub use lockchain::{
    a_refused_commit_adds_no_leaf, checkpoints_are_kept_once_per_size,
    lockchain_leaves_make_one_tree_in_tiles, refused_commits_among_a_group_add_no_leaf,
};
pub use lookups::{
    no_planned_read_scans_a_table_that_grows, settling_work_in_flight_is_guarded_by_the_version,
    shortened_ids_name_cases_and_work_items_by_start_or_last_group,
    work_items_come_in_pages_after_a_cursor,
};
pub use nodes::{
    a_stale_fence_is_refused_and_nothing_stored, node_leases_are_renewed_until_they_expire,
    one_node_claims_each_case_of_a_dead_node, one_node_claims_each_due_timer,
    racing_idempotency_keys_have_one_winner, racing_sweeps_claim_every_case_once,
};
pub use snapshots::snapshots_are_written_with_their_step_one_per_case;
pub use versions::{
    racing_registrations_take_distinct_versions, workflow_versions_are_unique_per_uri,
};

/// Runs every conformance test against the store that `$make().await` returns (a `Fixture`).
macro_rules! conformance_tests {
    ($make:path) => {
        $crate::conformance::conformance_tests!(@each $make;
            workflows_put_get_list_duplicate,
            workflow_versions_are_unique_per_uri,
            racing_registrations_take_distinct_versions,
            first_commit_round_trips_every_event_kind,
            conflict_leaves_everything_unchanged,
            gap_is_refused,
            work_items_put_update_delete_and_filters,
            timers_put_delete_order,
            duplicate_idempotency_key_stores_nothing,
            cases_filter_by_status_workflow_limit,
            concurrent_commits_to_64_cases,
            race_on_one_case_has_one_winner,
            ping_and_missing_rows,
            sequences_count_per_name_without_repeats,
            quarantine_keeps_the_first_reason_and_lists_oldest_first,
            snapshots_are_written_with_their_step_one_per_case,
            shortened_ids_name_cases_and_work_items_by_start_or_last_group,
            settling_work_in_flight_is_guarded_by_the_version,
            work_items_come_in_pages_after_a_cursor,
            no_planned_read_scans_a_table_that_grows,
            node_leases_are_renewed_until_they_expire,
            one_node_claims_each_case_of_a_dead_node,
            racing_sweeps_claim_every_case_once,
            one_node_claims_each_due_timer,
            a_stale_fence_is_refused_and_nothing_stored,
            racing_idempotency_keys_have_one_winner,
            lockchain_leaves_make_one_tree_in_tiles,
            a_refused_commit_adds_no_leaf,
            refused_commits_among_a_group_add_no_leaf,
            checkpoints_are_kept_once_per_size,
        );
    };
    (@each $make:path; $($name:ident),* $(,)?) => {
        $(
            #[tokio::test(flavor = "multi_thread", worker_threads = 4)]
            async fn $name() {
                let fixture = $make().await;
                $crate::conformance::$name(::std::sync::Arc::clone(&fixture.store)).await;
            }
        )*
    };
}
pub(crate) use conformance_tests;

pub async fn workflows_put_get_list_duplicate(s: Arc<dyn Store>) {
    let b1 = workflow(1, "billing", 1);
    let a2 = workflow(2, "approval", 2);
    let a1 = workflow(3, "approval", 1);
    for w in [&b1, &a2, &a1] {
        s.put_workflow(w).await.unwrap();
    }
    assert_eq!(s.workflow(a2.id).await.unwrap(), Some(a2.clone()));
    assert_eq!(s.workflow(workflow_id(99)).await.unwrap(), None);
    assert_eq!(
        s.workflows().await.unwrap(),
        vec![a1.clone(), a2.clone(), b1.clone()]
    );

    let mut again = workflow(1, "other", 7);
    again.source = "changed".to_owned();
    match s.put_workflow(&again).await {
        Err(e @ Error::DuplicateWorkflow(id)) => {
            assert_eq!(id, b1.id);
            assert_eq!(e.to_string(), format!("workflow {} already exists", b1.id));
        }
        other => panic!("expected a duplicate, got {other:?}"),
    }
    assert_eq!(s.workflow(b1.id).await.unwrap(), Some(b1.clone()));
    assert_eq!(s.workflows().await.unwrap().len(), 3);

    // Summaries: the same list, in the same order, without sources; each counts its tasks.
    let summaries = s.workflow_summaries().await.unwrap();
    assert_eq!(
        summaries,
        [&a1, &a2, &b1]
            .map(knhk_store::WorkflowSummary::of)
            .to_vec()
    );
    assert_eq!(summaries[0].tasks, 2);
    assert_eq!(summaries[0].name, "approval");
    assert_eq!(summaries[0].format, "turtle");
    // A specification of several nets, or of none, is counted too.
    let mut nets = workflow(4, "nets", 1);
    nets.spec = json!({ "nets": [{ "tasks": ["a"] }, { "tasks": ["b", "c", "d"] }, {}] });
    let mut none = workflow(5, "none", 1);
    none.spec = json!({ "name": "none" });
    s.put_workflow(&nets).await.unwrap();
    s.put_workflow(&none).await.unwrap();
    let counted: Vec<(String, u32)> = s
        .workflow_summaries()
        .await
        .unwrap()
        .into_iter()
        .map(|w| (w.name, w.tasks))
        .collect();
    assert_eq!(
        counted,
        [
            ("approval", 2),
            ("approval", 2),
            ("billing", 2),
            ("nets", 4),
            ("none", 0)
        ]
        .map(|(n, t)| (n.to_owned(), t))
        .to_vec()
    );
}

pub async fn first_commit_round_trips_every_event_kind(s: Arc<dyn Store>) {
    let kinds = every_event_kind();
    let events = events_from(1, kinds);
    let mut record = case(1, workflow_id(1), CaseStatus::Running, 100);
    record.data = data(&[
        ("nested", json!({ "a": [1, 2.5, "x", null, true] })),
        ("empty", json!({})),
    ]);
    record.marking = json!({ "0": { "c1": 2, "c2": 1 }, "1": {} });
    let c = first_commit(record, events.clone());
    let stored = c.case.clone();
    assert_eq!(stored.version, events.len() as u64);
    s.commit(c).await.unwrap();

    assert_eq!(s.case(stored.id).await.unwrap(), Some(stored.clone()));
    assert_eq!(s.events(stored.id, 0).await.unwrap(), events);
    assert_eq!(
        s.events(stored.id, 10).await.unwrap(),
        events[10..].to_vec()
    );
    assert_eq!(s.events(stored.id, stored.version).await.unwrap(), vec![]);
    assert_eq!(s.events(case_id(2), 0).await.unwrap(), vec![]);
    // Pages: at most `limit` events after a sequence number, in order.
    assert_eq!(
        s.events_page(stored.id, 0, 3).await.unwrap(),
        events[..3].to_vec()
    );
    assert_eq!(
        s.events_page(stored.id, 3, 4).await.unwrap(),
        events[3..7].to_vec()
    );
    assert_eq!(
        s.events_page(stored.id, 10, 1_000).await.unwrap(),
        events[10..].to_vec()
    );
    assert_eq!(s.events_page(stored.id, 0, 0).await.unwrap(), vec![]);
    assert_eq!(s.events_page(stored.id, u64::MAX, 5).await.unwrap(), vec![]);
    assert_eq!(s.events_page(case_id(2), 0, 5).await.unwrap(), vec![]);

    let next = next_step(
        &stored,
        vec![EventKind::DataUpdated {
            changes: data(&[("k", json!("v"))]),
        }],
    );
    let after = next.case.clone();
    let new_events = next.events.clone();
    s.commit(next).await.unwrap();
    assert_eq!(s.case(stored.id).await.unwrap(), Some(after));
    assert_eq!(
        s.events(stored.id, stored.version).await.unwrap(),
        new_events
    );
    assert_eq!(
        s.events(stored.id, 0).await.unwrap().len(),
        events.len() + 1
    );
}

/// Returns everything the store holds about one case, for before/after comparisons.
async fn snapshot(
    s: &dyn Store,
    c: &knhk_store::CaseRecord,
) -> (
    Option<knhk_store::CaseRecord>,
    Vec<knhk_core::Event>,
    Vec<knhk_store::WorkItemRecord>,
    Vec<knhk_store::TimerRecord>,
) {
    (
        s.case(c.id).await.unwrap(),
        s.events(c.id, 0).await.unwrap(),
        s.work_items(&WorkItemFilter::default()).await.unwrap(),
        s.timers().await.unwrap(),
    )
}

pub async fn conflict_leaves_everything_unchanged(s: Arc<dyn Store>) {
    let mut first = first_commit(
        case(1, workflow_id(1), CaseStatus::Running, 10),
        events_from(1, vec![EventKind::TaskEnabled { task: task("a") }]),
    );
    first
        .work_items
        .push(put(work_item(1, case_id(1), &["clerk"], None, 5)));
    first.timers.push(put(timer(1, case_id(1), 500)));
    let stored = first.case.clone();
    s.commit(first).await.unwrap();
    let before = snapshot(s.as_ref(), &stored).await;

    let loaded_step = |expected: Option<u64>| {
        let mut c = next_step(&stored, vec![EventKind::TaskCancelled { task: task("a") }]);
        c.expected_version = expected;
        c.work_items.push(Change::Delete(item_id(1)));
        c.work_items
            .push(put(work_item(2, case_id(1), &["clerk"], None, 6)));
        c.timers.push(Change::Delete(timer_id(1)));
        c.timers.push(put(timer(2, case_id(1), 600)));
        c.idempotency = Some(idempotency("conflicting", 7));
        c
    };

    // The case exists, so a commit that expects it not to is a conflict.
    let mut create_again = loaded_step(None);
    create_again.events = events_from(1, vec![EventKind::TaskEnabled { task: task("b") }]);
    create_again.case.version = 1;
    match s.commit(create_again).await {
        Err(Error::Conflict {
            case,
            expected: None,
            actual: Some(1),
        }) => assert_eq!(case, stored.id),
        other => panic!("expected a conflict, got {other:?}"),
    }

    // A stale expected version (the events would otherwise continue the history).
    let mut stale = loaded_step(Some(0));
    stale.events = events_from(1, vec![EventKind::TaskEnabled { task: task("b") }]);
    stale.case.version = 1;
    assert!(
        matches!(
            s.commit(stale).await,
            Err(Error::Conflict {
                expected: Some(0),
                actual: Some(1),
                ..
            })
        ),
        "a stale version must conflict"
    );

    // A version ahead of the stored one.
    let mut ahead = loaded_step(Some(2));
    ahead.events = events_from(3, vec![EventKind::TaskEnabled { task: task("b") }]);
    ahead.case.version = 3;
    assert!(matches!(
        s.commit(ahead).await,
        Err(Error::Conflict {
            expected: Some(2),
            actual: Some(1),
            ..
        })
    ));

    // A case that does not exist.
    let mut missing = loaded_step(Some(1));
    missing.case.id = case_id(2);
    match s.commit(missing).await {
        Err(Error::Conflict {
            case,
            expected: Some(1),
            actual: None,
        }) => assert_eq!(case, case_id(2)),
        other => panic!("expected a conflict, got {other:?}"),
    }

    assert_eq!(snapshot(s.as_ref(), &stored).await, before);
    assert_eq!(s.case(case_id(2)).await.unwrap(), None);
    assert_eq!(s.idempotency("conflicting").await.unwrap(), None);

    // The right version still goes through.
    s.commit(loaded_step(Some(1))).await.unwrap();
    assert_eq!(s.case(stored.id).await.unwrap().unwrap().version, 2);
    assert_eq!(s.work_item(item_id(1)).await.unwrap(), None);
    assert_eq!(s.timers().await.unwrap(), vec![timer(2, case_id(1), 600)]);
}

pub async fn gap_is_refused(s: Arc<dyn Store>) {
    let stored = create_case(s.as_ref(), 1, workflow_id(1), CaseStatus::Running, 10).await;
    let before = snapshot(s.as_ref(), &stored).await;
    let kind = || EventKind::TaskEnabled { task: task("a") };

    // The first new event skips a seq.
    let mut skip = next_step(&stored, vec![kind()]);
    skip.events = events_from(3, vec![kind()]);
    skip.case.version = 3;
    assert!(matches!(
        s.commit(skip).await,
        Err(Error::Gap {
            expected_seq: 2,
            got: 3,
            ..
        })
    ));

    // A hole inside the new events.
    let mut hole = next_step(&stored, vec![kind(), kind()]);
    hole.events[1].seq = 4;
    hole.case.version = 4;
    assert!(matches!(
        s.commit(hole).await,
        Err(Error::Gap {
            expected_seq: 3,
            got: 4,
            ..
        })
    ));

    // An event repeating a stored seq.
    let mut repeat = next_step(&stored, vec![kind()]);
    repeat.events[0].seq = 1;
    repeat.case.version = 1;
    assert!(matches!(
        s.commit(repeat).await,
        Err(Error::Gap {
            expected_seq: 2,
            got: 1,
            ..
        })
    ));

    // The snapshot version does not name the last event.
    let mut wrong_version = next_step(&stored, vec![kind()]);
    wrong_version.case.version = 5;
    assert!(matches!(
        s.commit(wrong_version).await,
        Err(Error::Gap {
            expected_seq: 2,
            got: 5,
            ..
        })
    ));

    // A new case whose history does not start at 1.
    let mut late_start = first_commit(
        case(2, workflow_id(1), CaseStatus::Created, 10),
        events_from(2, vec![kind()]),
    );
    late_start.case.version = 2;
    assert!(matches!(
        s.commit(late_start).await,
        Err(Error::Gap {
            expected_seq: 1,
            got: 2,
            ..
        })
    ));

    assert_eq!(snapshot(s.as_ref(), &stored).await, before);
    assert_eq!(s.case(case_id(2)).await.unwrap(), None);

    // A step without events keeps the version and may still change the snapshot.
    let mut quiet = next_step(&stored, vec![]);
    quiet.case.data = data(&[("touched", json!(true))]);
    let quiet_case = quiet.case.clone();
    s.commit(quiet).await.unwrap();
    assert_eq!(s.case(stored.id).await.unwrap(), Some(quiet_case));
    assert_eq!(s.events(stored.id, 0).await.unwrap(), before.1);
}

pub async fn work_items_put_update_delete_and_filters(s: Arc<dyn Store>) {
    let a = create_case(s.as_ref(), 1, workflow_id(1), CaseStatus::Running, 10).await;
    let b = create_case(s.as_ref(), 2, workflow_id(1), CaseStatus::Running, 11).await;
    let w1 = work_item(1, a.id, &["clerk", "manager"], None, 30);
    let w2 = work_item(2, a.id, &["clerk"], Some("alice"), 10);
    let w3 = work_item(3, b.id, &["manager", "clerk-lead"], Some("alice"), 20);

    let mut step_a = next_step(&a, vec![EventKind::TaskEnabled { task: task("t") }]);
    step_a.work_items = vec![put(w1.clone()), put(w2.clone())];
    s.commit(step_a.clone()).await.unwrap();
    let mut step_b = next_step(&b, vec![EventKind::TaskEnabled { task: task("t") }]);
    step_b.work_items = vec![put(w3.clone())];
    s.commit(step_b).await.unwrap();

    let find = |role: Option<&str>, case: Option<knhk_core::CaseId>, owner: Option<&str>| {
        let s = Arc::clone(&s);
        let f = WorkItemFilter {
            role: role.map(str::to_owned),
            case,
            owner: owner.map(str::to_owned),
            ..WorkItemFilter::default()
        };
        async move {
            s.work_items(&f)
                .await
                .unwrap()
                .into_iter()
                .map(|w| w.id)
                .collect::<Vec<_>>()
        }
    };
    assert_eq!(find(None, None, None).await, vec![w2.id, w3.id, w1.id]);
    assert_eq!(find(Some("clerk"), None, None).await, vec![w2.id, w1.id]);
    assert_eq!(find(Some("manager"), None, None).await, vec![w3.id, w1.id]);
    assert_eq!(find(Some("lead"), None, None).await, vec![]);
    assert_eq!(find(None, Some(a.id), None).await, vec![w2.id, w1.id]);
    assert_eq!(find(None, None, Some("alice")).await, vec![w2.id, w3.id]);
    assert_eq!(
        find(Some("manager"), None, Some("alice")).await,
        vec![w3.id]
    );
    assert_eq!(find(Some("clerk"), Some(b.id), None).await, vec![]);
    assert_eq!(s.work_item(w3.id).await.unwrap(), Some(w3.clone()));

    // Claim w1 and drop w2 in one step.
    let a = step_a.case;
    let mut claimed = w1.clone();
    claimed.state = "allocated".to_owned();
    claimed.owner = Some("bob".to_owned());
    let mut step = next_step(
        &a,
        vec![EventKind::WorkItemAllocated {
            item: w1.id,
            user: "bob".to_owned(),
        }],
    );
    step.work_items = vec![put(claimed.clone()), Change::Delete(w2.id)];
    s.commit(step.clone()).await.unwrap();

    assert_eq!(s.work_item(w1.id).await.unwrap(), Some(claimed.clone()));
    assert_eq!(s.work_item(w2.id).await.unwrap(), None);
    assert_eq!(find(None, None, Some("bob")).await, vec![w1.id]);
    assert_eq!(find(None, None, None).await, vec![w3.id, w1.id]);
    assert_eq!(find(None, None, Some("alice")).await, vec![w3.id]);
    // A role filter follows the items' roles as they change and as items go.
    assert_eq!(find(Some("clerk"), None, None).await, vec![w1.id]);
    assert_eq!(
        find(Some("clerk"), Some(a.id), Some("bob")).await,
        vec![w1.id]
    );
    assert_eq!(find(Some("clerk"), Some(a.id), Some("alice")).await, vec![]);
    assert_eq!(find(Some("clerk"), None, Some("bob")).await, vec![w1.id]);
    // A state filter follows the items' states as they change.
    let in_state = |state: &str| {
        let s = Arc::clone(&s);
        let f = WorkItemFilter {
            state: Some(state.to_owned()),
            ..WorkItemFilter::default()
        };
        async move {
            s.work_items(&f)
                .await
                .unwrap()
                .into_iter()
                .map(|w| w.id)
                .collect::<Vec<_>>()
        }
    };
    assert_eq!(in_state("allocated").await, vec![w3.id, w1.id]);
    assert_eq!(in_state("offered").await, vec![]);
    let a = step.case;
    let mut offered = claimed;
    offered.roles = vec!["auditor".to_owned()];
    let mut step = next_step(
        &a,
        vec![EventKind::TaskEnabled {
            task: task("audit"),
        }],
    );
    step.work_items = vec![put(offered)];
    s.commit(step).await.unwrap();
    assert_eq!(find(Some("clerk"), None, None).await, vec![]);
    assert_eq!(find(Some("manager"), None, None).await, vec![w3.id]);
    assert_eq!(find(Some("auditor"), None, None).await, vec![w1.id]);
    assert_eq!(find(Some("auditor"), Some(a.id), None).await, vec![w1.id]);
    assert_eq!(find(Some("auditor"), Some(b.id), None).await, vec![]);
    // Queue lengths: the items each user holds, in the order asked, none for a stranger.
    let users = ["bob", "nobody", "alice"].map(str::to_owned);
    assert_eq!(s.queue_lengths(&users).await.unwrap(), vec![1, 0, 1]);
    assert_eq!(s.queue_lengths(&[]).await.unwrap(), Vec::<u64>::new());
}

pub async fn timers_put_delete_order(s: Arc<dyn Store>) {
    let c = create_case(s.as_ref(), 1, workflow_id(1), CaseStatus::Running, 10).await;
    let mut step = next_step(&c, vec![]);
    step.timers = vec![
        put(timer(1, c.id, 300)),
        put(timer(2, c.id, 100)),
        put(timer(3, c.id, 200)),
    ];
    s.commit(step.clone()).await.unwrap();
    let ids = |ts: Vec<knhk_store::TimerRecord>| ts.into_iter().map(|t| t.id).collect::<Vec<_>>();
    assert_eq!(
        ids(s.timers().await.unwrap()),
        vec![timer_id(2), timer_id(3), timer_id(1)]
    );

    let mut step = next_step(&step.case, vec![]);
    step.timers = vec![Change::Delete(timer_id(3)), put(timer(1, c.id, 50))];
    s.commit(step).await.unwrap();
    assert_eq!(
        s.timers().await.unwrap(),
        vec![timer(1, c.id, 50), timer(2, c.id, 100)]
    );
}

pub async fn duplicate_idempotency_key_stores_nothing(s: Arc<dyn Store>) {
    let c = create_case(s.as_ref(), 1, workflow_id(1), CaseStatus::Running, 10).await;
    let key = idempotency("req-1", 42);
    let mut step = next_step(&c, vec![EventKind::TaskEnabled { task: task("a") }]);
    step.idempotency = Some(key.clone());
    s.commit(step.clone()).await.unwrap();
    assert_eq!(s.idempotency("req-1").await.unwrap(), Some(key.clone()));
    assert_eq!(s.idempotency("req-2").await.unwrap(), None);
    let before = snapshot(s.as_ref(), &c).await;

    let mut again = next_step(&step.case, vec![EventKind::TaskEnabled { task: task("b") }]);
    again.work_items = vec![put(work_item(1, c.id, &["clerk"], None, 1))];
    again.timers = vec![put(timer(1, c.id, 1))];
    again.idempotency = Some(idempotency("req-1", 99));
    match s.commit(again).await {
        Err(Error::DuplicateKey(key)) => assert_eq!(key, "req-1"),
        other => panic!("expected a duplicate, got {other:?}"),
    }

    // Nor can a new case reuse the key.
    let mut other = first_commit(
        case(2, workflow_id(1), CaseStatus::Created, 20),
        events_from(1, vec![EventKind::TaskEnabled { task: task("a") }]),
    );
    other.idempotency = Some(idempotency("req-1", 100));
    assert!(matches!(s.commit(other).await, Err(Error::DuplicateKey(_))));

    assert_eq!(snapshot(s.as_ref(), &c).await, before);
    assert_eq!(s.case(case_id(2)).await.unwrap(), None);
    assert_eq!(s.events(case_id(2), 0).await.unwrap(), vec![]);
    assert_eq!(s.idempotency("req-1").await.unwrap(), Some(key));
}

/// (Also the ids alone, and the integrity check of a sound store.)
pub async fn cases_filter_by_status_workflow_limit(s: Arc<dyn Store>) {
    let (w1, w2) = (workflow_id(1), workflow_id(2));
    let c1 = create_case(s.as_ref(), 1, w1, CaseStatus::Running, 10).await;
    let c2 = create_case(s.as_ref(), 2, w2, CaseStatus::Completed, 30).await;
    // c3 and c4 share a creation time: the id breaks the tie. Created in reverse order.
    let c4 = create_case(s.as_ref(), 4, w1, CaseStatus::Running, 20).await;
    let c3 = create_case(s.as_ref(), 3, w1, CaseStatus::Completed, 20).await;

    let find = |status: Vec<CaseStatus>, workflow, limit| {
        let s = Arc::clone(&s);
        async move {
            s.cases(&CaseFilter {
                status,
                workflow,
                limit,
                after: None,
            })
            .await
            .unwrap()
        }
    };
    assert_eq!(
        find(vec![], None, None).await,
        vec![c1.clone(), c3.clone(), c4.clone(), c2.clone()]
    );
    let ids = |cs: Vec<knhk_store::CaseRecord>| cs.into_iter().map(|c| c.id).collect::<Vec<_>>();
    assert_eq!(
        ids(find(vec![CaseStatus::Completed], None, None).await),
        vec![c3.id, c2.id]
    );
    assert_eq!(
        ids(find(
            vec![CaseStatus::Running, CaseStatus::Completed],
            Some(w1),
            None
        )
        .await),
        vec![c1.id, c3.id, c4.id]
    );
    assert_eq!(ids(find(vec![], Some(w2), None).await), vec![c2.id]);
    assert_eq!(ids(find(vec![], None, Some(2)).await), vec![c1.id, c3.id]);
    assert_eq!(ids(find(vec![], None, Some(0)).await), vec![]);
    assert_eq!(
        ids(find(vec![CaseStatus::Running], Some(w1), Some(1)).await),
        vec![c1.id]
    );
    assert_eq!(
        ids(find(vec![CaseStatus::Failed], None, None).await),
        vec![]
    );

    // Pages: after a case's (creation time, id), ties broken by the id as in the order.
    let page = |after: &knhk_store::CaseRecord, status: Vec<CaseStatus>, limit| {
        let s = Arc::clone(&s);
        let after = (after.created_at, after.id);
        async move {
            s.cases(&CaseFilter {
                status,
                workflow: None,
                limit,
                after: Some(after),
            })
            .await
            .unwrap()
            .into_iter()
            .map(|c| c.id)
            .collect::<Vec<_>>()
        }
    };
    assert_eq!(page(&c1, vec![], Some(2)).await, vec![c3.id, c4.id]);
    assert_eq!(page(&c3, vec![], None).await, vec![c4.id, c2.id]);
    assert_eq!(page(&c4, vec![CaseStatus::Running], None).await, vec![]);
    assert_eq!(page(&c2, vec![], None).await, vec![]);

    // The cases with work in flight: all of these (see `case`), until a step says otherwise.
    assert_eq!(
        s.case_ids_in_flight(&[CaseStatus::Running]).await.unwrap(),
        vec![c1.id, c4.id]
    );
    let mut settled = next_step(
        &c1,
        vec![EventKind::DataUpdated {
            changes: data(&[("k", json!("v"))]),
        }],
    );
    settled.case.in_flight = false;
    let c1 = settled.case.clone();
    s.commit(settled).await.unwrap();
    assert_eq!(
        s.case_ids_in_flight(&[CaseStatus::Running]).await.unwrap(),
        vec![c4.id]
    );
    assert_eq!(
        s.case_ids_in_flight(&[]).await.unwrap(),
        vec![c3.id, c4.id, c2.id]
    );

    // Ids alone, in the same order, by status.
    assert_eq!(
        s.case_ids(&[]).await.unwrap(),
        vec![c1.id, c3.id, c4.id, c2.id]
    );
    assert_eq!(
        s.case_ids(&[CaseStatus::Running]).await.unwrap(),
        vec![c1.id, c4.id]
    );
    // A sound store has nothing to say about itself.
    assert_eq!(s.integrity(false).await.unwrap(), Vec::<String>::new());
    assert_eq!(s.integrity(true).await.unwrap(), Vec::<String>::new());

    // A status change is visible to the filter.
    let mut done = next_step(
        &c1,
        vec![EventKind::CaseStateChanged {
            from: CaseStatus::Running,
            to: CaseStatus::Failed,
            reason: Some("test".to_owned()),
        }],
    );
    done.case.status = CaseStatus::Failed;
    s.commit(done).await.unwrap();
    assert_eq!(
        ids(find(vec![CaseStatus::Failed], None, None).await),
        vec![c1.id]
    );
}

pub async fn ping_and_missing_rows(s: Arc<dyn Store>) {
    s.ping().await.unwrap();
    assert_eq!(s.case(case_id(7)).await.unwrap(), None);
    assert_eq!(s.work_item(item_id(7)).await.unwrap(), None);
    assert_eq!(s.events(case_id(7), 0).await.unwrap(), vec![]);
    assert_eq!(s.events(case_id(7), u64::MAX).await.unwrap(), vec![]);
    assert_eq!(s.timers().await.unwrap(), vec![]);
    assert_eq!(s.workflows().await.unwrap(), vec![]);
    assert_eq!(s.cases(&CaseFilter::default()).await.unwrap(), vec![]);
}

pub async fn sequences_count_per_name_without_repeats(s: Arc<dyn Store>) {
    assert_eq!(s.next_in_sequence("a").await.unwrap(), 1);
    assert_eq!(s.next_in_sequence("a").await.unwrap(), 2);
    assert_eq!(s.next_in_sequence("b").await.unwrap(), 1);
    // Concurrent callers never get the same value.
    let mut tasks = Vec::new();
    for _ in 0..32 {
        let s = Arc::clone(&s);
        tasks.push(tokio::spawn(async move {
            s.next_in_sequence("a").await.unwrap()
        }));
    }
    let mut values = Vec::new();
    for t in tasks {
        values.push(t.await.unwrap());
    }
    values.sort_unstable();
    assert_eq!(values, (3..=34).collect::<Vec<u64>>());
}

pub async fn quarantine_keeps_the_first_reason_and_lists_oldest_first(s: Arc<dyn Store>) {
    use knhk_core::Timestamp;
    use knhk_store::QuarantineRecord;
    let q = |case: u128, reason: &str, at: i64| QuarantineRecord {
        case: case_id(case),
        reason: reason.to_owned(),
        at: Timestamp(at),
    };
    assert_eq!(s.quarantined().await.unwrap(), vec![]);
    assert_eq!(s.quarantine_of(case_id(1)).await.unwrap(), None);
    s.quarantine(&q(2, "its history does not replay", 20))
        .await
        .unwrap();
    s.quarantine(&q(1, "its row does not decode", 10))
        .await
        .unwrap();
    s.quarantine(&q(2, "something else", 30)).await.unwrap();
    assert_eq!(
        s.quarantined().await.unwrap(),
        vec![
            q(1, "its row does not decode", 10),
            q(2, "its history does not replay", 20)
        ]
    );
    assert_eq!(
        s.quarantine_of(case_id(2)).await.unwrap(),
        Some(q(2, "its history does not replay", 20))
    );
    // Released: out of the list, and again set aside with a new reason the next time.
    assert!(s.release_quarantine(case_id(2)).await.unwrap());
    assert!(!s.release_quarantine(case_id(2)).await.unwrap());
    assert!(!s.release_quarantine(case_id(9)).await.unwrap());
    assert_eq!(s.quarantine_of(case_id(2)).await.unwrap(), None);
    assert_eq!(
        s.quarantined().await.unwrap(),
        vec![q(1, "its row does not decode", 10)]
    );
    s.quarantine(&q(2, "something else", 30)).await.unwrap();
    assert_eq!(
        s.quarantine_of(case_id(2)).await.unwrap(),
        Some(q(2, "something else", 30))
    );
}
