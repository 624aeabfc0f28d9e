use std::collections::{BTreeMap, HashMap, HashSet};

use knhk_core::{EventKind, Timestamp};
use serde_json::Map;

use super::*;
use crate::canonical::event_leaf;
use crate::merkle::root_of;
use crate::tiles::{LeafRef, TILE_WIDTH, Tail};

const WIDTH: u64 = TILE_WIDTH as u64;

fn case(n: u128) -> CaseId {
    CaseId(uuid::Uuid::from_u128(n))
}

fn event(seq: u64, n: u64) -> Event {
    Event {
        seq,
        time: Timestamp(1_700_000_000_000 + n as i64),
        kind: EventKind::CaseCreated {
            workflow: format!("w{n}"),
            data: Map::new(),
        },
    }
}

/// A log in memory, as a store would hold it, that tests then damage.
#[derive(Clone, Default)]
struct MemLog {
    events: BTreeMap<(CaseId, u64), Event>,
    leaf_of: HashMap<(CaseId, u64), u64>,
    tiles: HashMap<TileId, Tile>,
    size: u64,
    root: Hash,
    checkpoints: Vec<StoredCheckpoint>,
    unreadable: HashSet<(CaseId, u64)>,
    /// The leaf hashes in order, to compute roots.
    hashes: Vec<Hash>,
    tail: Tail,
    reads: u64,
}

impl MemLog {
    /// A log of `n` events over `cases` cases, taken round robin (so that runs interleave).
    fn new(n: u64, cases: u128) -> MemLog {
        let mut log = MemLog::default();
        let mut next_seq: HashMap<CaseId, u64> = HashMap::new();
        let mut leaves = Vec::new();
        for i in 0..n {
            let c = case(u128::from(i) % cases + 1);
            let seq = next_seq.entry(c).or_insert(0);
            *seq += 1;
            let e = event(*seq, i);
            leaves.push((LeafRef { case: c, seq: *seq }, event_leaf(c, &e).unwrap()));
            log.events.insert((c, *seq), e);
            log.leaf_of.insert((c, *seq), i);
        }
        log.append(&leaves);
        log
    }

    fn append(&mut self, leaves: &[(LeafRef, Hash)]) {
        for chunk in leaves.chunks(97) {
            for t in self.tail.append(chunk) {
                self.tiles.insert(t.id, t);
            }
        }
        self.hashes.extend(leaves.iter().map(|l| l.1));
        self.size = self.tail.size();
        self.root = self.tail.root();
    }

    /// Stores a checkpoint of the tree as it is now (notes unsigned: no key in these tests).
    fn checkpoint(&mut self) {
        self.checkpoints.push(StoredCheckpoint {
            size: self.size,
            root: self.root,
            note: format!("test\n{}\n{}\n", self.size, b64(&self.root)),
        });
    }

    /// Rebuilds every tile and the head from `hashes` and the leaves' events, as one who
    /// rewrote the tree after changing events would.
    fn rebuild(&mut self, size: u64) {
        let mut refs: Vec<(LeafRef, Hash)> = Vec::new();
        for i in 0..size {
            let id = TileId {
                level: 0,
                index: i / WIDTH,
            };
            let r = self.tiles[&id].leaves[(i % WIDTH) as usize];
            let h = match self.events.get(&(r.case, r.seq)) {
                Some(e) => event_leaf(r.case, e).unwrap(),
                None => self.hashes[i as usize],
            };
            refs.push((r, h));
        }
        let checkpoints = std::mem::take(&mut self.checkpoints);
        let events = std::mem::take(&mut self.events);
        let leaf_of = std::mem::take(&mut self.leaf_of);
        *self = MemLog {
            events,
            leaf_of,
            checkpoints,
            ..MemLog::default()
        };
        self.append(&refs);
    }

    fn leaf(&self, i: u64) -> LeafRef {
        self.tiles[&TileId {
            level: 0,
            index: i / WIDTH,
        }]
            .leaves[(i % WIDTH) as usize]
    }

    /// Changes the stored event of leaf `i` (its time, by a millisecond).
    fn change(&mut self, i: u64) -> LeafRef {
        let r = self.leaf(i);
        self.events.get_mut(&(r.case, r.seq)).unwrap().time.0 += 1;
        r
    }
}

impl Log for MemLog {
    fn head(&mut self) -> Result<(u64, Hash), LogError> {
        Ok((self.size, self.root))
    }

