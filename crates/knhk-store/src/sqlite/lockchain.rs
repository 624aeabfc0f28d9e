//! The lockchain's rows in SQLite: the tree's tiles, each as the segments appended to it, and
//! the signed checkpoints, read by the readers and written by the writer thread in the
//! transaction of the events they cover.
//!
//! A segment's key is its place in the tree, `at = (7 - level) << 56 | node`: its level, and
//! the index of its first node at that level (`256 idx + start` in tile `idx`). It is the
//! table's `INTEGER PRIMARY KEY`, so a segment is one row of one B-tree and a tile one range of
//! keys. Level 0 has the highest keys, so the leaves' segments, nearly all the rows, are
//! appended at the table's end (SQLite's cheapest insert), and the tree's size is where the
//! table's last row ends: no other row changes with each append (a transaction touches the
//! pages of its own new rows only). Trees are below 2^56 leaves, levels 0 to 7.
//!
//! The writer keeps the tree's right edge ([`Tail`]) in memory between transactions, and
//! checks it against the stored size in each transaction that carries leaves, under the
//! file's write lock: another process writing the same file (a worker beside a server) moves
//! the size, and the edge is read again. The size only grows, so an equal size means that
//! nothing was appended since the edge was read.

use knhk_core::CaseId;
use knhk_lockchain::tiles::TILE_WIDTH;
use knhk_lockchain::{Appended, Tail, Tile, TileId};
use rusqlite::{Connection, OptionalExtension, params};

use crate::error::{Corruption, Error};
use crate::lockchain::{
    Events, SEGMENTS_KEPT, hashes_blob, head_of, runs_blob, segment_from_row, tail_from,
    tile_from_segments,
};
use crate::record::{CheckpointRecord, TreeHead};

use super::sqlite;

/// The last level-0 segment, the table's last row: its key and the bytes of its hashes.
pub(super) const SIZE_SQL: &str = "SELECT at, length(hashes) FROM lockchain_tiles
     WHERE at >= 504403158265495552 ORDER BY at DESC LIMIT 1";
/// The segments of one tile (keys `?1 .. ?1 + 256`), in order.
pub(super) const TILE_SQL: &str = "SELECT at, hashes, leaves, runs FROM lockchain_tiles
     WHERE at >= ?1 AND at < ?1 + 256 ORDER BY at";
/// The leaf index of one event, by its key.
pub(super) const EVENT_LEAF_SQL: &str = "SELECT leaf FROM events WHERE case_id = ?1 AND seq = ?2";
/// The checkpoints above a size, by size.
pub(super) const CHECKPOINTS_SQL: &str = "SELECT size, root, note, at FROM lockchain_checkpoints
     WHERE size > ?1 ORDER BY size LIMIT ?2";
/// The checkpoint of the largest size (`max` of the key is one step down its index, which
/// SQLite names a search, where it names the reverse walk of `ORDER BY ... LIMIT 1` a scan).
pub(super) const LATEST_CHECKPOINT_SQL: &str =
    "SELECT size, root, note, at FROM lockchain_checkpoints
     WHERE size = (SELECT max(size) FROM lockchain_checkpoints)";
/// Appends a segment. A segment of the same key already stored is an error, not replaced:
/// the tree's size, read under the write lock, says where the next one starts.
const PUT_SEGMENT_SQL: &str = "INSERT INTO lockchain_tiles (at, hashes, runs) VALUES (?1, ?2, ?3)";
/// Removes the segments of a full tile (keys `?1 .. ?1 + 256`) after its first, when it has
/// more than `?2`.
const DROP_SEGMENTS_SQL: &str = "DELETE FROM lockchain_tiles
     WHERE at > ?1 AND at < ?1 + 256
       AND (SELECT count(*) FROM lockchain_tiles WHERE at >= ?1 AND at < ?1 + 256) > ?2";
/// Makes the first segment of a tile the whole tile.
const WHOLE_TILE_SQL: &str =
    "UPDATE lockchain_tiles SET hashes = ?2, leaves = NULL, runs = ?3 WHERE at = ?1";
const PUT_CHECKPOINT_SQL: &str = "INSERT INTO lockchain_checkpoints (size, root, note, at)
     VALUES (?1, ?2, ?3, ?4) ON CONFLICT (size) DO NOTHING";

fn number(column: usize, value: i64) -> Result<u64, Error> {
    u64::try_from(value).map_err(|_| Error::Corrupt(Corruption::Number { column, value }))
}

