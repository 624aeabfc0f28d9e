//! The exact OR-join rule: the examples where YAWL fires and the over-approximation waits,
//! the cases where both wait, and two differential tests on random nets with explicit
//! conditions, loops and cancellation sets: against a plain forward exploration of the reset
//! net (the definition, kept here), and against the over-approximating rule.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use std::collections::{HashSet, VecDeque};

use proptest::collection::vec;
use proptest::prelude::*;

use super::*;
use crate::ids::{ElementId, NetId};
use crate::index::NetIx;
use crate::model::{Condition, Expression, Flow, Net, Specification, Task};
use crate::workflow::Workflow;

fn flow(to: &str) -> Flow {
    Flow {
        to: to.into(),
        predicate: None,
        ordering: None,
        is_default: false,
        on_failure: false,
    }
}

fn when(to: &str) -> Flow {
    Flow {
        predicate: Some(Expression::cel("true")),
        ..flow(to)
    }
}

fn default_flow(to: &str) -> Flow {
    Flow {
        is_default: true,
        ..flow(to)
    }
}

fn task(id: &str, join: ControlType, split: ControlType, flows: Vec<Flow>) -> Task {
    Task {
        join,
        split,
        flows,
        ..Task::empty(id)
    }
}

fn cond(id: &str, to: &[&str]) -> Condition {
    Condition {
        id: id.into(),
        name: None,
        flows: to.iter().map(|t| flow(t)).collect(),
    }
}

fn workflow(first: &str, conditions: Vec<Condition>, tasks: Vec<Task>) -> Workflow {
    let spec = Specification {
        id: "exact".to_owned(),
        name: None,
        version: None,
        documentation: None,
        root_net: NetId::new("net"),
        nets: vec![Net {
            id: NetId::new("net"),
            name: None,
            input_condition: cond("start", &[first]),
            output_condition: cond("end", &[]),
            conditions,
            tasks,
        }],
        initial_data: Default::default(),
    };
    Workflow::new(spec).unwrap()
}

/// The decision of OR-join `t` by the over-approximation alone and by the exact rule, with
/// a token on each of `marked` (two on a name given twice) and `running` busy.
fn decisions(wf: &Workflow, t: &str, marked: &[&str], running: &[&str]) -> (bool, bool) {
    let def = wf.nets.get(NetIx::new(0)).unwrap();
    let mut marking: IxVec<PlaceIx, u32> = IxVec::filled(0, def.places.len());
    for name in marked {
        let p = def.place(&ElementId::from(*name)).unwrap();
        *marking.get_mut(p).unwrap() += 1;
    }
    let busy: Vec<TaskIx> = running
        .iter()
        .map(|name| def.task(&ElementId::from(*name)).unwrap())
        .collect();
    let places: Vec<PlaceIx> = marking
        .iter_enumerated()
        .filter(|&(_, &n)| n > 0)
        .map(|(p, _)| p)
        .collect();
    let ti = def.task(&ElementId::from(t)).unwrap();
    let o = def.or_cones.of_task.get(ti).copied().flatten().unwrap();
    let cone = def.or_cones.cones.get(o).unwrap();
    let is_busy = |u: TaskIx| busy.contains(&u);
    let mut scratch = Scratch::default();
    let seeds = (places.as_slice(), busy.as_slice());
    let (old, _) = decide(def, cone, None, &marking, is_busy, seeds, &mut scratch);
    let exact = Some(&def.or_exact);
    let (new, _) = decide(def, cone, exact, &marking, is_busy, seeds, &mut scratch);
    (old, new)
}

use ControlType::{And, Or, Xor};

/// a -> p1; p1 feeds the OR-join t and u; u -> p2 -> t.
fn consumes_the_marked_input() -> Workflow {
    workflow(
        "a",
        vec![cond("p1", &["t", "u"]), cond("p2", &["t"])],
        vec![
            task("a", Xor, And, vec![flow("p1")]),
            task("u", Xor, And, vec![flow("p2")]),
            task("t", Or, And, vec![flow("end")]),
        ],
    )
}

