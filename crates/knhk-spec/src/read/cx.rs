//! The reading context: the graph, the problems found so far, and helpers that read one
//! value of a predicate and record a problem (naming the element) when it is not as expected.

use std::str::FromStr;

use knhk_core::model::Expression;

use crate::error::ElementViolation;
use crate::graph::{Graph, Node, Object};
use crate::vocab::{KNHK, LEGACY, YAWL};

/// The element a problem is reported against: its IRI (or blank node label) and its id.
#[derive(Clone, Debug)]
pub(crate) struct Owner {
    pub(crate) iri: String,
    pub(crate) element: String,
}

impl Owner {
    pub(crate) fn new(node: &Node, element: impl Into<String>) -> Owner {
        Owner {
            iri: node.label(),
            element: element.into(),
        }
    }
}

/// Returns the prefixed name messages use for a predicate or class IRI.
pub(crate) fn short(iri: &str) -> String {
    if let Some(local) = iri.strip_prefix(YAWL) {
        format!("yawl:{local}")
    } else if let Some(local) = iri.strip_prefix(LEGACY) {
        format!("yawl:{local}")
    } else if let Some(local) = iri.strip_prefix(KNHK) {
        format!("knhk:{local}")
    } else {
        format!("<{iri}>")
    }
}

#[derive(Debug)]
pub(crate) struct Cx<'g> {
    pub(crate) graph: &'g Graph,
    pub(crate) problems: Vec<ElementViolation>,
    /// Findings that do not refuse the file (in Turtle: predicates that compare a boolean or
    /// numeric variable with a string).
    pub(crate) notes: Vec<ElementViolation>,
    /// The role of the administrators' queue (see [`crate::Options`]).
    pub(crate) admin_role: String,
}

impl<'g> Cx<'g> {
    pub(crate) fn new(graph: &'g Graph) -> Cx<'g> {
        Cx {
            graph,
            problems: Vec::new(),
            notes: Vec::new(),
            admin_role: crate::Options::default().admin_role,
        }
    }

    /// Records that `owner` breaks `rule`.
    pub(crate) fn problem(&mut self, owner: &Owner, rule: impl Into<String>) {
        let v = ElementViolation {
            iri: owner.iri.clone(),
            element: owner.element.clone(),
            rule: rule.into(),
        };
        if !self.problems.contains(&v) {
            self.problems.push(v);
        }
    }

    /// Returns the single object of `predicate` on `node`, recording a problem if there are two.
    fn one(&mut self, node: &Node, predicate: &str, owner: &Owner) -> Option<&'g Object> {
        let graph = self.graph;
        let mut objects = graph.objects(node, predicate);
        let first = objects.next()?;
        if objects.next().is_some() {
            self.problem(owner, format!("has more than one {}", short(predicate)));
        }
        Some(first)
    }

    /// Returns the literal value of `predicate` on `node`, if any.
    pub(crate) fn literal(
        &mut self,
        node: &Node,
        predicate: &str,
        owner: &Owner,
    ) -> Option<String> {
        match self.one(node, predicate, owner)? {
            Object::Literal { value, .. } => Some(value.clone()),
            Object::Node(n) => match n {
                // An IRI where a string is expected is read as its text (yawl:uri <...>).
                Node::Iri(iri) => Some(iri.clone()),
                Node::Blank(_) => {
                    self.problem(owner, format!("{} must be a literal", short(predicate)));
                    None
                }
            },
        }
    }

    /// Returns every literal value of `predicate` on `node`, in document order.
    pub(crate) fn literals(&mut self, node: &Node, predicate: &str, owner: &Owner) -> Vec<String> {
        let graph = self.graph;
        let mut out = Vec::new();
        for o in graph.objects(node, predicate) {
            match o {
                Object::Literal { value, .. } => {
                    if !out.contains(value) {
                        out.push(value.clone());
                    }
                }
                Object::Node(_) => {
                    self.problem(owner, format!("{} must be a literal", short(predicate)))
                }
            }
        }
        out
    }

    /// Returns the node object of `predicate` on `node`, if any.
    pub(crate) fn node(&mut self, node: &Node, predicate: &str, owner: &Owner) -> Option<Node> {
        match self.one(node, predicate, owner)? {
            Object::Node(n) => Some(n.clone()),
            Object::Literal { value, .. } => {
                self.problem(
                    owner,
                    format!(
                        "{} must refer to a node, not the literal {value:?}",
                        short(predicate)
                    ),
                );
                None
            }
        }
    }

    /// Returns every node object of `predicate` on `node`, in document order.
    pub(crate) fn nodes(&mut self, node: &Node, predicate: &str, owner: &Owner) -> Vec<Node> {
        let graph = self.graph;
        let mut out = Vec::new();
        for o in graph.objects(node, predicate) {
            match o {
                Object::Node(n) => out.push(n.clone()),
                Object::Literal { value, .. } => self.problem(
                    owner,
                    format!(
                        "{} must refer to a node, not the literal {value:?}",
                        short(predicate)
                    ),
                ),
            }
        }
        out
    }

    /// Returns a number (written as an integer or as a string holding one).
    pub(crate) fn number<T: FromStr>(
        &mut self,
        node: &Node,
        predicate: &str,
        owner: &Owner,
    ) -> Option<T> {
        let text = self.literal(node, predicate, owner)?;
        match text.trim().parse::<T>() {
            Ok(n) => Some(n),
            Err(_) => {
                self.problem(
                    owner,
                    format!(
                        "{} must be a whole number in range, not {text:?}",
                        short(predicate)
                    ),
                );
                None
            }
        }
    }

    /// Returns a boolean (`true`, `false`, `1` or `0`).
    pub(crate) fn boolean(&mut self, node: &Node, predicate: &str, owner: &Owner) -> Option<bool> {
        let text = self.literal(node, predicate, owner)?;
        match text.trim() {
            "true" | "1" => Some(true),
            "false" | "0" => Some(false),
            _ => {
                self.problem(
                    owner,
                    format!("{} must be true or false, not {text:?}", short(predicate)),
                );
                None
            }
        }
    }

    /// Returns a CEL expression written as a literal.
    pub(crate) fn cel(
        &mut self,
        node: &Node,
        predicate: &str,
        owner: &Owner,
    ) -> Option<Expression> {
        self.literal(node, predicate, owner).map(Expression::cel)
    }

    /// Returns the value named by the IRI object of `predicate`: one of `allowed` (local
    /// names, in any of `namespaces`); records a problem naming the allowed values otherwise.
    pub(crate) fn choice<T: Copy>(
        &mut self,
        node: &Node,
        predicate: &str,
        namespaces: &[&str],
        allowed: &[(&str, T)],
        owner: &Owner,
    ) -> Option<T> {
        let object = self.one(node, predicate, owner)?;
        let found = match object {
            Object::Node(Node::Iri(iri)) => namespaces
                .iter()
                .find_map(|ns| iri.strip_prefix(ns))
                .and_then(|l| allowed.iter().find(|(name, _)| *name == l))
                .map(|(_, value)| *value),
            _ => None,
        };
        if found.is_none() {
            let shown = match object {
                Object::Node(n) => format!("<{}>", n.label()),
                Object::Literal { value, .. } => format!("{value:?}"),
            };
            let names: Vec<&str> = allowed.iter().map(|(name, _)| *name).collect();
            self.problem(
                owner,
                format!(
                    "{} must be one of {}, not {shown}",
                    short(predicate),
                    names.join(", ")
                ),
            );
        }
        found
    }
}
