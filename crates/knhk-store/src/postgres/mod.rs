//! The PostgreSQL backend: a pool of connections (deadpool-postgres over tokio-postgres, no
//! TLS) for reads and the writes of one statement, and committer tasks that group concurrent
//! commits into one pipelined transaction.
//!
//! The tables live in the schema the connection's `search_path` names first (libpq's
//! `options=-csearch_path=SCHEMA` in the address), created with them on first open, so that
//! tests and tenants can each keep a store in a schema of one database. Durability is the
//! server's: a commit is acknowledged after PostgreSQL's `COMMIT` returned (with its
//! `synchronous_commit`, on by default, after the WAL is flushed).

mod check;
mod committer;
mod lockchain;
mod plans;
mod rows;
mod schema;

use std::fmt;
use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::time::Duration;

use deadpool_postgres::{Manager, ManagerConfig, Pool, PoolError, RecyclingMethod, Runtime};
use knhk_core::{CaseId, CaseStatus, Event, Timestamp, WorkItemId, WorkflowId};
use tokio::sync::{Mutex, mpsc, oneshot};
use tokio_postgres::error::SqlState;
use tokio_postgres::types::ToSql;
use tokio_postgres::{NoTls, Row};

use crate::error::Error;
use crate::plan::QueryPlan;
use crate::record::{
    CaseFilter, CaseRecord, CheckpointRecord, Commit, IdempotencyRecord, NodeRecord, Orphans,
    QuarantineRecord, SnapshotRecord, TimerRecord, TreeHead, WorkItemFilter, WorkItemRecord,
    WorkflowRecord, WorkflowSummary,
};
use crate::store::Store;

pub use plans::{POSTGRES_GROWING, postgres_scans};
pub use schema::POSTGRES_FORMAT_VERSION;

use committer::{Counters, Job};
use rows::refs;

/// Returns a mapper from a PostgreSQL error to [`Error::Postgres`] that says what was being
/// done.
pub(crate) fn pg(doing: &'static str) -> impl Fn(tokio_postgres::Error) -> Error {
    move |error| Error::Postgres { doing, error }
}

/// Returns a mapper from a pool error to [`Error::Pool`], or to [`Error::Postgres`] when the
/// server refused or failed the connection (its own words are the better message).
pub(crate) fn pool_error(doing: &'static str) -> impl Fn(PoolError) -> Error {
    move |e| match e {
        PoolError::Backend(error) => Error::Postgres { doing, error },
        source => Error::Pool { doing, source },
    }
}

/// Settings of a [`PostgresStore`].
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct PostgresOptions {
    /// The most connections the store opens (reads, single-statement writes and the
    /// committers share them).
    pub pool_size: usize,
    /// The most commits grouped into one transaction.
    pub max_batch: usize,
    /// How many transactions of grouped commits may be in flight at once.
    pub committers: usize,
    /// How long opening a connection, or waiting for a free one, may take before the
    /// operation fails.
    pub connect_timeout: Duration,
}

impl PostgresOptions {
    /// The pool size when none is configured.
    pub const DEFAULT_POOL_SIZE: usize = 16;
}

impl Default for PostgresOptions {
    fn default() -> Self {
        PostgresOptions {
            pool_size: PostgresOptions::DEFAULT_POOL_SIZE,
            max_batch: 256,
            committers: 2,
            connect_timeout: Duration::from_secs(5),
        }
    }
}

/// What the committers have done since the store was opened.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct PostgresStats {
    /// Commits accepted or refused, in transactions that committed.
    pub commits: u64,
    /// Transactions of grouped commits committed.
    pub batches: u64,
    /// Round trips to the server the committers waited for (a pipelined group of statements
    /// counts once).
    pub round_trips: u64,
}

/// A store in a PostgreSQL schema. Clones share the pool and the committers, which stop once
/// the last clone is dropped and the queue is drained.
#[derive(Clone)]
pub struct PostgresStore {
    inner: Arc<Inner>,
}

