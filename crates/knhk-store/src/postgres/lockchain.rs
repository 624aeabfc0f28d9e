//! The lockchain's rows in PostgreSQL: the tree's size (one head row), its tiles (each as the
//! segments appended to it) and the signed checkpoints. The tree is the schema's, shared by every process on it.
//!
//! Every transaction that appends leaves locks the head row first (`SELECT size ... FOR
//! UPDATE`), before any case row, so that appends are serialized and take their locks in one
//! order with the rest of a commit: no two transactions wait for each other in a cycle
//! through it. Its events read their leaf indexes from the locked size. A committer keeps
//! the tree's right edge ([`Tail`]) between transactions and checks it against the size read
//! under the lock: the size only grows, so an equal size means that nothing was appended
//! since, and another size that another writer appended (the edge is rebuilt from the tail
//! tiles read under the same lock).

use std::collections::HashMap;

use deadpool_postgres::GenericClient;
use knhk_core::{CaseId, Timestamp};
use knhk_lockchain::{Appended, Hash, Tail, Tile, TileId};
use tokio_postgres::Row;
use tokio_postgres::types::ToSql;

use crate::error::{Corruption, Error};
use crate::lockchain::{
    Events, SEGMENTS_KEPT, hashes_blob, runs_blob, segment_from_row, tail_from, tiles_from_segments,
};
use crate::record::CheckpointRecord;

use super::pg;
use super::rows::Param;

/// The tree's size.
pub(super) const SIZE_SQL: &str = "SELECT size FROM lockchain_head";
/// The tree's size, locked until the transaction ends: taken before anything else by a
/// transaction that appends.
pub(super) const LOCK_SIZE_SQL: &str = "SELECT size FROM lockchain_head FOR UPDATE";
/// The segments of the tail tiles of the tree at its stored size (levels 0 to 6: trees below
/// 2^56 leaves), in order, read after [`LOCK_SIZE_SQL`] in the same transaction, so at the
/// locked size; none when the stored size is `$1`, the size of the edge the committer holds
/// (another node appended only if it differs). Each tile is one keyed range read (the
/// `LIMIT`, the most segments a tile can have, keeps the planner from joining the whole table
/// instead).
pub(super) const TAIL_TILES_SQL: &str = "SELECT t.level, t.idx, t.start, t.hashes, t.leaves, t.runs
     FROM lockchain_head h
     CROSS JOIN generate_series(0, 6) AS l(level)
     CROSS JOIN LATERAL (
         SELECT level, idx, start, hashes, leaves, runs FROM lockchain_tiles
         WHERE level = l.level AND idx = h.size >> (8 * l.level + 8)
         ORDER BY start
         LIMIT 256
     ) t
     WHERE h.size <> $1 AND (l.level = 0 OR h.size >> (8 * l.level) > 0)
     ORDER BY t.level, t.start";
/// The segments of tiles by their keys, in order.
pub(super) const TILES_SQL: &str = "SELECT level, idx, start, hashes, leaves, runs
     FROM lockchain_tiles
     WHERE (level, idx) IN (SELECT * FROM unnest($1::smallint[], $2::bigint[]))
     ORDER BY level, idx, start";
/// The leaf index of one event, by its key.
pub(super) const EVENT_LEAF_SQL: &str = "SELECT leaf FROM events WHERE case_id = $1 AND seq = $2";
/// The checkpoints above a size, by size.
pub(super) const CHECKPOINTS_SQL: &str = "SELECT size, root, note, at FROM lockchain_checkpoints
     WHERE size > $1 ORDER BY size LIMIT $2";
/// The checkpoint of the largest size (`max` of the key: one step down its index, with an
/// index condition, where `ORDER BY ... LIMIT 1` plans as a backward walk of it).
pub(super) const LATEST_CHECKPOINT_SQL: &str =
    "SELECT size, root, note, at FROM lockchain_checkpoints
     WHERE size = (SELECT max(size) FROM lockchain_checkpoints)";
/// Stores a checkpoint unless one of its size is stored.
pub(super) const PUT_CHECKPOINT_SQL: &str =
    "INSERT INTO lockchain_checkpoints (size, root, note, at)
     VALUES ($1, $2, $3, $4) ON CONFLICT (size) DO NOTHING";
