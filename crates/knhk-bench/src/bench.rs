//! `knhk-bench bench`: measures the durable engine on SQLite with fsync on, for the figures of the
//! runtime issue: W1 (ten empty tasks in sequence) and H10 (ten HTTP tasks in sequence against
//! a local server), with 1 and with 64 concurrent cases.
//!
//! Every measurement runs on a fresh SQLite file with `synchronous=FULL` (`--durability normal`:
//! `NORMAL`); with `--store postgres://...`, each runs again on a fresh schema of that
//! PostgreSQL database (dropped afterwards), in the same run. A W1 case commits in
//! one step (`create_case` with start runs it to its end), so its step is one `create_case`
//! call. An H10 case takes eleven steps: the `create_case` call that starts the first HTTP call,
//! then one commit per HTTP result; a step there is the `create_case` call for the first, and
//! for the others the time between two consecutive committed versions of the case (HTTP call,
//! apply, commit), as the engine announces them.

use knhk_core::WorkflowId;
use std::collections::HashMap;
use std::fmt;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use anyhow::{Context, bail};
use axum::Router;
use axum::extract::Path as UrlPath;
use axum::routing::post;
use knhk_core::{CaseId, CaseStatus};
use knhk_store::{PostgresOptions, PostgresStore, SqliteOptions, SqliteStore, Store};
use knhk_workflow_engine::{CaseUpdate, Directory, EngineConfig, LockchainConfig, WorkflowEngine};
use serde_json::{Map, Value, json};
use tokio::sync::{broadcast, oneshot};
use tokio::task::JoinSet;

const W1: &str = include_str!("../../../examples/bench/w1_sequence.ttl");
const H10: &str = include_str!("../../../examples/bench/h10_http_sequence.ttl");
/// Cases run before the clock starts, so that caches, the WAL and HTTP connections are warm.
const WARM_UP: usize = 16;

/// The options of `knhk-bench bench`.
#[derive(Debug, clap::Args)]
pub struct BenchArgs {
    /// Cases per W1 run and per H10 run with 64 concurrent cases; H10 with one case at a
    /// time runs a tenth of them.
    #[arg(long, value_name = "N", default_value_t = 2000)]
    cases: usize,
    /// Runs each measurement once instead of taking the median of three.
    #[arg(long)]
    quick: bool,
    /// Where the SQLite files go (default: a temporary directory, removed afterwards).
    #[arg(long, value_name = "DIR")]
    data_dir: Option<PathBuf>,
    /// SQLite's `synchronous` level, as `knhk --durability`: `full` (fsync on every commit, the
    /// default) or `normal` (fsync only at checkpoints).
    #[arg(long, value_name = "MODE", default_value = "full", value_parser = ["full", "normal"])]
    durability: String,
    /// A PostgreSQL database (`postgres://USER@HOST:PORT/DB`) to measure too, after SQLite,
    /// in a fresh schema per run (created and dropped by the bench).
    #[arg(long, value_name = "URL")]
    store: Option<String>,
    /// The most connections of the PostgreSQL store's pool (of each node).
    #[arg(long, value_name = "N", default_value_t = PostgresOptions::DEFAULT_POOL_SIZE)]
    store_pool_size: usize,
    /// With `--store`: measures PostgreSQL with 1, 2... up to N engine nodes on one schema,
    /// each started as a node (lease, fencing) with its own pool and committers, the cases
    /// handed to them in turn. The nodes share this process (and its CPUs).
    #[arg(long, value_name = "N", default_value_t = 1)]
    nodes: usize,
    /// Every engine keeps the lockchain, with the default checkpoint interval and one signing
    /// key for all nodes, as a `[lockchain]` table in `knhk serve`'s configuration does
    /// (`knhk-bench lockchain` compares off and on on SQLite in one run).
    #[arg(long)]
    lockchain: bool,
}

/// The store a run measures.
#[derive(Clone, Debug)]
enum Backend {
    Sqlite {
        synchronous_full: bool,
    },
    Postgres {
        url: String,
        pool_size: usize,
        nodes: usize,
    },
}

