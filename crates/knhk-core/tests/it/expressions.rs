//! Whatever the text, compiling and evaluating an expression never panics, overflows the stack
//! or runs away: random CEL-like and XPath-like text gives `Ok` or `Err`, and every error says
//! something. `KNHK_FUZZ_CASES=N` runs each property on N inputs instead of 256.

use knhk_core::expr::CompiledExpr;
use knhk_core::model::{Expression, Syntax};
use proptest::prelude::*;
use serde_json::{Map, json};

fn fuzz_cases() -> u32 {
    std::env::var("KNHK_FUZZ_CASES")
        .ok()
        .and_then(|n| n.parse().ok())
        .unwrap_or(256)
}

/// Compiles `source` and, when it compiles, evaluates it both ways over small case data, on a
/// thread with the 8 MiB stack the `knhk` binary gives its runtime: the CEL crate's parser and
/// evaluator recurse once per level, with large frames in a debug build, and the depth that
/// knhk accepts is sized for that stack (a test thread has 2 MiB).
fn try_expression(source: &str, syntax: Syntax) {
    let source = source.to_owned();
    std::thread::Builder::new()
        .stack_size(8 << 20)
        .spawn(move || compile_and_evaluate(source, syntax))
        .expect("a thread")
        .join()
        .unwrap_or_else(|_| panic!("compiling or evaluating panicked"));
}

fn compile_and_evaluate(source: String, syntax: Syntax) {
    let expr = Expression { source, syntax };
    match CompiledExpr::compile(&expr) {
        Err(e) => assert!(!e.to_string().is_empty()),
        Ok(compiled) => {
            let mut data = Map::new();
            data.insert("items".to_owned(), json!([1, 2, 3, 4, 5, 6, 7, 8]));
            data.insert("amount".to_owned(), json!(5000));
            data.insert("name".to_owned(), json!("ada"));
            if let Err(e) = compiled.eval_bool(&data) {
                assert!(!e.to_string().is_empty());
            }
            if let Err(e) = compiled.eval_value(&data, &[]) {
                assert!(!e.to_string().is_empty());
            }
        }
    }
}

/// Pieces of CEL, glued at random: operators, macros, brackets, literals and names.
fn cel_token() -> impl Strategy<Value = &'static str> {
    prop::sample::select(vec![
        "items",
        "amount",
        "name",
        "x",
        "1",
        "0",
        "-1",
        "2.5",
        "'a'",
        "\"b\"",
        "true",
        "null",
        "+",
        "-",
        "*",
        "/",
        "%",
        "==",
        "!=",
        "<",
        ">=",
        "&&",
        "||",
        "!",
        "?",
        ":",
        "(",
        ")",
        "[",
        "]",
        "{",
        "}",
        ",",
        ".",
        "size(",
        ".all(x, ",
        ".exists(x, ",
        ".map(x, ",
        ".filter(x, ",
        "in",
        "int(",
        "string(",
        "has(",
        " ",
    ])
}

fn xpath_token() -> impl Strategy<Value = &'static str> {
    prop::sample::select(vec![
        "/data/amount",
        "/net/items",
        "number(",
        "string(",
        "count(",
        "concat(",
        "1",
        "'a'",
        "=",
        "!=",
        "<",
        "and",
        "or",
        "not(",
        "(",
        ")",
        "[",
        "]",
        ",",
        "+",
        "-",
        "*",
        " div ",
        " mod ",
        "true()",
        "false()",
        " ",
    ])
}

proptest! {
    #![proptest_config(ProptestConfig { cases: fuzz_cases(), ..ProptestConfig::default() })]

    #[test]
    fn random_cel_never_panics(tokens in proptest::collection::vec(cel_token(), 0..40)) {
        try_expression(&tokens.concat(), Syntax::Cel);
    }

    #[test]
    fn random_xpath_never_panics(tokens in proptest::collection::vec(xpath_token(), 0..30)) {
        try_expression(&tokens.concat(), Syntax::Xpath);
    }

    #[test]
    fn deep_or_long_cel_is_refused_or_runs_without_overflow(
        open in prop::sample::select(vec!["(", "[", "!", "-", "size(", "items.map(x, "]),
        depth in 0usize..400,
        terms in 0usize..3000,
    ) {
        let source = format!("{}{}{}", open.repeat(depth), "1 + ".repeat(terms), "1");
        try_expression(&source, Syntax::Cel);
    }
}