struct Inner {
    pool: Pool,
    jobs: mpsc::Sender<Job>,
    counters: Arc<Counters>,
    schema: String,
    /// The address with any password masked.
    address: String,
}

impl fmt::Debug for PostgresStore {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("PostgresStore")
            .field("address", &self.inner.address)
            .field("schema", &self.inner.schema)
            .finish_non_exhaustive()
    }
}

/// Returns a PostgreSQL address (a `postgres://` URL or libpq's `key=value` form) with its
/// password, if it has one, replaced by `***`: what may be printed or logged.
pub fn redact_address(address: &str) -> String {
    if let Some((scheme, rest)) = address.split_once("://") {
        // The user information ends at the last `@` before the path.
        let authority_end = rest.find(['/', '?']).unwrap_or(rest.len());
        let (authority, tail) = rest.split_at(authority_end);
        let redacted = match authority.rsplit_once('@') {
            Some((user_info, host)) => match user_info.split_once(':') {
                Some((user, _password)) => format!("{user}:***@{host}"),
                None => authority.to_owned(),
            },
            None => authority.to_owned(),
        };
        let tail = redact_query(tail);
        return format!("{scheme}://{redacted}{tail}");
    }
    address
        .split_whitespace()
        .map(|pair| match pair.split_once('=') {
            Some((key, _)) if key.eq_ignore_ascii_case("password") => format!("{key}=***"),
            _ => pair.to_owned(),
        })
        .collect::<Vec<_>>()
        .join(" ")
}

/// Masks a `password=` parameter in the query of a URL.
fn redact_query(tail: &str) -> String {
    let Some((path, query)) = tail.split_once('?') else {
        return tail.to_owned();
    };
    let query = query
        .split('&')
        .map(|pair| match pair.split_once('=') {
            Some((key, _)) if key.eq_ignore_ascii_case("password") => format!("{key}=***"),
            _ => pair.to_owned(),
        })
        .collect::<Vec<_>>()
        .join("&");
    format!("{path}?{query}")
}

impl PostgresStore {
    /// Connects to the PostgreSQL at `address` (`postgres://user@host:port/db`, with
    /// `?options=-csearch_path=SCHEMA` to choose the schema), creates the schema and its
    /// tables if missing or migrates them, and starts the committers. A schema written by a
    /// newer knhk is [`Error::UnsupportedFormat`]; an address that does not parse is
    /// [`Error::Address`] (never repeating a password).
    pub async fn open(address: &str, opts: PostgresOptions) -> Result<PostgresStore, Error> {
        let shown = redact_address(address);
        let mut config: tokio_postgres::Config = address.parse().map_err(|e| {
            Error::Address(format!("the PostgreSQL address {shown} is not valid: {e}"))
        })?;
        if config.get_connect_timeout().is_none() {
            config.connect_timeout(opts.connect_timeout);
        }
        if config.get_application_name().is_none() {
            config.application_name("knhk");
        }
        let manager = Manager::from_config(
            config,
            NoTls,
            ManagerConfig {
                recycling_method: RecyclingMethod::Fast,
            },
        );
        let pool = Pool::builder(manager)
            .max_size(opts.pool_size.max(1))
            .runtime(Runtime::Tokio1)
            .wait_timeout(Some(opts.connect_timeout))
            .create_timeout(Some(opts.connect_timeout))
            .build()
            .map_err(|e| Error::Address(format!("cannot set up a pool for {shown}: {e}")))?;
        let schema = {
            let mut client = pool.get().await.map_err(pool_error("connecting"))?;
            schema::ensure(&mut client).await?
        };
        let counters = Arc::new(Counters::default());
        let (jobs, queue) = mpsc::channel(opts.max_batch.max(1) * 4);
        let queue = Arc::new(Mutex::new(queue));
        for _ in 0..opts.committers.max(1) {
            tokio::spawn(committer::run(
                pool.clone(),
                Arc::clone(&queue),
                opts.max_batch,
                Arc::clone(&counters),
            ));
        }
        Ok(PostgresStore {
            inner: Arc::new(Inner {
                pool,
                jobs,
                counters,
                schema,
                address: shown,
            }),
        })
    }

