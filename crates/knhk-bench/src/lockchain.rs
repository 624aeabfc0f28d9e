//! `knhk-bench lockchain`: the lockchain's figures for the note of issue 12.
//!
//! - W1 durable throughput (SQLite, `synchronous=FULL`) with the lockchain off and on, in the
//!   same run: the runs alternate off, on, off, on... on fresh files, so that drift of the
//!   machine (other processes, the page cache) falls on both alike; each figure is the median
//!   of its runs, and the ratio is on over off.
//! - The time to produce a receipt (`WorkflowEngine::receipt`, p50 and p99), for events drawn
//!   across the whole log of the last run with the lockchain on.
//! - A receipt's size at 1k, 1M and 1G leaves, computed: a real receipt of the run with its
//!   proof replaced by `ceil(log2 n)` hashes (the most an inclusion proof in a tree of `n`
//!   leaves has) and its sizes by `n`, as JSON (REST, the CLI's file) and as protobuf (gRPC).
//! - Verification speed in events/s, through the engine's offline verification.
//!
//! Both engines are started (`WorkflowEngine::start`) as `knhk serve` starts its own, so that
//! the lockchain's checkpointer runs during the measurement, and the off run pays the same
//! node registration and heartbeat.

use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use anyhow::{Context as _, bail};
use knhk_core::{CaseId, CaseStatus, WorkflowId};
use knhk_store::{SqliteOptions, SqliteStore};
use knhk_workflow_engine::{
    Directory, EngineConfig, LockchainConfig, VerifyOptions, WorkflowEngine,
};
use prost::Message as _;
use serde_json::{Map, Value};
use tokio::task::JoinSet;

use crate::bench::{millis, percentile};

const W1: &str = include_str!("../../../examples/bench/w1_sequence.ttl");
/// Cases run before the clock starts, so that caches and the WAL are warm.
const WARM_UP: usize = 16;
/// The origin (and key name) of the bench's logs.
const ORIGIN: &str = "bench.knhk.dev/lockchain";
/// The tree sizes whose receipt size is computed.
const SIZES: [(&str, u64); 3] = [("1k", 1_000), ("1M", 1_000_000), ("1G", 1_000_000_000)];

/// The options of `knhk-bench lockchain`.
#[derive(Debug, clap::Args)]
pub struct LockchainArgs {
    /// W1 cases per run.
    #[arg(long, value_name = "N", default_value_t = 2000)]
    cases: usize,
    /// Runs each mode once at each concurrency (`--repeats 1`).
    #[arg(long)]
    quick: bool,
    /// Runs of each mode at each concurrency, off and on alternately; each figure is the
    /// median of its runs, and the on/off ratio the median of the ratios of each pair of
    /// runs side by side, which drift of the machine touches alike.
    #[arg(long, value_name = "N", default_value_t = 5)]
    repeats: usize,
    /// Receipts produced for the receipt time.
    #[arg(long, value_name = "N", default_value_t = 1000)]
    receipts: usize,
    /// Where the SQLite files go (default: a temporary directory, removed afterwards).
    #[arg(long, value_name = "DIR")]
    data_dir: Option<PathBuf>,
    /// A checkpoint every this many leaves (the engine's `checkpoint_events`; 0: only by
    /// time). Default: the engine's default.
    #[arg(long, value_name = "LEAVES", default_value_t = LockchainConfig::DEFAULT_CHECKPOINT_EVENTS)]
    checkpoint_events: u64,
    /// SQLite's `synchronous` level: `full` (fsync on every commit, the default) or `normal`.
    #[arg(long, value_name = "MODE", default_value = "full", value_parser = ["full", "normal"])]
    durability: String,
}

/// Whether a run keeps the lockchain.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Mode {
    Off,
    On,
}

impl Mode {
    fn name(self) -> &'static str {
        match self {
            Mode::Off => "off",
            Mode::On => "on",
        }
    }
}

/// What one W1 run measured.
#[derive(Debug)]
struct Sample {
    cases_per_s: f64,
    p50: Duration,
    p99: Duration,
}

