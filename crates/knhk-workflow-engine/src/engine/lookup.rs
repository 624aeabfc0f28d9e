//! Finding a registered workflow by how a person names it: its id or an unambiguous prefix of
//! it, its specification URI or its display name (the latest version), or `URI@N` / `NAME@N`
//! for version N.

use std::collections::BTreeMap;

use knhk_core::WorkflowId;

use super::WorkflowEngine;
use crate::error::Error;
use crate::records;
use crate::view::{WorkflowSummary, WorkflowView};

impl WorkflowEngine {
    /// Returns the registered workflow that `reference` names: an id, an unambiguous id
    /// prefix, a specification URI or a display name (each meaning its latest version), or
    /// `URI@N` / `NAME@N` for version N. A name that two URIs share, or a prefix of several
    /// ids, is [`Error::AmbiguousWorkflow`], listing the matches.
    ///
    /// A URI or a name is looked up through the store's indexes of them, reading only the
    /// versions it names; only an id prefix reads the list of workflows (without sources).
    pub async fn find_workflow(&self, reference: &str) -> Result<WorkflowView, Error> {
        let reference = reference.trim();
        if let Ok(id) = reference.parse::<WorkflowId>() {
            return self.workflow(id).await;
        }
        let found = find(self.workflow_candidates(reference).await?, reference)?;
        self.workflow(found.id).await
    }

    /// Returns the summary of the workflow `reference` names, as
    /// [`find_workflow`](WorkflowEngine::find_workflow) finds it, without reading its source
    /// (but for a whole id, which is read as it is).
    pub async fn resolve_workflow(&self, reference: &str) -> Result<WorkflowSummary, Error> {
        let reference = reference.trim();
        if let Ok(id) = reference.parse::<WorkflowId>() {
            let w = self.workflow(id).await?;
            return Ok(WorkflowSummary {
                id: w.id,
                uri: w.uri,
                name: w.name,
                version: w.version,
                format: w.format,
                tasks: w.tasks,
                registered_at: w.registered_at,
            });
        }
        find(self.workflow_candidates(reference).await?, reference)
    }

    /// Returns the workflows among which `reference` is looked for: those it names as a URI
    /// or a name, else those its base names (`NAME@N`), else, for what may be an id prefix,
    /// every workflow. [`find`] picks from them as it would from all of them.
    async fn workflow_candidates(&self, reference: &str) -> Result<Vec<WorkflowSummary>, Error> {
        let store = &self.inner.store;
        let mut found = store.workflows_named(reference).await?;
        if found.is_empty()
            && let Some((base, _)) = split_version(reference)
        {
            found = store.workflows_named(base).await?;
        }
        if found.is_empty() && looks_like_id(&id_prefix(reference)) {
            found = store.workflow_summaries().await?;
        }
        found.into_iter().map(records::workflow_summary).collect()
    }
}

/// Picks the workflow `reference` names among `all`; see [`WorkflowEngine::find_workflow`].
fn find(all: Vec<WorkflowSummary>, reference: &str) -> Result<WorkflowSummary, Error> {
    let reference = reference.trim();
    // The whole text first: a URI or a name may hold an `@` of its own.
    if let Some(found) = by_identity(&all, reference, None)? {
        return Ok(found);
    }
    if let Some((base, version)) = split_version(reference)
        && let Some(found) = by_identity(&all, base, Some(version))?
    {
        return Ok(found);
    }
    by_id_prefix(all, reference)
}

/// Returns what an id prefix `reference` gives: lowercase, without the `...` of a table.
fn id_prefix(reference: &str) -> String {
    reference.trim_end_matches("...").to_ascii_lowercase()
}

/// Returns whether `prefix` may start an id: hex digits and `-`.
fn looks_like_id(prefix: &str) -> bool {
    !prefix.is_empty() && prefix.chars().all(|c| c.is_ascii_hexdigit() || c == '-')
}

/// Splits `NAME@N` into the name and N, when what follows the last `@` is a number.
fn split_version(reference: &str) -> Option<(&str, u32)> {
    let (base, version) = reference.rsplit_once('@')?;
    let version = version.parse().ok()?;
    (!base.is_empty()).then_some((base, version))
}

/// Returns the version (the latest when `None`) of the workflow whose URI is `base`, else of
/// the one whose display name is `base`; `None` when neither is registered.
fn by_identity(
    all: &[WorkflowSummary],
    base: &str,
    version: Option<u32>,
) -> Result<Option<WorkflowSummary>, Error> {
    let of_uri: Vec<&WorkflowSummary> = all.iter().filter(|w| w.uri == base).collect();
    if !of_uri.is_empty() {
        return pick(&of_uri, base, version).map(Some);
    }
    let mut by_uri: BTreeMap<&str, Vec<&WorkflowSummary>> = BTreeMap::new();
    for w in all.iter().filter(|w| w.name == base) {
        by_uri.entry(w.uri.as_str()).or_default().push(w);
    }
    let mut uris = by_uri.into_values();
    match (uris.next(), uris.len()) {
        (None, _) => Ok(None),
        (Some(versions), 0) => pick(&versions, base, version).map(Some),
        (Some(first), _) => Err(Error::AmbiguousWorkflow {
            reference: base.to_owned(),
            matches: std::iter::once(first)
                .chain(uris)
                .map(|versions| {
                    let latest = latest(&versions);
                    let uri = latest.map_or("", |w| w.uri.as_str());
                    let v = latest.map_or(0, |w| w.version);
                    format!("{uri} (latest version {v})")
                })
                .collect(),
            hint: "give the URI",
        }),
    }
}

