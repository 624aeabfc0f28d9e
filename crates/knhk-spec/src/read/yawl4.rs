//! Reads a specification written in the YAWL 4 vocabulary (with knhk extension terms).

use std::collections::{BTreeSet, HashMap};

use knhk_core::model::{
    Condition, ControlType, CreationMode, Expression, Flow, MultipleInstance, Net, Task, TaskTimer,
    TimerTrigger,
};
use knhk_core::{ElementId, NetId, Specification};

use crate::error::ElementViolation;
use crate::graph::{Node, Object};
use crate::predicate::Kind;
use crate::read::cx::{Cx, Owner};
use crate::read::knhk::{read_task_extension, read_timer_action};
use crate::read::{IriMap, Read, Registry, element_id};
use crate::vocab::{YAWL, knhk, yawl};

/// The nodes of one net, before they are read.
#[derive(Debug)]
struct NetNodes {
    node: Node,
    owner: Owner,
    id: String,
    input: Option<Node>,
    output: Option<Node>,
    conditions: Vec<Node>,
    tasks: Vec<Node>,
}

/// Reads the specification `spec`, or when there is none, the file's single `yawl:Net`.
pub(crate) fn read(cx: &mut Cx<'_>, spec: Option<&Node>) -> Option<Read> {
    let graph = cx.graph;
    let mut iris = IriMap::default();
    let (spec_owner, net_nodes) = match spec {
        Some(spec) => {
            let owner = Owner::new(spec, spec.label());
            let nets: Vec<Node> = cx
                .nodes(spec, &yawl("hasDecomposition"), &owner)
                .into_iter()
                .filter(|d| is_net(cx, d))
                .collect();
            (owner, nets)
        }
        None => {
            let nets = graph.typed(&yawl("Net"));
            let owner = match nets.first() {
                Some(net) => Owner::new(net, net.label()),
                None => return None,
            };
            (owner, nets)
        }
    };
    if net_nodes.is_empty() {
        cx.problem(
            &spec_owner,
            "the specification has no net (yawl:hasDecomposition)",
        );
        return None;
    }

    // First pass: every net and element gets its id, so that references can resolve.
    let mut registry = Registry::default();
    let mut nets = Vec::new();
    let mut net_ids: HashMap<Node, NetId> = HashMap::new();
    for node in &net_nodes {
        let provisional = Owner::new(node, node.label());
        let id = element_id(cx, node, &provisional)?;
        let owner = Owner::new(node, id.clone());
        iris.insert(&id, node);
        if net_ids.values().any(|n| n.as_str() == id) {
            cx.problem(&owner, format!("net id {id:?} is used by another net"));
        }
        net_ids.insert(node.clone(), NetId::new(&id));
        let one = |cx: &mut Cx<'_>, predicate: &str, what: &str| {
            let found = cx.nodes(node, &yawl(predicate), &owner);
            match found.as_slice() {
                [only] => Some(only.clone()),
                [] => {
                    cx.problem(&owner, format!("the net has no {what} (yawl:{predicate})"));
                    None
                }
                more => {
                    cx.problem(
                        &owner,
                        format!("the net has {} {what}s; a net has exactly one", more.len()),
                    );
                    None
                }
            }
        };
        let input = one(cx, "hasInputCondition", "input condition");
        let output = one(cx, "hasOutputCondition", "output condition");
        let conditions = cx.nodes(node, &yawl("hasCondition"), &owner);
        let tasks = cx.nodes(node, &yawl("hasTask"), &owner);
        for element in input.iter().chain(&output).chain(&conditions).chain(&tasks) {
            let provisional = Owner::new(element, element.label());
            if let Some(id) = element_id(cx, element, &provisional) {
                let owner = Owner::new(element, id.clone());
                registry.register(cx, element, &id, &owner);
                iris.insert(&id, element);
            }
        }
        nets.push(NetNodes {
            node: node.clone(),
            owner,
            id,
            input,
            output,
            conditions,
            tasks,
        });
    }

    let root = root_net(cx, &nets, &spec_owner);

    // Second pass: read every element, resolving references through the registry.
    let mut out = Vec::new();
    for net in &nets {
        let input = net.input.as_ref().and_then(|n| condition(cx, &registry, n));
        let output = net
            .output
            .as_ref()
            .and_then(|n| condition(cx, &registry, n));
        let conditions: Vec<Condition> = net
            .conditions
            .iter()
            .filter_map(|n| condition(cx, &registry, n))
            .collect();
        let tasks: Vec<Task> = net
            .tasks
            .iter()
            .filter_map(|n| task(cx, &registry, &net_ids, n))
            .collect();
        let name = cx.literal(&net.node, &yawl("name"), &net.owner);
        if let (Some(input_condition), Some(output_condition)) = (input, output) {
            let mut read = Net {
                id: NetId::new(&net.id),
                name,
                input_condition,
                output_condition,
                conditions,
                tasks,
            };
            let types = typed_variables(cx, net);
            for (element, variable, kind) in crate::predicate::rewrite_net(&mut read, &types) {
                let note = ElementViolation {
                    iri: iris.iri_of(&element),
                    element,
                    rule: crate::predicate::note(&variable, kind),
                };
                if !cx.notes.contains(&note) {
                    cx.notes.push(note);
                }
            }
            out.push(read);
        }
    }

    let root = root?;
    let mut initial_data = serde_json::Map::new();
    let mut declared = BTreeSet::new();
    for net in &nets {
        variables(cx, net, net.id == root.as_str(), &mut initial_data);
        declared.extend(declared_names(cx, net));
    }
    let (id, name, version, documentation) = match spec {
        Some(spec) => {
            let id = cx
                .literal(spec, &yawl("uri"), &spec_owner)
                .unwrap_or_else(|| spec.label());
            (
                id,
                cx.literal(spec, &yawl("name"), &spec_owner),
                cx.literal(spec, &yawl("version"), &spec_owner),
                cx.literal(spec, &yawl("documentation"), &spec_owner),
            )
        }
        None => (spec_owner.iri.clone(), None, None, None),
    };
    if let Some(spec) = spec {
        iris.insert(&id, spec);
    }
    Some(Read {
        spec: Specification {
            id,
            name,
            version,
            documentation,
            root_net: root,
            nets: out,
            initial_data,
        },
        iris,
        notes: Vec::new(),
        variables: Some(declared),
    })
}

