//! `knhk-bench scale`: measures how single-case commands and lists grow with the number of
//! cases in the store (issue 8, the store at scale).
//!
//! For each size N it fills a fresh SQLite store (`synchronous=FULL`, as `knhk` runs it) with N
//! waiting cases, each at one human task offered to a role, by creating them through the
//! engine with many creations at once (their commits share fsyncs). Then, as separate
//! processes on that store would, it times:
//! - a worker's start-up (`start`: timers armed, unfinished cases recovered);
//! - what `knhk case show` asks the engine (the case, its workflow, what it waits for), and
//!   `case show --json` (also the history and the case's work items);
//! - what `knhk workitem complete` asks (the work item, the completion step, where the case
//!   stands after it);
//! - a case created whose work item is allocated by shortest queue (one count per candidate);
//! - the lists: every case, every work item of the role, the work items of one user;
//! - with `--knhk PATH`, the `knhk case show --json` and `knhk workitem complete --json`
//!   commands themselves, each a process of its own (start, opening the store, the command,
//!   closing it).
//!
//! Each figure is over cases spread evenly through the fill order. The peak RSS of each
//! operation is the process's high-water mark (`VmHWM`) during it: reset to the RSS of the
//! moment before it starts (`5` written to `/proc/self/clear_refs`), so it is that RSS (what
//! the allocator kept of the operations before) plus what the operation itself needed.

use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use anyhow::{Context, bail};
use knhk_core::{CaseId, CaseStatus, WorkflowId};
use knhk_store::{SqliteOptions, SqliteStore};
use knhk_workflow_engine::{
    CaseQuery, Directory, EngineConfig, IdOrder, SourceFormat, WorkItemQuery, WorkflowEngine,
};
use serde_json::{Map, Value};
use tokio::task::JoinSet;

use crate::bench::{millis, percentile};

/// A case that waits at one human task, offered to the role `clerk`.
const REVIEW: &str = include_str!("../../../examples/bench/scale_review.ttl");
/// A case whose one human task is allocated to the clerk with the fewest work items.
const ASSIGN: &str = include_str!("../../../examples/bench/scale_assign.ttl");
/// The user who completes work items; a member of `clerk`.
const USER: &str = "ann";
/// The roles of the data directory (`directory.json`): shortest queue needs the members.
const DIRECTORY: &str = r#"{"roles": {"clerk": ["ann", "bob", "cat", "dan"]}}"#;

/// The options of `knhk-bench scale`.
#[derive(Debug, clap::Args)]
pub struct ScaleArgs {
    /// The store sizes to measure, in waiting cases (comma-separated).
    #[arg(long, value_name = "N,...", value_delimiter = ',', default_values_t = [10_000, 100_000])]
    cases: Vec<usize>,
    /// Adds a store of one million waiting cases (filling it takes minutes).
    #[arg(long)]
    million: bool,
    /// How many cases each single-case operation is timed on.
    #[arg(long, value_name = "K", default_value_t = 200)]
    samples: usize,
    /// How many times each list is timed.
    #[arg(long, value_name = "R", default_value_t = 3)]
    list_runs: usize,
    /// How many cases are created at once while filling.
    #[arg(long, value_name = "C", default_value_t = 64)]
    concurrency: usize,
    /// Where the data directories go, one per size (`scale-N/`, with the store `knhk.db`
    /// and the roles `directory.json`), kept afterwards (default: a temporary directory,
    /// removed afterwards).
    #[arg(long, value_name = "DIR")]
    data_dir: Option<PathBuf>,
    /// The `knhk` binary: also times its `case show` and `workitem complete` commands, each
    /// run as a process on the data directory.
    #[arg(long, value_name = "PATH")]
    knhk: Option<PathBuf>,
    /// The store writer's page cache, in MiB.
    #[arg(long, value_name = "MIB", default_value_t = SqliteOptions::DEFAULT_WRITER_CACHE_KIB / 1024)]
    writer_cache_mib: u64,
    /// Only fills a store of each size four times, with random (UUIDv4) and time-ordered
    /// (UUIDv7) ids, each with the writer cache of `--writer-cache-mib` and with 16 times
    /// that, and prints the creation rates: what makes creation slow down as the store grows.
    #[arg(long)]
    compare_fill: bool,
}

