//! The commit path: committer tasks take every queued commit, write them in one transaction
//! whose statements are pipelined (sent without waiting for each answer), and acknowledge
//! them after the single `COMMIT`, so that many cases share its round trips and its flush.
//!
//! A commit is guarded by its case version: the case row is updated only where its stored
//! version is the expected one (or inserted only where there is none), and the other rows go
//! with it. The first try writes the whole batch at once; if any commit of it is refused (a
//! conflict, a duplicate key) or fails, the transaction is rolled back and the batch written
//! again with a savepoint per commit, so that each refused commit is rolled back alone with
//! its own typed error, as the SQLite writer does.
//!
//! A batch whose commits carry lockchain leaves locks the tree's head row first, right
//! after `BEGIN` and before any case row (`SELECT size ... FOR UPDATE`, see `lockchain.rs`),
//! and reads the tail tiles at that size, in the same pipeline as its commits' statements.
//! Each event's leaf index is the locked size plus the event's place among the group's
//! leaves, which the insert reads from the head row itself: no index is guessed, so nothing
//! is numbered again when another committer or node appended since. The changed tiles and
//! the new size go with the `COMMIT`, in one more round trip. Each committer keeps its own
//! copy of the tree's right edge; when the locked size is not its size, the edge is rebuilt
//! from the tiles read under the lock. It is dropped when a transaction that appended to it
//! fails.

use std::collections::BTreeMap;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};

use deadpool_postgres::{Client, Pool};
use futures_util::future::join_all;
use knhk_core::{CaseId, TimerId, WorkItemId};
use knhk_lockchain::{Hash, LeafRef, Tail};
use tokio::sync::{Mutex, mpsc, oneshot};
use tokio_postgres::error::SqlState;
use tracing::warn;

use crate::commit;
use crate::error::Error;
use crate::record::{Change, Commit, TimerRecord, WorkItemRecord};

use super::rows::{self, Param, refs};
use super::{lockchain, pg, pool_error};

/// A commit waiting for a committer, with where to send its outcome.
#[derive(Debug)]
pub(super) struct Job {
    pub(super) commit: Box<Commit>,
    pub(super) reply: oneshot::Sender<Result<(), Error>>,
}

/// Counts of the committers' work, shared with the store handle.
#[derive(Debug, Default)]
pub(super) struct Counters {
    pub(super) commits: AtomicU64,
    pub(super) batches: AtomicU64,
    pub(super) round_trips: AtomicU64,
}

/// How many times a batch that PostgreSQL aborted for a deadlock or a serialization failure
/// (another node's transaction locked the same cases in another order) is tried again.
const RETRIES: usize = 3;

/// Runs one committer until every sender is dropped and the queue is drained. Several share
/// the queue: each takes what is queued when it is free, so that one batch's transaction
/// overlaps another's flush.
pub(super) async fn run(
    pool: Pool,
    jobs: Arc<Mutex<mpsc::Receiver<Job>>>,
    max_batch: usize,
    counters: Arc<Counters>,
) {
    let max_batch = max_batch.max(1);
    // This committer's copy of the lockchain tree's right edge: `None` until read.
    let mut edge: Option<Tail> = None;
    loop {
        let mut batch = Vec::with_capacity(max_batch);
        {
            let mut queue = jobs.lock().await;
            if queue.recv_many(&mut batch, max_batch).await == 0 {
                return;
            }
        }
        write_batch(&pool, batch, &counters, &mut edge).await;
    }
}

async fn write_batch(pool: &Pool, batch: Vec<Job>, counters: &Counters, edge: &mut Option<Tail>) {
    // A commit that breaks the history rules on its own is refused before any round trip;
    // which error it gets (a conflict comes first, as in every backend) needs the stored
    // version, read then.
    let mut ready = Vec::with_capacity(batch.len());
    let mut refused = Vec::new();
    for job in batch {
        match commit::check(&job.commit, job.commit.expected_version) {
            Ok(()) => ready.push(job),
            Err(_) => refused.push(job),
        }
    }
    // Cases locked in one order by every batch of every node: no two batches wait for each
    // other in a cycle. Stable, so that two commits of one case keep their order.
    ready.sort_by_key(|j| j.commit.case.id);
    let client = match pool.get().await {
        Ok(client) => client,
        Err(e) => {
            let cause = Arc::new(pool_error("getting a connection to commit")(e));
            for job in ready.into_iter().chain(refused) {
                let _ = job.reply.send(Err(Error::Batch(Arc::clone(&cause))));
            }
            return;
        }
    };
    for job in refused {
        let stored = case_version(&client, job.commit.case.id).await;
        let result = stored.and_then(|stored| commit::check(&job.commit, stored));
        let _ = job.reply.send(result);
    }
    if ready.is_empty() {
        return;
    }
    let commits: Vec<&Commit> = ready.iter().map(|j| j.commit.as_ref()).collect();
    let mut outcome = write(&client, &commits, counters, edge).await;
    for _ in 0..RETRIES {
        match &outcome {
            Err(e) if retryable(e) => outcome = write(&client, &commits, counters, edge).await,
            _ => break,
        }
    }
    let results = match outcome {
        Ok(results) => {
            counters
                .commits
                .fetch_add(commits.len() as u64, Ordering::Relaxed);
            counters.batches.fetch_add(1, Ordering::Relaxed);
            results
        }
        Err(e) => {
            warn!(error = %e, commits = commits.len(), "group commit failed");
            let cause = Arc::new(e);
            commits
                .iter()
                .map(|_| Err(Error::Batch(Arc::clone(&cause))))
                .collect()
        }
    };
    for (job, result) in ready.into_iter().zip(results) {
        let _ = job.reply.send(result);
    }
}