#[test]
fn the_or_join_fires_where_the_only_way_consumes_its_marked_input() {
    let wf = consumes_the_marked_input();
    assert_eq!(decisions(&wf, "t", &["p1"], &[]), (false, true));
    assert_eq!(wf.or_join_stats().exact_checks, 1);
    assert_eq!(wf.or_join_stats().over_budget, 0);
}

#[test]
fn the_or_join_waits_when_a_second_token_can_take_that_way() {
    let wf = consumes_the_marked_input();
    // u takes one of two tokens: p1 stays marked while p2 gets one.
    assert_eq!(decisions(&wf, "t", &["p1", "p1"], &[]), (false, false));
    // u already runs: p2 gets a token while p1 keeps its own.
    assert_eq!(decisions(&wf, "t", &["p1"], &["u"]), (false, false));
}

/// a (XOR split) -> c1 or c2; c1, c2 -> b (AND join) -> p2 -> t; p1 -> t.
fn exclusive_branches_and_joined() -> Workflow {
    workflow(
        "s",
        vec![cond("p1", &["t"]), cond("p2", &["t"])],
        vec![
            task("s", Xor, And, vec![flow("a"), flow("p1")]),
            task("a", Xor, Xor, vec![when("c1"), default_flow("c2")]),
            task("c1", Xor, And, vec![flow("b")]),
            task("c2", Xor, And, vec![flow("b")]),
            task("b", And, And, vec![flow("p2")]),
            task("t", Or, And, vec![flow("end")]),
        ],
    )
}

#[test]
fn the_or_join_fires_where_the_only_way_joins_both_sides_of_an_xor_split() {
    let wf = exclusive_branches_and_joined();
    assert_eq!(decisions(&wf, "t", &["p1"], &["a"]), (false, true));
    // Both sides hold a token already: b can fire, t waits.
    assert_eq!(decisions(&wf, "t", &["p1"], &["c1", "c2"]), (false, false));
}

/// q feeds both u1 and u2 (a deferred choice); u1 -> x1, u2 -> x2; x1, x2 -> b (AND join)
/// -> p2 -> t; p1 -> t.
fn one_token_for_both_sides_of_a_choice() -> Workflow {
    workflow(
        "s",
        vec![
            cond("q", &["u1", "u2"]),
            cond("x1", &["b"]),
            cond("x2", &["b"]),
            cond("p1", &["t"]),
            cond("p2", &["t"]),
        ],
        vec![
            task("s", Xor, And, vec![flow("q"), flow("p1")]),
            task("u1", Xor, And, vec![flow("x1")]),
            task("u2", Xor, And, vec![flow("x2")]),
            task("b", And, And, vec![flow("p2")]),
            task("t", Or, And, vec![flow("end")]),
        ],
    )
}

#[test]
fn the_or_join_fires_where_the_only_way_needs_one_token_on_both_sides_of_a_choice() {
    let wf = one_token_for_both_sides_of_a_choice();
    assert_eq!(decisions(&wf, "t", &["p1", "q"], &[]), (false, true));
    // Two tokens in the choice: one for each side.
    assert_eq!(decisions(&wf, "t", &["p1", "q", "q"], &[]), (false, false));
}

/// q -> u -> p2 -> t, u's cancellation set holds `cancels`; p1 -> t; z is unrelated.
fn cancelling(cancels: &str) -> Workflow {
    let mut u = task("u", Xor, And, vec![flow("p2")]);
    u.cancellation_set = vec![cancels.into()];
    workflow(
        "s",
        vec![
            cond("q", &["u"]),
            cond("z", &["y"]),
            cond("p1", &["t"]),
            cond("p2", &["t"]),
        ],
        vec![
            task("s", Xor, And, vec![flow("q"), flow("p1"), flow("z")]),
            u,
            task("y", Xor, And, vec![flow("end")]),
            task("t", Or, And, vec![flow("end")]),
        ],
    )
}

