//! Errors of knhk-spec: a file that cannot be read, is not Turtle or XML, or does not define a
//! valid workflow. Each names the file, and where it can, the element and the rule broken.

use std::fmt;

/// One rule a definition breaks: the element (by IRI and by id) and the rule, in words.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ElementViolation {
    /// The IRI of the element at fault, or of the node nearest to it (`_:...` for a blank node).
    pub iri: String,
    /// The element's id in the model (`yawl:id`, else taken from its IRI).
    pub element: String,
    /// What is wrong, lowercase, no trailing period.
    pub rule: String,
}

impl fmt::Display for ElementViolation {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if self.iri.starts_with("_:") || self.iri.is_empty() {
            write!(f, "{}: {}", self.element, self.rule)
        } else {
            write!(f, "<{}>: {}", self.iri, self.rule)
        }
    }
}

/// A finding about a definition that does not stop it from loading: the file, the element
/// (by IRI and by id) and what was noted.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Note {
    pub file: String,
    /// The IRI of the element noted, or of the node nearest to it; empty when unknown.
    pub iri: String,
    /// The element's id in the model.
    pub element: String,
    /// What was noted, lowercase, no trailing period.
    pub note: String,
}

impl fmt::Display for Note {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let shown = ElementViolation {
            iri: self.iri.clone(),
            element: self.element.clone(),
            rule: self.note.clone(),
        };
        write!(f, "{}: {shown}", self.file)
    }
}

/// Why a definition could not be loaded.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// The file could not be read.
    #[error("{file}: cannot read: {source}")]
    Io {
        file: String,
        #[source]
        source: std::io::Error,
    },
    /// The definition is larger than the [`crate::Limits`] allow: `what` says how large it is,
    /// `limit` what is allowed.
    #[error("{file}: the definition {what}, more than the {limit} allowed")]
    TooLarge {
        file: String,
        what: String,
        limit: String,
    },
    /// The file is not a format knhk-spec reads (by its extension).
    #[error("{file}: unsupported definition format (expected a .ttl, .yawl or .xml file)")]
    UnsupportedFormat { file: String },
    /// The base IRI given for resolving relative IRIs is not an absolute IRI.
    #[error("{file}: base iri {base_iri:?} is not an absolute iri: {message}")]
    BaseIri {
        file: String,
        base_iri: String,
        message: String,
    },
    /// The text is not valid Turtle; `line` and `column` count from 1.
    #[error("{file}:{line}:{column}: turtle syntax error: {message}")]
    Syntax {
        file: String,
        line: u64,
        column: u64,
        message: String,
    },
    /// The text is not well-formed XML (or holds a DTD, which is refused); `line` and `column`
    /// count from 1.
    #[error("{file}:{line}:{column}: xml syntax error: {message}")]
    XmlSyntax {
        file: String,
        line: u64,
        column: u64,
        message: String,
    },
    /// The definition does not define a valid workflow: every rule broken, one per element.
    #[error("{}", display_violations(file, violations))]
    Invalid {
        file: String,
        violations: Vec<ElementViolation>,
    },
}

fn display_violations(file: &str, violations: &[ElementViolation]) -> String {
    if violations.is_empty() {
        return format!("{file}: invalid workflow definition");
    }
    violations
        .iter()
        .map(|v| format!("{file}: {v}"))
        .collect::<Vec<_>>()
        .join("\n")
}
