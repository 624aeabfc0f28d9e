//! Reads YAWL XML (a `specificationSet`, in the YAWL 4 schema or the older Beta one) into a
//! [`Specification`]: the same model the Turtle reader builds, with every problem found named by
//! the element's IRI (`<file>#<id>`) rather than stopping at the first.

mod cx;
mod multiple_instance;
mod net;
mod task;

use std::collections::{BTreeSet, HashMap};

use knhk_core::{NetId, Specification};
use roxmltree::{Document, Node, ParsingOptions};

use crate::Source;
use crate::error::{ElementViolation, Error};
use crate::graph;
use crate::read::{IriMap, Read};
use cx::{Cx, Loc, xsi_type};

/// The namespace of YAWL 4 (and 2.x, 3.x) specifications.
pub(crate) const YAWL4_NS: &str = "http://www.yawlfoundation.org/yawlschema";
/// The namespace of specifications written by the YAWL Beta editors.
pub(crate) const BETA_NS: &str = "http://www.citi.qut.edu.au/yawl";

/// A decomposition of the specification: a net, or an atomic one (a web service gateway).
#[derive(Debug)]
pub(crate) enum Decomposition {
    Net,
    Gateway(Gateway),
}

/// What matters about a web service gateway decomposition: whether a service performs the
/// task (automated) or people do (manual).
#[derive(Debug, Clone, Copy)]
pub(crate) struct Gateway {
    pub(crate) automated: bool,
}

/// Reads the specification defined by a YAWL XML document.
pub(crate) fn read(src: &Source, read_options: &crate::Options) -> Result<Read, Error> {
    // A byte order mark is not part of the document (roxmltree would see text before the root).
    let text = src.text.strip_prefix('\u{feff}').unwrap_or(src.text);
    let options = ParsingOptions {
        allow_dtd: false,
        ..ParsingOptions::default()
    };
    let doc = Document::parse_with_options(text, options).map_err(|e| syntax(src, text, &e))?;
    let base = base(src);
    let root = doc.root_element();
    let ns = match root.tag_name().namespace() {
        Some(YAWL4_NS) => YAWL4_NS,
        Some(BETA_NS) => BETA_NS,
        _ => {
            let shown = match root.tag_name().namespace() {
                Some(ns) => format!("{{{ns}}}{}", root.tag_name().name()),
                None => root.tag_name().name().to_owned(),
            };
            return Err(invalid(
                src.name,
                vec![ElementViolation {
                    iri: base,
                    element: src.name.to_owned(),
                    rule: format!(
                        "the root element is <{shown}>, not a YAWL <specificationSet> in the namespace {YAWL4_NS} (or the Beta namespace {BETA_NS})"
                    ),
                }],
            ));
        }
    };
    let mut cx = Cx {
        ns,
        base: base.clone(),
        problems: Vec::new(),
        notes: Vec::new(),
        admin_role: read_options.admin_role.clone(),
    };
    let whole = Loc {
        iri: base,
        element: src.name.to_owned(),
    };
    if root.tag_name().name() != "specificationSet" {
        cx.problem(
            &whole,
            format!(
                "the root element is <{}>, not <specificationSet>",
                root.tag_name().name()
            ),
        );
        return Err(invalid(src.name, cx.problems));
    }
    let specs: Vec<Node<'_, '_>> = cx.children(root, "specification").collect();
    let read = match specs.as_slice() {
        [spec] => specification(&mut cx, *spec, &whole),
        [] => {
            cx.problem(&whole, "the specificationSet holds no <specification>");
            None
        }
        more => {
            cx.problem(
                &whole,
                format!(
                    "the specificationSet holds {} specifications; knhk reads a file holding exactly one",
                    more.len()
                ),
            );
            None
        }
    };
    match read {
        Some(mut read) if cx.problems.is_empty() => {
            read.notes = cx.notes;
            Ok(read)
        }
        _ => Err(invalid(src.name, cx.problems)),
    }
}

/// Returns what element IRIs start with: the file's IRI without a fragment, else its name.
fn base(src: &Source) -> String {
    let base = if src.base_iri.is_empty() {
        src.name
    } else {
        src.base_iri
    };
    base.split('#').next().unwrap_or(base).to_owned()
}

