//! Unit tests of CEL evaluation and of the XPath translation.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]
use super::*;
use serde_json::json;

fn data(value: Json) -> Map<String, Json> {
    match value {
        Json::Object(map) => map,
        other => panic!("test data must be an object, got {other}"),
    }
}

fn cel_bool(src: &str, value: Json) -> Result<bool, ExprError> {
    CompiledExpr::compile(&Expression::cel(src))?.eval_bool(&data(value))
}

fn xpath_bool(src: &str, value: Json) -> Result<bool, ExprError> {
    CompiledExpr::compile(&Expression::xpath(src))?.eval_bool(&data(value))
}

fn unsupported(src: &str) -> String {
    match translate_xpath(src) {
        Err(ExprError::UnsupportedXpath { source, message }) => {
            assert_eq!(source, src);
            message
        }
        other => panic!("expected unsupported xpath for `{src}`, got {other:?}"),
    }
}

#[test]
fn compiled_expr_is_send_and_sync() {
    fn assert_send_sync<T: Send + Sync + Clone>() {}
    assert_send_sync::<CompiledExpr>();
    assert_send_sync::<ExprError>();
}

#[test]
fn cel_predicates_evaluate_over_json_data() {
    assert!(cel_bool("cardValid == true", json!({"cardValid": true})).unwrap());
    assert!(!cel_bool("cardValid == true", json!({"cardValid": false})).unwrap());
    assert!(cel_bool("amount > 1000", json!({"amount": 1500})).unwrap());
    assert!(!cel_bool("amount > 1000", json!({"amount": 999})).unwrap());
    assert!(
        cel_bool(
            "balance >= withdrawalAmount",
            json!({"balance": 100, "withdrawalAmount": 100})
        )
        .unwrap()
    );
    assert!(
        !cel_bool(
            "balance >= withdrawalAmount",
            json!({"balance": 99.5, "withdrawalAmount": 100})
        )
        .unwrap()
    );
    assert!(
        cel_bool(
            "approved == true && amount < 5000.5",
            json!({"approved": true, "amount": 5000})
        )
        .unwrap()
    );
    assert!(
        !cel_bool(
            "approved == true && amount < 5000.5",
            json!({"approved": true, "amount": 5001})
        )
        .unwrap()
    );
    assert!(cel_bool("size(items) > 2", json!({"items": [1, 2, 3]})).unwrap());
    assert!(!cel_bool("size(items) > 2", json!({"items": [1, 2]})).unwrap());
    assert!(
        cel_bool(
            r#"customer.tier == "gold""#,
            json!({"customer": {"tier": "gold"}})
        )
        .unwrap()
    );
    assert!(
        !cel_bool(
            r#"customer.tier == "gold""#,
            json!({"customer": {"tier": "silver"}})
        )
        .unwrap()
    );
    assert!(cel_bool("note == null", json!({"note": null})).unwrap());
}

#[test]
fn int_and_double_compare_by_value() {
    assert!(cel_bool("1500.5 > 1000", json!({})).unwrap());
    assert!(cel_bool("1500 > 999.5", json!({})).unwrap());
    assert!(cel_bool("amount > 1000", json!({"amount": 1500.5})).unwrap());
    assert!(cel_bool("amount > 999.5", json!({"amount": 1500})).unwrap());
    assert!(!cel_bool("amount > 1000", json!({"amount": 999.5})).unwrap());
    assert!(cel_bool("amount == 2", json!({"amount": 2.0})).unwrap());
    assert!(cel_bool("big > 0", json!({"big": u64::MAX})).unwrap());
}

#[test]
fn whole_data_is_bound_as_data() {
    assert!(cel_bool("data.amount > 10 && size(data) == 1", json!({"amount": 11})).unwrap());
    assert!(
        cel_bool(
            r#"has(data.amount) && !has(data.other)"#,
            json!({"amount": 1})
        )
        .unwrap()
    );
    // A case variable called `data` shadows the whole object.
    assert!(cel_bool("data == 1", json!({"data": 1})).unwrap());
}

