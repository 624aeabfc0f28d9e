//! knhk-spec: definition formats in and out. Reads workflow definitions written in Turtle (the
//! YAWL 4 vocabulary with knhk's extension terms, and the legacy v2 vocabulary) into a
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
    /// The Turtle text.
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
    let read = read_turtle(src)?;
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
/// file's own `file://` URL; the format follows the extension (`.ttl`).
pub fn load_file(path: &Path) -> Result<knhk_core::Workflow, Error> {
    let name = path.display().to_string();
    let is_turtle = path
        .extension()
        .is_some_and(|e| e.eq_ignore_ascii_case("ttl"));
    if !is_turtle {
        return Err(Error::UnsupportedFormat { file: name });
    }
    let io = |source| Error::Io {
        file: name.clone(),
        source,
    };
    let text = std::fs::read_to_string(path).map_err(io)?;
    let absolute = std::path::absolute(path).map_err(io)?;
    let base_iri = file_url(&absolute);
    load_turtle(&Source {
        name: &name,
        base_iri: &base_iri,
        text: &text,
    })
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
