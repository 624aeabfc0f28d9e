//! Random valid nets for the properties: per-node choices drawn by proptest, built into nets in
//! topological order, and the generated workflow with its initial data.

use std::collections::{BTreeMap, BTreeSet};
use std::iter::once;

use knhk_core::model::ControlType::{And, Or, Xor};
use knhk_core::model::*;
use knhk_core::{ElementId, NetId};
use proptest::collection::vec;
use proptest::prelude::*;
use serde_json::{Map, Value, json};

use super::{GUARDS, LOOP_GUARD, UNDEFINED_GUARD, flow, human_binding, pick, spec};

#[derive(Clone, Copy, Debug)]
enum Work {
    Empty,
    Human { four_eyes: bool },
    Connector,
    Trigger(u8),
    Composite,
}

#[derive(Clone, Debug)]
struct MiGen {
    minimum: u32,
    list: Option<u8>,
    threshold: Option<u32>,
    dynamic: bool,
    join: bool,
}

/// One node of a net in topological order: a task, or (rarely) an explicit condition.
#[derive(Clone, Debug)]
struct NodeGen {
    condition: bool,
    join: ControlType,
    split: ControlType,
    work: Work,
    pred: u8,
    succ: Vec<u8>,
    guards: Vec<u8>,
    default: u8,
    back: Option<u8>,
    cancel: Vec<u8>,
    mi: Option<MiGen>,
    timer: Option<TaskTimer>,
    failure_flow: bool,
}

fn control() -> impl Strategy<Value = ControlType> {
    prop_oneof![1 => Just(And), 2 => Just(Xor), 2 => Just(Or)]
}

fn work() -> impl Strategy<Value = Work> {
    prop_oneof![
        4 => Just(Work::Empty),
        4 => (0u8..5).prop_map(|x| Work::Human { four_eyes: x == 0 }),
        1 => Just(Work::Connector),
        1 => (0u8..2).prop_map(Work::Trigger),
        2 => Just(Work::Composite),
    ]
}

fn mi() -> impl Strategy<Value = MiGen> {
    (
        1u32..=2,
        prop::option::of(prop_oneof![5 => 1u8..=3, 1 => Just(4u8)]),
        prop::option::of(1u32..=3),
        any::<bool>(),
        any::<bool>(),
    )
        .prop_map(|(minimum, list, threshold, dynamic, join)| MiGen {
            minimum,
            list,
            threshold,
            dynamic,
            join,
        })
}

fn timer() -> impl Strategy<Value = TaskTimer> {
    (0u8..3, 1u64..1000).prop_map(|(k, duration_ms)| {
        let (trigger, action) = match k {
            0 => (TimerTrigger::OnEnabled, TimerAction::Expire),
            1 => (TimerTrigger::OnStarted, TimerAction::Expire),
            _ => (TimerTrigger::OnEnabled, TimerAction::Delay),
        };
        TaskTimer {
            trigger,
            duration_ms,
            action,
        }
    })
}

fn node() -> impl Strategy<Value = NodeGen> {
    (
        (prop::bool::weighted(0.15), control(), control(), work()),
        (
            any::<u8>(),
            vec(any::<u8>(), 1..=3),
            vec(any::<u8>(), 4),
            any::<u8>(),
        ),
        (
            prop::option::weighted(0.25, any::<u8>()),
            prop::option::weighted(0.2, vec(any::<u8>(), 1..=2)),
            prop::option::weighted(0.15, mi()),
            prop::option::weighted(0.15, timer()),
            prop::bool::weighted(0.1),
        ),
    )
        .prop_map(
            |(
                (condition, join, split, work),
                (pred, succ, guards, default),
                (back, cancel, mi, timer, failure_flow),
            )| NodeGen {
                condition,
                join,
                split,
                work,
                pred,
                succ,
                guards,
                default,
                back,
                cancel: cancel.unwrap_or_default(),
                mi,
                timer,
                failure_flow,
            },
        )
}