    fn tiles(&mut self, ids: &[TileId]) -> Result<Vec<Tile>, LogError> {
        Ok(ids
            .iter()
            .filter_map(|id| self.tiles.get(id).cloned())
            .collect())
    }

    fn events(
        &mut self,
        case: CaseId,
        after_seq: u64,
        limit: usize,
    ) -> Result<Vec<Event>, LogError> {
        self.reads += 1;
        let events: Vec<Event> = self
            .events
            .range((case, after_seq + 1)..=(case, u64::MAX))
            .take(limit)
            .map(|(_, e)| e.clone())
            .collect();
        if let Some(e) = events
            .iter()
            .find(|e| self.unreadable.contains(&(case, e.seq)))
        {
            return Err(LogError(format!("event {} does not decode", e.seq)));
        }
        Ok(events)
    }

    fn checkpoints(&mut self) -> Result<Vec<StoredCheckpoint>, LogError> {
        Ok(self.checkpoints.clone())
    }

    fn case_ids(&mut self) -> Result<Vec<CaseId>, LogError> {
        let mut ids: Vec<CaseId> = self.events.keys().map(|k| k.0).collect();
        ids.dedup();
        Ok(ids)
    }

    fn event_leaf(&mut self, case: CaseId, seq: u64) -> Result<Option<u64>, LogError> {
        Ok(self.leaf_of.get(&(case, seq)).copied())
    }
}

fn run(log: &mut MemLog) -> Report {
    run_with(log, &[], &Options::default())
}

fn run_with(log: &mut MemLog, anchors: &[Anchor], options: &Options) -> Report {
    verify(log, None, anchors, options, &mut |_| {}).unwrap()
}

fn first(report: &Report) -> String {
    report
        .problems
        .first()
        .map(ToString::to_string)
        .unwrap_or_default()
}

#[test]
fn an_untouched_log_verifies_and_is_counted() {
    let mut log = MemLog::new(1000, 7);
    log.checkpoint();
    let mut seen = Vec::new();
    let report = verify(
        &mut log,
        None,
        &[],
        &Options {
            progress_every: 300,
            ..Options::default()
        },
        &mut |p| seen.push(p.leaves),
    )
    .unwrap();
    assert!(report.is_clean(), "{:?}", report.problems);
    assert_eq!(report.size, 1000);
    assert_eq!(report.leaves, 1000);
    assert_eq!(report.events, 1000);
    assert_eq!(report.checkpoints, 1);
    assert_eq!(report.cases, 7);
    assert_eq!(report.cases_outside, 0);
    assert_eq!(report.root, root_of(&log.hashes));
    assert!(!report.signatures);
    // Progress after about every 300 leaves (at tile ends), and at the end.
    assert_eq!(seen, [512, 1000, 1000]);
    // One read per case per tile: the runs of consecutive events are read at once.
    assert_eq!(log.reads, 4 * 7 + 7, "and one per case after its last leaf");
}

#[test]
fn a_log_past_a_full_higher_tile_is_checked_to_its_higher_tiles() {
    let mut log = MemLog::new(70_000, 300);
    log.checkpoint();
    // The full tile 1/0 and the tail 1/1, each changed in one entry: nothing else is wrong.
    let tile = log.tiles.get_mut(&TileId { level: 1, index: 0 }).unwrap();
    tile.hashes[3][0] ^= 1;
    let tile = log.tiles.get_mut(&TileId { level: 1, index: 1 }).unwrap();
    tile.hashes[0][5] ^= 1;
    let report = run(&mut log);
    let problems: Vec<String> = report.problems.iter().map(ToString::to_string).collect();
    assert_eq!(
        problems,
        [
            "tile 1/0: entry 3 is not the head of leaves 768..1024 as the leaves make it: the \
             tile was changed",
            "tile 1/1: entry 0 is not the head of leaves 65536..65792 as the leaves make it: the \
             tile was changed"
        ]
    );
    assert_eq!(report.leaves, 70_000);
    assert_eq!(report.checkpoints, 1);
}

#[test]
fn a_changed_event_is_named_by_its_leaf_at_the_start_the_middle_and_the_end() {
    let log = MemLog::new(1000, 5);
    for i in [0, 500, 999] {
        let mut bad = log.clone();
        let r = bad.change(i);
        let report = run(&mut bad);
        assert_eq!(report.problems.len(), 1, "{:?}", report.problems);
        assert_eq!(
            first(&report),
            format!(
                "leaf {i} (case {} event {}): the stored event does not hash to its leaf: the \
                 event was changed",
                r.case, r.seq
            )
        );
    }
}

