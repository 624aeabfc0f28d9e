//! `knhk-bench history`: measures single-case commands on one case with a long history (issue
//! 8, one case with a long history), with snapshots off (the case replayed from its whole
//! history, the history read whole, as before snapshots) and on, in the same run.
//!
//! For each length E it fills a fresh SQLite store with one case waiting at one human task
//! whose data was set E - 4 times (one `data_updated` event each; the four others are its
//! creation, start, enabling and offer), through the engine with snapshots every 1,000 events
//! as `knhk` writes them. Then each operation runs in a process of its own (this binary's
//! hidden `history-probe`), so that its peak RSS (`VmHWM`) is its own, once with
//! `snapshot_every = 0` ("off": no snapshot read, the case replayed from its start; `case show
//! --json` reads the history whole, as the command did) and once with snapshots ("on": the
//! snapshot and the events after it; the history read a page of 1,000 events at a time):
//! - `case show`: the case row, its workflow and what it waits for, on an engine with nothing
//!   cached (as a `knhk case show` process);
//! - `case show --json`: the same, its work items and its history;
//! - `case history --limit 100`: the row and the first page of 100 events;
//! - `workitem claim`: a work item step on the case (claimed, then released untimed, so that
//!   the case keeps waiting).
//!
//! With `--knhk PATH`, the `knhk` commands themselves are timed too, each a process with
//! `--snapshot-every 0` or the default; their peak RSS is the child's `VmHWM` read every 5 ms
//! until it exits. With `--knhk-before PATH`, a `knhk` binary built before snapshots (store
//! format 6), the same commands run with it on a copy of the store at format 6 (the snapshots
//! table dropped): the commands as they were.

use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::{Context, bail};
use knhk_core::{CaseId, CaseStatus, WorkItemId};
use knhk_store::{SqliteOptions, SqliteStore};
use knhk_workflow_engine::{Directory, EngineConfig, SourceFormat, WorkItemQuery, WorkflowEngine};
use serde_json::{Map, Value, json};

use crate::bench::{millis, percentile};

/// A case that waits at one human task, offered to the role `clerk`.
const REVIEW: &str = include_str!("../../../examples/bench/scale_review.ttl");
/// The user who claims the work item; a member of `clerk`.
const USER: &str = "ann";
/// The roles of the data directory (`directory.json`).
const DIRECTORY: &str = r#"{"roles": {"clerk": ["ann", "bob"]}}"#;
/// The events of the case before its data is first set: created, started, task enabled,
/// work item offered.
const FIRST_EVENTS: u64 = 4;
/// The events read at a time by the paged reads, as `knhk` reads them.
const PAGE: usize = 1000;

/// The options of `knhk-bench history`.
#[derive(Debug, clap::Args)]
pub struct HistoryArgs {
    /// The history lengths to measure, in events (comma-separated).
    #[arg(long, value_name = "E,...", value_delimiter = ',', default_values_t = [10_000, 100_000])]
    events: Vec<u64>,
    /// How many times each operation is timed (in one process per operation).
    #[arg(long, value_name = "K", default_value_t = 5)]
    samples: usize,
    /// The events between two snapshots when snapshots are on.
    #[arg(long, value_name = "N", default_value_t = EngineConfig::DEFAULT_SNAPSHOT_EVERY)]
    snapshot_every: u64,
    /// Where the data directories go, one per length (`history-E/`), kept afterwards
    /// (default: a temporary directory, removed afterwards).
    #[arg(long, value_name = "DIR")]
    data_dir: Option<PathBuf>,
    /// The `knhk` binary: also times its `case show --json`, `case history --limit 100` and
    /// `workitem claim` commands, each a process on the data directory.
    #[arg(long, value_name = "PATH")]
    knhk: Option<PathBuf>,
    /// A `knhk` binary built before snapshots (store format 6): its commands are timed too,
    /// on a copy of the store at format 6.
    #[arg(long, value_name = "PATH")]
    knhk_before: Option<PathBuf>,
}

