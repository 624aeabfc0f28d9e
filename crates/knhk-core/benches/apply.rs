//! Benchmarks `Case::apply` alone, in memory, on nets built as data.
//!
//! - W1: a sequence of 10 empty tasks; W2: an AND-split into 10 branches of one empty task each
//!   and an AND-join. Each case is created and started, and runs to completion in that one
//!   `apply`. Criterion reports cases/s and task completions/s; a plain loop then prints the
//!   median throughput of several runs and the p50/p90/p99/p99.9 latency of one case.
//! - W3: the heap held by a case waiting at a human task (one offered work item), counted by a
//!   global allocator that tracks allocated-minus-freed bytes.
//!
//! `cargo bench -p knhk-core --bench apply` prints everything in about a minute and a half;
//! `KNHK_BENCH_QUICK=1` shortens every part for a noisy machine or a quick look. Under
//! `cargo test` every part runs once on a handful of cases, as a smoke test.

use std::alloc::System;
use std::error::Error;
use std::hint::black_box;
use std::time::{Duration, Instant};

use cap::Cap;
use criterion::{Criterion, Throughput};
use knhk_core::model::{
    Allocation, Condition, ControlType, Flow, HumanBinding, Net, Task, TaskBinding,
};
use knhk_core::{
    Case, CaseId, CaseStatus, EventKind, IdSource, Input, NetId, SequentialIds, Specification,
    Timestamp, Workflow,
};
use serde_json::Map;

/// Counts the bytes held on the heap (allocated minus freed), for W3.
#[global_allocator]
static HEAP: Cap<System> = Cap::new(System, usize::MAX);

type BenchResult<T = ()> = Result<T, Box<dyn Error>>;

/// A fixed time: knhk-core reads no clock, and the benchmark does not need one either.
const NOW: Timestamp = Timestamp(1_700_000_000_000);

/// How long and how big each part of the benchmark is.
#[derive(Debug, Clone, Copy)]
struct Sizes {
    name: &'static str,
    sample_size: usize,
    warm_up: Duration,
    measurement: Duration,
    /// Runs of the plain throughput loop; the median is reported.
    runs: usize,
    /// Cases per run of the plain throughput loop.
    cases_per_run: usize,
    /// Cases timed one by one for the latency percentiles.
    latency_cases: usize,
    /// Cases kept waiting at a human task for W3.
    waiting_cases: usize,
}

impl Sizes {
    /// Returns the sizes for this run, or `None` when a test runner only asks for the list of
    /// benchmarks (then only Criterion may print).
    fn from_env_and_args() -> Option<Sizes> {
        let args: Vec<String> = std::env::args().collect();
        let has = |flag: &str| args.iter().any(|a| a == flag);
        if has("--list") {
            return None;
        }
        let benchmarking = has("--bench") && !has("--test");
        let quick = std::env::var("KNHK_BENCH_QUICK").is_ok_and(|v| !v.is_empty() && v != "0");
        Some(if !benchmarking {
            Sizes {
                name: "test (each part runs on a few cases)",
                sample_size: 10,
                warm_up: Duration::from_millis(1),
                measurement: Duration::from_millis(1),
                runs: 1,
                cases_per_run: 50,
                latency_cases: 50,
                waiting_cases: 50,
            }
        } else if quick {
            Sizes {
                name: "quick (KNHK_BENCH_QUICK)",
                sample_size: 10,
                warm_up: Duration::from_millis(300),
                measurement: Duration::from_secs(1),
                runs: 3,
                cases_per_run: 5_000,
                latency_cases: 20_000,
                waiting_cases: 20_000,
            }
        } else {
            Sizes {
                name: "full",
                sample_size: 100,
                warm_up: Duration::from_secs(2),
                measurement: Duration::from_secs(8),
                runs: 11,
                cases_per_run: 50_000,
                latency_cases: 100_000,
                waiting_cases: 100_000,
            }
        })
    }
}

fn flow(to: &str) -> Flow {
    Flow {
        to: to.into(),
        predicate: None,
        ordering: None,
        is_default: false,
        on_failure: false,
    }
}

fn condition(id: &str, flows: Vec<Flow>) -> Condition {
    Condition {
        id: id.into(),
        name: None,
        flows,
    }
}

fn task(id: &str, join: ControlType, split: ControlType, to: &[&str]) -> Task {
    let mut task = Task::empty(id);
    task.join = join;
    task.split = split;
    task.flows = to.iter().map(|t| flow(t)).collect();
    task
}

