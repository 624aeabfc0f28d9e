//! Benchmarks the OR-join decision: one case of empty tasks run to completion in one
//! `apply`, on generated nets, each next to the same net with AND-joins (whose enablement is
//! local) as the reference.
//!
//! - `fan`: an OR split into 128 chains of 100 tasks and one OR-join over them;
//! - `skewed`: an OR block of one short branch and a chain of K tasks, the tasks listed
//!   against the flow (join first) and with the flow (split first);
//! - `series`: 300 OR blocks of two one-task branches, one after the other;
//! - `tree`: OR blocks nested as a binary tree of depth 9 (1,534 tasks);
//! - `consumed`: the exact rule's example, a condition feeding the OR-join and a human task
//!   that heads a chain of 1,000 tasks to the OR-join's other input: the OR-join fires at
//!   once (decided by coverability); its twin has an XOR join.
//!
//! `cargo bench -p knhk-core --bench orjoin` prints, per net, the time per case (median of
//! the runs made in about a second, at least one) and per task completion, and the time of
//! `Workflow::new`. `KNHK_BENCH_BIG=1` adds the skewed block with K = 3,000 and 10,000. An
//! argument (`-- --bench series`) runs only the nets whose label holds it, and
//! `KNHK_BENCH_RUNS=N` times exactly N cases of each: for
//! `valgrind --tool=callgrind --toggle-collect=orjoin::run_case`, which counts the
//! instructions of the cases alone. Under `cargo test` each shape runs once at a small size,
//! as a smoke test.

use std::error::Error;
use std::hint::black_box;
use std::time::{Duration, Instant};

use knhk_core::model::{Allocation, Condition, ControlType, HumanBinding, TaskBinding};
use knhk_core::{
    Case, CaseId, CaseStatus, EventKind, IdSource, Input, SequentialIds, Specification, Timestamp,
    Workflow,
};
use serde_json::Map;

type BenchResult<T = ()> = Result<T, Box<dyn Error>>;

const NOW: Timestamp = Timestamp(1_700_000_000_000);

mod nets;

use ControlType::{And, Or, Xor};
use nets::{chain, fan, flow, series, skewed, specification_with, task, tree};

/// The exact rule's example at scale: `a` marks `p1`, which feeds the OR-join and a human
/// task `u` heading a chain of `k` tasks to the OR-join's other input `p2`. Only `u` can
/// bring a token to `p2`, and it takes `p1`'s: the OR-join fires at once (by coverability,
/// the basis computed by the workflow's first case and kept), and `u`'s offer is withdrawn.
/// The twin has an XOR join, which fires at once too.
fn consumed(join: ControlType, k: usize) -> Specification {
    let mut tasks = vec![task("a", Xor, And, &["p1"])];
    let mut u = task("u", Xor, And, &[]);
    u.binding = TaskBinding::Human(HumanBinding {
        roles: vec!["r".to_owned()],
        allocation: Allocation::RoleOffer,
        four_eyes: false,
        distributed_at_runtime: false,
    });
    u.flows = vec![flow(&chain(&mut tasks, "c", k, "p2"))];
    tasks.push(u);
    tasks.push(task(
        "join",
        if join == Or { Or } else { Xor },
        Xor,
        &["end"],
    ));
    let condition = |id: &str, to: &[&str]| Condition {
        id: id.into(),
        name: None,
        flows: to.iter().map(|t| flow(t)).collect(),
    };
    let conditions = vec![condition("p1", &["join", "u"]), condition("p2", &["join"])];
    specification_with("consumed", "a", conditions, tasks)
}

/// Runs one case to completion and returns its task completions. Never inlined, so that
/// `valgrind --tool=callgrind --toggle-collect=orjoin::run_case` counts its instructions alone.
#[inline(never)]
fn run_case(wf: &Workflow, ids: &mut SequentialIds) -> BenchResult<usize> {
    let (mut case, _) = Case::create(wf, CaseId(ids.next_id()), NOW, Map::new());
    let step = case.apply(wf, NOW, Input::Start, ids)?;
    if case.status() != CaseStatus::Completed {
        return Err(format!("{}: the case ended {}", wf.id(), case.status()).into());
    }
    Ok(step
        .events
        .iter()
        .filter(|e| matches!(e.kind, EventKind::TaskCompleted { .. }))
        .count())
}

fn median(mut xs: Vec<Duration>) -> Duration {
    xs.sort_unstable();
    xs.get(xs.len() / 2).copied().unwrap_or_default()
}

/// Times `spec`: `Workflow::new`, then cases until `budget` is spent (at least one). Nets
/// whose label does not hold `only` (the first argument that is not a flag) are skipped.
fn measure(label: &str, spec: Specification, budget: Duration) -> BenchResult {
    let only = std::env::args().skip(1).find(|a| !a.starts_with('-'));
    if only.is_some_and(|only| !label.contains(&only)) {
        return Ok(());
    }
    let started = Instant::now();
    let wf = Workflow::new(spec)?;
    let build = started.elapsed();
    let mut ids = SequentialIds::default();
    let mut times = Vec::new();
    let mut tasks = 0;
    let runs: Option<usize> = std::env::var("KNHK_BENCH_RUNS")
        .ok()
        .and_then(|n| n.parse().ok());
    let all = Instant::now();
    while match runs {
        Some(n) => times.len() < n.max(1),
        None => times.is_empty() || all.elapsed() < budget,
    } {
        let started = Instant::now();
        tasks = black_box(run_case(&wf, &mut ids)?);
        times.push(started.elapsed());
    }
    let per_case = median(times.clone());
    println!(
        "  {label:<28} {tasks:>6} tasks  {:>12.3?}/case  {:>10.2?}/task  (new {:>9.2?}, {} runs)",
        per_case,
        per_case / tasks.max(1) as u32,
        build,
        times.len()
    );
    Ok(())
}

fn main() -> BenchResult {
    let args: Vec<String> = std::env::args().collect();
    let has = |flag: &str| args.iter().any(|a| a == flag);
    if has("--list") {
        return Ok(());
    }
    let benchmarking = has("--bench") && !has("--test");
    let big = std::env::var("KNHK_BENCH_BIG").is_ok_and(|v| !v.is_empty() && v != "0");
    // Under `cargo test`, every shape once at a small size.
    let k_consumed = if benchmarking { 1000 } else { 10 };
    let (chains, len, ks, blocks, depth, budget) = if benchmarking {
        let ks: &[usize] = if big {
            &[100, 1000, 3000, 10_000]
        } else {
            &[100, 1000]
        };
        (128, 100, ks, 300, 9, Duration::from_secs(1))
    } else {
        (4, 5, &[10][..], 5, 3, Duration::ZERO)
    };
    println!("knhk-core OR-join benchmark: one case of empty tasks, start to completion");
    for join in [Or, And] {
        let j = if join == Or { "or" } else { "and" };
        measure(
            &format!("fan_{j}_{chains}x{len}"),
            fan(join, chains, len),
            budget,
        )?;
        for &k in ks {
            for with_flow in [false, true] {
                let order = if with_flow { "with" } else { "against" };
                let label = format!("skewed_{j}_k{k}_{order}");
                measure(&label, skewed(join, k, with_flow), budget)?;
            }
        }
        measure(
            &format!("series_{j}_{blocks}"),
            series(join, blocks),
            budget,
        )?;
        measure(&format!("tree_{j}_depth{depth}"), tree(join, depth), budget)?;
        measure(
            &format!("consumed_{j}_k{k_consumed}"),
            consumed(join, k_consumed),
            budget,
        )?;
    }
    Ok(())
}
