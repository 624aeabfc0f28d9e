//! The lockchain's rows in SQLite: the tree's size, its tiles (each as the segments appended
//! to it) and the signed checkpoints, read by the readers and written by the writer thread in
//! the transaction of the events they cover.
//!
//! The writer keeps the tree's right edge ([`Tail`]) in memory between transactions, and
//! checks it against the stored size in each transaction that carries leaves, under the
//! file's write lock: another process writing the same file (a worker beside a server) moves
//! the size, and the edge is read again. The size only grows, so an equal size means that
//! nothing was appended since the edge was read.

use knhk_core::CaseId;
use knhk_lockchain::{Appended, Tail, Tile, TileId};
use rusqlite::{Connection, OptionalExtension, params};

use crate::error::{Corruption, Error};
use crate::lockchain::{
    SEGMENTS_KEPT, hashes_blob, head_of, leaves_blob, segment_from_row, tail_from,
    tile_from_segments,
};
use crate::record::{CheckpointRecord, TreeHead};

use super::sqlite;

/// The tree's size.
pub(super) const SIZE_SQL: &str = "SELECT size FROM lockchain_head WHERE only_row = 0";
/// The segments of one tile, in order.
pub(super) const TILE_SQL: &str = "SELECT start, hashes, leaves FROM lockchain_tiles
     WHERE level = ?1 AND idx = ?2 ORDER BY start";
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
/// Appends a segment. A segment of the same start already stored is an error, not replaced:
/// the tree's size, checked under the write lock, says where the next one starts.
const PUT_SEGMENT_SQL: &str =
    "INSERT INTO lockchain_tiles (level, idx, start, hashes, leaves) VALUES (?1, ?2, ?3, ?4, ?5)";
/// Removes the segments of a full tile after its first, when it has more than `?3`.
const DROP_SEGMENTS_SQL: &str = "DELETE FROM lockchain_tiles
     WHERE level = ?1 AND idx = ?2 AND start > 0
       AND (SELECT count(*) FROM lockchain_tiles WHERE level = ?1 AND idx = ?2) > ?3";
/// Makes the first segment of a tile the whole tile.
const WHOLE_TILE_SQL: &str = "UPDATE lockchain_tiles SET hashes = ?3, leaves = ?4
     WHERE level = ?1 AND idx = ?2 AND start = 0";
const SET_SIZE_SQL: &str = "UPDATE lockchain_head SET size = ?1 WHERE only_row = 0";
const PUT_CHECKPOINT_SQL: &str = "INSERT INTO lockchain_checkpoints (size, root, note, at)
     VALUES (?1, ?2, ?3, ?4) ON CONFLICT (size) DO NOTHING";

fn number(column: usize, value: i64) -> Result<u64, Error> {
    u64::try_from(value).map_err(|_| Error::Corrupt(Corruption::Number { column, value }))
}

fn int(what: &'static str, value: u64) -> Result<i64, Error> {
    i64::try_from(value).map_err(|_| Error::TooLarge { what, value })
}

/// Returns the tree's size as stored.
pub(super) fn size(conn: &Connection) -> Result<u64, Error> {
    let size: Option<i64> = conn
        .prepare_cached(SIZE_SQL)
        .and_then(|mut s| s.query_row([], |r| r.get(0)).optional())
        .map_err(sqlite("reading the lockchain's size"))?;
    let size = size.ok_or_else(|| Error::Lockchain("the head row is missing".to_owned()))?;
    number(0, size)
}

/// A segment's row: start, hashes and (at level 0) leaves.
type SegmentRow = (i64, Vec<u8>, Option<Vec<u8>>);

/// Returns the stored tiles among `ids`, in their order, each put together from its segments.
pub(super) fn tiles(conn: &Connection, ids: &[TileId]) -> Result<Vec<Tile>, Error> {
    let mut stmt = conn
        .prepare_cached(TILE_SQL)
        .map_err(sqlite("preparing a query"))?;
    let mut out = Vec::with_capacity(ids.len());
    for id in ids {
        let Ok(index) = i64::try_from(id.index) else {
            continue;
        };
        let rows = stmt
            .query_map(params![id.level, index], |r| {
                Ok((r.get(0)?, r.get(1)?, r.get(2)?))
            })
            .map_err(sqlite("reading a lockchain tile"))?;
        let mut segments = Vec::new();
        for row in rows {
            let (start, hashes, leaves): SegmentRow =
                row.map_err(sqlite("reading a lockchain tile"))?;
            segments.push(segment_from_row(
                i64::from(id.level),
                index,
                start,
                &hashes,
                leaves.as_deref().unwrap_or(&[]),
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
/// each tile it filled in one row when it was stored in more than [`SEGMENTS_KEPT`] segments;
/// and the tree's new size.
pub(super) fn write(conn: &Connection, appended: &Appended, size: u64) -> Result<(), Error> {
    let mut put = conn
        .prepare_cached(PUT_SEGMENT_SQL)
        .map_err(sqlite("preparing a statement"))?;
    for s in &appended.segments {
        let leaves = (s.id.level == 0).then(|| leaves_blob(&s.leaves));
        put.execute(params![
            s.id.level,
            int("tile index", s.id.index)?,
            int("tile entry", s.start as u64)?,
            hashes_blob(&s.hashes),
            leaves
        ])
        .map_err(sqlite("storing a lockchain tile's segment"))?;
    }
    for t in &appended.filled {
        let index = int("tile index", t.id.index)?;
        let dropped = conn
            .prepare_cached(DROP_SEGMENTS_SQL)
            .and_then(|mut s| s.execute(params![t.id.level, index, SEGMENTS_KEPT]))
            .map_err(sqlite("putting a full lockchain tile in one row"))?;
        if dropped > 0 {
            let leaves = (t.id.level == 0).then(|| leaves_blob(&t.leaves));
            conn.prepare_cached(WHOLE_TILE_SQL)
                .and_then(|mut s| {
                    s.execute(params![t.id.level, index, hashes_blob(&t.hashes), leaves])
                })
                .map_err(sqlite("putting a full lockchain tile in one row"))?;
        }
    }
    let size = int("lockchain size", size)?;
    conn.prepare_cached(SET_SIZE_SQL)
        .and_then(|mut s| s.execute([size]))
        .map_err(sqlite("storing the lockchain's size"))?;
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