/// Fills a store per size and prints the fill rate and a table of timed operations.
pub async fn run(args: ScaleArgs) -> anyhow::Result<ExitCode> {
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
    let mut sizes = args.cases.clone();
    if args.million {
        sizes.push(1_000_000);
    }
    let cpus = std::thread::available_parallelism().map_or(1, |n| n.get());
    println!(
        "knhk-bench scale: {cpus} CPUs (nproc); SQLite in WAL mode with synchronous=FULL; \
         waiting cases with one human task each"
    );
    if args.compare_fill {
        return compare_fill(&args, &dir, &sizes).await;
    }
    let mut rows = Vec::new();
    for &n in &sizes {
        let data_dir = dir.join(format!("scale-{n}"));
        let size = Size {
            cases: n.max(1),
            samples: args.samples.clamp(1, n.max(1)),
            list_runs: args.list_runs.max(1),
            concurrency: args.concurrency.max(1),
        };
        rows.extend(
            size.measure(
                &data_dir,
                args.knhk.as_deref(),
                args.writer_cache_mib * 1024,
            )
            .await
            .with_context(|| format!("the store of {n} cases failed"))?,
        );
    }
    println!();
    println!("{}", Row::header());
    for row in &rows {
        println!("{row}");
    }
    println!();
    println!(
        "runs: cases timed (single-case operations) or times run (lists); peak RSS: the \
         process's high-water mark during that operation (from its RSS when it began); \
         knhk rows: a process per command, its memory not counted here"
    );
    print_growth(&rows, &sizes);
    Ok(ExitCode::SUCCESS)
}

/// Prints each operation's p50 at every size and its growth exponent between consecutive
/// sizes, `log(t2/t1) / log(n2/n1)`: 0 when it does not grow with the store, 1 when it grows
/// as the store does.
fn print_growth(rows: &[Row], sizes: &[usize]) {
    if sizes.len() < 2 {
        return;
    }
    println!();
    let mut operations: Vec<&'static str> = Vec::new();
    for row in rows {
        if !operations.contains(&row.operation) {
            operations.push(row.operation);
        }
    }
    let mut header = format!("{:<26}", "p50 by store size");
    for n in sizes {
        header.push_str(&format!(" {:>11}", n));
    }
    for pair in sizes.windows(2) {
        header.push_str(&format!(
            " {:>13}",
            format!("exp {}-{}", short(pair[0]), short(pair[1]))
        ));
    }
    println!("{header}");
    for op in operations {
        let p50 = |n: usize| {
            rows.iter()
                .find(|r| r.operation == op && r.cases == n.max(1))
                .map(|r| r.p50.as_secs_f64())
        };
        let mut line = format!("{op:<26}");
        for &n in sizes {
            line.push_str(&format!(" {:>11}", p50(n).map_or("-".to_owned(), millis)));
        }
        for pair in sizes.windows(2) {
            let exponent = match (p50(pair[0]), p50(pair[1])) {
                (Some(t1), Some(t2)) if t1 > 0.0 && t2 > 0.0 => format!(
                    "{:.2}",
                    (t2 / t1).ln() / (pair[1] as f64 / pair[0] as f64).ln()
                ),
                _ => "-".to_owned(),
            };
            line.push_str(&format!(" {exponent:>13}"));
        }
        println!("{line}");
    }
}

/// Writes a store size as `10k` or `1M`.
fn short(n: usize) -> String {
    if n >= 1_000_000 && n.is_multiple_of(1_000_000) {
        format!("{}M", n / 1_000_000)
    } else if n >= 1000 && n.is_multiple_of(1000) {
        format!("{}k", n / 1000)
    } else {
        n.to_string()
    }
}