/// Returns the names of the variables and parameters a net declares, initial value or not.
fn declared_names(cx: &mut Cx<'_>, net: &NetNodes) -> Vec<String> {
    let mut names = Vec::new();
    for kind in [
        "hasLocalVariable",
        "hasInputParameter",
        "hasOutputParameter",
    ] {
        for var in cx.nodes(&net.node, &yawl(kind), &net.owner) {
            names.extend(cx.literal(&var, &yawl("name"), &net.owner));
        }
    }
    names
}

/// The variables and parameters a net declares with a `yawl:type` of `boolean` or a number
/// type, which its XPath predicates compare as such (see [`crate::predicate`]).
fn typed_variables(cx: &mut Cx<'_>, net: &NetNodes) -> HashMap<String, Kind> {
    let mut types = HashMap::new();
    for term in [
        "hasLocalVariable",
        "hasInputParameter",
        "hasOutputParameter",
    ] {
        for var in cx.nodes(&net.node, &yawl(term), &net.owner) {
            let kind = cx
                .literal(&var, &yawl("type"), &net.owner)
                .and_then(|t| Kind::of(&t));
            if let Some(kind) = kind
                && let Some(name) = cx.literal(&var, &yawl("name"), &net.owner)
            {
                types.insert(name, kind);
            }
        }
    }
    types
}

