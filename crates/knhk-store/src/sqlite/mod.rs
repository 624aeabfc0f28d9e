//! The embedded SQLite backend: one file in WAL mode, one writer thread doing group commit,
//! a small pool of read-only connections.
//!
//! Durability: by default the file runs `synchronous=FULL`, so `commit` returns only after the
//! WAL holding the step is fsynced. `synchronous_full: false` selects `NORMAL`, which syncs only
//! at checkpoints: faster, still consistent after a crash, but a power loss can lose commits
//! that were already acknowledged. It is never the default.
//!
//! Throughput comes from grouping, not from weaker syncing: concurrent commits (of any cases)
//! queue for the writer thread, which runs everything queued as one transaction with a
//! savepoint per commit, so a commit that breaks a rule is rolled back alone, and all of them
//! share one fsync.

mod check;
mod lockchain;
mod marker;
mod plans;
mod readonly;
mod rows;
mod schema;
mod writer;

use knhk_core::WorkflowId;
use std::fmt;
use std::path::{Path, PathBuf};
use std::sync::atomic::Ordering;
use std::sync::{Arc, Mutex, mpsc};
use std::thread::JoinHandle;

use knhk_core::{CaseId, CaseStatus, Event, Timestamp, WorkItemId};
use rusqlite::Connection;
use tokio::sync::{Semaphore, oneshot};
use tracing::warn;

use crate::error::Error;
use crate::plan::QueryPlan;
use crate::record::{
    CaseFilter, CaseRecord, CheckpointRecord, Commit, IdempotencyRecord, NodeRecord, Orphans,
    QuarantineRecord, SnapshotRecord, TimerRecord, TreeHead, WorkItemFilter, WorkItemRecord,
    WorkflowRecord, WorkflowSummary,
};
use crate::store::Store;

pub use plans::{GROWING, sqlite_scans};
use writer::{CaseClaim, Counters, Job, Lease, Registration, TimerClaim};

/// Returns a mapper from a SQLite error to [`Error::Sqlite`] that says what was being done.
pub(crate) fn sqlite(doing: &'static str) -> impl Fn(rusqlite::Error) -> Error {
    move |error| Error::Sqlite { doing, error }
}

/// Settings of a [`SqliteStore`].
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct SqliteOptions {
    /// Runs `synchronous=FULL` (the default): a commit is acknowledged only once durable.
    /// `false` runs `NORMAL`, which can lose acknowledged commits on power loss.
    pub synchronous_full: bool,
    /// The most commits grouped into one transaction.
    pub max_batch: usize,
    /// How many read-only connections serve reads concurrently.
    pub readers: usize,
    /// Caps the file at this many pages (SQLite's `max_page_count`; pages are 4 KiB): a write
    /// that would grow it further fails as on a full disk (`SQLITE_FULL`). `None`: no cap
    /// beyond SQLite's own. Serves as a quota, and lets tests meet a full disk for real.
    pub max_pages: Option<u64>,
    /// The writer connection's page cache, in KiB (SQLite's `cache_size`, negative form).
    /// [`SqliteOptions::DEFAULT_WRITER_CACHE_KIB`] by default; SQLite's own default is 2 MiB.
    pub writer_cache_kib: u64,
}

impl SqliteOptions {
    /// The writer's page cache when none is configured: 2 MiB, SQLite's own default.
    pub const DEFAULT_WRITER_CACHE_KIB: u64 = 2 * 1024;
}

impl Default for SqliteOptions {
    fn default() -> Self {
        SqliteOptions {
            synchronous_full: true,
            max_batch: 256,
            readers: 4,
            max_pages: None,
            writer_cache_kib: SqliteOptions::DEFAULT_WRITER_CACHE_KIB,
        }
    }
}

/// What the writer has done since the store was opened.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct SqliteStats {
    /// Commits processed, accepted or refused, in transactions that committed.
    pub commits: u64,
    /// Transactions committed (each one fsync with `synchronous=FULL`).
    pub batches: u64,
}

/// A store in one SQLite file. Clones share the file, the writer thread and the readers; the
/// writer finishes what is queued and stops when the last clone is dropped.
#[derive(Clone)]
pub struct SqliteStore {
    inner: Arc<Inner>,
}

struct Inner {
    path: PathBuf,
    jobs: Option<mpsc::Sender<Job>>,
    writer: Option<JoinHandle<()>>,
    readers: Arc<Readers>,
    counters: Arc<Counters>,
    unclean: Option<QuickCheck>,
    /// The writer connection's `PRAGMA synchronous`, read back when opened.
    synchronous: Option<i64>,
    /// Removed after the writer closed the file, when the fields drop: the close was clean.
    _marker: Option<marker::Marker>,
}

