//! Unit tests of the bounds on expressions: refused at load when too long or too deep, and
//! stopped at evaluation when over budget.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]
use super::super::*;
use serde_json::json;

fn chain(terms: usize) -> String {
    vec!["1"; terms].join(" + ")
}

fn too_complex(src: &str) -> (String, String) {
    match CompiledExpr::compile(&Expression::cel(src)) {
        Err(e @ ExprError::TooComplex { .. }) => {
            let ExprError::TooComplex { message, .. } = &e else {
                unreachable!()
            };
            (message.clone(), e.to_string())
        }
        other => panic!("expected the expression to be refused as too complex, got {other:?}"),
    }
}

/// Runs `f` on a thread with the stack the `knhk` binary gives its threads: the CEL parser's
/// frames are large in a debug build.
fn on_big_stack<T: Send + 'static>(f: impl FnOnce() -> T + Send + 'static) -> T {
    std::thread::Builder::new()
        .stack_size(8 << 20)
        .spawn(f)
        .unwrap()
        .join()
        .unwrap()
}

fn eval_err(src: &str, value: Json) -> String {
    let expr = CompiledExpr::compile(&Expression::cel(src)).unwrap();
    let Json::Object(data) = value else {
        panic!("test data must be an object")
    };
    match expr.eval_value(&data, &[]) {
        Err(ExprError::Eval { message, .. }) => message,
        other => panic!("expected an evaluation error, got {other:?}"),
    }
}

#[test]
fn an_expression_of_25000_terms_is_refused_before_parsing_and_named_briefly() {
    let (message, shown) = too_complex(&chain(25_000));
    assert!(message.contains("99997 bytes long"), "{message}");
    assert!(message.contains("8192 allowed"), "{message}");
    assert!(shown.starts_with("expression `1 + 1 + "), "{shown}");
    assert!(shown.contains("... (99997 bytes)"), "{shown}");
    assert!(shown.len() < 300, "{shown}");
}

#[test]
fn a_chain_of_operators_deeper_than_the_limit_is_refused() {
    let (message, _) = too_complex(&chain(limits::MAX_NESTING + 2));
    assert!(message.contains("nested 34 levels deep"), "{message}");
    assert!(message.contains("32 allowed"), "{message}");
}

#[test]
fn brackets_nested_deeper_than_the_limit_are_refused() {
    let n = limits::MAX_NESTING;
    let (message, _) = too_complex(&format!("{}1{}", "(".repeat(n), ")".repeat(n)));
    assert!(message.contains("nested 33 levels deep"), "{message}");
    let (message, _) = too_complex(&format!("{}1{}", "[".repeat(n), "]".repeat(n)));
    assert!(message.contains("nested 33 levels deep"), "{message}");
}

#[test]
fn expressions_at_the_limits_parse_and_evaluate() {
    on_big_stack(|| {
        let n = limits::MAX_NESTING - 1;
        let deep = format!("{}1{}", "(".repeat(n), ")".repeat(n));
        let expr = CompiledExpr::compile(&Expression::cel(&deep)).unwrap();
        assert_eq!(expr.eval_value(&Map::new(), &[]).unwrap(), json!(1));
        let expr = CompiledExpr::compile(&Expression::cel(chain(limits::MAX_NESTING))).unwrap();
        assert_eq!(expr.eval_value(&Map::new(), &[]).unwrap(), json!(32));
    });
}

#[test]
fn logical_chains_and_lists_do_not_count_as_depth() {
    // `||`, `&&` and `,` reset the chain: the parser balances logical operators.
    let ors = (0..200)
        .map(|i| format!("x == {i}"))
        .collect::<Vec<_>>()
        .join(" || ");
    assert!(cel_ok(&ors, json!({"x": 199})));
    let list = format!("size([{}]) == 500", vec!["1 + 1"; 500].join(", "));
    assert!(cel_ok(&list, json!({})));
}

fn cel_ok(src: &str, value: Json) -> bool {
    let Json::Object(data) = value else {
        panic!("test data must be an object")
    };
    CompiledExpr::compile(&Expression::cel(src))
        .unwrap()
        .eval_bool(&data)
        .unwrap()
}

#[test]
fn operators_inside_strings_do_not_count() {
    let src = format!("s == '{}' && t == \"{}\"", "+".repeat(100), "(".repeat(100));
    let value = json!({"s": "+".repeat(100), "t": "(".repeat(100)});
    assert!(cel_ok(&src, value));
}

#[test]
fn four_nested_comprehensions_are_refused_at_load() {
    let all = "l.all(a, l.all(b, l.all(c, l.all(d, a + b + c + d >= 0))))";
    let (message, shown) = too_complex(all);
    assert!(
        message.contains("more than 3 comprehensions (all, exists, exists_one, map, filter)"),
        "{message}"
    );
    assert!(shown.contains(all), "{shown}");
    too_complex("l.map(a, l.map(b, l.map(c, l.map(d, a))))");
    // Three are fine.
    assert!(cel_ok(
        "l.all(a, l.all(b, l.all(c, a + b + c >= 0)))",
        json!({"l": [1, 2, 3]})
    ));
}

