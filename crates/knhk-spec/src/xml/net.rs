//! Reads the nets of a YAWL XML specification: their `processControlElements` (input and
//! output condition, conditions, tasks), element ids, and the flows between elements.

use std::collections::HashMap;

use knhk_core::model::{Condition, Expression, Flow, Net, Task};
use knhk_core::{ElementId, NetId};
use roxmltree::Node;

use crate::graph;
use crate::predicate::Kind;
use crate::read::IriMap;
use crate::xml::Decomposition;
use crate::xml::cx::{Cx, Loc, text};

/// Which net each element id belongs to, so that references can be resolved.
#[derive(Debug, Default)]
pub(crate) struct Registry {
    nets: HashMap<String, usize>,
}

/// What a reference can be resolved against: the elements of every net, the net being read,
/// and the specification's decompositions.
#[derive(Debug)]
pub(crate) struct Scope<'r> {
    pub(crate) registry: &'r Registry,
    pub(crate) net: usize,
    pub(crate) net_ids: &'r [String],
    pub(crate) decompositions: &'r HashMap<String, Decomposition>,
    /// The variables the net declares as `xs:boolean` or numbers, which its predicates
    /// compare as such.
    pub(crate) types: HashMap<String, Kind>,
}

impl Scope<'_> {
    /// Resolves a reference from `loc` to the element `id` of this net, recording a problem
    /// (saying what refers: `what`) if it is no task or condition of this net.
    pub(crate) fn resolve(
        &self,
        cx: &mut Cx,
        id: &str,
        what: &str,
        loc: &Loc,
    ) -> Option<ElementId> {
        let net = self.net_ids.get(self.net).map_or("", String::as_str);
        match self.registry.nets.get(id) {
            Some(n) if *n == self.net => Some(ElementId::new(id)),
            Some(n) => {
                let other = self.net_ids.get(*n).map_or("", String::as_str);
                cx.problem(
                    loc,
                    format!("{what} refers to {id:?}, which is an element of net {other:?}, not of net {net:?}"),
                );
                None
            }
            None => {
                cx.problem(
                    loc,
                    format!(
                        "{what} refers to {id:?}, which is no task or condition of net {net:?}"
                    ),
                );
                None
            }
        }
    }
}

/// The elements of one net, before they are read.
#[derive(Debug, Default)]
struct NetElements<'a, 'i> {
    input: Option<(Node<'a, 'i>, String)>,
    output: Option<(Node<'a, 'i>, String)>,
    conditions: Vec<(Node<'a, 'i>, String)>,
    tasks: Vec<(Node<'a, 'i>, String)>,
}

const CONTROL_ELEMENTS: &[&str] = &["inputCondition", "outputCondition", "condition", "task"];
const CONDITION_CHILDREN: &[&str] = &["name", "documentation", "flowsInto"];
const FLOW_CHILDREN: &[&str] = &[
    "nextElementRef",
    "predicate",
    "isDefaultFlow",
    "documentation",
];

/// Reads every net; nets whose input or output condition is missing are left out (with a
/// problem recorded).
pub(crate) fn read_nets<'a, 'i>(
    cx: &mut Cx,
    nets: &[(String, Node<'a, 'i>)],
    decompositions: &HashMap<String, Decomposition>,
    iris: &mut IriMap,
) -> Vec<Net> {
    // First pass: every element gets its id, so that references can resolve.
    let mut registry = Registry::default();
    let mut elements = Vec::new();
    for (index, (net_id, node)) in nets.iter().enumerate() {
        let net_loc = cx.loc(net_id);
        let mut found = NetElements::default();
        let Some(pce) = cx.child(*node, "processControlElements", &net_loc) else {
            cx.problem(&net_loc, "the net has no <processControlElements>");
            elements.push(found);
            continue;
        };
        cx.only_known(pce, CONTROL_ELEMENTS, &net_loc);
        for element in pce.children().filter(|c| c.is_element()) {
            if element.tag_name().namespace() != Some(cx.ns) {
                continue;
            }
            let kind = element.tag_name().name();
            if !CONTROL_ELEMENTS.contains(&kind) {
                continue;
            }
            let Some(id) = element
                .attribute("id")
                .map(str::trim)
                .filter(|i| !i.is_empty())
            else {
                let loc = cx.anonymous(element);
                cx.problem(&loc, format!("a <{kind}> needs an id attribute"));
                continue;
            };
            let loc = cx.loc(id);
            if registry.nets.contains_key(id) {
                cx.problem(&loc, format!("element id {id:?} is used by two elements"));
                continue;
            }
            registry.nets.insert(id.to_owned(), index);
            iris.insert(id, &graph::Node::Iri(cx.iri(id)));
            let entry = (element, id.to_owned());
            let slot = match kind {
                "inputCondition" => &mut found.input,
                "outputCondition" => &mut found.output,
                "condition" => {
                    found.conditions.push(entry);
                    continue;
                }
                _ => {
                    found.tasks.push(entry);
                    continue;
                }
            };
            if slot.is_some() {
                cx.problem(
                    &net_loc,
                    format!("the net has more than one <{kind}>; a net has exactly one"),
                );
            } else {
                *slot = Some(entry);
            }
        }
        if found.input.is_none() {
            cx.problem(&net_loc, "the net has no <inputCondition>");
        }
        if found.output.is_none() {
            cx.problem(&net_loc, "the net has no <outputCondition>");
        }
        elements.push(found);
    }

    // Second pass: read every element, resolving references through the registry.
    let net_ids: Vec<String> = nets.iter().map(|(id, _)| id.clone()).collect();
    let mut out = Vec::new();
    for (index, ((net_id, node), found)) in nets.iter().zip(&elements).enumerate() {
        let scope = Scope {
            registry: &registry,
            net: index,
            net_ids: &net_ids,
            decompositions,
            types: typed_variables(cx, *node),
        };
        let input = found
            .input
            .as_ref()
            .map(|(n, id)| condition(cx, &scope, *n, id));
        let output = found
            .output
            .as_ref()
            .map(|(n, id)| condition(cx, &scope, *n, id));
        let conditions: Vec<Condition> = found
            .conditions
            .iter()
            .map(|(n, id)| condition(cx, &scope, *n, id))
            .collect();
        let tasks: Vec<Task> = found
            .tasks
            .iter()
            .map(|(n, id)| super::task::read_task(cx, &scope, *n, id))
            .collect();
        let net_loc = cx.loc(net_id);
        let name = cx.child_text(*node, "name", &net_loc);
        if let (Some(input_condition), Some(output_condition)) = (input, output) {
            out.push(Net {
                id: NetId::new(net_id),
                name,
                input_condition,
                output_condition,
                conditions,
                tasks,
            });
        }
    }
    out
}