impl Backend {
    fn name(&self) -> &'static str {
        match self {
            Backend::Sqlite { .. } => "sqlite",
            Backend::Postgres { .. } => "postgres",
        }
    }

    fn nodes(&self) -> usize {
        match self {
            Backend::Sqlite { .. } => 1,
            Backend::Postgres { nodes, .. } => *nodes,
        }
    }
}

/// What the store's commit path did in a run: commits, transactions, and the round trips it
/// waited for (PostgreSQL only).
#[derive(Clone, Copy, Debug, Default)]
struct Stats {
    commits: u64,
    batches: u64,
    round_trips: Option<u64>,
}

/// An opened store of either kind, with its counters.
#[derive(Clone, Debug)]
enum Opened {
    Sqlite(SqliteStore),
    Postgres(PostgresStore),
}

impl Stats {
    /// Adds up the counters of the stores of every node.
    fn sum(stores: &[Opened]) -> Stats {
        stores
            .iter()
            .map(Opened::stats)
            .fold(Stats::default(), |a, b| Stats {
                commits: a.commits + b.commits,
                batches: a.batches + b.batches,
                round_trips: match (a.round_trips, b.round_trips) {
                    (None, None) => None,
                    (x, y) => Some(x.unwrap_or(0) + y.unwrap_or(0)),
                },
            })
    }
}

impl Opened {
    fn stats(&self) -> Stats {
        match self {
            Opened::Sqlite(s) => {
                let st = s.stats();
                Stats {
                    commits: st.commits,
                    batches: st.batches,
                    round_trips: None,
                }
            }
            Opened::Postgres(s) => {
                let st = s.stats();
                Stats {
                    commits: st.commits,
                    batches: st.batches,
                    round_trips: Some(st.round_trips),
                }
            }
        }
    }

    fn store(&self) -> Arc<dyn Store> {
        match self {
            Opened::Sqlite(s) => Arc::new(s.clone()),
            Opened::Postgres(s) => Arc::new(s.clone()),
        }
    }
}

/// Runs every measurement and prints the table.
pub async fn run(args: BenchArgs) -> anyhow::Result<ExitCode> {
    let temp;
    let dir = match &args.data_dir {
        Some(dir) => {
            std::fs::create_dir_all(dir)
                .with_context(|| format!("cannot create {}", dir.display()))?;
            dir.clone()
        }
        None => {
            temp = tempfile::tempdir().context("cannot create a temporary directory")?;
            temp.path().to_path_buf()
        }
    };
    let repeats = if args.quick { 1 } else { 3 };
    let synchronous_full = args.durability != "normal";
    let cases = args.cases.max(1);
    let mut backends = vec![Backend::Sqlite { synchronous_full }];
    if let Some(url) = &args.store {
        if !(url.starts_with("postgres://") || url.starts_with("postgresql://")) {
            bail!("--store: a PostgreSQL URL postgres://USER@HOST:PORT/DB (SQLite always runs)");
        }
        for nodes in 1..=args.nodes.max(1) {
            backends.push(Backend::Postgres {
                url: url.clone(),
                pool_size: args.store_pool_size.max(1),
                nodes,
            });
        }
    }
    let lockchain = if args.lockchain {
        let signer = knhk_lockchain::note::Signer::generate("bench.knhk.dev/lockchain")
            .map_err(|e| anyhow::anyhow!("cannot make the bench's signing key: {e}"))?;
        Some(LockchainConfig::new(signer))
    } else {
        None
    };
    let (addr, server) = serve().await?;
    let scenarios = [
        Scenario::new(Workload::W1, 1, cases),
        Scenario::new(Workload::W1, 64, cases),
        Scenario::new(Workload::H10, 1, (cases / 10).max(1)),
        Scenario::new(Workload::H10, 64, cases),
    ];
    let cpus = std::thread::available_parallelism().map_or(1, |n| n.get());
    println!(
        "knhk-bench bench: {cpus} CPUs (nproc); SQLite in WAL mode with synchronous={}, \
         a fresh file per run",
        if synchronous_full {
            "FULL (fsync on every commit)"
        } else {
            "NORMAL (fsync at checkpoints; --durability normal)"
        }
    );
    if repeats > 1 {
        println!("each figure is the median of {repeats} runs");
    }
    if args.lockchain {
        println!(
            "every engine keeps the lockchain: a checkpoint every {} leaves or {} s",
            LockchainConfig::DEFAULT_CHECKPOINT_EVENTS,
            LockchainConfig::DEFAULT_CHECKPOINT_INTERVAL.as_secs()
        );
    }
    println!();
    if let Some(url) = &args.store {
        println!(
            "PostgreSQL: {} (pool of {}), a fresh schema per run",
            knhk_store::redact_address(url),
            args.store_pool_size.max(1)
        );
    }
    println!("{}", Row::header());
    let mut outcome = Ok(());
    'scenarios: for scenario in &scenarios {
        for backend in &backends {
            let mut samples = Vec::with_capacity(repeats);
            for repeat in 1..=repeats {
                let file = dir.join(format!(
                    "{}-c{}-r{repeat}.db",
                    scenario.workload.name(),
                    scenario.concurrency
                ));
                match scenario
                    .measure(backend, &file, addr, lockchain.as_ref())
                    .await
                {
                    Ok(sample) => samples.push(sample),
                    Err(e) => {
                        outcome =
                            Err(e.context(format!("{scenario} on {} failed", backend.name())));
                        break 'scenarios;
                    }
                }
            }
            println!("{}", Row::median(scenario, backend, &samples));
        }
    }
    // The server stops whatever happened; its own failure is reported only if all else went well.
    let stopped = server.stop().await;
    outcome?;
    stopped?;
    println!();
    println!("peak RSS: {}", peak_rss());
    println!(
        "step: W1 = one create_case call (the whole case commits in it); H10 = the \
         create_case call, then the time between consecutive committed versions of a case"
    );
    println!(
        "commits/batch: store commits per transaction (SQLite: one fsync each with \
         synchronous=FULL; PostgreSQL: one WAL flush each); trips/case: round trips the \
         PostgreSQL committers waited for, per case (a pipelined group of statements counts once)"
    );
    Ok(ExitCode::SUCCESS)
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Workload {
    W1,
    H10,
}