/// The options of the hidden `knhk-bench history-probe`: one operation, timed in a process of
/// its own.
#[derive(Debug, clap::Args)]
pub struct ProbeArgs {
    #[arg(long)]
    data_dir: PathBuf,
    #[arg(long)]
    case: CaseId,
    #[arg(long)]
    op: Op,
    #[arg(long)]
    snapshot_every: u64,
    #[arg(long)]
    samples: usize,
}

/// An operation timed on the long case.
#[derive(Clone, Copy, Debug, PartialEq, Eq, clap::ValueEnum)]
pub enum Op {
    Show,
    ShowJson,
    HistoryLimit,
    Claim,
}

impl Op {
    const ALL: [Op; 4] = [Op::Show, Op::ShowJson, Op::HistoryLimit, Op::Claim];

    fn label(self) -> &'static str {
        match self {
            Op::Show => "case show",
            Op::ShowJson => "case show --json",
            Op::HistoryLimit => "case history --limit 100",
            Op::Claim => "workitem claim",
        }
    }

    fn arg(self) -> &'static str {
        match self {
            Op::Show => "show",
            Op::ShowJson => "show-json",
            Op::HistoryLimit => "history-limit",
            Op::Claim => "claim",
        }
    }
}

/// One printed line.
#[derive(Debug)]
struct Row {
    operation: String,
    events: u64,
    snapshots: String,
    runs: usize,
    p50: Duration,
    p99: Duration,
    peak_kib: Option<u64>,
}

impl Row {
    fn header() -> String {
        format!(
            "{:<32} {:>8} {:>10} {:>5} {:>11} {:>11} {:>10}",
            "operation", "events", "snapshots", "runs", "p50", "p99", "peak RSS"
        )
    }
}

impl std::fmt::Display for Row {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let rss = self
            .peak_kib
            .map_or("?".to_owned(), |k| format!("{:.0} MiB", k as f64 / 1024.0));
        write!(
            f,
            "{:<32} {:>8} {:>10} {:>5} {:>11} {:>11} {:>10}",
            self.operation,
            self.events,
            self.snapshots,
            self.runs,
            millis(self.p50.as_secs_f64()),
            millis(self.p99.as_secs_f64()),
            rss
        )
    }
}

/// Fills a store per length and prints a table of the operations, snapshots off and on.
pub async fn run(args: HistoryArgs) -> anyhow::Result<ExitCode> {
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
    if args.snapshot_every == 0 {
        bail!("--snapshot-every must be above 0: snapshots on is what is compared with off");
    }
    println!(
        "knhk-bench history: one case waiting at a human task, its data set once per event; \
         SQLite in WAL mode with synchronous=FULL; snapshots every {} events when on",
        args.snapshot_every
    );
    let me = std::env::current_exe().context("cannot find this program to run its probes")?;
    let samples = args.samples.max(1);
    let mut rows = Vec::new();
    for &events in &args.events {
        let data_dir = dir.join(format!("history-{events}"));
        let (case, item) = fill(&data_dir, events.max(FIRST_EVENTS + 1), args.snapshot_every)
            .await
            .with_context(|| format!("cannot fill the case of {events} events"))?;
        for op in Op::ALL {
            for every in [0, args.snapshot_every] {
                rows.push(probe(&me, &data_dir, case, op, every, samples, events).await?);
            }
        }
        if let Some(before) = &args.knhk_before {
            let old = dir.join(format!("history-{events}-v6"));
            copy_at_format_6(&data_dir, &old)?;
            let run = Knhk {
                path: before,
                data_dir: &old,
                every: None,
            };
            rows.extend(commands(&run, case, item, samples, events).await?);
        }
        if let Some(knhk) = &args.knhk {
            for every in [0, args.snapshot_every] {
                let run = Knhk {
                    path: knhk,
                    data_dir: &data_dir,
                    every: Some(every),
                };
                rows.extend(commands(&run, case, item, samples, events).await?);
            }
        }
    }
    println!();
    println!("{}", Row::header());
    for row in &rows {
        println!("{row}");
    }
    println!();
    println!(
        "runs: times each operation ran, in one process per operation and setting (a new \
         engine each time: nothing cached); peak RSS: that process's high-water mark; knhk \
         rows: a process per run, the largest high-water mark of them (read every 5 ms)"
    );
    Ok(ExitCode::SUCCESS)
}

