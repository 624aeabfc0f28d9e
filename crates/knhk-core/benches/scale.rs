//! The `scale` group: how the cost of one case grows with the size of its net. Each shape is
//! built at three sizes (about 100, 1,000 and 10,000 task completions) and one case of empty
//! tasks is run from start to end in one `apply`; the report gives the time per case and per
//! task completion at each size and the growth exponent between sizes,
//! `log(t2 / t1) / log(n2 / n1)` with `n` the task completions: 1 is linear, 2 quadratic.
//! Each OR-join shape runs next to its AND-join twin (the same net with AND joins and
//! splits, whose enablement is local), and the last column is the ratio at the largest size.
//!
//! Shapes:
//! - `sequence`: a chain of n tasks;
//! - `width`: a split into n one-task branches and one join over them;
//! - `fan`: a split into 100 chains and one join (n / 100 tasks per chain);
//! - `skewed_against` / `skewed_with`: a block of one short branch and a chain of n tasks,
//!   the tasks listed join first (against the flow) or split first (with it);
//! - `series`: n / 4 blocks of two one-task branches, one after the other;
//! - `tree`: blocks nested as a binary tree (3 × 2^d − 2 tasks);
//! - `loop`: a block whose long branch is a loop of ten tasks run n / 10 times (a counter in
//!   the case data, a CEL guard on the way back).
//!
//! `cargo bench -p knhk-core --bench scale` takes about a minute; `-- --bench NAME` runs only
//! the shapes whose label holds NAME (`tree`, `tree AND`). The figures are medians of the cases run in
//! `KNHK_BENCH_BUDGET_MS` (default 400) milliseconds, at least three; `KNHK_BENCH_SIZES=1000,10000`
//! picks other sizes (with `KNHK_BENCH_BUDGET_MS=0`, three cases each: for
//! `valgrind --tool=callgrind --toggle-collect=scale::run_case`). Under `cargo test` every
//! shape runs once at small sizes, as a smoke test that also checks each case completes.

use std::error::Error;
use std::hint::black_box;
use std::time::{Duration, Instant};

use knhk_core::model::{ControlType, Expression};
use knhk_core::{
    Case, CaseId, CaseStatus, EventKind, IdSource, Input, SequentialIds, Specification, Timestamp,
    Workflow,
};
use serde_json::Map;

type BenchResult<T = ()> = Result<T, Box<dyn Error>>;

const NOW: Timestamp = Timestamp(1_700_000_000_000);

mod nets;

use ControlType::{And, Or, Xor};
use nets::{chain, fan, series, skewed, specification, split_of, task, tree};

fn sequence(_join: ControlType, n: usize) -> Specification {
    let mut tasks = Vec::new();
    let first = chain(&mut tasks, "t", n, "end");
    specification("sequence", &first, tasks)
}

fn width(join: ControlType, n: usize) -> Specification {
    fan(join, n, 1)
}

fn fan_100(join: ControlType, n: usize) -> Specification {
    fan(join, 100, (n / 100).max(1))
}

fn skewed_against(join: ControlType, n: usize) -> Specification {
    skewed(join, n, false)
}

fn skewed_with(join: ControlType, n: usize) -> Specification {
    skewed(join, n, true)
}

fn series_of(join: ControlType, n: usize) -> Specification {
    series(join, (n / 4).max(1))
}

fn tree_of(join: ControlType, n: usize) -> Specification {
    // 3 × 2^d − 2 tasks: the largest depth that stays within about n.
    let depth = (1..20)
        .take_while(|d| 3 * (1usize << d) - 2 <= n * 5 / 4)
        .last();
    tree(join, depth.unwrap_or(1))
}

/// A block of one short branch and a loop of ten tasks run `n / 10` times: `l10` adds one
/// to the counter and goes back to `l1` while it is below the number of rounds.
fn looped(join: ControlType, n: usize) -> Specification {
    let rounds = (n / 10).max(1);
    let mut tasks = vec![task("split", Xor, split_of(join), &["short", "l1"])];
    tasks.push(task("short", Xor, Xor, &["join"]));
    chain(&mut tasks, "l", 9, "l10");
    let mut back = task("l10", Xor, Xor, &["l1", "join"]);
    back.output_mapping = Some(Expression::cel("{'n': n + 1}"));
    if let Some(again) = back.flows.first_mut() {
        again.predicate = Some(Expression::cel(format!("n < {rounds}")));
        again.ordering = Some(0);
    }
    if let Some(out) = back.flows.get_mut(1) {
        out.is_default = true;
    }
    tasks.push(back);
    tasks.push(task("join", join, Xor, &["end"]));
    let mut spec = specification("loop", "split", tasks);
    spec.initial_data.insert("n".into(), 0.into());
    spec
}

