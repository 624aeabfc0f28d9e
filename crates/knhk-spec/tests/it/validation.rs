//! One small invalid definition per rule: each is refused with an error naming the element's
//! IRI and the rule it breaks.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)] // tests fail loudly

use knhk_spec::{Error, Source};

const BASE: &str = "file:///defs/wf.ttl";

/// A valid net: start -> A -> B -> end, with `extra` Turtle appended and `(from, to)`
/// replacements applied to the text.
fn definition(replace: &[(&str, &str)], extra: &str) -> String {
    let mut text = String::from(
        r#"@prefix yawl: <http://www.yawlfoundation.org/yawlschema#> .
@prefix knhk: <https://knhk.dev/ns#> .
<#Spec> a yawl:Specification ; yawl:hasDecomposition <#Net> .
<#Net> a yawl:Net ; yawl:isRootNet true ;
    yawl:hasInputCondition <#start> ; yawl:hasOutputCondition <#end> ;
    yawl:hasTask <#A>, <#B> .
<#start> a yawl:InputCondition ; yawl:flowsInto [ yawl:nextElementRef <#A> ] .
<#A> a yawl:Task ; yawl:flowsInto [ yawl:nextElementRef <#B> ] .
<#B> a yawl:Task ; yawl:flowsInto [ yawl:nextElementRef <#end> ] .
<#end> a yawl:OutputCondition .
"#,
    );
    for (from, to) in replace {
        assert!(text.contains(from), "template has no {from}");
        text = text.replace(from, to);
    }
    text.push_str(extra);
    text
}

fn source(text: &str) -> Source<'_> {
    Source {
        name: "wf.ttl",
        base_iri: BASE,
        text,
    }
}

/// Loads `text`, expecting it refused; returns (IRI fragment, element id, rule) per violation.
fn violations(text: &str) -> Vec<(String, String, String)> {
    match knhk_spec::load_turtle(&source(text)) {
        Ok(_) => panic!("definition loaded, but it should be refused:\n{text}"),
        Err(Error::Invalid { file, violations }) => {
            assert_eq!(file, "wf.ttl");
            violations
                .into_iter()
                .map(|v| {
                    let iri = v.iri.strip_prefix(BASE).unwrap_or(&v.iri).to_owned();
                    (iri, v.element, v.rule)
                })
                .collect()
        }
        Err(other) => panic!("expected an invalid definition, got: {other}"),
    }
}

/// Loads `text`, expecting it loaded; returns (IRI fragment, element id, note) per note.
fn notes(text: &str) -> Vec<(String, String, String)> {
    let loaded = knhk_spec::load_turtle_with(&source(text), &knhk_spec::Options::default())
        .unwrap_or_else(|e| panic!("definition refused: {e}\n{text}"));
    loaded
        .notes
        .into_iter()
        .map(|n| {
            assert_eq!(n.file, "wf.ttl");
            let iri = n.iri.strip_prefix(BASE).unwrap_or(&n.iri).to_owned();
            (iri, n.element, n.note)
        })
        .collect()
}

fn v(iri: &str, element: &str, rule: &str) -> (String, String, String) {
    (iri.to_owned(), element.to_owned(), rule.to_owned())
}

#[test]
fn the_template_is_valid() {
    knhk_spec::load_turtle(&source(&definition(&[], ""))).unwrap();
}

#[test]
fn a_flow_to_an_unknown_element_is_refused() {
    let text = definition(&[("nextElementRef <#B>", "nextElementRef <#Nowhere>")], "");
    assert_eq!(
        violations(&text),
        [v(
            "#A",
            "A",
            "a flow (yawl:nextElementRef) refers to <file:///defs/wf.ttl#Nowhere>, which is no task or condition of any net"
        )]
    );
}

#[test]
fn a_cancellation_of_an_unknown_element_is_refused() {
    let text = definition(&[], "<#B> yawl:hasRemovesTokens <#Ghost> .\n");
    assert_eq!(
        violations(&text),
        [v(
            "#B",
            "B",
            "yawl:hasRemovesTokens refers to <file:///defs/wf.ttl#Ghost>, which is no task or condition of any net"
        )]
    );
}