/// Creates the data directory of one length with its case; returns the case and its work
/// item.
async fn fill(data_dir: &Path, events: u64, every: u64) -> anyhow::Result<(CaseId, WorkItemId)> {
    let file = data_dir.join("knhk.db");
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
    std::fs::create_dir_all(data_dir)
        .with_context(|| format!("cannot create {}", data_dir.display()))?;
    std::fs::write(data_dir.join("directory.json"), DIRECTORY)
        .with_context(|| format!("cannot write the roles in {}", data_dir.display()))?;
    // Filled without an fsync per step: the steps are what is measured later, not the fill.
    let options = SqliteOptions {
        synchronous_full: false,
        ..SqliteOptions::default()
    };
    let store = SqliteStore::open(&file, options)
        .await
        .with_context(|| format!("cannot open {}", file.display()))?;
    let mut config =
        EngineConfig::with_defaults(Arc::new(store.clone()), Directory::from_json(DIRECTORY)?);
    config.snapshot_every = every;
    let engine = WorkflowEngine::new(config);
    let workflow = engine
        .register_workflow("scale_review.ttl", SourceFormat::Turtle, REVIEW)
        .await?
        .workflow
        .id;
    let started = Instant::now();
    let case = engine
        .create_case(workflow, Value::Object(Map::new()), true)
        .await?;
    if case.status != CaseStatus::Running || case.version != FIRST_EVENTS {
        bail!(
            "the case is {} at event {} after its creation",
            case.status,
            case.version
        );
    }
    for n in FIRST_EVENTS..events {
        let mut changes = Map::new();
        changes.insert("n".to_owned(), json!(n));
        engine.update_data(case.id, changes).await?;
    }
    let rate = (events - FIRST_EVENTS) as f64 / started.elapsed().as_secs_f64();
    let item = match engine.work_items(&of_case(case.id)).await?.first() {
        Some(item) => item.id,
        None => bail!("case {} has no work item", case.id),
    };
    engine.shutdown().await;
    drop(engine);
    drop(store);
    let bytes = std::fs::metadata(&file).map_or(0, |m| m.len());
    println!(
        "fill {events}: {rate:.0} steps/s; store file {:.0} MiB",
        bytes as f64 / (1024.0 * 1024.0)
    );
    Ok((case.id, item))
}

/// Runs one operation in a probe process and returns its row.
async fn probe(
    me: &Path,
    data_dir: &Path,
    case: CaseId,
    op: Op,
    every: u64,
    samples: usize,
    events: u64,
) -> anyhow::Result<Row> {
    let out = tokio::process::Command::new(me)
        .arg("history-probe")
        .arg("--data-dir")
        .arg(data_dir)
        .args(["--case", &case.to_string(), "--op", op.arg()])
        .args(["--snapshot-every", &every.to_string()])
        .args(["--samples", &samples.to_string()])
        .output()
        .await
        .context("cannot run a probe")?;
    if !out.status.success() {
        bail!(
            "the probe of {} failed ({}): {}",
            op.label(),
            out.status,
            String::from_utf8_lossy(&out.stderr)
        );
    }
    let report: Value = serde_json::from_slice(&out.stdout).context("the probe's report")?;
    let micros = |key: &str| Duration::from_micros(report[key].as_u64().unwrap_or(0));
    Ok(Row {
        operation: op.label().to_owned(),
        events,
        snapshots: setting(every),
        runs: samples,
        p50: micros("p50_us"),
        p99: micros("p99_us"),
        peak_kib: report["peak_kib"].as_u64(),
    })
}

fn setting(every: u64) -> String {
    if every == 0 {
        "off".to_owned()
    } else {
        "on".to_owned()
    }
}

