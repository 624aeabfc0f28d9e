//! Conformance: several engine nodes on one store. Leases expire, each claim (a dead node's
//! case, a due timer) has one winner however many nodes race for it, a stale fence is refused
//! with nothing stored, and idempotency keys stay unique under racing commits.

use std::collections::BTreeSet;
use std::sync::Arc;

use knhk_core::{CaseId, CaseStatus, EventKind, Timestamp};
use knhk_store::{Change, Commit, Error, Fencing, NodeRecord, Orphans, Store};
use serde_json::json;

use crate::fixtures::*;

fn at(ms: i64) -> Timestamp {
    Timestamp(ms)
}

/// Stores case `n`, created at 1,000 by the node `owner` (its row owned by it when
/// `in_flight`), and returns its record.
async fn owned_case(
    s: &dyn Store,
    n: u128,
    owner: Option<u64>,
    in_flight: bool,
) -> knhk_store::CaseRecord {
    let mut record = case(n, workflow_id(1), CaseStatus::Running, 1_000 + n as i64);
    record.in_flight = in_flight;
    record.owner = owner.filter(|_| in_flight);
    let mut c = first_commit(
        record,
        vec![event(
            1,
            EventKind::CaseCreated {
                workflow: "w".to_owned(),
                data: Default::default(),
            },
        )],
    );
    c.fencing = owner.map(|node| Fencing {
        node,
        owned_by: None,
    });
    let stored = c.case.clone();
    s.commit(c).await.unwrap();
    stored
}

pub async fn node_leases_are_renewed_until_they_expire(s: Arc<dyn Store>) {
    let a = s
        .register_node("host-a/1", at(1_000), at(2_000))
        .await
        .unwrap();
    let b = s
        .register_node("host-b/2", at(1_100), at(3_000))
        .await
        .unwrap();
    assert!(b > a, "fencing tokens grow: {a} then {b}");
    assert_eq!(
        s.nodes().await.unwrap(),
        vec![
            NodeRecord {
                fence: a,
                name: "host-a/1".to_owned(),
                started_at: at(1_000),
                expires_at: at(2_000),
            },
            NodeRecord {
                fence: b,
                name: "host-b/2".to_owned(),
                started_at: at(1_100),
                expires_at: at(3_000),
            },
        ]
    );
    // Renewed while live.
    assert!(s.renew_lease(a, at(1_999), at(2_999)).await.unwrap());
    assert_eq!(s.nodes().await.unwrap()[0].expires_at, at(2_999));
    // Expired at its expiry: no renewal, nothing changes; the node must register again.
    assert!(!s.renew_lease(a, at(2_999), at(4_000)).await.unwrap());
    assert_eq!(s.nodes().await.unwrap()[0].expires_at, at(2_999));
    // A node leaves by ending its lease now.
    assert!(s.renew_lease(b, at(1_500), at(1_500)).await.unwrap());
    assert!(!s.renew_lease(b, at(1_500), at(9_000)).await.unwrap());
    // A token nobody holds is no lease.
    assert!(!s.renew_lease(b + 100, at(0), at(9_000)).await.unwrap());
    // A node registered again gets a new token, never an old one.
    let a2 = s
        .register_node("host-a/1", at(5_000), at(6_000))
        .await
        .unwrap();
    assert!(a2 > b);
    assert_eq!(s.nodes().await.unwrap().len(), 3);
}

pub async fn one_node_claims_each_case_of_a_dead_node(s: Arc<dyn Store>) {
    let a = s.register_node("a", at(0), at(2_000)).await.unwrap();
    let b = s.register_node("b", at(0), at(10_000)).await.unwrap();
    let c = s.register_node("c", at(0), at(10_000)).await.unwrap();
    let orphan = owned_case(s.as_ref(), 1, Some(a), true).await;
    let _waiting = owned_case(s.as_ref(), 2, Some(a), false).await;
    let unowned = owned_case(s.as_ref(), 3, None, true).await;
    let _live = owned_case(s.as_ref(), 4, Some(b), true).await;

    // While A's lease runs, nothing of it is claimed.
    assert_eq!(
        s.claim_cases(b, at(1_999), Orphans::OfDeadNodes, 10)
            .await
            .unwrap(),
        Vec::<CaseId>::new()
    );
    // Once it expired, B and C race for its case: one wins it.
    let race = |fence: u64| {
        let s = Arc::clone(&s);
        tokio::spawn(async move {
            s.claim_cases(fence, at(2_000), Orphans::OfDeadNodes, 10)
                .await
                .unwrap()
        })
    };
    let (won_b, won_c) = (race(b), race(c));
    let (won_b, won_c) = (won_b.await.unwrap(), won_c.await.unwrap());
    let mut all = won_b.clone();
    all.extend(won_c.clone());
    assert_eq!(all, vec![orphan.id], "b won {won_b:?}, c won {won_c:?}");
    let winner = if won_b.is_empty() { c } else { b };
    let claimed = s.case(orphan.id).await.unwrap().unwrap();
    assert_eq!(claimed.owner, Some(winner));
    // A claim changes the owner only: not the version, not the history.
    assert_eq!(
        knhk_store::CaseRecord {
            owner: orphan.owner,
            ..claimed
        },
        orphan
    );
    // Claimed once: the next sweep finds nothing; the unowned case only a starting node takes.
    assert_eq!(
        s.claim_cases(b, at(2_001), Orphans::OfDeadNodes, 10)
            .await
            .unwrap(),
        Vec::<CaseId>::new()
    );
    assert_eq!(
        s.claim_cases(c, at(2_001), Orphans::AlsoUnowned, 10)
            .await
            .unwrap(),
        vec![unowned.id]
    );
    assert_eq!(s.case(unowned.id).await.unwrap().unwrap().owner, Some(c));
    // A node whose own lease expired claims nothing.
    match s.claim_cases(a, at(2_001), Orphans::AlsoUnowned, 10).await {
        Err(Error::LeaseExpired { fence }) => assert_eq!(fence, a),
        other => panic!("expected an expired lease, got {other:?}"),
    }
}

