//! Conformance: ids named by a shortened form, settling a case's work in flight, pages of
//! work items, and the plans of a backend's reads (none scans a table that grows).

use std::sync::Arc;

use knhk_core::{CaseId, CaseStatus, EventKind, Timestamp, WorkItemId};
use knhk_store::{EXPLAINED, Store, WorkItemFilter};
use uuid::Uuid;

use crate::fixtures::*;

fn uuid(s: &str) -> Uuid {
    Uuid::parse_str(s).unwrap()
}

/// Stores a case with this id, created at `created`; returns its record.
async fn case_with_id(s: &dyn Store, id: &str, created: i64) -> knhk_store::CaseRecord {
    let mut record = case(1, workflow_id(1), CaseStatus::Running, created);
    record.id = CaseId(uuid(id));
    let c = first_commit(
        record,
        vec![event(
            1,
            EventKind::CaseCreated {
                workflow: "w".to_owned(),
                data: Default::default(),
            },
        )],
    );
    let stored = c.case.clone();
    s.commit(c).await.unwrap();
    stored
}

/// Time-ordered ids share their first digits (the time); their last group tells them apart.
const A: &str = "0190aaaa-0000-7000-8000-111111111111";
const B: &str = "0190aaaa-0001-7000-8000-222222222222";
const C: &str = "0190bbbb-0000-7000-8000-111122223333";
const D: &str = "22220000-0000-4000-8000-333333333333";

pub async fn shortened_ids_name_cases_and_work_items_by_start_or_last_group(s: Arc<dyn Store>) {
    let mut cases = Vec::new();
    for (k, id) in [A, B, C, D].into_iter().enumerate() {
        cases.push(case_with_id(s.as_ref(), id, 10 + k as i64).await);
    }
    // The work items take the same ids, each in the case of that id.
    for c in &cases {
        let mut item = work_item(1, c.id, &["clerk"], None, 5);
        item.id = WorkItemId(c.id.0);
        let mut step = next_step(c, vec![EventKind::TaskEnabled { task: task("t") }]);
        step.work_items = vec![put(item)];
        s.commit(step).await.unwrap();
    }
    let cases_named = |prefix: &'static str, limit: usize| {
        let s = Arc::clone(&s);
        async move {
            s.case_ids_by_prefix(prefix, limit)
                .await
                .unwrap()
                .into_iter()
                .map(|c| c.to_string())
                .collect::<Vec<_>>()
        }
    };
    let items_named = |prefix: &'static str, limit: usize| {
        let s = Arc::clone(&s);
        async move {
            s.work_item_ids_by_prefix(prefix, limit)
                .await
                .unwrap()
                .into_iter()
                .map(|w| w.to_string())
                .collect::<Vec<_>>()
        }
    };
    for (prefix, named) in [
        // The start of the id.
        ("0190aaaa", vec![A, B]),
        ("0190aaaa-0001", vec![B]),
        ("0190b", vec![C]),
        (A, vec![A]),
        // The start of the last group.
        ("111111", vec![A]),
        ("1111", vec![A, C]),
        ("111122223333", vec![C]),
        ("3333", vec![D]),
        // Either: D starts with it, B's last group does; in id order.
        ("2222", vec![B, D]),
        // A `-` belongs to the start of an id, never to a last group.
        ("0000-", vec![]),
        ("ffff", vec![]),
        ("1112", vec![]),
    ] {
        assert_eq!(cases_named(prefix, 10).await, named, "cases named {prefix}");
        assert_eq!(items_named(prefix, 10).await, named, "items named {prefix}");
    }
    // At most `limit`, the first in id order.
    assert_eq!(cases_named("0190", 2).await, vec![A, B]);
    assert_eq!(items_named("0190", 2).await, vec![A, B]);
    assert_eq!(cases_named("0190", 10).await, vec![A, B, C]);
    // A work item gone is named no more.
    let gone = &cases[0];
    let mut step = next_step(
        &knhk_store::CaseRecord {
            version: 2,
            ..gone.clone()
        },
        vec![],
    );
    step.work_items = vec![knhk_store::Change::Delete(WorkItemId(gone.id.0))];
    s.commit(step).await.unwrap();
    assert_eq!(items_named("1111", 10).await, vec![C]);
    assert_eq!(cases_named("1111", 10).await, vec![A, C]);
}

