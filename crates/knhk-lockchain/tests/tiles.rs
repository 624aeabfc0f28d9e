//! The tree in tiles, pushed at its edges: appends of nothing, one leaf at a time against one
//! batch, stored tiles that do not make up the tree, and tiles cut short.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use std::collections::BTreeMap;

use knhk_core::CaseId;
use knhk_lockchain::merkle::{Hash, NodeSource, ProofError, inclusion_proof, leaf_hash, root_of};
use knhk_lockchain::tiles::{Appended, LeafRef, Segment, TILE_WIDTH, Tail, Tile, TileId, TileSet};

fn leaves(from: u64, to: u64) -> Vec<(LeafRef, Hash)> {
    (from..to)
        .map(|i| {
            (
                LeafRef {
                    case: CaseId(uuid::Uuid::from_u64_pair(1, i)),
                    seq: i,
                },
                leaf_hash(&i.to_le_bytes()),
            )
        })
        .collect()
}

fn id(level: u8, index: u64) -> TileId {
    TileId { level, index }
}

/// Appends in batches, upserting every changed tile as a store does.
fn grow(batches: &[u64]) -> (Tail, BTreeMap<TileId, Tile>) {
    let mut tail = Tail::empty();
    let mut stored = BTreeMap::new();
    let mut at = 0;
    for &n in batches {
        for t in tail.append(&leaves(at, at + n)) {
            stored.insert(t.id, t);
        }
        at += n;
    }
    (tail, stored)
}

fn tails_of(stored: &BTreeMap<TileId, Tile>, size: u64) -> Vec<Tile> {
    Tail::tail_ids(size)
        .iter()
        .filter_map(|id| stored.get(id).cloned())
        .collect()
}

#[test]
fn appending_no_leaves_changes_nothing() {
    for size in [0u64, 1, 255, 256, 300, 65_536] {
        let (mut tail, _) = grow(&[size]);
        let before = tail.clone();
        assert_eq!(tail.append(&[]), Vec::<Tile>::new(), "at {size}");
        assert_eq!(tail, before, "at {size}");
        assert_eq!(tail.size(), size);
    }
    assert_eq!(Tail::empty().root(), knhk_lockchain::merkle::empty_root());
}

#[test]
fn one_leaf_at_a_time_stores_what_one_batch_stores() {
    let n = 256 * 256 + 3 * 256 + 7;
    let (one_batch, batch_tiles) = grow(&[n]);
    let (by_one, one_tiles) = grow(&vec![1; n as usize]);
    assert_eq!(by_one, one_batch);
    assert_eq!(one_tiles, batch_tiles);
    // Full tiles are whole; each level's entries are the heads of the full tiles below.
    let all: Vec<Hash> = leaves(0, n).into_iter().map(|l| l.1).collect();
    assert_eq!(one_batch.root(), root_of(&all));
    for (tid, tile) in &batch_tiles {
        assert!(tile.hashes.len() <= TILE_WIDTH, "{tid:?}");
        if tid.level == 0 {
            let first = tid.index * 256;
            let want = leaves(first, first + tile.hashes.len() as u64);
            assert_eq!(tile.leaves, want.iter().map(|l| l.0).collect::<Vec<_>>());
            assert_eq!(tile.hashes, want.iter().map(|l| l.1).collect::<Vec<_>>());
        } else {
            assert!(tile.leaves.is_empty(), "{tid:?} names events");
            for (i, entry) in tile.hashes.iter().enumerate() {
                let below = &batch_tiles[&id(tid.level - 1, tid.index * 256 + i as u64)];
                assert_eq!(below.hashes.len(), TILE_WIDTH, "{tid:?} entry {i}");
                assert_eq!(*entry, root_of(&below.hashes), "{tid:?} entry {i}");
            }
        }
    }
    // 259 full level-0 tiles and one of 7, a full level-1 tile and one of 3, one of 1 above.
    let count = |level| batch_tiles.keys().filter(|t| t.level == level).count();
    assert_eq!((count(0), count(1), count(2)), (260, 2, 1));
    assert_eq!(batch_tiles[&id(1, 1)].hashes.len(), 3);
    assert_eq!(batch_tiles[&id(2, 0)].hashes.len(), 1);
}