/// What opening found: a writable store with its writer connection, or one to read only.
enum Opened {
    Writable {
        conn: Connection,
        idle: Vec<Connection>,
        marker: marker::Marker,
        unclean: Option<QuickCheck>,
        synchronous: i64,
    },
    ReadOnly(Vec<Connection>),
}

/// What the quick check run on opening a store found: SQLite's `quick_check`, and cases whose
/// row does not match the end of their history or whose history has a gap. Run when a process
/// that used the store before did not close it.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct QuickCheck {
    /// Each problem found, in words; none when the store looks sound.
    pub problems: Vec<String>,
}

impl Drop for Inner {
    fn drop(&mut self) {
        // The readers close first, so that the writer's connection is the file's last one:
        // closing it checkpoints the WAL into the file and removes the -wal and -shm files,
        // leaving one self-contained file (which a read-only location can then serve).
        self.readers
            .idle
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .clear();
        // Closing the channel lets the writer drain the queue and return.
        self.jobs.take();
        if let Some(writer) = self.writer.take()
            && writer.join().is_err()
        {
            warn!(path = %self.path.display(), "store writer thread panicked");
        }
    }
}

impl fmt::Debug for SqliteStore {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("SqliteStore")
            .field("path", &self.inner.path)
            .finish_non_exhaustive()
    }
}

/// Read-only connections; the semaphore bounds how many are in use at once.
struct Readers {
    path: PathBuf,
    /// The store cannot be written: readers open it immutable.
    read_only: bool,
    idle: Mutex<Vec<Connection>>,
    permits: Arc<Semaphore>,
}

impl Readers {
    fn take(&self) -> Result<Connection, Error> {
        let idle = self.idle.lock().unwrap_or_else(|e| e.into_inner()).pop();
        match idle {
            Some(conn) => Ok(conn),
            // A reader lost to a panicking query is replaced.
            None if self.read_only => readonly::open_reader(&self.path),
            None => schema::open_reader(&self.path),
        }
    }

    fn give_back(&self, conn: Connection) {
        self.idle
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .push(conn);
    }
}

impl SqliteStore {
    /// Opens the store at `path`, creating its parent directories, the file and the schema as
    /// needed. A file written by a newer knhk is [`Error::UnsupportedFormat`]. A store that
    /// cannot be written (no write permission on the file or its folder, a read-only mount)
    /// is opened for reading only: every write is then [`Error::ReadOnly`].
    pub async fn open(path: &Path, opts: SqliteOptions) -> Result<SqliteStore, Error> {
        let path = path.to_path_buf();
        let at = path.clone();
        let readers = opts.readers.max(1);
        let opened = tokio::task::spawn_blocking(move || {
            let conn = if readonly::read_only_location(&at) {
                None
            } else {
                match schema::open_writer(&at, &opts) {
                    Ok(conn) => Some(conn),
                    Err(e) if at.is_file() && readonly::refused_writing(&e) => None,
                    Err(e) => return Err(e),
                }
            };
            let Some(conn) = conn else {
                let idle = (0..readers)
                    .map(|_| readonly::open_reader(&at))
                    .collect::<Result<Vec<_>, Error>>()?;
                return Ok(Opened::ReadOnly(idle));
            };
            let synchronous: i64 = conn
                .query_row("PRAGMA synchronous", [], |r| r.get(0))
                .map_err(sqlite("reading synchronous"))?;
            let (marker, stale) = marker::take(&at)?;
            let unclean = if stale.found() {
                let mut problems = check::integrity(&conn, false)?;
                problems.extend(check::histories(&conn)?);
                stale.clear();
                Some(QuickCheck { problems })
            } else {
                None
            };
            let idle = (0..readers)
                .map(|_| schema::open_reader(&at))
                .collect::<Result<Vec<_>, Error>>()?;
            Ok(Opened::Writable {
                conn,
                idle,
                marker,
                unclean,
                synchronous,
            })
        })
        .await
        .map_err(|source| Error::Task {
            doing: "opening the store",
            source,
        })??;
        let (conn, idle, marker, unclean, synchronous) = match opened {
            Opened::Writable {
                conn,
                idle,
                marker,
                unclean,
                synchronous,
            } => (conn, idle, marker, unclean, synchronous),
            Opened::ReadOnly(idle) => {
                return Ok(SqliteStore {
                    inner: Arc::new(Inner {
                        path: path.clone(),
                        jobs: None,
                        writer: None,
                        readers: Arc::new(Readers {
                            path,
                            read_only: true,
                            idle: Mutex::new(idle),
                            permits: Arc::new(Semaphore::new(readers)),
                        }),
                        counters: Arc::new(Counters::default()),
                        unclean: None,
                        synchronous: None,
                        _marker: None,
                    }),
                });
            }
        };

        let counters = Arc::new(Counters::default());
        let (jobs, queue) = mpsc::channel();
        let writer_counters = Arc::clone(&counters);
        let writer = std::thread::Builder::new()
            .name("knhk-store-writer".to_owned())
            .spawn(move || writer::run(conn, queue, opts.max_batch, writer_counters))
            .map_err(Error::Spawn)?;
        Ok(SqliteStore {
            inner: Arc::new(Inner {
                path: path.clone(),
                jobs: Some(jobs),
                writer: Some(writer),
                readers: Arc::new(Readers {
                    path,
                    read_only: false,
                    idle: Mutex::new(idle),
                    permits: Arc::new(Semaphore::new(readers)),
                }),
                counters,
                unclean,
                synchronous: Some(synchronous),
                _marker: Some(marker),
            }),
        })
    }