#[test]
fn the_or_join_fires_where_the_only_way_empties_its_marked_input_by_cancellation() {
    let wf = cancelling("p1");
    assert_eq!(decisions(&wf, "t", &["p1", "q"], &[]), (false, true));
    assert_eq!(decisions(&wf, "t", &["p1"], &["u"]), (false, true));
}

#[test]
fn the_or_join_waits_for_a_way_that_empties_an_unrelated_condition() {
    let wf = cancelling("z");
    assert_eq!(decisions(&wf, "t", &["p1", "q", "z"], &[]), (false, false));
    assert_eq!(decisions(&wf, "t", &["p1"], &["u"]), (false, false));
}

/// q -> u -> v; v (XOR split) -> u again or p2 -> t; p1 -> t.
fn looping() -> Workflow {
    workflow(
        "s",
        vec![
            cond("q", &["u"]),
            cond("back", &["u"]),
            cond("p1", &["t"]),
            cond("p2", &["t"]),
        ],
        vec![
            task("s", Xor, And, vec![flow("q"), flow("p1")]),
            task("u", Xor, And, vec![flow("v")]),
            task("v", Xor, Xor, vec![when("back"), default_flow("p2")]),
            task("t", Or, And, vec![flow("end")]),
        ],
    )
}

#[test]
fn the_or_join_waits_for_a_token_in_a_loop() {
    let wf = looping();
    assert_eq!(decisions(&wf, "t", &["p1", "back"], &[]), (false, false));
    assert_eq!(decisions(&wf, "t", &["p1"], &["v"]), (false, false));
    // Nothing in the loop: nothing to wait for.
    assert_eq!(decisions(&wf, "t", &["p1"], &[]), (true, true));
    assert_eq!(wf.or_join_stats().over_budget, 0);
}

// --- the definition, plainly: forward exploration of the reset net ---

/// A marking of the reset net: tokens by place, then by task (running instances).
type State = Vec<u32>;

/// The markings one transition of the reset net (without `t`'s) leads to from `m`.
fn successors(def: &NetDef, t: TaskIx, m: &State) -> Vec<State> {
    let n = def.places.len();
    let mut out = Vec::new();
    for (u, d) in def.tasks.iter_enumerated() {
        if u == t {
            continue;
        }
        let bu = n + u.raw() as usize;
        let ins: Vec<usize> = d.inputs.iter().map(|p| p.raw() as usize).collect();
        let mut starts: Vec<Vec<usize>> = Vec::new();
        match d.join {
            ControlType::And => starts.push(ins),
            _ => starts.extend(ins.into_iter().map(|p| vec![p])),
        }
        for pre in starts {
            if pre.iter().all(|&p| m[p] > 0) {
                let mut s = m.clone();
                for &p in &pre {
                    s[p] -= 1;
                }
                s[bu] += 1;
                out.push(s);
            }
        }
        if m[bu] == 0 {
            continue;
        }
        let outs: Vec<usize> = d
            .outputs
            .iter()
            .filter(|a| !a.on_failure)
            .map(|a| a.place.raw() as usize)
            .collect();
        let mut posts: Vec<Vec<usize>> = Vec::new();
        match d.split {
            ControlType::And => posts.push(outs),
            ControlType::Xor => posts.extend(outs.into_iter().map(|p| vec![p])),
            ControlType::Or => {
                for bits in 1u32..(1 << outs.len()) {
                    posts.push(
                        outs.iter()
                            .enumerate()
                            .filter(|&(i, _)| bits & (1 << i) != 0)
                            .map(|(_, &p)| p)
                            .collect(),
                    );
                }
            }
        }
        if posts.is_empty() {
            posts.push(Vec::new());
        }
        for post in posts {
            let mut s = m.clone();
            s[bu] -= 1;
            for p in &d.cancel_places {
                s[p.raw() as usize] = 0;
            }
            for &c in &d.cancel_tasks {
                if c != u {
                    s[n + c.raw() as usize] = 0;
                }
            }
            for p in post {
                s[p] += 1;
            }
            out.push(s);
        }
    }
    out
}