#[test]
fn a_tail_taken_up_from_its_tiles_appends_as_the_one_that_never_stopped() {
    let end = 65_600;
    let all = leaves(0, end);
    let mut through = Tail::empty();
    let mut stored = BTreeMap::new();
    let mut snapshots = Vec::new();
    let mut at = 0;
    for stop in [0u64, 257, 65_535, 65_536, 65_537, end] {
        for t in through.append(&all[at as usize..stop as usize]) {
            stored.insert(t.id, t);
        }
        at = stop;
        snapshots.push((stop, stored.clone()));
    }
    for (stop, stored_then) in snapshots {
        let mut again = Tail::from_tiles(stop, tails_of(&stored_then, stop)).unwrap();
        let mut stored_again = stored_then;
        for t in again.append(&all[stop as usize..]) {
            stored_again.insert(t.id, t);
        }
        assert_eq!(again, through, "stopped at {stop}");
        assert_eq!(stored_again, stored, "stopped at {stop}");
    }
}

#[test]
fn tail_ids_name_one_tile_a_level() {
    assert_eq!(Tail::tail_ids(0), vec![id(0, 0)]);
    assert_eq!(Tail::tail_ids(255), vec![id(0, 0)]);
    assert_eq!(Tail::tail_ids(256), vec![id(0, 1), id(1, 0)]);
    assert_eq!(Tail::tail_ids(65_536), vec![id(0, 256), id(1, 1), id(2, 0)]);
    let top = Tail::tail_ids(u64::MAX);
    assert_eq!(top.len(), 8);
    assert_eq!(top[7], id(7, 0));
    assert_eq!(top[0], id(0, u64::MAX >> 8));
}

#[test]
fn stored_tiles_that_do_not_make_up_the_tree_are_refused() {
    let (_, stored) = grow(&[65_536 + 300]);
    let size = 65_536 + 300;
    let good = tails_of(&stored, size);
    assert!(Tail::from_tiles(size, good.clone()).is_ok());
    let at = |level: u8| good.iter().position(|t| t.id.level == level).unwrap();

    // A level-0 tail missing, cut short or one too long.
    let mut tiles = good.clone();
    tiles.remove(at(0));
    let err = Tail::from_tiles(size, tiles).unwrap_err();
    assert_eq!(
        err.to_string(),
        "tile 0/257: holds 0 hashes, a tree of 65836 leaves has 44 there"
    );
    let mut tiles = good.clone();
    tiles[at(0)].hashes.pop();
    tiles[at(0)].leaves.pop();
    assert!(Tail::from_tiles(size, tiles).is_err());
    let mut tiles = good.clone();
    tiles[at(0)].hashes.push([7; 32]);
    let first = tiles[at(0)].leaves[0];
    tiles[at(0)].leaves.push(first);
    assert!(Tail::from_tiles(size, tiles).is_err());

    // Events that do not match the leaves.
    let mut tiles = good.clone();
    tiles[at(0)].leaves.pop();
    assert_eq!(
        Tail::from_tiles(size, tiles).unwrap_err().to_string(),
        "tile 0/257: names 43 events for 44 leaves"
    );

    // A level-1 or level-2 tail of the wrong size.
    for level in [1u8, 2] {
        let mut tiles = good.clone();
        tiles[at(level)].hashes.push([7; 32]);
        let err = Tail::from_tiles(size, tiles).unwrap_err();
        assert!(
            err.to_string().starts_with(&format!("tile {level}/")),
            "{err}"
        );
    }

    // A full tile is not taken for the tail: the tail's place stays empty.
    let mut tiles = good.clone();
    tiles.remove(at(0));
    tiles.push(stored[&id(0, 0)].clone());
    assert!(Tail::from_tiles(size, tiles).is_err());

    // Nor is the tail of another size.
    let (_, other) = grow(&[size - 1]);
    assert!(Tail::from_tiles(size, tails_of(&other, size - 1)).is_err());
    assert!(Tail::from_tiles(size - 1, good).is_err());
}