/// Writes the segments an append added. A segment of the same start already stored is an
/// error, not replaced: the size, read under the head row's lock, says where the next starts.
pub(super) const PUT_SEGMENTS_SQL: &str =
    "INSERT INTO lockchain_tiles (level, idx, start, hashes, runs)
     SELECT * FROM unnest($1::smallint[], $2::bigint[], $3::integer[], $4::bytea[], $5::bytea[])";
/// Puts a full tile (`$1`, `$2`) back in one row when it is stored in more than `$3`
/// segments: its segments after the first go, and the first becomes the whole tile.
pub(super) const WHOLE_TILE_SQL: &str = "WITH dropped AS (
         DELETE FROM lockchain_tiles
         WHERE level = $1 AND idx = $2 AND start > 0
           AND (SELECT count(*) FROM lockchain_tiles WHERE level = $1 AND idx = $2) > $3
         RETURNING 1
     )
     UPDATE lockchain_tiles SET hashes = $4, leaves = NULL, runs = $5
     WHERE level = $1 AND idx = $2 AND start = 0 AND EXISTS (SELECT 1 FROM dropped)";
/// Writes the tree's new size.
pub(super) const SET_SIZE_SQL: &str = "UPDATE lockchain_head SET size = $1";

fn number(column: usize, value: i64) -> Result<u64, Error> {
    u64::try_from(value).map_err(|_| Error::Corrupt(Corruption::Number { column, value }))
}

fn int(what: &'static str, value: u64) -> Result<i64, Error> {
    i64::try_from(value).map_err(|_| Error::TooLarge { what, value })
}

async fn query<C: GenericClient>(
    client: &C,
    sql: &str,
    args: &[&(dyn ToSql + Sync)],
    doing: &'static str,
) -> Result<Vec<Row>, Error> {
    let st = client
        .prepare_cached(sql)
        .await
        .map_err(pg("preparing a query"))?;
    client.query(&st, args).await.map_err(pg(doing))
}

/// Reads the tree's size: `SIZE_SQL`, or `LOCK_SIZE_SQL` to lock it.
pub(super) async fn size<C: GenericClient>(client: &C, sql: &str) -> Result<u64, Error> {
    let rows = query(client, sql, &[], "reading the lockchain's size").await?;
    let row = rows
        .first()
        .ok_or_else(|| Error::Lockchain("the head row is missing".to_owned()))?;
    let size: i64 = row
        .try_get(0)
        .map_err(|source| Error::Corrupt(Corruption::Value { column: 0, source }))?;
    number(0, size)
}

/// Returns the stored tiles among `ids`, in their order.
pub(super) async fn tiles<C: GenericClient>(
    client: &C,
    ids: &[TileId],
) -> Result<Vec<Tile>, Error> {
    let levels: Vec<i16> = ids.iter().map(|id| i16::from(id.level)).collect();
    let indexes: Vec<i64> = ids
        .iter()
        .map(|id| i64::try_from(id.index).unwrap_or(-1))
        .collect();
    let rows = query(
        client,
        TILES_SQL,
        &[&levels, &indexes],
        "reading lockchain tiles",
    )
    .await?;
    let mut found: HashMap<TileId, Tile> =
        tiles_of(&rows)?.into_iter().map(|t| (t.id, t)).collect();
    Ok(ids.iter().filter_map(|id| found.remove(id)).collect())
}

/// Puts tiles back together from rows of their segments (`level, idx, start, hashes,
/// leaves, runs`), ordered by tile and start.
pub(super) fn tiles_of(rows: &[Row]) -> Result<Vec<Tile>, Error> {
    let mut segments = Vec::with_capacity(rows.len());
    for r in rows {
        let value =
            |column: usize| move |source| Error::Corrupt(Corruption::Value { column, source });
        let level: i16 = r.try_get(0).map_err(value(0))?;
        let idx: i64 = r.try_get(1).map_err(value(1))?;
        let start: i32 = r.try_get(2).map_err(value(2))?;
        let hashes: &[u8] = r.try_get(3).map_err(value(3))?;
        let leaves: Option<&[u8]> = r.try_get(4).map_err(value(4))?;
        let runs: Option<&[u8]> = r.try_get(5).map_err(value(5))?;
        segments.push(segment_from_row(
            i64::from(level),
            idx,
            i64::from(start),
            hashes,
            Events::of(leaves, runs),
        )?);
    }
    tiles_from_segments(segments)
}

