//! The tree kept in tiles: what the store writes, in the transaction of the events it covers.
//!
//! A tile of level `L` holds up to 256 hashes of the nodes at height `8 L`: level 0 the leaf
//! hashes (with, for each, the event it is the leaf of), level 1 the heads of full level-0
//! tiles, and so on (the layout of C2SP `tlog-tiles`). Tile `(L, i)` holds the nodes
//! `[256 i, 256 i + 256)` of its height. Only the last tile of each level, its *tail*, ever
//! changes; the tails together are the whole right edge of the tree, so they alone give its
//! head ([`Tail::root`]) and take the next leaves ([`Tail::append`]).
//!
//! Every node of a perfect subtree is a tile entry or the head of at most 128 consecutive
//! entries of one tile, so any proof reads at most two tiles per level ([`TileSet`]).

use std::collections::{BTreeMap, BTreeSet, HashMap};

use knhk_core::CaseId;

use crate::merkle::{Hash, NodeSource, ProofError, fold_right, root_of};

/// The height of the tree a tile spans: 8 levels of nodes, 256 entries.
pub const TILE_HEIGHT: u8 = 8;
/// The entries of a full tile.
pub const TILE_WIDTH: usize = 1 << TILE_HEIGHT;

/// Which tile: its level (its entries are nodes at height `8 * level`) and its index.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct TileId {
    pub level: u8,
    pub index: u64,
}

/// The event a leaf is the leaf of: the case and the event's seq in its history.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct LeafRef {
    pub case: CaseId,
    pub seq: u64,
}

/// One tile as stored.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Tile {
    pub id: TileId,
    /// The entries, at most [`TILE_WIDTH`].
    pub hashes: Vec<Hash>,
    /// At level 0, the event of each entry (as many as `hashes`); empty at other levels.
    pub leaves: Vec<LeafRef>,
}

impl Tile {
    fn empty(level: u8, index: u64) -> Tile {
        Tile {
            id: TileId { level, index },
            hashes: Vec::new(),
            leaves: Vec::new(),
        }
    }

    /// An empty tail tile, with room for all its entries (it fills without reallocating).
    fn tail(level: u8, index: u64) -> Tile {
        Tile {
            id: TileId { level, index },
            hashes: Vec::with_capacity(TILE_WIDTH),
            leaves: Vec::with_capacity(if level == 0 { TILE_WIDTH } else { 0 }),
        }
    }
}

/// The entries an append added to one tile: `hashes` (and at level 0 `leaves`) are its
/// entries `start..start + hashes.len()`. A tile is stored as the segments appended to it, in
/// order; [`Tile::from_segments`] puts it back together.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Segment {
    pub id: TileId,
    pub start: usize,
    pub hashes: Vec<Hash>,
    pub leaves: Vec<LeafRef>,
}

/// What [`Tail::append_segments`] gives the store to write: the new entries of each tile
/// touched, and the tiles filled, whole (which a store may write in place of their segments).
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Appended {
    pub segments: Vec<Segment>,
    pub filled: Vec<Tile>,
}

impl Tile {
    /// Puts a tile back together from its stored segments, in order of `start`: each must
    /// start where the ones before it end, and at level 0 name as many events as it holds
    /// hashes. Returns `None` for no segments.
    pub fn from_segments(
        id: TileId,
        segments: impl IntoIterator<Item = Segment>,
    ) -> Result<Option<Tile>, TileError> {
        let mut tile: Option<Tile> = None;
        for s in segments {
            let t = tile.get_or_insert_with(|| Tile::empty(id.level, id.index));
            let bad = |problem: String| TileError::Bad {
                level: id.level,
                index: id.index,
                problem,
            };
            if s.start != t.hashes.len() {
                return Err(bad(format!(
                    "a segment starts at entry {} where the ones before it end at {}",
                    s.start,
                    t.hashes.len()
                )));
            }
            if t.hashes.len() + s.hashes.len() > TILE_WIDTH {
                return Err(bad(format!(
                    "its segments hold more than {TILE_WIDTH} entries"
                )));
            }
            if id.level == 0 && s.leaves.len() != s.hashes.len() {
                return Err(bad(format!(
                    "the segment at entry {} names {} events for {} hashes",
                    s.start,
                    s.leaves.len(),
                    s.hashes.len()
                )));
            }
            t.hashes.extend_from_slice(&s.hashes);
            t.leaves.extend_from_slice(&s.leaves);
        }
        Ok(tile)
    }
}