    /// Returns the schema that holds the store's tables.
    pub fn schema(&self) -> &str {
        &self.inner.schema
    }

    /// Returns the address the store was opened with, its password masked.
    pub fn address(&self) -> &str {
        &self.inner.address
    }

    /// Returns how many commits, transactions and round trips the committers have done.
    pub fn stats(&self) -> PostgresStats {
        let c = &self.inner.counters;
        PostgresStats {
            commits: c.commits.load(Ordering::Relaxed),
            batches: c.batches.load(Ordering::Relaxed),
            round_trips: c.round_trips.load(Ordering::Relaxed),
        }
    }

    async fn client(&self) -> Result<deadpool_postgres::Object, Error> {
        self.inner
            .pool
            .get()
            .await
            .map_err(pool_error("connecting"))
    }

    /// Runs a query (prepared once per connection) and decodes every row.
    async fn query_all<T>(
        &self,
        sql: &str,
        args: &[&(dyn ToSql + Sync)],
        decode: fn(&Row) -> Result<T, Error>,
    ) -> Result<Vec<T>, Error> {
        let client = self.client().await?;
        let st = client
            .prepare_cached(sql)
            .await
            .map_err(pg("preparing a query"))?;
        let rows = client
            .query(&st, args)
            .await
            .map_err(pg("running a query"))?;
        rows.iter().map(decode).collect()
    }

    /// Runs a query that returns at most one row.
    async fn query_one<T>(
        &self,
        sql: &str,
        args: &[&(dyn ToSql + Sync)],
        decode: fn(&Row) -> Result<T, Error>,
    ) -> Result<Option<T>, Error> {
        Ok(self.query_all(sql, args, decode).await?.into_iter().next())
    }

    /// Runs a statement and returns the rows it changed.
    async fn execute(
        &self,
        doing: &'static str,
        sql: &str,
        args: &[&(dyn ToSql + Sync)],
    ) -> Result<u64, Error> {
        let client = self.client().await?;
        let st = client
            .prepare_cached(sql)
            .await
            .map_err(pg("preparing a statement"))?;
        client.execute(&st, args).await.map_err(pg(doing))
    }

    /// Returns at most `limit` ids of `table` whose id or last group starts with `prefix`, in
    /// id order: two index ranges, merged.
    async fn ids_by_prefix(
        &self,
        table: &str,
        prefix: &str,
        limit: usize,
    ) -> Result<Vec<uuid::Uuid>, Error> {
        let prefix = prefix.to_ascii_lowercase();
        let end = format!("{prefix}g");
        let n = rows::big(limit);
        let mut ids = self
            .query_all(
                &rows::ids_by_prefix_sql(table),
                &[&prefix, &end, &n],
                rows::id_row,
            )
            .await?;
        // A last group has no `-`: a prefix with one names ids by their start only.
        if !prefix.contains('-') {
            ids.extend(
                self.query_all(
                    &rows::ids_by_last_group_sql(table),
                    &[&prefix, &end, &n],
                    rows::id_row,
                )
                .await?,
            );
        }
        ids.sort_unstable();
        ids.dedup();
        ids.truncate(limit);
        Ok(ids)
    }
}