#[test]
fn a_deleted_event_an_unreadable_one_and_swapped_ones_are_named() {
    let log = MemLog::new(600, 3);
    let mut bad = log.clone();
    let r = bad.leaf(300);
    bad.events.remove(&(r.case, r.seq));
    assert_eq!(
        first(&run(&mut bad)),
        format!(
            "leaf 300 (case {} event {}): no such event: it was deleted",
            r.case, r.seq
        )
    );

    let mut bad = log.clone();
    let r = bad.leaf(301);
    bad.unreadable.insert((r.case, r.seq));
    let report = run(&mut bad);
    assert_eq!(report.problems.len(), 1, "{:?}", report.problems);
    assert_eq!(
        first(&report),
        format!(
            "leaf 301 (case {} event {}): the stored event cannot be read (event {} does not \
             decode): it was changed",
            r.case, r.seq, r.seq
        )
    );

    let mut bad = log.clone();
    let (a, b) = (bad.leaf(10), bad.leaf(400));
    let ea = bad.events[&(a.case, a.seq)].kind.clone();
    let eb = bad.events[&(b.case, b.seq)].kind.clone();
    bad.events.get_mut(&(a.case, a.seq)).unwrap().kind = eb;
    bad.events.get_mut(&(b.case, b.seq)).unwrap().kind = ea;
    let report = run(&mut bad);
    let places: Vec<String> = report
        .problems
        .iter()
        .map(|p| p.place.to_string())
        .collect();
    assert_eq!(
        places,
        [
            format!("leaf 10 (case {} event {})", a.case, a.seq),
            format!("leaf 400 (case {} event {})", b.case, b.seq),
        ]
    );
}

#[test]
fn events_rewritten_with_their_tree_are_caught_by_the_first_signed_root_after_them() {
    let mut log = MemLog::new(300, 4);
    log.checkpoint();
    let mut more = MemLog::new(900, 4);
    more.checkpoints = log.checkpoints.clone();
    more.checkpoint();
    let mut log = more;
    log.change(450);
    log.rebuild(900);
    let report = run(&mut log);
    assert_eq!(report.problems.len(), 1, "{:?}", report.problems);
    assert!(
        first(&report).starts_with("checkpoint 900: it signs the root "),
        "{}",
        first(&report)
    );
    assert!(
        first(&report).ends_with(
            "a leaf after 300 (the last signed size that holds) was changed after it was signed"
        ),
        "{}",
        first(&report)
    );
}

#[test]
fn a_truncated_log_is_named_by_its_events_and_its_checkpoints() {
    let mut log = MemLog::new(800, 4);
    log.checkpoint();
    // The tree cut back to 512 leaves (its tiles too); the events stay.
    log.rebuild(512);
    log.tiles.retain(|id, _| !(id.level == 0 && id.index >= 2));
    let report = run(&mut log);
    let problems: Vec<String> = report.problems.iter().map(ToString::to_string).collect();
    assert_eq!(
        problems[0],
        "checkpoint 800: it signs a tree of 800 leaves, the log holds 512: the log was truncated"
    );
    let r = MemLog::new(800, 4).leaf(512);
    assert_eq!(
        problems[1],
        format!(
            "case {} event {}: is in no leaf, though the case's event {} is (leaf 508): its leaf \
             512 is past the log's 512 leaves: the log was truncated",
            r.case,
            r.seq,
            r.seq - 1
        )
    );
    assert_eq!(problems.len(), 5, "one per case, and the checkpoint");
}

#[test]
fn a_lowered_head_and_a_missing_tile_are_named() {
    let mut log = MemLog::new(600, 2);
    log.size = 300;
    let report = run(&mut log);
    assert_eq!(
        first(&report),
        "tile 0/1: holds 256 leaves, a tree of 300 leaves has 44 there"
    );
    let mut log = MemLog::new(600, 2);
    log.size = 512;
    log.root = root_of(&log.hashes[..512]);
    let report = run(&mut log);
    assert_eq!(
        first(&report),
        "tile 0/2: holds 88 leaves past the tree's size 512: the head was lowered (the log \
         truncated)"
    );
    let mut log = MemLog::new(600, 2);
    log.tiles.remove(&TileId { level: 0, index: 1 });
    let report = run(&mut log);
    assert_eq!(
        first(&report),
        "tile 0/1: is missing: leaves 256..512 cannot be checked"
    );
    assert_eq!(report.leaves, 256);
}

