//! Conformance tests of the lockchain: the leaves of commits make one tree per store, kept in
//! tiles written with the events, and a refused commit leaves the tree as it was.

use std::collections::{BTreeSet, HashMap};
use std::sync::Arc;

use knhk_core::{CaseId, CaseStatus, EventKind, Timestamp};
use knhk_lockchain::merkle::{empty_root, leaf_hash, root_of};
use knhk_lockchain::tiles::TILE_WIDTH;
use knhk_lockchain::{Hash, LeafRef, NodeSource, Tail, TileId, TileSet};
use knhk_store::{CaseRecord, CheckpointRecord, Commit, Error, Fencing, Store, TreeHead};
use serde_json::json;

use crate::fixtures::*;

/// Returns the leaf hash the tests give event `seq` of `case`.
pub fn leaf_of(case: CaseId, seq: u64) -> Hash {
    leaf_hash(format!("{case}/{seq}").as_bytes())
}

/// Returns the commit with a leaf for each of its events.
pub fn with_leaves(mut c: Commit) -> Commit {
    c.leaves = c.events.iter().map(|e| leaf_of(c.case.id, e.seq)).collect();
    c
}

/// Returns the ids of every tile a tree of `size` leaves has stored: the full tiles and the
/// tails of each level.
pub fn all_tile_ids(size: u64) -> Vec<TileId> {
    let mut ids = Vec::new();
    let mut level = 0u8;
    loop {
        let nodes = size >> (8 * u32::from(level));
        if nodes == 0 {
            break;
        }
        for index in 0..nodes.div_ceil(TILE_WIDTH as u64) {
            ids.push(TileId { level, index });
        }
        level += 1;
    }
    ids
}

/// Checks the stored tree against the events the tests committed (`events`: each event with
/// a leaf): every event has a leaf index, the indexes are `0..size`, the head is the root of
/// the leaf hashes in leaf order, the level-0 tiles hold those hashes and name those events,
/// every tile answers for its subtrees, and the tails take the tree up again. Returns the
/// head.
pub async fn assert_tree(s: &dyn Store, events: &[(CaseId, u64)]) -> TreeHead {
    let head = s.lockchain_head().await.unwrap();
    assert_eq!(head.size, events.len() as u64, "one leaf per event");
    let mut by_leaf: Vec<Option<LeafRef>> = vec![None; events.len()];
    for &(case, seq) in events {
        let leaf = s
            .event_leaf(case, seq)
            .await
            .unwrap()
            .unwrap_or_else(|| panic!("event {seq} of {case} has no leaf"));
        let slot = by_leaf
            .get_mut(leaf as usize)
            .unwrap_or_else(|| panic!("leaf {leaf} is beyond the tree"));
        assert_eq!(*slot, None, "leaf {leaf} given twice");
        *slot = Some(LeafRef { case, seq });
    }
    let refs: Vec<LeafRef> = by_leaf.into_iter().map(Option::unwrap).collect();
    let hashes: Vec<Hash> = refs.iter().map(|l| leaf_of(l.case, l.seq)).collect();
    assert_eq!(
        head.root,
        root_of(&hashes),
        "the head is the root of the leaves"
    );

    let ids = all_tile_ids(head.size);
    let tiles = s.lockchain_tiles(&ids).await.unwrap();
    assert_eq!(
        tiles.iter().map(|t| t.id).collect::<Vec<_>>(),
        ids,
        "every tile is stored, in the order asked"
    );
    let level0: Vec<_> = tiles.iter().filter(|t| t.id.level == 0).collect();
    let stored: Vec<Hash> = level0.iter().flat_map(|t| t.hashes.clone()).collect();
    let named: Vec<LeafRef> = level0.iter().flat_map(|t| t.leaves.clone()).collect();
    assert_eq!(stored, hashes, "the level-0 tiles hold the leaves in order");
    assert_eq!(named, refs, "the level-0 tiles name each leaf's event");
    let set = TileSet::new(tiles);
    if head.size > 0 {
        assert_eq!(set.range_root(0, head.size).unwrap(), head.root);
    }
    let tails = s.lockchain_tiles(&Tail::tail_ids(head.size)).await.unwrap();
    let tail = Tail::from_tiles(head.size, tails).unwrap();
    assert_eq!(tail.root(), head.root, "the tails take the tree up again");
    head
}