#[test]
fn two_input_conditions_are_refused() {
    let text = definition(
        &[],
        "<#Net> yawl:hasInputCondition <#start2> .\n<#start2> a yawl:InputCondition .\n",
    );
    assert_eq!(
        violations(&text),
        [v(
            "#Net",
            "Net",
            "the net has 2 input conditions; a net has exactly one"
        )]
    );
}

#[test]
fn a_net_without_output_condition_is_refused() {
    let text = definition(&[("yawl:hasOutputCondition <#end> ;", "")], "");
    assert_eq!(
        violations(&text),
        [
            v(
                "#Net",
                "Net",
                "the net has no output condition (yawl:hasOutputCondition)"
            ),
            // With no output condition, <#end> is no element: the flow into it dangles too.
            v(
                "#B",
                "B",
                "a flow (yawl:nextElementRef) refers to <file:///defs/wf.ttl#end>, which is no task or condition of any net"
            ),
        ]
    );
}

#[test]
fn an_unreachable_task_is_refused() {
    let text = definition(
        &[("yawl:hasTask <#A>, <#B>", "yawl:hasTask <#A>, <#B>, <#C>")],
        "<#C> a yawl:Task ; yawl:flowsInto [ yawl:nextElementRef <#end> ] .\n",
    );
    assert_eq!(
        violations(&text),
        [v("#C", "C", "task has no incoming flow")]
    );
}

#[test]
fn an_output_condition_with_a_flow_out_is_refused() {
    let text = definition(
        &[(
            "<#end> a yawl:OutputCondition .",
            "<#end> a yawl:OutputCondition ; yawl:flowsInto [ yawl:nextElementRef <#A> ] .",
        )],
        "",
    );
    assert_eq!(
        violations(&text),
        [v(
            "#end",
            "end",
            "the output condition has an outgoing flow"
        )]
    );
}

#[test]
fn an_xor_split_with_two_default_flows_is_refused() {
    let text = definition(
        &[(
            "<#A> a yawl:Task ; yawl:flowsInto [ yawl:nextElementRef <#B> ] .",
            "<#A> a yawl:Task ; yawl:flowsInto [ yawl:nextElementRef <#B> ; yawl:isDefaultFlow true ], \
             [ yawl:nextElementRef <#end> ; yawl:isDefaultFlow true ] .",
        )],
        "",
    );
    assert_eq!(
        violations(&text),
        [v("#A", "A", "more than one default flow")]
    );
}

#[test]
fn an_and_split_with_predicates_is_refused() {
    let text = definition(
        &[(
            "<#A> a yawl:Task ; yawl:flowsInto [ yawl:nextElementRef <#B> ] .",
            "<#A> a yawl:Task ; yawl:hasSplit yawl:ControlTypeAnd ; \
             yawl:flowsInto [ yawl:nextElementRef <#B> ; knhk:predicate \"x > 1\" ], [ yawl:nextElementRef <#end> ] .",
        )],
        "",
    );
    assert_eq!(
        violations(&text),
        [v(
            "#A",
            "A",
            "flows of an AND split cannot have predicates or a default flow"
        )]
    );
}

#[test]
fn an_and_join_with_one_incoming_flow_loads_with_a_note() {
    let text = definition(&[], "<#B> yawl:hasJoin yawl:ControlTypeAnd .\n");
    assert_eq!(
        notes(&text),
        [v(
            "#B",
            "B",
            "the AND join has one incoming flow and behaves as a plain one"
        )]
    );
}

#[test]
fn an_and_split_with_one_guarded_flow_loads_with_a_note() {
    let text = definition(
        &[(
            "<#A> a yawl:Task ; yawl:flowsInto [ yawl:nextElementRef <#B> ]",
            "<#A> a yawl:Task ; yawl:hasSplit yawl:ControlTypeAnd ; yawl:flowsInto [ yawl:nextElementRef <#B> ; yawl:hasPredicate [ yawl:query \"false()\" ] ; yawl:isDefaultFlow true ]",
        )],
        "",
    );
    assert_eq!(
        notes(&text),
        [v(
            "#A",
            "A",
            "the AND split has one outgoing flow and behaves as a plain one (taken whatever its predicate)"
        )]
    );
}