pub async fn racing_sweeps_claim_every_case_once(s: Arc<dyn Store>) {
    let dead = s.register_node("dead", at(0), at(5_000)).await.unwrap();
    let mut ids = BTreeSet::new();
    for n in 0..24u128 {
        ids.insert(owned_case(s.as_ref(), 100 + n, Some(dead), true).await.id);
    }
    let mut sweeps = Vec::new();
    for name in ["b", "c", "d"] {
        let fence = s.register_node(name, at(0), at(10_000)).await.unwrap();
        let s = Arc::clone(&s);
        sweeps.push(tokio::spawn(async move {
            let mut won = Vec::new();
            loop {
                let batch = s
                    .claim_cases(fence, at(6_000), Orphans::OfDeadNodes, 5)
                    .await
                    .unwrap();
                if batch.is_empty() {
                    return (fence, won);
                }
                won.extend(batch);
            }
        }));
    }
    let mut claimed = Vec::new();
    for sweep in sweeps {
        let (fence, won) = sweep.await.unwrap();
        for id in &won {
            assert_eq!(s.case(*id).await.unwrap().unwrap().owner, Some(fence));
        }
        claimed.extend(won);
    }
    claimed.sort_unstable();
    let unique: BTreeSet<CaseId> = claimed.iter().copied().collect();
    assert_eq!(unique.len(), claimed.len(), "a case claimed twice");
    assert_eq!(unique, ids);
}

pub async fn one_node_claims_each_due_timer(s: Arc<dyn Store>) {
    let b = s.register_node("b", at(0), at(100_000)).await.unwrap();
    let c = s.register_node("c", at(0), at(100_000)).await.unwrap();
    let case = create_case(s.as_ref(), 1, workflow_id(1), CaseStatus::Running, 1).await;
    let mut step = next_step(&case, vec![]);
    step.timers = vec![
        put(timer(1, case.id, 100)),
        put(timer(2, case.id, 200)),
        put(timer(3, case.id, 5_000)),
    ];
    let case = step.case.clone();
    s.commit(step).await.unwrap();

    let race = |fence: u64| {
        let s = Arc::clone(&s);
        tokio::spawn(async move {
            s.claim_due_timers(fence, at(300), at(1_300), 10)
                .await
                .unwrap()
        })
    };
    let (won_b, won_c) = (race(b), race(c));
    let (won_b, won_c) = (won_b.await.unwrap(), won_c.await.unwrap());
    let mut all: Vec<_> = won_b.iter().chain(&won_c).map(|t| t.id).collect();
    all.sort_unstable();
    assert_eq!(
        all,
        vec![timer_id(1), timer_id(2)],
        "b won {won_b:?}, c won {won_c:?}"
    );
    // Earliest first, as stored.
    for won in [&won_b, &won_c] {
        let times: Vec<_> = won.iter().map(|t| t.fires_at).collect();
        assert!(times.windows(2).all(|w| w[0] <= w[1]));
    }
    // While the claims run, nobody else takes them; the timer not due stays.
    assert_eq!(
        s.claim_due_timers(c, at(1_299), at(2_000), 10)
            .await
            .unwrap(),
        vec![]
    );
    // The step that fires timer 1 removes it; timer 2's claim ends unfired (its node died),
    // and another node claims it again.
    let mut fired = next_step(&case, vec![]);
    fired.timers = vec![Change::Delete(timer_id(1))];
    s.commit(fired).await.unwrap();
    assert_eq!(
        s.claim_due_timers(c, at(1_300), at(2_300), 10)
            .await
            .unwrap(),
        vec![timer(2, case.id, 200)]
    );
    // A limit is kept.
    assert_eq!(
        s.claim_due_timers(b, at(9_000), at(9_500), 1)
            .await
            .unwrap(),
        vec![timer(2, case.id, 200)]
    );
    // A node whose lease expired claims nothing.
    match s.claim_due_timers(b, at(100_000), at(101_000), 10).await {
        Err(Error::LeaseExpired { fence }) => assert_eq!(fence, b),
        other => panic!("expected an expired lease, got {other:?}"),
    }
}

