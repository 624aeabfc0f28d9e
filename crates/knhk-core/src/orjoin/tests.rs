//! The worklist decision checked against the rule as first written (every task swept in file
//! order until nothing changes) on random nets, markings and running tasks, loops and
//! AND-joins included.

use proptest::collection::vec;
use proptest::prelude::*;

use super::*;
use crate::index::{Idx, NetIx};
use crate::model::{Condition, Flow, Net, Specification, Task};
use crate::workflow::Workflow;

/// The rule as first written: whether OR-join task `t` may fire, every task swept in file
/// order until nothing changes.
fn may_fire_by_sweeps(
    net: &NetDef,
    marking: &IxVec<PlaceIx, u32>,
    busy: &IxVec<TaskIx, bool>,
    t: TaskIx,
) -> bool {
    let Some(task) = net.tasks.get(t) else {
        return false;
    };
    let marked = |p: PlaceIx| marking.get(p).is_some_and(|&n| n > 0);
    if !task.inputs.iter().any(|&p| marked(p)) {
        return false;
    }
    let mut reachable: IxVec<PlaceIx, bool> =
        IxVec::from_vec(marking.iter().map(|&n| n > 0).collect());
    let reach = |reachable: &mut IxVec<PlaceIx, bool>, outputs: &[crate::workflow::OutArc]| {
        for arc in outputs {
            if let Some(r) = reachable.get_mut(arc.place) {
                *r = true;
            }
        }
    };
    let mut fired = vec![false; net.tasks.len()];
    for ((u, def), fired) in net.tasks.iter_enumerated().zip(fired.iter_mut()) {
        if u != t && busy.get(u).copied().unwrap_or(false) {
            *fired = true;
            reach(&mut reachable, &def.outputs);
        }
    }
    let may_be_marked =
        |reachable: &IxVec<PlaceIx, bool>, p: PlaceIx| reachable.get(p).copied().unwrap_or(false);
    loop {
        if task
            .inputs
            .iter()
            .any(|&p| !marked(p) && may_be_marked(&reachable, p))
        {
            return false;
        }
        let mut changed = false;
        for ((u, def), fired) in net.tasks.iter_enumerated().zip(fired.iter_mut()) {
            if *fired || u == t {
                continue;
            }
            let can = match def.join {
                ControlType::And => def.inputs.iter().all(|&p| may_be_marked(&reachable, p)),
                ControlType::Xor | ControlType::Or => {
                    def.inputs.iter().any(|&p| may_be_marked(&reachable, p))
                }
            };
            if can {
                *fired = true;
                changed = true;
                reach(&mut reachable, &def.outputs);
            }
        }
        if !changed {
            return true;
        }
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

const JOINS: [ControlType; 3] = [ControlType::And, ControlType::Xor, ControlType::Or];

/// A net of `joins.len()` tasks in a chain from the input to the output condition (so every
/// task is reachable and can end), with `extra` flows `(from, to)` added, back ones included.
fn net(joins: &[usize], extra: &[(usize, usize)]) -> Option<Workflow> {
    let n = joins.len();
    let name = |i: usize| format!("t{i}");
    let tasks = (0..n)
        .map(|i| {
            let mut task = Task::empty(name(i).as_str());
            task.join = *JOINS.get(joins.get(i).copied().unwrap_or(0) % 3)?;
            task.split = ControlType::And;
            let mut to = vec![if i + 1 == n {
                "end".to_owned()
            } else {
                name(i + 1)
            }];
            for &(from, target) in extra {
                if from % n == i && !to.contains(&name(target % n)) {
                    to.push(name(target % n));
                }
            }
            task.flows = to.iter().map(|t| flow(t)).collect();
            Some(task)
        })
        .collect::<Option<Vec<_>>>()?;
    let condition = |id: &str, flows| Condition {
        id: id.into(),
        name: None,
        flows,
    };
    let spec = Specification {
        id: "random".to_owned(),
        name: None,
        version: None,
        documentation: None,
        root_net: crate::ids::NetId::new("net"),
        nets: vec![Net {
            id: crate::ids::NetId::new("net"),
            name: None,
            input_condition: condition("start", vec![flow("t0")]),
            output_condition: condition("end", Vec::new()),
            conditions: Vec::new(),
            tasks,
        }],
        initial_data: Default::default(),
    };
    Workflow::new(spec).ok()
}

proptest! {
    // Failures print their minimal input; no regression file is written into the tree.
    #![proptest_config(ProptestConfig {
        cases: 512,
        failure_persistence: None,
        ..ProptestConfig::default()
    })]

    #[test]
    fn the_worklist_decides_as_the_sweeps(
        joins in vec(0usize..3, 2..9),
        extra in vec((0usize..9, 0usize..9), 0..8),
        tokens in vec(0u32..3, 24),
        running in vec(prop::bool::weighted(0.2), 9),
        later_tokens in vec(0u32..3, 24),
        later_running in vec(prop::bool::weighted(0.2), 9),
    ) {
        let Some(wf) = net(&joins, &extra) else {
            return Ok(());
        };
        let def = wf.nets.get(NetIx::new(0)).ok_or_else(|| TestCaseError::fail("no net"))?;
        let marking_of = |tokens: &[u32]| -> IxVec<PlaceIx, u32> {
            IxVec::from_vec(def.places.indices().map(|p| tokens.get(p.raw() as usize).copied().unwrap_or(0) % 2).collect())
        };
        let busy_of = |running: &[bool]| -> IxVec<TaskIx, bool> {
            IxVec::from_vec(def.tasks.indices().map(|t| running.get(t.raw() as usize).copied().unwrap_or(false)).collect())
        };
        let (marking, busy) = (marking_of(&tokens), busy_of(&running));
        let (later_marking, later_busy) = (marking_of(&later_tokens), busy_of(&later_running));
        // One scratch for every decision: each leaves it clean for the next.
        let mut scratch = Scratch::default();
        for cone in &def.or_cones.cones {
            let is_busy = |u| busy.get(u).copied().unwrap_or(false);
            let places: Vec<PlaceIx> = marking.iter_enumerated().filter(|&(_, &n)| n > 0).map(|(p, _)| p).collect();
            let tasks: Vec<TaskIx> = busy.iter_enumerated().filter(|&(_, &b)| b).map(|(t, _)| t).collect();
            let (fast, witness) = decide(def, cone, None, &marking, is_busy, (&places, &tasks), &mut scratch);
            let slow = may_fire_by_sweeps(def, &marking, &busy, cone.task);
            prop_assert_eq!(fast, slow, "OR-join {:?} on {:?}, marking {:?}, busy {:?}", cone.task, def.tasks.iter().map(|d| (&d.id, d.join, &d.inputs, d.outputs.iter().map(|a| a.place).collect::<Vec<_>>())).collect::<Vec<_>>(), marking, busy);
            // A witness holds where it was found, and wherever it holds the OR-join waits.
            let task = def.tasks.get(cone.task).ok_or_else(|| TestCaseError::fail("no task"))?;
            if let Some(mut w) = witness {
                prop_assert!(!fast && w.holds(None, task, cone.task, &marking, is_busy), "witness {:?}", w);
                let later = |u| later_busy.get(u).copied().unwrap_or(false);
                if w.holds(None, task, cone.task, &later_marking, later) {
                    prop_assert!(!may_fire_by_sweeps(def, &later_marking, &later_busy, cone.task), "witness {:?} held on {:?}", w, later_marking);
                }
            }
        }
    }
}