impl Workload {
    fn name(self) -> &'static str {
        match self {
            Workload::W1 => "W1",
            Workload::H10 => "H10",
        }
    }

    fn turtle(self, addr: SocketAddr) -> String {
        match self {
            Workload::W1 => W1.to_owned(),
            Workload::H10 => H10.replace("{port}", &addr.port().to_string()),
        }
    }
}

/// One line of the table: a workload, how many cases run at once, how many cases in all.
#[derive(Debug)]
struct Scenario {
    workload: Workload,
    concurrency: usize,
    cases: usize,
}

impl fmt::Display for Scenario {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "{} with {} concurrent cases",
            self.workload.name(),
            self.concurrency
        )
    }
}

/// What one run measured.
#[derive(Debug)]
struct Sample {
    cases_per_s: f64,
    p50: Duration,
    p99: Duration,
    stats: Stats,
    cases: usize,
}

impl Scenario {
    fn new(workload: Workload, concurrency: usize, cases: usize) -> Scenario {
        Scenario {
            workload,
            concurrency,
            cases,
        }
    }

    /// Runs the scenario once on a fresh store: a SQLite file at `file`, or a new schema of
    /// the PostgreSQL database (dropped afterwards).
    async fn measure(
        &self,
        backend: &Backend,
        file: &Path,
        addr: SocketAddr,
        lockchain: Option<&LockchainConfig>,
    ) -> anyhow::Result<Sample> {
        let (opened, schema) = match backend {
            Backend::Sqlite { synchronous_full } => {
                for suffix in ["", "-wal", "-shm"] {
                    let mut name = file.as_os_str().to_owned();
                    name.push(suffix);
                    match std::fs::remove_file(&name) {
                        Err(e) if e.kind() != std::io::ErrorKind::NotFound => {
                            return Err(e)
                                .with_context(|| format!("cannot remove {}", file.display()));
                        }
                        _ => {}
                    }
                }
                let options = SqliteOptions {
                    synchronous_full: *synchronous_full,
                    ..SqliteOptions::default()
                };
                let store = SqliteStore::open(file, options)
                    .await
                    .with_context(|| format!("cannot open {}", file.display()))?;
                (vec![Opened::Sqlite(store)], None)
            }
            Backend::Postgres {
                url,
                pool_size,
                nodes,
            } => {
                let schema = BenchSchema::new(url, self, *nodes);
                let options = PostgresOptions {
                    pool_size: *pool_size,
                    ..PostgresOptions::default()
                };
                let mut stores = Vec::with_capacity(*nodes);
                for _ in 0..*nodes {
                    let store = PostgresStore::open(&schema.address, options)
                        .await
                        .with_context(|| {
                            format!("cannot open {}", knhk_store::redact_address(url))
                        })?;
                    stores.push(Opened::Postgres(store));
                }
                (stores, Some(schema))
            }
        };
        let mut engines = Vec::with_capacity(opened.len());
        for store in &opened {
            let mut config = EngineConfig::with_defaults(store.store(), Directory::default());
            config.lockchain = lockchain.cloned();
            let engine = WorkflowEngine::new(config);
            // Several engines on one store are nodes: each registers, heartbeats and commits
            // fenced, as `knhk serve` does; an engine with the lockchain starts its
            // checkpointer.
            if opened.len() > 1 || lockchain.is_some() {
                engine.start().await?;
            }
            engines.push(engine);
        }
        let measured = self.measure_on(&engines, &opened, addr).await;
        for engine in engines {
            engine.shutdown().await;
        }
        drop(opened);
        if let Some(schema) = schema {
            schema.drop_it().await?;
        }
        measured
    }