/// Reads the initial values of a net's local variables (`yawl:hasLocalVariable` with
/// `yawl:initialValue`): the root net's become the data a case starts with; any other, or one
/// that cannot be converted, is refused naming the variable.
fn variables(
    cx: &mut Cx<'_>,
    net: &NetNodes,
    root: bool,
    data: &mut serde_json::Map<String, serde_json::Value>,
) {
    for var in cx.nodes(&net.node, &yawl("hasLocalVariable"), &net.owner) {
        let Some(value) = cx.literal(&var, &yawl("initialValue"), &net.owner) else {
            continue;
        };
        let Some(name) = cx.literal(&var, &yawl("name"), &net.owner) else {
            cx.problem(
                &net.owner,
                "a yawl:hasLocalVariable with a yawl:initialValue has no yawl:name",
            );
            continue;
        };
        let ty = cx
            .literal(&var, &yawl("type"), &net.owner)
            .unwrap_or_default();
        // As in YAWL XML: an empty initial value declares none, except an empty string on the
        // root net.
        if value.trim().is_empty() && (!root || ty.rsplit(':').next() != Some("string")) {
            continue;
        }
        if !root {
            cx.problem(
                &net.owner,
                format!("variable {name:?} of the sub-net {:?} has an initial value, which knhk does not apply: a case's data starts from the root net's variables only", net.id),
            );
            continue;
        }
        let namespace = cx.literal(&var, &yawl("namespace"), &net.owner);
        let converted = if namespace
            .as_deref()
            .is_some_and(|ns| ns != crate::variables::XSD)
        {
            Err(format!(
                "its type {ty:?} is not an XML Schema simple type knhk can convert to case data"
            ))
        } else {
            crate::variables::initial_value(&ty, &value)
        };
        match converted {
            Ok(v) => {
                if data.insert(name.clone(), v).is_some() {
                    cx.problem(&net.owner, format!("variable {name:?} is declared twice"));
                }
            }
            Err(why) => cx.problem(
                &net.owner,
                format!("the initial value of variable {name:?} cannot be applied: {why}"),
            ),
        }
    }
}

/// Tells whether a decomposition is a net (rather than, say, a web service gateway).
fn is_net(cx: &Cx<'_>, node: &Node) -> bool {
    cx.graph.has_type(node, &yawl("Net"))
        || cx
            .graph
            .objects(node, &yawl("hasInputCondition"))
            .next()
            .is_some()
}

fn root_net(cx: &mut Cx<'_>, nets: &[NetNodes], spec_owner: &Owner) -> Option<NetId> {
    let mut flagged = Vec::new();
    for net in nets {
        if cx.boolean(&net.node, &yawl("isRootNet"), &net.owner) == Some(true) {
            flagged.push(net);
        }
    }
    match (flagged.as_slice(), nets) {
        ([root], _) => Some(NetId::new(&root.id)),
        ([], [root]) => Some(NetId::new(&root.id)),
        ([], _) => {
            cx.problem(
                spec_owner,
                "the specification has several nets and none is marked yawl:isRootNet true",
            );
            None
        }
        (more, _) => {
            cx.problem(
                spec_owner,
                format!(
                    "{} nets are marked yawl:isRootNet true; one is the root",
                    more.len()
                ),
            );
            None
        }
    }
}

fn owner_of(registry: &Registry, node: &Node) -> Owner {
    Owner::new(node, registry.id(node).unwrap_or_default().to_owned())
}

fn condition(cx: &mut Cx<'_>, registry: &Registry, node: &Node) -> Option<Condition> {
    let id = registry.id(node)?;
    let owner = owner_of(registry, node);
    Some(Condition {
        id: ElementId::new(id),
        name: cx.literal(node, &yawl("name"), &owner),
        flows: flows(cx, registry, node, &owner),
    })
}

fn flows(cx: &mut Cx<'_>, registry: &Registry, node: &Node, owner: &Owner) -> Vec<Flow> {
    let mut out = Vec::new();
    for target in cx.nodes(node, &yawl("flowsInto"), owner) {
        // `yawl:flowsInto <#task>` straight to an element is a flow without predicate.
        if let Some(id) = registry.id(&target) {
            out.push(Flow {
                to: ElementId::new(id),
                predicate: None,
                ordering: None,
                is_default: false,
                on_failure: false,
            });
            continue;
        }
        if let Some(flow) = flow(cx, registry, &target, owner) {
            out.push(flow);
        }
    }
    out
}

