//! The lockchain's rows as the SQL backends store them, and the leaves a commit appends.
//!
//! A tile is one row: `hashes`, its entries' 32-byte hashes end to end, and at level 0
//! `leaves`, each entry's event as 24 bytes (the case's UUID, 16 bytes, then the event's seq,
//! a big-endian u64). Decoding checks the lengths, so a cut or padded blob is named rather
//! than read as a different tree. The tree's size is kept beside the tiles (one head row);
//! its root is never stored, it is computed from the tails ([`knhk_lockchain::Tail::root`]), so
//! that the head cannot disagree with the tiles.

pub(crate) mod heads;

use knhk_core::CaseId;
use knhk_lockchain::{Hash, LeafRef, Segment, Tail, Tile, TileId};

use crate::error::Error;
use crate::record::{Commit, TreeHead};

/// The bytes of one hash in a tile's `hashes`.
const HASH_BYTES: usize = 32;
/// The bytes of one event in a tile's `leaves`.
const LEAF_BYTES: usize = 24;

/// Returns the `hashes` blob of a tile.
pub(crate) fn hashes_blob(hashes: &[Hash]) -> Vec<u8> {
    hashes.concat()
}

/// Returns the `leaves` blob of a tile (empty above level 0).
pub(crate) fn leaves_blob(leaves: &[LeafRef]) -> Vec<u8> {
    let mut out = Vec::with_capacity(leaves.len() * LEAF_BYTES);
    for l in leaves {
        out.extend_from_slice(l.case.0.as_bytes());
        out.extend_from_slice(&l.seq.to_be_bytes());
    }
    out
}

/// Returns a tile read back from its row; blobs of the wrong length are
/// [`Error::Lockchain`], naming the tile.
pub(crate) fn tile_from_row(
    level: i64,
    index: i64,
    hashes: &[u8],
    leaves: &[u8],
) -> Result<Tile, Error> {
    let bad = |what: String| Error::Lockchain(format!("stored tile {level}/{index}: {what}"));
    let id = TileId {
        level: u8::try_from(level).map_err(|_| bad("the level is out of range".to_owned()))?,
        index: u64::try_from(index).map_err(|_| bad("the index is negative".to_owned()))?,
    };
    if !hashes.len().is_multiple_of(HASH_BYTES) {
        return Err(bad(format!(
            "{} bytes of hashes is not a whole number of 32-byte hashes",
            hashes.len()
        )));
    }
    let hashes: Vec<Hash> = hashes
        .chunks_exact(HASH_BYTES)
        .map(|c| {
            let mut h = [0u8; HASH_BYTES];
            h.copy_from_slice(c);
            h
        })
        .collect();
    let expected = if id.level == 0 {
        hashes.len() * LEAF_BYTES
    } else {
        0
    };
    if leaves.len() != expected {
        return Err(bad(format!(
            "{} bytes of events for {} hashes, expected {expected}",
            leaves.len(),
            hashes.len()
        )));
    }
    let leaves = leaves
        .chunks_exact(LEAF_BYTES)
        .map(|c| {
            let (case, seq) = c.split_at(16);
            let mut u = [0u8; 16];
            u.copy_from_slice(case);
            let mut s = [0u8; 8];
            s.copy_from_slice(seq);
            LeafRef {
                case: CaseId(uuid::Uuid::from_bytes(u)),
                seq: u64::from_be_bytes(s),
            }
        })
        .collect();
    Ok(Tile { id, hashes, leaves })
}

/// A full tile stored in more segments than this is put back in one row when it fills (a
/// commit that appends many leaves at once leaves few segments, read as they are).
pub(crate) const SEGMENTS_KEPT: i64 = 8;

/// Returns a segment read back from its row (`level`, `index`, `start`, and its entries'
/// blobs, as [`tile_from_row`] reads them).
pub(crate) fn segment_from_row(
    level: i64,
    index: i64,
    start: i64,
    hashes: &[u8],
    leaves: &[u8],
) -> Result<Segment, Error> {
    let tile = tile_from_row(level, index, hashes, leaves)?;
    let start = usize::try_from(start).map_err(|_| {
        Error::Lockchain(format!(
            "stored tile {level}/{index}: a segment starts at entry {start}"
        ))
    })?;
    Ok(Segment {
        id: tile.id,
        start,
        hashes: tile.hashes,
        leaves: tile.leaves,
    })
}

