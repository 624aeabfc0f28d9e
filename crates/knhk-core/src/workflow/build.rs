//! Validation and indexing of one net: arcs (with implicit conditions), reachability, joins and
//! splits, cancellation sets, multiple instances, decompositions, bindings, expressions.

use std::collections::HashMap;

use super::*;
use crate::error::Violation;
use crate::index::Idx;

pub(super) fn violation(v: &mut Vec<Violation>, element: &str, rule: impl Into<String>) {
    v.push(Violation {
        element: element.to_string(),
        rule: rule.into(),
    });
}

enum Node {
    Place(PlaceIx),
    Task(TaskIx),
}

/// Returns task `t` of the net as written: tasks are indexed in the order the net lists them.
fn model_task(net: &Net, t: TaskIx) -> Result<&crate::model::Task, Error> {
    Error::misfit(net.tasks.get(t.raw() as usize), TaskIx::WHAT, t.raw())
}

/// Validates and indexes one net. Rules it breaks go to `v`, findings that do not stop it
/// from running to `notes`. An `Err` is an index this function made that does not fit its
/// own vectors: a defect of validation, which [`super::Workflow::new`] reports as a violation
/// of the net rather than panicking.
pub(super) fn build_net(
    net: &Net,
    root: &NetId,
    net_index: &HashMap<&NetId, NetIx>,
    v: &mut Vec<Violation>,
    notes: &mut Vec<Violation>,
) -> Result<NetDef, Error> {
    let mut places: IxVec<PlaceIx, PlaceDef> = IxVec::default();
    let mut place_index: HashMap<ElementId, PlaceIx, FxBuild> = HashMap::default();
    let mut task_index: HashMap<ElementId, TaskIx, FxBuild> = HashMap::default();
    let mut ids = std::collections::HashSet::new();
    fn add_place(
        places: &mut IxVec<PlaceIx, PlaceDef>,
        index: &mut HashMap<ElementId, PlaceIx, FxBuild>,
        id: &ElementId,
        implicit: bool,
    ) -> PlaceIx {
        let idx = places.push(PlaceDef {
            id: id.clone(),
            consumers: Vec::new(),
            implicit,
        });
        index.insert(id.clone(), idx);
        idx
    }
    for c in [&net.input_condition, &net.output_condition]
        .into_iter()
        .chain(&net.conditions)
    {
        if !ids.insert(c.id.clone()) {
            violation(v, c.id.as_str(), "element id is used twice in the net");
            continue;
        }
        add_place(&mut places, &mut place_index, &c.id, false);
    }
    for (i, t) in net.tasks.iter().enumerate() {
        if !ids.insert(t.id.clone()) {
            violation(v, t.id.as_str(), "element id is used twice in the net");
            continue;
        }
        task_index.insert(t.id.clone(), TaskIx::new(i as u32));
    }
    fn find(
        places: &HashMap<ElementId, PlaceIx, FxBuild>,
        tasks: &HashMap<ElementId, TaskIx, FxBuild>,
        id: &ElementId,
    ) -> Option<Node> {
        match places.get(id) {
            Some(&p) => Some(Node::Place(p)),
            None => tasks.get(id).map(|&t| Node::Task(t)),
        }
    }

    // Arcs: place -> task (inputs), task -> place (outputs), with implicit places.
    let mut inputs: IxVec<TaskIx, Vec<PlaceIx>> = IxVec::filled(Vec::new(), net.tasks.len());
    let mut outputs: IxVec<TaskIx, Vec<(PlaceIx, &Flow, usize)>> =
        IxVec::filled(Vec::new(), net.tasks.len());
    let mut implicit: Vec<(ElementId, TaskIx, TaskIx, usize)> = Vec::new();
    for c in [&net.input_condition, &net.output_condition]
        .into_iter()
        .chain(&net.conditions)
    {
        let Some(&p) = place_index.get(&c.id) else {
            continue;
        };
        if p == OUTPUT && !c.flows.is_empty() {
            violation(
                v,
                c.id.as_str(),
                "the output condition has an outgoing flow",
            );
        }
        for f in &c.flows {
            match find(&place_index, &task_index, &f.to) {
                Some(Node::Task(t)) => inputs.at_mut(t)?.push(p),
                Some(Node::Place(_)) => violation(
                    v,
                    c.id.as_str(),
                    format!(
                        "flow to condition {} (a condition may only flow into tasks)",
                        f.to
                    ),
                ),
                None => violation(
                    v,
                    c.id.as_str(),
                    format!("flow to unknown element {}", f.to),
                ),
            }
            if f.predicate.is_some() {
                violation(
                    v,
                    c.id.as_str(),
                    "a flow out of a condition cannot have a predicate",
                );
            }
            if f.on_failure {
                violation(v, c.id.as_str(), "only a task's flow can be a failure flow");
            }
        }
    }
    for (i, t) in net.tasks.iter().enumerate() {
        if !task_index.contains_key(&t.id) {
            continue;
        }
        let ti = TaskIx::new(i as u32);
        for (fi, f) in t.flows.iter().enumerate() {
            match find(&place_index, &task_index, &f.to) {
                Some(Node::Place(p)) => {
                    if p == INPUT {
                        violation(v, t.id.as_str(), "flow into the input condition");
                    }
                    let outs = outputs.at_mut(ti)?;
                    if outs.iter().any(|&(q, _, _)| q == p) {
                        violation(v, t.id.as_str(), format!("two flows to {}", f.to));
                    }
                    outs.push((p, f, fi));
                }
                Some(Node::Task(u)) => implicit.push((t.id.clone(), ti, u, fi)),
                None => violation(
                    v,
                    t.id.as_str(),
                    format!("flow to unknown element {}", f.to),
                ),
            }
        }
    }
    for (from, ti, u, fi) in implicit {
        let to = &model_task(net, u)?.id;
        let id = ElementId::new(format!("{from}__{to}"));
        if place_index.contains_key(&id) {
            violation(
                v,
                from.as_str(),
                format!("two flows to {to}, or an element named {id}"),
            );
            continue;
        }
        let flow = Error::misfit(model_task(net, ti)?.flows.get(fi), "flow", fi as u32)?;
        let p = add_place(&mut places, &mut place_index, &id, true);
        inputs.at_mut(u)?.push(p);
        outputs.at_mut(ti)?.push((p, flow, fi));
    }
    for (ti, ins) in inputs.iter_enumerated() {
        for &p in ins {
            places.at_mut(p)?.consumers.push(ti);
        }
    }

    // Reachability: every node on a path from the input to the output condition.
    let n_places = places.len();
    let mut fwd_place: IxVec<PlaceIx, bool> = IxVec::filled(false, n_places);
    let mut fwd_task: IxVec<TaskIx, bool> = IxVec::filled(false, net.tasks.len());
    let mut stack = vec![Node::Place(INPUT)];
    while let Some(n) = stack.pop() {
        match n {
            Node::Place(p) => {
                if std::mem::replace(fwd_place.at_mut(p)?, true) {
                    continue;
                }
                for &t in &places.at(p)?.consumers {
                    stack.push(Node::Task(t));
                }
            }
            Node::Task(t) => {
                if std::mem::replace(fwd_task.at_mut(t)?, true) {
                    continue;
                }
                for &(p, _, _) in outputs.at(t)? {
                    stack.push(Node::Place(p));
                }
            }
        }
    }
    let mut bwd_place: IxVec<PlaceIx, bool> = IxVec::filled(false, n_places);
    let mut bwd_task: IxVec<TaskIx, bool> = IxVec::filled(false, net.tasks.len());
    let mut producers: IxVec<PlaceIx, Vec<TaskIx>> = IxVec::filled(Vec::new(), n_places);
    for (t, outs) in outputs.iter_enumerated() {
        for &(p, _, _) in outs {
            producers.at_mut(p)?.push(t);
        }
    }
    // Tasks without outgoing flows end a thread of control on purpose (implicit
    // termination): they count as ends like the output condition.
    let mut stack = vec![Node::Place(OUTPUT)];
    for (t, task) in net.tasks.iter().enumerate() {
        if task.flows.is_empty() {
            stack.push(Node::Task(TaskIx::new(t as u32)));
        }
    }
    while let Some(n) = stack.pop() {
        match n {
            Node::Place(p) => {
                if std::mem::replace(bwd_place.at_mut(p)?, true) {
                    continue;
                }
                for &t in producers.at(p)? {
                    stack.push(Node::Task(t));
                }
            }
            Node::Task(t) => {
                if std::mem::replace(bwd_task.at_mut(t)?, true) {
                    continue;
                }
                for &p in inputs.at(t)? {
                    stack.push(Node::Place(p));
                }
            }
        }
    }
    if places.at(INPUT)?.consumers.is_empty() {
        violation(
            v,
            net.input_condition.id.as_str(),
            "the input condition has no outgoing flow",
        );
    }
    if producers.at(OUTPUT)?.is_empty() {
        violation(
            v,
            net.output_condition.id.as_str(),
            "the output condition has no incoming flow",
        );
    }
    for (p, place) in places.iter_enumerated() {
        if place.implicit || p == INPUT || p == OUTPUT {
            continue;
        }
        if !*fwd_place.at(p)? {
            violation(
                v,
                place.id.as_str(),
                "not reachable from the input condition",
            );
        } else if !*bwd_place.at(p)? {
            violation(
                v,
                place.id.as_str(),
                "no path from here to the output condition",
            );
        }
    }
    for (t, task) in net.tasks.iter().enumerate() {
        if !task_index.contains_key(&task.id) {
            continue;
        }
        let t = TaskIx::new(t as u32);
        if inputs.at(t)?.is_empty() {
            violation(v, task.id.as_str(), "task has no incoming flow");
        } else if !*fwd_task.at(t)? {
            violation(
                v,
                task.id.as_str(),
                "not reachable from the input condition",
            );
        }
        if !*bwd_task.at(t)? {
            violation(
                v,
                task.id.as_str(),
                "no path from here to the output condition",
            );
        }
    }

    let mut tasks: IxVec<TaskIx, TaskDef> = IxVec::with_capacity(net.tasks.len());
    let mut or_joins = Vec::new();
    for (i, t) in net.tasks.iter().enumerate() {
        let ti = TaskIx::new(i as u32);
        let name = t.id.as_str();
        // A join with one incoming flow, and an AND or OR split with one outgoing flow, is
        // valid YAWL (the editor writes an AND split on every task): it behaves as the one
        // flow it has, which is taken whatever its predicate says.
        let mut join = t.join;
        if join != ControlType::Xor && inputs.at(ti)?.len() == 1 {
            violation(
                notes,
                name,
                format!(
                    "the {} join has one incoming flow and behaves as a plain one",
                    code(join)
                ),
            );
            join = ControlType::Xor;
        }
        let failure_flows = t.flows.iter().filter(|f| f.on_failure).count();
        if failure_flows > 1 {
            violation(v, name, "more than one failure flow");
        }
        if t.flows
            .iter()
            .any(|f| f.on_failure && (f.predicate.is_some() || f.is_default))
        {
            violation(
                v,
                name,
                "a failure flow cannot have a predicate or be the default flow",
            );
        }
        if failure_flows > 0 && failure_flows == t.flows.len() {
            violation(v, name, "a task needs a flow besides its failure flow");
        }
        let mut split = t.split;
        let single =
            split != ControlType::Xor && outputs.at(ti)?.len().saturating_sub(failure_flows) == 1;
        if single {
            let guarded = t
                .flows
                .iter()
                .any(|f| !f.on_failure && (f.predicate.is_some() || f.is_default));
            violation(
                notes,
                name,
                format!(
                    "the {} split has one outgoing flow and behaves as a plain one{}",
                    code(split),
                    if guarded {
                        " (taken whatever its predicate)"
                    } else {
                        ""
                    }
                ),
            );
            split = ControlType::And;
        }
        if join == ControlType::Or {
            or_joins.push(ti);
        }
        let defaults = t.flows.iter().filter(|f| f.is_default).count();
        if defaults > 1 {
            violation(v, name, "more than one default flow");
        }
        if t.split == ControlType::And
            && !single
            && t.flows
                .iter()
                .any(|f| !f.on_failure && (f.predicate.is_some() || f.is_default))
        {
            violation(
                v,
                name,
                "flows of an AND split cannot have predicates or a default flow",
            );
        }
        let mut arcs: Vec<(PlaceIx, &Flow, usize)> = outputs.at(ti)?.clone();
        // Evaluation order: by `ordering` (absent = after the ordered ones); among flows of
        // equal or no ordering, those with a predicate before those without (which always
        // hold); then definition order. The default flow last, the failure flow apart.
        arcs.sort_by_key(|&(_, f, i)| {
            (
                f.on_failure,
                f.is_default,
                f.ordering.is_none(),
                f.ordering,
                f.predicate.is_none(),
                i,
            )
        });
        let mut out_arcs = Vec::with_capacity(arcs.len());
        for (p, f, _) in arcs {
            // The one flow of a degenerate split is always taken: its predicate is not used.
            let predicate = if single && !f.on_failure {
                None
            } else {
                compile_opt(f.predicate.as_ref(), name, "predicate", v)
            };
            out_arcs.push(OutArc {
                place: p,
                predicate,
                is_default: f.is_default,
                on_failure: f.on_failure,
            });
        }
        let mut cancel_places = Vec::new();
        let mut cancel_tasks = Vec::new();
        for c in &t.cancellation_set {
            match find(&place_index, &task_index, c) {
                Some(Node::Place(p)) => cancel_places.push(p),
                Some(Node::Task(u)) => cancel_tasks.push(u),
                None => violation(
                    v,
                    name,
                    format!("cancellation set names unknown element {c}"),
                ),
            }
        }
        let mi = t.multiple_instance.as_ref().map(|mi| {
            check_mi(mi, name, v, notes);
            MiDef {
                spec: mi.clone(),
                split: compile_opt(mi.split.as_ref(), name, "split expression", v),
            }
        });
        let subnet = t.decomposition.as_ref().and_then(|d| {
            if d == root {
                violation(
                    v,
                    name,
                    "a composite task cannot decompose into the root net",
                );
                return None;
            }
            let s = net_index.get(d).copied();
            if s.is_none() {
                violation(v, name, format!("decomposes into unknown net {d}"));
            }
            s
        });
        if subnet.is_some() && t.binding != TaskBinding::Empty {
            violation(
                v,
                name,
                "a composite task cannot also have a connector, roles or a trigger",
            );
        }
        match &t.binding {
            TaskBinding::Human(h) if h.roles.is_empty() => {
                violation(v, name, "a human task needs at least one role");
            }
            TaskBinding::Connector(c) if c.connector.trim().is_empty() => {
                violation(v, name, "connector name is empty");
            }
            TaskBinding::Trigger { event, .. } if event.trim().is_empty() => {
                violation(v, name, "trigger event name is empty");
            }
            TaskBinding::Trigger { .. } if t.multiple_instance.is_some() => {
                violation(v, name, "a trigger task cannot have multiple instances");
            }
            _ => {}
        }
        if let Some(timer) = &t.timer
            && timer.action == TimerAction::Delay
            && timer.trigger != TimerTrigger::OnEnabled
        {
            violation(v, name, "a delay timer must start when the task is enabled");
        }
        tasks.push(TaskDef {
            id: t.id.clone(),
            join,
            split,
            inputs: std::mem::take(inputs.at_mut(ti)?),
            outputs: out_arcs,
            cancel_places,
            cancel_tasks,
            mi,
            subnet,
            binding: t.binding.clone(),
            timer: t.timer,
            input_mapping: compile_opt(t.input_mapping.as_ref(), name, "input mapping", v),
            output_mapping: compile_opt(t.output_mapping.as_ref(), name, "output mapping", v),
            runtime: t.runtime.clone(),
        });
    }
    let task_by_addr = tasks
        .iter_enumerated()
        .map(|(i, t)| (t.id.addr(), i))
        .collect();
    let place_by_addr = places
        .iter_enumerated()
        .map(|(i, p)| (p.id.addr(), i))
        .collect();
    let or_cones = OrCones::new(&places, &tasks, &or_joins);
    let or_exact = if or_joins.is_empty() {
        crate::orjoin::exact::Exact::default()
    } else {
        crate::orjoin::exact::Exact::new(&places, &tasks)
    };
    Ok(NetDef {
        id: net.id.clone(),
        places,
        tasks,
        task_index,
        place_index,
        task_by_addr,
        place_by_addr,
        or_joins,
        or_cones,
        or_exact,
    })
}