    async fn measure_on(
        &self,
        engines: &[WorkflowEngine],
        stores: &[Opened],
        addr: SocketAddr,
    ) -> anyhow::Result<Sample> {
        let name = format!("{}.ttl", self.workload.name());
        let first = engines.first().context("no engine to measure")?;
        let workflow = first
            .register_workflow(
                &name,
                knhk_workflow_engine::SourceFormat::Turtle,
                &self.workload.turtle(addr),
            )
            .await?
            .workflow
            .id;
        let warm_up = Drive {
            workload: self.workload,
            workflow,
            concurrency: self.concurrency.min(WARM_UP),
            cases: WARM_UP,
        };
        warm_up.run(engines).await?;

        let steps = (self.workload == Workload::H10).then(|| StepClock::start(engines));
        let before = Stats::sum(stores);
        let started = Instant::now();
        let drive = Drive {
            workload: self.workload,
            workflow,
            concurrency: self.concurrency,
            cases: self.cases,
        };
        let mut latencies = drive.run(engines).await?;
        let elapsed = started.elapsed();
        let after = Stats::sum(stores);
        if let Some(steps) = steps {
            latencies.extend(steps.stop().await?);
        }
        latencies.sort_unstable();
        Ok(Sample {
            cases_per_s: self.cases as f64 / elapsed.as_secs_f64(),
            p50: percentile(&latencies, 50),
            p99: percentile(&latencies, 99),
            stats: Stats {
                commits: after.commits - before.commits,
                batches: after.batches - before.batches,
                round_trips: after
                    .round_trips
                    .zip(before.round_trips)
                    .map(|(a, b)| a - b),
            },
            cases: self.cases,
        })
    }
}

/// Cases of one workflow run to their end by a fixed number of workers.
#[derive(Clone, Copy, Debug)]
struct Drive {
    workload: Workload,
    workflow: WorkflowId,
    concurrency: usize,
    cases: usize,
}

impl Drive {
    /// Runs the cases, the workers spread over the engines in turn; returns how long each
    /// `create_case` call took.
    async fn run(self, engines: &[WorkflowEngine]) -> anyhow::Result<Vec<Duration>> {
        let next = Arc::new(AtomicUsize::new(0));
        let mut workers = JoinSet::new();
        for engine in engines.iter().cycle().take(self.concurrency.max(1)) {
            let (engine, next) = (engine.clone(), Arc::clone(&next));
            workers.spawn(async move { self.worker(&engine, &next).await });
        }
        let mut latencies = Vec::with_capacity(self.cases);
        while let Some(joined) = workers.join_next().await {
            latencies.extend(joined.context("a bench worker stopped")??);
        }
        Ok(latencies)
    }