/// Builds a net whose nodes are in topological order: every node gets one predecessor before
/// it and successors after it, so every node lies on a path from input to output. Back edges
/// (loops) are guarded by a counter that the looping task increments.
fn build_net(id: &str, p: &str, nodes: &[NodeGen], sub: Option<&str>) -> Net {
    let n = nodes.len();
    let is_cond = |i: usize| i != 0 && i != n - 1 && nodes[i].condition;
    let name = |i: usize| {
        if is_cond(i) {
            format!("{p}c{i}")
        } else {
            format!("{p}t{i}")
        }
    };
    let end = format!("{p}end");
    let work = |i: usize| match nodes[i].work {
        Work::Composite if sub.is_none() => Work::Empty,
        w => w,
    };
    let mi = |i: usize| match work(i) {
        Work::Trigger(_) => None,
        _ => nodes[i].mi.clone(),
    };
    // Forward edges; `None` is the input condition as a source, the output one as a target.
    let mut edges: BTreeSet<(Option<usize>, Option<usize>)> = BTreeSet::new();
    for (i, g) in nodes.iter().enumerate() {
        let preds: Vec<Option<usize>> = if is_cond(i) {
            (0..i).filter(|&j| !is_cond(j)).map(Some).collect()
        } else {
            once(None).chain((0..i).map(Some)).collect()
        };
        // Mostly the node just before: long chains, fewer tasks sharing the input condition.
        let pred = if g.pred < 128 {
            g.pred as usize % preds.len()
        } else {
            preds.len() - 1
        };
        edges.insert((preds[pred], Some(i)));
        let succs: Vec<Option<usize>> = if is_cond(i) {
            (i + 1..n).filter(|&j| !is_cond(j)).map(Some).collect()
        } else {
            (i + 1..n).map(Some).chain(once(None)).collect()
        };
        for s in &g.succ {
            edges.insert((Some(i), succs[*s as usize % succs.len()]));
        }
    }
    let mut back: BTreeMap<usize, usize> = BTreeMap::new();
    for (i, g) in nodes.iter().enumerate() {
        if is_cond(i) || mi(i).is_some() || matches!(work(i), Work::Composite) {
            continue;
        }
        if let Some(b) = g.back {
            let targets: Vec<usize> = (0..=i).filter(|&j| !is_cond(j)).collect();
            back.insert(i, targets[b as usize % targets.len()]);
        }
    }
    let incoming = |j: usize| {
        edges.iter().filter(|(_, d)| *d == Some(j)).count()
            + back.values().filter(|&&t| t == j).count()
    };
    let target = |d: &Option<usize>| d.map_or(end.clone(), name);
    let mut conditions = Vec::new();
    let mut tasks = Vec::new();
    for (i, g) in nodes.iter().enumerate() {
        let fwd: Vec<String> = edges
            .iter()
            .filter(|(s, _)| *s == Some(i))
            .map(|(_, d)| target(d))
            .collect();
        if is_cond(i) {
            conditions.push(Condition {
                id: ElementId::new(name(i)),
                name: None,
                flows: fwd.iter().map(|t| flow(t)).collect(),
            });
            continue;
        }
        let looping = back.get(&i).copied();
        let total = fwd.len() + usize::from(looping.is_some());
        let mut split = g.split;
        if total == 1 || (looping.is_some() && split == And) {
            split = Xor;
        }
        let mut join = g.join;
        if incoming(i) == 1 || (back.values().any(|&t| t == i) && join == And) {
            join = Xor;
        }
        let mut flows: Vec<Flow> = Vec::new();
        if split == And || total == 1 {
            flows.extend(fwd.iter().map(|t| flow(t)));
        } else {
            let d = g.default as usize % fwd.len();
            for (k, to) in fwd.iter().enumerate() {
                let gk = g.guards[k % g.guards.len()];
                // Rarely a predicate that cannot be evaluated: the task fails.
                let guard = Expression::cel(match gk {
                    255 => UNDEFINED_GUARD,
                    _ => GUARDS[gk as usize % GUARDS.len()],
                });
                let ordering = (gk % 3 != 0).then_some(i64::from(gk / 3 % 4));
                flows.push(if k == d {
                    Flow {
                        is_default: true,
                        predicate: (split == Or && gk % 3 == 0).then_some(guard),
                        ..flow(to)
                    }
                } else {
                    // An OR split may have flows without a predicate: they always hold.
                    let always = split == Or && gk % 5 == 1;
                    Flow {
                        predicate: (!always).then_some(guard),
                        ordering,
                        ..flow(to)
                    }
                });
            }
        }
        if let Some(j) = looping {
            flows.push(Flow {
                predicate: Some(Expression::cel(LOOP_GUARD)),
                ..flow(&name(j))
            });
        }
        let binding = match work(i) {
            Work::Empty | Work::Composite => TaskBinding::Empty,
            Work::Human { four_eyes } => human_binding(four_eyes),
            Work::Connector => TaskBinding::Connector(ConnectorBinding {
                connector: "http".into(),
                settings: BTreeMap::new(),
            }),
            Work::Trigger(e) => TaskBinding::Trigger {
                event: format!("e{e}"),
                trigger_kind: TriggerKind::Transient,
            },
        };
        let fails = matches!(work(i), Work::Human { .. } | Work::Connector);
        let failure_targets: Vec<String> = (i + 1..n)
            .map(name)
            .chain(once(end.clone()))
            .filter(|t| !fwd.contains(t))
            .collect();
        if g.failure_flow
            && fails
            && let Some(to) = pick(&failure_targets, g.pred as usize)
        {
            flows.push(Flow {
                on_failure: true,
                ..flow(to)
            });
        }
        let mut cancellation_set: Vec<ElementId> = Vec::new();
        for c in &g.cancel {
            let id = ElementId::new(name(*c as usize % n));
            if !cancellation_set.contains(&id) {
                cancellation_set.push(id);
            }
        }
        let multiple_instance = mi(i).map(|m| MultipleInstance {
            minimum: m.minimum,
            maximum: Some(3),
            threshold: m.threshold,
            creation: if m.dynamic {
                CreationMode::Dynamic
            } else {
                CreationMode::Static
            },
            split: m.list.map(|len| {
                let items: Vec<String> = (1..=len).map(|x| x.to_string()).collect();
                Expression::cel(format!("[{}]", items.join(", ")))
            }),
            item_variable: "item".into(),
            join_variable: m.join.then(|| "joined".into()),
        });
        tasks.push(Task {
            join,
            split,
            flows,
            cancellation_set,
            multiple_instance,
            decomposition: matches!(work(i), Work::Composite)
                .then(|| NetId::new(sub.unwrap_or_default())),
            binding,
            timer: g.timer,
            output_mapping: looping.map(|_| Expression::cel("{'loops': loops + 1}")),
            ..Task::empty(name(i).as_str())
        });
    }
    Net {
        id: NetId::new(id),
        name: None,
        input_condition: Condition {
            id: ElementId::new(format!("{p}start")),
            name: None,
            flows: edges
                .iter()
                .filter(|(s, _)| s.is_none())
                .map(|(_, d)| flow(&target(d)))
                .collect(),
        },
        output_condition: Condition {
            id: end.as_str().into(),
            name: None,
            flows: Vec::new(),
        },
        conditions,
        tasks,
    }
}