#[test]
fn a_multiple_instance_minimum_above_maximum_is_refused() {
    let text = definition(
        &[("<#A> a yawl:Task", "<#A> a yawl:MultipleInstanceTask")],
        "<#A> yawl:minimum \"3\" ; yawl:maximum 2 .\n",
    );
    assert_eq!(
        violations(&text),
        [v(
            "#A",
            "A",
            "multiple-instance maximum 2 is below the minimum 3"
        )]
    );
}

#[test]
fn a_multiple_instance_threshold_above_maximum_loads_with_a_note() {
    let text = definition(
        &[("<#A> a yawl:Task", "<#A> a yawl:MultipleInstanceTask")],
        "<#A> yawl:minimum 1 ; yawl:maximum 2 ; yawl:threshold 5 .\n",
    );
    assert_eq!(
        notes(&text),
        [v(
            "#A",
            "A",
            "multiple-instance threshold 5 is above the maximum 2: the task completes when all its instances did"
        )]
    );
}

#[test]
fn a_cel_syntax_error_is_refused() {
    let text = definition(
        &[(
            "nextElementRef <#B> ]",
            "nextElementRef <#B> ; knhk:predicate \"amount >\" ]",
        )],
        "",
    );
    let found = violations(&text);
    assert_eq!(found.len(), 1, "{found:?}");
    let (iri, element, rule) = &found[0];
    assert_eq!((iri.as_str(), element.as_str()), ("#A", "A"));
    assert!(rule.contains("amount >"), "{rule}");
}

#[test]
fn an_unsupported_xpath_is_refused() {
    let text = definition(
        &[(
            "nextElementRef <#B> ]",
            "nextElementRef <#B> ; yawl:hasPredicate [ yawl:query \"count(/data/item) > 2\" ] ]",
        )],
        "",
    );
    let found = violations(&text);
    assert_eq!(found.len(), 1, "{found:?}");
    let (iri, element, rule) = &found[0];
    assert_eq!((iri.as_str(), element.as_str()), ("#A", "A"));
    assert!(
        rule.contains("xpath expression `count(/data/item) > 2` is not supported"),
        "{rule}"
    );
}

#[test]
fn a_task_with_a_connector_and_roles_is_refused() {
    let text = definition(
        &[],
        "<#A> knhk:connector \"http\" ; knhk:role \"clerk\" .\n",
    );
    assert_eq!(
        violations(&text),
        [v(
            "#A",
            "A",
            "a task is performed one way only, but this one has a connector (knhk:connector) and roles (knhk:role)"
        )]
    );
}

#[test]
fn an_unsupported_yawl_term_is_refused() {
    let text = definition(&[], "<#A> yawl:hasResourcing [ yawl:hasOffer [] ] .\n");
    let found = violations(&text);
    assert!(
        found.contains(&v(
            "#A",
            "A",
            "uses yawl:hasResourcing, which knhk does not support (refused rather than ignored, as it may change how the workflow runs)"
        )),
        "{found:?}"
    );
}

#[test]
fn an_unknown_knhk_term_is_refused() {
    let text = definition(&[], "<#A> knhk:conector \"http\" .\n");
    assert_eq!(
        violations(&text),
        [v("#A", "A", "uses knhk:conector, which is not a knhk term")]
    );
}

#[test]
fn a_bad_control_type_is_refused() {
    let text = definition(&[], "<#A> yawl:hasSplit yawl:ControlTypeNand .\n");
    assert_eq!(
        violations(&text),
        [v(
            "#A",
            "A",
            "yawl:hasSplit must be one of ControlTypeAnd, ControlTypeXor, ControlTypeOr, not <http://www.yawlfoundation.org/yawlschema#ControlTypeNand>"
        )]
    );
}