#[async_trait::async_trait]
impl Store for PostgresStore {
    async fn put_workflow(&self, w: &WorkflowRecord) -> Result<(), Error> {
        let spec = serde_json::to_string(&w.spec).map_err(|source| Error::Encode {
            what: "a workflow's specification",
            source,
        })?;
        let inserted = self
            .execute(
                "inserting a workflow",
                "INSERT INTO workflows (id, name, version, format, source, spec, registered_at, uri,
                   tasks)
                 VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9)",
                &[
                    &w.id.to_string(),
                    &w.name,
                    &i64::from(w.version),
                    &w.format,
                    &w.source,
                    &spec,
                    &w.registered_at.0,
                    &w.uri,
                    &i64::from(WorkflowSummary::of(w).tasks),
                ],
            )
            .await;
        match inserted {
            Ok(_) => Ok(()),
            // The unique constraints decide a race between processes registering at once.
            Err(Error::Postgres { error, .. })
                if error.code() == Some(&SqlState::UNIQUE_VIOLATION)
                    && error.as_db_error().and_then(|d| d.constraint())
                        == Some("workflows_pkey") =>
            {
                Err(Error::DuplicateWorkflow(w.id))
            }
            Err(Error::Postgres { error, .. })
                if error.code() == Some(&SqlState::UNIQUE_VIOLATION) =>
            {
                Err(Error::DuplicateVersion {
                    uri: w.uri.clone(),
                    version: w.version,
                })
            }
            Err(e) => Err(e),
        }
    }

    async fn workflow(&self, id: WorkflowId) -> Result<Option<WorkflowRecord>, Error> {
        self.query_one(
            &rows::workflow_sql(),
            &[&id.to_string()],
            rows::workflow_row,
        )
        .await
    }

    async fn latest_workflow(&self, uri: &str) -> Result<Option<WorkflowRecord>, Error> {
        self.query_one(&rows::latest_workflow_sql(), &[&uri], rows::workflow_row)
            .await
    }

    async fn workflows(&self) -> Result<Vec<WorkflowRecord>, Error> {
        self.query_all(&rows::workflows_sql(), &[], rows::workflow_row)
            .await
    }

    async fn workflow_summaries(&self) -> Result<Vec<WorkflowSummary>, Error> {
        self.query_all(
            &rows::workflow_summaries_sql(),
            &[],
            rows::workflow_summary_row,
        )
        .await
    }

    async fn workflows_named(&self, key: &str) -> Result<Vec<WorkflowSummary>, Error> {
        self.query_all(
            &rows::workflows_named_sql(),
            &[&key],
            rows::workflow_summary_row,
        )
        .await
    }

    async fn commit(&self, c: Commit) -> Result<(), Error> {
        let (reply, answer) = oneshot::channel();
        self.inner
            .jobs
            .send(Job {
                commit: Box::new(c),
                reply,
            })
            .await
            .map_err(|_| Error::WriterStopped)?;
        answer.await.map_err(|_| Error::WriterStopped)?
    }

    async fn case(&self, id: CaseId) -> Result<Option<CaseRecord>, Error> {
        self.query_one(&rows::case_sql(), &[&id.to_string()], rows::case_row)
            .await
    }

    async fn cases(&self, f: &CaseFilter) -> Result<Vec<CaseRecord>, Error> {
        let (sql, args) = rows::cases_query(f);
        self.query_all(&sql, &refs(&args), rows::case_row).await
    }

    async fn case_ids(&self, status: &[CaseStatus]) -> Result<Vec<CaseId>, Error> {
        let (sql, args) = rows::case_ids_query(status, false);
        let ids = self.query_all(&sql, &refs(&args), rows::id_row).await?;
        Ok(ids.into_iter().map(CaseId).collect())
    }

    async fn case_ids_in_flight(&self, status: &[CaseStatus]) -> Result<Vec<CaseId>, Error> {
        let (sql, args) = rows::case_ids_query(status, true);
        let ids = self.query_all(&sql, &refs(&args), rows::id_row).await?;
        Ok(ids.into_iter().map(CaseId).collect())
    }

    async fn settle_in_flight(&self, case: CaseId, version: u64) -> Result<bool, Error> {
        let Ok(version) = i64::try_from(version) else {
            return Ok(false);
        };
        let changed = self
            .execute(
                "settling a case's work in flight",
                rows::SETTLE_IN_FLIGHT_SQL,
                &[&case.to_string(), &version],
            )
            .await?;
        Ok(changed > 0)
    }

    async fn case_ids_by_prefix(&self, prefix: &str, limit: usize) -> Result<Vec<CaseId>, Error> {
        let ids = self.ids_by_prefix("cases", prefix, limit).await?;
        Ok(ids.into_iter().map(CaseId).collect())
    }

    async fn work_item_ids_by_prefix(
        &self,
        prefix: &str,
        limit: usize,
    ) -> Result<Vec<WorkItemId>, Error> {
        let ids = self.ids_by_prefix("work_items", prefix, limit).await?;
        Ok(ids.into_iter().map(WorkItemId).collect())
    }

    async fn query_plans(&self) -> Result<Vec<QueryPlan>, Error> {
        let mut client = self.client().await?;
        plans::explain(&mut client).await
    }

    async fn integrity(&self, thorough: bool) -> Result<Vec<String>, Error> {
        let client = self.client().await?;
        check::integrity(&client, thorough).await
    }

    async fn events(&self, case: CaseId, after_seq: u64) -> Result<Vec<Event>, Error> {
        // No stored seq exceeds i64::MAX, so nothing comes after a larger one.
        let Ok(after) = i64::try_from(after_seq) else {
            return Ok(Vec::new());
        };
        self.query_all(
            rows::EVENTS_SQL,
            &[&case.to_string(), &after],
            rows::event_row,
        )
        .await
    }

    async fn events_page(
        &self,
        case: CaseId,
        after_seq: u64,
        limit: usize,
    ) -> Result<Vec<Event>, Error> {
        let Ok(after) = i64::try_from(after_seq) else {
            return Ok(Vec::new());
        };
        self.query_all(
            rows::EVENTS_PAGE_SQL,
            &[&case.to_string(), &after, &rows::big(limit)],
            rows::event_row,
        )
        .await
    }

    async fn snapshot(&self, case: CaseId) -> Result<Option<SnapshotRecord>, Error> {
        self.query_one(rows::SNAPSHOT_SQL, &[&case.to_string()], rows::snapshot_row)
            .await
    }

    async fn work_items(&self, f: &WorkItemFilter) -> Result<Vec<WorkItemRecord>, Error> {
        let (sql, args) = rows::work_items_query(f);
        self.query_all(&sql, &refs(&args), rows::work_item_row)
            .await
    }

    async fn queue_lengths(&self, users: &[String]) -> Result<Vec<u64>, Error> {
        let users_arg = users.to_vec();
        let counts: std::collections::HashMap<String, u64> = self
            .query_all(rows::QUEUE_LENGTHS_SQL, &[&users_arg], |r| {
                let owner: String = r.try_get(0).map_err(pg("counting queues"))?;
                let n: i64 = r.try_get(1).map_err(pg("counting queues"))?;
                Ok((owner, u64::try_from(n).unwrap_or(0)))
            })
            .await?
            .into_iter()
            .collect();
        Ok(users
            .iter()
            .map(|u| counts.get(u).copied().unwrap_or(0))
            .collect())
    }

    async fn work_item(&self, id: WorkItemId) -> Result<Option<WorkItemRecord>, Error> {
        self.query_one(
            &rows::work_item_sql(),
            &[&id.to_string()],
            rows::work_item_row,
        )
        .await
    }

    async fn timers(&self) -> Result<Vec<TimerRecord>, Error> {
        self.query_all(rows::TIMERS_SQL, &[], rows::timer_row).await
    }

    async fn idempotency(&self, key: &str) -> Result<Option<IdempotencyRecord>, Error> {
        self.query_one(rows::IDEMPOTENCY_SQL, &[&key], rows::idempotency_row)
            .await
    }

    async fn next_in_sequence(&self, name: &str) -> Result<u64, Error> {
        let value = self
            .query_one(rows::NEXT_IN_SEQUENCE_SQL, &[&name], |r| {
                rows::u64_col(r, 0)
            })
            .await?;
        value.ok_or(Error::Corrupt(crate::error::Corruption::Sequence {
            name: name.to_owned(),
            value: 0,
        }))
    }

    async fn quarantine(&self, q: &QuarantineRecord) -> Result<(), Error> {
        self.execute(
            "quarantining a case",
            rows::QUARANTINE_INSERT_SQL,
            &[&q.case.to_string(), &q.reason, &q.at.0],
        )
        .await
        .map(drop)
    }

    async fn register_node(
        &self,
        name: &str,
        now: Timestamp,
        expires_at: Timestamp,
    ) -> Result<u64, Error> {
        let fence = self
            .query_one(
                rows::REGISTER_NODE_SQL,
                &[&name, &now.0, &expires_at.0],
                |r| rows::u64_col(r, 0),
            )
            .await?;
        fence.ok_or(Error::Corrupt(crate::Corruption::Number {
            column: 0,
            value: -1,
        }))
    }

    async fn renew_lease(
        &self,
        fence: u64,
        now: Timestamp,
        expires_at: Timestamp,
    ) -> Result<bool, Error> {
        let Ok(fence) = i64::try_from(fence) else {
            return Ok(false);
        };
        let changed = self
            .execute(
                "renewing a node's lease",
                rows::RENEW_LEASE_SQL,
                &[&fence, &now.0, &expires_at.0],
            )
            .await?;
        Ok(changed > 0)
    }

    async fn nodes(&self) -> Result<Vec<NodeRecord>, Error> {
        self.query_all(rows::NODES_SQL, &[], rows::node_row).await
    }

    async fn claim_cases(
        &self,
        fence: u64,
        now: Timestamp,
        which: Orphans,
        limit: usize,
    ) -> Result<Vec<CaseId>, Error> {
        let mut client = self.client().await?;
        let tx = client
            .transaction()
            .await
            .map_err(pg("beginning a claim"))?;
        live_lease(&tx, fence, now).await?;
        let token = i64::try_from(fence).map_err(|_| Error::LeaseExpired { fence })?;
        let limit = i64::try_from(limit).unwrap_or(i64::MAX);
        let mut claimed = Vec::new();
        if which == Orphans::AlsoUnowned {
            let st = tx
                .prepare_cached(rows::CLAIM_UNOWNED_SQL)
                .await
                .map_err(pg("preparing a claim"))?;
            for r in tx
                .query(&st, &[&token, &limit])
                .await
                .map_err(pg("claiming cases no node owns"))?
            {
                claimed.push(rows::claimed_case(&r)?);
            }
        }
        let left = limit.saturating_sub(i64::try_from(claimed.len()).unwrap_or(i64::MAX));
        if left > 0 {
            let st = tx
                .prepare_cached(rows::CLAIM_DEAD_SQL)
                .await
                .map_err(pg("preparing a claim"))?;
            for r in tx
                .query(&st, &[&token, &now.0, &left])
                .await
                .map_err(pg("claiming the cases of dead nodes"))?
            {
                claimed.push(rows::claimed_case(&r)?);
            }
        }
        tx.commit().await.map_err(pg("committing a claim"))?;
        claimed.sort_unstable();
        Ok(claimed.into_iter().map(|(_, id)| id).collect())
    }

    async fn claim_due_timers(
        &self,
        fence: u64,
        now: Timestamp,
        until: Timestamp,
        limit: usize,
    ) -> Result<Vec<TimerRecord>, Error> {
        let mut client = self.client().await?;
        let tx = client
            .transaction()
            .await
            .map_err(pg("beginning a claim"))?;
        live_lease(&tx, fence, now).await?;
        let token = i64::try_from(fence).map_err(|_| Error::LeaseExpired { fence })?;
        let limit = i64::try_from(limit).unwrap_or(i64::MAX);
        let st = tx
            .prepare_cached(rows::CLAIM_TIMERS_SQL)
            .await
            .map_err(pg("preparing a claim"))?;
        let mut timers = tx
            .query(&st, &[&token, &now.0, &until.0, &limit])
            .await
            .map_err(pg("claiming due timers"))?
            .iter()
            .map(rows::timer_row)
            .collect::<Result<Vec<_>, Error>>()?;
        tx.commit().await.map_err(pg("committing a claim"))?;
        timers.sort_by_key(|t| (t.fires_at, t.id));
        Ok(timers)
    }

    async fn release_quarantine(&self, case: CaseId) -> Result<bool, Error> {
        let removed = self
            .execute(
                "releasing a case from quarantine",
                rows::RELEASE_QUARANTINE_SQL,
                &[&case.to_string()],
            )
            .await?;
        Ok(removed > 0)
    }

    async fn quarantined(&self) -> Result<Vec<QuarantineRecord>, Error> {
        self.query_all(rows::QUARANTINE_SQL, &[], rows::quarantine_row)
            .await
    }

    async fn quarantine_of(&self, case: CaseId) -> Result<Option<QuarantineRecord>, Error> {
        self.query_one(
            rows::QUARANTINE_OF_SQL,
            &[&case.to_string()],
            rows::quarantine_row,
        )
        .await
    }

    async fn ping(&self) -> Result<(), Error> {
        let client = self.client().await?;
        client
            .query_one("SELECT 1", &[])
            .await
            .map(drop)
            .map_err(pg("probing the store"))
    }

    async fn lockchain_head(&self) -> Result<TreeHead, Error> {
        let mut client = self.client().await?;
        // The size and the tiles of one snapshot, as the appends left them together.
        let tx = client
            .build_transaction()
            .isolation_level(tokio_postgres::IsolationLevel::RepeatableRead)
            .read_only(true)
            .start()
            .await
            .map_err(pg("beginning a read"))?;
        let size = lockchain::size(&tx, lockchain::SIZE_SQL).await?;
        let tail = lockchain::tail(&tx, size).await?;
        tx.commit().await.map_err(pg("ending a read"))?;
        Ok(crate::lockchain::head_of(&tail))
    }

    async fn lockchain_tiles(
        &self,
        ids: &[knhk_lockchain::TileId],
    ) -> Result<Vec<knhk_lockchain::Tile>, Error> {
        let client = self.client().await?;
        lockchain::tiles(&client, ids).await
    }

    async fn event_leaf(&self, case: CaseId, seq: u64) -> Result<Option<u64>, Error> {
        let client = self.client().await?;
        lockchain::event_leaf(&client, case, seq).await
    }

    async fn put_checkpoint(&self, c: &CheckpointRecord) -> Result<bool, Error> {
        let args = lockchain::checkpoint_params(c)?;
        let inserted = self
            .execute(
                "storing a checkpoint",
                lockchain::PUT_CHECKPOINT_SQL,
                &refs(&args),
            )
            .await?;
        Ok(inserted > 0)
    }

    async fn checkpoints(
        &self,
        after_size: u64,
        limit: usize,
    ) -> Result<Vec<CheckpointRecord>, Error> {
        let Ok(after) = i64::try_from(after_size) else {
            return Ok(Vec::new());
        };
        self.query_all(
            lockchain::CHECKPOINTS_SQL,
            &[&after, &rows::big(limit)],
            lockchain::checkpoint_row,
        )
        .await
    }

    async fn latest_checkpoint(&self) -> Result<Option<CheckpointRecord>, Error> {
        self.query_one(
            lockchain::LATEST_CHECKPOINT_SQL,
            &[],
            lockchain::checkpoint_row,
        )
        .await
    }
}

/// Refuses a node whose lease has expired at `now`, holding a share lock on its lease for the
/// rest of the transaction, so that no renewal ending it passes the claim.
async fn live_lease(
    tx: &deadpool_postgres::Transaction<'_>,
    fence: u64,
    now: Timestamp,
) -> Result<(), Error> {
    let Ok(token) = i64::try_from(fence) else {
        return Err(Error::LeaseExpired { fence });
    };
    let st = tx
        .prepare_cached(rows::LEASE_SQL)
        .await
        .map_err(pg("preparing a query"))?;
    let row = tx
        .query_opt(&st, &[&token])
        .await
        .map_err(pg("reading a node's lease"))?;
    match row.map(|r| rows::lease_row(&r)).transpose()? {
        Some(expires_at) if expires_at > now => Ok(()),
        _ => Err(Error::LeaseExpired { fence }),
    }
}
