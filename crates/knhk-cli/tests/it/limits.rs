//! Definitions and expressions that would exhaust the process are refused or stopped: an
//! expression too long or too deep is refused at load, naming it briefly; an evaluation over
//! its budget fails its task like any other expression error.

use super::*;
use crate::http_server::{Reply, serve};
use std::process::Command;

/// A definition of one empty task `t` with `mapping` as its output mapping (CEL, in a Turtle
/// string: no double quotes in it).
fn one_task(name: &str, mapping: &str) -> PathBuf {
    temp_file(
        name,
        &format!(
            "{PREFIXES}\
             <#spec> a yawl:Specification ; yawl:hasDecomposition <#net> .\n\
             <#net> a yawl:Net ; yawl:isRootNet true ; yawl:hasInputCondition <#start> ;\n\
                 yawl:hasOutputCondition <#end> ; yawl:hasTask <#t> .\n\
             <#start> a yawl:InputCondition ; yawl:flowsInto [ yawl:nextElementRef <#t> ] .\n\
             <#t> a yawl:Task ; yawl:hasJoin yawl:ControlTypeXor ; yawl:hasSplit yawl:ControlTypeAnd ;\n\
                 knhk:outputMapping \"{mapping}\" ;\n\
                 yawl:flowsInto [ yawl:nextElementRef <#end> ] .\n\
             <#end> a yawl:OutputCondition .\n"
        ),
    )
}

#[test]
fn an_expression_of_25000_terms_is_refused_by_validate_and_register_naming_it_briefly() {
    let terms = vec!["1"; 25_000].join(" + ");
    let file = one_task("long_expression.ttl", &format!("{{'n': {terms}}}"));
    let out = knhk(&["validate", path_str(&file)]);
    assert_eq!(out.status.code(), Some(1), "stderr: {}", stderr(&out));
    let text = format!("{}{}", stdout(&out), stderr(&out));
    assert!(
        text.contains("output mapping: expression `{'n': 1 + 1 + "),
        "{text}"
    );
    assert!(
        text.contains("bytes long, more than the 8192 allowed"),
        "{text}"
    );
    assert!(
        text.len() < 2_000,
        "the expression is not printed whole: {text}"
    );

    let data = DataDir::new();
    let err = data.fails(&["workflow", "register", path_str(&file)]);
    assert!(err.contains("more than the 8192 allowed"), "{err}");
    assert!(
        !err.contains("Error {") && !err.contains("ParseError"),
        "{err}"
    );
}

#[test]
fn nested_comprehensions_are_refused_at_load_with_a_sentence() {
    let file = one_task(
        "nested_all.ttl",
        "{'ok': l.all(a, l.all(b, l.all(c, l.all(d, a + b + c + d >= 0))))}",
    );
    let out = knhk(&["validate", path_str(&file)]);
    assert_eq!(out.status.code(), Some(1), "stderr: {}", stderr(&out));
    let text = format!("{}{}", stdout(&out), stderr(&out));
    assert!(
        text.contains("nests more than 3 comprehensions (all, exists, exists_one, map, filter)"),
        "{text}"
    );
    let deep = format!("{{'n': {}1{}}}", "(".repeat(40), ")".repeat(40));
    let out = knhk(&["validate", path_str(&one_task("deep.ttl", &deep))]);
    assert_eq!(out.status.code(), Some(1), "stderr: {}", stderr(&out));
    let text = format!("{}{}", stdout(&out), stderr(&out));
    assert!(text.contains("levels deep"), "{text}");
    assert!(!text.contains("ParseError {"), "no debug dump: {text}");
}

#[test]
fn an_evaluation_over_its_budget_fails_the_task_and_the_case() {
    // Each inner `exists` stops at once, but its range of 100,000 is charged in full: the
    // eleventh goes over the budget of 1,000,000 elements.
    let file = one_task("budget.ttl", "{'ok': l.all(a, l.exists(b, true))}");
    let items = temp_file(
        "budget_data.json",
        &serde_json::json!({ "l": vec![1; 100_000] }).to_string(),
    );
    let data = DataDir::new();
    let out = data.knhk(&[
        "run",
        path_str(&file),
        "--data",
        &format!("@{}", path_str(&items)),
        "--json",
    ]);
    assert_eq!(out.status.code(), Some(1), "stderr: {}", stderr(&out));
    let text = stdout(&out);
    assert!(
        text.contains("more than 1000000 elements in all, the budget of one evaluation"),
        "{}",
        &text[..text.len().min(3000)]
    );
    let doc: Value = serde_json::from_str(&text).expect("one JSON document");
    assert_eq!(doc["state"], "failed", "{}", &text[..text.len().min(3000)]);
}