/// Returns the next step of `case` feeding back a result, with `fencing`, adding a work item
/// and an idempotency key so that a refused commit can be seen to store none of them.
fn fenced_step(case: &knhk_store::CaseRecord, fencing: Fencing) -> Commit {
    let mut step = next_step(
        case,
        vec![EventKind::DataUpdated {
            changes: data(&[("result", json!(1))]),
        }],
    );
    step.work_items = vec![put(work_item(9, case.id, &["clerk"], None, 50))];
    step.idempotency = Some(idempotency("fenced", 50));
    step.fencing = Some(fencing);
    step
}

/// Checks that nothing of a refused [`fenced_step`] was stored.
async fn assert_unchanged(s: &dyn Store, claimed: &knhk_store::CaseRecord) {
    assert_eq!(s.case(claimed.id).await.unwrap().as_ref(), Some(claimed));
    assert_eq!(s.events(claimed.id, 0).await.unwrap().len(), 1);
    assert_eq!(s.work_item(item_id(9)).await.unwrap(), None);
    assert_eq!(s.idempotency("fenced").await.unwrap(), None);
}

pub async fn a_stale_fence_is_refused_and_nothing_stored(s: Arc<dyn Store>) {
    let a = s.register_node("a", at(0), at(2_000)).await.unwrap();
    let b = s.register_node("b", at(0), at(100_000)).await.unwrap();
    let case = owned_case(s.as_ref(), 1, Some(a), true).await;
    assert_eq!(case.owner, Some(a));
    // A dies; B claims its case.
    assert_eq!(
        s.claim_cases(b, at(3_000), Orphans::OfDeadNodes, 10)
            .await
            .unwrap(),
        vec![case.id]
    );
    let claimed = s.case(case.id).await.unwrap().unwrap();

    // A's late result, committed under its expired lease: refused.
    let mut late = fenced_step(
        &case,
        Fencing {
            node: a,
            owned_by: Some(a),
        },
    );
    late.case.updated_at = at(3_100);
    match s.commit(late).await {
        Err(Error::LeaseExpired { fence }) => assert_eq!(fence, a),
        other => panic!("expected an expired lease, got {other:?}"),
    }
    assert_unchanged(s.as_ref(), &claimed).await;

    // A registered again is live, but its old work belongs to B now: the fence is stale.
    let a2 = s.register_node("a", at(3_200), at(100_000)).await.unwrap();
    let mut stale = fenced_step(
        &case,
        Fencing {
            node: a2,
            owned_by: Some(a),
        },
    );
    stale.case.updated_at = at(3_300);
    match s.commit(stale).await {
        Err(e @ Error::Fenced { .. }) => {
            let Error::Fenced {
                case: id,
                fence,
                owner,
            } = &e
            else {
                unreachable!()
            };
            assert_eq!((*id, *fence, *owner), (case.id, a, Some(b)));
            assert_eq!(
                e.to_string(),
                format!(
                    "case {} is no longer owned under fencing token {a} (owner now Some({b}))",
                    case.id
                )
            );
        }
        other => panic!("expected a stale fence, got {other:?}"),
    }
    assert_unchanged(s.as_ref(), &claimed).await;

    // The owner's result is taken, and becomes the row's owner as the engine writes it.
    let mut owned = fenced_step(
        &case,
        Fencing {
            node: b,
            owned_by: Some(b),
        },
    );
    owned.case.updated_at = at(3_400);
    owned.case.owner = Some(b);
    let after = owned.case.clone();
    s.commit(owned).await.unwrap();
    assert_eq!(s.case(case.id).await.unwrap(), Some(after));
    assert!(s.work_item(item_id(9)).await.unwrap().is_some());
}

pub async fn racing_idempotency_keys_have_one_winner(s: Arc<dyn Store>) {
    let tasks: Vec<_> = (0..16u128)
        .map(|n| {
            let s = Arc::clone(&s);
            tokio::spawn(async move {
                let mut c = first_commit(
                    case(200 + n, workflow_id(1), CaseStatus::Running, 1),
                    vec![event(
                        1,
                        EventKind::CaseCreated {
                            workflow: "w".to_owned(),
                            data: Default::default(),
                        },
                    )],
                );
                c.idempotency = Some(idempotency("create-once", 7));
                (case_id(200 + n), s.commit(c).await)
            })
        })
        .collect();
    let mut winners = Vec::new();
    for t in tasks {
        match t.await.unwrap() {
            (id, Ok(())) => winners.push(id),
            (_, Err(Error::DuplicateKey(key))) => assert_eq!(key, "create-once"),
            (_, other) => panic!("unexpected outcome {other:?}"),
        }
    }
    assert_eq!(winners.len(), 1, "winners: {winners:?}");
    for n in 0..16u128 {
        let stored = s.case(case_id(200 + n)).await.unwrap().is_some();
        assert_eq!(stored, winners[0] == case_id(200 + n));
    }
}