/// Fills a fresh store of each size with each kind of id and writer cache, and prints the
/// creation rates and the CPU time per case, first tenth against last tenth.
async fn compare_fill(args: &ScaleArgs, dir: &Path, sizes: &[usize]) -> anyhow::Result<ExitCode> {
    let base = args.writer_cache_mib * 1024;
    let variants = [
        ("v4 (random)", IdOrder::Random, base),
        ("v7 (time-ordered)", IdOrder::TimeOrdered, base),
        ("v4 (random)", IdOrder::Random, base * 16),
        ("v7 (time-ordered)", IdOrder::TimeOrdered, base * 16),
    ];
    println!(
        "{:<10} {:<18} {:>10} {:>11} {:>11} {:>12} {:>12} {:>9}",
        "cases", "ids", "cache", "cases/s", "last 10%", "CPU µs/case", "last 10% µs", "file"
    );
    for &n in sizes {
        for (name, ids, cache_kib) in variants {
            let data_dir = dir.join(format!("fill-{n}"));
            let file = data_dir.join("knhk.db");
            remove_store(&file)?;
            std::fs::create_dir_all(&data_dir)
                .with_context(|| format!("cannot create {}", data_dir.display()))?;
            let size = Size {
                cases: n.max(1),
                samples: 1,
                list_runs: 1,
                concurrency: args.concurrency.max(1),
            };
            let (engine, store) = open_with(&file, cache_kib, ids).await?;
            let review = register(&engine, "scale_review.ttl", REVIEW).await?;
            let fill = size.fill(&engine, review).await?;
            engine.shutdown().await;
            drop(engine);
            drop(store);
            let bytes = std::fs::metadata(&file).map_or(0, |m| m.len());
            println!(
                "{:<10} {:<18} {:>7} MiB {:>11.0} {:>11.0} {:>12.0} {:>12.0} {:>5.0} MiB",
                n,
                name,
                cache_kib / 1024,
                fill.rate,
                fill.last_rate,
                fill.cpu_per_case * 1e6,
                fill.last_cpu_per_case * 1e6,
                bytes as f64 / (1024.0 * 1024.0)
            );
            remove_store(&file)?;
        }
    }
    Ok(ExitCode::SUCCESS)
}

/// One store size to fill and measure.
#[derive(Clone, Copy, Debug)]
struct Size {
    cases: usize,
    samples: usize,
    list_runs: usize,
    concurrency: usize,
}

/// One printed line: an operation timed on a store of `cases` waiting cases.
#[derive(Debug)]
struct Row {
    operation: &'static str,
    cases: usize,
    runs: usize,
    p50: Duration,
    p99: Duration,
    peak_kib: Option<u64>,
}

impl Row {
    fn header() -> String {
        format!(
            "{:<26} {:>8} {:>5} {:>11} {:>11} {:>10}",
            "operation", "cases", "runs", "p50", "p99", "peak RSS"
        )
    }
}

impl std::fmt::Display for Row {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        // A process of its own has no figure here: its memory is not this process's.
        let rss = self
            .peak_kib
            .map_or("-".to_owned(), |k| format!("{:.0} MiB", k as f64 / 1024.0));
        write!(
            f,
            "{:<26} {:>8} {:>5} {:>11} {:>11} {:>10}",
            self.operation,
            self.cases,
            self.runs,
            millis(self.p50.as_secs_f64()),
            millis(self.p99.as_secs_f64()),
            rss
        )
    }
}

