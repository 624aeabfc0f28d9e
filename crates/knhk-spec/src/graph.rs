//! An in-memory index of the triples of one Turtle document, in document order.
//!
//! Document order matters: it is how tasks, conditions and flows keep the order they were
//! written in, so that reading the same file always gives the same model.

use std::collections::{HashMap, HashSet};

use oxrdf::{NamedOrBlankNode, Term as RdfTerm};
use oxttl::TurtleParser;

use crate::error::Error;

/// A subject or an object that is not a literal.
#[derive(Clone, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub(crate) enum Node {
    Iri(String),
    Blank(String),
}

impl Node {
    /// Returns how messages name the node: its IRI, or `_:label` for a blank node.
    pub(crate) fn label(&self) -> String {
        match self {
            Node::Iri(iri) => iri.clone(),
            Node::Blank(id) => format!("_:{id}"),
        }
    }
}

/// The object of a triple.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub(crate) enum Object {
    Node(Node),
    Literal { value: String, datatype: String },
}

/// The triples of a document, by subject, each subject's triples in document order.
#[derive(Debug, Default)]
pub(crate) struct Graph {
    by_subject: HashMap<Node, Vec<(String, Object)>>,
    /// Subjects in the order of their first triple.
    subjects: Vec<Node>,
}

impl Graph {
    /// Parses a Turtle document; relative IRIs resolve against `base_iri` (if not empty).
    pub(crate) fn parse_turtle(file: &str, base_iri: &str, text: &str) -> Result<Graph, Error> {
        let mut parser = TurtleParser::new();
        if !base_iri.is_empty() {
            parser = parser.with_base_iri(base_iri).map_err(|e| Error::BaseIri {
                file: file.to_owned(),
                base_iri: base_iri.to_owned(),
                message: e.to_string(),
            })?;
        }
        let mut graph = Graph::default();
        let mut seen = HashSet::new();
        for triple in parser.for_slice(text.as_bytes()) {
            let triple = triple.map_err(|e| {
                let start = e.location().start;
                Error::Syntax {
                    file: file.to_owned(),
                    line: start.line.saturating_add(1),
                    column: start.column.saturating_add(1),
                    message: e.message().to_owned(),
                }
            })?;
            let subject = match triple.subject {
                NamedOrBlankNode::NamedNode(n) => Node::Iri(n.into_string()),
                NamedOrBlankNode::BlankNode(b) => Node::Blank(b.into_string()),
            };
            let object = match triple.object {
                RdfTerm::NamedNode(n) => Object::Node(Node::Iri(n.into_string())),
                RdfTerm::BlankNode(b) => Object::Node(Node::Blank(b.into_string())),
                RdfTerm::Literal(l) => {
                    let datatype = l.datatype().as_str().to_owned();
                    let (value, _, _) = l.destruct();
                    Object::Literal { value, datatype }
                }
            };
            let predicate = triple.predicate.into_string();
            // RDF graphs are sets: a triple written twice is one triple.
            if !seen.insert((subject.clone(), predicate.clone(), object.clone())) {
                continue;
            }
            let entry = graph.by_subject.entry(subject.clone()).or_default();
            if entry.is_empty() {
                graph.subjects.push(subject);
            }
            entry.push((predicate, object));
        }
        Ok(graph)
    }

    /// Returns the subjects, in the order of their first triple.
    pub(crate) fn subjects(&self) -> &[Node] {
        &self.subjects
    }

    /// Returns the predicate-object pairs of `subject`, in document order.
    pub(crate) fn triples(&self, subject: &Node) -> &[(String, Object)] {
        self.by_subject.get(subject).map_or(&[], Vec::as_slice)
    }

    /// Returns the objects of `subject`'s triples with `predicate`, in document order.
    pub(crate) fn objects<'a>(
        &'a self,
        subject: &Node,
        predicate: &str,
    ) -> impl Iterator<Item = &'a Object> + use<'a> {
        let predicate = predicate.to_owned();
        self.triples(subject)
            .iter()
            .filter(move |(p, _)| *p == predicate)
            .map(|(_, o)| o)
    }

    /// Tells whether `subject` has `rdf:type` `class`.
    pub(crate) fn has_type(&self, subject: &Node, class: &str) -> bool {
        self.objects(subject, crate::vocab::RDF_TYPE)
            .any(|o| matches!(o, Object::Node(Node::Iri(c)) if c == class))
    }

    /// Returns the subjects typed `class`, in document order.
    pub(crate) fn typed(&self, class: &str) -> Vec<Node> {
        self.subjects
            .iter()
            .filter(|s| self.has_type(s, class))
            .cloned()
            .collect()
    }

    /// Tells whether some triple has `node` as subject.
    pub(crate) fn is_described(&self, node: &Node) -> bool {
        self.by_subject.contains_key(node)
    }
}
