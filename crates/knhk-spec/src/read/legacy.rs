//! Reads a specification written in the legacy v2 vocabulary (`http://bitflow.ai/ontology/yawl/v2#`):
//! the specification node is also its one net, and flows are `yawl:Flow` nodes with
//! `yawl:flowsFrom` and `yawl:flowsInto`.

use knhk_core::model::{Condition, CreationMode, Flow, MultipleInstance, Net, Task};
use knhk_core::{ElementId, NetId, Specification};

use crate::graph::Node;
use crate::read::cx::{Cx, Owner};
use crate::read::knhk::read_task_extension;
use crate::read::yawl4::control_type;
use crate::read::{IriMap, Read, Registry, element_id, id_from_iri};
use crate::vocab::{LEGACY, knhk, legacy};

/// Reads the legacy specification `spec`.
pub(crate) fn read(cx: &mut Cx<'_>, spec: &Node) -> Option<Read> {
    let mut iris = IriMap::default();
    let net_id = match spec {
        Node::Iri(iri) => id_from_iri(iri).to_owned(),
        Node::Blank(_) => "net".to_owned(),
    };
    let owner = Owner::new(spec, net_id.clone());
    iris.insert(&net_id, spec);

    let one = |cx: &mut Cx<'_>, predicate: &str, what: &str| {
        let found = cx.nodes(spec, &legacy(predicate), &owner);
        match found.as_slice() {
            [only] => Some(only.clone()),
            [] => {
                cx.problem(
                    &owner,
                    format!("the specification has no {what} (yawl:{predicate})"),
                );
                None
            }
            more => {
                cx.problem(
                    &owner,
                    format!(
                        "the specification has {} {what}s; a net has exactly one",
                        more.len()
                    ),
                );
                None
            }
        }
    };
    let input = one(cx, "hasInputCondition", "input condition");
    let output = one(cx, "hasOutputCondition", "output condition");
    let conditions = cx.nodes(spec, &legacy("hasCondition"), &owner);
    let tasks = cx.nodes(spec, &legacy("hasTask"), &owner);

    let mut registry = Registry::default();
    for element in input.iter().chain(&output).chain(&conditions).chain(&tasks) {
        let provisional = Owner::new(element, element.label());
        if let Some(id) = element_id(cx, element, &provisional) {
            registry.register(cx, element, &id, &Owner::new(element, id.clone()));
            iris.insert(&id, element);
        }
    }

    let mut net_conditions: Vec<(Node, Condition)> = input
        .iter()
        .chain(&output)
        .chain(&conditions)
        .filter_map(|n| condition(cx, &registry, n).map(|c| (n.clone(), c)))
        .collect();
    let mut net_tasks: Vec<(Node, Task)> = tasks
        .iter()
        .filter_map(|n| task(cx, &registry, n).map(|t| (n.clone(), t)))
        .collect();

    // Flows listed with yawl:hasFlow first, then any other yawl:Flow, in document order.
    let mut flow_nodes = cx.nodes(spec, &legacy("hasFlow"), &owner);
    for node in cx.graph.typed(&legacy("Flow")) {
        if !flow_nodes.contains(&node) {
            flow_nodes.push(node);
        }
    }
    for node in &flow_nodes {
        let Some((from, flow)) = self::flow(cx, &registry, node, &owner) else {
            continue;
        };
        if let Some((_, c)) = net_conditions.iter_mut().find(|(n, _)| *n == from) {
            c.flows.push(flow);
        } else if let Some((_, t)) = net_tasks.iter_mut().find(|(n, _)| *n == from) {
            t.flows.push(flow);
        }
    }

    let mut net_conditions = net_conditions.into_iter().map(|(_, c)| c);
    let input_condition = input.as_ref().and_then(|_| net_conditions.next());
    let output_condition = output.as_ref().and_then(|_| net_conditions.next());
    let net = Net {
        id: NetId::new(&net_id),
        name: None,
        input_condition: input_condition?,
        output_condition: output_condition?,
        conditions: net_conditions.collect(),
        tasks: net_tasks.into_iter().map(|(_, t)| t).collect(),
    };
    let id = spec.label();
    Some(Read {
        spec: Specification {
            id,
            name: cx.literal(spec, &legacy("specName"), &owner),
            version: cx.literal(spec, &legacy("version"), &owner),
            documentation: None,
            root_net: NetId::new(&net_id),
            nets: vec![net],
            initial_data: serde_json::Map::new(),
        },
        iris,
        notes: Vec::new(),
        variables: None,
    })
}

fn owner_of(registry: &Registry, node: &Node) -> Owner {
    Owner::new(node, registry.id(node).unwrap_or_default().to_owned())
}

fn condition(cx: &mut Cx<'_>, registry: &Registry, node: &Node) -> Option<Condition> {
    let id = registry.id(node)?;
    let owner = owner_of(registry, node);
    Some(Condition {
        id: ElementId::new(id),
        name: cx.literal(node, &legacy("conditionName"), &owner),
        flows: Vec::new(),
    })
}