/// Whether OR-join `t` may fire by the definition: `Some` if the exploration ended within
/// its bounds (at most `STATES` markings, `TOKENS` tokens on a node), `None` else.
fn may_fire_by_definition(
    def: &NetDef,
    t: TaskIx,
    marking: &IxVec<PlaceIx, u32>,
    busy: &[TaskIx],
) -> Option<bool> {
    const STATES: usize = 4_000;
    const TOKENS: u32 = 4;
    let task = def.tasks.get(t)?;
    let marked = |p: &PlaceIx| marking.get(*p).is_some_and(|&n| n > 0);
    if !task.inputs.iter().any(marked) {
        return Some(false);
    }
    let kept: Vec<usize> = task
        .inputs
        .iter()
        .filter(|p| marked(p))
        .map(|p| p.raw() as usize)
        .collect();
    let missing: Vec<usize> = task
        .inputs
        .iter()
        .filter(|p| !marked(p))
        .map(|p| p.raw() as usize)
        .collect();
    let n = def.places.len();
    let mut start: State = marking.iter().copied().collect();
    start.resize(n + def.tasks.len(), 0);
    for u in busy {
        start[n + u.raw() as usize] = 1;
    }
    let covers = |s: &State| kept.iter().all(|&q| s[q] > 0) && missing.iter().any(|&p| s[p] > 0);
    let mut seen: HashSet<State> = HashSet::new();
    let mut todo = VecDeque::new();
    seen.insert(start.clone());
    todo.push_back(start);
    while let Some(s) = todo.pop_front() {
        if covers(&s) {
            return Some(false);
        }
        for next in successors(def, t, &s) {
            if next.iter().any(|&k| k > TOKENS) || seen.len() > STATES {
                return None;
            }
            if seen.insert(next.clone()) {
                todo.push_back(next);
            }
        }
    }
    Some(true)
}

const CONTROL: [ControlType; 3] = [And, Xor, Or];

/// A random net: tasks t0..tn in a chain through conditions c0..c(n-1), with `extra` arcs
/// from tasks to conditions and conditions to tasks (loops and choices), and cancellation
/// sets naming conditions and tasks.
fn random_net(
    joins: &[usize],
    splits: &[usize],
    extra: &[(bool, usize, usize)],
    cancels: &[(usize, bool, usize)],
) -> Option<Workflow> {
    let n = joins.len();
    let t = |i: usize| format!("t{}", i % n);
    let c = |i: usize| format!("c{}", i % n.saturating_sub(1).max(1));
    let mut outs: Vec<Vec<String>> = (0..n)
        .map(|i| vec![if i + 1 == n { "end".to_owned() } else { c(i) }])
        .collect();
    let mut conds: Vec<Vec<String>> = (0..n.saturating_sub(1)).map(|i| vec![t(i + 1)]).collect();
    for &(to_cond, a, b) in extra {
        if to_cond {
            let o = outs.get_mut(a % n)?;
            if !o.contains(&c(b)) && n > 1 {
                o.push(c(b));
            }
        } else if let Some(cs) = conds.get_mut(a % n.saturating_sub(1).max(1))
            && !cs.contains(&t(b))
        {
            cs.push(t(b));
        }
    }
    let mut tasks = Vec::new();
    for i in 0..n {
        let split = CONTROL[splits.get(i).copied().unwrap_or(0) % 3];
        let o = outs.get(i)?;
        let flows = o
            .iter()
            .enumerate()
            .map(|(k, to)| match split {
                And => flow(to),
                _ if k + 1 == o.len() => default_flow(to),
                _ => when(to),
            })
            .collect();
        // OR-joins are the point: half the tasks are.
        let join = CONTROL.get(joins[i] % 4).copied().unwrap_or(Or);
        let mut task = task(&t(i), join, split, flows);
        for &(from, to_task, what) in cancels {
            if from % n == i {
                let name = if to_task { t(what) } else { c(what) };
                if !task.cancellation_set.iter().any(|x| x.as_str() == name) {
                    task.cancellation_set.push(name.as_str().into());
                }
            }
        }
        tasks.push(task);
    }
    let conditions = conds
        .iter()
        .enumerate()
        .map(|(i, to)| Condition {
            id: c(i).as_str().into(),
            name: None,
            flows: to.iter().map(|x| flow(x)).collect(),
        })
        .collect();
    let spec = Specification {
        id: "random".to_owned(),
        name: None,
        version: None,
        documentation: None,
        root_net: NetId::new("net"),
        nets: vec![Net {
            id: NetId::new("net"),
            name: None,
            input_condition: cond("start", &["t0"]),
            output_condition: cond("end", &[]),
            conditions,
            tasks,
        }],
        initial_data: Default::default(),
    };
    Workflow::new(spec).ok()
}