/// Runs every measurement and prints the figures.
pub async fn run(args: LockchainArgs) -> anyhow::Result<ExitCode> {
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
    let repeats = if args.quick { 1 } else { args.repeats.max(1) };
    let synchronous_full = args.durability != "normal";
    let cases = args.cases.max(1);
    let cpus = std::thread::available_parallelism().map_or(1, |n| n.get());
    println!(
        "knhk-bench lockchain: {cpus} CPUs (nproc); W1 on SQLite in WAL mode with \
         synchronous={}, a fresh file per run, the lockchain off and on alternately \
         (on: a checkpoint every {} leaves and every {} s)",
        if synchronous_full { "FULL" } else { "NORMAL" },
        args.checkpoint_events,
        LockchainConfig::DEFAULT_CHECKPOINT_INTERVAL.as_secs()
    );
    if repeats > 1 {
        println!(
            "each figure is the median of {repeats} runs; on/off is the median of the {repeats} \
             ratios of a run with the lockchain on to the run off just before it"
        );
    }
    println!();
    println!(
        "{:<9}{:>12}{:>11}{:>8}{:>11}{:>13}{:>13}",
        "workload", "concurrency", "lockchain", "cases", "cases/s", "step p50", "step p99"
    );
    let mut ratios = Vec::new();
    // The last store with the lockchain on, kept for the receipts and the verification.
    let mut kept: Option<Kept> = None;
    for concurrency in [1, 64] {
        let mut off = Vec::with_capacity(repeats);
        let mut on = Vec::with_capacity(repeats);
        for repeat in 1..=repeats {
            for mode in [Mode::Off, Mode::On] {
                let file = dir.join(format!("w1-c{concurrency}-{}-r{repeat}.db", mode.name()));
                let run = Run::open(&file, mode, synchronous_full, args.checkpoint_events).await?;
                let measured = run.measure(concurrency, cases).await;
                let measured = match measured {
                    Ok(m) => m,
                    Err(e) => {
                        run.engine.shutdown().await;
                        return Err(e.context(format!(
                            "W1 with {concurrency} concurrent cases, lockchain {}",
                            mode.name()
                        )));
                    }
                };
                match mode {
                    Mode::Off => {
                        run.engine.shutdown().await;
                        off.push(measured.0);
                    }
                    Mode::On => {
                        on.push(measured.0);
                        if let Some(old) = kept.take() {
                            old.engine.shutdown().await;
                        }
                        kept = Some(Kept {
                            engine: run.engine,
                            cases: measured.1,
                        });
                    }
                }
            }
        }
        let (off_runs, on_runs) = (off, on);
        let (off, on) = (Median::of(&off_runs), Median::of(&on_runs));
        for (mode, m) in [(Mode::Off, &off), (Mode::On, &on)] {
            println!(
                "{:<9}{:>12}{:>11}{:>8}{:>11.0}{:>13}{:>13}",
                "W1",
                concurrency,
                mode.name(),
                cases,
                m.cases_per_s,
                millis(m.p50.as_secs_f64()),
                millis(m.p99.as_secs_f64())
            );
        }
        let mut paired: Vec<f64> = off_runs
            .iter()
            .zip(&on_runs)
            .map(|(off, on)| on.cases_per_s / off.cases_per_s)
            .collect();
        paired.sort_by(|a, b| a.partial_cmp(b).unwrap_or(std::cmp::Ordering::Equal));
        ratios.push((concurrency, paired));
    }
    println!();
    for (concurrency, paired) in &ratios {
        let ratio = paired.get(paired.len() / 2).copied().unwrap_or(f64::NAN);
        let (low, high) = (
            paired.first().copied().unwrap_or(f64::NAN),
            paired.last().copied().unwrap_or(f64::NAN),
        );
        println!(
            "W1 with {concurrency} concurrent cases: throughput on/off = {ratio:.3} \
             (overhead {:.1}%; pairs {low:.3} to {high:.3})",
            (1.0 - ratio) * 100.0
        );
    }
    let Some(kept) = kept else {
        bail!("no run kept the lockchain");
    };
    let outcome = figures(&kept, args.receipts.max(1)).await;
    kept.engine.shutdown().await;
    outcome?;
    Ok(ExitCode::SUCCESS)
}