/// Returns whether PostgreSQL aborted a transaction that may succeed when run again.
fn retryable(e: &Error) -> bool {
    match e {
        Error::Postgres { error, .. } => matches!(
            error.code(),
            Some(&SqlState::T_R_DEADLOCK_DETECTED) | Some(&SqlState::T_R_SERIALIZATION_FAILURE)
        ),
        _ => false,
    }
}

/// Writes the commits in one transaction: all at once when none is refused, else one
/// savepoint each. Returns each commit's outcome, valid once this returns `Ok` (committed).
async fn write(
    client: &Client,
    commits: &[&Commit],
    counters: &Counters,
    edge: &mut Option<Tail>,
) -> Result<Vec<Result<(), Error>>, Error> {
    let leaves = commits.iter().any(|c| !c.leaves.is_empty());
    if let Some(results) = write_at_once(client, commits, counters, edge, leaves).await? {
        return Ok(results);
    }
    let careful = write_one_by_one(client, commits, counters, edge, leaves).await;
    if careful.is_err() {
        // Whatever failed, the connection goes back to the pool outside a transaction.
        let _ = client.batch_execute("ROLLBACK").await;
    }
    careful
}

/// The tree's size, locked, and its tail tiles at that size, as read at the start of a
/// group.
struct Locked {
    size: u64,
    tiles: Vec<knhk_lockchain::Tile>,
}

/// Prepares the two statements that start a group with leaves: the head row's lock and the
/// read of the tail tiles.
async fn lock_statements(
    client: &Client,
) -> Result<(tokio_postgres::Statement, tokio_postgres::Statement), Error> {
    let lock = client
        .prepare_cached(lockchain::LOCK_SIZE_SQL)
        .await
        .map_err(pg("preparing a query"))?;
    let tails = client
        .prepare_cached(lockchain::TAIL_TILES_SQL)
        .await
        .map_err(pg("preparing a query"))?;
    Ok((lock, tails))
}

/// Sends the head row's lock and the read of the tail tiles (sent in this order, after
/// whatever was sent before them) and decodes the answers.
async fn lock_tree(
    client: &Client,
    statements: &(tokio_postgres::Statement, tokio_postgres::Statement),
    edge: &Option<Tail>,
) -> Result<Locked, Error> {
    let (lock, tails) = statements;
    // The tail tiles come back only when the stored size is not the edge's (-1: no edge).
    let known: i64 = edge
        .as_ref()
        .and_then(|t| i64::try_from(t.size()).ok())
        .unwrap_or(-1);
    let (size, tiles) =
        futures_util::future::join(client.query_one(lock, &[]), client.query(tails, &[&known]))
            .await;
    let size = size
        .map_err(pg("locking the lockchain's head"))
        .and_then(|r| rows::u64_col(&r, 0))?;
    let tiles = tiles.map_err(pg("reading the lockchain's tail tiles"))?;
    Ok(Locked {
        size,
        tiles: lockchain::tiles_of(&tiles)?,
    })
}

