//! Maps the triples of a Turtle document to a [`Specification`]: finds the vocabulary the file
//! uses (YAWL 4 or the legacy v2 one), gives every element its id, resolves references, and
//! collects every problem found rather than stopping at the first.

mod cx;
mod knhk;
mod legacy;
mod yawl4;

use std::collections::{BTreeSet, HashMap};

use knhk_core::Specification;

use crate::error::{ElementViolation, Error};
use crate::graph::{Graph, Node};
use crate::vocab::{self, legacy as legacy_term, yawl};

pub(crate) use cx::{Cx, Owner};

/// A specification read from a file, with the IRI of each of its elements for messages.
#[derive(Debug)]
pub(crate) struct Read {
    pub(crate) spec: Specification,
    pub(crate) iris: IriMap,
    /// What the reader noted without refusing the file.
    pub(crate) notes: Vec<ElementViolation>,
    /// The names of the variables and parameters the nets declare, with or without an
    /// initial value; `None` for a format that declares none (the legacy vocabulary).
    pub(crate) variables: Option<BTreeSet<String>>,
}

/// Element, net and specification ids to the IRIs they were read from.
#[derive(Debug, Default)]
pub(crate) struct IriMap {
    by_id: HashMap<String, String>,
}

impl IriMap {
    pub(crate) fn insert(&mut self, id: &str, node: &Node) {
        self.by_id
            .entry(id.to_owned())
            .or_insert_with(|| node.label());
    }

    /// Returns the IRI of the element with id `element`. Violations about the implicit
    /// condition of a task-to-task flow name it `from__to`; those map to the IRI of `from`.
    pub(crate) fn iri_of(&self, element: &str) -> String {
        if let Some(iri) = self.by_id.get(element) {
            return iri.clone();
        }
        for separator in ["__", "->"] {
            if let Some((from, _)) = element.split_once(separator)
                && let Some(iri) = self.by_id.get(from.trim())
            {
                return iri.clone();
            }
        }
        String::new()
    }
}

/// Reads the specification defined by `graph`.
pub(crate) fn read(
    file: &str,
    base_iri: &str,
    graph: &Graph,
    options: &crate::Options,
) -> Result<Read, Error> {
    let mut cx = Cx::new(graph);
    cx.admin_role = options.admin_role.clone();
    let whole = Owner {
        iri: base_iri.to_owned(),
        element: file.to_owned(),
    };
    for subject in graph.subjects() {
        for (predicate, _) in graph.triples(subject) {
            if let Some(rule) = vocab::unsupported(predicate) {
                let owner = Owner::new(subject, id_hint(graph, subject));
                cx.problem(&owner, rule);
            }
        }
    }

    let specs = graph.typed(&yawl("Specification"));
    let legacy_specs = graph.typed(&legacy_term("Specification"));
    let read = match (specs.as_slice(), legacy_specs.as_slice()) {
        ([spec], []) => yawl4::read(&mut cx, Some(spec)),
        ([], [spec]) => legacy::read(&mut cx, spec),
        ([], []) => {
            let nets = graph.typed(&yawl("Net"));
            if nets.len() == 1 {
                yawl4::read(&mut cx, None)
            } else {
                cx.problem(
                    &whole,
                    "defines no workflow: expected one yawl:Specification (or a single yawl:Net)",
                );
                None
            }
        }
        _ => {
            let count = specs.len() + legacy_specs.len();
            cx.problem(
                &whole,
                format!("defines {count} specifications; a file holds exactly one"),
            );
            None
        }
    };
    match read {
        Some(mut read) if cx.problems.is_empty() => {
            read.notes = cx.notes;
            Ok(read)
        }
        _ => Err(invalid(file, cx.problems)),
    }
}

fn invalid(file: &str, mut violations: Vec<ElementViolation>) -> Error {
    if violations.is_empty() {
        violations.push(ElementViolation {
            iri: String::new(),
            element: file.to_owned(),
            rule: "defines no workflow".to_owned(),
        });
    }
    Error::Invalid {
        file: file.to_owned(),
        violations,
    }
}

/// Returns the id an element would get, for messages about nodes not (yet) read.
fn id_hint(graph: &Graph, node: &Node) -> String {
    let mut cx = Cx::new(graph);
    let owner = Owner::new(node, node.label());
    element_id(&mut cx, node, &owner).unwrap_or_else(|| node.label())
}

/// Returns the id of an element or net: its `yawl:id`, else its IRI's fragment, else the
/// last segment of its IRI's path, else the IRI itself.
pub(crate) fn element_id(cx: &mut Cx<'_>, node: &Node, owner: &Owner) -> Option<String> {
    if let Some(id) = cx.literal(node, &yawl("id"), owner) {
        return Some(id);
    }
    match node {
        Node::Iri(iri) => Some(id_from_iri(iri).to_owned()),
        Node::Blank(_) => {
            cx.problem(
                owner,
                "a blank node element needs a yawl:id (there is no IRI to take its id from)",
            );
            None
        }
    }
}

/// Returns the fragment of `iri`, else the last non-empty segment of its path, else `iri`.
pub(crate) fn id_from_iri(iri: &str) -> &str {
    if let Some((_, fragment)) = iri.split_once('#')
        && !fragment.is_empty()
    {
        return fragment;
    }
    let without_fragment = iri.split('#').next().unwrap_or(iri);
    let without_query = without_fragment
        .split('?')
        .next()
        .unwrap_or(without_fragment);
    let path = without_query
        .split_once("://")
        .map_or(without_query, |(_, rest)| rest);
    match path.trim_end_matches('/').rsplit_once('/') {
        Some((_, last)) if !last.is_empty() => last,
        _ => iri,
    }
}

/// The elements of every net, by node, with their ids; and which ids are taken.
#[derive(Debug, Default)]
pub(crate) struct Registry {
    elements: HashMap<Node, String>,
    owners: HashMap<String, Node>,
}

impl Registry {
    /// Registers `node` under `id`; records a problem if the id or the node is already taken.
    pub(crate) fn register(&mut self, cx: &mut Cx<'_>, node: &Node, id: &str, owner: &Owner) {
        if let Some(previous) = self.elements.get(node) {
            if previous != id {
                cx.problem(
                    owner,
                    format!("is registered as both {previous:?} and {id:?}"),
                );
            } else {
                cx.problem(owner, "is listed more than once as an element of a net");
            }
            return;
        }
        if let Some(other) = self.owners.get(id) {
            cx.problem(
                owner,
                format!("has id {id:?}, which <{}> already has", other.label()),
            );
            return;
        }
        self.elements.insert(node.clone(), id.to_owned());
        self.owners.insert(id.to_owned(), node.clone());
    }

    /// Returns the id of a registered element.
    pub(crate) fn id(&self, node: &Node) -> Option<&str> {
        self.elements.get(node).map(String::as_str)
    }

    /// Resolves a reference from `owner` to `target`, recording a problem if `target` is no
    /// element of any net.
    pub(crate) fn resolve(
        &self,
        cx: &mut Cx<'_>,
        target: &Node,
        what: &str,
        owner: &Owner,
    ) -> Option<knhk_core::ElementId> {
        match self.id(target) {
            Some(id) => Some(knhk_core::ElementId::new(id)),
            None => {
                cx.problem(
                    owner,
                    format!(
                        "{what} refers to <{}>, which is no task or condition of any net",
                        target.label()
                    ),
                );
                None
            }
        }
    }
}