/// Runs one operation `samples` times on a new engine each time and prints its percentiles
/// and the process's peak RSS as one JSON line: the hidden `history-probe` command.
pub async fn run_probe(args: ProbeArgs) -> anyhow::Result<ExitCode> {
    let file = args.data_dir.join("knhk.db");
    let directory = Directory::from_json(DIRECTORY)?;
    let mut latencies = Vec::with_capacity(args.samples);
    let item = {
        let (engine, _store) = open(&file, &directory, args.snapshot_every).await?;
        let found = engine.work_items(&of_case(args.case)).await?;
        engine.shutdown().await;
        match found.first() {
            Some(item) => item.id,
            None => bail!("case {} has no work item", args.case),
        }
    };
    for _ in 0..args.samples.max(1) {
        // A new engine on the open store: nothing of the case is cached, as in a `knhk`
        // process.
        let (engine, store) = open(&file, &directory, args.snapshot_every).await?;
        let started = Instant::now();
        operation(&engine, args.case, item, args.op, args.snapshot_every).await?;
        latencies.push(started.elapsed());
        if args.op == Op::Claim {
            engine.release_work_item(item, USER).await?;
        }
        engine.shutdown().await;
        drop(engine);
        drop(store);
    }
    latencies.sort_unstable();
    let micros = |d: Duration| u64::try_from(d.as_micros()).unwrap_or(u64::MAX);
    println!(
        "{}",
        json!({
            "p50_us": micros(percentile(&latencies, 50)),
            "p99_us": micros(percentile(&latencies, 99)),
            "peak_kib": peak_rss_kib(),
        })
    );
    Ok(ExitCode::SUCCESS)
}

/// What a `knhk` process asks of the engine for `op`.
async fn operation(
    engine: &WorkflowEngine,
    case: CaseId,
    item: WorkItemId,
    op: Op,
    every: u64,
) -> anyhow::Result<()> {
    match op {
        Op::Show => {
            let record = engine.case(case).await?;
            engine.workflow(record.workflow).await?;
            engine.waits(case).await?;
        }
        Op::ShowJson => {
            let record = engine.case(case).await?;
            engine.workflow(record.workflow).await?;
            engine.work_items(&of_case(case)).await?;
            engine.waits(case).await?;
            let mut read = 0;
            if every == 0 {
                // As the command read it before snapshots: the whole history at once.
                read = engine.history(case).await?.len() as u64;
            } else {
                loop {
                    let page = engine.history_page(case, read, PAGE).await?;
                    read = page.last().map_or(read, |e| e.seq);
                    if page.len() < PAGE {
                        break;
                    }
                }
            }
            if read < record.version {
                bail!("read {read} events of {}", record.version);
            }
        }
        Op::HistoryLimit => {
            engine.case(case).await?;
            let page = engine.history_page(case, 0, 100).await?;
            if page.len() != 100 {
                bail!("a page of {} events", page.len());
            }
        }
        Op::Claim => {
            engine.claim(item, USER).await?;
        }
    }
    Ok(())
}

/// Copies the data directory `from` to `to` at store format 6: the snapshots table (format
/// 7) dropped, which is all format 7 added.
fn copy_at_format_6(from: &Path, to: &Path) -> anyhow::Result<()> {
    std::fs::create_dir_all(to).with_context(|| format!("cannot create {}", to.display()))?;
    for name in ["knhk.db", "directory.json"] {
        std::fs::copy(from.join(name), to.join(name))
            .with_context(|| format!("cannot copy {name} to {}", to.display()))?;
    }
    let conn = rusqlite::Connection::open(to.join("knhk.db")).context("cannot open the copy")?;
    conn.execute_batch("DROP TABLE snapshots; PRAGMA user_version = 6;")
        .context("cannot take the copy back to format 6")?;
    Ok(())
}

/// A `knhk` binary on a data directory, with its `--snapshot-every` (`None`: a binary from
/// before snapshots, which has no such flag).
struct Knhk<'a> {
    path: &'a Path,
    data_dir: &'a Path,
    every: Option<u64>,
}