/// Writes the whole batch pipelined after `BEGIN` (and, with leaves, the head row's lock and
/// the tail tiles): one round trip, then one for the tiles and `COMMIT`. Returns `None`
/// (rolled back) when a commit was refused or failed alone: the batch is then written one
/// commit at a time.
async fn write_at_once(
    client: &Client,
    commits: &[&Commit],
    counters: &Counters,
    edge: &mut Option<Tail>,
    leaves: bool,
) -> Result<Option<Vec<Result<(), Error>>>, Error> {
    let mut plans = Vec::with_capacity(commits.len());
    let mut next = 0;
    for c in commits {
        let leaf = (!c.leaves.is_empty()).then_some(next);
        plans.push(Statements::prepare(client, c, leaf).await?);
        next += c.leaves.len() as u64;
    }
    let lock = match leaves {
        true => Some(lock_statements(client).await?),
        false => None,
    };
    // Sent in this order: the head row is locked before any case row.
    let begin = client.batch_execute("BEGIN");
    let locked = async {
        match &lock {
            Some(statements) => Some(lock_tree(client, statements, edge).await),
            None => None,
        }
    };
    let sent = join_all(plans.iter().map(|p| p.run(client)));
    let (begun, locked, answers) = futures_util::future::join3(begin, locked, sent).await;
    counters.round_trips.fetch_add(1, Ordering::Relaxed);
    begun.map_err(pg("beginning a batch"))?;
    if answers.iter().all(Answers::accepted) {
        let locked = match locked.transpose() {
            Ok(locked) => locked,
            Err(e) => {
                let _ = client.batch_execute("ROLLBACK").await;
                return Err(e);
            }
        };
        finish(client, counters, edge, locked, commits).await?;
        return Ok(Some(commits.iter().map(|_| Ok(())).collect()));
    }
    client
        .batch_execute("ROLLBACK")
        .await
        .map_err(pg("rolling back a batch"))?;
    counters.round_trips.fetch_add(1, Ordering::Relaxed);
    if let Some(fault) = answers.into_iter().find_map(Answers::fault) {
        // Not a refusal of one commit (the connection failed, the server aborted the
        // transaction): the whole batch fails, or is tried again, with that cause.
        if commits.len() == 1 || retryable(&fault) || fault_of_connection(&fault) {
            return Err(fault);
        }
    }
    Ok(None)
}

/// Writes the batch with one savepoint per commit, so that a refused commit alone rolls
/// back, after locking the head row when it carries leaves; the accepted commits' leaves are
/// numbered in turn.
async fn write_one_by_one(
    client: &Client,
    commits: &[&Commit],
    counters: &Counters,
    edge: &mut Option<Tail>,
    leaves: bool,
) -> Result<Vec<Result<(), Error>>, Error> {
    client
        .batch_execute("BEGIN")
        .await
        .map_err(pg("beginning a batch"))?;
    counters.round_trips.fetch_add(1, Ordering::Relaxed);
    let locked = if leaves {
        let statements = lock_statements(client).await?;
        let locked = lock_tree(client, &statements, edge).await?;
        counters.round_trips.fetch_add(1, Ordering::Relaxed);
        Some(locked)
    } else {
        None
    };
    let mut next = 0;
    let mut accepted: Vec<&Commit> = Vec::new();
    let mut results = Vec::with_capacity(commits.len());
    for c in commits {
        let leaf = (!c.leaves.is_empty()).then_some(next);
        let plan = Statements::prepare(client, c, leaf).await?;
        let save = client.batch_execute("SAVEPOINT knhk_commit");
        let (saved, answers) = futures_util::future::join(save, plan.run(client)).await;
        counters.round_trips.fetch_add(1, Ordering::Relaxed);
        saved.map_err(pg("opening a savepoint"))?;
        if answers.accepted() {
            client
                .batch_execute("RELEASE SAVEPOINT knhk_commit")
                .await
                .map_err(pg("releasing a savepoint"))?;
            next += c.leaves.len() as u64;
            accepted.push(c);
            results.push(Ok(()));
            continue;
        }
        client
            .batch_execute("ROLLBACK TO SAVEPOINT knhk_commit; RELEASE SAVEPOINT knhk_commit")
            .await
            .map_err(pg("rolling back a savepoint"))?;
        counters.round_trips.fetch_add(1, Ordering::Relaxed);
        // The fencing rules come first, as in every backend: read the lease and the owner
        // as they stand (the transaction is still open) and judge by them.
        if c.fencing.is_some()
            && let Err(e) = fencing(client, c).await?
        {
            results.push(Err(e));
            continue;
        }
        let refusal = match answers.refusal(c) {
            Refusal::Conflict => Error::Conflict {
                case: c.case.id,
                expected: c.expected_version,
                actual: case_version(client, c.case.id).await?,
            },
            Refusal::Other(e) if retryable(&e) || fault_of_connection(&e) => return Err(e),
            Refusal::Other(e) => e,
        };
        results.push(Err(refusal));
    }
    finish(client, counters, edge, locked, &accepted).await?;
    Ok(results)
}