#[test]
fn a_non_numeric_bound_is_refused() {
    let text = definition(
        &[("<#A> a yawl:Task", "<#A> a yawl:MultipleInstanceTask")],
        "<#A> yawl:minimum \"three\" .\n",
    );
    assert_eq!(
        violations(&text),
        [v(
            "#A",
            "A",
            "yawl:minimum must be a whole number in range, not \"three\""
        )]
    );
}

#[test]
fn two_elements_with_one_id_are_refused() {
    let text = definition(&[], "<#B> yawl:id \"A\" .\n");
    assert_eq!(
        violations(&text),
        [
            v(
                "#B",
                "A",
                "has id \"A\", which <file:///defs/wf.ttl#A> already has"
            ),
            v(
                "#A",
                "A",
                "a flow (yawl:nextElementRef) refers to <file:///defs/wf.ttl#B>, which is no task or condition of any net"
            ),
        ]
    );
}

#[test]
fn a_turtle_syntax_error_gives_its_position() {
    let text = definition(&[], "<#A> yawl:name \"unterminated .\n");
    match knhk_spec::load_turtle(&source(&text)) {
        Err(Error::Syntax {
            file,
            line,
            column,
            message,
        }) => {
            assert_eq!(file, "wf.ttl");
            assert_eq!((line, column), (11, 16), "{message}");
            let shown = Error::Syntax {
                file,
                line,
                column,
                message,
            }
            .to_string();
            assert!(
                shown.starts_with("wf.ttl:11:16: turtle syntax error: "),
                "{shown}"
            );
        }
        other => panic!("expected a syntax error, got {other:?}"),
    }
}

#[test]
fn a_file_without_specification_is_refused() {
    let text =
        "@prefix yawl: <http://www.yawlfoundation.org/yawlschema#> .\n<#x> yawl:name \"x\" .\n";
    assert_eq!(
        violations(text),
        [v(
            "",
            "wf.ttl",
            "defines no workflow: expected one yawl:Specification (or a single yawl:Net)"
        )]
    );
}

#[test]
fn unsupported_extensions_are_refused() {
    let err = knhk_spec::load_file(std::path::Path::new("workflow.bpmn")).unwrap_err();
    assert!(matches!(err, Error::UnsupportedFormat { .. }), "{err}");
    let err = knhk_spec::load_file(std::path::Path::new("/definitely/missing.ttl")).unwrap_err();
    assert!(matches!(err, Error::Io { .. }), "{err}");
    assert!(
        err.to_string()
            .starts_with("/definitely/missing.ttl: cannot read: "),
        "{err}"
    );
}

#[test]
fn the_example_in_docs_loads() {
    let doc = std::fs::read_to_string(concat!(env!("CARGO_MANIFEST_DIR"), "/../../docs/format.md"))
        .unwrap();
    let start = doc.find("```turtle\n").unwrap() + "```turtle\n".len();
    let end = start + doc[start..].find("```").unwrap();
    let workflow = knhk_spec::load_turtle(&Source {
        name: "format.md",
        base_iri: "file:///docs/expenses.ttl",
        text: &doc[start..end],
    })
    .unwrap_or_else(|e| panic!("{e}"));
    let spec = workflow.specification();
    assert_eq!(spec.id, "https://example.org/workflows/expenses");
    let tasks = &spec.nets[0].tasks;
    assert!(matches!(
        tasks[1].binding,
        knhk_core::model::TaskBinding::Human(_)
    ));
    assert!(matches!(
        tasks[2].binding,
        knhk_core::model::TaskBinding::Connector(_)
    ));
    assert!(matches!(
        tasks[3].binding,
        knhk_core::model::TaskBinding::Empty
    ));
}