/// Why stored tiles do not make up a tree.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum TileError {
    #[error("tile {level}/{index}: {problem}")]
    Bad {
        level: u8,
        index: u64,
        problem: String,
    },
}

/// The tails of a tree's levels: its right edge, enough to append to it and to give its head.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Tail {
    size: u64,
    /// The tail tile of each level, level 0 first; the top one always has index 0.
    tails: Vec<Tile>,
}

impl Default for Tail {
    fn default() -> Tail {
        Tail::empty()
    }
}

impl Tail {
    /// Returns the tail of the empty tree.
    pub fn empty() -> Tail {
        Tail {
            size: 0,
            tails: vec![Tile::tail(0, 0)],
        }
    }

    /// Returns the tiles that hold the tails of a tree of `size` leaves, level 0 first: what
    /// a store reads to take up its tree ([`Tail::from_tiles`]). A tail with no entries yet is
    /// listed too; a store that has no row for it passes none.
    pub fn tail_ids(size: u64) -> Vec<TileId> {
        let mut ids = vec![TileId {
            level: 0,
            index: size >> TILE_HEIGHT,
        }];
        let mut level = 1u8;
        while u32::from(level) * u32::from(TILE_HEIGHT) < 64 && size >> (level * TILE_HEIGHT) > 0 {
            let nodes = size >> (level * TILE_HEIGHT);
            ids.push(TileId {
                level,
                index: nodes >> TILE_HEIGHT,
            });
            level += 1;
        }
        ids
    }

    /// Takes up the tree of `size` leaves from its stored tail tiles (those of
    /// [`Tail::tail_ids`]; a missing one is taken as empty), checking that each holds as many
    /// entries as the size says.
    pub fn from_tiles(size: u64, tiles: Vec<Tile>) -> Result<Tail, TileError> {
        let mut by_id: HashMap<TileId, Tile> = tiles.into_iter().map(|t| (t.id, t)).collect();
        let mut tails = Vec::new();
        for id in Tail::tail_ids(size) {
            let tile = by_id
                .remove(&id)
                .unwrap_or_else(|| Tile::empty(id.level, id.index));
            let nodes = size >> (u32::from(id.level) * u32::from(TILE_HEIGHT));
            let expected = (nodes % TILE_WIDTH as u64) as usize;
            let bad = |problem: String| TileError::Bad {
                level: id.level,
                index: id.index,
                problem,
            };
            if tile.hashes.len() != expected {
                return Err(bad(format!(
                    "holds {} hashes, a tree of {size} leaves has {expected} there",
                    tile.hashes.len()
                )));
            }
            if id.level == 0 && tile.leaves.len() != tile.hashes.len() {
                return Err(bad(format!(
                    "names {} events for {} leaves",
                    tile.leaves.len(),
                    tile.hashes.len()
                )));
            }
            let mut tile = tile;
            tile.hashes.reserve_exact(TILE_WIDTH - tile.hashes.len());
            if id.level == 0 {
                tile.leaves.reserve_exact(TILE_WIDTH - tile.leaves.len());
            }
            tails.push(tile);
        }
        Ok(Tail { size, tails })
    }

    /// Returns the number of leaves.
    pub fn size(&self) -> u64 {
        self.size
    }

    /// Appends leaves (each its event and leaf hash), returning every tile that changed with
    /// its new contents, by id. Leaf `i` of `leaves` gets the index `size() + i`. A store that
    /// writes only what is new uses [`Tail::append_segments`].
    pub fn append(&mut self, leaves: &[(LeafRef, Hash)]) -> Vec<Tile> {
        let (touched, filled) = self.push(leaves, &mut |entries| root_of(entries));
        let mut changed: BTreeMap<TileId, Tile> = filled.into_iter().map(|t| (t.id, t)).collect();
        for id in touched.keys() {
            if let Some(t) = self.tails.get(usize::from(id.level))
                && t.id == *id
            {
                changed.insert(t.id, t.clone());
            }
        }
        changed.into_values().collect()
    }

    /// Appends leaves as [`Tail::append`] does, returning only what is new: for each tile the
    /// append touched, its new entries as one [`Segment`] that starts where the tile's earlier
    /// entries end, and each tile it filled, whole. What the store writes in the transaction
    /// of these leaves' events: each segment, a row of its own, so that a commit writes its
    /// own leaves and never again the entries before them.
    pub fn append_segments(&mut self, leaves: &[(LeafRef, Hash)]) -> Appended {
        self.append_segments_with(leaves, &mut |entries| root_of(entries))
    }