/// Times `what` once per item of `items`; the row of its percentiles and peak memory.
async fn timed<T, F, Fut>(
    operation: &'static str,
    cases: usize,
    items: &[T],
    mut what: F,
) -> anyhow::Result<Row>
where
    F: FnMut(&T) -> Fut,
    Fut: std::future::Future<Output = anyhow::Result<()>>,
{
    reset_peak_rss();
    let mut latencies = Vec::with_capacity(items.len());
    for item in items {
        let started = Instant::now();
        what(item).await.with_context(|| operation.to_owned())?;
        latencies.push(started.elapsed());
    }
    latencies.sort_unstable();
    Ok(Row {
        operation,
        cases,
        runs: latencies.len(),
        p50: percentile(&latencies, 50),
        p99: percentile(&latencies, 99),
        peak_kib: peak_rss_kib(),
    })
}

impl Size {
    async fn measure(
        self,
        data_dir: &Path,
        knhk: Option<&Path>,
        cache_kib: u64,
    ) -> anyhow::Result<Vec<Row>> {
        let file = &data_dir.join("knhk.db");
        remove_store(file)?;
        std::fs::create_dir_all(data_dir)
            .with_context(|| format!("cannot create {}", data_dir.display()))?;
        std::fs::write(data_dir.join("directory.json"), DIRECTORY)
            .with_context(|| format!("cannot write the roles in {}", data_dir.display()))?;
        let mut rows = Vec::new();
        let (engine, store) = open_with(file, cache_kib, IdOrder::default()).await?;
        let review = register(&engine, "scale_review.ttl", REVIEW).await?;
        let assign = register(&engine, "scale_assign.ttl", ASSIGN).await?;
        reset_peak_rss();
        let fill = self.fill(&engine, review).await?;
        engine.shutdown().await;
        drop(engine);
        drop(store);
        // The store closed: the WAL is folded into the file.
        let bytes = std::fs::metadata(file).map_or(0, |m| m.len());
        println!(
            "fill {}: {:.0} cases/s overall, {:.0} cases/s for the last 10%; CPU {:.0} µs per \
             case, {:.0} µs for the last 10%; store file {:.0} MiB; peak RSS {}",
            self.cases,
            fill.rate,
            fill.last_rate,
            fill.cpu_per_case * 1e6,
            fill.last_cpu_per_case * 1e6,
            bytes as f64 / (1024.0 * 1024.0),
            peak_rss_kib().map_or("?".to_owned(), |k| format!("{:.0} MiB", k as f64 / 1024.0))
        );

        // A worker starting on the store: everything it recovers, once.
        {
            let (worker, _store) = open(file).await?;
            rows.push(
                timed("worker start-up", self.cases, &[()], |()| async {
                    worker.start().await?;
                    Ok(())
                })
                .await?,
            );
            worker.shutdown().await;
        }

        // What the commands of separate `knhk` processes ask of an engine that is not started.
        let (engine, store) = open(file).await?;
        let n = self.cases;
        let cases = &fill.sampled;
        rows.push(
            timed("case show", n, cases, |&case| {
                let engine = &engine;
                async move {
                    let record = engine.case(case).await?;
                    engine.workflow(record.workflow).await?;
                    engine.waits(case).await?;
                    Ok(())
                }
            })
            .await?,
        );
        rows.push(
            timed("case show --json", n, cases, |&case| {
                let engine = &engine;
                async move {
                    let record = engine.case(case).await?;
                    engine.workflow(record.workflow).await?;
                    engine.history(case).await?;
                    engine.work_items(&of_case(case)).await?;
                    engine.waits(case).await?;
                    Ok(())
                }
            })
            .await?,
        );
        // The work item of each sampled case, looked up before the clock starts: the command
        // is given its id.
        let mut items = Vec::with_capacity(cases.len());
        for &case in cases {
            match engine.work_items(&of_case(case)).await?.first() {
                Some(item) => items.push((case, item.id)),
                None => bail!("case {case} has no work item"),
            }
        }
        rows.push(
            timed("workitem complete", n, &items, |&(case, item)| {
                let engine = &engine;
                async move {
                    engine.work_item(item).await?;
                    engine.history(case).await?;
                    let view = engine
                        .complete_work_item(item, USER, Value::Object(Map::new()))
                        .await?;
                    engine.settled(case).await?;
                    if view.status != CaseStatus::Completed {
                        bail!("case {case} is {} after its work item", view.status);
                    }
                    engine.case(case).await?;
                    engine.waits(case).await?;
                    engine.work_items(&of_case(case)).await?;
                    Ok(())
                }
            })
            .await?,
        );
        let creations = vec![(); self.samples];
        rows.push(
            timed("case create, shortest q", n, &creations, |()| {
                let engine = &engine;
                async move {
                    let view = engine
                        .create_case(assign, Value::Object(Map::new()), true)
                        .await?;
                    engine.settled(view.id).await?;
                    Ok(())
                }
            })
            .await?,
        );
        let runs = vec![(); self.list_runs];
        rows.push(
            timed("case list", n, &runs, |()| {
                let engine = &engine;
                async move {
                    engine.cases(&CaseQuery::default()).await?;
                    Ok(())
                }
            })
            .await?,
        );
        rows.push(
            timed("case list, pages of 1000", n, &runs, |()| {
                let engine = &engine;
                async move {
                    // As `knhk case list --jsonl` reads it: a page at a time, each dropped
                    // before the next.
                    let mut after = None;
                    let mut seen = 0;
                    loop {
                        let page = engine
                            .cases(&CaseQuery {
                                limit: Some(1000),
                                after,
                                ..CaseQuery::default()
                            })
                            .await?;
                        let Some(last) = page.last() else { break };
                        after = Some(last.id);
                        seen += page.len();
                    }
                    if seen < n {
                        bail!("the pages gave {seen} cases of {n}");
                    }
                    Ok(())
                }
            })
            .await?,
        );
        rows.push(
            timed("workitem list --role", n, &runs, |()| {
                let engine = &engine;
                async move {
                    engine
                        .work_items(&WorkItemQuery {
                            role: Some("clerk".to_owned()),
                            ..WorkItemQuery::default()
                        })
                        .await?;
                    Ok(())
                }
            })
            .await?,
        );
        rows.push(
            timed("workitem list --user", n, &runs, |()| {
                let engine = &engine;
                async move {
                    engine
                        .work_items(&WorkItemQuery {
                            owner: Some("bob".to_owned()),
                            ..WorkItemQuery::default()
                        })
                        .await?;
                    Ok(())
                }
            })
            .await?,
        );
        engine.shutdown().await;
        drop(engine);
        drop(store);
        if let Some(knhk) = knhk {
            rows.extend(self.commands(knhk, data_dir, &fill.for_commands).await?);
        }
        Ok(rows)
    }