/// Puts a stored tile back together from its segments, in order; `None` for none.
pub(crate) fn tile_from_segments(
    id: TileId,
    segments: Vec<Segment>,
) -> Result<Option<Tile>, Error> {
    Tile::from_segments(id, segments).map_err(|e| Error::Lockchain(format!("stored {e}")))
}

/// Puts stored tiles back together from their segments, ordered by tile and start.
pub(crate) fn tiles_from_segments(segments: Vec<Segment>) -> Result<Vec<Tile>, Error> {
    let mut tiles = Vec::new();
    let mut run: Vec<Segment> = Vec::new();
    for s in segments {
        if let Some(last) = run.last()
            && last.id != s.id
        {
            let id = last.id;
            tiles.extend(tile_from_segments(id, std::mem::take(&mut run))?);
        }
        run.push(s);
    }
    if let Some(first) = run.first() {
        let id = first.id;
        tiles.extend(tile_from_segments(id, run)?);
    }
    Ok(tiles)
}

/// Takes up the tree of `size` leaves from its stored tail tiles, naming what does not fit.
pub(crate) fn tail_from(size: u64, tiles: Vec<Tile>) -> Result<Tail, Error> {
    Tail::from_tiles(size, tiles)
        .map_err(|e| Error::Lockchain(format!("the stored tree of {size} leaves: {e}")))
}

/// Returns the head of a tree.
pub(crate) fn head_of(tail: &Tail) -> TreeHead {
    TreeHead {
        size: tail.size(),
        root: tail.root(),
    }
}

/// Refuses a commit whose leaves are neither none nor one per event.
pub(crate) fn check_leaves(c: &Commit) -> Result<(), Error> {
    if c.leaves.is_empty() || c.leaves.len() == c.events.len() {
        return Ok(());
    }
    Err(Error::Lockchain(format!(
        "the commit of case {} carries {} leaves for {} events",
        c.case.id,
        c.leaves.len(),
        c.events.len()
    )))
}

/// Returns a commit's leaves, each with its event: what it appends to the tree.
pub(crate) fn leaves_of(c: &Commit) -> impl Iterator<Item = (LeafRef, Hash)> + '_ {
    c.events.iter().zip(&c.leaves).map(|(e, h)| {
        (
            LeafRef {
                case: c.case.id,
                seq: e.seq,
            },
            *h,
        )
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tiles_round_trip_through_their_blobs_and_bad_lengths_are_named() {
        let leaves = vec![
            LeafRef {
                case: CaseId(uuid::Uuid::from_u128(7)),
                seq: 1,
            },
            LeafRef {
                case: CaseId(uuid::Uuid::from_u128(u128::MAX)),
                seq: u64::MAX,
            },
        ];
        let hashes = vec![[1u8; 32], [2u8; 32]];
        let tile = tile_from_row(0, 3, &hashes_blob(&hashes), &leaves_blob(&leaves)).unwrap();
        assert_eq!(tile.id, TileId { level: 0, index: 3 });
        assert_eq!(tile.hashes, hashes);
        assert_eq!(tile.leaves, leaves);
        let up = tile_from_row(1, 0, &hashes_blob(&hashes), &[]).unwrap();
        assert!(up.leaves.is_empty());
        let err = tile_from_row(0, 3, &[0u8; 33], &[]).unwrap_err();
        assert_eq!(
            err.to_string(),
            "lockchain: stored tile 0/3: 33 bytes of hashes is not a whole number of 32-byte hashes"
        );
        let err = tile_from_row(0, 3, &hashes_blob(&hashes), &[0u8; 24]).unwrap_err();
        assert_eq!(
            err.to_string(),
            "lockchain: stored tile 0/3: 24 bytes of events for 2 hashes, expected 48"
        );
    }
}
