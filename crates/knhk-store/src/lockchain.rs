//! The lockchain's rows as the SQL backends store them, and the leaves a commit appends.
//!
//! A tile is stored as the segments appended to it, a row each: `hashes`, its entries' 32-byte
//! hashes end to end, and at level 0 the event of each entry, as runs of consecutive events of
//! one case ([`Events`]). Decoding checks the lengths and counts, so a cut or padded blob is
//! named rather than read as a different tree. The root is never stored, it is computed from
//! the tails ([`knhk_lockchain::Tail::root`]), so that the head cannot disagree with the tiles.

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

/// The events of a level-0 row, as stored: `runs` (written since SQLite format 12 and
/// PostgreSQL format 3), else `leaves` (the rows of earlier formats); neither above level 0.
#[derive(Clone, Copy, Debug)]
pub(crate) enum Events<'a> {
    /// No events: a row above level 0.
    None,
    /// One 24-byte entry per leaf: the case's UUID (16 bytes), the event's seq (big-endian
    /// u64).
    Each(&'a [u8]),
    /// Runs of consecutive events of one case, 28 bytes each: the case's UUID (16 bytes), the
    /// first event's seq (big-endian u64) and the number of events (big-endian u32).
    Runs(&'a [u8]),
}

impl<'a> Events<'a> {
    /// The events of a row from its two columns: `runs` when set, else `leaves`.
    pub(crate) fn of(leaves: Option<&'a [u8]>, runs: Option<&'a [u8]>) -> Events<'a> {
        match (runs, leaves) {
            (Some(r), _) => Events::Runs(r),
            (None, Some(l)) => Events::Each(l),
            (None, None) => Events::None,
        }
    }
}

/// The bytes of one run in a row's `runs`.
const RUN_BYTES: usize = 28;

/// Returns the `runs` blob of a level-0 row: its events as runs of consecutive events of one
/// case. A commit's events are consecutive, so a row holds about a run per commit, not 24
/// bytes per leaf.
pub(crate) fn runs_blob(leaves: &[LeafRef]) -> Vec<u8> {
    let mut out = Vec::with_capacity(4 * RUN_BYTES);
    let mut i = 0;
    while let Some(first) = leaves.get(i) {
        let mut n: u32 = 1;
        while let Some(next) = leaves.get(i + n as usize) {
            let follows = next.case == first.case
                && first.seq.checked_add(u64::from(n)) == Some(next.seq)
                && n < u32::MAX;
            if !follows {
                break;
            }
            n += 1;
        }
        out.extend_from_slice(first.case.0.as_bytes());
        out.extend_from_slice(&first.seq.to_be_bytes());
        out.extend_from_slice(&n.to_be_bytes());
        i += n as usize;
    }
    out
}

/// Returns the events a row's blob names, refusing one that does not name `count` of them.
fn events_of(events: Events<'_>, count: usize) -> Result<Vec<LeafRef>, String> {
    let uuid = |bytes: &[u8]| {
        let mut u = [0u8; 16];
        u.copy_from_slice(bytes);
        CaseId(uuid::Uuid::from_bytes(u))
    };
    let u64_at = |bytes: &[u8]| {
        let mut b = [0u8; 8];
        b.copy_from_slice(bytes);
        u64::from_be_bytes(b)
    };
    match events {
        Events::None => Ok(Vec::new()),
        Events::Each(blob) => {
            if blob.len() != count * LEAF_BYTES {
                return Err(format!(
                    "{} bytes of events for {count} hashes, expected {}",
                    blob.len(),
                    count * LEAF_BYTES
                ));
            }
            Ok(blob
                .chunks_exact(LEAF_BYTES)
                .map(|c| LeafRef {
                    case: uuid(&c[..16]),
                    seq: u64_at(&c[16..]),
                })
                .collect())
        }
        Events::Runs(blob) => {
            if !blob.len().is_multiple_of(RUN_BYTES) {
                return Err(format!(
                    "{} bytes of runs is not a whole number of {RUN_BYTES}-byte runs",
                    blob.len()
                ));
            }
            let mut out = Vec::with_capacity(count);
            for run in blob.chunks_exact(RUN_BYTES) {
                let case = uuid(&run[..16]);
                let first = u64_at(&run[16..24]);
                let mut n = [0u8; 4];
                n.copy_from_slice(&run[24..]);
                let n = u32::from_be_bytes(n) as usize;
                if n == 0 || out.len() + n > count {
                    return Err(format!(
                        "its runs name more events than its {count} hashes, or an empty run"
                    ));
                }
                for k in 0..n as u64 {
                    let seq = first
                        .checked_add(k)
                        .ok_or_else(|| format!("a run of case {case} passes the largest seq"))?;
                    out.push(LeafRef { case, seq });
                }
            }
            if out.len() != count {
                return Err(format!(
                    "its runs name {} events for {count} hashes",
                    out.len()
                ));
            }
            Ok(out)
        }
    }
}