/// The receipt time, the receipt sizes and the verification speed, on the kept store.
async fn figures(kept: &Kept, receipts: usize) -> anyhow::Result<()> {
    let engine = &kept.engine;
    // Each event of every case of the run, in order: the receipts are drawn across the log.
    let mut events: Vec<(CaseId, u64)> = Vec::new();
    for (case, version) in &kept.cases {
        events.extend((1..=*version).map(|seq| (*case, seq)));
    }
    if events.is_empty() {
        bail!("the run with the lockchain on committed no events");
    }
    // The first receipt may take a checkpoint covering the log: it is not timed.
    let first = engine
        .receipt(events[events.len() - 1].0, events[events.len() - 1].1)
        .await
        .context("the first receipt")?;
    let stride = (events.len() / receipts).max(1);
    let mut times = Vec::with_capacity(receipts);
    for i in 0..receipts {
        let (case, seq) = events[(i * stride + i / events.len()) % events.len()];
        let started = Instant::now();
        let receipt = engine.receipt(case, seq).await?;
        times.push(started.elapsed());
        if receipt.case != case || receipt.seq != seq {
            bail!("the receipt of event {seq} of case {case} names another event");
        }
    }
    times.sort_unstable();
    println!();
    println!(
        "receipt production ({receipts} receipts over a log of {} leaves): p50 {}, p99 {}",
        first.tree_size,
        millis(percentile(&times, 50).as_secs_f64()),
        millis(percentile(&times, 99).as_secs_f64())
    );

    println!();
    println!(
        "receipt size, computed from a receipt of this run (W1 event of {} canonical bytes) \
         with the longest proof of a tree of n leaves, ceil(log2 n) hashes:",
        knhk_api::lockchain::Receipt::of(&first)
            .event_bytes()
            .map(|b| b.len())
            .unwrap_or_default()
    );
    println!(
        "{:<8}{:>8}{:>13}{:>17}",
        "leaves", "hashes", "JSON bytes", "protobuf bytes"
    );
    for (name, n) in SIZES {
        let (hashes, json, proto) = receipt_size(&first, n)?;
        println!("{name:<8}{hashes:>8}{json:>13}{proto:>17}");
    }

    // What each committed event costs the committing task: its canonical bytes and leaf hash.
    let (case, _) = kept.cases[0];
    let history = engine.events(case, 0).await?;
    let rounds = 2000;
    let started = Instant::now();
    for _ in 0..rounds {
        for event in &history {
            std::hint::black_box(knhk_lockchain::canonical::event_leaf(case, event)?);
        }
    }
    let per_event = started.elapsed().as_secs_f64() / (rounds * history.len().max(1)) as f64;
    println!();
    println!(
        "leaf of an event (canonical bytes and SHA-256, on the committing task): {:.2} µs; \
         {:.1} µs for a W1 case of {} events",
        per_event * 1e6,
        per_event * 1e6 * history.len() as f64,
        history.len()
    );

    println!();
    match verification(engine).await? {
        Some((events, elapsed)) => println!(
            "verification: {events} events recomputed and checked in {}: {:.0} events/s",
            millis(elapsed.as_secs_f64()),
            events as f64 / elapsed.as_secs_f64()
        ),
        None => println!(
            "verification: not measured: this build has no offline verification in the \
             engine (WorkflowEngine::verify_lockchain, from the verify branch)"
        ),
    }
    Ok(())
}

/// Times the engine's offline verification of the whole log (`WorkflowEngine::
/// verify_lockchain`, what `knhk lockchain verify` runs): the events it read and hashed, and
/// the time it took; a log that does not hold fails the bench, naming the first problem.
async fn verification(engine: &WorkflowEngine) -> anyhow::Result<Option<(u64, Duration)>> {
    let started = Instant::now();
    let verified = engine
        .verify_lockchain(VerifyOptions::default(), Box::new(|_| {}))
        .await?;
    let elapsed = started.elapsed();
    if let Some(problem) = verified.report.problems.first() {
        bail!("the bench's own log does not verify: {problem}");
    }
    Ok(Some((verified.report.events, elapsed)))
}

/// Returns the size of `receipt` made for a tree of `n` leaves: the proof's hash count, its
/// JSON bytes (pretty-printed, as the CLI writes the file) and its protobuf bytes (gRPC).
fn receipt_size(
    receipt: &knhk_lockchain::receipt::Receipt,
    n: u64,
) -> anyhow::Result<(usize, usize, usize)> {
    let hashes = ceil_log2(n);
    let hash = base64_32();
    let mut r = receipt.clone();
    r.tree_size = n;
    r.leaf_index = n - 1;
    r.inclusion = vec![hash; hashes];
    // The note's second line is the tree size: its digits grow with it.
    let mut lines: Vec<String> = r.checkpoint.split('\n').map(str::to_owned).collect();
    if let Some(size) = lines.get_mut(1) {
        *size = n.to_string();
    }
    r.checkpoint = lines.join("\n");
    let wire = knhk_api::lockchain::Receipt::of(&r);
    let json = serde_json::to_string_pretty(&wire)?.len() + 1;
    let proto = knhk_api::grpc::pb::Receipt {
        format: wire.format.clone(),
        case_id: wire.case.clone(),
        seq: wire.seq,
        leaf_index: wire.leaf_index,
        tree_size: wire.tree_size,
        event: wire.event_bytes()?,
        inclusion: wire.inclusion_bytes()?,
        checkpoint: wire.checkpoint.clone(),
    }
    .encoded_len();
    Ok((hashes, json, proto))
}

/// `ceil(log2 n)`: the most hashes an inclusion proof in a tree of `n` leaves has.
fn ceil_log2(n: u64) -> usize {
    if n <= 1 {
        0
    } else {
        (u64::BITS - (n - 1).leading_zeros()) as usize
    }
}

/// A 32-byte hash in base64 (its value does not change the size).
fn base64_32() -> String {
    use base64::Engine as _;
    base64::engine::general_purpose::STANDARD.encode([0u8; 32])
}

/// The median of each figure over runs.
struct Median {
    cases_per_s: f64,
    p50: Duration,
    p99: Duration,
}

