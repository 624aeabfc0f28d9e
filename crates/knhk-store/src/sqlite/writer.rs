//! The writer thread: takes every queued write, runs them in one transaction with a savepoint
//! each, and acknowledges them after the single COMMIT (one fsync for the whole group).
//!
//! The lockchain's leaves of the commits in a group are appended to the tree once, after the
//! last commit: each accepted commit's events get the next leaf indexes as it is written, and
//! its leaves are set aside; a commit rolled back to its savepoint sets none aside. The new
//! tiles' segments (which give the new size) are written before the COMMIT, in the same
//! transaction, and
//! the writer's copy of the tree's edge is dropped when the transaction fails (it is read
//! again, in the next transaction that carries leaves).

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::mpsc;

use knhk_core::{CaseId, Event, Timestamp, WorkItemId};
use knhk_lockchain::{Hash, LeafRef, Tail};
use rusqlite::{Connection, OptionalExtension, TransactionBehavior, params};
use serde::Serialize;
use tokio::sync::oneshot;
use tracing::warn;

use crate::commit;
use crate::error::{Corruption, Error};
use crate::record::{
    CaseRecord, Change, CheckpointRecord, Commit, IdempotencyRecord, Orphans, QuarantineRecord,
    SnapshotRecord, TimerRecord, WorkItemRecord, WorkflowRecord,
};

use super::{lockchain, rows, sqlite};
use crate::lockchain::heads::{HeadHasher, Pending};

/// A write waiting for the writer thread, with where to send its outcome.
#[derive(Debug)]
pub(super) enum Job {
    Commit(Box<Commit>, oneshot::Sender<Result<(), Error>>),
    PutWorkflow(Box<WorkflowRecord>, oneshot::Sender<Result<(), Error>>),
    Quarantine(Box<QuarantineRecord>, oneshot::Sender<Result<(), Error>>),
    /// Adds one to a named sequence; answers the new value.
    Next(String, oneshot::Sender<Result<u64, Error>>),
    /// Marks a case at this version as having no work in flight; answers the rows changed.
    Settle(CaseId, u64, oneshot::Sender<Result<u64, Error>>),
    /// Takes a case out of the quarantine; answers the rows removed.
    Release(CaseId, oneshot::Sender<Result<u64, Error>>),
    /// Registers a node; answers its fencing token.
    Register(Box<Registration>, oneshot::Sender<Result<u64, Error>>),
    /// Renews a node's lease; answers the rows changed.
    Renew(Lease, oneshot::Sender<Result<u64, Error>>),
    /// Claims cases with work in flight for a node.
    ClaimCases(CaseClaim, oneshot::Sender<Result<Vec<CaseId>, Error>>),
    /// Claims due timers for a node.
    ClaimTimers(TimerClaim, oneshot::Sender<Result<Vec<TimerRecord>, Error>>),
    /// Stores a lockchain checkpoint; answers the rows inserted.
    Checkpoint(Box<CheckpointRecord>, oneshot::Sender<Result<u64, Error>>),
}

/// A node to register.
#[derive(Debug)]
pub(super) struct Registration {
    pub(super) name: String,
    pub(super) now: Timestamp,
    pub(super) expires_at: Timestamp,
}

/// A lease to renew: the node's token, now, and the new expiry.
#[derive(Debug)]
pub(super) struct Lease {
    pub(super) fence: u64,
    pub(super) now: Timestamp,
    pub(super) expires_at: Timestamp,
}

/// A claim of cases with work in flight.
#[derive(Debug)]
pub(super) struct CaseClaim {
    pub(super) fence: u64,
    pub(super) now: Timestamp,
    pub(super) which: Orphans,
    pub(super) limit: usize,
}

/// A claim of due timers.
#[derive(Debug)]
pub(super) struct TimerClaim {
    pub(super) fence: u64,
    pub(super) now: Timestamp,
    pub(super) until: Timestamp,
    pub(super) limit: usize,
}

/// What a write gives back when it succeeds.
#[derive(Debug)]
enum Outcome {
    Count(u64),
    Cases(Vec<CaseId>),
    Timers(Vec<TimerRecord>),
}

impl Outcome {
    fn count(self) -> u64 {
        match self {
            Outcome::Count(n) => n,
            Outcome::Cases(c) => c.len() as u64,
            Outcome::Timers(t) => t.len() as u64,
        }
    }
}