    async fn worker(
        self,
        engine: &WorkflowEngine,
        next: &AtomicUsize,
    ) -> anyhow::Result<Vec<Duration>> {
        let mut latencies = Vec::new();
        while next.fetch_add(1, Ordering::Relaxed) < self.cases {
            let started = Instant::now();
            let case = engine
                .create_case(self.workflow, Value::Object(Map::new()), true)
                .await?;
            latencies.push(started.elapsed());
            let ended = match self.workload {
                Workload::W1 => case,
                Workload::H10 => engine.wait_until_ended(case.id).await?,
            };
            if ended.status != CaseStatus::Completed {
                bail!("case {} ended {}", ended.id, ended.status);
            }
        }
        Ok(latencies)
    }
}

/// Times the steps after a case's first: the time between consecutive committed versions,
/// as each engine announces them (a case runs on one engine).
struct StepClock {
    stops: Vec<oneshot::Sender<()>>,
    tasks: Vec<tokio::task::JoinHandle<Vec<Duration>>>,
}

impl StepClock {
    fn start(engines: &[WorkflowEngine]) -> StepClock {
        let mut clock = StepClock {
            stops: Vec::new(),
            tasks: Vec::new(),
        };
        for engine in engines {
            let mut updates = engine.subscribe();
            let (stop, mut stopped) = oneshot::channel();
            clock.stops.push(stop);
            clock.tasks.push(tokio::spawn(async move {
                let mut last: HashMap<CaseId, Instant> = HashMap::new();
                let mut steps = Vec::new();
                loop {
                    // Updates first: everything announced before the stop is counted.
                    tokio::select! {
                        biased;
                        update = updates.recv() => match update {
                            Ok(u) => step(&mut last, &mut steps, &u),
                            // An interval across a missed update would be too long: start over.
                            Err(broadcast::error::RecvError::Lagged(_)) => last.clear(),
                            Err(broadcast::error::RecvError::Closed) => return steps,
                        },
                        _ = &mut stopped => return steps,
                    }
                }
            }));
        }
        clock
    }

    async fn stop(self) -> anyhow::Result<Vec<Duration>> {
        let mut steps = Vec::new();
        for stop in self.stops {
            // The task may have ended already; its steps are still there.
            let _ = stop.send(());
        }
        for task in self.tasks {
            steps.extend(task.await.context("the step clock stopped")?);
        }
        Ok(steps)
    }
}

fn step(last: &mut HashMap<CaseId, Instant>, steps: &mut Vec<Duration>, u: &CaseUpdate) {
    let now = Instant::now();
    if let Some(before) = last.insert(u.case, now) {
        steps.push(now - before);
    }
    if u.status.is_final() {
        last.remove(&u.case);
    }
}

/// Returns the nearest-rank percentile of sorted durations (zero for none).
pub(crate) fn percentile(sorted: &[Duration], p: usize) -> Duration {
    if sorted.is_empty() {
        return Duration::ZERO;
    }
    let rank = (sorted.len() * p).div_ceil(100).max(1);
    sorted[rank.min(sorted.len()) - 1]
}

/// One printed line of the table.
struct Row;

impl Row {
    fn header() -> String {
        format!(
            "{:<8} {:<8} {:>5} {:>11} {:>6} {:>9} {:>10} {:>10} {:>13} {:>10}",
            "workload",
            "store",
            "nodes",
            "concurrency",
            "cases",
            "cases/s",
            "step p50",
            "step p99",
            "commits/batch",
            "trips/case"
        )
    }

    fn median(scenario: &Scenario, backend: &Backend, samples: &[Sample]) -> String {
        let cases_per_s = median(samples.iter().map(|s| s.cases_per_s).collect());
        let p50 = median(samples.iter().map(|s| s.p50.as_secs_f64()).collect());
        let p99 = median(samples.iter().map(|s| s.p99.as_secs_f64()).collect());
        let batch = median(
            samples
                .iter()
                .map(|s| s.stats.commits as f64 / s.stats.batches.max(1) as f64)
                .collect(),
        );
        let trips = samples
            .iter()
            .filter_map(|s| {
                s.stats
                    .round_trips
                    .map(|t| t as f64 / s.cases.max(1) as f64)
            })
            .collect::<Vec<_>>();
        let trips = if trips.is_empty() {
            "-".to_owned()
        } else {
            format!("{:.2}", median(trips))
        };
        format!(
            "{:<8} {:<8} {:>5} {:>11} {:>6} {:>9.0} {:>10} {:>10} {:>13.1} {:>10}",
            scenario.workload.name(),
            backend.name(),
            backend.nodes(),
            scenario.concurrency,
            scenario.cases,
            cases_per_s,
            millis(p50),
            millis(p99),
            batch,
            trips
        )
    }
}

