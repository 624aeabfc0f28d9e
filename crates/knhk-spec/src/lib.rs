//! knhk-spec: definition formats in and out. Reads workflow definitions written in Turtle (the
//! YAWL 4 vocabulary with knhk's extension terms, and the legacy v2 vocabulary) or in YAWL XML
//! (schema 4.0 and the older Beta format) into a
//! [`knhk_core::Specification`], validates them into a [`knhk_core::Workflow`] with errors that
//! name the file, the element's IRI and the rule broken, and writes specifications back out.
//!
//! The format is described in `docs/format.md`; the extension vocabulary in `ontology/knhk.ttl`.

mod duration;
mod error;
mod graph;
mod read;
mod vocab;
mod write;
mod xml;

use std::path::Path;

pub use error::{ElementViolation, Error};
pub use vocab::{KNHK, LEGACY, YAWL};
pub use write::write_turtle;

/// A definition's text and where it came from.
#[derive(Clone, Copy, Debug)]
pub struct Source<'a> {
    /// The file name messages name.
    pub name: &'a str,
    /// The IRI relative IRIs (`<#start>`) resolve against; empty for none.
    pub base_iri: &'a str,
    /// The definition's text (Turtle or YAWL XML).
    pub text: &'a str,
}

/// Parses Turtle and maps it to a specification, without semantic validation (paths, joins,
/// expressions): only what is needed to build the model (one input and one output condition
/// per net, references that resolve, known vocabulary, well-formed values).
pub fn parse_turtle(src: &Source) -> Result<knhk_core::Specification, Error> {
    read_turtle(src).map(|read| read.spec)
}

fn read_turtle(src: &Source) -> Result<read::Read, Error> {
    let graph = graph::Graph::parse_turtle(src.name, src.base_iri, src.text)?;
    read::read(src.name, src.base_iri, &graph)
}

/// Parses Turtle and validates the specification into a workflow.
pub fn load_turtle(src: &Source) -> Result<knhk_core::Workflow, Error> {
    validate(src, read_turtle(src)?)
}

/// Parses YAWL XML (a `specificationSet` in the YAWL 4 schema or the Beta one) and maps it to a
/// specification, without semantic validation: only what is needed to build the model (one
/// input and one output condition per net, references that resolve, elements knhk can map).
/// Element IRIs in errors are `<base_iri or name>#<id>`.
pub fn parse_yawl_xml(src: &Source) -> Result<knhk_core::Specification, Error> {
    xml::read(src).map(|read| read.spec)
}

/// Parses YAWL XML and validates the specification into a workflow.
pub fn load_yawl_xml(src: &Source) -> Result<knhk_core::Workflow, Error> {
    validate(src, xml::read(src)?)
}

/// Validates a specification read from `src`, naming each violated element by its IRI.
fn validate(src: &Source, read: read::Read) -> Result<knhk_core::Workflow, Error> {
    let iris = read.iris;
    knhk_core::Workflow::new(read.spec).map_err(|invalid| Error::Invalid {
        file: src.name.to_owned(),
        violations: invalid
            .violations
            .into_iter()
            .map(|v| ElementViolation {
                iri: iris.iri_of(&v.element),
                element: v.element,
                rule: v.rule,
            })
            .collect(),
    })
}

/// Reads a definition file and validates it into a workflow. Relative IRIs resolve against the
/// file's own `file://` URL; the format follows the extension (`.ttl` for Turtle, `.yawl` or
/// `.xml` for YAWL XML).
pub fn load_file(path: &Path) -> Result<knhk_core::Workflow, Error> {
    load_file_with_text(path).map(|(workflow, _)| workflow)
}

/// Does what [`load_file`] does and also returns the file's text, read once (the runtime stores
/// a definition's source beside its parsed form).
pub fn load_file_with_text(path: &Path) -> Result<(knhk_core::Workflow, String), Error> {
    let name = path.display().to_string();
    let extension = path
        .extension()
        .map(|e| e.to_string_lossy().to_ascii_lowercase());
    let load: fn(&Source) -> Result<knhk_core::Workflow, Error> = match extension.as_deref() {
        Some("ttl") => load_turtle,
        Some("yawl" | "xml") => load_yawl_xml,
        _ => return Err(Error::UnsupportedFormat { file: name }),
    };
    let io = |source| Error::Io {
        file: name.clone(),
        source,
    };
    let text = std::fs::read_to_string(path).map_err(io)?;
    let absolute = std::path::absolute(path).map_err(io)?;
    let base_iri = file_url(&absolute);
    let workflow = load(&Source {
        name: &name,
        base_iri: &base_iri,
        text: &text,
    })?;
    Ok((workflow, text))
}

/// Returns the `file://` URL of an absolute path, percent-encoding what a URL cannot hold.
fn file_url(path: &Path) -> String {
    let text = path.to_string_lossy().replace('\\', "/");
    let mut url = String::from("file://");
    if !text.starts_with('/') {
        url.push('/');
    }
    for byte in text.bytes() {
        if byte.is_ascii_alphanumeric() || b"-._~/:".contains(&byte) {
            url.push(char::from(byte));
        } else {
            url.push_str(&format!("%{byte:02X}"));
        }
    }
    url
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn file_urls_percent_encode() {
        assert_eq!(
            file_url(Path::new("/tmp/a b/wf.ttl")),
            "file:///tmp/a%20b/wf.ttl"
        );
    }
}