impl Job {
    fn reply(self, result: Result<Outcome, Error>) {
        // A caller that stopped waiting (its future was dropped) does not need the answer;
        // the write itself stands.
        match self {
            Job::Commit(_, tx) | Job::PutWorkflow(_, tx) | Job::Quarantine(_, tx) => {
                let _ = tx.send(result.map(drop));
            }
            Job::Next(_, tx)
            | Job::Settle(_, _, tx)
            | Job::Release(_, tx)
            | Job::Register(_, tx)
            | Job::Renew(_, tx)
            | Job::Checkpoint(_, tx) => {
                let _ = tx.send(result.map(Outcome::count));
            }
            Job::ClaimCases(_, tx) => {
                let _ = tx.send(result.map(|o| match o {
                    Outcome::Cases(c) => c,
                    _ => Vec::new(),
                }));
            }
            Job::ClaimTimers(_, tx) => {
                let _ = tx.send(result.map(|o| match o {
                    Outcome::Timers(t) => t,
                    _ => Vec::new(),
                }));
            }
        }
    }
}

/// Counts of the writer's work, shared with the store handle.
#[derive(Debug, Default)]
pub(super) struct Counters {
    pub(super) commits: AtomicU64,
    pub(super) batches: AtomicU64,
}

/// Runs until every sender is dropped and the queue is drained.
pub(super) fn run(
    mut conn: Connection,
    jobs: mpsc::Receiver<Job>,
    max_batch: usize,
    counters: Arc<Counters>,
) {
    let max_batch = max_batch.max(1);
    let mut batch = Vec::with_capacity(max_batch);
    // The lockchain tree's right edge, read in the first transaction that carries leaves,
    // and the thread that hashes the tiles a group fills while the group is written.
    let mut tree: Option<Tail> = None;
    let hasher = HeadHasher::start();
    while let Ok(first) = jobs.recv() {
        batch.push(first);
        while batch.len() < max_batch {
            match jobs.try_recv() {
                Ok(job) => batch.push(job),
                Err(_) => break,
            }
        }
        write_batch(&mut conn, &mut batch, &counters, &mut tree, &hasher);
    }
}

fn write_batch(
    conn: &mut Connection,
    batch: &mut Vec<Job>,
    counters: &Counters,
    tree: &mut Option<Tail>,
    hasher: &HeadHasher,
) {
    let results = match run_transaction(conn, batch, tree, hasher) {
        Ok(results) => {
            let commits = batch
                .iter()
                .filter(|j| matches!(j, Job::Commit(..)))
                .count();
            counters
                .commits
                .fetch_add(commits as u64, Ordering::Relaxed);
            counters.batches.fetch_add(1, Ordering::Relaxed);
            results
        }
        Err(e) => {
            // Nothing of the batch is stored: every write in it fails with the same cause.
            // The tree's edge may hold leaves of the batch: it is read again when next needed.
            *tree = None;
            warn!(error = %e, writes = batch.len(), "group commit failed");
            let cause = Arc::new(e);
            batch
                .iter()
                .map(|_| Err(Error::Batch(Arc::clone(&cause))))
                .collect()
        }
    };
    for (job, result) in batch.drain(..).zip(results) {
        job.reply(result);
    }
}