/// Runs one case to completion; returns its task completions.
#[inline(never)]
fn run_case(wf: &Workflow, ids: &mut SequentialIds) -> BenchResult<usize> {
    let (mut case, _) = Case::create(wf, CaseId(ids.next_id()), NOW, Map::new());
    let step = case.apply(wf, NOW, Input::Start, ids)?;
    if case.status() != CaseStatus::Completed {
        return Err(format!("the case ended {}", case.status()).into());
    }
    Ok(step
        .events
        .iter()
        .filter(|e| matches!(e.kind, EventKind::TaskCompleted { .. }))
        .count())
}

/// The median time of one case of `spec`, and its task completions.
fn measure(spec: Specification, budget: Duration) -> BenchResult<(Duration, usize)> {
    let wf = Workflow::new(spec)?;
    let mut ids = SequentialIds::default();
    let mut times = Vec::new();
    let mut tasks = 0;
    let all = Instant::now();
    while times.len() < 3 || all.elapsed() < budget {
        let started = Instant::now();
        tasks = black_box(run_case(&wf, &mut ids)?);
        times.push(started.elapsed());
        if budget.is_zero() {
            break;
        }
    }
    times.sort_unstable();
    Ok((
        times.get(times.len() / 2).copied().unwrap_or_default(),
        tasks,
    ))
}

/// `log(t2 / t1) / log(n2 / n1)`.
fn exponent((t1, n1): (Duration, usize), (t2, n2): (Duration, usize)) -> f64 {
    let ratio = |a: f64, b: f64| (a / b).ln();
    ratio(t2.as_secs_f64(), t1.as_secs_f64().max(1e-9)) / ratio(n2 as f64, (n1 as f64).max(1.0))
}

type Shape = fn(ControlType, usize) -> Specification;

fn main() -> BenchResult {
    let args: Vec<String> = std::env::args().collect();
    let has = |flag: &str| args.iter().any(|a| a == flag);
    if has("--list") {
        return Ok(());
    }
    let benchmarking = has("--bench") && !has("--test");
    let only = args.iter().skip(1).find(|a| !a.starts_with('-'));
    let sizes_env: Option<Vec<usize>> = std::env::var("KNHK_BENCH_SIZES")
        .ok()
        .map(|v| v.split(',').filter_map(|n| n.trim().parse().ok()).collect());
    let (sizes, budget): (Vec<usize>, Duration) = if benchmarking {
        let ms = std::env::var("KNHK_BENCH_BUDGET_MS")
            .ok()
            .and_then(|v| v.parse().ok())
            .unwrap_or(400);
        let sizes = sizes_env.unwrap_or_else(|| vec![100, 1_000, 10_000]);
        (sizes, Duration::from_millis(ms))
    } else {
        (vec![20, 40], Duration::ZERO)
    };
    let shapes: [(&str, Shape, bool); 8] = [
        ("sequence", sequence, false),
        ("width", width, true),
        ("fan", fan_100, true),
        ("skewed_against", skewed_against, true),
        ("skewed_with", skewed_with, true),
        ("series", series_of, true),
        ("tree", tree_of, true),
        ("loop", looped, true),
    ];
    println!(
        "knhk-core scale benchmark: one case of empty tasks per net, time per case (median), \
         growth exponent between sizes"
    );
    for (name, shape, has_or) in shapes {
        let joins: &[ControlType] = if has_or { &[Or, And] } else { &[Xor] };
        let mut largest = Vec::new();
        for &join in joins {
            let label = match join {
                Or => format!("{name} OR"),
                And => format!("{name} AND"),
                Xor => name.to_owned(),
            };
            if only.is_some_and(|o| !label.contains(o.as_str())) {
                continue;
            }
            let mut points = Vec::new();
            for &n in &sizes {
                points.push(measure(shape(join, n), budget)?);
            }
            let cells: Vec<String> = points
                .iter()
                .map(|(t, tasks)| {
                    let per = t.as_secs_f64() * 1e9 / (*tasks).max(1) as f64;
                    format!("{tasks:>6} tasks {t:>10.2?} ({per:>6.0} ns/task)")
                })
                .collect();
            let exponents: Vec<String> = points
                .windows(2)
                .map(|w| match w {
                    [a, b] => format!("{:.2}", exponent(*a, *b)),
                    _ => String::new(),
                })
                .collect();
            println!(
                "  {label:<20} {}  exponents {}",
                cells.join("  "),
                exponents.join(" ")
            );
            if let Some(last) = points.last() {
                largest.push(last.0);
            }
        }
        if let [or, and] = largest.as_slice() {
            println!(
                "  {:<20} OR/AND at the largest size: {:.2}",
                "",
                or.as_secs_f64() / and.as_secs_f64().max(1e-9)
            );
        }
    }
    Ok(())
}