    /// Times `knhk case show` and `knhk workitem complete` as processes, on the sampled
    /// cases whose work item is still there.
    async fn commands(
        self,
        knhk: &Path,
        data_dir: &Path,
        cases: &[CaseId],
    ) -> anyhow::Result<Vec<Row>> {
        let mut items = Vec::new();
        {
            let (engine, _store) = open(&data_dir.join("knhk.db")).await?;
            for &case in cases {
                if let Some(item) = engine.work_items(&of_case(case)).await?.first() {
                    items.push((case, item.id));
                }
            }
            engine.shutdown().await;
        }
        let run = |args: Vec<String>| {
            let mut command = tokio::process::Command::new(knhk);
            command
                .arg("--data-dir")
                .arg(data_dir)
                .args(args)
                .stdout(std::process::Stdio::null());
            async move {
                let out = command
                    .output()
                    .await
                    .with_context(|| format!("cannot run {}", knhk.display()))?;
                if !out.status.success() {
                    bail!(
                        "knhk failed ({}): {}",
                        out.status,
                        String::from_utf8_lossy(&out.stderr)
                    );
                }
                Ok(())
            }
        };
        let n = self.cases;
        // `--json` prints the whole case: its history and its work items too.
        let show = timed("knhk case show --json", n, &items, |(case, _)| {
            run(vec![
                "case".into(),
                "show".into(),
                case.to_string(),
                "--json".into(),
            ])
        })
        .await?;
        let complete = timed("knhk workitem complete", n, &items, |(_, item)| {
            run(vec![
                "workitem".into(),
                "complete".into(),
                item.to_string(),
                "--user".into(),
                USER.into(),
                "--json".into(),
            ])
        })
        .await?;
        Ok([show, complete]
            .into_iter()
            .map(|row| Row {
                peak_kib: None,
                ..row
            })
            .collect())
    }