/// Runs the batch in one transaction; a write that breaks a rule is rolled back to its
/// savepoint alone. Returns each write's outcome, valid only once this returns `Ok`.
fn run_transaction(
    conn: &mut Connection,
    batch: &[Job],
    tree: &mut Option<Tail>,
    hasher: &HeadHasher,
) -> Result<Vec<Result<Outcome, Error>>, Error> {
    let mut tx = conn
        .transaction_with_behavior(TransactionBehavior::Immediate)
        .map_err(sqlite("beginning a batch"))?;
    // Only a batch with leaves reads the tree's size: one keyed read, under the write lock.
    let carries_leaves = batch
        .iter()
        .any(|j| matches!(j, Job::Commit(c, _) if !c.leaves.is_empty()));
    let mut next_leaf = 0;
    let mut ahead = Pending::none();
    if carries_leaves {
        let size = lockchain::size(&tx)?;
        if tree.as_ref().map(Tail::size) != Some(size) {
            *tree = Some(lockchain::tail(&tx)?);
        }
        next_leaf = size;
        // The tiles the group fills if every commit is accepted, hashed while it is written.
        if let Some(t) = tree.as_ref() {
            let leaves: Vec<&[Hash]> = batch
                .iter()
                .filter_map(|j| match j {
                    Job::Commit(c, _) => Some(c.leaves.as_slice()),
                    _ => None,
                })
                .collect();
            ahead = hasher.ahead(t.leaf_tail(), &leaves);
        }
    }
    let mut appended: Vec<(LeafRef, Hash)> = Vec::with_capacity(
        batch
            .iter()
            .map(|j| match j {
                Job::Commit(c, _) => c.leaves.len(),
                _ => 0,
            })
            .sum(),
    );
    let mut results = Vec::with_capacity(batch.len());
    for job in batch {
        let sp = tx.savepoint().map_err(sqlite("opening a savepoint"))?;
        let outcome = match job {
            Job::Commit(c, _) => apply_commit(&sp, c, next_leaf).map(|()| Outcome::Count(0)),
            Job::PutWorkflow(w, _) => insert_workflow(&sp, w).map(|()| Outcome::Count(0)),
            Job::Quarantine(q, _) => insert_quarantine(&sp, q).map(|()| Outcome::Count(0)),
            Job::Next(name, _) => next_in_sequence(&sp, name).map(Outcome::Count),
            Job::Settle(case, version, _) => {
                settle_in_flight(&sp, *case, *version).map(Outcome::Count)
            }
            Job::Register(r, _) => register_node(&sp, r).map(Outcome::Count),
            Job::Renew(l, _) => renew_lease(&sp, l).map(Outcome::Count),
            Job::ClaimCases(c, _) => claim_cases(&sp, c).map(Outcome::Cases),
            Job::ClaimTimers(t, _) => claim_timers(&sp, t).map(Outcome::Timers),
            Job::Release(case, _) => release_quarantine(&sp, *case).map(Outcome::Count),
            Job::Checkpoint(c, _) => lockchain::put_checkpoint(&sp, c).map(Outcome::Count),
        };
        let outcome = match outcome {
            Ok(n) => {
                sp.commit().map_err(sqlite("releasing a savepoint"))?;
                if let Job::Commit(c, _) = job
                    && !c.leaves.is_empty()
                {
                    appended.extend(crate::lockchain::leaves_of(c));
                    next_leaf += c.leaves.len() as u64;
                }
                Ok(n)
            }
            // Some faults (a full disk, an I/O error) make SQLite roll the whole transaction
            // back by itself: the savepoint is gone with it, and the write's own error is the
            // cause the whole batch fails with.
            Err(e) if sp.is_autocommit() => return Err(e),
            // The savepoint rolls back on finish; if even that fails the transaction may hold
            // half a write, so the whole batch is abandoned.
            Err(e) => {
                sp.finish().map_err(sqlite("rolling back a savepoint"))?;
                Err(e)
            }
        };
        results.push(outcome);
    }
    if !appended.is_empty() {
        let tail = tree
            .as_mut()
            .ok_or_else(|| Error::Lockchain("the tree's edge was not read".to_owned()))?;
        let heads = ahead.heads();
        let added = tail.append_segments_with(&appended, &mut |entries| heads.head_of(entries));
        lockchain::write(&tx, &added)?;
    }
    tx.commit().map_err(sqlite("committing a batch"))?;
    Ok(results)
}

fn json<T: Serialize>(what: &'static str, value: &T) -> Result<String, Error> {
    serde_json::to_string(value).map_err(|source| Error::Encode { what, source })
}

fn int(what: &'static str, value: u64) -> Result<i64, Error> {
    i64::try_from(value).map_err(|_| Error::TooLarge { what, value })
}

fn next_in_sequence(conn: &Connection, name: &str) -> Result<u64, Error> {
    let value: i64 = conn
        .prepare_cached(
            "INSERT INTO sequences (name, value) VALUES (?1, 1)
             ON CONFLICT (name) DO UPDATE SET value = value + 1
             RETURNING value",
        )
        .and_then(|mut st| st.query_row(params![name], |r| r.get(0)))
        .map_err(sqlite("advancing a sequence"))?;
    u64::try_from(value).map_err(|_| {
        Error::Corrupt(Corruption::Sequence {
            name: name.to_owned(),
            value,
        })
    })
}