/// A generated workflow and its initial data, shown compactly when a property fails.
#[derive(Clone)]
pub(super) struct Generated {
    pub(super) spec: Specification,
    pub(super) data: Map<String, Value>,
}

impl std::fmt::Debug for Generated {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        writeln!(f, "data {}", Value::Object(self.data.clone()))?;
        for net in &self.spec.nets {
            writeln!(f, "net {}", net.id)?;
            for c in once(&net.input_condition).chain(&net.conditions) {
                let to: Vec<&str> = c.flows.iter().map(|f| f.to.as_str()).collect();
                writeln!(f, "  condition {} -> {}", c.id, to.join(", "))?;
            }
            for t in &net.tasks {
                write!(
                    f,
                    "  task {} join {:?} split {:?} -> ",
                    t.id, t.join, t.split
                )?;
                for (k, fl) in t.flows.iter().enumerate() {
                    let sep = if k == 0 { "" } else { ", " };
                    write!(f, "{sep}{}", fl.to)?;
                    if let Some(p) = &fl.predicate {
                        write!(f, " if {:?}", p.source)?;
                    }
                    if let Some(o) = fl.ordering {
                        write!(f, " ordering {o}")?;
                    }
                    if fl.is_default {
                        write!(f, " (default)")?;
                    }
                    if fl.on_failure {
                        write!(f, " (on failure)")?;
                    }
                }
                match &t.binding {
                    TaskBinding::Empty => {}
                    TaskBinding::Human(h) => write!(f, "; human four_eyes={}", h.four_eyes)?,
                    TaskBinding::Connector(_) => write!(f, "; connector")?,
                    TaskBinding::Trigger { event, .. } => write!(f, "; trigger {event}")?,
                }
                if let Some(d) = &t.decomposition {
                    write!(f, "; composite {d}")?;
                }
                if !t.cancellation_set.is_empty() {
                    let c: Vec<&str> = t.cancellation_set.iter().map(|c| c.as_str()).collect();
                    write!(f, "; cancels {}", c.join(", "))?;
                }
                if let Some(m) = &t.multiple_instance {
                    let split = m.split.as_ref().map(|e| e.source.as_str());
                    write!(
                        f,
                        "; mi min {} max {:?} threshold {:?} {:?} split {:?} join {:?}",
                        m.minimum, m.maximum, m.threshold, m.creation, split, m.join_variable
                    )?;
                }
                if let Some(tm) = &t.timer {
                    write!(
                        f,
                        "; timer {:?} {:?} {}ms",
                        tm.trigger, tm.action, tm.duration_ms
                    )?;
                }
                if let Some(m) = &t.output_mapping {
                    write!(f, "; output mapping {:?}", m.source)?;
                }
                writeln!(f)?;
            }
        }
        Ok(())
    }
}

pub(super) fn random_workflow() -> impl Strategy<Value = Generated> {
    (
        vec(node(), 2..=12),
        prop::option::weighted(0.5, vec(node(), 2..=5)),
        (any::<bool>(), any::<bool>(), 0i64..4),
    )
        .prop_map(|(root, sub, (b0, b1, n))| {
            let mut nets = vec![build_net("root", "", &root, sub.as_ref().map(|_| "sub"))];
            if let Some(sub) = sub {
                nets.push(build_net("sub", "s_", &sub, None));
            }
            let data = json!({"b0": b0, "b1": b1, "n": n, "loops": 0});
            Generated {
                spec: spec(nets),
                data: data.as_object().cloned().unwrap_or_default(),
            }
        })
}