    /// Returns what the quick check on opening found, when a process that used the store
    /// before did not close it (killed, crashed); `None` when every one closed it.
    pub fn unclean_close(&self) -> Option<&QuickCheck> {
        self.inner.unclean.as_ref()
    }

    /// Returns the writer connection's SQLite `synchronous` level as read back when the store
    /// was opened: 2 (`FULL`) by default, 1 (`NORMAL`) with `synchronous_full: false`; `None`
    /// for a store opened for reading only.
    pub fn synchronous(&self) -> Option<i64> {
        self.inner.synchronous
    }

    /// Returns the path of the store file.
    pub fn path(&self) -> &Path {
        &self.inner.path
    }

    /// Returns how many commits and transactions the writer has done.
    pub fn stats(&self) -> SqliteStats {
        SqliteStats {
            commits: self.inner.counters.commits.load(Ordering::Relaxed),
            batches: self.inner.counters.batches.load(Ordering::Relaxed),
        }
    }

    /// Returns whether the store was opened for reading only (it cannot be written).
    pub fn is_read_only(&self) -> bool {
        self.inner.readers.read_only
    }

    /// Returns the writer's queue, or why there is none.
    fn jobs(&self) -> Result<&mpsc::Sender<Job>, Error> {
        if self.is_read_only() {
            return Err(Error::ReadOnly {
                path: self.inner.path.clone(),
            });
        }
        self.inner.jobs.as_ref().ok_or(Error::Closed)
    }

    /// Queues a write for the writer thread and waits until it is durable (or refused).
    async fn write(
        &self,
        job: impl FnOnce(oneshot::Sender<Result<(), Error>>) -> Job,
    ) -> Result<(), Error> {
        let (tx, rx) = oneshot::channel();
        let jobs = self.jobs()?;
        jobs.send(job(tx)).map_err(|_| Error::WriterStopped)?;
        rx.await.map_err(|_| Error::WriterStopped)?
    }

    /// Queues a write that answers a value and waits for it.
    async fn ask<T>(
        &self,
        job: impl FnOnce(oneshot::Sender<Result<T, Error>>) -> Job,
    ) -> Result<T, Error> {
        let (tx, rx) = oneshot::channel();
        let jobs = self.jobs()?;
        jobs.send(job(tx)).map_err(|_| Error::WriterStopped)?;
        rx.await.map_err(|_| Error::WriterStopped)?
    }

    /// Runs a query on a pooled reader on the blocking thread pool.
    async fn read<T, F>(&self, query: F) -> Result<T, Error>
    where
        T: Send + 'static,
        F: FnOnce(&Connection) -> Result<T, Error> + Send + 'static,
    {
        let readers = Arc::clone(&self.inner.readers);
        let permit = Arc::clone(&readers.permits)
            .acquire_owned()
            .await
            .map_err(|_| Error::Closed)?;
        tokio::task::spawn_blocking(move || {
            let _permit = permit;
            let conn = readers.take()?;
            let result = query(&conn);
            readers.give_back(conn);
            result
        })
        .await
        .map_err(|source| Error::Task {
            doing: "reading the store",
            source,
        })?
    }
}

#[async_trait::async_trait]
impl Store for SqliteStore {
    async fn put_workflow(&self, w: &WorkflowRecord) -> Result<(), Error> {
        let w = Box::new(w.clone());
        self.write(|tx| Job::PutWorkflow(w, tx)).await
    }