fn register_node(conn: &Connection, r: &Registration) -> Result<u64, Error> {
    let fence: i64 = conn
        .prepare_cached(
            "INSERT INTO nodes (name, started_at, expires_at) VALUES (?1, ?2, ?3) RETURNING fence",
        )
        .and_then(|mut s| s.query_row(params![r.name, r.now.0, r.expires_at.0], |r| r.get(0)))
        .map_err(sqlite("registering a node"))?;
    u64::try_from(fence).map_err(|_| {
        Error::Corrupt(Corruption::Number {
            column: 0,
            value: fence,
        })
    })
}

fn renew_lease(conn: &Connection, l: &Lease) -> Result<u64, Error> {
    let Ok(fence) = i64::try_from(l.fence) else {
        return Ok(0);
    };
    let changed = conn
        .prepare_cached("UPDATE nodes SET expires_at = ?3 WHERE fence = ?1 AND expires_at > ?2")
        .and_then(|mut s| s.execute(params![fence, l.now.0, l.expires_at.0]))
        .map_err(sqlite("renewing a node's lease"))?;
    Ok(changed as u64)
}

/// Refuses a node whose lease has expired at `now`.
fn check_live(conn: &Connection, fence: u64, now: Timestamp) -> Result<(), Error> {
    match rows::lease(conn, fence)? {
        Some(expires_at) if expires_at > now => Ok(()),
        _ => Err(Error::LeaseExpired { fence }),
    }
}

fn claim_cases(conn: &Connection, c: &CaseClaim) -> Result<Vec<CaseId>, Error> {
    check_live(conn, c.fence, c.now)?;
    let fence = int("fencing token", c.fence)?;
    let limit = i64::try_from(c.limit).unwrap_or(i64::MAX);
    let mut claimed = Vec::new();
    if c.which == Orphans::AlsoUnowned {
        claimed = rows::claim_cases(conn, rows::CLAIM_UNOWNED_SQL, params![fence, limit])?;
    }
    let left = limit.saturating_sub(i64::try_from(claimed.len()).unwrap_or(i64::MAX));
    if left > 0 {
        claimed.extend(rows::claim_cases(
            conn,
            rows::CLAIM_DEAD_SQL,
            params![fence, c.now.0, left],
        )?);
    }
    claimed.sort_unstable();
    Ok(claimed.into_iter().map(|(_, id)| id).collect())
}

fn claim_timers(conn: &Connection, t: &TimerClaim) -> Result<Vec<TimerRecord>, Error> {
    check_live(conn, t.fence, t.now)?;
    let fence = int("fencing token", t.fence)?;
    let limit = i64::try_from(t.limit).unwrap_or(i64::MAX);
    rows::claim_timers(conn, params![fence, t.now.0, t.until.0, limit])
}

fn settle_in_flight(conn: &Connection, case: CaseId, version: u64) -> Result<u64, Error> {
    let Ok(version) = i64::try_from(version) else {
        return Ok(0);
    };
    let changed = conn
        .prepare_cached(rows::SETTLE_IN_FLIGHT_SQL)
        .and_then(|mut s| s.execute(params![case.to_string(), version]))
        .map_err(sqlite("settling a case's work in flight"))?;
    Ok(changed as u64)
}

fn insert_quarantine(conn: &Connection, q: &QuarantineRecord) -> Result<(), Error> {
    conn.prepare_cached(
        "INSERT INTO quarantine (case_id, reason, at) VALUES (?1, ?2, ?3)
         ON CONFLICT (case_id) DO NOTHING",
    )
    .and_then(|mut s| s.execute(params![q.case.to_string(), q.reason, q.at.0]))
    .map(drop)
    .map_err(sqlite("quarantining a case"))
}

/// Removes a case from the quarantine.
pub(super) const RELEASE_QUARANTINE_SQL: &str = "DELETE FROM quarantine WHERE case_id = ?1";

fn release_quarantine(conn: &Connection, case: CaseId) -> Result<u64, Error> {
    let removed = conn
        .prepare_cached(RELEASE_QUARANTINE_SQL)
        .and_then(|mut s| s.execute(params![case.to_string()]))
        .map_err(sqlite("releasing a case from quarantine"))?;
    Ok(removed as u64)
}