fn specification(id: &str, first: &str, tasks: Vec<Task>) -> Specification {
    Specification {
        id: id.to_owned(),
        name: None,
        version: None,
        documentation: None,
        root_net: NetId::new("net"),
        nets: vec![Net {
            id: NetId::new("net"),
            name: None,
            input_condition: condition("start", vec![flow(first)]),
            output_condition: condition("end", Vec::new()),
            conditions: Vec::new(),
            tasks,
        }],
        initial_data: Default::default(),
    }
}

/// W1: start -> t1 -> t2 -> ... -> t10 -> end, all empty tasks.
fn w1_sequence() -> Specification {
    let ids: Vec<String> = (1..=10).map(|i| format!("t{i}")).collect();
    let tasks = ids
        .iter()
        .enumerate()
        .map(|(i, id)| {
            let next = ids.get(i + 1).map_or("end", String::as_str);
            task(id, ControlType::Xor, ControlType::Xor, &[next])
        })
        .collect();
    specification("w1-sequence-10", "t1", tasks)
}

/// W2: start -> split (AND) -> b1..b10 -> join (AND) -> end, all empty tasks.
fn w2_parallel() -> Specification {
    let branches: Vec<String> = (1..=10).map(|i| format!("b{i}")).collect();
    let names: Vec<&str> = branches.iter().map(String::as_str).collect();
    let mut tasks = vec![task("split", ControlType::Xor, ControlType::And, &names)];
    for b in &names {
        tasks.push(task(b, ControlType::Xor, ControlType::Xor, &["join"]));
    }
    tasks.push(task("join", ControlType::And, ControlType::Xor, &["end"]));
    specification("w2-and-split-10", "split", tasks)
}

/// W3: start -> review (a human task for role "clerk") -> end.
fn w3_human() -> Specification {
    let mut review = task("review", ControlType::Xor, ControlType::Xor, &["end"]);
    review.binding = TaskBinding::Human(HumanBinding {
        roles: vec!["clerk".to_owned()],
        allocation: Allocation::RoleOffer,
        four_eyes: false,
        distributed_at_runtime: false,
    });
    specification("w3-human-task", "review", vec![review])
}

/// Creates and starts one case; this is what every throughput and latency figure times.
fn run_case(wf: &Workflow, ids: &mut SequentialIds) -> Result<Case, knhk_core::Error> {
    let (mut case, _created) = Case::create(wf, CaseId(ids.next_id()), NOW, Map::new());
    case.apply(wf, NOW, Input::Start, ids)?;
    Ok(case)
}

/// Checks, outside any timing, that a case of `wf` completes with `tasks` task completions.
fn check_completes(wf: &Workflow, tasks: u64) -> BenchResult {
    let mut ids = SequentialIds::default();
    let (mut case, _) = Case::create(wf, CaseId(ids.next_id()), NOW, Map::new());
    let step = case.apply(wf, NOW, Input::Start, &mut ids)?;
    let completed = step
        .events
        .iter()
        .filter(|e| matches!(e.kind, EventKind::TaskCompleted { .. }))
        .count() as u64;
    if case.status() != CaseStatus::Completed || completed != tasks {
        return Err(format!(
            "{}: expected a completed case with {tasks} task completions, got a {} case with {completed}",
            wf.id(),
            case.status()
        )
        .into());
    }
    Ok(())
}

struct Bench {
    label: &'static str,
    workflow: Workflow,
    tasks: u64,
}

fn criterion_part(c: &mut Criterion, benches: &[Bench]) {
    for b in benches {
        let mut group = c.benchmark_group(b.label);
        for (unit, per_case) in [("cases", 1), ("task_completions", b.tasks)] {
            group.throughput(Throughput::Elements(per_case));
            let mut ids = SequentialIds::default();
            group.bench_function(unit, |bencher| {
                bencher.iter(|| black_box(run_case(&b.workflow, &mut ids).map(|c| c.status())))
            });
        }
        group.finish();
    }
}

/// Returns the value at quantile `q` (0..=1) of sorted `xs`.
fn quantile(xs: &[Duration], q: f64) -> Duration {
    if xs.is_empty() {
        return Duration::ZERO;
    }
    let i = ((xs.len() - 1) as f64 * q).round() as usize;
    xs[i.min(xs.len() - 1)]
}