#[test]
fn a_changed_head_and_a_leaf_named_twice_are_named() {
    let mut log = MemLog::new(300, 2);
    log.root[0] ^= 1;
    let report = run(&mut log);
    assert!(
        first(&report).starts_with("the tree head: its root "),
        "{}",
        first(&report)
    );
    let mut log = MemLog::new(300, 2);
    let twice = log.leaf(4);
    let tile = log.tiles.get_mut(&TileId { level: 0, index: 0 }).unwrap();
    tile.leaves[6] = twice;
    tile.hashes[6] = tile.hashes[4];
    log.rebuild(300);
    let report = run(&mut log);
    assert_eq!(
        first(&report),
        format!(
            "leaf 6 (case {} event {}): the case's event {} is leaf 4 already: the log names the \
             case's events out of order, or one twice",
            twice.case, twice.seq, twice.seq
        )
    );
}

#[test]
fn the_anchor_chain_is_held_to_its_parents_sizes_and_the_tree() {
    let mut log = MemLog::new(200, 2);
    log.checkpoint();
    let mut grown = MemLog::new(500, 2);
    grown.checkpoints = log.checkpoints.clone();
    grown.checkpoint();
    let mut log = grown;
    let anchors = vec![
        Anchor {
            commit: "a1".to_owned(),
            parents: Vec::new(),
            note: log.checkpoints[0].note.clone(),
        },
        Anchor {
            commit: "a2".to_owned(),
            parents: vec!["a1".to_owned()],
            note: log.checkpoints[1].note.clone(),
        },
    ];
    let report = run_with(&mut log, &anchors, &Options::default());
    assert!(report.is_clean(), "{:?}", report.problems);
    assert_eq!(report.anchors, 2);

    let mut rewritten = anchors.clone();
    rewritten[1].parents = vec!["a0".to_owned()];
    assert_eq!(
        first(&run_with(&mut log, &rewritten, &Options::default())),
        "anchor commit a2: its parents are [a0], not the anchor before it, a1: the chain was \
         rewritten"
    );
    let mut backwards = anchors.clone();
    backwards.swap(0, 1);
    backwards[0].parents = Vec::new();
    backwards[1].parents = vec!["a2".to_owned()];
    assert_eq!(
        first(&run_with(&mut log, &backwards, &Options::default())),
        "anchor commit a1: anchors a tree of 200 leaves after one of 500: the anchor went \
         backwards"
    );
    let mut unknown = anchors;
    unknown[1].note.push('x');
    assert_eq!(
        first(&run_with(&mut log, &unknown, &Options::default())),
        "anchor commit a2: its note is none of the stored checkpoints, and without the log's \
         key it cannot be checked"
    );
}

#[test]
fn verification_stops_after_the_most_problems_asked_for() {
    let mut log = MemLog::new(1000, 3);
    for i in 0..20 {
        log.change(i * 40);
    }
    let report = run_with(
        &mut log,
        &[],
        &Options {
            max_problems: 5,
            ..Options::default()
        },
    );
    assert_eq!(report.problems.len(), 5);
    assert!(report.stopped);
    assert!(first(&report).starts_with("leaf 0 "));
}

fn signer() -> crate::note::Signer {
    crate::note::Signer::from_seed("example.com/log", [7; 32]).unwrap()
}

/// Signs a checkpoint of the log as it is now.
fn sign(log: &mut MemLog, signer: &crate::note::Signer) {
    let note = signer
        .sign(&crate::note::Checkpoint {
            origin: signer.name().to_owned(),
            size: log.size,
            root: log.root,
            extensions: Vec::new(),
        })
        .unwrap();
    log.checkpoints.push(StoredCheckpoint {
        size: log.size,
        root: log.root,
        note,
    });
}

fn run_signed(log: &mut MemLog, key: &KeyVerifier, anchors: &[Anchor]) -> Report {
    verify(log, Some(key), anchors, &Options::default(), &mut |_| {}).unwrap()
}