fn median(mut values: Vec<f64>) -> f64 {
    values.sort_by(f64::total_cmp);
    values.get(values.len() / 2).copied().unwrap_or(0.0)
}

pub(crate) fn millis(seconds: f64) -> String {
    format!("{:.2} ms", seconds * 1000.0)
}

/// Reads the process's peak resident set size (`VmHWM`) from `/proc/self/status`.
fn peak_rss() -> String {
    let kib = std::fs::read_to_string("/proc/self/status")
        .ok()
        .and_then(|status| {
            status
                .lines()
                .find_map(|l| l.strip_prefix("VmHWM:"))
                .and_then(|v| v.trim().trim_end_matches("kB").trim().parse::<u64>().ok())
        });
    match kib {
        Some(kib) => format!("{:.1} MiB (VmHWM)", kib as f64 / 1024.0),
        None => "unknown (no VmHWM in /proc/self/status)".to_owned(),
    }
}

/// The HTTP server H10's tasks call, on 127.0.0.1 and a port of its own.
struct Server {
    stop: oneshot::Sender<()>,
    task: tokio::task::JoinHandle<std::io::Result<()>>,
}

impl Server {
    async fn stop(self) -> anyhow::Result<()> {
        let _ = self.stop.send(());
        self.task
            .await
            .context("the bench HTTP server stopped")?
            .context("the bench HTTP server failed")
    }
}

async fn serve() -> anyhow::Result<(SocketAddr, Server)> {
    let app = Router::new().route(
        "/step/{n}",
        post(|UrlPath(n): UrlPath<u32>| async move { axum::Json(json!({ "step": n })) }),
    );
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
        .await
        .context("cannot bind the bench HTTP server")?;
    let addr = listener.local_addr()?;
    let (stop, stopped) = oneshot::channel::<()>();
    let task = tokio::spawn(async move {
        axum::serve(listener, app)
            .with_graceful_shutdown(async move {
                let _ = stopped.await;
            })
            .await
    });
    Ok((addr, Server { stop, task }))
}

/// A schema of the PostgreSQL database for one run, named after it.
struct BenchSchema {
    /// The server's address, as given.
    url: String,
    name: String,
    /// The address with the schema as its search_path.
    address: String,
}

impl BenchSchema {
    fn new(url: &str, scenario: &Scenario, nodes: usize) -> BenchSchema {
        static NEXT: AtomicUsize = AtomicUsize::new(0);
        let name = format!(
            "knhk_bench_{}_{}_c{}_n{nodes}_{}",
            std::process::id(),
            scenario.workload.name().to_ascii_lowercase(),
            scenario.concurrency,
            NEXT.fetch_add(1, Ordering::Relaxed)
        );
        let join = if url.contains('?') { '&' } else { '?' };
        BenchSchema {
            url: url.to_owned(),
            address: format!("{url}{join}options=-csearch_path%3D{name}"),
            name,
        }
    }

    /// Drops the schema with everything in it.
    async fn drop_it(self) -> anyhow::Result<()> {
        let (client, conn) = tokio_postgres::connect(&self.url, tokio_postgres::NoTls)
            .await
            .with_context(|| {
                format!(
                    "cannot connect to {} to drop the schema {}",
                    knhk_store::redact_address(&self.url),
                    self.name
                )
            })?;
        let connection = tokio::spawn(conn);
        client
            .batch_execute(&format!("DROP SCHEMA IF EXISTS \"{}\" CASCADE", self.name))
            .await
            .with_context(|| format!("cannot drop the schema {}", self.name))?;
        drop(client);
        let _ = connection.await;
        Ok(())
    }
}