fn median(mut xs: Vec<f64>) -> f64 {
    xs.sort_by(f64::total_cmp);
    xs.get(xs.len() / 2).copied().unwrap_or(0.0)
}

fn plain_part(sizes: &Sizes, benches: &[Bench]) -> BenchResult {
    println!();
    println!(
        "apply throughput, plain loop: median of {} runs of {} cases",
        sizes.runs, sizes.cases_per_run
    );
    for b in benches {
        let mut ids = SequentialIds::default();
        let mut rates = Vec::with_capacity(sizes.runs);
        for _ in 0..sizes.runs {
            let started = Instant::now();
            for _ in 0..sizes.cases_per_run {
                black_box(run_case(&b.workflow, &mut ids)?.status());
            }
            rates.push(sizes.cases_per_run as f64 / started.elapsed().as_secs_f64());
        }
        let cases = median(rates);
        println!(
            "  {:<22} {:>12.0} cases/s  {:>13.0} task completions/s",
            b.label,
            cases,
            cases * b.tasks as f64
        );
    }

    println!();
    println!(
        "apply latency per case (create + start to completion), {} cases timed one by one",
        sizes.latency_cases
    );
    for b in benches {
        let mut ids = SequentialIds::default();
        let mut times = Vec::with_capacity(sizes.latency_cases);
        for _ in 0..sizes.latency_cases {
            let started = Instant::now();
            let status = run_case(&b.workflow, &mut ids)?.status();
            times.push(started.elapsed());
            black_box(status);
        }
        times.sort_unstable();
        println!(
            "  {:<22} p50 {:>9.2?}  p90 {:>9.2?}  p99 {:>9.2?}  p99.9 {:>9.2?}  max {:>9.2?}",
            b.label,
            quantile(&times, 0.50),
            quantile(&times, 0.90),
            quantile(&times, 0.99),
            quantile(&times, 0.999),
            quantile(&times, 1.0),
        );
    }
    Ok(())
}

/// W3: the heap that `n` cases hold while each waits at a human task with one offered work
/// item. The events and effects of each step are dropped, as a runtime does once it has
/// persisted and performed them; the `Vec` holding the cases is counted.
fn memory_part(sizes: &Sizes) -> BenchResult {
    let wf = Workflow::new(w3_human())?;
    let mut ids = SequentialIds::default();
    let n = sizes.waiting_cases;

    let before = HEAP.allocated();
    let mut cases = Vec::with_capacity(n);
    for _ in 0..n {
        cases.push(run_case(&wf, &mut ids)?);
    }
    let after = HEAP.allocated();

    let waiting = cases
        .iter()
        .filter(|c| c.status() == CaseStatus::Running && c.work_items().count() == 1)
        .count();
    if waiting != n {
        return Err(format!("W3: {waiting} of {n} cases wait with one work item").into());
    }
    let per_case = after.saturating_sub(before) as f64 / n as f64;
    println!();
    println!("memory per waiting case (W3: one human task, one offered work item, {n} cases)");
    println!(
        "  {:<22} {:>9.0} bytes/case  (of which {} bytes inline in the Vec; total {:.1} MiB)",
        "w3_waiting_human",
        per_case,
        std::mem::size_of::<Case>(),
        after.saturating_sub(before) as f64 / (1024.0 * 1024.0)
    );
    drop(black_box(cases));
    Ok(())
}

fn main() -> BenchResult {
    let sizes = Sizes::from_env_and_args();
    let benches = [
        Bench {
            label: "w1_sequence_10",
            workflow: Workflow::new(w1_sequence())?,
            tasks: 10,
        },
        Bench {
            label: "w2_and_split_10",
            workflow: Workflow::new(w2_parallel())?,
            tasks: 12,
        },
    ];
    for b in &benches {
        check_completes(&b.workflow, b.tasks)?;
    }
    let Some(sizes) = sizes else {
        let mut c = Criterion::default().configure_from_args();
        criterion_part(&mut c, &benches);
        return Ok(());
    };
    println!("knhk-core apply benchmark, mode: {}", sizes.name);

    let mut c = Criterion::default()
        .sample_size(sizes.sample_size)
        .warm_up_time(sizes.warm_up)
        .measurement_time(sizes.measurement)
        .configure_from_args();
    criterion_part(&mut c, &benches);
    c.final_summary();

    plain_part(&sizes, &benches)?;
    memory_part(&sizes)?;
    Ok(())
}
