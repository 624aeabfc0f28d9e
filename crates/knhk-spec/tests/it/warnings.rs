//! The static checks of `Loaded::warnings`: each warning on a small net that has the mistake,
//! and none on the same net once it is put right.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)] // tests fail loudly

use knhk_spec::{ExpressionSite, Source, Warning, WarningKind};

/// start -> A -> (B if `amount > 10`, else C) -> end, with `net` added to the net's
/// properties, `a` and `b` to task A's and task B's, and `(from, to)` replacements applied.
fn definition(net: &str, a: &str, b: &str, replace: &[(&str, &str)]) -> String {
    let mut text = format!(
        r#"@prefix yawl: <http://www.yawlfoundation.org/yawlschema#> .
@prefix knhk: <https://knhk.dev/ns#> .
<#Spec> a yawl:Specification ; yawl:hasDecomposition <#Net> .
<#Net> a yawl:Net ; yawl:id "Net" ; yawl:isRootNet true ; {net}
    yawl:hasInputCondition <#start> ; yawl:hasOutputCondition <#end> ;
    yawl:hasTask <#A>, <#B>, <#C> .
<#start> a yawl:InputCondition ; yawl:flowsInto [ yawl:nextElementRef <#A> ] .
<#A> a yawl:Task ; yawl:id "A" ; yawl:hasSplit yawl:ControlTypeXor ; {a}
    yawl:flowsInto [ yawl:nextElementRef <#B> ; knhk:predicate "amount > 10" ; yawl:ordering 1 ],
                   [ yawl:nextElementRef <#C> ; yawl:isDefaultFlow true ] .
<#B> a yawl:Task ; yawl:id "B" ; {b} yawl:flowsInto [ yawl:nextElementRef <#end> ] .
<#C> a yawl:Task ; yawl:id "C" ; yawl:flowsInto [ yawl:nextElementRef <#end> ] .
<#end> a yawl:OutputCondition .
"#
    );
    for (from, to) in replace {
        assert!(text.contains(from), "template has no {from}");
        text = text.replace(from, to);
    }
    text
}

fn warnings(text: &str) -> Vec<Warning> {
    let source = Source {
        name: "wf.ttl",
        base_iri: "file:///defs/wf.ttl",
        text,
    };
    knhk_spec::load_turtle_with(&source, &knhk_spec::Options::default())
        .unwrap_or_else(|e| panic!("{e}\n{text}"))
        .warnings()
}

fn kinds(text: &str) -> Vec<WarningKind> {
    warnings(text).into_iter().map(|w| w.kind).collect()
}

const AMOUNT: &str = r#"yawl:hasLocalVariable [ yawl:name "amount" ] ;"#;

#[test]
fn a_name_that_no_variable_declares_and_no_task_gives_is_warned() {
    let found = warnings(&definition("", "", "", &[]));
    assert_eq!(
        found,
        [Warning {
            net: "Net".to_owned(),
            task: "A".to_owned(),
            kind: WarningKind::UnknownName {
                expression: ExpressionSite::Predicate { to: "B".to_owned() },
                name: "amount".to_owned(),
            },
        }]
    );
    assert_eq!(
        found[0].to_string(),
        "task \"A\" of net \"Net\": the predicate of its flow to \"B\" reads amount, which no \
         variable declares and no task's output mapping gives"
    );
    assert_eq!(found[0].kind.code(), "unknown_name");
}

#[test]
fn a_declared_variable_a_parameter_an_initial_value_or_a_mapped_output_is_known() {
    let known = [
        definition(AMOUNT, "", "", &[]),
        definition(
            r#"yawl:hasInputParameter [ yawl:name "amount" ] ;"#,
            "",
            "",
            &[],
        ),
        definition(
            r#"yawl:hasLocalVariable [ yawl:name "amount" ; yawl:type "long" ; yawl:initialValue "3" ] ;"#,
            "",
            "",
            &[],
        ),
        // A task before the split gives it (here A itself, by its output mapping).
        definition(
            "",
            r#"knhk:role "clerk" ; knhk:outputMapping "{'amount': output.items.map(i, i.price)[0]}" ;"#,
            "",
            &[],
        ),
    ];
    for text in known {
        assert_eq!(kinds(&text), [], "{text}");
    }
}

#[test]
fn names_in_mappings_are_checked_with_what_each_mapping_sees() {
    // `output` is bound in an output mapping, not in an input mapping.
    let text = definition(
        AMOUNT,
        r#"knhk:role "clerk" ; knhk:inputMapping "{'seen': output}" ; knhk:outputMapping "{'total': output.n + amount}" ;"#,
        "",
        &[],
    );
    assert_eq!(
        kinds(&text),
        [WarningKind::UnknownName {
            expression: ExpressionSite::InputMapping,
            name: "output".to_owned(),
        }]
    );
}

const HTTP: &str = r#"knhk:connector "http" ;
    knhk:setting [ knhk:key "method" ; knhk:value "GET" ] ,
                 [ knhk:key "url" ; knhk:value "https://api.example.org/orders/{order_id}?key={idempotency_key}" ] ;"#;

#[test]
fn a_url_placeholder_the_input_may_not_have_is_warned() {
    let missing = WarningKind::PlaceholderWithoutSource {
        placeholder: "order_id".to_owned(),
    };
    // No input mapping: the case data is the input, and nothing declares order_id.
    assert_eq!(
        kinds(&definition(AMOUNT, "", HTTP, &[])),
        std::slice::from_ref(&missing)
    );
    let found = warnings(&definition(AMOUNT, "", HTTP, &[]));
    assert_eq!(
        found[0].to_string(),
        "task \"B\" of net \"Net\": its url placeholder {order_id} has no source: the task's \
         input may have no field order_id"
    );
    // An input mapping that builds other keys.
    let mapped = format!(r#"{HTTP} knhk:inputMapping "{{'id': amount}}" ;"#);
    assert_eq!(kinds(&definition(AMOUNT, "", &mapped, &[])), [missing]);

    // Put right: a declared variable, or a mapping that builds the key.
    let declared = format!(r#"{AMOUNT} yawl:hasLocalVariable [ yawl:name "order_id" ] ;"#);
    assert_eq!(kinds(&definition(&declared, "", HTTP, &[])), []);
    let mapped = format!(r#"{HTTP} knhk:inputMapping "{{'order_id': amount}}" ;"#);
    assert_eq!(kinds(&definition(AMOUNT, "", &mapped, &[])), []);
    // A mapping whose keys are only known when it runs is not second-guessed.
    let opaque = format!(r#"{HTTP} knhk:inputMapping "data" ;"#);
    assert_eq!(kinds(&definition(AMOUNT, "", &opaque, &[])), []);
}

#[test]
fn an_xor_split_whose_predicates_may_all_be_false_without_a_default_is_warned() {
    let no_default = [(
        "[ yawl:nextElementRef <#C> ; yawl:isDefaultFlow true ]",
        r#"[ yawl:nextElementRef <#C> ; knhk:predicate "amount <= 10" ; yawl:ordering 2 ]"#,
    )];
    let found = warnings(&definition(AMOUNT, "", "", &no_default));
    assert_eq!(
        found.iter().map(|w| &w.kind).collect::<Vec<_>>(),
        [&WarningKind::XorSplitWithoutDefault]
    );
    assert_eq!(
        found[0].to_string(),
        "task \"A\" of net \"Net\": every flow of its XOR split has a predicate and none is the \
         default flow: when all are false, the task fails"
    );
    // A flow that is always taken is as good as a default.
    let always = [(
        "[ yawl:nextElementRef <#C> ; yawl:isDefaultFlow true ]",
        r#"[ yawl:nextElementRef <#C> ; knhk:predicate "true" ; yawl:ordering 2 ]"#,
    )];
    assert_eq!(kinds(&definition(AMOUNT, "", "", &always)), []);
    // The template's own split has a default flow.
    assert_eq!(kinds(&definition(AMOUNT, "", "", &[])), []);
}