/// Times the `knhk` commands, each run as a process `samples` times.
async fn commands(
    knhk: &Knhk<'_>,
    case: CaseId,
    item: WorkItemId,
    samples: usize,
    events: u64,
) -> anyhow::Result<Vec<Row>> {
    let (data_dir, every) = (knhk.data_dir, knhk.every);
    let knhk = knhk.path;
    let (case, item) = (case.to_string(), item.to_string());
    let mut rows = Vec::new();
    let commands: [(&str, Vec<&str>); 3] = [
        (
            "knhk case show --json",
            vec!["case", "show", &case, "--json"],
        ),
        (
            "knhk case history --limit 100",
            vec!["case", "history", &case, "--limit", "100", "--json"],
        ),
        (
            "knhk workitem claim",
            vec!["workitem", "claim", &item, "--user", USER],
        ),
    ];
    for (label, args) in commands {
        let mut latencies = Vec::with_capacity(samples);
        let mut peak = None;
        for _ in 0..samples {
            let flag = every.map(|n| n.to_string());
            let mut all = Vec::new();
            if let Some(flag) = &flag {
                all.extend(["--snapshot-every", flag.as_str()]);
            }
            all.extend(&args);
            let (took, kib) = run_knhk(knhk, data_dir, &all).await?;
            latencies.push(took);
            peak = peak.max(kib);
            if label == "knhk workitem claim" {
                run_knhk(
                    knhk,
                    data_dir,
                    &["workitem", "release", &item, "--user", USER],
                )
                .await?;
            }
        }
        latencies.sort_unstable();
        rows.push(Row {
            operation: label.to_owned(),
            events,
            snapshots: every.map_or("before".to_owned(), setting),
            runs: samples,
            p50: percentile(&latencies, 50),
            p99: percentile(&latencies, 99),
            peak_kib: peak,
        });
    }
    Ok(rows)
}

/// Runs `knhk --data-dir DIR ARGS...` to its end; returns how long it took and the highest
/// `VmHWM` read from it (every 5 ms) while it ran.
async fn run_knhk(
    knhk: &Path,
    data_dir: &Path,
    args: &[&str],
) -> anyhow::Result<(Duration, Option<u64>)> {
    let started = Instant::now();
    let mut child = tokio::process::Command::new(knhk)
        .arg("--data-dir")
        .arg(data_dir)
        .args(args)
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .with_context(|| format!("cannot run {}", knhk.display()))?;
    let status_file = child.id().map(|pid| format!("/proc/{pid}/status"));
    let mut peak = None;
    let status = loop {
        if let Some(file) = &status_file
            && let Some(kib) = std::fs::read_to_string(file)
                .ok()
                .as_deref()
                .and_then(vm_hwm)
        {
            peak = peak.max(Some(kib));
        }
        tokio::select! {
            status = child.wait() => break status?,
            _ = tokio::time::sleep(Duration::from_millis(5)) => {}
        }
    };
    let took = started.elapsed();
    if !status.success() {
        let mut err = String::new();
        if let Some(mut stderr) = child.stderr.take() {
            use tokio::io::AsyncReadExt as _;
            let _ = stderr.read_to_string(&mut err).await;
        }
        bail!("knhk {args:?} failed ({status}): {err}");
    }
    Ok((took, peak))
}

fn of_case(case: CaseId) -> WorkItemQuery {
    WorkItemQuery {
        case: Some(case),
        ..WorkItemQuery::default()
    }
}

/// Opens the engine on a store file as `knhk` does (`synchronous=FULL`), snapshotting every
/// `every` events (0: never).
async fn open(
    file: &Path,
    directory: &Directory,
    every: u64,
) -> anyhow::Result<(WorkflowEngine, SqliteStore)> {
    let store = SqliteStore::open(file, SqliteOptions::default())
        .await
        .with_context(|| format!("cannot open {}", file.display()))?;
    let mut config = EngineConfig::with_defaults(Arc::new(store.clone()), directory.clone());
    config.snapshot_every = every;
    Ok((WorkflowEngine::new(config), store))
}

/// Reads this process's peak RSS (`VmHWM`), in KiB.
fn peak_rss_kib() -> Option<u64> {
    vm_hwm(&std::fs::read_to_string("/proc/self/status").ok()?)
}

/// Returns the `VmHWM` of a `/proc/PID/status` text, in KiB.
fn vm_hwm(status: &str) -> Option<u64> {
    status
        .lines()
        .find_map(|l| l.strip_prefix("VmHWM:"))
        .and_then(|v| v.trim().trim_end_matches("kB").trim().parse().ok())
}