fn int(what: &'static str, value: u64) -> Result<i64, Error> {
    i64::try_from(value).map_err(|_| Error::TooLarge { what, value })
}

/// The bits of a segment's key below its level.
const LEVEL_SHIFT: u32 = 56;
/// The highest level a key can name; level `l` is keyed as `TOP_LEVEL - l`.
const TOP_LEVEL: u8 = 7;

/// Returns the key of the segment of tile `id` that starts at entry `start`.
fn key(id: TileId, start: usize) -> Result<i64, Error> {
    let node = id
        .index
        .checked_mul(TILE_WIDTH as u64)
        .and_then(|n| n.checked_add(start as u64))
        .filter(|n| n >> LEVEL_SHIFT == 0 && id.level <= TOP_LEVEL);
    let Some(node) = node else {
        return Err(Error::TooLarge {
            what: "lockchain tile index",
            value: id.index,
        });
    };
    int(
        "lockchain segment key",
        u64::from(TOP_LEVEL - id.level) << LEVEL_SHIFT | node,
    )
}

/// Returns the tile and the start of the segment of key `at`.
fn place(at: i64) -> Result<(TileId, usize), Error> {
    let at = number(0, at)?;
    let node = at & ((1 << LEVEL_SHIFT) - 1);
    let id = TileId {
        level: TOP_LEVEL.saturating_sub((at >> LEVEL_SHIFT) as u8),
        index: node / TILE_WIDTH as u64,
    };
    Ok((id, (node % TILE_WIDTH as u64) as usize))
}

/// Returns the tree's size as stored: where its last level-0 segment ends.
pub(super) fn size(conn: &Connection) -> Result<u64, Error> {
    let last: Option<(i64, i64)> = conn
        .prepare_cached(SIZE_SQL)
        .and_then(|mut s| s.query_row([], |r| Ok((r.get(0)?, r.get(1)?))).optional())
        .map_err(sqlite("reading the lockchain's size"))?;
    let Some((at, bytes)) = last else {
        return Ok(0);
    };
    let (id, start) = place(at)?;
    Ok(id.index * TILE_WIDTH as u64 + start as u64 + number(1, bytes)? / 32)
}

/// A segment's row: its key, hashes and (at level 0) its events, as `leaves` or `runs`.
type SegmentRow = (i64, Vec<u8>, Option<Vec<u8>>, Option<Vec<u8>>);

/// Returns the stored tiles among `ids`, in their order, each put together from its segments.
pub(super) fn tiles(conn: &Connection, ids: &[TileId]) -> Result<Vec<Tile>, Error> {
    let mut stmt = conn
        .prepare_cached(TILE_SQL)
        .map_err(sqlite("preparing a query"))?;
    let mut out = Vec::with_capacity(ids.len());
    for id in ids {
        let Ok(first) = key(*id, 0) else {
            continue;
        };
        let rows = stmt
            .query_map([first], |r| {
                Ok((r.get(0)?, r.get(1)?, r.get(2)?, r.get(3)?))
            })
            .map_err(sqlite("reading a lockchain tile"))?;
        let mut segments = Vec::new();
        for row in rows {
            let (at, hashes, leaves, runs): SegmentRow =
                row.map_err(sqlite("reading a lockchain tile"))?;
            let (_, start) = place(at)?;
            segments.push(segment_from_row(
                i64::from(id.level),
                int("tile index", id.index)?,
                start as i64,
                &hashes,
                Events::of(leaves.as_deref(), runs.as_deref()),
            )?);
        }
        if let Some(tile) = tile_from_segments(*id, segments)? {
            out.push(tile);
        }
    }
    Ok(out)
}

/// Reads the tree's right edge: its size and tail tiles.
pub(super) fn tail(conn: &Connection) -> Result<Tail, Error> {
    let size = size(conn)?;
    tail_from(size, tiles(conn, &Tail::tail_ids(size))?)
}

/// Returns the tree's head, its size and tiles read in one snapshot.
pub(super) fn head(conn: &Connection) -> Result<TreeHead, Error> {
    let tx = conn
        .unchecked_transaction()
        .map_err(sqlite("beginning a read"))?;
    let tail = tail(&tx)?;
    tx.finish().map_err(sqlite("ending a read"))?;
    Ok(head_of(&tail))
}