/// Commits `steps` steps of one event each with leaves to each of `cases` cases (numbered
/// from `first`), all at once, and returns the events committed, creation events included.
pub async fn commit_with_leaves(
    s: &Arc<dyn Store>,
    first: u128,
    cases: u128,
    steps: u64,
) -> Vec<(CaseId, u64)> {
    let tasks: Vec<_> = (first..first + cases)
        .map(|n| {
            let s = Arc::clone(s);
            tokio::spawn(async move {
                let created = with_leaves(first_commit(
                    case(n, workflow_id(1), CaseStatus::Running, n as i64),
                    events_from(
                        1,
                        vec![
                            EventKind::CaseCreated {
                                workflow: "w".to_owned(),
                                data: data(&[]),
                            },
                            EventKind::TaskEnabled { task: task("a") },
                        ],
                    ),
                ));
                let mut c = created.case.clone();
                s.commit(created).await.unwrap();
                let mut done = vec![(c.id, 1), (c.id, 2)];
                for i in 0..steps {
                    let step = with_leaves(next_step(
                        &c,
                        vec![EventKind::DataUpdated {
                            changes: data(&[("i", json!(i))]),
                        }],
                    ));
                    c = step.case.clone();
                    s.commit(step).await.unwrap();
                    done.push((c.id, c.version));
                }
                done
            })
        })
        .collect();
    let mut all = Vec::new();
    for t in tasks {
        all.extend(t.await.unwrap());
    }
    all
}

pub async fn lockchain_leaves_make_one_tree_in_tiles(s: Arc<dyn Store>) {
    let empty = s.lockchain_head().await.unwrap();
    assert_eq!(
        empty,
        TreeHead {
            size: 0,
            root: empty_root()
        }
    );
    assert_eq!(s.lockchain_tiles(&all_tile_ids(1)).await.unwrap(), vec![]);

    // A first leaf, then enough concurrent steps to fill tiles in the middle of groups.
    let mut events = commit_with_leaves(&s, 1, 1, 0).await;
    let head = assert_tree(s.as_ref(), &events).await;
    assert_eq!(head.size, 2);
    assert_eq!(
        head.root,
        root_of(&[leaf_of(case_id(1), 1), leaf_of(case_id(1), 2)])
    );
    assert_eq!(s.event_leaf(case_id(1), 2).await.unwrap(), Some(1));
    assert_eq!(s.event_leaf(case_id(1), 3).await.unwrap(), None);
    assert_eq!(s.event_leaf(case_id(99), 1).await.unwrap(), None);

    events.extend(commit_with_leaves(&s, 2, 24, 12).await);
    let head = assert_tree(s.as_ref(), &events).await;
    assert_eq!(head.size, 2 + 24 * 14);

    // Commits without leaves leave the tree alone, and their events have none.
    let plain = create_case(s.as_ref(), 500, workflow_id(1), CaseStatus::Running, 1).await;
    assert_eq!(s.event_leaf(plain.id, 1).await.unwrap(), None);
    assert_eq!(s.lockchain_head().await.unwrap(), head);

    // Many cases at once, across a level-1 tile boundary.
    events.extend(commit_with_leaves(&s, 1_000, 40, 6).await);
    let head = assert_tree(s.as_ref(), &events).await;
    assert_eq!(head.size, 2 + 24 * 14 + 40 * 8);
}

pub async fn a_refused_commit_adds_no_leaf(s: Arc<dyn Store>) {
    let mut events = commit_with_leaves(&s, 1, 1, 1).await;
    let c = s.case(case_id(1)).await.unwrap().unwrap();
    let head = assert_tree(s.as_ref(), &events).await;

    // A conflict: the step is of an older version.
    let old = CaseRecord {
        version: 1,
        ..c.clone()
    };
    let stale = with_leaves(next_step(
        &old,
        vec![EventKind::TaskEnabled { task: task("x") }],
    ));
    assert!(matches!(s.commit(stale).await, Err(Error::Conflict { .. })));
    assert_eq!(s.lockchain_head().await.unwrap(), head);

    // A duplicate idempotency key.
    let mut keyed = with_leaves(next_step(
        &c,
        vec![EventKind::TaskEnabled { task: task("k") }],
    ));
    keyed.idempotency = Some(idempotency("key-1", 1));
    let c = keyed.case.clone();
    s.commit(keyed).await.unwrap();
    events.push((c.id, c.version));
    let head = assert_tree(s.as_ref(), &events).await;
    let mut again = with_leaves(next_step(
        &c,
        vec![EventKind::TaskEnabled { task: task("k") }],
    ));
    again.idempotency = Some(idempotency("key-1", 2));
    assert!(matches!(s.commit(again).await, Err(Error::DuplicateKey(_))));
    assert_eq!(s.lockchain_head().await.unwrap(), head);
    assert_eq!(s.event_leaf(c.id, c.version + 1).await.unwrap(), None);

    // A node whose lease has expired.
    let node = s
        .register_node("n", Timestamp(0), Timestamp(1))
        .await
        .unwrap();
    let mut fenced = with_leaves(next_step(
        &c,
        vec![EventKind::TaskEnabled { task: task("f") }],
    ));
    fenced.fencing = Some(Fencing {
        node,
        owned_by: None,
    });
    assert!(matches!(
        s.commit(fenced).await,
        Err(Error::LeaseExpired { .. })
    ));
    assert_eq!(s.lockchain_head().await.unwrap(), head);

    // Leaves that are not one per event: refused, naming the counts, nothing stored.
    let mut short = with_leaves(next_step(
        &c,
        vec![
            EventKind::TaskEnabled { task: task("s") },
            EventKind::TaskEnabled { task: task("t") },
        ],
    ));
    short.leaves.pop();
    match s.commit(short).await {
        Err(e @ Error::Lockchain(_)) => assert_eq!(
            e.to_string(),
            format!(
                "lockchain: the commit of case {} carries 1 leaves for 2 events",
                c.id
            )
        ),
        other => panic!("expected the leaves refused, got {other:?}"),
    }
    assert_eq!(s.case(c.id).await.unwrap().unwrap().version, c.version);
    assert_eq!(s.lockchain_head().await.unwrap(), head);

    // The tree goes on from where it stood.
    let next = with_leaves(next_step(
        &c,
        vec![EventKind::TaskEnabled { task: task("n") }],
    ));
    let c = next.case.clone();
    s.commit(next).await.unwrap();
    events.push((c.id, c.version));
    assert_tree(s.as_ref(), &events).await;
}

