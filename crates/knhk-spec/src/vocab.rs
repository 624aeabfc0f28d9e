//! The vocabularies read and written: YAWL 4, the legacy v2 vocabulary and knhk's extension,
//! with the terms of each that are supported or knowingly ignored.

pub(crate) const RDF_TYPE: &str = "http://www.w3.org/1999/02/22-rdf-syntax-ns#type";

/// The YAWL 4 namespace (`yawl:` in YAWL-4 files).
pub const YAWL: &str = "http://www.yawlfoundation.org/yawlschema#";
/// The namespace of the legacy v2 vocabulary (`yawl:` in the financial legacy files).
pub const LEGACY: &str = "http://bitflow.ai/ontology/yawl/v2#";
/// knhk's extension namespace (`knhk:`), published as `ontology/knhk.ttl`.
pub const KNHK: &str = "https://knhk.dev/ns#";

/// Returns the full IRI of a YAWL 4 term.
pub(crate) fn yawl(local: &str) -> String {
    format!("{YAWL}{local}")
}

/// Returns the full IRI of a legacy v2 term.
pub(crate) fn legacy(local: &str) -> String {
    format!("{LEGACY}{local}")
}

/// Returns the full IRI of a knhk term.
pub(crate) fn knhk(local: &str) -> String {
    format!("{KNHK}{local}")
}

/// YAWL 4 predicates read by knhk (on whichever node they belong to).
pub(crate) const YAWL_SUPPORTED: &[&str] = &[
    "id",
    "name",
    "documentation",
    "uri",
    "version",
    "hasDecomposition",
    "isRootNet",
    "hasInputCondition",
    "hasOutputCondition",
    "hasTask",
    "hasCondition",
    "flowsInto",
    "nextElementRef",
    "hasPredicate",
    "query",
    "ordering",
    "isDefaultFlow",
    "hasJoin",
    "hasSplit",
    "hasRemovesTokens",
    "minimum",
    "maximum",
    "threshold",
    "hasCreationMode",
    "hasTimer",
    "hasTrigger",
    "hasDurationParams",
    "ticks",
    "hasInterval",
    "duration",
    "hasDecomposesTo",
    "hasRemovesTokensFromFlow",
    "flowSource",
    "flowDestination",
    "hasLocalVariable",
    "initialValue",
];

/// YAWL 4 predicates ignored on purpose: they describe, lay out or type data, and change
/// nothing about how a case runs in knhk (case data is untyped JSON).
pub(crate) const YAWL_IGNORED: &[&str] = &[
    "hasMetadata",
    "hasLayout",
    "title",
    "creator",
    "subject",
    "description",
    "contributor",
    "coverage",
    "validFrom",
    "validUntil",
    "created",
    "status",
    "persistent",
    "identifier",
    "hasInputParameter",
    "hasOutputParameter",
    "index",
    "type",
    "namespace",
    "element",
    "isUntyped",
    "mandatory",
    "defaultValue",
    "hasLogPredicate",
    "customForm",
    "hasSpecification",
];

/// Legacy v2 predicates read by knhk.
pub(crate) const LEGACY_SUPPORTED: &[&str] = &[
    "specName",
    "version",
    "hasInputCondition",
    "hasOutputCondition",
    "hasTask",
    "hasCondition",
    "hasFlow",
    "taskName",
    "conditionName",
    "join",
    "split",
    "flowsFrom",
    "flowsInto",
    "predicate",
    "isDefaultFlow",
    "cancellationRegion",
    "cancels",
    "minInstances",
    "maxInstances",
    "threshold",
    "creationMode",
    "timeout",
    "maxRetries",
];

/// Legacy v2 predicates ignored on purpose (see docs/format.md for why each is harmless).
pub(crate) const LEGACY_IGNORED: &[&str] = &[
    "hasInputParameter",
    "hasOutputParameter",
    "paramName",
    "paramType",
    "milestone",
    "multipleInstanceType",
    "description",
];

/// knhk predicates.
pub(crate) const KNHK_SUPPORTED: &[&str] = &[
    "connector",
    "setting",
    "key",
    "value",
    "role",
    "allocation",
    "fourEyes",
    "distributedAtRuntime",
    "trigger",
    "triggerKind",
    "inputMapping",
    "outputMapping",
    "maxAttempts",
    "backoffMs",
    "timeoutMs",
    "sloClass",
    "splitExpression",
    "itemVariable",
    "joinVariable",
    "predicate",
    "onFailure",
    "timerAction",
];

/// Tells why a predicate cannot be read, if it is in one of the three namespaces and is
/// neither supported nor knowingly ignored. Other namespaces (rdfs:, dc:, ...) are ignored.
pub(crate) fn unsupported(predicate: &str) -> Option<String> {
    let known = |local: &str, lists: &[&[&str]]| lists.iter().any(|l| l.contains(&local));
    if let Some(local) = predicate.strip_prefix(YAWL) {
        if !known(local, &[YAWL_SUPPORTED, YAWL_IGNORED]) {
            return Some(format!(
                "uses yawl:{local}, which knhk does not support (refused rather than ignored, as it may change how the workflow runs)"
            ));
        }
    } else if let Some(local) = predicate.strip_prefix(LEGACY) {
        if !known(local, &[LEGACY_SUPPORTED, LEGACY_IGNORED]) {
            return Some(format!(
                "uses legacy yawl:{local}, which knhk does not support (refused rather than ignored, as it may change how the workflow runs)"
            ));
        }
    } else if let Some(local) = predicate.strip_prefix(KNHK)
        && !known(local, &[KNHK_SUPPORTED])
    {
        return Some(format!("uses knhk:{local}, which is not a knhk term"));
    }
    None
}