/// Ends a batch's transaction. With the tree locked, appends the accepted commits' leaves to
/// the edge (rebuilt from the tail tiles read under the lock when another writer moved the
/// tree) and sends the changed tiles and the new size, pipelined with the `COMMIT`. When
/// that fails the edge is dropped: it may hold leaves that are not stored.
async fn finish(
    client: &Client,
    counters: &Counters,
    edge: &mut Option<Tail>,
    locked: Option<Locked>,
    accepted: &[&Commit],
) -> Result<(), Error> {
    let appended: Vec<(LeafRef, Hash)> = accepted
        .iter()
        .flat_map(|c| crate::lockchain::leaves_of(c))
        .collect();
    let Some(locked) = locked.filter(|_| !appended.is_empty()) else {
        client
            .batch_execute("COMMIT")
            .await
            .map_err(pg("committing a batch"))?;
        counters.round_trips.fetch_add(1, Ordering::Relaxed);
        return Ok(());
    };
    let result = write_tree(client, edge, locked, &appended).await;
    counters.round_trips.fetch_add(1, Ordering::Relaxed);
    if result.is_err() {
        *edge = None;
        // A failed statement makes PostgreSQL end the transaction at `COMMIT` by rolling
        // back; one that failed before sending it leaves it open.
        let _ = client.batch_execute("ROLLBACK").await;
    }
    result
}

/// Appends the leaves to the edge and sends the new segments, the full tiles to put in one
/// row, the new size and `COMMIT`.
async fn write_tree(
    client: &Client,
    edge: &mut Option<Tail>,
    locked: Locked,
    appended: &[(LeafRef, Hash)],
) -> Result<(), Error> {
    let put = client
        .prepare_cached(lockchain::PUT_SEGMENTS_SQL)
        .await
        .map_err(pg("preparing a statement"))?;
    let set = client
        .prepare_cached(lockchain::SET_SIZE_SQL)
        .await
        .map_err(pg("preparing a statement"))?;
    if edge.as_ref().map(Tail::size) != Some(locked.size) {
        *edge = None;
        *edge = Some(crate::lockchain::tail_from(locked.size, locked.tiles)?);
    }
    let tail = edge
        .as_mut()
        .ok_or_else(|| Error::Lockchain("the tree's edge was not read".to_owned()))?;
    let added = tail.append_segments(appended);
    let (segment_args, whole_args, size_args) = lockchain::write_params(&added, tail.size())?;
    let whole = client
        .prepare_cached(lockchain::WHOLE_TILE_SQL)
        .await
        .map_err(pg("preparing a statement"))?;
    let whole_refs: Vec<_> = whole_args.iter().map(|args| refs(args)).collect();
    let (segments, wholes, size, committed) = futures_util::future::join4(
        client.execute(&put, &refs(&segment_args)),
        futures_util::future::join_all(
            whole_refs
                .iter()
                .map(|args| client.execute(&whole, args.as_slice())),
        ),
        client.execute(&set, &refs(&size_args)),
        client.batch_execute("COMMIT"),
    )
    .await;
    segments.map_err(pg("storing lockchain tiles' segments"))?;
    for w in wholes {
        w.map_err(pg("putting a full lockchain tile in one row"))?;
    }
    if size.map_err(pg("storing the lockchain's size"))? != 1 {
        return Err(Error::Lockchain("the head row is missing".to_owned()));
    }
    committed.map_err(pg("committing a batch"))
}

/// Returns whether an error is the connection's rather than a statement's.
fn fault_of_connection(e: &Error) -> bool {
    match e {
        Error::Postgres { error, .. } => error.as_db_error().is_none() || error.is_closed(),
        _ => false,
    }
}

/// Checks a fenced commit against the lease of its node and the owner of its case as stored
/// now: the outer `Result` is the read's, the inner one the fencing's verdict.
async fn fencing(client: &Client, c: &Commit) -> Result<Result<(), Error>, Error> {
    let Some(f) = c.fencing else {
        return Ok(Ok(()));
    };
    let lease = match i64::try_from(f.node) {
        Ok(node) => {
            let st = client
                .prepare_cached(rows::LEASE_SQL)
                .await
                .map_err(pg("preparing a query"))?;
            let row = client
                .query_opt(&st, &[&node])
                .await
                .map_err(pg("reading a node's lease"))?;
            row.map(|r| rows::lease_row(&r)).transpose()?
        }
        Err(_) => None,
    };
    let st = client
        .prepare_cached(rows::CASE_OWNER_SQL)
        .await
        .map_err(pg("preparing a query"))?;
    let row = client
        .query_opt(&st, &[&c.case.id.to_string()])
        .await
        .map_err(pg("reading a case's owner"))?;
    let owner = row.map(|r| rows::owner_row(&r)).transpose()?.flatten();
    Ok(commit::check_fencing(c, lease, owner))
}