#[test]
fn eval_value_builds_objects_and_lists() {
    let total = CompiledExpr::compile(&Expression::cel(r#"{"total": amount * 2}"#)).unwrap();
    assert_eq!(
        total.eval_value(&data(json!({"amount": 21})), &[]).unwrap(),
        json!({"total": 42})
    );
    let doubled = CompiledExpr::compile(&Expression::cel("items.map(i, i * 2)")).unwrap();
    assert_eq!(
        doubled
            .eval_value(&data(json!({"items": [1, 2, 3]})), &[])
            .unwrap(),
        json!([2, 4, 6])
    );
    let nested = CompiledExpr::compile(&Expression::cel(
        r#"{"name": customer.name, "tags": ["a", customer.tier], "ratio": 0.5, "none": null}"#,
    ))
    .unwrap();
    assert_eq!(
        nested
            .eval_value(
                &data(json!({"customer": {"name": "Ada", "tier": "gold"}})),
                &[]
            )
            .unwrap(),
        json!({"name": "Ada", "tags": ["a", "gold"], "ratio": 0.5, "none": null})
    );
}

#[test]
fn extras_are_bound_and_shadow_data_keys() {
    let expr = CompiledExpr::compile(&Expression::cel("output.total + item")).unwrap();
    let output = json!({"total": 40});
    let item = json!(2);
    let case = data(json!({"item": 100, "output": {"total": 0}}));
    assert_eq!(
        expr.eval_value(&case, &[("output", &output), ("item", &item)])
            .unwrap(),
        json!(42)
    );
    assert_eq!(expr.eval_value(&case, &[]).unwrap(), json!(100));
}

#[test]
fn cel_syntax_error_names_the_expression() {
    let err = CompiledExpr::compile(&Expression::cel("amount > ")).unwrap_err();
    let ExprError::Syntax { source, message } = &err else {
        panic!("expected a syntax error, got {err:?}");
    };
    assert_eq!(source, "amount > ");
    assert!(!message.is_empty());
    assert!(
        err.to_string()
            .starts_with("expression `amount > ` does not parse: ")
    );
}

#[test]
fn unknown_variable_is_an_eval_error() {
    let err = cel_bool("missing > 1", json!({"amount": 1})).unwrap_err();
    let ExprError::Eval { source, message } = &err else {
        panic!("expected an eval error, got {err:?}");
    };
    assert_eq!(source, "missing > 1");
    assert!(message.contains("missing"), "{message}");
    assert!(
        err.to_string()
            .starts_with("expression `missing > 1` failed to evaluate: ")
    );
}

#[test]
fn missing_key_and_mixed_arithmetic_are_eval_errors() {
    assert!(matches!(
        cel_bool("customer.tier == 'gold'", json!({"customer": {}})),
        Err(ExprError::Eval { .. })
    ));
    assert!(matches!(
        cel_bool("amount + 1.5 > 0", json!({"amount": 1})),
        Err(ExprError::Eval { .. })
    ));
}

#[test]
fn non_boolean_predicate_is_refused() {
    let err = cel_bool("amount + 1", json!({"amount": 1})).unwrap_err();
    assert_eq!(
        err,
        ExprError::NotBoolean {
            source: "amount + 1".to_owned(),
            got: "int 2".to_owned(),
        }
    );
    assert_eq!(
        err.to_string(),
        "expression `amount + 1` is not a boolean: got int 2"
    );
    assert!(matches!(
        cel_bool("name", json!({"name": "x"})),
        Err(ExprError::NotBoolean { .. })
    ));
}

#[test]
fn accessors_and_debug_show_source_and_cel() {
    let expr = CompiledExpr::compile(&Expression::xpath("/data/amount > 100")).unwrap();
    assert_eq!(expr.source(), &Expression::xpath("/data/amount > 100"));
    assert_eq!(expr.cel_source(), "amount > 100");
    let debug = format!("{expr:?}");
    assert!(debug.contains("/data/amount > 100"), "{debug}");
    assert!(debug.contains("\"amount > 100\""), "{debug}");
    let cel = CompiledExpr::compile(&Expression::cel("a == 1")).unwrap();
    assert_eq!(cel.cel_source(), "a == 1");
    let copy = cel.clone();
    assert!(copy.eval_bool(&data(json!({"a": 1}))).unwrap());
}

#[test]
fn xpath_translates_the_supported_forms() {
    let cases = [
        ("condition_b = true()", "condition_b == true"),
        ("true()", "true"),
        ("false()", "false"),
        (" true ( ) ", "true"),
        ("/data/amount > 100", "amount > 100"),
        ("/net/data/amount > 100", "data.amount > 100"),
        (
            "/Order/customer/tier = 'gold'",
            r#"customer.tier == "gold""#,
        ),
        ("/Order", "data"),
        ("amount >= 10", "amount >= 10"),
        ("customer/tier != \"gold\"", r#"customer.tier != "gold""#),
        ("a < 1 and b <= 2", "a < 1 && b <= 2"),
        ("a > 1 or b >= 2", "a > 1 || b >= 2"),
        ("not(a = 1)", "!(a == 1)"),
        ("not(a) and (b or c)", "!(a) && (b || c)"),
        ("a = 1 or b = 2 and c = 3", "a == 1 || b == 2 && c == 3"),
        ("x = -5", "x == -5"),
        ("x < .5 and y > 2.", "x < 0.5 && y > 2.0"),
        ("x = 1.25", "x == 1.25"),
        ("a = b < c", "a == (b < c)"),
        ("s = 'say \"hi\"'", r#"s == "say \"hi\"""#),
        ("s = 'back\\slash'", r#"s == "back\\slash""#),
        ("s = \"it's\"", r#"s == "it's""#),
        ("and = 1", "and == 1"),
    ];
    for (xpath, cel) in cases {
        assert_eq!(
            translate_xpath(xpath).unwrap(),
            cel,
            "translating `{xpath}`"
        );
    }
}

#[test]
fn xpath_predicates_evaluate() {
    assert!(xpath_bool("condition_b = true()", json!({"condition_b": true})).unwrap());
    assert!(!xpath_bool("condition_b = true()", json!({"condition_b": false})).unwrap());
    assert!(xpath_bool("true()", json!({})).unwrap());
    assert!(!xpath_bool("false()", json!({})).unwrap());
    assert!(xpath_bool("/data/amount > 100", json!({"amount": 150})).unwrap());
    assert!(!xpath_bool("/data/amount > 100", json!({"amount": 50})).unwrap());
    assert!(xpath_bool("/net/data/amount > 100", json!({"data": {"amount": 150}})).unwrap());
    // Without a variable called `data`, `data` is the whole case data.
    assert!(xpath_bool("/net/data/amount > 100", json!({"amount": 150})).unwrap());
    assert!(xpath_bool("/Order/total = 3", json!({"total": 3})).unwrap());
    assert!(
        xpath_bool(
            "/Order/customer/tier = 'gold'",
            json!({"customer": {"tier": "gold"}})
        )
        .unwrap()
    );
    assert!(
        xpath_bool(
            "amount >= 10 and not(blocked)",
            json!({"amount": 10, "blocked": false})
        )
        .unwrap()
    );
    assert!(
        xpath_bool(
            "amount < 5 or vip = true()",
            json!({"amount": 10, "vip": true})
        )
        .unwrap()
    );
    assert!(xpath_bool("amount > 1000", json!({"amount": 1500.5})).unwrap());
    assert!(xpath_bool("a = b < c", json!({"a": true, "b": 1, "c": 2})).unwrap());
}

#[test]
fn a_final_text_step_reads_the_element_value_as_the_yawl_editor_writes_it() {
    assert_eq!(
        translate_xpath("/Net/amount/text() > 5").unwrap(),
        translate_xpath("/Net/amount > 5").unwrap()
    );
    assert!(
        xpath_bool(
            "/Net/order/amount/text() > 5",
            json!({"order": {"amount": 6}})
        )
        .unwrap()
    );
    assert!(xpath_bool("number(/Net/amount/text()) > 5", json!({"amount": 6})).is_err());
}

#[test]
fn xpath_outside_the_subset_is_refused_naming_the_part() {
    assert!(unsupported("count(/data/items) > 2").contains("`count()`"));
    assert!(unsupported("//amount > 1").contains("`//`"));
    assert!(unsupported("/data/../amount > 1").contains("`..`"));
    assert!(unsupported("/data/@id = 1").contains("`@`"));
    assert!(unsupported("/data/items[1] = 2").contains("[...]"));
    assert!(unsupported("/data/amount/text()/x = '1'").contains("`text()`"));
    assert!(unsupported("text() = '1'").contains("`text()`"));
    assert!(unsupported("a + 1 > 2").contains("`+`"));
    assert!(unsupported("a - 1 > 2").contains("`-`"));
    assert!(unsupported("a div 2 > 1").contains("`div`"));
    assert!(unsupported("a * 2 > 1").contains("`*`"));
    assert!(unsupported("/data/* = 1").contains("`*`"));
    assert!(unsupported("a | b").contains("`|`"));
    assert!(unsupported("$x = 1").contains("`$`"));
    assert!(unsupported("child::a = 1").contains("`::`"));
    assert!(unsupported("ns:a = 1").contains("`:`"));
    assert!(unsupported(". = 1").contains("`.`"));
    assert!(unsupported("order-id = 1").contains("`order-id`"));
    assert!(unsupported("a.b = 1").contains("`a.b`"));
    assert!(unsupported("true = 1").contains("`true`"));
    assert!(unsupported("/data/in = 1").contains("`in`"));
    assert!(unsupported("(a)/b").contains("`/`"));
    assert!(unsupported("/").contains("`/`"));
    assert!(unsupported("-a > 1").contains("negation"));
    let err = CompiledExpr::compile(&Expression::xpath("contains(name, 'x')")).unwrap_err();
    assert_eq!(
        err.to_string(),
        "xpath expression `contains(name, 'x')` is not supported: the function `contains()` \
         is not supported, only `true()`, `false()` and `not()` are"
    );
}

#[test]
fn malformed_xpath_is_a_syntax_error() {
    for src in [
        "a = 'open",
        "(a = 1",
        "a = ",
        "",
        "a b",
        "not(a",
        "true(1)",
        "a = 1)",
        "a # 1",
    ] {
        assert!(
            matches!(translate_xpath(src), Err(ExprError::Syntax { ref source, .. }) if source == src),
            "`{src}` gave {:?}",
            translate_xpath(src)
        );
    }
}
