//! A connector instance's connections: a deadpool pool with the settings every kind shares
//! (`[connectors.NAME.pool]`), expiry of idle and old connections, and its metrics.
//!
//! Each kind brings a deadpool [`Manager`] that opens a connection (`create`) and validates one
//! on checkout (`recycle`: a ping, or a check that it is not closed); a connection that fails
//! validation is dropped and a new one made. [`Counted`] wraps that manager to count and to
//! enforce the idle timeout and the max lifetime at checkout; a reaper task enforces them
//! between checkouts, so that an idle pool shrinks. Ages are measured on tokio's clock, as the
//! acquire timeout is.
//!
//! Metrics (the `metrics` facade; label `instance`):
//! - `knhk_connector_pool_connections` (gauge, label `state` = `active` | `idle`),
//! - `knhk_connector_pool_waiters` (gauge),
//! - `knhk_connector_pool_acquire_seconds` (histogram),
//! - `knhk_connector_pool_created_total`, `_closed_total`, `_failed_total` (counters).

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

pub use deadpool::managed::Object;
use deadpool::managed::{self, Manager, Metrics, RecycleError, RecycleResult, TimeoutType};
use tokio::task::JoinHandle;

use crate::connector::CallError;

/// The pool settings of one instance.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct PoolConfig {
    /// The most connections open at once (`max_size`, default 16).
    pub max_size: usize,
    /// How long a call waits for a connection before it fails, retryably (`acquire_timeout_ms`,
    /// default 5000).
    pub acquire_timeout: Duration,
    /// A connection unused this long is closed (`idle_timeout_ms`, default 300000; 0: never).
    pub idle_timeout: Option<Duration>,
    /// A connection this old is closed, used or not (`max_lifetime_ms`, default 1800000; 0:
    /// never).
    pub max_lifetime: Option<Duration>,
}

impl Default for PoolConfig {
    fn default() -> Self {
        PoolConfig {
            max_size: 16,
            acquire_timeout: Duration::from_secs(5),
            idle_timeout: Some(Duration::from_secs(300)),
            max_lifetime: Some(Duration::from_secs(1800)),
        }
    }
}

/// What a pool holds now.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct PoolStatus {
    pub max_size: usize,
    /// Connections checked out.
    pub active: usize,
    /// Connections open and free.
    pub idle: usize,
    /// Calls waiting for a connection.
    pub waiters: usize,
    /// Connections opened since the pool began.
    pub created: u64,
    /// Connections closed since the pool began (expired, broken, or at close).
    pub closed: u64,
    /// Attempts to open a connection that failed.
    pub failed: u64,
}

/// The connections of one connector instance. Dropping it stops its reaper; [`Pool::close`]
/// also closes the connections.
pub struct Pool<M: Manager> {
    instance: Arc<str>,
    inner: managed::Pool<Counted<M>>,
    config: PoolConfig,
    reaper: Option<JoinHandle<()>>,
}

/// The counts of a pool, shared with its manager.
#[derive(Debug, Default)]
struct Counts {
    created: AtomicU64,
    closed: AtomicU64,
    failed: AtomicU64,
}

/// A kind's manager, counted, and refusing at checkout a connection past its idle timeout or
/// lifetime.
#[derive(Debug)]
pub struct Counted<M> {
    manager: M,
    instance: Arc<str>,
    config: PoolConfig,
    counts: Arc<Counts>,
    /// The same moment on the two clocks: deadpool stamps connections with `std` instants,
    /// the pool measures their age on tokio's clock (which tests pause and advance).
    epoch: (std::time::Instant, tokio::time::Instant),
}

impl<M: Manager> Pool<M> {
    /// Makes the pool of `instance`; no connection is opened until a call needs one. Its reaper
    /// runs on the current tokio runtime, if there is one.
    pub fn new(instance: &str, manager: M, config: PoolConfig) -> Result<Pool<M>, String>
    where
        M: 'static,
    {
        let instance: Arc<str> = Arc::from(instance);
        let counted = Counted {
            manager,
            instance: instance.clone(),
            config,
            counts: Arc::default(),
            epoch: (std::time::Instant::now(), tokio::time::Instant::now()),
        };
        let inner = managed::Pool::builder(counted)
            .max_size(config.max_size.max(1))
            .wait_timeout(Some(config.acquire_timeout))
            .create_timeout(Some(config.acquire_timeout))
            .recycle_timeout(Some(config.acquire_timeout))
            .runtime(deadpool::Runtime::Tokio1)
            .build()
            .map_err(|e| format!("connectors.{instance}.pool: {e}"))?;
        let reaper = tokio::runtime::Handle::try_current()
            .ok()
            .and_then(|rt| reaper_period(&config).map(|p| rt.spawn(reap(inner.weak(), p))));
        Ok(Pool {
            instance,
            inner,
            config,
            reaper,
        })
    }

    /// Checks a connection out, validated, waiting at most the acquire timeout. No free
    /// connection in time, or none can be opened: a retryable error naming the instance.
    pub async fn get(&self) -> Result<Object<Counted<M>>, CallError>
    where
        M::Error: std::fmt::Display,
    {
        let started = tokio::time::Instant::now();
        let got = self.inner.get().await;
        metrics::histogram!("knhk_connector_pool_acquire_seconds", "instance" => self.instance.to_string())
            .record(started.elapsed().as_secs_f64());
        self.report();
        got.map_err(|e| match e {
            managed::PoolError::Timeout(TimeoutType::Wait) => CallError::Retryable(format!(
                "connector {}: no connection free within {:?} (pool max_size {})",
                self.instance, self.config.acquire_timeout, self.config.max_size
            )),
            managed::PoolError::Timeout(_) => CallError::Retryable(format!(
                "connector {}: no connection opened within {:?}",
                self.instance, self.config.acquire_timeout
            )),
            managed::PoolError::Backend(e) => {
                CallError::Retryable(format!("connector {}: cannot connect: {e}", self.instance))
            }
            managed::PoolError::Closed => {
                CallError::Permanent(format!("connector {}: closed", self.instance))
            }
            other => CallError::Retryable(format!("connector {}: {other}", self.instance)),
        })
    }