fn check_mi(mi: &MultipleInstance, task: &str, v: &mut Vec<Violation>, notes: &mut Vec<Violation>) {
    if mi.minimum < 1 {
        violation(v, task, "multiple-instance minimum must be at least 1");
    }
    if let Some(max) = mi.maximum {
        if max < mi.minimum {
            violation(
                v,
                task,
                format!(
                    "multiple-instance maximum {max} is below the minimum {}",
                    mi.minimum
                ),
            );
        }
        // YAWL accepts this; the threshold is capped at the number of instances at run time.
        if let Some(th) = mi.threshold
            && th > max
        {
            violation(
                notes,
                task,
                format!(
                    "multiple-instance threshold {th} is above the maximum {max}: the task completes when all its instances did"
                ),
            );
        }
    }
    if mi.threshold == Some(0) {
        violation(v, task, "multiple-instance threshold must be at least 1");
    }
    if mi.item_variable.trim().is_empty() {
        violation(v, task, "multiple-instance item variable is empty");
    }
}

fn code(control: ControlType) -> &'static str {
    match control {
        ControlType::And => "AND",
        ControlType::Xor => "XOR",
        ControlType::Or => "OR",
    }
}

fn compile_opt(
    e: Option<&Expression>,
    element: &str,
    what: &str,
    v: &mut Vec<Violation>,
) -> Option<CompiledExpr> {
    let e = e?;
    match CompiledExpr::compile(e) {
        Ok(c) => Some(c),
        Err(err) => {
            violation(v, element, format!("{what}: {err}"));
            None
        }
    }
}