    /// Appends as [`Tail::append_segments`] does, taking the head of each tile that fills
    /// from `head_of` (called with the tile's entries): a store that had the heads computed
    /// ahead, on another thread, gives them here; `head_of` must answer
    /// [`merkle::root_of`](crate::merkle::root_of) of the entries.
    pub fn append_segments_with(
        &mut self,
        leaves: &[(LeafRef, Hash)],
        head_of: &mut dyn FnMut(&[Hash]) -> Hash,
    ) -> Appended {
        let (touched, filled) = self.push(leaves, head_of);
        let mut segments = Vec::with_capacity(touched.len());
        for (id, start) in touched {
            let tile = filled
                .iter()
                .find(|t| t.id == id)
                .or_else(|| self.tails.get(usize::from(id.level)).filter(|t| t.id == id));
            if let Some(tile) = tile {
                segments.push(Segment {
                    id,
                    start,
                    hashes: tile.hashes[start..].to_vec(),
                    leaves: tile.leaves.get(start..).unwrap_or(&[]).to_vec(),
                });
            }
        }
        Appended { segments, filled }
    }

    /// Pushes leaves onto the tails: returns each tile touched with the number of entries it
    /// held before, by id, and the tiles filled (moved out of the tails, whole).
    fn push(
        &mut self,
        leaves: &[(LeafRef, Hash)],
        head_of: &mut dyn FnMut(&[Hash]) -> Hash,
    ) -> (BTreeMap<TileId, usize>, Vec<Tile>) {
        let mut touched: BTreeMap<TileId, usize> = BTreeMap::new();
        // The tile of each level last put in `touched`: a lookup per tile, not per leaf.
        let mut noted: Vec<Option<TileId>> = Vec::new();
        let mut filled = Vec::new();
        for (leaf, hash) in leaves {
            let mut level = 0usize;
            let mut carry = *hash;
            if let Some(t) = self.tails.first_mut() {
                t.leaves.push(*leaf);
            }
            loop {
                if level == self.tails.len() {
                    self.tails.push(Tile::tail(level as u8, 0));
                }
                let tile = &mut self.tails[level];
                if noted.len() <= level {
                    noted.resize(level + 1, None);
                }
                if noted[level] != Some(tile.id) {
                    noted[level] = Some(tile.id);
                    touched.entry(tile.id).or_insert(tile.hashes.len());
                }
                tile.hashes.push(carry);
                if tile.hashes.len() < TILE_WIDTH {
                    break;
                }
                // The tile is full: store it whole, start the next, carry its head up.
                carry = head_of(&tile.hashes);
                let next = Tile::tail(tile.id.level, tile.id.index + 1);
                filled.push(std::mem::replace(tile, next));
                level += 1;
            }
            self.size += 1;
        }
        (touched, filled)
    }

    /// Returns the entries of the last level-0 tile: the leaves after the last full tile.
    pub fn leaf_tail(&self) -> &[Hash] {
        self.tails.first().map_or(&[], |t| t.hashes.as_slice())
    }

    /// Returns the head of the tree.
    pub fn root(&self) -> Hash {
        let mut roots = Vec::new();
        for tile in self.tails.iter().rev() {
            let mut at = 0usize;
            let m = tile.hashes.len();
            for bit in (0..TILE_HEIGHT).rev() {
                let width = 1usize << bit;
                if m & width != 0 {
                    roots.push(root_of(&tile.hashes[at..at + width]));
                    at += width;
                }
            }
        }
        fold_right(&roots)
    }
}

/// Tiles read from the store: the [`NodeSource`] proofs are made from.
#[derive(Clone, Debug, Default)]
pub struct TileSet {
    tiles: HashMap<TileId, Tile>,
}

impl TileSet {
    /// Collects tiles.
    pub fn new(tiles: impl IntoIterator<Item = Tile>) -> TileSet {
        TileSet {
            tiles: tiles.into_iter().map(|t| (t.id, t)).collect(),
        }
    }

    /// Returns the tiles that `make` reads nodes from (it is run on a source that records
    /// what it is asked and answers with zero hashes): what to read from the store before
    /// making a proof, e.g. `TileSet::needed(|s| inclusion_proof(s, leaf, size))`.
    pub fn needed<T>(make: impl FnOnce(&dyn NodeSource) -> T) -> BTreeSet<TileId> {
        let recorder = Recorder::default();
        let _ = make(&recorder);
        recorder.ids.into_inner()
    }
}

