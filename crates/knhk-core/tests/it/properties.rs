//! Property tests: random valid nets driven by random inputs, checked after every step against
//! the invariants of the semantics (refusals change nothing, replay rebuilds the case, effects
//! agree with the state, splits route as defined, ended cases hold nothing, running cases never
//! hang, `outstanding` is what is live), and the OR-join on random split/merge blocks.

use std::collections::{BTreeMap, BTreeSet};
use std::iter::once;

use knhk_core::model::ControlType::{And, Or, Xor};
use knhk_core::model::*;
use knhk_core::*;
use proptest::collection::vec;
use proptest::prelude::*;
use proptest::test_runner::TestCaseError;
use serde_json::{Map, Value, json};

type Check = Result<(), TestCaseError>;

const USERS: [&str; 3] = ["ann", "bob", "cy"];
/// Predicates of generated splits; `holds` evaluates them the way CEL does.
const GUARDS: [&str; 8] = [
    "b0", "!b0", "b1", "b0 && b1", "n > 1", "n <= 1", "true", "false",
];
const LOOP_GUARD: &str = "loops < 2";
const UNDEFINED_GUARD: &str = "undefined_flag";

fn holds(src: &str, data: &Map<String, Value>) -> Option<bool> {
    let b = |k: &str| data.get(k).and_then(Value::as_bool);
    let i = |k: &str| data.get(k).and_then(Value::as_i64);
    match src {
        "true" => Some(true),
        "false" => Some(false),
        "b0" | "b1" | "b2" | "b3" => b(src),
        "!b0" => b("b0").map(|x| !x),
        "b0 && b1" => Some(b("b0")? && b("b1")?),
        "b1 && b2" => Some(b("b1")? && b("b2")?),
        "n > 1" => i("n").map(|n| n > 1),
        "n <= 1" => i("n").map(|n| n <= 1),
        LOOP_GUARD => i("loops").map(|n| n < 2),
        _ => None,
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

fn spec(nets: Vec<Net>) -> Specification {
    Specification {
        id: "urn:prop".into(),
        name: None,
        version: None,
        documentation: None,
        root_net: nets[0].id.clone(),
        nets,
    }
}

fn human_binding(four_eyes: bool) -> TaskBinding {
    TaskBinding::Human(HumanBinding {
        roles: vec!["r".into()],
        allocation: Allocation::RoleOffer,
        four_eyes,
    })
}

// ---------------------------------------------------------------------------------------------
// Random nets

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

// ---------------------------------------------------------------------------------------------
// What the specification says, for checking routing

struct TaskInfo {
    join: ControlType,
    /// Its cancellation set.
    cancels: Vec<String>,
    /// The conditions the task takes tokens from.
    inputs: BTreeSet<String>,
    split: ControlType,
    /// (condition a flow leads to, the flow), in definition order.
    flows: Vec<(String, Flow)>,
}

struct NetInfo {
    output: String,
    conditions: BTreeSet<String>,
    tasks: BTreeMap<String, TaskInfo>,
}

fn spec_info(spec: &Specification) -> BTreeMap<String, NetInfo> {
    let mut out = BTreeMap::new();
    for net in &spec.nets {
        let task_ids: BTreeSet<&str> = net.tasks.iter().map(|t| t.id.as_str()).collect();
        let mut conditions: BTreeSet<String> = once(&net.input_condition)
            .chain(once(&net.output_condition))
            .chain(&net.conditions)
            .map(|c| c.id.to_string())
            .collect();
        let mut tasks = BTreeMap::new();
        for t in &net.tasks {
            let flows: Vec<(String, Flow)> = t
                .flows
                .iter()
                .map(|f| {
                    let c = if task_ids.contains(f.to.as_str()) {
                        format!("{}__{}", t.id, f.to)
                    } else {
                        f.to.to_string()
                    };
                    (c, f.clone())
                })
                .collect();
            conditions.extend(flows.iter().map(|(c, _)| c.clone()));
            tasks.insert(
                t.id.to_string(),
                TaskInfo {
                    join: t.join,
                    cancels: t.cancellation_set.iter().map(|c| c.to_string()).collect(),
                    inputs: BTreeSet::new(),
                    split: t.split,
                    flows,
                },
            );
        }
        let mut arcs: Vec<(String, String)> = Vec::new();
        for c in once(&net.input_condition).chain(&net.conditions) {
            arcs.extend(c.flows.iter().map(|f| (f.to.to_string(), c.id.to_string())));
        }
        for t in &net.tasks {
            for f in &t.flows {
                if task_ids.contains(f.to.as_str()) {
                    arcs.push((f.to.to_string(), format!("{}__{}", t.id, f.to)));
                }
            }
        }
        for (t, c) in arcs {
            if let Some(info) = tasks.get_mut(&t) {
                info.inputs.insert(c);
            }
        }
        let output = net.output_condition.id.to_string();
        out.insert(
            net.id.to_string(),
            NetInfo {
                output,
                conditions,
                tasks,
            },
        );
    }
    out
}

/// Returns the conditions a completing task's split must produce, given the case data.
fn expected_route(t: &TaskInfo, data: &Map<String, Value>) -> Option<BTreeSet<String>> {
    let normal: Vec<&(String, Flow)> = t.flows.iter().filter(|(_, f)| !f.on_failure).collect();
    if t.split == And {
        return Some(normal.iter().map(|(c, _)| c.clone()).collect());
    }
    let guard = |f: &Flow| {
        f.predicate
            .as_ref()
            .map_or(Some(true), |p| holds(&p.source, data))
    };
    let mut ordered: Vec<(usize, &&(String, Flow))> = normal
        .iter()
        .enumerate()
        .filter(|(_, (_, f))| !f.is_default && f.predicate.is_some())
        .collect();
    ordered.sort_by_key(|(i, (_, f))| (f.ordering.is_none(), f.ordering, *i));
    let unguarded = normal
        .iter()
        .filter(|(_, f)| !f.is_default && f.predicate.is_none());
    let default = normal.iter().find(|(_, f)| f.is_default);
    let mut chosen = BTreeSet::new();
    for (_, (c, f)) in ordered {
        if guard(f)? {
            chosen.insert(c.clone());
            if t.split == Xor {
                return Some(chosen);
            }
        }
    }
    for (c, _) in unguarded {
        chosen.insert(c.clone());
        if t.split == Xor {
            return Some(chosen);
        }
    }
    if t.split == Or
        && let Some((c, f)) = default
        && f.predicate.is_some()
        && guard(f)?
    {
        chosen.insert(c.clone());
    }
    if chosen.is_empty()
        && let Some((c, _)) = default
    {
        chosen.insert(c.clone());
    }
    Some(chosen)
}

// ---------------------------------------------------------------------------------------------
// Driving a case and checking it after every step

struct Driver<'w> {
    wf: &'w Workflow,
    info: BTreeMap<String, NetInfo>,
    case: Case,
    ids: SequentialIds,
    events: Vec<Event>,
    now: i64,
    /// The case data as the history says, for evaluating predicates.
    data: Map<String, Value>,
    /// Net of each net instance, from the history.
    nets: Vec<String>,
    /// Net instances that ended.
    ended_nets: BTreeSet<u32>,
    ended: usize,
    dead: Vec<WorkItemId>,
}

impl<'w> Driver<'w> {
    fn start(wf: &'w Workflow, data: Map<String, Value>) -> Result<Driver<'w>, TestCaseError> {
        let id = CaseId(uuid::Uuid::from_u128(7));
        let (case, step) = Case::create(wf, id, Timestamp(0), data.clone());
        let mut d = Driver {
            wf,
            info: spec_info(wf.specification()),
            case,
            ids: SequentialIds::default(),
            events: Vec::new(),
            now: 0,
            data: Map::new(),
            nets: vec![wf.specification().root_net.to_string()],
            ended_nets: BTreeSet::new(),
            ended: 0,
            dead: Vec::new(),
        };
        prop_assert_eq!(step.events.len(), 1);
        d.events = step.events;
        d.follow(0)?;
        prop_assert_eq!(d.data.clone(), data);
        d.apply(Input::Start, false, 1)?;
        Ok(d)
    }

    /// Applies one input and checks the step and the state after it. `refused`: the input is
    /// invalid and must be refused.
    fn apply(&mut self, input: Input, refused: bool, dt: i64) -> Check {
        let before = self.case.clone();
        self.now += dt;
        let res = self
            .case
            .apply(self.wf, Timestamp(self.now), input.clone(), &mut self.ids);
        match res {
            Err(e) => {
                prop_assert_eq!(&self.case, &before, "refused {:?} changed the case", input);
                if before.status().is_final() {
                    prop_assert!(
                        matches!(e, Error::WrongCaseState { .. }),
                        "ended case refused {:?} with {:?}",
                        input,
                        e
                    );
                }
            }
            Ok(step) => {
                prop_assert!(!refused, "invalid input {:?} was taken", input);
                prop_assert!(!before.status().is_final(), "ended case took {:?}", input);
                prop_assert!(!step.events.is_empty(), "{:?} took without an event", input);
                for (k, e) in step.events.iter().enumerate() {
                    prop_assert_eq!(e.seq, (self.events.len() + k + 1) as u64, "seq gap");
                }
                self.check_effects(&before, &step)?;
                let from = self.events.len();
                self.events.extend(step.events);
                self.follow(from)?;
            }
        }
        for (id, _) in before.work_items() {
            if self.case.work_item(id).is_none() {
                self.dead.push(*id);
            }
        }
        self.check_state()
    }

    /// Follows new events: net instances, case data, and what each split produced.
    fn follow(&mut self, from: usize) -> Check {
        for at in from..self.events.len() {
            let e = &self.events[at];
            match &e.kind {
                EventKind::CaseCreated { data, .. } => self.data = data.clone(),
                EventKind::DataUpdated { changes } => {
                    for (k, v) in changes {
                        self.data.insert(k.clone(), v.clone());
                    }
                }
                EventKind::NetStarted {
                    net_instance, net, ..
                } => {
                    prop_assert_eq!(*net_instance as usize, self.nets.len());
                    self.nets.push(net.to_string());
                }
                EventKind::TaskCompleted { task, produced } => {
                    let t = self.task_info(task)?;
                    let set: BTreeSet<String> = produced.iter().map(|c| c.to_string()).collect();
                    prop_assert_eq!(set.len(), produced.len(), "duplicate tokens {:?}", produced);
                    let net = &self.info[&self.nets[task.net_instance as usize]];
                    for c in &set {
                        prop_assert!(net.conditions.contains(c), "{} is not a condition", c);
                    }
                    let want = expected_route(t, &self.data);
                    prop_assert!(
                        want.is_some(),
                        "{} completed although a predicate it needs cannot be evaluated",
                        task.task
                    );
                    if !t.cancels.is_empty() {
                        self.check_cancellation(at, task, t, &set)?;
                    }
                    prop_assert_eq!(
                        Some(set),
                        want,
                        "{} split of {} routed wrongly, data {:?}",
                        format!("{:?}", t.split),
                        task.task,
                        self.data
                    );
                }
                EventKind::NetEnded { net_instance } => {
                    prop_assert!(self.ended_nets.insert(*net_instance), "net ended twice");
                }
                EventKind::CaseDeadlocked { marked } => {
                    // A deadlock is real: no task of the stuck net has its join satisfied.
                    let marked: BTreeSet<String> = marked.iter().map(|c| c.to_string()).collect();
                    let net = self.info.values().find(|n| marked.is_subset(&n.conditions));
                    prop_assert!(net.is_some(), "deadlock in no net: {:?}", marked);
                    for (id, t) in net.map(|n| &n.tasks).into_iter().flatten() {
                        let fires = match t.join {
                            And => t.inputs.is_subset(&marked),
                            Xor | Or => !t.inputs.is_disjoint(&marked),
                        };
                        prop_assert!(
                            !fires,
                            "deadlock reported but {} can fire: {:?}",
                            id,
                            marked
                        );
                    }
                }
                EventKind::TaskFailed { task, produced, .. } if !produced.is_empty() => {
                    let t = self.task_info(task)?;
                    let failure: Vec<&str> = t
                        .flows
                        .iter()
                        .filter(|(_, f)| f.on_failure)
                        .map(|(c, _)| c.as_str())
                        .collect();
                    let got: Vec<&str> = produced.iter().map(|c| c.as_str()).collect();
                    prop_assert_eq!(got, failure);
                }
                _ => {}
            }
        }
        Ok(())
    }

    /// Checks the state right after event `at`, the completion of `task`: the conditions of
    /// its cancellation set hold only what the task just produced, its tasks are not running.
    fn check_cancellation(
        &self,
        at: usize,
        task: &TaskRef,
        t: &TaskInfo,
        produced: &BTreeSet<String>,
    ) -> Check {
        let mid = Case::replay(self.wf, self.case.id(), &self.events[..=at])
            .map_err(|e| TestCaseError::fail(format!("replay: {e}")))?;
        let ni = task.net_instance;
        let marking = mid.marking(self.wf);
        let busy = mid.busy_tasks(self.wf);
        for c in &t.cancels {
            let tokens = marking
                .iter()
                .find(|(n, id, _)| *n == ni && id.as_str() == c)
                .map_or(0, |m| m.2);
            if !self.info_of(ni).conditions.contains(c) {
                let cancelled = TaskRef {
                    net_instance: ni,
                    task: c.as_str().into(),
                };
                if c != task.task.as_str() {
                    prop_assert!(
                        !busy.contains(&cancelled),
                        "{} completed but {} of its cancellation set still runs",
                        task.task,
                        c
                    );
                }
                continue;
            }
            prop_assert_eq!(
                tokens,
                u32::from(produced.contains(c)),
                "{} completed but {} of its cancellation set holds tokens",
                task.task,
                c
            );
        }
        Ok(())
    }

    fn info_of(&self, ni: u32) -> &NetInfo {
        &self.info[&self.nets[ni as usize]]
    }

    fn task_info(&self, task: &TaskRef) -> Result<&TaskInfo, TestCaseError> {
        let net = self.nets.get(task.net_instance as usize);
        let t = net
            .and_then(|n| self.info.get(n))
            .and_then(|n| n.tasks.get(task.task.as_str()));
        t.ok_or_else(|| TestCaseError::fail(format!("unknown task {task:?}")))
    }

    fn check_effects(&mut self, before: &Case, step: &Step) -> Check {
        let ev = &step.events;
        let case = &self.case;
        let find = |f: &dyn Fn(&EventKind) -> bool| ev.iter().position(|e| f(&e.kind));
        let gone_after = |item: &WorkItemId, from: usize| {
            ev[from..].iter().any(|e| match &e.kind {
                EventKind::WorkItemCancelled { item: i }
                | EventKind::WorkItemCompleted { item: i, .. }
                | EventKind::ConnectorCallSucceeded { item: i, .. }
                | EventKind::ConnectorCallFailed { item: i, .. } => i == item,
                _ => false,
            })
        };
        let mut ended = 0;
        for eff in &step.effects {
            match eff {
                Effect::OfferWorkItem { item, .. } | Effect::CallConnector { item, .. } => {
                    let at = find(&|k| match k {
                        EventKind::WorkItemOffered { item: i, .. }
                        | EventKind::ConnectorCallStarted { item: i, .. } => i == item,
                        _ => false,
                    });
                    prop_assert!(at.is_some(), "{:?} without its event", eff);
                    let at = at.unwrap_or_default();
                    prop_assert!(
                        case.work_item(item).is_some() || gone_after(item, at + 1),
                        "{:?}: the item is not live and nothing removed it",
                        eff
                    );
                }
                Effect::WithdrawWorkItem { item } | Effect::CancelConnectorCall { item } => {
                    prop_assert!(case.work_item(item).is_none(), "{:?} but live", eff);
                    prop_assert!(
                        find(
                            &|k| matches!(k, EventKind::WorkItemCancelled { item: i } if i == item)
                        )
                        .is_some(),
                        "{:?} without its event",
                        eff
                    );
                }
                Effect::ArmTimer { timer, fires_at } => {
                    let at = find(&|k| {
                        matches!(k, EventKind::TimerArmed { timer: t, fires_at: f, .. }
                            if t == timer && f == fires_at)
                    });
                    prop_assert!(at.is_some(), "{:?} without its event", eff);
                    let at = at.unwrap_or_default();
                    let live = case.timers().any(|(t, _)| t == timer);
                    let gone = ev[at + 1..].iter().any(|e| {
                        matches!(&e.kind, EventKind::TimerCancelled { timer: t }
                            | EventKind::TimerFired { timer: t } if t == timer)
                    });
                    prop_assert!(live || gone, "{:?}: timer neither armed nor ended", eff);
                }
                Effect::CancelTimer { timer } => {
                    prop_assert!(
                        !case.timers().any(|(t, _)| t == timer),
                        "{:?} but armed",
                        eff
                    );
                }
                Effect::AwaitTrigger { task, .. } => {
                    let at =
                        find(&|k| matches!(k, EventKind::TaskEnabled { task: t } if t == task));
                    prop_assert!(at.is_some(), "{:?} without TaskEnabled", eff);
                    let at = at.unwrap_or_default();
                    let enabled = case.enabled_tasks(self.wf).contains(task);
                    let left = ev[at + 1..].iter().any(|e| {
                        matches!(&e.kind, EventKind::TaskStarted { task: t, .. }
                            | EventKind::TaskWithdrawn { task: t }
                            | EventKind::TaskCancelled { task: t }
                            | EventKind::TaskFailed { task: t, .. } if t == task)
                            || matches!(&e.kind, EventKind::NetEnded { net_instance }
                                if *net_instance == task.net_instance)
                    });
                    prop_assert!(enabled || left, "{:?} but the task is not enabled", eff);
                }
                Effect::CaseEnded { status } => {
                    ended += 1;
                    prop_assert_eq!(*status, case.status());
                    prop_assert!(status.is_final());
                }
            }
        }
        // The other way round: every event that asks the world for something has its effect.
        for e in ev {
            let has = |f: &dyn Fn(&Effect) -> bool| step.effects.iter().any(f);
            let ok = match &e.kind {
                EventKind::WorkItemOffered { item, .. } => {
                    has(&|x| matches!(x, Effect::OfferWorkItem { item: i, .. } if i == item))
                }
                EventKind::ConnectorCallStarted { item, .. } => {
                    has(&|x| matches!(x, Effect::CallConnector { item: i, .. } if i == item))
                }
                EventKind::WorkItemCancelled { item } => has(&|x| {
                    matches!(x, Effect::WithdrawWorkItem { item: i }
                        | Effect::CancelConnectorCall { item: i } if i == item)
                }),
                EventKind::TimerArmed { timer, .. } => {
                    has(&|x| matches!(x, Effect::ArmTimer { timer: t, .. } if t == timer))
                }
                EventKind::TimerCancelled { timer } => {
                    has(&|x| matches!(x, Effect::CancelTimer { timer: t } if t == timer))
                }
                _ => true,
            };
            prop_assert!(ok, "event {:?} without its effect", e.kind);
        }
        let became_final = !before.status().is_final() && case.status().is_final();
        prop_assert_eq!(
            ended,
            usize::from(became_final),
            "CaseEnded effects in this step"
        );
        self.ended += ended;
        prop_assert!(self.ended <= 1);
        Ok(())
    }

    fn enabled_triggers(&self, case: &Case) -> Vec<(TaskRef, String)> {
        case.enabled_tasks(self.wf)
            .into_iter()
            .filter_map(|t| match &case.task_model(self.wf, &t)?.binding {
                TaskBinding::Trigger { event } => Some((t, event.clone())),
                _ => None,
            })
            .collect()
    }

    fn check_state(&self) -> Check {
        let replayed = Case::replay(self.wf, self.case.id(), &self.events)
            .map_err(|e| TestCaseError::fail(format!("replay: {e}")))?;
        prop_assert_eq!(&replayed, &self.case, "replay differs");
        prop_assert_eq!(
            self.case.data(),
            &self.data,
            "data differs from its history"
        );
        let case = &replayed;
        let status = case.status();
        let items = case.work_items().count();
        let timers = case.timers().count();
        let triggers = self.enabled_triggers(case);
        let busy = case.busy_tasks(self.wf);
        if status.is_final() {
            prop_assert_eq!(items, 0, "ended case has work items");
            prop_assert_eq!(timers, 0, "ended case has timers");
            prop_assert!(case.enabled_tasks(self.wf).is_empty(), "ended case enabled");
            prop_assert!(busy.is_empty(), "ended case has busy tasks");
            prop_assert_eq!(self.ended, 1, "ended without exactly one CaseEnded");
        } else {
            prop_assert_eq!(self.ended, 0);
        }
        if status == CaseStatus::Running {
            prop_assert!(
                items + timers + triggers.len() + busy.len() > 0,
                "running case waits for nothing; marking {:?}",
                case.marking(self.wf)
            );
            // Busy tasks run through work items, calls, timers or sub-nets holding those.
            prop_assert!(
                items + timers + triggers.len() > 0,
                "running case with busy tasks {:?} but nothing the world can do",
                busy
            );
        }
        let mut want: Vec<String> = Vec::new();
        if !status.is_final() {
            for (id, w) in case.work_items() {
                if w.state == WorkItemState::Calling {
                    want.push(format!("call {id}"));
                } else {
                    want.push(format!("offer {id}"));
                }
            }
            want.extend(case.timers().map(|(t, at)| format!("timer {t} {at:?}")));
            want.extend(triggers.iter().map(|(t, e)| format!("await {t:?} {e}")));
        }
        let mut got: Vec<String> = case
            .outstanding(self.wf)
            .into_iter()
            .map(|e| match e {
                Effect::OfferWorkItem { item, .. } => format!("offer {item}"),
                Effect::CallConnector { item, .. } => format!("call {item}"),
                Effect::ArmTimer { timer, fires_at } => format!("timer {timer} {fires_at:?}"),
                Effect::AwaitTrigger { task, event } => format!("await {task:?} {event}"),
                other => format!("unexpected {other:?}"),
            })
            .collect();
        want.sort();
        got.sort();
        prop_assert_eq!(got, want, "outstanding");
        for (ni, c, n) in case.marking(self.wf) {
            prop_assert!(n > 0);
            prop_assert!(
                !self.ended_nets.contains(&ni),
                "marking() reports {} in net instance {}, which ended",
                c,
                ni
            );
            // A token in a net's output condition ends the net, and in the root net the case.
            prop_assert!(
                status.is_final()
                    || self.ended_nets.contains(&ni)
                    || c.as_str() != self.info_of(ni).output,
                "token in the output condition {} of net instance {} but the case is {}",
                c,
                ni,
                status
            );
        }
        Ok(())
    }

    fn humans(&self) -> Vec<(WorkItemId, WorkItem)> {
        self.case
            .work_items()
            .filter(|(_, w)| w.state != WorkItemState::Calling)
            .map(|(i, w)| (*i, w.clone()))
            .collect()
    }

    fn calls(&self) -> Vec<WorkItemId> {
        self.case
            .work_items()
            .filter(|(_, w)| w.state == WorkItemState::Calling)
            .map(|(i, _)| *i)
            .collect()
    }

    /// An input that moves the case on, if there is one.
    fn progress(&self, a: usize, b: usize) -> Option<Input> {
        if self.case.status() == CaseStatus::Suspended {
            return Some(Input::Resume);
        }
        let humans = self.humans();
        if let Some((item, w)) = pick(&humans, a) {
            let user = w.owner.clone().unwrap_or_else(|| USERS[b % 3].into());
            return Some(Input::CompleteWorkItem {
                item: *item,
                user,
                output: output(b),
            });
        }
        if let Some(item) = pick(&self.calls(), a) {
            return Some(Input::ConnectorSucceeded {
                item: *item,
                output: json!({"b1": b.is_multiple_of(2)}),
            });
        }
        let timers: Vec<TimerId> = self.case.timers().map(|(t, _)| *t).collect();
        if let Some(timer) = pick(&timers, a) {
            return Some(Input::TimerFired { timer: *timer });
        }
        let triggers = self.enabled_triggers(&self.case);
        pick(&triggers, a).map(|(_, event)| Input::TriggerReceived {
            event: event.clone(),
            data: json!({"b0": b % 2 == 1}),
        })
    }

    /// Chooses an input from what the case offers now; `true` when it must be refused.
    fn choose(&self, kind: u8, a: usize, b: usize) -> (Input, bool) {
        let humans = self.humans();
        let calls = self.calls();
        let timers: Vec<TimerId> = self.case.timers().map(|(t, _)| *t).collect();
        let busy = self.case.busy_tasks(self.wf);
        let dynamic: Vec<TaskRef> = busy
            .iter()
            .filter(|t| {
                self.case
                    .task_model(self.wf, t)
                    .and_then(|m| m.multiple_instance.as_ref())
                    .is_some_and(|m| m.creation == CreationMode::Dynamic)
            })
            .cloned()
            .collect();
        let user = || String::from(USERS[b % 3]);
        let chosen = match kind {
            0..=29 => pick(&humans, a).map(|(item, w)| Input::CompleteWorkItem {
                item: *item,
                user: if b.is_multiple_of(7) {
                    user()
                } else {
                    w.owner.clone().unwrap_or_else(user)
                },
                output: output(b),
            }),
            30..=37 => pick(&humans, a).map(|(item, _)| Input::StartWorkItem {
                item: *item,
                user: user(),
            }),
            38..=43 => pick(&humans, a).map(|(item, _)| Input::AllocateWorkItem {
                item: *item,
                user: user(),
            }),
            44..=53 => pick(&calls, a).map(|item| Input::ConnectorSucceeded {
                item: *item,
                output: json!({"b1": b.is_multiple_of(2)}),
            }),
            54..=56 => pick(&calls, a).map(|item| Input::ConnectorFailed {
                item: *item,
                error: "boom".into(),
            }),
            57..=58 => pick(&humans, a).map(|(item, _)| Input::FailWorkItem {
                item: *item,
                reason: "gave up".into(),
            }),
            59..=69 => pick(&timers, a).map(|timer| Input::TimerFired { timer: *timer }),
            70..=77 => Some(Input::TriggerReceived {
                event: pick(&self.enabled_triggers(&self.case), a)
                    .map_or_else(|| format!("e{}", b % 2), |(_, e)| e.clone()),
                data: json!({"b0": b % 2 == 1}),
            }),
            78..=79 => pick(&busy, a).map(|task| Input::CompleteTask { task: task.clone() }),
            80..=81 => pick(&dynamic, a).map(|task| Input::AddInstance {
                task: task.clone(),
                item: json!(b % 10),
            }),
            82 => Some(Input::Suspend),
            83..=85 => Some(Input::Resume),
            86 => Some(Input::Cancel {
                reason: "test".into(),
            }),
            87..=88 => {
                let mut changes = Map::new();
                changes.insert("b1".into(), json!(b.is_multiple_of(2)));
                Some(Input::UpdateData { changes })
            }
            _ => return self.invalid(a, b),
        };
        match chosen.or_else(|| self.progress(a, b)) {
            Some(input) => (input, false),
            None => self.invalid(a, b),
        }
    }

    /// An input the case must refuse.
    fn invalid(&self, a: usize, b: usize) -> (Input, bool) {
        let unknown = WorkItemId(uuid::Uuid::from_u128(u128::MAX - a as u128));
        let humans = self.humans();
        let owned: Vec<&(WorkItemId, WorkItem)> =
            humans.iter().filter(|(_, w)| w.owner.is_some()).collect();
        if b % 7 == 6 {
            return (Input::Start, true);
        }
        let item = match b % 7 {
            1 => pick(&self.dead, a).copied().unwrap_or(unknown),
            2 => {
                if let Some((item, w)) = pick(&owned, a) {
                    let owner = w.owner.clone().unwrap_or_default();
                    let other = USERS.iter().find(|u| **u != owner).copied();
                    return (
                        Input::CompleteWorkItem {
                            item: *item,
                            user: other.unwrap_or("zed").into(),
                            output: json!({}),
                        },
                        true,
                    );
                }
                unknown
            }
            3 => {
                if let Some((item, _)) = pick(&owned, a) {
                    let input = Input::AllocateWorkItem {
                        item: *item,
                        user: USERS[0].into(),
                    };
                    return (input, true);
                }
                unknown
            }
            4 => {
                if let Some((item, _)) = pick(&humans, a) {
                    let input = Input::ConnectorSucceeded {
                        item: *item,
                        output: json!({}),
                    };
                    return (input, true);
                }
                unknown
            }
            5 => {
                let timer = TimerId(uuid::Uuid::from_u128(u128::MAX - a as u128));
                return (Input::TimerFired { timer }, true);
            }
            _ => unknown,
        };
        let input = Input::CompleteWorkItem {
            item,
            user: USERS[b % 3].into(),
            output: json!({}),
        };
        (input, true)
    }
}

fn pick<T>(xs: &[T], a: usize) -> Option<&T> {
    if xs.is_empty() {
        None
    } else {
        xs.get(a % xs.len())
    }
}

/// What a user returns: sometimes nothing, sometimes new values for the guarded variables.
fn output(b: usize) -> Value {
    match b % 3 {
        0 => json!({}),
        1 => json!({"b0": b.is_multiple_of(2)}),
        _ => json!({"b0": b % 4 < 2, "n": (b / 4 % 4) as i64}),
    }
}

// ---------------------------------------------------------------------------------------------
// Properties

/// A generated workflow and its initial data, shown compactly when a property fails.
#[derive(Clone)]
struct Generated {
    spec: Specification,
    data: Map<String, Value>,
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
                    TaskBinding::Trigger { event } => write!(f, "; trigger {event}")?,
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

fn random_workflow() -> impl Strategy<Value = Generated> {
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

proptest! {
    // Failures print their minimal input; no regression file is written into the tree.
    #![proptest_config(ProptestConfig {
        cases: 1000,
        failure_persistence: None,
        ..ProptestConfig::default()
    })]

    /// Random nets under random inputs keep every invariant after every step.
    #[test]
    fn random_cases_keep_the_invariants_after_every_step(
        generated in random_workflow(),
        acts in vec((0u8..100, any::<u16>(), any::<u16>()), 1..=60),
    ) {
        let Generated { spec, data } = generated;
        let wf = Workflow::new(spec);
        prop_assume!(wf.is_ok(), "refused: {:?}", wf.err());
        let wf = wf.map_err(|e| TestCaseError::fail(e.to_string()))?;
        let mut d = Driver::start(&wf, data)?;
        let mut after_end = 0;
        for (kind, a, b) in acts {
            if d.case.status().is_final() {
                after_end += 1;
                if after_end > 3 {
                    break;
                }
            }
            let (input, refused) = d.choose(kind, a as usize, b as usize);
            d.apply(input, refused, 1 + i64::from(a % 500))?;
        }
    }

    /// OR-split/OR-join blocks: the join fires exactly once per activation of its split, only
    /// after every chosen branch finished, never for branches not chosen, and the case ends.
    #[test]
    fn or_join_fires_once_after_every_chosen_branch(
        blocks in vec(block(1), 1..=2),
        data in vec(any::<bool>(), 4),
        picks in vec(any::<u16>(), 40),
    ) {
        let mut b = OrNet::default();
        let mut next = "end".to_string();
        for blk in blocks.iter().rev() {
            next = b.block(blk, &next);
        }
        let net = Net {
            id: NetId::new("or"),
            name: None,
            input_condition: Condition { id: "start".into(), name: None, flows: vec![flow(&next)] },
            output_condition: Condition { id: "end".into(), name: None, flows: vec![] },
            conditions: vec![],
            tasks: b.tasks.clone(),
        };
        let wf = Workflow::new(spec(vec![net]));
        prop_assert!(wf.is_ok(), "refused: {:?}", wf.err());
        let wf = wf.map_err(|e| TestCaseError::fail(e.to_string()))?;
        let mut data: Map<String, Value> = data
            .iter()
            .enumerate()
            .map(|(i, v)| (format!("b{i}"), json!(v)))
            .collect();
        data.insert("loops".into(), json!(0));
        let mut d = Driver::start(&wf, data)?;
        if !b.tasks.iter().any(|t| matches!(t.binding, TaskBinding::Human(_))) {
            prop_assert_eq!(d.case.status(), CaseStatus::Completed, "all-empty net did not complete");
        }
        for p in picks {
            if d.case.status().is_final() {
                break;
            }
            let humans = d.humans();
            let Some((item, _)) = pick(&humans, p as usize) else { break };
            let input = Input::CompleteWorkItem { item: *item, user: "ann".into(), output: json!({}) };
            d.apply(input, false, 1)?;
        }
        prop_assert_eq!(d.case.status(), CaseStatus::Completed);
        b.check(&d.events)?;
    }
}

// ---------------------------------------------------------------------------------------------
// OR-split / OR-join blocks

#[derive(Clone, Debug)]
enum Elem {
    /// A task; a looping one runs again while the loop counter allows.
    Task {
        human: bool,
        looping: bool,
    },
    Block(Block),
}

#[derive(Clone, Debug)]
struct Block {
    branches: Vec<Vec<Elem>>,
    guards: Vec<u8>,
    default: u8,
    default_guard: Option<u8>,
}

const OR_GUARDS: [&str; 8] = ["b0", "b1", "b2", "b3", "!b0", "b1 && b2", "false", "true"];

fn elem(depth: u32) -> BoxedStrategy<Elem> {
    let task = (any::<bool>(), prop::bool::weighted(0.2))
        .prop_map(|(human, looping)| Elem::Task { human, looping });
    if depth == 0 {
        task.boxed()
    } else {
        prop_oneof![3 => task, 1 => block(depth - 1).prop_map(Elem::Block)].boxed()
    }
}

fn block(depth: u32) -> BoxedStrategy<Block> {
    (
        vec(vec(elem(depth), 0..=2), 2..=4),
        vec(0u8..8, 4),
        0u8..4,
        prop::option::of(0u8..8),
    )
        .prop_map(|(branches, guards, default, default_guard)| Block {
            branches,
            guards,
            default,
            default_guard,
        })
        .boxed()
}

/// Builds OR blocks into tasks and remembers, per block, its split, merge and what each
/// branch holds.
#[derive(Default)]
struct OrNet {
    tasks: Vec<Task>,
    next: usize,
    blocks: Vec<BlockInfo>,
}

struct BlockInfo {
    split: String,
    merge: String,
    /// (condition the split marks for the branch, every task inside the branch).
    branches: Vec<(String, BTreeSet<String>)>,
}

impl OrNet {
    fn id(&mut self, p: &str) -> String {
        self.next += 1;
        format!("{p}{}", self.next)
    }

    /// Builds a sequence ending in `next` and returns its entry and the tasks in it.
    fn seq(&mut self, elems: &[Elem], next: &str) -> (String, BTreeSet<String>) {
        let mut entry = next.to_string();
        let first = self.tasks.len();
        for e in elems.iter().rev() {
            entry = match e {
                Elem::Task { human, looping } => {
                    let id = self.id("t");
                    let mut t = Task {
                        flows: vec![flow(&entry)],
                        ..Task::empty(id.as_str())
                    };
                    if *looping {
                        t.flows = vec![
                            Flow {
                                predicate: Some(Expression::cel(LOOP_GUARD)),
                                ..flow(&id)
                            },
                            Flow {
                                is_default: true,
                                ..flow(&entry)
                            },
                        ];
                        t.output_mapping = Some(Expression::cel("{'loops': loops + 1}"));
                    }
                    if *human {
                        t.binding = human_binding(false);
                    }
                    self.tasks.push(t);
                    id
                }
                Elem::Block(b) => self.block(b, &entry),
            };
        }
        let inside = self.tasks[first..]
            .iter()
            .map(|t| t.id.to_string())
            .collect();
        (entry, inside)
    }

    fn block(&mut self, b: &Block, next: &str) -> String {
        let split = self.id("s");
        let merge = self.id("m");
        self.tasks.push(Task {
            join: Or,
            flows: vec![flow(next)],
            ..Task::empty(merge.as_str())
        });
        let mut flows = Vec::new();
        let mut branches = Vec::new();
        let mut direct = false;
        let d = b.default as usize % b.branches.len();
        for (k, elems) in b.branches.iter().enumerate() {
            // Two empty branches would be two flows from the split to the merge.
            let (entry, inside) = if elems.is_empty() && direct {
                let filler = Elem::Task {
                    human: false,
                    looping: false,
                };
                self.seq(&[filler], &merge)
            } else {
                direct |= elems.is_empty();
                self.seq(elems, &merge)
            };
            let guard = |g: u8| Expression::cel(OR_GUARDS[g as usize % OR_GUARDS.len()]);
            flows.push(if k == d {
                Flow {
                    is_default: true,
                    predicate: b.default_guard.map(guard),
                    ..flow(&entry)
                }
            } else {
                Flow {
                    predicate: Some(guard(b.guards[k % b.guards.len()])),
                    ..flow(&entry)
                }
            });
            branches.push((format!("{split}__{entry}"), inside));
        }
        self.tasks.push(Task {
            split: Or,
            flows,
            ..Task::empty(split.as_str())
        });
        self.blocks.push(BlockInfo {
            split: split.clone(),
            merge,
            branches,
        });
        split
    }

    fn check(&self, events: &[Event]) -> Check {
        let completions = |id: &str| -> Vec<(usize, &Vec<ElementId>)> {
            events
                .iter()
                .enumerate()
                .filter_map(|(i, e)| match &e.kind {
                    EventKind::TaskCompleted { task, produced } if task.task.as_str() == id => {
                        Some((i, produced))
                    }
                    _ => None,
                })
                .collect()
        };
        for blk in &self.blocks {
            let splits = completions(&blk.split);
            let merges = completions(&blk.merge);
            prop_assert!(splits.len() <= 1);
            prop_assert_eq!(
                merges.len(),
                splits.len(),
                "{} fired {} times",
                blk.merge,
                merges.len()
            );
            let Some((_, produced)) = splits.first() else {
                continue;
            };
            let merged_at = merges.first().map_or(0, |m| m.0);
            for (cond, inside) in &blk.branches {
                let chosen = produced.iter().any(|c| c.as_str() == cond);
                let entry = cond
                    .strip_prefix(&format!("{}__", blk.split))
                    .unwrap_or_default();
                if chosen && entry != blk.merge {
                    let runs = completions(entry).len();
                    prop_assert!(runs >= 1, "chosen branch {} did not run", entry);
                }
                for t in inside {
                    let done = completions(t);
                    if !chosen {
                        prop_assert!(done.is_empty(), "{} ran in a branch not chosen", t);
                    }
                    for (at, _) in done {
                        prop_assert!(at < merged_at, "{} merged before {} finished", blk.merge, t);
                    }
                }
            }
        }
        Ok(())
    }
}

// ---------------------------------------------------------------------------------------------
// Minimal cases the properties found

/// start -> a (human; fails into `end`) / b -> end. A routed failure that puts a token in the
/// root net's output condition ends the case, as a completion would.
#[test]
fn failure_flow_into_the_output_condition_completes_the_case() {
    let a = Task {
        binding: human_binding(false),
        flows: vec![
            flow("b"),
            Flow {
                on_failure: true,
                ..flow("end")
            },
        ],
        ..Task::empty("a")
    };
    let b = Task {
        flows: vec![flow("end")],
        ..Task::empty("b")
    };
    let net = Net {
        id: NetId::new("n"),
        name: None,
        input_condition: Condition {
            id: "start".into(),
            name: None,
            flows: vec![flow("a")],
        },
        output_condition: Condition {
            id: "end".into(),
            name: None,
            flows: vec![],
        },
        conditions: vec![],
        tasks: vec![a, b],
    };
    let wf = Workflow::new(spec(vec![net])).expect("valid");
    let mut d = Driver::start(&wf, Map::new()).expect("start");
    let (item, _) = d.humans()[0].clone();
    let fail = Input::FailWorkItem {
        item,
        reason: "gave up".into(),
    };
    d.apply(fail, false, 1).expect("invariants hold");
    assert_eq!(d.case.status(), CaseStatus::Completed);
}

/// A composite task whose sub-net ran to its end: `marking` lists live net instances only,
/// so the ended sub-net's token in its output condition is not reported.
#[test]
fn marking_leaves_out_ended_sub_nets() {
    let net = |id: &str, task: Task| Net {
        id: NetId::new(id),
        name: None,
        input_condition: Condition {
            id: format!("{id}_start").as_str().into(),
            name: None,
            flows: vec![flow(task.id.as_str())],
        },
        output_condition: Condition {
            id: format!("{id}_end").as_str().into(),
            name: None,
            flows: vec![],
        },
        conditions: vec![],
        tasks: vec![task],
    };
    let composite = Task {
        decomposition: Some(NetId::new("sub")),
        flows: vec![flow("wait")],
        ..Task::empty("composite")
    };
    let mut root = net("root", composite);
    root.tasks.push(Task {
        binding: human_binding(false),
        flows: vec![flow("root_end")],
        ..Task::empty("wait")
    });
    let inner = Task {
        flows: vec![flow("sub_end")],
        ..Task::empty("inner")
    };
    let wf = Workflow::new(spec(vec![root, net("sub", inner)])).expect("valid");
    let d = Driver::start(&wf, Map::new()).expect("start");
    assert_eq!(
        d.case.marking(&wf),
        vec![(0, ElementId::new("composite__wait"), 1)]
    );
}