#[test]
fn the_ontology_labels_and_comments_every_term_the_reader_knows() {
    use oxrdf::{NamedOrBlankNode, Term};
    let text = std::fs::read_to_string(concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/../../ontology/knhk.ttl"
    ))
    .unwrap();
    let mut labelled = std::collections::BTreeMap::<String, (bool, bool)>::new();
    for triple in oxttl::TurtleParser::new().for_slice(text.as_bytes()) {
        let triple = triple.unwrap();
        let NamedOrBlankNode::NamedNode(subject) = &triple.subject else {
            continue;
        };
        let Some(local) = subject.as_str().strip_prefix(knhk_spec::KNHK) else {
            continue;
        };
        let entry = labelled.entry(local.to_owned()).or_default();
        let is_literal = matches!(triple.object, Term::Literal(_));
        match triple.predicate.as_str() {
            "http://www.w3.org/2000/01/rdf-schema#label" => entry.0 |= is_literal,
            "http://www.w3.org/2000/01/rdf-schema#comment" => entry.1 |= is_literal,
            _ => {}
        }
    }
    for (term, (label, comment)) in &labelled {
        assert!(
            *label && *comment,
            "knhk:{term} lacks an rdfs:label or rdfs:comment"
        );
    }
    for term in [
        "connector",
        "setting",
        "key",
        "value",
        "role",
        "allocation",
        "fourEyes",
        "trigger",
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
        "timerAction",
        "RoleOffer",
        "RoundRobin",
        "ShortestQueue",
        "Expire",
        "Delay",
    ] {
        assert!(
            labelled.contains_key(term),
            "ontology/knhk.ttl does not define knhk:{term}"
        );
    }
}

fn with_limits(max_definition_bytes: usize, max_tasks: usize) -> knhk_spec::Options {
    knhk_spec::Options {
        limits: knhk_spec::Limits {
            max_definition_bytes,
            max_tasks,
        },
        ..knhk_spec::Options::default()
    }
}

#[test]
fn a_definition_larger_than_the_limits_is_refused_naming_the_bound() {
    let text = definition(&[], "");
    let too_long =
        knhk_spec::load_turtle_with(&source(&text), &with_limits(100, 10)).expect_err("refused");
    assert_eq!(
        too_long.to_string(),
        format!(
            "wf.ttl: the definition is {} bytes long, more than the 100 bytes allowed",
            text.len()
        )
    );
    let too_many =
        knhk_spec::load_turtle_with(&source(&text), &with_limits(1 << 20, 1)).expect_err("refused");
    assert_eq!(
        too_many.to_string(),
        "wf.ttl: the definition has 2 tasks, more than the 1 tasks allowed"
    );
    knhk_spec::load_turtle_with(&source(&text), &with_limits(text.len(), 2))
        .expect("at the limits it loads");
    assert_eq!(
        knhk_spec::Limits::default(),
        knhk_spec::Limits {
            max_definition_bytes: 4 * 1024 * 1024,
            max_tasks: 10_000
        }
    );
}

#[test]
fn a_trigger_kind_is_read_and_one_that_is_neither_kind_or_has_no_trigger_is_refused() {
    use knhk_core::model::{TaskBinding, TriggerKind};
    let persistent = definition(
        &[(
            "<#A> a yawl:Task ;",
            "<#A> a yawl:Task ; knhk:trigger \"paid\" ; knhk:triggerKind \"persistent\" ;",
        )],
        "",
    );
    let wf = knhk_spec::load_turtle(&source(&persistent)).unwrap();
    let a = wf.specification().nets[0]
        .tasks
        .iter()
        .find(|t| t.id.as_str() == "A")
        .unwrap();
    assert_eq!(
        a.binding,
        TaskBinding::Trigger {
            event: "paid".into(),
            trigger_kind: TriggerKind::Persistent
        }
    );
    assert!(wf.has_persistent_trigger("paid"));
    let rules = |text: String| -> Vec<String> {
        violations(&text).into_iter().map(|(_, _, r)| r).collect()
    };
    assert_eq!(
        rules(definition(
            &[(
                "<#A> a yawl:Task ;",
                "<#A> a yawl:Task ; knhk:trigger \"paid\" ; knhk:triggerKind \"sometimes\" ;",
            )],
            "",
        )),
        ["knhk:triggerKind is \"transient\" or \"persistent\", not \"sometimes\""]
    );
    assert_eq!(
        rules(definition(
            &[(
                "<#A> a yawl:Task ;",
                "<#A> a yawl:Task ; knhk:triggerKind \"persistent\" ;",
            )],
            "",
        )),
        ["knhk:triggerKind without knhk:trigger"]
    );
}