/// Writes what an append added (in the writer's transaction): each segment, a row, then
/// each tile it filled in one row when it was stored in more than [`SEGMENTS_KEPT`] segments.
/// The tree's size is where its last level-0 segment ends: nothing else is written.
pub(super) fn write(conn: &Connection, appended: &Appended) -> Result<(), Error> {
    let mut put = conn
        .prepare_cached(PUT_SEGMENT_SQL)
        .map_err(sqlite("preparing a statement"))?;
    for s in &appended.segments {
        let runs = (s.id.level == 0).then(|| runs_blob(&s.leaves));
        put.execute(params![key(s.id, s.start)?, hashes_blob(&s.hashes), runs])
            .map_err(sqlite("storing a lockchain tile's segment"))?;
    }
    for t in &appended.filled {
        let first = key(t.id, 0)?;
        let dropped = conn
            .prepare_cached(DROP_SEGMENTS_SQL)
            .and_then(|mut s| s.execute(params![first, SEGMENTS_KEPT]))
            .map_err(sqlite("putting a full lockchain tile in one row"))?;
        if dropped > 0 {
            let runs = (t.id.level == 0).then(|| runs_blob(&t.leaves));
            conn.prepare_cached(WHOLE_TILE_SQL)
                .and_then(|mut s| s.execute(params![first, hashes_blob(&t.hashes), runs]))
                .map_err(sqlite("putting a full lockchain tile in one row"))?;
        }
    }
    Ok(())
}

/// Returns the leaf index of one event, `None` without one.
pub(super) fn event_leaf(conn: &Connection, case: CaseId, seq: u64) -> Result<Option<u64>, Error> {
    let Ok(seq) = i64::try_from(seq) else {
        return Ok(None);
    };
    let leaf: Option<Option<i64>> = conn
        .prepare_cached(EVENT_LEAF_SQL)
        .and_then(|mut s| {
            s.query_row(params![case.to_string(), seq], |r| r.get(0))
                .optional()
        })
        .map_err(sqlite("reading an event's leaf"))?;
    leaf.flatten().map(|l| number(0, l)).transpose()
}

fn checkpoint_row(r: &rusqlite::Row<'_>) -> rusqlite::Result<(i64, Vec<u8>, String, i64)> {
    Ok((r.get(0)?, r.get(1)?, r.get(2)?, r.get(3)?))
}

fn checkpoint(row: (i64, Vec<u8>, String, i64)) -> Result<CheckpointRecord, Error> {
    let (size, root, note, at) = row;
    let root: knhk_lockchain::Hash = root.as_slice().try_into().map_err(|_| {
        Error::Lockchain(format!(
            "the checkpoint of size {size} has a root of {} bytes, not 32",
            root.len()
        ))
    })?;
    Ok(CheckpointRecord {
        size: number(0, size)?,
        root,
        note,
        at: knhk_core::Timestamp(at),
    })
}

/// Returns at most `limit` checkpoints above `after`, by size.
pub(super) fn checkpoints(
    conn: &Connection,
    after: u64,
    limit: usize,
) -> Result<Vec<CheckpointRecord>, Error> {
    let Ok(after) = i64::try_from(after) else {
        return Ok(Vec::new());
    };
    let limit = i64::try_from(limit).unwrap_or(i64::MAX);
    let mut stmt = conn
        .prepare_cached(CHECKPOINTS_SQL)
        .map_err(sqlite("preparing a query"))?;
    let rows = stmt
        .query_map(params![after, limit], checkpoint_row)
        .map_err(sqlite("reading checkpoints"))?;
    let mut out = Vec::new();
    for row in rows {
        out.push(checkpoint(row.map_err(sqlite("reading a checkpoint"))?)?);
    }
    Ok(out)
}

/// Returns the checkpoint of the largest size.
pub(super) fn latest_checkpoint(conn: &Connection) -> Result<Option<CheckpointRecord>, Error> {
    conn.prepare_cached(LATEST_CHECKPOINT_SQL)
        .and_then(|mut s| s.query_row([], checkpoint_row).optional())
        .map_err(sqlite("reading the latest checkpoint"))?
        .map(checkpoint)
        .transpose()
}

/// Stores a checkpoint unless one of its size is stored; returns the rows inserted.
pub(super) fn put_checkpoint(conn: &Connection, c: &CheckpointRecord) -> Result<u64, Error> {
    let size = int("checkpoint size", c.size)?;
    let n = conn
        .prepare_cached(PUT_CHECKPOINT_SQL)
        .and_then(|mut s| s.execute(params![size, c.root.as_slice(), c.note, c.at.0]))
        .map_err(sqlite("storing a checkpoint"))?;
    Ok(n as u64)
}