impl NodeSource for TileSet {
    fn node(&self, height: u8, index: u64) -> Result<Hash, ProofError> {
        let (id, from, width) = locate(height, index);
        let missing = ProofError::Missing { height, index };
        let tile = self.tiles.get(&id).ok_or(missing.clone())?;
        let entries = tile.hashes.get(from..from + width).ok_or(missing)?;
        Ok(root_of(entries))
    }
}

impl NodeSource for &dyn NodeSource {
    fn node(&self, height: u8, index: u64) -> Result<Hash, ProofError> {
        (**self).node(height, index)
    }
}

/// Returns the tile that holds the node at `height` with `index`, and the entries of it whose
/// head the node is (`from`, `width`).
fn locate(height: u8, index: u64) -> (TileId, usize, usize) {
    let level = height / TILE_HEIGHT;
    let within = height % TILE_HEIGHT;
    let first = index << within;
    let id = TileId {
        level,
        index: first >> TILE_HEIGHT,
    };
    (id, (first % TILE_WIDTH as u64) as usize, 1usize << within)
}

#[derive(Default)]
struct Recorder {
    ids: std::cell::RefCell<BTreeSet<TileId>>,
}

impl NodeSource for Recorder {
    fn node(&self, height: u8, index: u64) -> Result<Hash, ProofError> {
        self.ids.borrow_mut().insert(locate(height, index).0);
        Ok([0; 32])
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::merkle::leaf_hash;

    fn leaves(n: u64) -> Vec<(LeafRef, Hash)> {
        (0..n)
            .map(|i| {
                (
                    LeafRef {
                        case: CaseId(uuid::Uuid::nil()),
                        seq: i + 1,
                    },
                    leaf_hash(&i.to_be_bytes()),
                )
            })
            .collect()
    }

    #[test]
    fn the_tails_give_the_head_of_the_tree_at_every_size_and_take_up_from_their_tiles() {
        let all = leaves(70_000);
        let hashes: Vec<Hash> = all.iter().map(|l| l.1).collect();
        let mut tail = Tail::empty();
        let mut stored: HashMap<TileId, Tile> = HashMap::new();
        // Batches of awkward sizes, so that tiles fill in the middle of a batch.
        let mut at = 0usize;
        for (i, batch) in [1usize, 2, 253, 256, 257, 3000, 65_536, 231]
            .iter()
            .enumerate()
        {
            let end = (at + batch).min(all.len());
            for t in tail.append(&all[at..end]) {
                stored.insert(t.id, t);
            }
            at = end;
            assert_eq!(tail.size(), at as u64, "batch {i}");
            assert_eq!(
                tail.root(),
                root_of(&hashes[..at]),
                "head after {at} leaves"
            );
            let ids = Tail::tail_ids(at as u64);
            let again = Tail::from_tiles(
                at as u64,
                ids.iter()
                    .filter_map(|id| stored.get(id).cloned())
                    .collect(),
            )
            .unwrap();
            assert_eq!(again, tail, "taken up from the tiles after {at} leaves");
        }
        // Every stored tile answers for the perfect subtrees it covers.
        let set = TileSet::new(stored.into_values());
        assert_eq!(set.node(16, 0).unwrap(), root_of(&hashes[..65_536]));
        assert_eq!(set.node(3, 5).unwrap(), root_of(&hashes[40..48]));
        assert_eq!(set.node(9, 1).unwrap(), root_of(&hashes[512..1024]));
        assert_eq!(
            set.range_root(0, at as u64).unwrap(),
            root_of(&hashes[..at])
        );
        assert!(matches!(
            set.node(17, 0),
            Err(ProofError::Missing {
                height: 17,
                index: 0
            })
        ));
    }

    #[test]
    fn stored_tails_that_do_not_fit_the_size_are_refused_naming_the_tile() {
        let mut tail = Tail::empty();
        let tiles = tail.append(&leaves(300));
        let err = Tail::from_tiles(301, tiles).unwrap_err();
        assert_eq!(
            err.to_string(),
            "tile 0/1: holds 44 hashes, a tree of 301 leaves has 45 there"
        );
    }

    #[test]
    fn the_tiles_a_proof_needs_are_recorded() {
        let ids = TileSet::needed(|s| s.range_root(0, 70_000));
        assert_eq!(ids.len(), 3, "the tails: {ids:?}");
        assert!(ids.contains(&TileId { level: 2, index: 0 }));
        assert!(ids.contains(&TileId {
            level: 0,
            index: 273
        }));
    }
}