    async fn workflow(&self, id: WorkflowId) -> Result<Option<WorkflowRecord>, Error> {
        self.read(move |c| rows::workflow(c, id)).await
    }

    async fn latest_workflow(&self, uri: &str) -> Result<Option<WorkflowRecord>, Error> {
        let uri = uri.to_owned();
        self.read(move |c| rows::latest_workflow(c, &uri)).await
    }

    async fn workflows(&self) -> Result<Vec<WorkflowRecord>, Error> {
        self.read(rows::workflows).await
    }

    async fn workflow_summaries(&self) -> Result<Vec<WorkflowSummary>, Error> {
        self.read(rows::workflow_summaries).await
    }

    async fn workflows_named(&self, key: &str) -> Result<Vec<WorkflowSummary>, Error> {
        let key = key.to_owned();
        self.read(move |c| rows::workflows_named(c, &key)).await
    }

    async fn commit(&self, c: Commit) -> Result<(), Error> {
        self.write(|tx| Job::Commit(Box::new(c), tx)).await
    }

    async fn case(&self, id: CaseId) -> Result<Option<CaseRecord>, Error> {
        self.read(move |c| rows::case(c, id)).await
    }

    async fn cases(&self, f: &CaseFilter) -> Result<Vec<CaseRecord>, Error> {
        let f = f.clone();
        self.read(move |c| rows::cases(c, &f)).await
    }

    async fn case_ids(&self, status: &[CaseStatus]) -> Result<Vec<CaseId>, Error> {
        let status = status.to_vec();
        self.read(move |c| rows::case_ids(c, &status)).await
    }

    async fn case_ids_in_flight(&self, status: &[CaseStatus]) -> Result<Vec<CaseId>, Error> {
        let status = status.to_vec();
        self.read(move |c| rows::case_ids_in_flight(c, &status))
            .await
    }

    async fn settle_in_flight(&self, case: CaseId, version: u64) -> Result<bool, Error> {
        let (tx, rx) = oneshot::channel();
        let jobs = self.jobs()?;
        jobs.send(Job::Settle(case, version, tx))
            .map_err(|_| Error::WriterStopped)?;
        Ok(rx.await.map_err(|_| Error::WriterStopped)?? > 0)
    }

    async fn case_ids_by_prefix(&self, prefix: &str, limit: usize) -> Result<Vec<CaseId>, Error> {
        let prefix = prefix.to_owned();
        let ids = self
            .read(move |c| rows::ids_by_prefix(c, "cases", &prefix, limit))
            .await?;
        Ok(ids.into_iter().map(CaseId).collect())
    }

    async fn work_item_ids_by_prefix(
        &self,
        prefix: &str,
        limit: usize,
    ) -> Result<Vec<WorkItemId>, Error> {
        let prefix = prefix.to_owned();
        let ids = self
            .read(move |c| rows::ids_by_prefix(c, "work_items", &prefix, limit))
            .await?;
        Ok(ids.into_iter().map(WorkItemId).collect())
    }

    /// (SQLite's `EXPLAIN QUERY PLAN` of each read, with sample arguments.)
    async fn query_plans(&self) -> Result<Vec<QueryPlan>, Error> {
        self.read(plans::explain).await
    }

    async fn integrity(&self, thorough: bool) -> Result<Vec<String>, Error> {
        self.read(move |c| check::integrity(c, thorough)).await
    }

    async fn events(&self, case: CaseId, after_seq: u64) -> Result<Vec<Event>, Error> {
        self.read(move |c| rows::events(c, case, after_seq)).await
    }

    async fn events_page(
        &self,
        case: CaseId,
        after_seq: u64,
        limit: usize,
    ) -> Result<Vec<Event>, Error> {
        self.read(move |c| rows::events_page(c, case, after_seq, limit))
            .await
    }

    async fn snapshot(&self, case: CaseId) -> Result<Option<SnapshotRecord>, Error> {
        self.read(move |c| rows::snapshot(c, case)).await
    }

    async fn work_items(&self, f: &WorkItemFilter) -> Result<Vec<WorkItemRecord>, Error> {
        let f = f.clone();
        self.read(move |c| rows::work_items(c, &f)).await
    }

    async fn queue_lengths(&self, users: &[String]) -> Result<Vec<u64>, Error> {
        let users = users.to_vec();
        self.read(move |c| rows::queue_lengths(c, &users)).await
    }

    async fn work_item(&self, id: WorkItemId) -> Result<Option<WorkItemRecord>, Error> {
        self.read(move |c| rows::work_item(c, id)).await
    }