proptest! {
    // Failures print their minimal input; no regression file is written into the tree.
    #![proptest_config(ProptestConfig {
        cases: 768,
        failure_persistence: None,
        ..ProptestConfig::default()
    })]

    #[test]
    fn the_exact_rule_decides_as_the_definition(
        joins in vec(0usize..6, 3..7),
        splits in vec(0usize..3, 7),
        extra in vec((any::<bool>(), 0usize..7, 0usize..7), 0..10),
        cancels in vec((0usize..7, any::<bool>(), 0usize..7), 0..3),
        markings in vec((vec(0u32..3, 16), vec(prop::bool::weighted(0.25), 7)), 4),
        later_tokens in vec(0u32..3, 16),
        later_running in vec(prop::bool::weighted(0.25), 7),
        bump in 0usize..16,
    ) {
        let Some(wf) = random_net(&joins, &splits, &extra, &cancels) else {
            return Ok(());
        };
        let def = wf.nets.get(NetIx::new(0)).ok_or_else(|| TestCaseError::fail("no net"))?;
        let marking_of = |tokens: &[u32]| -> IxVec<PlaceIx, u32> {
            IxVec::from_vec(def.places.indices().map(|p| tokens.get(p.raw() as usize).copied().unwrap_or(0) % 3).collect())
        };
        let busy_of = |running: &[bool]| -> Vec<TaskIx> {
            def.tasks.indices().filter(|t| running.get(t.raw() as usize).copied().unwrap_or(false)).collect()
        };
        let (later_marking, later_busy) = (marking_of(&later_tokens), busy_of(&later_running));
        let mut scratch = Scratch::default();
        for ((tokens, running), cone) in markings.iter().flat_map(|m| def.or_cones.cones.iter().map(move |c| (m, c))) {
            let (marking, busy) = (marking_of(tokens), busy_of(running));
            let t = cone.task;
            let task = def.tasks.get(t).ok_or_else(|| TestCaseError::fail("no task"))?;
            // The OR-join itself is never busy when decided.
            let busy: Vec<TaskIx> = busy.iter().copied().filter(|&u| u != t).collect();
            let is_busy = |u: TaskIx| busy.contains(&u);
            let places: Vec<PlaceIx> = marking.iter_enumerated().filter(|&(_, &n)| n > 0).map(|(p, _)| p).collect();
            let seeds = (places.as_slice(), busy.as_slice());
            let over = def.or_exact.stats().over_budget;
            let (old, _) = decide(def, cone, None, &marking, is_busy, seeds, &mut scratch);
            let (new, witness) = decide(def, cone, Some(&def.or_exact), &marking, is_busy, seeds, &mut scratch);
            prop_assert_eq!(def.or_exact.stats().over_budget, over, "over budget on a small net");
            let net_text = || format!("{:?}", def.tasks.iter().map(|d| (&d.id, d.join, d.split, &d.inputs, d.outputs.iter().map(|a| a.place).collect::<Vec<_>>(), &d.cancel_places, &d.cancel_tasks)).collect::<Vec<_>>());
            // The second differential: where the over-approximation fires, so does the
            // exact rule (and where the exact rule waits, so does the over-approximation).
            prop_assert!(new || !old, "old fires, exact waits: OR-join {:?} on {}, marking {:?}, busy {:?}", t, net_text(), marking, busy);
            if let Some(reference) = may_fire_by_definition(def, t, &marking, &busy) {
                prop_assert_eq!(new, reference, "OR-join {:?} on {}, marking {:?}, busy {:?}", t, net_text(), marking, busy);
            }
            // A witness holds where it was found, and wherever it holds the OR-join waits.
            if let Some(mut w) = witness {
                prop_assert!(!new && w.holds(Some(&def.or_exact), task, t, &marking, is_busy), "witness {:?}", w);
                let later_busy: Vec<TaskIx> = later_busy.iter().copied().filter(|&u| u != t).collect();
                // Another marking, and this one with one token more (on an input of the
                // OR-join, say: it must then keep that one too).
                let mut bumped = marking.clone();
                if let Some(n) = bumped.get_mut(PlaceIx::new((bump % def.places.len()) as u32)) {
                    *n += 1;
                }
                for (m, b) in [(&later_marking, &later_busy), (&bumped, &busy)] {
                    let is_busy = |u: TaskIx| b.contains(&u);
                    let mut w = w.clone();
                    if w.holds(Some(&def.or_exact), task, t, m, is_busy) {
                        let reference = may_fire_by_definition(def, t, m, b);
                        prop_assert!(reference != Some(true), "witness {:?} held on {:?}, busy {:?}, on {}", w, m, b, net_text());
                    }
                }
            }
        }
    }
}