    /// Creates the waiting cases; returns the creation rates and twice `samples` cases spread
    /// evenly over the fill, as two interleaved sets (one for the operations in this process,
    /// one for the `knhk` processes, since completing a work item changes its case).
    async fn fill(self, engine: &WorkflowEngine, workflow: WorkflowId) -> anyhow::Result<Fill> {
        let wanted = (2 * self.samples).min(self.cases);
        let step = (self.cases / wanted).max(1);
        let sampled = Arc::new(Mutex::new(Vec::with_capacity(self.samples)));
        let first = self.cases - self.cases / 10;
        let started = Instant::now();
        let cpu_started = cpu_seconds();
        self.create(engine, workflow, 0..first, step, &sampled)
            .await?;
        let last_started = Instant::now();
        let last_cpu_started = cpu_seconds();
        self.create(engine, workflow, first..self.cases, step, &sampled)
            .await?;
        let last = last_started.elapsed();
        let all = started.elapsed();
        let cpu_ended = cpu_seconds();
        let mut sampled = std::mem::take(&mut *sampled.lock().unwrap_or_else(|e| e.into_inner()));
        sampled.sort_unstable_by_key(|(i, _)| *i);
        sampled.truncate(wanted);
        let (here, there): (Vec<_>, Vec<_>) = sampled
            .into_iter()
            .enumerate()
            .partition(|(k, _)| k % 2 == 0);
        Ok(Fill {
            rate: self.cases as f64 / all.as_secs_f64(),
            last_rate: (self.cases - first) as f64 / last.as_secs_f64(),
            cpu_per_case: (cpu_ended - cpu_started) / self.cases as f64,
            last_cpu_per_case: (cpu_ended - last_cpu_started) / (self.cases - first).max(1) as f64,
            sampled: here.into_iter().map(|(_, (_, id))| id).collect(),
            for_commands: there.into_iter().map(|(_, (_, id))| id).collect(),
        })
    }

    /// Creates the cases numbered `range`, `concurrency` at a time, keeping every `step`-th.
    async fn create(
        self,
        engine: &WorkflowEngine,
        workflow: WorkflowId,
        range: std::ops::Range<usize>,
        step: usize,
        sampled: &Arc<Mutex<Vec<(usize, CaseId)>>>,
    ) -> anyhow::Result<()> {
        let next = Arc::new(AtomicUsize::new(range.start));
        let mut workers = JoinSet::new();
        for _ in 0..self.concurrency {
            let (engine, next, sampled) = (engine.clone(), Arc::clone(&next), Arc::clone(sampled));
            let end = range.end;
            workers.spawn(async move {
                loop {
                    let i = next.fetch_add(1, Ordering::Relaxed);
                    if i >= end {
                        return anyhow::Ok(());
                    }
                    let case = engine
                        .create_case(workflow, Value::Object(Map::new()), true)
                        .await?;
                    if case.status != CaseStatus::Running {
                        bail!("case {} is {} after its creation", case.id, case.status);
                    }
                    if i % step == 0 {
                        sampled
                            .lock()
                            .unwrap_or_else(|e| e.into_inner())
                            .push((i, case.id));
                    }
                }
            });
        }
        while let Some(joined) = workers.join_next().await {
            joined.context("a fill worker stopped")??;
        }
        Ok(())
    }
}