#[test]
fn signed_checkpoints_and_anchors_verify_and_an_altered_signature_is_named() {
    let signer = signer();
    let key = signer.verifier();
    let mut log = MemLog::new(100, 3);
    sign(&mut log, &signer);
    let mut grown = MemLog::new(700, 3);
    grown.checkpoints = log.checkpoints.clone();
    sign(&mut grown, &signer);
    let mut log = grown;
    let anchors = vec![
        Anchor {
            commit: "c1".to_owned(),
            parents: Vec::new(),
            note: log.checkpoints[0].note.clone(),
        },
        Anchor {
            commit: "c2".to_owned(),
            parents: vec!["c1".to_owned()],
            note: log.checkpoints[1].note.clone(),
        },
    ];
    let report = run_signed(&mut log, &key, &anchors);
    assert!(report.is_clean(), "{:?}", report.problems);
    assert!(report.signatures);
    assert_eq!((report.checkpoints, report.anchors), (2, 2));

    // One character of the first checkpoint's signature changed.
    let mut bad = log.clone();
    let note = &mut bad.checkpoints[0].note;
    let at = note.len() - 5;
    let c = if note.as_bytes()[at] == b'A' {
        "B"
    } else {
        "A"
    };
    note.replace_range(at..at + 1, c);
    let report = run_signed(&mut bad, &key, &anchors);
    assert_eq!(report.problems.len(), 1, "{:?}", report.problems);
    assert!(
        first(&report)
            .starts_with("checkpoint 100: its note does not verify with the key example.com/log: "),
        "{}",
        first(&report)
    );
    assert!(first(&report).ends_with(": the checkpoint was changed"));

    // The stored record's root is not the one its note signs.
    let mut bad = log.clone();
    bad.checkpoints[1].root[0] ^= 1;
    let report = run_signed(&mut bad, &key, &anchors);
    assert!(
        first(&report).starts_with("checkpoint 700: the record says size 700 root "),
        "{}",
        first(&report)
    );

    // An anchor commit rewritten with a note signed by another key.
    let other = crate::note::Signer::from_seed("example.com/log", [8; 32]).unwrap();
    let mut forged = anchors.clone();
    forged[1].note = other
        .sign(&crate::note::Checkpoint {
            origin: "example.com/log".to_owned(),
            size: 700,
            root: [0; 32],
            extensions: Vec::new(),
        })
        .unwrap();
    let report = run_signed(&mut log, &key, &forged);
    assert_eq!(report.problems.len(), 1, "{:?}", report.problems);
    assert!(
        first(&report).starts_with("anchor commit c2: its note does not verify with the key"),
        "{}",
        first(&report)
    );
    assert!(first(&report).ends_with(": the commit was rewritten"));

    // A checkpoint signed over a changed tree: the signed root is not the log's.
    let mut bad = log.clone();
    bad.change(300);
    bad.rebuild(700);
    let report = run_signed(&mut bad, &key, &[]);
    assert_eq!(report.problems.len(), 1, "{:?}", report.problems);
    assert!(
        first(&report).starts_with("checkpoint 700: it signs the root "),
        "{}",
        first(&report)
    );
}

proptest::proptest! {
    #![proptest_config(proptest::prelude::ProptestConfig::with_cases(48))]

    /// Any one event changed, deleted or unreadable in a log of any size and any number of
    /// interleaved cases is the one problem found, named by its leaf; changed together with
    /// its tree, it is caught by the signed root.
    #[test]
    fn any_one_damaged_event_is_the_one_problem_named(
        n in 1u64..700,
        cases in 1u128..20,
        pick in proptest::prelude::any::<u64>(),
        how in 0u8..4,
    ) {
        let mut log = MemLog::new(n, cases);
        log.checkpoint();
        let i = pick % n;
        let r = log.leaf(i);
        match how {
            0 => {
                log.change(i);
            }
            1 => {
                log.events.remove(&(r.case, r.seq));
            }
            2 => {
                log.unreadable.insert((r.case, r.seq));
            }
            _ => {
                log.change(i);
                log.rebuild(n);
            }
        }
        let report = run(&mut log);
        proptest::prop_assert_eq!(report.problems.len(), 1, "{:?}", report.problems);
        let expected = if how == 3 {
            format!("checkpoint {n}: it signs the root ")
        } else {
            format!("leaf {i} (case {} event {}): ", r.case, r.seq)
        };
        proptest::prop_assert!(first(&report).starts_with(&expected), "{}", first(&report));
    }
}