fn condition(cx: &mut Cx, scope: &Scope<'_>, node: Node<'_, '_>, id: &str) -> Condition {
    let loc = cx.loc(id);
    cx.only_known(node, CONDITION_CHILDREN, &loc);
    Condition {
        id: ElementId::new(id),
        name: cx.child_text(node, "name", &loc),
        flows: flows(cx, scope, node, &loc),
    }
}

/// Reads the `flowsInto` children of a task or condition.
pub(crate) fn flows(cx: &mut Cx, scope: &Scope<'_>, node: Node<'_, '_>, loc: &Loc) -> Vec<Flow> {
    let mut out = Vec::new();
    for flow in cx.children(node, "flowsInto").collect::<Vec<_>>() {
        cx.only_known(flow, FLOW_CHILDREN, loc);
        let refs: Vec<Node<'_, '_>> = cx.children(flow, "nextElementRef").collect();
        let to = match refs.as_slice() {
            [next] => match next.attribute("id").map(str::trim) {
                Some(id) if !id.is_empty() => {
                    scope.resolve(cx, id, "a flow (<flowsInto><nextElementRef>)", loc)
                }
                _ => {
                    cx.problem(loc, "a flow's <nextElementRef> has no id attribute");
                    None
                }
            },
            [] => {
                cx.problem(loc, "a flow (<flowsInto>) has no <nextElementRef>");
                None
            }
            _ => {
                cx.problem(
                    loc,
                    "a flow (<flowsInto>) has more than one <nextElementRef>",
                );
                None
            }
        };
        let mut predicate = None;
        let mut ordering = None;
        if let Some(p) = cx.child(flow, "predicate", loc) {
            let query = text(p);
            let query = query.trim();
            if query.is_empty() {
                cx.problem(loc, "a flow's <predicate> is empty");
            } else {
                let (query, rewritten) = crate::predicate::compare_as_typed(query, &scope.types);
                for (variable, kind) in rewritten {
                    cx.note(loc, crate::predicate::note(&variable, kind));
                }
                predicate = Some(Expression::xpath(query));
            }
            if let Some(o) = p.attribute("ordering") {
                match o.trim().parse::<i64>() {
                    Ok(n) => ordering = Some(n),
                    Err(_) => cx.problem(
                        loc,
                        format!("a flow's predicate ordering must be a whole number, not {o:?}"),
                    ),
                }
            }
        }
        let is_default = match cx.child(flow, "isDefaultFlow", loc) {
            None => false,
            Some(d) => match text(d).trim() {
                "" | "true" | "1" => true,
                "false" | "0" => false,
                other => {
                    cx.problem(
                        loc,
                        format!("<isDefaultFlow> must be empty, true or false, not {other:?}"),
                    );
                    false
                }
            },
        };
        if let Some(to) = to {
            out.push(Flow {
                to,
                predicate,
                ordering,
                is_default,
                on_failure: false,
            });
        }
    }
    out
}

/// The variables and parameters a net declares as `xs:boolean` or as a number type, by name.
fn typed_variables(cx: &Cx, net: Node<'_, '_>) -> HashMap<String, Kind> {
    let mut types = HashMap::new();
    for kind in ["localVariable", "inputParam", "outputParam"] {
        for var in cx.children(net, kind) {
            // YAWL 4 writes name and type as elements; Beta files the name as an attribute.
            let child = |tag: &str| {
                var.children()
                    .find(|c| c.is_element() && c.tag_name().name() == tag)
                    .and_then(|c| c.text())
                    .map(|t| t.trim().to_owned())
            };
            let name = child("name").or_else(|| var.attribute("name").map(|n| n.trim().to_owned()));
            let ty = child("type").unwrap_or_default();
            if let Some(name) = name.filter(|n| !n.is_empty())
                && let Some(k) = Kind::of(&ty)
            {
                types.insert(name, k);
            }
        }
    }
    types
}
