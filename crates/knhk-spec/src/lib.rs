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
mod predicate;
mod read;
mod variables;
mod vocab;
mod warnings;
mod write;
mod xml;

use std::path::Path;

pub use error::{ElementViolation, Error, Note};
pub use vocab::{KNHK, LEGACY, YAWL};
pub use warnings::{ExpressionSite, Warning, WarningKind};
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

/// How definitions are read.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Options {
    /// The role of the administrators' queue: manual tasks whose distribution the definition
    /// leaves to run time (YAWL's `<offer initiator="user"/>`, a Beta task without resourcing)
    /// are offered to it. Default: `admin`.
    pub admin_role: String,
    /// How large a definition may be.
    pub limits: Limits,
}

impl Default for Options {
    fn default() -> Self {
        Options {
            admin_role: "admin".to_owned(),
            limits: Limits::default(),
        }
    }
}

/// How large a definition may be: a larger one is refused before it is parsed (its text) or
/// validated (its tasks), so that a huge file cannot take the process's memory and time.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Limits {
    /// The most bytes of definition text. [`Limits::DEFAULT_MAX_DEFINITION_BYTES`] by default.
    pub max_definition_bytes: usize,
    /// The most tasks, over all the nets of a definition. [`Limits::DEFAULT_MAX_TASKS`] by default.
    pub max_tasks: usize,
}

impl Limits {
    /// The default bound on a definition's text: 4 MiB.
    pub const DEFAULT_MAX_DEFINITION_BYTES: usize = 4 * 1024 * 1024;
    /// The default bound on a definition's tasks.
    pub const DEFAULT_MAX_TASKS: usize = 10_000;

    /// Refuses a text longer than the bound.
    fn check_bytes(&self, file: &str, bytes: u64) -> Result<(), Error> {
        if bytes > self.max_definition_bytes as u64 {
            return Err(Error::TooLarge {
                file: file.to_owned(),
                what: format!("is {bytes} bytes long"),
                limit: format!("{} bytes", self.max_definition_bytes),
            });
        }
        Ok(())
    }

    /// Refuses a specification with more tasks than the bound.
    fn check_tasks(&self, file: &str, spec: &knhk_core::Specification) -> Result<(), Error> {
        let tasks: usize = spec.nets.iter().map(|n| n.tasks.len()).sum();
        if tasks > self.max_tasks {
            return Err(Error::TooLarge {
                file: file.to_owned(),
                what: format!("has {tasks} tasks"),
                limit: format!("{} tasks", self.max_tasks),
            });
        }
        Ok(())
    }
}

impl Default for Limits {
    fn default() -> Self {
        Limits {
            max_definition_bytes: Limits::DEFAULT_MAX_DEFINITION_BYTES,
            max_tasks: Limits::DEFAULT_MAX_TASKS,
        }
    }
}

/// A loaded workflow and what was noted while loading it (findings that do not stop it from
/// running, such as a split with one flow), in the order found.
#[derive(Debug)]
pub struct Loaded {
    pub workflow: knhk_core::Workflow,
    pub notes: Vec<Note>,
    /// The names of the variables and parameters the nets declare (initial value or not);
    /// `None` for a format that declares none (the legacy vocabulary). The static checks of
    /// [`Loaded::warnings`] read them.
    pub variables: Option<std::collections::BTreeSet<String>>,
}

/// Parses Turtle and maps it to a specification, without semantic validation (paths, joins,
/// expressions): only what is needed to build the model (one input and one output condition
/// per net, references that resolve, known vocabulary, well-formed values).
pub fn parse_turtle(src: &Source) -> Result<knhk_core::Specification, Error> {
    read_turtle(src).map(|read| read.spec)
}

fn read_turtle(src: &Source) -> Result<read::Read, Error> {
    read_turtle_with(src, &Options::default())
}

fn read_turtle_with(src: &Source, options: &Options) -> Result<read::Read, Error> {
    let graph = graph::Graph::parse_turtle(src.name, src.base_iri, src.text)?;
    read::read(src.name, src.base_iri, &graph, options)
}