fn insert_workflow(conn: &Connection, w: &WorkflowRecord) -> Result<(), Error> {
    let id = w.id.to_string();
    if rows::exists(conn, "SELECT 1 FROM workflows WHERE id = ?1", &id)? {
        return Err(Error::DuplicateWorkflow(w.id));
    }
    // The writer holds the file's write lock for the whole batch, so no other process can
    // take this version between the check and the insert; the unique index backs it up.
    let taken = conn
        .prepare_cached("SELECT 1 FROM workflows WHERE uri = ?1 AND version = ?2")
        .and_then(|mut s| s.exists(params![w.uri, w.version]))
        .map_err(sqlite("looking up a workflow version"))?;
    if taken {
        return Err(Error::DuplicateVersion {
            uri: w.uri.clone(),
            version: w.version,
        });
    }
    let spec = json("a workflow's specification", &w.spec)?;
    conn.prepare_cached(
        "INSERT INTO workflows (id, name, version, format, source, spec, registered_at, uri)
         VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8)",
    )
    .and_then(|mut s| {
        s.execute(params![
            id,
            w.name,
            w.version,
            w.format,
            w.source,
            spec,
            w.registered_at.0,
            w.uri
        ])
    })
    .map(drop)
    .map_err(sqlite("inserting a workflow"))
}

/// Carries an encoding error through a rusqlite closure.
fn to_sql(e: Error) -> rusqlite::Error {
    rusqlite::Error::ToSqlConversionFailure(Box::new(e))
}

/// Writes one commit; its events get the leaf indexes from `first_leaf` on when it carries
/// leaves.
fn apply_commit(conn: &Connection, c: &Commit, first_leaf: u64) -> Result<(), Error> {
    if let Some(f) = c.fencing {
        commit::check_fencing(
            c,
            rows::lease(conn, f.node)?,
            rows::case_owner(conn, c.case.id)?,
        )?;
    }
    commit::check(c, rows::case_version(conn, c.case.id)?)?;
    if let Some(i) = &c.idempotency
        && rows::exists(conn, "SELECT 1 FROM idempotency WHERE key = ?1", &i.key)?
    {
        return Err(Error::DuplicateKey(i.key.clone()));
    }
    put_case(conn, &c.case)?;
    let first_leaf = (!c.leaves.is_empty()).then_some(first_leaf);
    insert_events(conn, c.case.id, &c.events, first_leaf)?;
    for change in &c.work_items {
        match change {
            Change::Put(w) => put_work_item(conn, w)?,
            Change::Delete(id) => {
                // The role rows first: they are found through the item's stored row.
                remove_roles(conn, id)?;
                delete(conn, "DELETE FROM work_items WHERE id = ?1", id)?;
            }
        }
    }
    for change in &c.timers {
        match change {
            Change::Put(t) => conn
                .prepare_cached(
                    "INSERT OR REPLACE INTO timers (id, case_id, fires_at) VALUES (?1, ?2, ?3)",
                )
                .and_then(|mut s| {
                    s.execute(params![
                        t.id.to_string(),
                        t.case_id.to_string(),
                        t.fires_at.0
                    ])
                })
                .map(drop)
                .map_err(sqlite("storing a timer"))?,
            Change::Delete(id) => delete(conn, "DELETE FROM timers WHERE id = ?1", id)?,
        }
    }
    if let Some(i) = &c.idempotency {
        insert_idempotency(conn, i)?;
    }
    if let Some(snapshot) = &c.snapshot {
        put_snapshot(conn, c.case.id, snapshot)?;
    }
    Ok(())
}

/// Replaces a case's snapshot (by its key): only the latest is kept.
const PUT_SNAPSHOT: &str = "INSERT INTO snapshots (case_id, seq, format, state)
     VALUES (?1, ?2, ?3, ?4)
     ON CONFLICT (case_id) DO UPDATE SET
       seq = excluded.seq, format = excluded.format, state = excluded.state";

fn put_snapshot(conn: &Connection, case: CaseId, s: &SnapshotRecord) -> Result<(), Error> {
    conn.prepare_cached(PUT_SNAPSHOT)
        .and_then(|mut stmt| {
            stmt.execute(params![
                case.to_string(),
                int("snapshot sequence number", s.seq).map_err(to_sql)?,
                i64::from(s.format),
                s.state
            ])
        })
        .map(drop)
        .map_err(sqlite("storing a snapshot"))
}