fn latest<'a>(versions: &[&'a WorkflowSummary]) -> Option<&'a WorkflowSummary> {
    versions.iter().copied().max_by_key(|w| w.version)
}

/// Returns `version` (the latest when `None`) among the versions of one URI.
fn pick(
    versions: &[&WorkflowSummary],
    label: &str,
    version: Option<u32>,
) -> Result<WorkflowSummary, Error> {
    let newest = latest(versions).ok_or_else(|| Error::UnknownWorkflowName(label.to_owned()))?;
    let Some(wanted) = version else {
        return Ok(newest.clone());
    };
    versions
        .iter()
        .find(|w| w.version == wanted)
        .map(|w| (*w).clone())
        .ok_or_else(|| Error::UnknownWorkflowVersion {
            workflow: label.to_owned(),
            version: wanted,
            latest: newest.version,
        })
}

/// Returns the one workflow whose id starts with `prefix` (as the tables shorten them).
fn by_id_prefix(all: Vec<WorkflowSummary>, reference: &str) -> Result<WorkflowSummary, Error> {
    let prefix = id_prefix(reference);
    let mut matches: Vec<WorkflowSummary> = if looks_like_id(&prefix) {
        all.into_iter()
            .filter(|w| w.id.to_string().starts_with(&prefix))
            .collect()
    } else {
        Vec::new()
    };
    let unknown = || Error::UnknownWorkflowName(reference.to_owned());
    match matches.len() {
        0 => Err(unknown()),
        1 => matches.pop().ok_or_else(unknown),
        _ => Err(Error::AmbiguousWorkflow {
            reference: reference.to_owned(),
            matches: matches
                .iter()
                .map(|w| format!("{} ({} version {})", w.id, w.name, w.version))
                .collect(),
            hint: "give more of the id",
        }),
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, clippy::panic)]

    use knhk_core::Timestamp;
    use uuid::Uuid;

    use super::*;
    use crate::view::SourceFormat;

    fn w(n: u128, uri: &str, name: &str, version: u32) -> WorkflowSummary {
        WorkflowSummary {
            id: WorkflowId(Uuid::from_u128(
                0xabc0_0000_0000_0000_0000_0000_0000_0000 + n,
            )),
            uri: uri.to_owned(),
            name: name.to_owned(),
            version,
            format: SourceFormat::Turtle,
            tasks: 0,
            registered_at: Timestamp(0),
        }
    }

    fn all() -> Vec<WorkflowSummary> {
        vec![
            w(1, "urn:shop:order", "Order", 1),
            w(2, "urn:shop:order", "Order", 2),
            w(3, "urn:other:order", "Order", 1),
            w(4, "urn:loan", "Loan", 1),
            w(5, "mailto:a@example.org", "Mail@3", 1),
        ]
    }

    fn found(reference: &str) -> u128 {
        match find(all(), reference) {
            Ok(w) => w.id.0.as_u128() & 0xff,
            Err(e) => panic!("{reference}: {e}"),
        }
    }

    #[test]
    fn a_uri_or_a_name_means_the_latest_version_and_at_n_another() {
        assert_eq!(found("urn:shop:order"), 2);
        assert_eq!(found("urn:shop:order@1"), 1);
        assert_eq!(found("Loan"), 4);
        assert_eq!(found("Loan@1"), 4);
        // An `@` that is part of the URI or the name.
        assert_eq!(found("mailto:a@example.org"), 5);
        assert_eq!(found("Mail@3"), 5);
        // A prefix of an id.
        assert_eq!(found("abc00000-0000-0000-0000-000000000004"), 4);
    }

    #[test]
    fn a_name_of_two_uris_lists_them() {
        let err = find(all(), "Order").unwrap_err().to_string();
        assert_eq!(
            err,
            "Order names 2 workflows: urn:other:order (latest version 1), \
             urn:shop:order (latest version 2); give the URI"
        );
    }

    #[test]
    fn unknown_versions_names_and_ambiguous_prefixes_are_refused() {
        assert_eq!(
            find(all(), "Loan@7").unwrap_err().to_string(),
            "workflow Loan has no version 7 (its latest is 1)"
        );
        assert_eq!(
            find(all(), "Lease").unwrap_err().to_string(),
            "unknown workflow Lease: no workflow has it as id, URI or name"
        );
        let err = find(all(), "abc").unwrap_err();
        assert!(
            matches!(&err, Error::AmbiguousWorkflow { matches, .. } if matches.len() == 5),
            "{err}"
        );
    }
}