    /// Returns what the pool holds now.
    pub fn status(&self) -> PoolStatus {
        let s = self.inner.status();
        let counts = &self.inner.manager().counts;
        PoolStatus {
            max_size: s.max_size,
            active: s.size - s.available,
            idle: s.available,
            waiters: s.waiting,
            created: counts.created.load(Ordering::Relaxed),
            closed: counts.closed.load(Ordering::Relaxed),
            failed: counts.failed.load(Ordering::Relaxed),
        }
    }

    /// Returns the manager of the kind (its endpoint, its credentials).
    pub fn manager(&self) -> &M {
        &self.inner.manager().manager
    }

    /// Closes the free connections and refuses checkouts; connections checked out close when
    /// they come back.
    pub fn close(&self) {
        let free = self.inner.status().available;
        self.inner.close();
        self.inner
            .manager()
            .counts
            .closed
            .fetch_add(free as u64, Ordering::Relaxed);
        self.report();
    }

    /// Sets the gauges from the pool's status.
    fn report(&self) {
        report(&self.instance, self.inner.status());
    }
}

impl<M: Manager> std::fmt::Debug for Pool<M> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Pool")
            .field("instance", &self.instance)
            .field("config", &self.config)
            .field("status", &self.status())
            .finish()
    }
}

impl<M: Manager> Drop for Pool<M> {
    fn drop(&mut self) {
        if let Some(reaper) = self.reaper.take() {
            reaper.abort();
        }
    }
}

impl<M: Manager> Manager for Counted<M> {
    type Type = M::Type;
    type Error = M::Error;

    async fn create(&self) -> Result<M::Type, M::Error> {
        match self.manager.create().await {
            Ok(conn) => {
                self.counts.created.fetch_add(1, Ordering::Relaxed);
                metrics::counter!("knhk_connector_pool_created_total", "instance" => self.instance.to_string()).increment(1);
                Ok(conn)
            }
            Err(e) => {
                self.counts.failed.fetch_add(1, Ordering::Relaxed);
                metrics::counter!("knhk_connector_pool_failed_total", "instance" => self.instance.to_string()).increment(1);
                Err(e)
            }
        }
    }

    async fn recycle(&self, conn: &mut M::Type, m: &Metrics) -> RecycleResult<M::Error> {
        // A connection refused here (or whose check times out) is detached by deadpool, and
        // `detach` counts it as closed: counting it here too would count it twice.
        if expired(&self.config, m, self.now()) {
            return Err(RecycleError::message("expired"));
        }
        self.manager.recycle(conn, m).await
    }

    fn detach(&self, conn: &mut M::Type) {
        self.closed();
        self.manager.detach(conn);
    }
}

impl<M> Counted<M> {
    /// Returns now on tokio's clock, as a `std` instant comparable with deadpool's stamps.
    fn now(&self) -> std::time::Instant {
        self.epoch.0 + self.epoch.1.elapsed()
    }

    fn closed(&self) {
        self.counts.closed.fetch_add(1, Ordering::Relaxed);
        metrics::counter!("knhk_connector_pool_closed_total", "instance" => self.instance.to_string()).increment(1);
    }
}

/// Tells whether a connection is past its idle timeout or its lifetime at `now`.
fn expired(config: &PoolConfig, m: &Metrics, now: std::time::Instant) -> bool {
    let last_used = now.saturating_duration_since(m.recycled.unwrap_or(m.created));
    let age = now.saturating_duration_since(m.created);
    config.idle_timeout.is_some_and(|t| last_used >= t)
        || config.max_lifetime.is_some_and(|t| age >= t)
}

/// How often the reaper looks: half the shorter of the two bounds, at least every 10 ms.
fn reaper_period(config: &PoolConfig) -> Option<Duration> {
    let shortest = match (config.idle_timeout, config.max_lifetime) {
        (Some(a), Some(b)) => a.min(b),
        (Some(a), None) | (None, Some(a)) => a,
        (None, None) => return None,
    };
    Some((shortest / 2).max(Duration::from_millis(10)))
}

/// Closes free connections past their idle timeout or lifetime until the pool is gone.
async fn reap<M: Manager>(pool: managed::WeakPool<Counted<M>>, period: Duration) {
    let mut tick = tokio::time::interval(period);
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        tick.tick().await;
        let Some(pool) = pool.upgrade() else { return };
        if pool.is_closed() {
            return;
        }
        let config = pool.manager().config;
        let now = pool.manager().now();
        // `retain` detaches what it removes, which counts it as closed.
        pool.retain(|_, m| !expired(&config, &m, now));
        report(&pool.manager().instance, pool.status());
    }
}

fn report(instance: &str, s: deadpool::Status) {
    let instance = instance.to_owned();
    metrics::gauge!("knhk_connector_pool_connections", "instance" => instance.clone(), "state" => "active")
        .set((s.size - s.available) as f64);
    metrics::gauge!("knhk_connector_pool_connections", "instance" => instance.clone(), "state" => "idle")
        .set(s.available as f64);
    metrics::gauge!("knhk_connector_pool_waiters", "instance" => instance).set(s.waiting as f64);
}