/// Reads the stored version of a case, `None` when it does not exist.
async fn case_version(client: &Client, case: CaseId) -> Result<Option<u64>, Error> {
    let st = client
        .prepare_cached(rows::CASE_VERSION_SQL)
        .await
        .map_err(pg("preparing a query"))?;
    let row = client
        .query_opt(&st, &[&case.to_string()])
        .await
        .map_err(pg("reading a case version"))?;
    row.map(|r| rows::u64_col(&r, 0)).transpose()
}

/// What a statement of a commit is for, where its answer decides the commit's outcome.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Role {
    /// The committing node's lease: no row means it expired.
    Fence,
    /// The case row, written only at the expected version: no row means a conflict.
    Guard,
    /// The idempotency key, inserted only if new: no row means a duplicate key.
    Key,
    Other,
}

/// The prepared statements of one commit, with their parameters.
struct Statements {
    list: Vec<(Role, tokio_postgres::Statement, Vec<Param>)>,
}

/// The answers to one commit's statements: rows changed, or the error.
struct Answers(Vec<(Role, Result<u64, Error>)>);

enum Refusal {
    Conflict,
    Other(Error),
}

impl Answers {
    fn accepted(&self) -> bool {
        self.0.iter().all(|(role, answer)| match (role, answer) {
            (_, Err(_)) => false,
            (Role::Fence | Role::Guard | Role::Key, Ok(n)) => *n > 0,
            (Role::Other, Ok(_)) => true,
        })
    }

    /// The first error that is not a refusal of the commit itself (nor the "transaction is
    /// aborted" that follows any error), if any.
    fn fault(self) -> Option<Error> {
        self.0.into_iter().find_map(|(_, answer)| match answer {
            Err(e) if !is_refusal(&e) && !is_aborted(&e) => Some(e),
            _ => None,
        })
    }

    /// Says why a commit was not accepted: a conflict first (as every backend orders its
    /// checks), then a duplicate key, else the first error.
    fn refusal(self, c: &Commit) -> Refusal {
        let mut first_error = None;
        let mut duplicate = false;
        for (role, answer) in self.0 {
            match (role, answer) {
                (Role::Fence | Role::Guard, Ok(0)) => return Refusal::Conflict,
                (Role::Key, Ok(0)) => duplicate = true,
                (_, Ok(_)) => {}
                (_, Err(e)) if is_aborted(&e) => {}
                (_, Err(e)) if unique_violation(&e).is_some_and(|c| c.starts_with("events")) => {
                    // Another writer's events at these seqs: it moved the case first.
                    return Refusal::Conflict;
                }
                (_, Err(e)) => {
                    first_error.get_or_insert(e);
                }
            }
        }
        match (duplicate, first_error, &c.idempotency) {
            (_, Some(e), Some(key))
                if unique_violation(&e).is_some_and(|c| c.starts_with("idempotency")) =>
            {
                Refusal::Other(Error::DuplicateKey(key.key.clone()))
            }
            (_, Some(e), _) => Refusal::Other(e),
            (true, None, Some(key)) => Refusal::Other(Error::DuplicateKey(key.key.clone())),
            // Every answer was fine: nothing refused it (cannot happen when not accepted).
            (_, None, _) => Refusal::Conflict,
        }
    }
}

/// Returns the constraint a unique violation names, if the error is one.
fn unique_violation(e: &Error) -> Option<&str> {
    match e {
        Error::Postgres { error, .. } if error.code() == Some(&SqlState::UNIQUE_VIOLATION) => {
            error.as_db_error().and_then(|db| db.constraint())
        }
        _ => None,
    }
}

fn is_refusal(e: &Error) -> bool {
    unique_violation(e).is_some()
}

fn is_aborted(e: &Error) -> bool {
    matches!(e, Error::Postgres { error, .. } if error.code() == Some(&SqlState::IN_FAILED_SQL_TRANSACTION))
}

fn int(what: &'static str, value: u64) -> Result<i64, Error> {
    i64::try_from(value).map_err(|_| Error::TooLarge { what, value })
}

fn json<T: serde::Serialize>(what: &'static str, value: &T) -> Result<String, Error> {
    serde_json::to_string(value).map_err(|source| Error::Encode { what, source })
}

const INSERT_CASE: &str = "INSERT INTO cases (id, workflow, status, data, marking, version,
       created_at, updated_at, in_flight, owner)
     VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10)
     ON CONFLICT (id) DO NOTHING";
const UPDATE_CASE: &str = "UPDATE cases SET workflow = $2, status = $3, data = $4, marking = $5,
       version = $6, created_at = $7, updated_at = $8, in_flight = $9, owner = $10
     WHERE id = $1 AND version = $11";