fn flow(cx: &mut Cx<'_>, registry: &Registry, node: &Node, owner: &Owner) -> Option<Flow> {
    let next = cx.nodes(node, &yawl("nextElementRef"), owner);
    let to = match next.as_slice() {
        [to] => registry.resolve(cx, to, "a flow (yawl:nextElementRef)", owner),
        [] => {
            let rule = if cx.graph.is_described(node) {
                format!("flow <{}> has no yawl:nextElementRef", node.label())
            } else {
                format!(
                    "yawl:flowsInto refers to <{}>, which is no flow, task or condition",
                    node.label()
                )
            };
            cx.problem(owner, rule);
            None
        }
        _ => {
            cx.problem(
                owner,
                format!(
                    "flow <{}> has more than one yawl:nextElementRef",
                    node.label()
                ),
            );
            None
        }
    };
    let mut ordering = cx.number::<i64>(node, &yawl("ordering"), owner);
    let mut predicate = None;
    if let Some(object) = cx.graph.objects(node, &yawl("hasPredicate")).next() {
        match object {
            Object::Literal { value, .. } => predicate = Some(Expression::xpath(value.clone())),
            Object::Node(p) => {
                let p = p.clone();
                predicate = cx.literal(&p, &yawl("query"), owner).map(Expression::xpath);
                if predicate.is_none() {
                    cx.problem(
                        owner,
                        format!("predicate <{}> has no yawl:query", p.label()),
                    );
                }
                if let Some(n) = cx.number::<i64>(&p, &yawl("ordering"), owner) {
                    if ordering.is_some_and(|o| o != n) {
                        cx.problem(owner, "a flow and its predicate give different orderings");
                    }
                    ordering = Some(n);
                }
            }
        }
        if cx
            .graph
            .objects(node, &yawl("hasPredicate"))
            .nth(1)
            .is_some()
        {
            cx.problem(owner, "a flow has more than one yawl:hasPredicate");
        }
    }
    if let Some(cel) = cx.cel(node, &knhk("predicate"), owner) {
        if predicate.is_some() {
            cx.problem(
                owner,
                "a flow has both yawl:hasPredicate and knhk:predicate",
            );
        }
        predicate = Some(cel);
    }
    let is_default = cx
        .boolean(node, &yawl("isDefaultFlow"), owner)
        .unwrap_or(false);
    let on_failure = cx.boolean(node, &knhk("onFailure"), owner).unwrap_or(false);
    Some(Flow {
        to: to?,
        predicate,
        ordering,
        is_default,
        on_failure,
    })
}

/// Reads `yawl:hasJoin` or `yawl:hasSplit` (XOR when absent).
pub(crate) fn control_type(
    cx: &mut Cx<'_>,
    node: &Node,
    predicate: &str,
    namespace: &str,
    owner: &Owner,
) -> ControlType {
    cx.choice(
        node,
        predicate,
        &[namespace],
        &[
            ("ControlTypeAnd", ControlType::And),
            ("ControlTypeXor", ControlType::Xor),
            ("ControlTypeOr", ControlType::Or),
        ],
        owner,
    )
    .unwrap_or(ControlType::Xor)
}

fn task(
    cx: &mut Cx<'_>,
    registry: &Registry,
    nets: &HashMap<Node, NetId>,
    node: &Node,
) -> Option<Task> {
    let id = registry.id(node)?;
    let owner = owner_of(registry, node);
    let mut task = Task::empty(id);
    task.name = cx.literal(node, &yawl("name"), &owner);
    task.join = control_type(cx, node, &yawl("hasJoin"), YAWL, &owner);
    task.split = control_type(cx, node, &yawl("hasSplit"), YAWL, &owner);
    task.flows = flows(cx, registry, node, &owner);
    for target in cx.nodes(node, &yawl("hasRemovesTokens"), &owner) {
        if let Some(id) = registry.resolve(cx, &target, "yawl:hasRemovesTokens", &owner)
            && !task.cancellation_set.contains(&id)
        {
            task.cancellation_set.push(id);
        }
    }
    for removes in cx.nodes(node, &yawl("hasRemovesTokensFromFlow"), &owner) {
        let mut end = |predicate: &str| {
            let target = cx.node(&removes, &yawl(predicate), &owner);
            if target.is_none() {
                cx.problem(
                    &owner,
                    format!("a yawl:hasRemovesTokensFromFlow has no yawl:{predicate}"),
                );
            }
            registry.resolve(cx, &target?, "yawl:hasRemovesTokensFromFlow", &owner)
        };
        let (Some(from), Some(to)) = (end("flowSource"), end("flowDestination")) else {
            continue;
        };
        // The implicit condition of a flow between two tasks: knhk names it `<from>__<to>`.
        let implicit = ElementId::new(format!("{from}__{to}"));
        if !task.cancellation_set.contains(&implicit) {
            task.cancellation_set.push(implicit);
        }
    }
    task.multiple_instance = multiple_instance(cx, node, &owner);
    if let Some(target) = cx.node(node, &yawl("hasDecomposesTo"), &owner) {
        match nets.get(&target) {
            Some(net) => task.decomposition = Some(net.clone()),
            None if cx.graph.has_type(&target, &yawl("Net")) => cx.problem(
                &owner,
                format!(
                    "decomposes to net <{}>, which is not a yawl:hasDecomposition of the specification",
                    target.label()
                ),
            ),
            // A web service gateway or other atomic decomposition: what performs the work is
            // given by knhk terms instead.
            None => {}
        }
    }
    if let Some(timer) = cx.node(node, &yawl("hasTimer"), &owner) {
        task.timer = self::timer(cx, &timer, &owner);
    }
    read_task_extension(cx, node, &owner, &mut task);
    Some(task)
}