#[test]
fn comprehensions_over_more_elements_than_the_budget_fail_the_evaluation() {
    // Each range is charged in full when it is evaluated, before its first iteration: the
    // inner `exists` stops at its first element, but 11 ranges of 100,000 go over the budget.
    let big = vec![1; 100_000];
    let message = eval_err("l.all(a, l.exists(b, true))", json!({"l": big}));
    assert!(
        message.contains("more than 1000000 elements in all, the budget of one evaluation"),
        "{message}"
    );
    let message = eval_err("l.map(a, l.exists(b, true))", json!({"l": big}));
    assert!(
        message.contains("the budget of one evaluation"),
        "{message}"
    );
    let small = vec![1; 500];
    assert!(cel_ok("l.all(a, l.exists(b, true))", json!({"l": small})));
}

#[test]
fn an_absorbed_budget_error_still_fails_the_evaluation() {
    let big = vec![1; 100_000];
    let message = eval_err("l.all(a, l.exists(b, true)) || true", json!({"l": big}));
    assert!(
        message.contains("the budget of one evaluation"),
        "{message}"
    );
}

#[test]
fn a_comprehension_over_a_list_larger_than_allowed_fails() {
    let items = vec![1; 100_001];
    let message = eval_err("l.all(x, x == 1)", json!({"l": items}));
    assert!(
        message.contains("iterate over 100001 elements, more than the 100000 allowed"),
        "{message}"
    );
    let items = vec![1; 100_000];
    assert!(cel_ok("l.all(x, x == 1)", json!({"l": items})));
}

#[test]
fn a_parser_recursion_error_is_a_sentence_not_a_debug_dump() {
    let dump = r#"Syntax error: OtherError(ParseError { source: None, pos: (1056, -1), msg: "Recursion limit of 96 exceeded", expr_id: 0, source_info: None })"#;
    assert_eq!(sentence(dump).as_deref(), Some("it is nested too deeply"));
    assert_eq!(sentence("No `ConditionalAndContextAll`!"), None);
    let other = r#"Syntax error: OtherError(ParseError { source: None, pos: (1, 1), msg: "unexpected token", expr_id: 0 })"#;
    assert_eq!(sentence(other).as_deref(), Some("unexpected token"));
    assert_eq!(
        sentence("mismatched input '<EOF>'").as_deref(),
        Some("mismatched input '<EOF>'")
    );
}

#[test]
fn an_xpath_expression_is_bounded_too() {
    let long = format!("/data/a = '{}'", "x".repeat(9000));
    match CompiledExpr::compile(&Expression::xpath(&long)) {
        Err(ExprError::TooComplex { message, .. }) => {
            assert!(message.contains("bytes long"), "{message}")
        }
        other => panic!("expected a refusal, got {other:?}"),
    }
}

#[test]
fn a_chain_cannot_hide_behind_a_string_a_raw_string_or_a_comment() {
    let deep = chain(limits::MAX_NESTING + 8);
    for hidden in [
        // An unclosed string: the lexer reports it and reads on.
        format!("'{deep}"),
        // A raw string ending in a backslash closes at its quote.
        format!("r'\\' + {deep}"),
        // A quote in a comment opens no string.
        format!("1 // it's\n+ {deep} // '"),
    ] {
        let err = CompiledExpr::compile(&Expression::cel(&hidden)).unwrap_err();
        assert!(
            matches!(&err, ExprError::TooComplex { message, .. } if message.contains("levels deep")),
            "{hidden}: {err}"
        );
    }
    // `in` chains like the other relations.
    let ins = format!("1{}", " in [true]".repeat(limits::MAX_NESTING + 2));
    let err = CompiledExpr::compile(&Expression::cel(&ins)).unwrap_err();
    assert!(matches!(err, ExprError::TooComplex { .. }), "{err}");
    // Brackets in a comment or a string do not count.
    assert!(cel_ok(
        &format!("true // {}\n&& '{}' != ''", "(".repeat(50), "[".repeat(50)),
        json!({})
    ));
}

#[test]
fn a_parsed_tree_deeper_than_the_scan_allows_is_refused_too() {
    use cel::common::ast::{Expr, IdedExpr, SelectExpr};
    let mut tree = IdedExpr {
        id: 0,
        expr: Expr::Ident("a".into()),
    };
    for id in 1..=200 {
        tree = IdedExpr {
            id,
            expr: Expr::Select(SelectExpr {
                operand: Box::new(tree),
                field: "b".into(),
                test: false,
            }),
        };
    }
    let message = limits::check_tree(&tree).unwrap_err();
    assert_eq!(message, "is nested more than 96 levels deep once parsed");
    let parsed = stdlib()
        .parser()
        .parse(&chain(limits::MAX_NESTING))
        .unwrap();
    assert_eq!(limits::check_tree(&parsed), Ok(()));
}