/// `consumes_the_marked_input` with a chain of `k` tasks between u and p2.
fn consumes_through_a_chain(k: usize) -> Workflow {
    let mut tasks = vec![
        task("a", Xor, And, vec![flow("p1")]),
        task("u", Xor, And, vec![flow("c1")]),
        task("t", Or, And, vec![flow("end")]),
    ];
    for i in 1..=k {
        let next = if i == k {
            "p2".to_owned()
        } else {
            format!("c{}", i + 1)
        };
        tasks.push(task(&format!("c{i}"), Xor, And, vec![flow(&next)]));
    }
    workflow(
        "a",
        vec![cond("p1", &["t", "u"]), cond("p2", &["t"])],
        tasks,
    )
}

#[test]
fn past_the_budget_the_or_join_waits_and_the_workflow_counts_it() {
    // Six basis elements per task of the chain: a token before it or it running, with p1
    // marked, a running, or a token before a.
    let wf = consumes_through_a_chain(OR_JOIN_BUDGET / 4);
    assert_eq!(decisions(&wf, "t", &["p1"], &[]), (false, false));
    assert_eq!(
        wf.or_join_stats(),
        OrJoinStats {
            exact_checks: 1,
            over_budget: 1
        }
    );
    // The same answer again, from the cached basis, counted again.
    assert_eq!(decisions(&wf, "t", &["p1"], &[]), (false, false));
    assert_eq!(
        wf.or_join_stats(),
        OrJoinStats {
            exact_checks: 2,
            over_budget: 2
        }
    );
    // Within the budget, the same shape fires.
    let wf = consumes_through_a_chain(OR_JOIN_BUDGET / 8);
    assert_eq!(decisions(&wf, "t", &["p1"], &[]), (false, true));
    assert_eq!(
        wf.or_join_stats(),
        OrJoinStats {
            exact_checks: 1,
            over_budget: 0
        }
    );
}