impl Median {
    fn of(samples: &[Sample]) -> Median {
        fn mid<T: Copy + PartialOrd>(mut v: Vec<T>) -> T {
            v.sort_by(|a, b| a.partial_cmp(b).unwrap_or(std::cmp::Ordering::Equal));
            v[v.len() / 2]
        }
        Median {
            cases_per_s: mid(samples.iter().map(|s| s.cases_per_s).collect()),
            p50: mid(samples.iter().map(|s| s.p50).collect()),
            p99: mid(samples.iter().map(|s| s.p99).collect()),
        }
    }
}

/// The engine of the last run with the lockchain on, and its cases with their versions.
struct Kept {
    engine: WorkflowEngine,
    cases: Vec<(CaseId, u64)>,
}

/// One W1 run: a started engine on a fresh SQLite file, with or without the lockchain.
struct Run {
    engine: WorkflowEngine,
}

impl Run {
    async fn open(
        file: &Path,
        mode: Mode,
        synchronous_full: bool,
        checkpoint_events: u64,
    ) -> anyhow::Result<Run> {
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
        let options = SqliteOptions {
            synchronous_full,
            ..SqliteOptions::default()
        };
        let store = SqliteStore::open(file, options)
            .await
            .with_context(|| format!("cannot open {}", file.display()))?;
        let mut config = EngineConfig::with_defaults(Arc::new(store), Directory::default());
        if mode == Mode::On {
            let signer = knhk_lockchain::note::Signer::generate(ORIGIN)
                .map_err(|e| anyhow::anyhow!("cannot make the bench's signing key: {e}"))?;
            config.lockchain = Some(LockchainConfig {
                checkpoint_events,
                ..LockchainConfig::new(signer)
            });
        }
        let engine = WorkflowEngine::new(config);
        engine.start().await?;
        Ok(Run { engine })
    }

    /// Runs `cases` W1 cases, `concurrency` at a time, after a warm-up; returns the figures
    /// and every measured case with its version (its last event's sequence number).
    async fn measure(
        &self,
        concurrency: usize,
        cases: usize,
    ) -> anyhow::Result<(Sample, Vec<(CaseId, u64)>)> {
        let workflow = self
            .engine
            .register_workflow("W1.ttl", knhk_workflow_engine::SourceFormat::Turtle, W1)
            .await?
            .workflow
            .id;
        drive(&self.engine, workflow, concurrency.min(WARM_UP), WARM_UP).await?;
        let started = Instant::now();
        let (mut latencies, done) = drive(&self.engine, workflow, concurrency, cases).await?;
        let elapsed = started.elapsed();
        latencies.sort_unstable();
        Ok((
            Sample {
                cases_per_s: cases as f64 / elapsed.as_secs_f64(),
                p50: percentile(&latencies, 50),
                p99: percentile(&latencies, 99),
            },
            done,
        ))
    }
}

/// Runs `cases` W1 cases to their end with `concurrency` workers; returns how long each
/// `create_case` call took (a W1 case commits in that one step) and the cases.
async fn drive(
    engine: &WorkflowEngine,
    workflow: WorkflowId,
    concurrency: usize,
    cases: usize,
) -> anyhow::Result<(Vec<Duration>, Vec<(CaseId, u64)>)> {
    let next = Arc::new(AtomicUsize::new(0));
    let mut workers = JoinSet::new();
    for _ in 0..concurrency.max(1) {
        let (engine, next) = (engine.clone(), Arc::clone(&next));
        workers.spawn(async move {
            let mut latencies = Vec::new();
            let mut done = Vec::new();
            while next.fetch_add(1, Ordering::Relaxed) < cases {
                let started = Instant::now();
                let case = engine
                    .create_case(workflow, Value::Object(Map::new()), true)
                    .await?;
                latencies.push(started.elapsed());
                if case.status != CaseStatus::Completed {
                    bail!("case {} ended {}", case.id, case.status);
                }
                done.push((case.id, case.version));
            }
            Ok::<_, anyhow::Error>((latencies, done))
        });
    }
    let mut latencies = Vec::with_capacity(cases);
    let mut done = Vec::with_capacity(cases);
    while let Some(joined) = workers.join_next().await {
        let (l, d) = joined.context("a bench worker stopped")??;
        latencies.extend(l);
        done.extend(d);
    }
    Ok((latencies, done))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_longest_inclusion_proof_has_ceil_log2_n_hashes() {
        assert_eq!(ceil_log2(1), 0);
        assert_eq!(ceil_log2(2), 1);
        assert_eq!(ceil_log2(3), 2);
        assert_eq!(ceil_log2(1_000), 10);
        assert_eq!(ceil_log2(1 << 20), 20);
        assert_eq!(ceil_log2(1_000_000), 20);
        assert_eq!(ceil_log2(1_000_000_000), 30);
    }
}