/// Returns a tile read back from its row; blobs of the wrong length are
/// [`Error::Lockchain`], naming the tile.
pub(crate) fn tile_from_row(
    level: i64,
    index: i64,
    hashes: &[u8],
    events: Events<'_>,
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
    let leaves = match (id.level, events) {
        // A level-0 row without events names none: right only for no hashes.
        (0, Events::None) => events_of(Events::Each(&[]), hashes.len()),
        (0, events) => events_of(events, hashes.len()),
        (_, Events::None) => Ok(Vec::new()),
        _ => Err("names events above level 0".to_owned()),
    }
    .map_err(bad)?;
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
    events: Events<'_>,
) -> Result<Segment, Error> {
    let tile = tile_from_row(level, index, hashes, events)?;
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
        let tile = tile_from_row(
            0,
            3,
            &hashes_blob(&hashes),
            Events::Runs(&runs_blob(&leaves)),
        )
        .unwrap();
        assert_eq!(tile.id, TileId { level: 0, index: 3 });
        assert_eq!(tile.hashes, hashes);
        assert_eq!(tile.leaves, leaves);
        // The rows of earlier formats: 24 bytes an event.
        let mut each = Vec::new();
        for l in &leaves {
            each.extend_from_slice(l.case.0.as_bytes());
            each.extend_from_slice(&l.seq.to_be_bytes());
        }
        let old = tile_from_row(0, 3, &hashes_blob(&hashes), Events::Each(&each)).unwrap();
        assert_eq!(old, tile);
        let up = tile_from_row(1, 0, &hashes_blob(&hashes), Events::None).unwrap();
        assert!(up.leaves.is_empty());
        let err = tile_from_row(0, 3, &[0u8; 33], Events::None).unwrap_err();
        assert_eq!(
            err.to_string(),
            "lockchain: stored tile 0/3: 33 bytes of hashes is not a whole number of 32-byte hashes"
        );
        let err = tile_from_row(0, 3, &hashes_blob(&hashes), Events::Each(&[0u8; 24])).unwrap_err();
        assert_eq!(
            err.to_string(),
            "lockchain: stored tile 0/3: 24 bytes of events for 2 hashes, expected 48"
        );
        let err = tile_from_row(0, 3, &hashes_blob(&hashes), Events::Runs(&[0u8; 27])).unwrap_err();
        assert_eq!(
            err.to_string(),
            "lockchain: stored tile 0/3: 27 bytes of runs is not a whole number of 28-byte runs"
        );
    }

    #[test]
    fn a_commit_s_events_are_one_run() {
        let case = |n: u128| CaseId(uuid::Uuid::from_u128(n));
        let leaves: Vec<LeafRef> = (5..=37)
            .map(|seq| LeafRef { case: case(1), seq })
            .chain((1..=3).map(|seq| LeafRef { case: case(2), seq }))
            .chain([
                LeafRef {
                    case: case(1),
                    seq: 38,
                },
                LeafRef {
                    case: case(1),
                    seq: 40,
                },
            ])
            .collect();
        let runs = runs_blob(&leaves);
        assert_eq!(
            runs.len(),
            4 * RUN_BYTES,
            "33 + 3 + 1 + 1 events in four runs"
        );
        assert_eq!(
            events_of(Events::Runs(&runs), leaves.len()).unwrap(),
            leaves
        );
        assert_eq!(
            events_of(Events::Runs(&runs), leaves.len() + 1).unwrap_err(),
            "its runs name 38 events for 39 hashes"
        );
        assert!(events_of(Events::Runs(&runs), 10).is_err());
    }
}