/// The exact decision of OR-join `t` at `marked` (a name twice: two tokens), with its
/// witness, and whether that witness still holds at `later`.
fn witness_then(wf: &Workflow, t: &str, marked: &[&str], later: &[&str]) -> (bool, bool, bool) {
    let def = wf.nets.get(NetIx::new(0)).unwrap();
    let marking_of = |names: &[&str]| {
        let mut m: IxVec<PlaceIx, u32> = IxVec::filled(0, def.places.len());
        for name in names {
            *m.get_mut(def.place(&ElementId::from(*name)).unwrap())
                .unwrap() += 1;
        }
        m
    };
    let (marking, later) = (marking_of(marked), marking_of(later));
    let places: Vec<PlaceIx> = marking
        .iter_enumerated()
        .filter(|&(_, &n)| n > 0)
        .map(|(p, _)| p)
        .collect();
    let ti = def.task(&ElementId::from(t)).unwrap();
    let o = def.or_cones.of_task.get(ti).copied().flatten().unwrap();
    let cone = def.or_cones.cones.get(o).unwrap();
    let exact = Some(&def.or_exact);
    let idle = |_: TaskIx| false;
    let seeds = (places.as_slice(), &[][..]);
    let mut scratch = Scratch::default();
    let (fires, witness) = decide(def, cone, exact, &marking, idle, seeds, &mut scratch);
    let mut w = witness.unwrap();
    let task = def.tasks.get(ti).unwrap();
    let holds = w.holds(exact, task, ti, &later, idle);
    let places: Vec<PlaceIx> = later
        .iter_enumerated()
        .filter(|&(_, &n)| n > 0)
        .map(|(p, _)| p)
        .collect();
    let seeds = (places.as_slice(), &[][..]);
    let (later_fires, _) = decide(def, cone, exact, &later, idle, seeds, &mut scratch);
    (fires, holds, later_fires)
}

/// p1 feeds the OR-join t and u; q feeds u too; u -> p2 -> t, emptying p3, t's third input.
fn emptying_a_third_input() -> Workflow {
    let mut u = task("u", Xor, And, vec![flow("p2")]);
    u.cancellation_set = vec!["p3".into()];
    workflow(
        "s",
        vec![
            cond("q", &["u"]),
            cond("p1", &["t", "u"]),
            cond("p2", &["t"]),
            cond("p3", &["t"]),
        ],
        vec![
            task("s", Xor, And, vec![flow("q"), flow("p1"), flow("p3")]),
            u,
            task("t", Or, And, vec![flow("end")]),
        ],
    )
}

#[test]
fn a_witness_does_not_outlive_a_newly_marked_input_its_way_empties() {
    let wf = emptying_a_third_input();
    // A path (q, u, p2) keeps p1: t waits. Once p3 is marked, the path empties it: the
    // witness no longer holds and t fires.
    assert_eq!(
        witness_then(&wf, "t", &["p1", "q"], &["p1", "q", "p3"]),
        (false, false, true)
    );
    // Two tokens on p1: u may take one (coverability shows it). Once p3 is marked, u empties
    // it: the witness no longer holds and t fires.
    assert_eq!(
        witness_then(&wf, "t", &["p1", "p1"], &["p1", "p1", "p3"]),
        (false, false, true)
    );
    // While p3 stays unmarked, both witnesses hold as the tokens stay.
    assert_eq!(
        witness_then(&wf, "t", &["p1", "q"], &["p1", "q"]),
        (false, true, false)
    );
    assert_eq!(
        witness_then(&wf, "t", &["p1", "p1"], &["p1", "p1"]),
        (false, true, false)
    );
}

#[test]
fn a_workflow_with_its_kept_bases_is_shared_between_threads() {
    fn shared<T: Send + Sync>(_: &T) {}
    let wf = consumes_the_marked_input();
    shared(&wf);
    // Decided from two threads at once: the same answer, one basis.
    std::thread::scope(|s| {
        let a = s.spawn(|| decisions(&wf, "t", &["p1"], &[]));
        let b = s.spawn(|| decisions(&wf, "t", &["p1"], &[]));
        assert_eq!(a.join().unwrap(), (false, true));
        assert_eq!(b.join().unwrap(), (false, true));
    });
    assert_eq!(wf.or_join_stats().exact_checks, 2);
    let def = wf.nets.get(NetIx::new(0)).unwrap();
    assert_eq!(def.or_exact.known_bases(), 1);
}