    async fn timers(&self) -> Result<Vec<TimerRecord>, Error> {
        self.read(rows::timers).await
    }

    async fn idempotency(&self, key: &str) -> Result<Option<IdempotencyRecord>, Error> {
        let key = key.to_owned();
        self.read(move |c| rows::idempotency(c, &key)).await
    }

    async fn next_in_sequence(&self, name: &str) -> Result<u64, Error> {
        let name = name.to_owned();
        let (tx, rx) = oneshot::channel();
        let jobs = self.jobs()?;
        jobs.send(Job::Next(name, tx))
            .map_err(|_| Error::WriterStopped)?;
        rx.await.map_err(|_| Error::WriterStopped)?
    }

    async fn quarantine(&self, q: &QuarantineRecord) -> Result<(), Error> {
        let q = Box::new(q.clone());
        self.write(|tx| Job::Quarantine(q, tx)).await
    }

    async fn release_quarantine(&self, case: CaseId) -> Result<bool, Error> {
        let (tx, rx) = oneshot::channel();
        let jobs = self.jobs()?;
        jobs.send(Job::Release(case, tx))
            .map_err(|_| Error::WriterStopped)?;
        Ok(rx.await.map_err(|_| Error::WriterStopped)?? > 0)
    }

    async fn quarantined(&self) -> Result<Vec<QuarantineRecord>, Error> {
        self.read(|c| rows::quarantined(c, None)).await
    }

    async fn quarantine_of(&self, case: CaseId) -> Result<Option<QuarantineRecord>, Error> {
        self.read(move |c| Ok(rows::quarantined(c, Some(case))?.into_iter().next()))
            .await
    }

    async fn ping(&self) -> Result<(), Error> {
        self.read(|c| {
            c.query_row("SELECT 1", [], |r| r.get::<_, i64>(0))
                .map(drop)
                .map_err(sqlite("probing the store"))
        })
        .await
    }

    async fn register_node(
        &self,
        name: &str,
        now: Timestamp,
        expires_at: Timestamp,
    ) -> Result<u64, Error> {
        let r = Box::new(Registration {
            name: name.to_owned(),
            now,
            expires_at,
        });
        self.ask(|tx| Job::Register(r, tx)).await
    }

    async fn renew_lease(
        &self,
        fence: u64,
        now: Timestamp,
        expires_at: Timestamp,
    ) -> Result<bool, Error> {
        let l = Lease {
            fence,
            now,
            expires_at,
        };
        Ok(self.ask(|tx| Job::Renew(l, tx)).await? > 0)
    }

    async fn nodes(&self) -> Result<Vec<NodeRecord>, Error> {
        self.read(rows::nodes).await
    }

    async fn claim_cases(
        &self,
        fence: u64,
        now: Timestamp,
        which: Orphans,
        limit: usize,
    ) -> Result<Vec<CaseId>, Error> {
        let c = CaseClaim {
            fence,
            now,
            which,
            limit,
        };
        self.ask(|tx| Job::ClaimCases(c, tx)).await
    }

    async fn claim_due_timers(
        &self,
        fence: u64,
        now: Timestamp,
        until: Timestamp,
        limit: usize,
    ) -> Result<Vec<TimerRecord>, Error> {
        let t = TimerClaim {
            fence,
            now,
            until,
            limit,
        };
        self.ask(|tx| Job::ClaimTimers(t, tx)).await
    }

    async fn lockchain_head(&self) -> Result<TreeHead, Error> {
        self.read(lockchain::head).await
    }

    async fn lockchain_tiles(
        &self,
        ids: &[knhk_lockchain::TileId],
    ) -> Result<Vec<knhk_lockchain::Tile>, Error> {
        let ids = ids.to_vec();
        self.read(move |c| lockchain::tiles(c, &ids)).await
    }

    async fn event_leaf(&self, case: CaseId, seq: u64) -> Result<Option<u64>, Error> {
        self.read(move |c| lockchain::event_leaf(c, case, seq))
            .await
    }

    async fn put_checkpoint(&self, c: &CheckpointRecord) -> Result<bool, Error> {
        let c = Box::new(c.clone());
        Ok(self.ask(|tx| Job::Checkpoint(c, tx)).await? > 0)
    }

    async fn checkpoints(
        &self,
        after_size: u64,
        limit: usize,
    ) -> Result<Vec<CheckpointRecord>, Error> {
        self.read(move |c| lockchain::checkpoints(c, after_size, limit))
            .await
    }

    async fn latest_checkpoint(&self) -> Result<Option<CheckpointRecord>, Error> {
        self.read(lockchain::latest_checkpoint).await
    }
}