fn delete(conn: &Connection, sql: &str, id: &impl ToString) -> Result<(), Error> {
    conn.prepare_cached(sql)
        .and_then(|mut s| s.execute([id.to_string()]))
        .map(drop)
        .map_err(sqlite("deleting a row"))
}

fn put_case(conn: &Connection, c: &CaseRecord) -> Result<(), Error> {
    // An upsert, not REPLACE: replacing would delete the row its events reference.
    let data = json("case data", &c.data)?;
    let marking = json("a marking", &c.marking)?;
    conn.prepare_cached(
        "INSERT INTO cases (id, workflow, status, data, marking, version, created_at, updated_at,
                            in_flight, owner)
         VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10)
         ON CONFLICT (id) DO UPDATE SET
           workflow = excluded.workflow, status = excluded.status, data = excluded.data,
           marking = excluded.marking, version = excluded.version,
           created_at = excluded.created_at, updated_at = excluded.updated_at,
           in_flight = excluded.in_flight, owner = excluded.owner",
    )
    .and_then(|mut s| {
        s.execute(params![
            c.id.to_string(),
            c.workflow.to_string(),
            c.status.as_str(),
            data,
            marking,
            int("case version", c.version).map_err(to_sql)?,
            c.created_at.0,
            c.updated_at.0,
            i64::from(c.in_flight),
            c.owner
                .map(|o| int("fencing token", o))
                .transpose()
                .map_err(to_sql)?
        ])
    })
    .map(drop)
    .map_err(sqlite("storing a case"))
}

/// The sizes of the multi-row inserts a step's events are written with, largest first: a
/// step of empty tasks gains three events a task, and one statement of many rows costs far
/// less than as many statements of one (one program start, one reset, one row check each).
const EVENT_ROWS: [usize; 3] = [32, 8, 1];

/// Returns the statement inserting `rows` events (one of [`EVENT_ROWS`]), with their leaf
/// indexes or without (the column left `NULL`).
fn insert_events_sql(rows: usize, with_leaf: bool) -> &'static str {
    static SQL: std::sync::OnceLock<[[String; 3]; 2]> = std::sync::OnceLock::new();
    let all = SQL.get_or_init(|| {
        [false, true].map(|leaf| {
            EVENT_ROWS.map(|n| {
                let (columns, row) = if leaf {
                    (
                        "case_id, seq, time, kind, payload, leaf",
                        "(?, ?, ?, ?, ?, ?)",
                    )
                } else {
                    ("case_id, seq, time, kind, payload", "(?, ?, ?, ?, ?)")
                };
                let mut sql = format!("INSERT INTO events ({columns}) VALUES ");
                for i in 0..n {
                    if i > 0 {
                        sql.push_str(", ");
                    }
                    sql.push_str(row);
                }
                sql
            })
        })
    });
    let at = EVENT_ROWS.iter().position(|&n| n == rows).unwrap_or(2);
    all[usize::from(with_leaf)]
        .get(at)
        .map_or("", String::as_str)
}

/// Appends a step's events, as few statements as [`EVENT_ROWS`] allows; with `first_leaf`,
/// event `i` gets the leaf index `first_leaf + i`.
fn insert_events(
    conn: &Connection,
    case: CaseId,
    events: &[Event],
    first_leaf: Option<u64>,
) -> Result<(), Error> {
    let case = case.to_string();
    let mut leaf = first_leaf;
    let mut rest = events;
    while !rest.is_empty() {
        let rows = EVENT_ROWS
            .into_iter()
            .find(|&n| n <= rest.len())
            .unwrap_or(1);
        let (chunk, after) = rest.split_at(rows.min(rest.len()));
        let payloads = chunk
            .iter()
            .map(|e| json("an event", &e.kind))
            .collect::<Result<Vec<_>, _>>()?;
        let mut stmt = conn
            .prepare_cached(insert_events_sql(chunk.len(), leaf.is_some()))
            .map_err(sqlite("appending an event"))?;
        let mut at = 1;
        for (e, payload) in chunk.iter().zip(&payloads) {
            let seq = int("event sequence number", e.seq)?;
            stmt.raw_bind_parameter(at, &case)
                .and_then(|()| stmt.raw_bind_parameter(at + 1, seq))
                .and_then(|()| stmt.raw_bind_parameter(at + 2, e.time.0))
                .and_then(|()| stmt.raw_bind_parameter(at + 3, e.kind.name()))
                .and_then(|()| stmt.raw_bind_parameter(at + 4, payload))
                .map_err(sqlite("appending an event"))?;
            at += 5;
            if let Some(l) = leaf {
                stmt.raw_bind_parameter(at, int("leaf index", l)?)
                    .map_err(sqlite("appending an event"))?;
                at += 1;
                leaf = Some(l + 1);
            }
        }
        stmt.raw_execute().map_err(sqlite("appending an event"))?;
        rest = after;
    }
    Ok(())
}