/// Net main runs composite task B (net NB); NB starts with `first` (if any) then runs composite
/// task C (net NC); NC runs composite task B2, which runs NB again.
fn recursion(name: &str, first: Option<&str>) -> PathBuf {
    let (nb_start, nb_tasks, first_task) = match first {
        None => ("<#C>", "<#C>", String::new()),
        Some(binding) => (
            "<#E>",
            "<#E>, <#C>",
            format!(
                "<#E> a yawl:Task ; yawl:id \"E\" ;{binding} yawl:flowsInto [ yawl:nextElementRef <#C> ] .\n"
            ),
        ),
    };
    temp_file(
        name,
        &format!(
            "{PREFIXES}\
             <#spec> a yawl:Specification ; yawl:hasDecomposition <#main>, <#NB>, <#NC> .\n\
             <#main> a yawl:Net ; yawl:id \"main\" ; yawl:isRootNet true ; yawl:hasInputCondition <#s0> ;\n\
                 yawl:hasOutputCondition <#e0> ; yawl:hasTask <#B> .\n\
             <#s0> a yawl:InputCondition ; yawl:flowsInto [ yawl:nextElementRef <#B> ] .\n\
             <#B> a yawl:Task ; yawl:id \"B\" ; yawl:hasDecomposesTo <#NB> ; yawl:flowsInto [ yawl:nextElementRef <#e0> ] .\n\
             <#e0> a yawl:OutputCondition .\n\
             <#NB> a yawl:Net ; yawl:id \"NB\" ; yawl:hasInputCondition <#s1> ; yawl:hasOutputCondition <#e1> ;\n\
                 yawl:hasTask {nb_tasks} .\n\
             <#s1> a yawl:InputCondition ; yawl:flowsInto [ yawl:nextElementRef {nb_start} ] .\n\
             {first_task}\
             <#C> a yawl:Task ; yawl:id \"C\" ; yawl:hasDecomposesTo <#NC> ; yawl:flowsInto [ yawl:nextElementRef <#e1> ] .\n\
             <#e1> a yawl:OutputCondition .\n\
             <#NC> a yawl:Net ; yawl:id \"NC\" ; yawl:hasInputCondition <#s2> ; yawl:hasOutputCondition <#e2> ;\n\
                 yawl:hasTask <#B2> .\n\
             <#s2> a yawl:InputCondition ; yawl:flowsInto [ yawl:nextElementRef <#B2> ] .\n\
             <#B2> a yawl:Task ; yawl:id \"B2\" ; yawl:hasDecomposesTo <#NB> ; yawl:flowsInto [ yawl:nextElementRef <#e2> ] .\n\
             <#e2> a yawl:OutputCondition .\n"
        ),
    )
}

#[test]
fn sub_nets_that_start_each_other_without_an_atomic_task_are_refused_naming_the_cycle() {
    let file = recursion("subnet_cycle.ttl", None);
    let out = knhk(&["validate", path_str(&file)]);
    assert_eq!(out.status.code(), Some(1), "stderr: {}", stderr(&out));
    let text = format!("{}{}", stdout(&out), stderr(&out));
    assert!(
        text.contains(
            "composite task C of net NB starts net NC, whose composite task B2 starts net NB \
             again without any atomic task on the way: a recursion that never ends"
        ),
        "{text}"
    );
    let data = DataDir::new();
    let err = data.fails(&["run", path_str(&file)]);
    assert!(err.contains("a recursion that never ends"), "{err}");
    let listed = data.ok(&["workflow", "list"]);
    assert!(
        listed.contains("no workflows registered"),
        "nothing stored: {listed}"
    );
}

#[test]
fn recursion_through_an_empty_task_fails_the_case_at_the_sub_net_depth_bound() {
    let file = recursion("subnet_recursion.ttl", Some(""));
    let data = DataDir::new();
    let out = data.knhk(&["--max-subnet-depth", "12", "run", path_str(&file), "--json"]);
    assert_eq!(out.status.code(), Some(1), "stderr: {}", stderr(&out));
    let doc: Value = serde_json::from_str(&stdout(&out)).expect("one JSON document");
    assert_eq!(doc["state"], "failed");
    let text = stdout(&out);
    assert!(
        text.contains("sub-nets nested more than 12 deep: composite task"),
        "{text}"
    );
    let started = kinds(&doc).iter().filter(|k| **k == "net_started").count();
    assert_eq!(started, 12, "{text}");
    // Deeper bounds than the stack holds are refused as a usage error.
    let out = data.knhk(&["--max-subnet-depth", "5000", "run", path_str(&file)]);
    assert_eq!(out.status.code(), Some(2), "stderr: {}", stderr(&out));
    assert!(
        stderr(&out).contains("--max-subnet-depth"),
        "{}",
        stderr(&out)
    );
}