/// Reads the tree's right edge: the tail tiles of a tree of `size` leaves.
pub(super) async fn tail<C: GenericClient>(client: &C, size: u64) -> Result<Tail, Error> {
    tail_from(size, tiles(client, &Tail::tail_ids(size)).await?)
}

/// The parameters of [`PUT_SEGMENTS_SQL`], of [`WHOLE_TILE_SQL`] for each tile filled, and of
/// [`SET_SIZE_SQL`].
pub(super) type WriteParams = (Vec<Param>, Vec<Vec<Param>>, Vec<Param>);

/// Returns the parameters of [`PUT_SEGMENTS_SQL`], of [`WHOLE_TILE_SQL`] for each tile
/// filled, and of [`SET_SIZE_SQL`], for an append that added `appended` and made the tree
/// `size` leaves.
pub(super) fn write_params(appended: &Appended, size: u64) -> Result<WriteParams, Error> {
    let n = appended.segments.len();
    let mut levels: Vec<i16> = Vec::with_capacity(n);
    let mut indexes: Vec<i64> = Vec::with_capacity(n);
    let mut starts: Vec<i32> = Vec::with_capacity(n);
    let mut hashes: Vec<Vec<u8>> = Vec::with_capacity(n);
    let mut leaves: Vec<Option<Vec<u8>>> = Vec::with_capacity(n);
    for s in &appended.segments {
        levels.push(i16::from(s.id.level));
        indexes.push(int("tile index", s.id.index)?);
        starts.push(i32::try_from(s.start).map_err(|_| Error::TooLarge {
            what: "tile entry",
            value: s.start as u64,
        })?);
        hashes.push(hashes_blob(&s.hashes));
        leaves.push((s.id.level == 0).then(|| runs_blob(&s.leaves)));
    }
    let mut whole: Vec<Vec<Param>> = Vec::with_capacity(appended.filled.len());
    for t in &appended.filled {
        whole.push(vec![
            Box::new(i16::from(t.id.level)),
            Box::new(int("tile index", t.id.index)?),
            Box::new(SEGMENTS_KEPT),
            Box::new(hashes_blob(&t.hashes)),
            Box::new((t.id.level == 0).then(|| runs_blob(&t.leaves))),
        ]);
    }
    Ok((
        vec![
            Box::new(levels),
            Box::new(indexes),
            Box::new(starts),
            Box::new(hashes),
            Box::new(leaves),
        ],
        whole,
        vec![Box::new(int("lockchain size", size)?)],
    ))
}

/// Returns the leaf index of one event, `None` without one.
pub(super) async fn event_leaf<C: GenericClient>(
    client: &C,
    case: CaseId,
    seq: u64,
) -> Result<Option<u64>, Error> {
    let Ok(seq) = i64::try_from(seq) else {
        return Ok(None);
    };
    let rows = query(
        client,
        EVENT_LEAF_SQL,
        &[&case.to_string(), &seq],
        "reading an event's leaf",
    )
    .await?;
    let Some(row) = rows.first() else {
        return Ok(None);
    };
    let leaf: Option<i64> = row
        .try_get(0)
        .map_err(|source| Error::Corrupt(Corruption::Value { column: 0, source }))?;
    leaf.map(|l| number(0, l)).transpose()
}

/// Decodes a checkpoint row (`size, root, note, at`).
pub(super) fn checkpoint_row(r: &Row) -> Result<CheckpointRecord, Error> {
    let value = |column: usize| move |source| Error::Corrupt(Corruption::Value { column, source });
    let size: i64 = r.try_get(0).map_err(value(0))?;
    let root: &[u8] = r.try_get(1).map_err(value(1))?;
    let root: Hash = root.try_into().map_err(|_| {
        Error::Lockchain(format!(
            "the checkpoint of size {size} has a root of {} bytes, not 32",
            root.len()
        ))
    })?;
    Ok(CheckpointRecord {
        size: number(0, size)?,
        root,
        note: r.try_get(2).map_err(value(2))?,
        at: Timestamp(r.try_get(3).map_err(value(3))?),
    })
}

/// Returns the parameters of [`PUT_CHECKPOINT_SQL`].
pub(super) fn checkpoint_params(c: &CheckpointRecord) -> Result<Vec<Param>, Error> {
    Ok(vec![
        Box::new(int("checkpoint size", c.size)?),
        Box::new(c.root.to_vec()),
        Box::new(c.note.clone()),
        Box::new(c.at.0),
    ])
}