fn multiple_instance(cx: &mut Cx<'_>, node: &Node, owner: &Owner) -> Option<MultipleInstance> {
    let typed = cx.graph.has_type(node, &yawl("MultipleInstanceTask"));
    let minimum = cx.number::<u32>(node, &yawl("minimum"), owner);
    let maximum = match cx.literal(node, &yawl("maximum"), owner) {
        Some(m) if m.trim() == "unbounded" || m.trim() == "infinite" => None,
        Some(_) => cx.number::<u32>(node, &yawl("maximum"), owner),
        None => None,
    };
    let threshold = cx.number::<u32>(node, &yawl("threshold"), owner);
    let creation = cx.choice(
        node,
        &yawl("hasCreationMode"),
        &[YAWL],
        &[
            ("CreationModeStatic", CreationMode::Static),
            ("CreationModeDynamic", CreationMode::Dynamic),
        ],
        owner,
    );
    let any = minimum.is_some() || maximum.is_some() || threshold.is_some() || creation.is_some();
    if !typed && !any {
        return None;
    }
    Some(MultipleInstance {
        minimum: minimum.unwrap_or(1),
        maximum,
        // A threshold of 0 cannot be met by completing instances; it means "no threshold".
        threshold: threshold.filter(|t| *t > 0),
        creation: creation.unwrap_or(CreationMode::Static),
        split: None,
        item_variable: "item".to_owned(),
        join_variable: None,
    })
}

fn timer(cx: &mut Cx<'_>, node: &Node, owner: &Owner) -> Option<TaskTimer> {
    let trigger = cx
        .choice(
            node,
            &yawl("hasTrigger"),
            &[YAWL],
            &[
                ("TimerTriggerOnEnabled", TimerTrigger::OnEnabled),
                ("TimerTriggerOnExecuting", TimerTrigger::OnStarted),
            ],
            owner,
        )
        .unwrap_or(TimerTrigger::OnEnabled);
    let action = read_timer_action(cx, node, owner);
    let params = cx.node(node, &yawl("hasDurationParams"), owner);
    let duration = cx.literal(node, &yawl("duration"), owner);
    let duration_ms = match (params, duration) {
        (Some(params), None) => {
            let ticks = cx.number::<u64>(&params, &yawl("ticks"), owner);
            let unit = cx.choice(
                &params,
                &yawl("hasInterval"),
                &[YAWL],
                &[
                    ("TimerIntervalMsec", 1u64),
                    ("TimerIntervalSec", 1_000),
                    ("TimerIntervalMin", 60_000),
                    ("TimerIntervalHour", 3_600_000),
                    ("TimerIntervalDay", 86_400_000),
                    ("TimerIntervalWeek", 604_800_000),
                ],
                owner,
            );
            if ticks.is_none() {
                cx.problem(owner, "the timer's duration has no yawl:ticks");
            }
            if cx
                .graph
                .objects(&params, &yawl("hasInterval"))
                .next()
                .is_none()
            {
                cx.problem(owner, "the timer's duration has no yawl:hasInterval");
            }
            match ticks?.checked_mul(unit?) {
                Some(ms) => Some(ms),
                None => {
                    cx.problem(owner, "the timer's duration is too long");
                    None
                }
            }
        }
        (None, Some(text)) => match crate::duration::iso8601_ms(&text) {
            Some(ms) => Some(ms),
            None => {
                cx.problem(
                    owner,
                    format!("yawl:duration {text:?} is not a duration like \"PT1H30M\""),
                );
                None
            }
        },
        (None, None) => {
            cx.problem(
                owner,
                "the timer has no yawl:hasDurationParams or yawl:duration",
            );
            None
        }
        (Some(_), Some(_)) => {
            cx.problem(
                owner,
                "the timer has both yawl:hasDurationParams and yawl:duration",
            );
            None
        }
    };
    Some(TaskTimer {
        trigger,
        duration_ms: duration_ms?,
        action,
    })
}
