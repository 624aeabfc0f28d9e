//! The lockchain's rows in PostgreSQL: the tree's size (one head row), its tiles and the
//! signed checkpoints. The tree is the schema's, shared by every process on it.
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
use knhk_lockchain::{Hash, Tail, Tile, TileId};
use tokio_postgres::Row;
use tokio_postgres::types::ToSql;

use crate::error::{Corruption, Error};
use crate::lockchain::{hashes_blob, leaves_blob, tail_from, tile_from_row};
use crate::record::CheckpointRecord;

use super::pg;
use super::rows::Param;

/// The tree's size.
pub(super) const SIZE_SQL: &str = "SELECT size FROM lockchain_head";
/// The tree's size, locked until the transaction ends: taken before anything else by a
/// transaction that appends.
pub(super) const LOCK_SIZE_SQL: &str = "SELECT size FROM lockchain_head FOR UPDATE";
/// The tail tiles of the tree at its stored size (levels 0 to 6: trees below 2^56 leaves),
/// read after [`LOCK_SIZE_SQL`] in the same transaction, so at the locked size. Each tile is
/// one keyed read (the `LIMIT` keeps the planner from joining the whole table instead).
pub(super) const TAIL_TILES_SQL: &str = "SELECT t.level, t.idx, t.hashes, t.leaves
     FROM lockchain_head h
     CROSS JOIN generate_series(0, 6) AS l(level)
     CROSS JOIN LATERAL (
         SELECT * FROM lockchain_tiles
         WHERE level = l.level AND idx = h.size >> (8 * l.level + 8)
         LIMIT 1
     ) t
     WHERE l.level = 0 OR h.size >> (8 * l.level) > 0";
/// Tiles by their keys.
pub(super) const TILES_SQL: &str = "SELECT level, idx, hashes, leaves FROM lockchain_tiles
     WHERE (level, idx) IN (SELECT * FROM unnest($1::smallint[], $2::bigint[]))";
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
/// Writes the tiles an append changed.
pub(super) const PUT_TILES_SQL: &str = "INSERT INTO lockchain_tiles (level, idx, hashes, leaves)
     SELECT * FROM unnest($1::smallint[], $2::bigint[], $3::bytea[], $4::bytea[])
     ON CONFLICT (level, idx) DO UPDATE SET hashes = excluded.hashes, leaves = excluded.leaves";
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
    let mut found = HashMap::with_capacity(rows.len());
    for r in &rows {
        let tile = tile_row(r)?;
        found.insert(tile.id, tile);
    }
    Ok(ids.iter().filter_map(|id| found.remove(id)).collect())
}

/// Decodes a tile row (`level, idx, hashes, leaves`).
pub(super) fn tile_row(r: &Row) -> Result<Tile, Error> {
    let value = |column: usize| move |source| Error::Corrupt(Corruption::Value { column, source });
    let level: i16 = r.try_get(0).map_err(value(0))?;
    let idx: i64 = r.try_get(1).map_err(value(1))?;
    let hashes: &[u8] = r.try_get(2).map_err(value(2))?;
    let leaves: Option<&[u8]> = r.try_get(3).map_err(value(3))?;
    tile_from_row(i64::from(level), idx, hashes, leaves.unwrap_or(&[]))
}

/// Reads the tree's right edge: the tail tiles of a tree of `size` leaves.
pub(super) async fn tail<C: GenericClient>(client: &C, size: u64) -> Result<Tail, Error> {
    tail_from(size, tiles(client, &Tail::tail_ids(size)).await?)
}

/// Returns the parameters of [`PUT_TILES_SQL`] and [`SET_SIZE_SQL`] for an append that
/// changed `tiles` and made the tree `size` leaves.
pub(super) fn write_params(tiles: &[Tile], size: u64) -> Result<(Vec<Param>, Vec<Param>), Error> {
    let mut levels: Vec<i16> = Vec::with_capacity(tiles.len());
    let mut indexes: Vec<i64> = Vec::with_capacity(tiles.len());
    let mut hashes: Vec<Vec<u8>> = Vec::with_capacity(tiles.len());
    let mut leaves: Vec<Option<Vec<u8>>> = Vec::with_capacity(tiles.len());
    for t in tiles {
        levels.push(i16::from(t.id.level));
        indexes.push(int("tile index", t.id.index)?);
        hashes.push(hashes_blob(&t.hashes));
        leaves.push((t.id.level == 0).then(|| leaves_blob(&t.leaves)));
    }
    Ok((
        vec![
            Box::new(levels),
            Box::new(indexes),
            Box::new(hashes),
            Box::new(leaves),
        ],
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
