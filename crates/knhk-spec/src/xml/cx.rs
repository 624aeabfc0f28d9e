//! The reading context of a YAWL XML document: which namespace its YAWL elements are in, how
//! elements are named in messages, the problems found so far, and small helpers that read one
//! child or attribute and record a problem (naming the element) when it is not as expected.

use roxmltree::Node;

use crate::error::ElementViolation;

/// The element a problem is reported against: its IRI (`<file>#<id>`) and its id, or for an
/// element without an id, its tag and position.
#[derive(Clone, Debug)]
pub(crate) struct Loc {
    pub(crate) iri: String,
    pub(crate) element: String,
}

#[derive(Debug)]
pub(crate) struct Cx {
    /// The namespace of the YAWL elements (YAWL 4 or Beta).
    pub(crate) ns: &'static str,
    /// What element IRIs are made from: the file's IRI without its fragment, else its name.
    pub(crate) base: String,
    pub(crate) problems: Vec<ElementViolation>,
    /// Findings that do not refuse the file.
    pub(crate) notes: Vec<ElementViolation>,
    /// The role of the administrators' queue (see [`crate::Options`]).
    pub(crate) admin_role: String,
}

impl Cx {
    /// Returns how messages name the element with id `id`.
    pub(crate) fn loc(&self, id: &str) -> Loc {
        Loc {
            iri: self.iri(id),
            element: id.to_owned(),
        }
    }

    /// Returns the IRI an element with id `id` is named by: `<base>#<id>`.
    pub(crate) fn iri(&self, id: &str) -> String {
        format!("{}#{id}", self.base)
    }

    /// Returns how messages name an element that has no id: its tag and where it starts.
    pub(crate) fn anonymous(&self, node: Node<'_, '_>) -> Loc {
        let pos = node.document().text_pos_at(node.range().start);
        Loc {
            iri: String::new(),
            element: format!(
                "<{}> at line {}, column {}",
                node.tag_name().name(),
                pos.row,
                pos.col
            ),
        }
    }

    /// Records that `loc` breaks `rule`.
    pub(crate) fn problem(&mut self, loc: &Loc, rule: impl Into<String>) {
        let v = ElementViolation {
            iri: loc.iri.clone(),
            element: loc.element.clone(),
            rule: rule.into(),
        };
        if !self.problems.contains(&v) {
            self.problems.push(v);
        }
    }

    /// Records a finding about `loc` that does not refuse the file.
    pub(crate) fn note(&mut self, loc: &Loc, note: impl Into<String>) {
        let v = ElementViolation {
            iri: loc.iri.clone(),
            element: loc.element.clone(),
            rule: note.into(),
        };
        if !self.notes.contains(&v) {
            self.notes.push(v);
        }
    }

    /// Tells whether `node` is the YAWL element `name`.
    pub(crate) fn is(&self, node: Node<'_, '_>, name: &str) -> bool {
        node.is_element()
            && node.tag_name().name() == name
            && node.tag_name().namespace() == Some(self.ns)
    }

    /// Returns the YAWL children of `node` called `name`, in document order.
    pub(crate) fn children<'a, 'i>(
        &self,
        node: Node<'a, 'i>,
        name: &str,
    ) -> impl Iterator<Item = Node<'a, 'i>> + use<'a, 'i> {
        let ns = self.ns;
        let name = name.to_owned();
        node.children().filter(move |c| {
            c.is_element() && c.tag_name().name() == name && c.tag_name().namespace() == Some(ns)
        })
    }

    /// Returns the YAWL child `name` of `node`, recording a problem if there are several.
    pub(crate) fn child<'a, 'i>(
        &mut self,
        node: Node<'a, 'i>,
        name: &str,
        loc: &Loc,
    ) -> Option<Node<'a, 'i>> {
        let mut found = self.children(node, name);
        let first = found.next()?;
        if found.next().is_some() {
            self.problem(
                loc,
                format!("has more than one <{name}> in <{}>", node.tag_name().name()),
            );
        }
        Some(first)
    }

    /// Returns the trimmed text of the YAWL child `name` of `node`; `None` when absent or empty.
    pub(crate) fn child_text(
        &mut self,
        node: Node<'_, '_>,
        name: &str,
        loc: &Loc,
    ) -> Option<String> {
        let child = self.child(node, name, loc)?;
        let text = text(child);
        let text = text.trim();
        (!text.is_empty()).then(|| text.to_owned())
    }

    /// Records a problem for every YAWL child of `node` that is not in `known`; children in
    /// other namespaces (XML Schema, extensions) are left alone.
    pub(crate) fn only_known(&mut self, node: Node<'_, '_>, known: &[&str], loc: &Loc) {
        for child in node.children().filter(|c| c.is_element()) {
            let name = child.tag_name().name();
            if child.tag_name().namespace() == Some(self.ns) && !known.contains(&name) {
                self.problem(
                    loc,
                    format!(
                        "has an element <{name}> in <{}> that knhk does not know; it is refused rather than ignored, since it may change how the workflow runs",
                        node.tag_name().name()
                    ),
                );
            }
        }
    }

    /// Returns a whole number written as the text of the YAWL child `name`.
    pub(crate) fn number<T: std::str::FromStr>(
        &mut self,
        node: Node<'_, '_>,
        name: &str,
        loc: &Loc,
    ) -> Option<T> {
        let child = self.child(node, name, loc)?;
        let text = text(child);
        match text.trim().parse::<T>() {
            Ok(n) => Some(n),
            Err(_) => {
                self.problem(
                    loc,
                    format!("<{name}> must be a whole number in range, not {text:?}"),
                );
                None
            }
        }
    }
}

/// Returns the text directly inside `node` (text and CDATA, comments skipped).
pub(crate) fn text(node: Node<'_, '_>) -> String {
    node.children()
        .filter(|c| c.is_text())
        .filter_map(|c| c.text())
        .collect()
}

/// Returns the local part of an `xsi:type` value (`yawl:NetFactsType` -> `NetFactsType`).
pub(crate) fn xsi_type<'a>(node: Node<'a, '_>) -> Option<&'a str> {
    let value = node.attribute((XSI, "type"))?;
    Some(value.rsplit(':').next().unwrap_or(value).trim())
}

const XSI: &str = "http://www.w3.org/2001/XMLSchema-instance";