pub async fn refused_commits_among_a_group_add_no_leaf(s: Arc<dyn Store>) {
    // Racing steps of one case (one wins) among steps of other cases, all at once, so that
    // the refused ones are in the groups of accepted ones.
    let mut events = commit_with_leaves(&s, 1, 8, 0).await;
    let cases: Vec<_> = (1..=8u128).map(case_id).collect();
    let mut tasks = Vec::new();
    for round in 0..4u64 {
        for (i, id) in cases.iter().enumerate() {
            let c = s.case(*id).await.unwrap().unwrap();
            for racer in 0..4u64 {
                let s = Arc::clone(&s);
                let step = with_leaves(next_step(
                    &c,
                    vec![
                        EventKind::DataUpdated {
                            changes: data(&[("racer", json!(racer)), ("round", json!(round))]),
                        },
                        EventKind::TaskEnabled { task: task("b") },
                    ],
                ));
                tasks.push(tokio::spawn(async move {
                    let id = step.case.id;
                    let seqs: Vec<u64> = step.events.iter().map(|e| e.seq).collect();
                    (i, id, seqs, s.commit(step).await)
                }));
            }
        }
        let mut won = vec![0; cases.len()];
        for t in tasks.drain(..) {
            let (i, id, seqs, outcome) = t.await.unwrap();
            match outcome {
                Ok(()) => {
                    won[i] += 1;
                    events.extend(seqs.into_iter().map(|seq| (id, seq)));
                }
                Err(Error::Conflict { .. }) => {}
                Err(e) => panic!("unexpected refusal {e}"),
            }
        }
        assert_eq!(won, vec![1; cases.len()], "one winner per case");
    }
    assert_tree(s.as_ref(), &events).await;
    // Each case's history holds only its winners' events, each with its leaf.
    let mut count = HashMap::new();
    for (id, _) in &events {
        *count.entry(*id).or_insert(0u64) += 1;
    }
    for id in &cases {
        assert_eq!(s.events(*id, 0).await.unwrap().len() as u64, count[id]);
    }
}

pub async fn checkpoints_are_kept_once_per_size(s: Arc<dyn Store>) {
    assert_eq!(s.latest_checkpoint().await.unwrap(), None);
    assert_eq!(s.checkpoints(0, 10).await.unwrap(), vec![]);
    let cp = |size: u64, note: &str| CheckpointRecord {
        size,
        root: leaf_hash(&size.to_be_bytes()),
        note: format!("knhk\n{size}\n{note}\n"),
        at: Timestamp(1_700_000_000_000 + size as i64),
    };
    assert!(s.put_checkpoint(&cp(10, "a")).await.unwrap());
    assert!(s.put_checkpoint(&cp(3, "b")).await.unwrap());
    assert!(s.put_checkpoint(&cp(700, "c")).await.unwrap());
    // The same size again is left as it was.
    assert!(!s.put_checkpoint(&cp(10, "other")).await.unwrap());
    assert_eq!(s.latest_checkpoint().await.unwrap(), Some(cp(700, "c")));
    assert_eq!(
        s.checkpoints(0, 10).await.unwrap(),
        vec![cp(3, "b"), cp(10, "a"), cp(700, "c")]
    );
    assert_eq!(s.checkpoints(3, 1).await.unwrap(), vec![cp(10, "a")]);
    assert_eq!(s.checkpoints(700, 10).await.unwrap(), vec![]);
    assert_eq!(s.checkpoints(u64::MAX, 10).await.unwrap(), vec![]);
    let sizes: BTreeSet<u64> = s
        .checkpoints(0, 100)
        .await
        .unwrap()
        .into_iter()
        .map(|c| c.size)
        .collect();
    assert_eq!(sizes, BTreeSet::from([3, 10, 700]));
}