#[test]
fn a_tile_set_with_a_tile_cut_short_says_which_node_is_missing() {
    let (_, stored) = grow(&[600]);
    let mut tiles: Vec<Tile> = stored.values().cloned().collect();
    // Tile 0/1 loses its last 56 entries: leaves 456..512.
    let short = tiles.iter_mut().find(|t| t.id == id(0, 1)).unwrap();
    short.hashes.truncate(200);
    short.leaves.truncate(200);
    let set = TileSet::new(tiles);
    assert!(set.node(6, 6).is_ok(), "leaves 384..448 are all there");
    assert_eq!(
        set.node(6, 7),
        Err(ProofError::Missing {
            height: 6,
            index: 7
        })
    );
    // Leaf 0's proof reads tile 0/0 and the level-1 entry for leaves 256..512: both whole.
    assert!(inclusion_proof(&set, 0, 600).is_ok());
    // Leaf 500's first proof hash is leaf 501, which is gone.
    assert_eq!(
        inclusion_proof(&set, 500, 600),
        Err(ProofError::Missing {
            height: 0,
            index: 501
        })
    );
    // No tile at all for a level.
    let set = TileSet::new(stored.values().filter(|t| t.id.level == 0).cloned());
    assert_eq!(
        set.node(8, 0),
        Err(ProofError::Missing {
            height: 8,
            index: 0
        })
    );
}

/// Appends in batches as a store that writes segments does: each segment a row, a tile read
/// back by putting its rows together.
fn grow_in_segments(batches: &[u64]) -> (Tail, BTreeMap<TileId, Vec<Segment>>) {
    let mut tail = Tail::empty();
    let mut rows: BTreeMap<TileId, Vec<Segment>> = BTreeMap::new();
    let mut at = 0;
    for &n in batches {
        let appended = tail.append_segments(&leaves(at, at + n));
        for s in appended.segments {
            rows.entry(s.id).or_default().push(s);
        }
        for t in &appended.filled {
            assert_eq!(t.hashes.len(), TILE_WIDTH, "filled tile {:?}", t.id);
        }
        at += n;
    }
    (tail, rows)
}

#[test]
fn segments_put_back_together_are_the_tiles_a_whole_tile_store_keeps() {
    let batches = [1u64, 2, 253, 256, 257, 3000, 1, 65_536, 231, 7];
    let (whole_tail, whole) = grow(&batches);
    let (tail, rows) = grow_in_segments(&batches);
    assert_eq!(tail, whole_tail);
    assert_eq!(rows.len(), whole.len(), "the same tiles are touched");
    for (id, segments) in rows {
        let tile = Tile::from_segments(id, segments).unwrap().unwrap();
        assert_eq!(Some(&tile), whole.get(&id), "tile {id:?}");
    }
}

#[test]
fn a_segment_holds_only_the_entries_its_append_added() {
    let mut tail = Tail::empty();
    tail.append_segments(&leaves(0, 250));
    let appended = tail.append_segments(&leaves(250, 260));
    let starts: Vec<(TileId, usize, usize)> = appended
        .segments
        .iter()
        .map(|s| (s.id, s.start, s.hashes.len()))
        .collect();
    assert_eq!(
        starts,
        vec![(id(0, 0), 250, 6), (id(0, 1), 0, 4), (id(1, 0), 0, 1)]
    );
    assert_eq!(appended.segments[0].leaves.len(), 6);
    assert!(appended.segments[2].leaves.is_empty());
    assert_eq!(appended.filled.len(), 1);
    assert_eq!(appended.filled[0].id, id(0, 0));
    assert_eq!(tail.append_segments(&[]), Appended::default());
}

#[test]
fn segments_that_do_not_follow_each_other_are_refused_naming_the_tile() {
    let mut tail = Tail::empty();
    let first = tail.append_segments(&leaves(0, 10)).segments;
    let second = tail.append_segments(&leaves(10, 20)).segments;
    let gap = vec![first[0].clone(), second[0].clone(), second[0].clone()];
    let err = Tile::from_segments(id(0, 0), gap).unwrap_err();
    assert_eq!(
        err.to_string(),
        "tile 0/0: a segment starts at entry 10 where the ones before it end at 20"
    );
    let mut cut = second[0].clone();
    cut.leaves.pop();
    let err = Tile::from_segments(id(0, 0), vec![first[0].clone(), cut]).unwrap_err();
    assert_eq!(
        err.to_string(),
        "tile 0/0: the segment at entry 10 names 9 events for 10 hashes"
    );
    assert_eq!(Tile::from_segments(id(0, 0), Vec::new()).unwrap(), None);
}