fn put_work_item(conn: &Connection, w: &WorkItemRecord) -> Result<(), Error> {
    // The roles' index rows follow the item's, replaced whole as it is: those of the stored
    // row (found through it) go before it is replaced.
    remove_roles(conn, &w.id)?;
    let roles = json("work item roles", &w.roles)?;
    let input = json("work item input", &w.input)?;
    conn.prepare_cached(
        "INSERT OR REPLACE INTO work_items (id, case_id, task, net_instance, instance, roles,
           allocation, state, owner, input, offered_at)
         VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11)",
    )
    .and_then(|mut s| {
        s.execute(params![
            w.id.to_string(),
            w.case_id.to_string(),
            w.task,
            w.net_instance,
            w.instance,
            roles,
            w.allocation,
            w.state,
            w.owner,
            input,
            w.offered_at.0
        ])
    })
    .map(drop)
    .map_err(sqlite("storing a work item"))?;
    for role in &w.roles {
        conn.prepare_cached(
            "INSERT OR IGNORE INTO work_item_roles (role, offered_at, item) VALUES (?1, ?2, ?3)",
        )
        .and_then(|mut s| s.execute(params![role, w.offered_at.0, w.id.to_string()]))
        .map_err(sqlite("storing a work item's role"))?;
    }
    Ok(())
}

/// Removes the role rows of one stored work item, each by the table's key: its roles and offer
/// time as its stored row has them (nothing for an item not stored yet, the common case).
fn remove_roles(conn: &Connection, item: &WorkItemId) -> Result<(), Error> {
    let id = item.to_string();
    let stored: Option<(String, i64)> = conn
        .prepare_cached(ROLES_OF_ITEM)
        .and_then(|mut s| {
            s.query_row([&id], |r| Ok((r.get(0)?, r.get(1)?)))
                .optional()
        })
        .map_err(sqlite("reading a work item's roles"))?;
    let Some((roles, offered_at)) = stored else {
        return Ok(());
    };
    let Ok(roles) = serde_json::from_str::<Vec<String>>(&roles) else {
        // Roles that do not decode: let SQLite find whatever rows they gave.
        return delete(conn, DELETE_ROLES, item);
    };
    for role in roles {
        conn.prepare_cached(DELETE_ROLE)
            .and_then(|mut s| s.execute(params![role, offered_at, id]))
            .map_err(sqlite("deleting a work item's role"))?;
    }
    Ok(())
}

/// The roles and offer time of a stored work item.
pub(super) const ROLES_OF_ITEM: &str = "SELECT roles, offered_at FROM work_items WHERE id = ?1";
/// Removes one role row of a work item, by the table's key.
pub(super) const DELETE_ROLE: &str =
    "DELETE FROM work_item_roles WHERE role = ?1 AND offered_at = ?2 AND item = ?3";

/// Removes the role rows of one stored work item, found by the table's key through the item's
/// row (its roles and offer time), so that no index by item is needed.
pub(super) const DELETE_ROLES: &str = "DELETE FROM work_item_roles
     WHERE item = ?1
       AND offered_at = (SELECT offered_at FROM work_items WHERE id = ?1)
       AND role IN (SELECT r.value FROM work_items AS w, json_each(w.roles) AS r
                    WHERE w.id = ?1 AND json_valid(w.roles))";

fn insert_idempotency(conn: &Connection, i: &IdempotencyRecord) -> Result<(), Error> {
    let response = json("an idempotent response", &i.response)?;
    conn.prepare_cached("INSERT INTO idempotency (key, response, at) VALUES (?1, ?2, ?3)")
        .and_then(|mut s| s.execute(params![i.key, response, i.at.0]))
        .map(drop)
        .map_err(sqlite("storing an idempotency key"))
}