/// The guarded update of a step that feeds back the result of owned work: also only while
/// the case is still owned under the token the work was set going under (`$12`). A claim
/// changes the owner without the version, so the check must be in the update itself, which
/// PostgreSQL evaluates again on the row as the claim left it.
const UPDATE_CASE_FENCED: &str = "UPDATE cases SET workflow = $2, status = $3, data = $4,
       marking = $5, version = $6, created_at = $7, updated_at = $8, in_flight = $9, owner = $10
     WHERE id = $1 AND version = $11 AND owner IS NOT DISTINCT FROM $12";
/// The lease of the committing node (`$1`), alive at the step's time (`$2`); the share lock
/// keeps a renewal that would end it from passing the step.
const LIVE_LEASE: &str = "SELECT 1 FROM nodes WHERE fence = $1 AND expires_at > $2 FOR SHARE";
const INSERT_EVENTS: &str = "INSERT INTO events (case_id, seq, time, kind, payload)
     SELECT $1, * FROM unnest($2::bigint[], $3::bigint[], $4::text[], $5::text[])";
/// The events of a step that carries lockchain leaves, each with its leaf index: the tree's
/// size, which the group's transaction has locked, plus the event's place among the group's
/// leaves (`$6`).
const INSERT_EVENTS_WITH_LEAVES: &str = "INSERT INTO events (case_id, seq, time, kind, payload,
       leaf)
     SELECT $1, u.seq, u.time, u.kind, u.payload, (SELECT size FROM lockchain_head) + u.place
     FROM unnest($2::bigint[], $3::bigint[], $4::text[], $5::text[], $6::bigint[])
       AS u(seq, time, kind, payload, place)";
const DELETE_ROLES: &str = "DELETE FROM work_item_roles
     WHERE (case_id, item) IN (SELECT * FROM unnest($1::text[], $2::text[]))";
const DELETE_WORK_ITEMS: &str = "DELETE FROM work_items
     WHERE (case_id, id) IN (SELECT * FROM unnest($1::text[], $2::text[]))";
const PUT_WORK_ITEMS: &str = "INSERT INTO work_items (id, case_id, task, net_instance, instance,
       roles, allocation, state, owner, input, offered_at)
     SELECT * FROM unnest($1::text[], $2::text[], $3::text[], $4::bigint[], $5::bigint[],
       $6::text[], $7::text[], $8::text[], $9::text[], $10::text[], $11::bigint[])
     ON CONFLICT (case_id, id) DO UPDATE SET task = excluded.task,
       net_instance = excluded.net_instance, instance = excluded.instance,
       roles = excluded.roles, allocation = excluded.allocation, state = excluded.state,
       owner = excluded.owner, input = excluded.input, offered_at = excluded.offered_at";
const PUT_ROLES: &str = "INSERT INTO work_item_roles (case_id, item, role, offered_at)
     SELECT * FROM unnest($1::text[], $2::text[], $3::text[], $4::bigint[])
     ON CONFLICT DO NOTHING";
const DELETE_TIMERS: &str = "DELETE FROM timers
     WHERE (case_id, id) IN (SELECT * FROM unnest($1::text[], $2::text[]))";
const PUT_TIMERS: &str = "INSERT INTO timers (case_id, id, fires_at)
     SELECT * FROM unnest($1::text[], $2::text[], $3::bigint[])
     ON CONFLICT (case_id, id) DO UPDATE SET fires_at = excluded.fires_at";
const INSERT_KEY: &str = "INSERT INTO idempotency (case_id, key, response, at)
     VALUES ($1, $2, $3, $4) ON CONFLICT DO NOTHING";
const PUT_SNAPSHOT: &str = "INSERT INTO snapshots (case_id, seq, format, state)
     VALUES ($1, $2, $3, $4)
     ON CONFLICT (case_id) DO UPDATE SET
       seq = excluded.seq, format = excluded.format, state = excluded.state";

/// The statements' SQL, for the plans of the write path.
pub(super) const WRITES: [(&str, &str); 6] = [
    ("updating a case at its version", UPDATE_CASE),
    ("removing work items", DELETE_WORK_ITEMS),
    ("removing work items' roles", DELETE_ROLES),
    ("removing timers", DELETE_TIMERS),
    ("storing a work item", PUT_WORK_ITEMS),
    ("storing a timer", PUT_TIMERS),
];