/// Reads a `yawl:Flow`; returns the node it leaves with the flow.
fn flow(cx: &mut Cx<'_>, registry: &Registry, node: &Node, spec: &Owner) -> Option<(Node, Flow)> {
    let flow_owner = Owner::new(node, node.label());
    let from = cx.node(node, &legacy("flowsFrom"), &flow_owner);
    let to = cx.node(node, &legacy("flowsInto"), &flow_owner);
    let (Some(from), Some(to)) = (from, to) else {
        cx.problem(
            spec,
            format!(
                "flow <{}> needs one yawl:flowsFrom and one yawl:flowsInto",
                node.label()
            ),
        );
        return None;
    };
    let owner = match registry.id(&from) {
        Some(_) => owner_of(registry, &from),
        None => {
            registry.resolve(
                cx,
                &from,
                &format!("flow <{}> (yawl:flowsFrom)", node.label()),
                spec,
            );
            return None;
        }
    };
    let to = registry.resolve(
        cx,
        &to,
        &format!("flow <{}> (yawl:flowsInto)", node.label()),
        &owner,
    )?;
    let mut predicate = cx.cel(node, &legacy("predicate"), &owner);
    if let Some(cel) = cx.cel(node, &knhk("predicate"), &owner) {
        if predicate.is_some() {
            cx.problem(&owner, "a flow has both yawl:predicate and knhk:predicate");
        }
        predicate = Some(cel);
    }
    let is_default = cx
        .boolean(node, &legacy("isDefaultFlow"), &owner)
        .unwrap_or(false);
    Some((
        from,
        Flow {
            to,
            predicate,
            ordering: None,
            is_default,
            on_failure: false,
        },
    ))
}

fn task(cx: &mut Cx<'_>, registry: &Registry, node: &Node) -> Option<Task> {
    let id = registry.id(node)?;
    let owner = owner_of(registry, node);
    if cx.graph.has_type(node, &legacy("CompositeTask")) {
        cx.problem(
            &owner,
            "composite tasks of the legacy vocabulary are not supported",
        );
    }
    let mut task = Task::empty(id);
    task.name = cx.literal(node, &legacy("taskName"), &owner);
    task.join = control_type(cx, node, &legacy("join"), LEGACY, &owner);
    task.split = control_type(cx, node, &legacy("split"), LEGACY, &owner);
    for region in cx.nodes(node, &legacy("cancellationRegion"), &owner) {
        for target in cx.nodes(&region, &legacy("cancels"), &owner) {
            if let Some(id) = registry.resolve(cx, &target, "the cancellation region", &owner)
                && !task.cancellation_set.contains(&id)
            {
                task.cancellation_set.push(id);
            }
        }
    }
    task.multiple_instance = multiple_instance(cx, node, &owner);
    if let Some(text) = cx.literal(node, &legacy("timeout"), &owner) {
        match crate::duration::short_ms(&text) {
            Some(ms) => task.runtime.timeout_ms = Some(ms),
            None => cx.problem(
                &owner,
                format!("yawl:timeout {text:?} is not a duration like \"30s\""),
            ),
        }
    }
    if let Some(retries) = cx.number::<u32>(node, &legacy("maxRetries"), &owner) {
        task.runtime.max_attempts = Some(retries.saturating_add(1));
    }
    read_task_extension(cx, node, &owner, &mut task);
    Some(task)
}

fn multiple_instance(cx: &mut Cx<'_>, node: &Node, owner: &Owner) -> Option<MultipleInstance> {
    let typed = cx.graph.has_type(node, &legacy("MultipleInstanceTask"));
    let minimum = cx.number::<u32>(node, &legacy("minInstances"), owner);
    let maximum = cx.number::<u32>(node, &legacy("maxInstances"), owner);
    let threshold = cx.number::<u32>(node, &legacy("threshold"), owner);
    let creation = match cx.literal(node, &legacy("creationMode"), owner) {
        Some(mode) => match mode.trim() {
            "static" => Some(CreationMode::Static),
            "dynamic" => Some(CreationMode::Dynamic),
            other => {
                cx.problem(
                    owner,
                    format!("yawl:creationMode must be \"static\" or \"dynamic\", not {other:?}"),
                );
                None
            }
        },
        None => None,
    };
    let any = minimum.is_some() || maximum.is_some() || threshold.is_some() || creation.is_some();
    if !typed && !any {
        return None;
    }
    Some(MultipleInstance {
        minimum: minimum.unwrap_or(1),
        maximum,
        // The legacy files write threshold 0 for "no synchronisation threshold".
        threshold: threshold.filter(|t| *t > 0),
        creation: creation.unwrap_or(CreationMode::Static),
        split: None,
        item_variable: "item".to_owned(),
        join_variable: None,
    })
}