fn syntax(src: &Source, text: &str, e: &roxmltree::Error) -> Error {
    use roxmltree::Error as X;
    // These errors carry no position of their own: they are about the document as a whole or
    // about where it ends.
    let (line, column) = match e {
        X::UnclosedRootNode | X::UnexpectedEndOfStream => end_position(text),
        _ => {
            let pos = e.pos();
            (u64::from(pos.row), u64::from(pos.col))
        }
    };
    Error::XmlSyntax {
        file: src.name.to_owned(),
        line,
        column,
        message: e.to_string(),
    }
}

/// Returns the line and column (from 1) just after the last character of `text`.
fn end_position(text: &str) -> (u64, u64) {
    let line = text.matches('\n').count() + 1;
    let last = text.rsplit('\n').next().unwrap_or(text);
    (line as u64, last.chars().count() as u64 + 1)
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

const SPECIFICATION_CHILDREN: &[&str] = &[
    "name",
    "documentation",
    "metaData",
    "decomposition",
    "rootNet",
];

fn specification(cx: &mut Cx, spec: Node<'_, '_>, whole: &Loc) -> Option<Read> {
    let mut iris = IriMap::default();
    let uri = spec
        .attribute("uri")
        .map(str::trim)
        .filter(|u| !u.is_empty());
    let (id, spec_loc) = match uri {
        Some(uri) => (uri.to_owned(), cx.loc(uri)),
        None => (whole.iri.clone(), whole.clone()),
    };
    cx.only_known(spec, SPECIFICATION_CHILDREN, &spec_loc);
    let meta = cx.child(spec, "metaData", &spec_loc);
    let name = cx
        .child_text(spec, "name", &spec_loc)
        .or_else(|| meta.and_then(|m| cx.child_text(m, "title", &spec_loc)));
    let documentation = cx.child_text(spec, "documentation", &spec_loc);
    let version = meta.and_then(|m| cx.child_text(m, "version", &spec_loc));

    // Every decomposition by id; the nets, in document order, are read below.
    let mut decompositions: HashMap<String, Decomposition> = HashMap::new();
    let mut nets: Vec<(String, Node<'_, '_>)> = Vec::new();
    let mut roots = Vec::new();
    let listed: Vec<Node<'_, '_>> = spec
        .children()
        .filter(|c| cx.is(*c, "decomposition") || cx.is(*c, "rootNet"))
        .collect();
    for node in listed {
        let Some(did) = node
            .attribute("id")
            .map(str::trim)
            .filter(|i| !i.is_empty())
        else {
            let loc = cx.anonymous(node);
            cx.problem(&loc, "a decomposition needs an id attribute");
            continue;
        };
        let loc = cx.loc(did);
        if decompositions.contains_key(did) {
            cx.problem(&loc, format!("decomposition id {did:?} is used twice"));
            continue;
        }
        let is_net = node.tag_name().name() == "rootNet"
            || xsi_type(node) == Some("NetFactsType")
            || cx.children(node, "processControlElements").next().is_some();
        if is_net {
            let is_root = node.tag_name().name() == "rootNet"
                || node
                    .attribute("isRootNet")
                    .is_some_and(|v| v.trim() == "true" || v.trim() == "1");
            if is_root {
                roots.push(did.to_owned());
            }
            decompositions.insert(did.to_owned(), Decomposition::Net);
            nets.push((did.to_owned(), node));
            iris.insert(did, &graph::Node::Iri(cx.iri(did)));
        } else {
            let automated = cx.children(node, "yawlService").next().is_some()
                || cx.children(node, "codelet").next().is_some()
                || cx
                    .child_text(node, "externalInteraction", &loc)
                    .is_some_and(|t| t == "automated");
            decompositions.insert(
                did.to_owned(),
                Decomposition::Gateway(Gateway { automated }),
            );
        }
    }

    let root = match (roots.as_slice(), nets.as_slice()) {
        ([root], _) => Some(NetId::new(root)),
        ([], [(only, _)]) => Some(NetId::new(only)),
        ([], []) => {
            cx.problem(
                &spec_loc,
                "the specification has no root net: it has no net decomposition (xsi:type=\"NetFactsType\")",
            );
            None
        }
        ([], _) => {
            cx.problem(
                &spec_loc,
                "the specification has no root net: none of its nets is marked isRootNet=\"true\"",
            );
            None
        }
        (more, _) => {
            cx.problem(
                &spec_loc,
                format!(
                    "{} nets are marked isRootNet=\"true\" ({}); one is the root",
                    more.len(),
                    more.join(", ")
                ),
            );
            None
        }
    };

    let out = net::read_nets(cx, &nets, &decompositions, &mut iris);
    let mut initial_data = serde_json::Map::new();
    let mut declared = BTreeSet::new();
    for (did, node) in &nets {
        let is_root = root.as_ref().is_some_and(|r| r.as_str() == did);
        variables(cx, *node, did, is_root, &mut initial_data);
        for kind in ["localVariable", "inputParam", "outputParam"] {
            for var in cx.children(*node, kind).collect::<Vec<_>>() {
                let loc = cx.loc(did);
                let name = cx.child_text(var, "name", &loc).or_else(|| {
                    var.attribute("name")
                        .map(|v| v.trim().to_owned())
                        .filter(|v| !v.is_empty())
                });
                declared.extend(name);
            }
        }
    }
    iris.insert(&id, &graph::Node::Iri(spec_loc.iri.clone()));
    Some(Read {
        spec: Specification {
            id,
            name,
            version,
            documentation,
            root_net: root?,
            nets: out,
            initial_data,
        },
        iris,
        notes: Vec::new(),
        variables: Some(declared),
    })
}

/// Reads the initial values of a net's local variables: the root net's become the data a case
/// starts with; any other initial value, or one that cannot be converted, is refused, naming
/// the variable (a declared value is never dropped). The root net's input parameters are
/// noted: a case must be given them in its data.
fn variables(
    cx: &mut Cx,
    net: Node<'_, '_>,
    net_id: &str,
    root: bool,
    data: &mut serde_json::Map<String, serde_json::Value>,
) {
    let loc = cx.loc(net_id);
    if root {
        // YAWL asks for the root net's input parameters when a case starts; knhk takes them
        // from the data the case is created with, so a reader is told which ones to give.
        for param in cx.children(net, "inputParam").collect::<Vec<_>>() {
            let name = cx.child_text(param, "name", &loc).or_else(|| {
                param
                    .attribute("name")
                    .map(|v| v.trim().to_owned())
                    .filter(|v| !v.is_empty())
            });
            if let Some(name) = name {
                cx.note(
                    &loc,
                    format!("the root net takes the input parameter {name:?}: YAWL asks for it when a case starts; knhk reads it from the data a case is created with, so give it there"),
                );
            }
        }
    }
    for var in cx.children(net, "localVariable").collect::<Vec<_>>() {
        let Some(initial) = cx.child(var, "initialValue", &loc) else {
            continue;
        };
        // YAWL 4 writes the name, type and namespace as elements; Beta files also as attributes.
        let field = |cx: &mut Cx, name: &str| {
            cx.child_text(var, name, &loc).or_else(|| {
                var.attribute(name)
                    .map(|v| v.trim().to_owned())
                    .filter(|v| !v.is_empty())
            })
        };
        let Some(name) = field(cx, "name") else {
            cx.problem(
                &loc,
                "a <localVariable> with an <initialValue> has no <name>",
            );
            continue;
        };
        let ty = field(cx, "type").unwrap_or_default();
        let namespace = field(cx, "namespace");
        let value = cx::text(initial);
        let elements = initial.children().any(|c| c.is_element());
        // An empty initial value declares none, except an empty string on the root net. The
        // editor writes an empty <initialValue/> on every variable, sub-nets' included.
        if !elements
            && value.trim().is_empty()
            && (!root || ty.rsplit(':').next() != Some("string"))
        {
            continue;
        }
        if !root {
            cx.problem(
                &loc,
                format!("variable {name:?} of the sub-net {net_id:?} has an initial value, which knhk does not apply: a case's data starts from the root net's variables only"),
            );
            continue;
        }
        let converted = if elements
            || cx.children(var, "element").next().is_some()
            || namespace
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
                    cx.problem(&loc, format!("variable {name:?} is declared twice"));
                }
            }
            Err(why) => cx.problem(
                &loc,
                format!("the initial value of variable {name:?} cannot be applied: {why}"),
            ),
        }
    }
}