impl Statements {
    /// Encodes a commit's rows and prepares its statements (cached on the connection, so
    /// no round trip after the first of each). With leaves, its events take the places
    /// from `first_place` on among the group's leaves.
    async fn prepare(
        client: &Client,
        c: &Commit,
        first_place: Option<u64>,
    ) -> Result<Statements, Error> {
        let mut list: Vec<(Role, &'static str, Vec<Param>)> = Vec::new();
        let case = &c.case;
        let id = case.id.to_string();
        let mut row: Vec<Param> = vec![
            Box::new(id.clone()),
            Box::new(case.workflow.to_string()),
            Box::new(case.status.as_str().to_owned()),
            Box::new(json("case data", &case.data)?),
            Box::new(json("a marking", &case.marking)?),
            Box::new(int("case version", case.version)?),
            Box::new(case.created_at.0),
            Box::new(case.updated_at.0),
            Box::new(case.in_flight),
            Box::new(case.owner.map(|o| int("fencing token", o)).transpose()?),
        ];
        if let Some(f) = c.fencing {
            let lease: Vec<Param> = vec![
                Box::new(int("fencing token", f.node)?),
                Box::new(case.updated_at.0),
            ];
            list.push((Role::Fence, LIVE_LEASE, lease));
        }
        let owned_by = c.fencing.and_then(|f| f.owned_by);
        match (c.expected_version, owned_by) {
            (None, _) => list.push((Role::Guard, INSERT_CASE, row)),
            (Some(v), None) => {
                row.push(Box::new(int("case version", v)?));
                list.push((Role::Guard, UPDATE_CASE, row));
            }
            (Some(v), Some(owner)) => {
                row.push(Box::new(int("case version", v)?));
                row.push(Box::new(Some(int("fencing token", owner)?)));
                list.push((Role::Guard, UPDATE_CASE_FENCED, row));
            }
        }
        if !c.events.is_empty() {
            let mut seqs = Vec::with_capacity(c.events.len());
            let mut times = Vec::with_capacity(c.events.len());
            let mut kinds = Vec::with_capacity(c.events.len());
            let mut payloads = Vec::with_capacity(c.events.len());
            for e in &c.events {
                seqs.push(int("event sequence number", e.seq)?);
                times.push(e.time.0);
                kinds.push(e.kind.name().to_owned());
                payloads.push(json("an event", &e.kind)?);
            }
            let mut args: Vec<Param> = vec![
                Box::new(id.clone()),
                Box::new(seqs),
                Box::new(times),
                Box::new(kinds),
                Box::new(payloads),
            ];
            let sql = match first_place {
                Some(first) => {
                    let first = int("a leaf's place in its group", first)?;
                    let places: Vec<i64> = (0..c.events.len() as i64).map(|i| first + i).collect();
                    args.push(Box::new(places));
                    INSERT_EVENTS_WITH_LEAVES
                }
                None => INSERT_EVENTS,
            };
            list.push((Role::Other, sql, args));
        }
        work_item_statements(&mut list, case.id, &c.work_items)?;
        timer_statements(&mut list, case.id, &c.timers);
        if let Some(k) = &c.idempotency {
            list.push((
                Role::Key,
                INSERT_KEY,
                vec![
                    Box::new(id.clone()),
                    Box::new(k.key.clone()),
                    Box::new(json("an idempotent response", &k.response)?),
                    Box::new(k.at.0),
                ],
            ));
        }
        if let Some(s) = &c.snapshot {
            list.push((
                Role::Other,
                PUT_SNAPSHOT,
                vec![
                    Box::new(id),
                    Box::new(int("snapshot sequence number", s.seq)?),
                    Box::new(i64::from(s.format)),
                    Box::new(s.state.clone()),
                ],
            ));
        }
        let mut prepared = Vec::with_capacity(list.len());
        for (role, sql, args) in list {
            let st = client
                .prepare_cached(sql)
                .await
                .map_err(pg("preparing a commit statement"))?;
            prepared.push((role, st, args));
        }
        Ok(Statements { list: prepared })
    }

    /// Sends every statement without waiting for the previous one's answer, then collects
    /// the answers in order.
    async fn run(&self, client: &Client) -> Answers {
        let args: Vec<Vec<&(dyn tokio_postgres::types::ToSql + Sync)>> =
            self.list.iter().map(|(_, _, a)| refs(a)).collect();
        let sent = self
            .list
            .iter()
            .zip(&args)
            .map(|((_, st, _), args)| client.execute(st, args));
        let answers = join_all(sent).await;
        Answers(
            self.list
                .iter()
                .zip(answers)
                .map(|((role, _, _), answer)| (*role, answer.map_err(pg("writing a commit"))))
                .collect(),
        )
    }
}

/// Adds the statements of a commit's work item changes: the last change of each item wins
/// (as applying them in order would leave it). A removed or replaced item loses its role rows
/// first; a stored one gets its roles again.
fn work_item_statements(
    list: &mut Vec<(Role, &'static str, Vec<Param>)>,
    case: CaseId,
    changes: &[Change<WorkItemId, WorkItemRecord>],
) -> Result<(), Error> {
    if changes.is_empty() {
        return Ok(());
    }
    let mut last: BTreeMap<WorkItemId, &Change<WorkItemId, WorkItemRecord>> = BTreeMap::new();
    for change in changes {
        let id = match change {
            Change::Put(w) => w.id,
            Change::Delete(id) => *id,
        };
        last.insert(id, change);
    }
    let (mut gone_cases, mut gone_ids) = (Vec::new(), Vec::new());
    let (mut role_cases, mut role_ids) = (Vec::new(), Vec::new());
    let mut put: Vec<&WorkItemRecord> = Vec::new();
    for change in last.values() {
        match change {
            Change::Put(w) => {
                role_cases.push(w.case_id.to_string());
                role_ids.push(w.id.to_string());
                put.push(w);
            }
            Change::Delete(id) => {
                role_cases.push(case.to_string());
                role_ids.push(id.to_string());
                gone_cases.push(case.to_string());
                gone_ids.push(id.to_string());
            }
        }
    }
    list.push((
        Role::Other,
        DELETE_ROLES,
        vec![Box::new(role_cases), Box::new(role_ids)],
    ));
    if !gone_ids.is_empty() {
        list.push((
            Role::Other,
            DELETE_WORK_ITEMS,
            vec![Box::new(gone_cases), Box::new(gone_ids)],
        ));
    }
    if put.is_empty() {
        return Ok(());
    }
    let mut cols: [Vec<String>; 8] = Default::default();
    let mut nums: [Vec<i64>; 3] = Default::default();
    let mut owners: Vec<Option<String>> = Vec::new();
    let (mut r_case, mut r_item, mut r_role, mut r_at) =
        (Vec::new(), Vec::new(), Vec::new(), Vec::new());
    for w in &put {
        let [id, case_id, task, roles, allocation, state, input, _] = &mut cols;
        id.push(w.id.to_string());
        case_id.push(w.case_id.to_string());
        task.push(w.task.clone());
        roles.push(json("work item roles", &w.roles)?);
        allocation.push(w.allocation.clone());
        state.push(w.state.clone());
        input.push(json("work item input", &w.input)?);
        let [net_instance, instance, offered_at] = &mut nums;
        net_instance.push(i64::from(w.net_instance));
        instance.push(i64::from(w.instance));
        offered_at.push(w.offered_at.0);
        owners.push(w.owner.clone());
        for role in &w.roles {
            r_case.push(w.case_id.to_string());
            r_item.push(w.id.to_string());
            r_role.push(role.clone());
            r_at.push(w.offered_at.0);
        }
    }
    let [id, case_id, task, roles, allocation, state, input, _] = cols;
    let [net_instance, instance, offered_at] = nums;
    list.push((
        Role::Other,
        PUT_WORK_ITEMS,
        vec![
            Box::new(id),
            Box::new(case_id),
            Box::new(task),
            Box::new(net_instance),
            Box::new(instance),
            Box::new(roles),
            Box::new(allocation),
            Box::new(state),
            Box::new(owners),
            Box::new(input),
            Box::new(offered_at),
        ],
    ));
    if !r_role.is_empty() {
        list.push((
            Role::Other,
            PUT_ROLES,
            vec![
                Box::new(r_case),
                Box::new(r_item),
                Box::new(r_role),
                Box::new(r_at),
            ],
        ));
    }
    Ok(())
}

/// Adds the statements of a commit's timer changes, the last change of each timer winning.
fn timer_statements(
    list: &mut Vec<(Role, &'static str, Vec<Param>)>,
    case: CaseId,
    changes: &[Change<TimerId, TimerRecord>],
) {
    let mut last: BTreeMap<TimerId, &Change<TimerId, TimerRecord>> = BTreeMap::new();
    for change in changes {
        let id = match change {
            Change::Put(t) => t.id,
            Change::Delete(id) => *id,
        };
        last.insert(id, change);
    }
    let (mut gone_cases, mut gone_ids) = (Vec::new(), Vec::new());
    let (mut cases, mut ids, mut at) = (Vec::new(), Vec::new(), Vec::new());
    for change in last.values() {
        match change {
            Change::Put(t) => {
                cases.push(t.case_id.to_string());
                ids.push(t.id.to_string());
                at.push(t.fires_at.0);
            }
            Change::Delete(id) => {
                gone_cases.push(case.to_string());
                gone_ids.push(id.to_string());
            }
        }
    }
    if !gone_ids.is_empty() {
        list.push((
            Role::Other,
            DELETE_TIMERS,
            vec![Box::new(gone_cases), Box::new(gone_ids)],
        ));
    }
    if !ids.is_empty() {
        list.push((
            Role::Other,
            PUT_TIMERS,
            vec![Box::new(cases), Box::new(ids), Box::new(at)],
        ));
    }
}