/// What filling a store gave.
struct Fill {
    /// Cases created per second, all of them.
    rate: f64,
    /// Cases created per second, the last tenth (the store nearly full).
    last_rate: f64,
    /// The process's CPU time (user and system, every thread) per case created, all of them.
    cpu_per_case: f64,
    /// The same, for the last tenth.
    last_cpu_per_case: f64,
    /// Cases spread evenly over the fill order, to time operations on.
    sampled: Vec<CaseId>,
    /// As many others, to time the `knhk` commands on.
    for_commands: Vec<CaseId>,
}

fn of_case(case: CaseId) -> WorkItemQuery {
    WorkItemQuery {
        case: Some(case),
        ..WorkItemQuery::default()
    }
}

/// Opens the engine on a store file as `knhk` does (`synchronous=FULL`), with the roles of
/// [`DIRECTORY`].
async fn open(file: &Path) -> anyhow::Result<(WorkflowEngine, SqliteStore)> {
    open_with(
        file,
        SqliteOptions::DEFAULT_WRITER_CACHE_KIB,
        IdOrder::default(),
    )
    .await
}

/// Opens the engine as [`open`] does, with this writer cache and these ids.
async fn open_with(
    file: &Path,
    writer_cache_kib: u64,
    ids: IdOrder,
) -> anyhow::Result<(WorkflowEngine, SqliteStore)> {
    let options = SqliteOptions {
        writer_cache_kib,
        ..SqliteOptions::default()
    };
    let store = SqliteStore::open(file, options)
        .await
        .with_context(|| format!("cannot open {}", file.display()))?;
    let mut config =
        EngineConfig::with_defaults(Arc::new(store.clone()), Directory::from_json(DIRECTORY)?);
    config.ids = ids;
    let engine = WorkflowEngine::new(config);
    Ok((engine, store))
}

/// Returns the CPU time the process has used (user and system, all threads), in seconds,
/// from `/proc/self/stat` (clock ticks of 10 ms); 0 where that cannot be read.
fn cpu_seconds() -> f64 {
    let Ok(stat) = std::fs::read_to_string("/proc/self/stat") else {
        return 0.0;
    };
    // The fields after the command name (which may hold spaces) in parentheses.
    let Some((_, rest)) = stat.rsplit_once(')') else {
        return 0.0;
    };
    let fields: Vec<&str> = rest.split_whitespace().collect();
    // utime and stime are fields 14 and 15 of the line, 12 and 13 after the name.
    let ticks = |i: usize| {
        fields
            .get(i)
            .and_then(|f| f.parse::<f64>().ok())
            .unwrap_or(0.0)
    };
    (ticks(11) + ticks(12)) / 100.0
}

async fn register(engine: &WorkflowEngine, name: &str, turtle: &str) -> anyhow::Result<WorkflowId> {
    Ok(engine
        .register_workflow(name, SourceFormat::Turtle, turtle)
        .await
        .with_context(|| format!("cannot register {name}"))?
        .workflow
        .id)
}

/// Removes a store file left by an earlier run, with its WAL and shared-memory files.
fn remove_store(file: &Path) -> anyhow::Result<()> {
    for suffix in ["", "-wal", "-shm"] {
        let mut name = file.as_os_str().to_owned();
        name.push(suffix);
        match std::fs::remove_file(&name) {
            Err(e) if e.kind() != std::io::ErrorKind::NotFound => {
                return Err(e).with_context(|| format!("cannot remove {}", file.display()));
            }
            _ => {}
        }
    }
    Ok(())
}

/// Resets the process's peak RSS to its current RSS (Linux: `5` into `clear_refs`); where that
/// is not possible the peak stays the process's whole peak.
fn reset_peak_rss() {
    let _ = std::fs::write("/proc/self/clear_refs", "5");
}

/// Reads the process's peak RSS (`VmHWM`), in KiB.
fn peak_rss_kib() -> Option<u64> {
    std::fs::read_to_string("/proc/self/status")
        .ok()?
        .lines()
        .find_map(|l| l.strip_prefix("VmHWM:"))
        .and_then(|v| v.trim().trim_end_matches("kB").trim().parse().ok())
}