pub async fn settling_work_in_flight_is_guarded_by_the_version(s: Arc<dyn Store>) {
    let c = create_case(s.as_ref(), 1, workflow_id(1), CaseStatus::Running, 10).await;
    let other = create_case(s.as_ref(), 2, workflow_id(1), CaseStatus::Running, 11).await;
    let in_flight = || {
        let s = Arc::clone(&s);
        async move { s.case_ids_in_flight(&[CaseStatus::Running]).await.unwrap() }
    };
    assert_eq!(in_flight().await, vec![c.id, other.id]);
    // Another version: the case moved on since it was read, and stays as it is.
    assert!(!s.settle_in_flight(c.id, c.version + 1).await.unwrap());
    assert!(!s.settle_in_flight(case_id(99), 1).await.unwrap());
    assert_eq!(in_flight().await, vec![c.id, other.id]);
    assert!(s.settle_in_flight(c.id, c.version).await.unwrap());
    assert_eq!(in_flight().await, vec![other.id]);
    // Nothing else of the row changes.
    let mut settled = c.clone();
    settled.in_flight = false;
    assert_eq!(s.case(c.id).await.unwrap(), Some(settled));
}

pub async fn work_items_come_in_pages_after_a_cursor(s: Arc<dyn Store>) {
    let a = create_case(s.as_ref(), 1, workflow_id(1), CaseStatus::Running, 10).await;
    // Offer times 10, 20, 20, 30, 40: items 2 and 3 share one, their ids break the tie.
    let items = [
        work_item(1, a.id, &["clerk"], Some("ann"), 10),
        work_item(3, a.id, &["clerk", "audit"], None, 20),
        work_item(2, a.id, &["clerk"], Some("ann"), 20),
        work_item(4, a.id, &["audit"], Some("ann"), 30),
        work_item(5, a.id, &["clerk"], None, 40),
    ];
    let mut step = next_step(&a, vec![EventKind::TaskEnabled { task: task("t") }]);
    step.work_items = items.iter().cloned().map(put).collect();
    s.commit(step).await.unwrap();
    let page = |role: Option<&str>, owner: Option<&str>, case, after: Option<u128>, limit| {
        let s = Arc::clone(&s);
        let after = after.map(|n| {
            let w = items.iter().find(|w| w.id == item_id(n)).unwrap();
            (w.offered_at, w.id)
        });
        let f = WorkItemFilter {
            role: role.map(str::to_owned),
            owner: owner.map(str::to_owned),
            case,
            limit,
            after,
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
    let ids = |ns: &[u128]| ns.iter().map(|n| item_id(*n)).collect::<Vec<_>>();
    assert_eq!(
        page(None, None, None, None, None).await,
        ids(&[1, 2, 3, 4, 5])
    );
    assert_eq!(page(None, None, None, None, Some(2)).await, ids(&[1, 2]));
    assert_eq!(page(None, None, None, Some(2), Some(2)).await, ids(&[3, 4]));
    assert_eq!(page(None, None, None, Some(4), Some(2)).await, ids(&[5]));
    assert_eq!(page(None, None, None, Some(5), None).await, ids(&[]));
    assert_eq!(
        page(Some("clerk"), None, None, Some(1), Some(2)).await,
        ids(&[2, 3])
    );
    assert_eq!(
        page(Some("clerk"), None, None, Some(3), None).await,
        ids(&[5])
    );
    assert_eq!(
        page(None, Some("ann"), None, Some(1), Some(1)).await,
        ids(&[2])
    );
    assert_eq!(
        page(None, Some("ann"), None, Some(2), None).await,
        ids(&[4])
    );
    assert_eq!(
        page(None, None, Some(a.id), Some(3), None).await,
        ids(&[4, 5])
    );
    assert_eq!(
        page(Some("audit"), Some("ann"), Some(a.id), Some(1), None).await,
        ids(&[4])
    );
    assert_eq!(page(None, None, None, None, Some(0)).await, ids(&[]));
    // A cursor between items (a time no item has) works as well.
    let f = WorkItemFilter {
        after: Some((Timestamp(25), item_id(0))),
        ..WorkItemFilter::default()
    };
    let got: Vec<_> = s
        .work_items(&f)
        .await
        .unwrap()
        .into_iter()
        .map(|w| w.id)
        .collect();
    assert_eq!(got, ids(&[4, 5]));

    // Pages of the items in one state (1, 2, 4 allocated to ann; 3, 5 offered), alone and
    // beside each other condition.
    let in_state = |state: &str, role: Option<&str>, case, after: Option<u128>, limit| {
        let s = Arc::clone(&s);
        let after = after.map(|n| {
            let w = items.iter().find(|w| w.id == item_id(n)).unwrap();
            (w.offered_at, w.id)
        });
        let f = WorkItemFilter {
            state: Some(state.to_owned()),
            role: role.map(str::to_owned),
            case,
            limit,
            after,
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
    assert_eq!(
        in_state("allocated", None, None, None, None).await,
        ids(&[1, 2, 4])
    );
    assert_eq!(
        in_state("allocated", None, None, None, Some(2)).await,
        ids(&[1, 2])
    );
    assert_eq!(
        in_state("allocated", None, None, Some(2), Some(2)).await,
        ids(&[4])
    );
    assert_eq!(
        in_state("offered", None, None, Some(3), None).await,
        ids(&[5])
    );
    assert_eq!(in_state("started", None, None, None, None).await, ids(&[]));
    assert_eq!(
        in_state("offered", Some("clerk"), None, None, None).await,
        ids(&[3, 5])
    );
    assert_eq!(
        in_state("allocated", Some("audit"), None, None, None).await,
        ids(&[4])
    );
    assert_eq!(
        in_state("offered", None, Some(a.id), Some(1), Some(1)).await,
        ids(&[3])
    );
    let f = WorkItemFilter {
        state: Some("offered".to_owned()),
        owner: Some("ann".to_owned()),
        ..WorkItemFilter::default()
    };
    assert_eq!(s.work_items(&f).await.unwrap(), vec![]);
    let f = WorkItemFilter {
        state: Some("allocated".to_owned()),
        owner: Some("ann".to_owned()),
        after: Some((items[0].offered_at, items[0].id)),
        ..WorkItemFilter::default()
    };
    let got: Vec<_> = s
        .work_items(&f)
        .await
        .unwrap()
        .into_iter()
        .map(|w| w.id)
        .collect();
    assert_eq!(got, ids(&[2, 4]));
}

pub async fn no_planned_read_scans_a_table_that_grows(s: Arc<dyn Store>) {
    let plans = s.query_plans().await.unwrap();
    if plans.is_empty() {
        // A backend without a planner (memory) has nothing to check.
        return;
    }
    let named: Vec<&str> = plans.iter().map(|p| p.query.as_str()).collect();
    for query in EXPLAINED {
        assert!(named.contains(query), "{query} is not explained: {named:?}");
    }
    let scans: Vec<String> = plans
        .iter()
        .filter(|p| p.plan.is_empty() || !p.scans.is_empty())
        .map(|p| format!("{}: {:?}\n  {}", p.query, p.plan, p.sql))
        .collect();
    assert!(scans.is_empty(), "reads that scan:\n{}", scans.join("\n"));
}