#[test]
fn a_definition_larger_than_the_limits_is_refused_by_validate_and_register() {
    let loan = example("loan_application.ttl");
    let out = knhk(&["--max-definition-bytes", "200", "validate", &loan]);
    assert_eq!(out.status.code(), Some(1), "stderr: {}", stderr(&out));
    let text = format!("{}{}", stdout(&out), stderr(&out));
    assert!(
        text.contains("bytes long, more than the 200 bytes allowed"),
        "{text}"
    );

    let data = DataDir::new();
    let err = data.fails(&["--max-tasks", "2", "workflow", "register", &loan]);
    assert!(
        err.contains("tasks, more than the 2 tasks allowed"),
        "{err}"
    );
    let listed = data.ok(&["workflow", "list"]);
    assert!(listed.contains("no workflows registered"), "{listed}");
    let err = data.fails(&["--max-definition-bytes", "200", "run", &loan]);
    assert!(err.contains("more than the 200 bytes allowed"), "{err}");
    // The same limits are read from the environment.
    let out = Command::new(env!("CARGO_BIN_EXE_knhk"))
        .args(["validate", &loan])
        .env("KNHK_MAX_TASKS", "2")
        .output()
        .expect("the knhk binary runs");
    assert_eq!(out.status.code(), Some(1));
    assert!(
        stdout(&out).contains("more than the 2 tasks allowed")
            || stderr(&out).contains("more than the 2 tasks allowed")
    );
}

#[test]
fn an_output_that_would_make_the_case_data_too_large_fails_the_task() {
    let file = one_task("data_growth.ttl", "{'b': a + a + a}");
    let a = "x".repeat(300);
    let data = DataDir::new();
    let out = data.knhk(&[
        "--max-data-bytes",
        "1000",
        "run",
        path_str(&file),
        "--data",
        &format!(r#"{{"a": "{a}"}}"#),
        "--json",
    ]);
    assert_eq!(out.status.code(), Some(1), "stderr: {}", stderr(&out));
    let doc: Value = serde_json::from_str(&stdout(&out)).expect("one JSON document");
    assert_eq!(doc["state"], "failed");
    let text = stdout(&out);
    assert!(
        text.contains("its output would make the case data larger than the 1000 bytes allowed"),
        "{text}"
    );
    // Data over the bound at creation is refused, and no case is made.
    let err = data.fails(&[
        "--max-data-bytes",
        "100",
        "run",
        path_str(&file),
        "--data",
        &format!(r#"{{"a": "{a}"}}"#),
    ]);
    assert!(
        err.contains("larger than the 100 bytes this engine takes"),
        "{err}"
    );
}

/// Starts an HTTP server on port 0 that answers every request with `reply` as `content_type`,
/// and returns its address.
fn server(reply: String, content_type: &'static str) -> String {
    serve(move |_| Reply {
        status: "200 OK",
        content_type,
        body: reply.clone(),
    })
}

/// A definition of one HTTP task `call` posting to `url`.
fn http_task(name: &str, url: &str) -> PathBuf {
    temp_file(
        name,
        &format!(
            "{PREFIXES}\
             <#spec> a yawl:Specification ; yawl:hasDecomposition <#net> .\n\
             <#net> a yawl:Net ; yawl:isRootNet true ; yawl:hasInputCondition <#start> ;\n\
                 yawl:hasOutputCondition <#end> ; yawl:hasTask <#call> .\n\
             <#start> a yawl:InputCondition ; yawl:flowsInto [ yawl:nextElementRef <#call> ] .\n\
             <#call> a yawl:Task ; knhk:connector \"http\" ; knhk:maxAttempts 1 ;\n\
                 knhk:setting [ knhk:key \"url\" ; knhk:value \"{url}\" ] ;\n\
                 yawl:flowsInto [ yawl:nextElementRef <#end> ] .\n\
             <#end> a yawl:OutputCondition .\n"
        ),
    )
}

#[test]
fn a_connector_output_over_the_data_bound_fails_the_call_and_is_not_stored() {
    let big = "w".repeat(3_000);
    let url = server(format!(r#"{{"big": "{big}"}}"#), "application/json");
    let file = http_task("big_response.ttl", &url);
    let data = DataDir::new();
    let out = data.knhk(&["--max-data-bytes", "1000", "run", path_str(&file), "--json"]);
    assert_eq!(out.status.code(), Some(1), "stderr: {}", stderr(&out));
    let text = stdout(&out);
    assert!(
        text.contains("connector http failed: the connector output is larger than the 1000 bytes this engine takes"),
        "{text}"
    );
    assert!(
        !text.contains(&big),
        "the output is not in the history: {text}"
    );
}

#[test]
fn a_non_json_response_of_an_http_task_becomes_its_body_field() {
    let url = server("plain words".to_owned(), "text/plain");
    let file = http_task("text_response.ttl", &url);
    let data = DataDir::new();
    let doc = data.json(&["run", path_str(&file), "--json"]);
    assert_eq!(doc["state"], "completed", "{doc:#}");
    assert_eq!(doc["data"]["body"], "plain words", "{doc:#}");
}