/// Parses Turtle and validates the specification into a workflow.
pub fn load_turtle(src: &Source) -> Result<knhk_core::Workflow, Error> {
    load_turtle_with(src, &Options::default()).map(|loaded| loaded.workflow)
}

/// Parses Turtle with `options` and validates the specification into a workflow, with what
/// was noted on the way.
pub fn load_turtle_with(src: &Source, options: &Options) -> Result<Loaded, Error> {
    options
        .limits
        .check_bytes(src.name, src.text.len() as u64)?;
    let read = read_turtle_with(src, options)?;
    options.limits.check_tasks(src.name, &read.spec)?;
    validate(src, read)
}

/// Parses YAWL XML (a `specificationSet` in the YAWL 4 schema or the Beta one) and maps it to a
/// specification, without semantic validation: only what is needed to build the model (one
/// input and one output condition per net, references that resolve, elements knhk can map).
/// Element IRIs in errors are `<base_iri or name>#<id>`.
pub fn parse_yawl_xml(src: &Source) -> Result<knhk_core::Specification, Error> {
    xml::read(src, &Options::default()).map(|read| read.spec)
}

/// Parses YAWL XML and validates the specification into a workflow.
pub fn load_yawl_xml(src: &Source) -> Result<knhk_core::Workflow, Error> {
    load_yawl_xml_with(src, &Options::default()).map(|loaded| loaded.workflow)
}

/// Parses YAWL XML with `options` and validates the specification into a workflow, with what
/// was noted on the way.
pub fn load_yawl_xml_with(src: &Source, options: &Options) -> Result<Loaded, Error> {
    options
        .limits
        .check_bytes(src.name, src.text.len() as u64)?;
    let read = xml::read(src, options)?;
    options.limits.check_tasks(src.name, &read.spec)?;
    validate(src, read)
}

/// Validates a specification read from `src`, naming each violated or noted element by its
/// IRI. The reader's notes come first, then validation's.
fn validate(src: &Source, read: read::Read) -> Result<Loaded, Error> {
    let iris = read.iris;
    let workflow = knhk_core::Workflow::new(read.spec).map_err(|invalid| Error::Invalid {
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
    })?;
    let notes = read
        .notes
        .into_iter()
        .chain(workflow.notes().iter().map(|v| ElementViolation {
            iri: iris.iri_of(&v.element),
            element: v.element.clone(),
            rule: v.rule.clone(),
        }))
        .map(|v| Note {
            file: src.name.to_owned(),
            iri: v.iri,
            element: v.element,
            note: v.rule,
        })
        .collect();
    Ok(Loaded {
        workflow,
        notes,
        variables: read.variables,
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
    load_file_with(path, &Options::default()).map(|(loaded, text)| (loaded.workflow, text))
}

/// Does what [`load_file_with_text`] does, reading with `options`, and also returns what was
/// noted while loading.
pub fn load_file_with(path: &Path, options: &Options) -> Result<(Loaded, String), Error> {
    let name = path.display().to_string();
    let extension = path
        .extension()
        .map(|e| e.to_string_lossy().to_ascii_lowercase());
    let load: fn(&Source, &Options) -> Result<Loaded, Error> = match extension.as_deref() {
        Some("ttl") => load_turtle_with,
        Some("yawl" | "xml") => load_yawl_xml_with,
        _ => return Err(Error::UnsupportedFormat { file: name }),
    };
    let io = |source| Error::Io {
        file: name.clone(),
        source,
    };
    // A file larger than the bound is refused before it is read into memory.
    let size = std::fs::metadata(path).map_err(io)?.len();
    options.limits.check_bytes(&name, size)?;
    let text = std::fs::read_to_string(path).map_err(io)?;
    let absolute = std::path::absolute(path).map_err(io)?;
    let base_iri = file_url(&absolute);
    let loaded = load(
        &Source {
            name: &name,
            base_iri: &base_iri,
            text: &text,
        },
        options,
    )?;
    Ok((loaded, text))
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
