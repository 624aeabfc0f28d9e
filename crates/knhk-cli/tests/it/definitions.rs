//! The commands on definition files alone: validate, simulate, export.

use crate::{PREFIXES, examples, knhk, path_str, stderr, stdout, temp_file};

#[test]
fn validate_accepts_the_examples() {
    let order = examples().join("order_approval.ttl");
    let sequence = examples().join("patterns/wcp01_sequence.ttl");
    let out = knhk(&["validate", path_str(&order), path_str(&sequence)]);
    assert!(out.status.success(), "stderr: {}", stderr(&out));
    let text = stdout(&out);
    assert!(
        text.contains("order_approval.ttl: 1 net, 4 tasks"),
        "{text}"
    );
    assert!(
        text.contains("wcp01_sequence.ttl: 1 net, 3 tasks"),
        "{text}"
    );
}

#[test]
fn validate_prints_notes_without_failing() {
    let file = examples().join("yawl/leave_request.yawl");
    let out = knhk(&["validate", path_str(&file)]);
    assert!(out.status.success(), "stderr: {}", stderr(&out));
    let text = stdout(&out);
    assert!(text.contains("ok "), "{text}");
    assert!(
        text.lines().any(|l| l.starts_with("note: ")
            && l.contains("leave_request.yawl#Route_4>")
            && l.contains("AND join has one incoming flow")),
        "{text}"
    );
    assert!(
        text.lines()
            .any(|l| l.starts_with("note: ") && l.contains("administrators' queue")),
        "{text}"
    );
    assert!(stderr(&out).is_empty(), "{}", stderr(&out));
}

#[test]
fn validate_refuses_a_broken_file_and_names_the_element() {
    // `orphan` has no incoming flow: nothing can ever enable it.
    let broken = temp_file(
        "broken.ttl",
        &format!(
            "{PREFIXES}\
             <#spec> a yawl:Specification ; yawl:hasDecomposition <#net> .\n\
             <#net> a yawl:Net ; yawl:isRootNet true ; yawl:hasInputCondition <#start> ;\n\
                 yawl:hasOutputCondition <#end> ; yawl:hasTask <#work>, <#orphan> .\n\
             <#start> a yawl:InputCondition ; yawl:flowsInto [ yawl:nextElementRef <#work> ] .\n\
             <#work> a yawl:Task ; yawl:flowsInto [ yawl:nextElementRef <#end> ] .\n\
             <#orphan> a yawl:Task ; yawl:flowsInto [ yawl:nextElementRef <#end> ] .\n\
             <#end> a yawl:OutputCondition .\n"
        ),
    );
    let good = examples().join("order_approval.ttl");
    let out = knhk(&["validate", path_str(&good), path_str(&broken)]);
    assert_eq!(out.status.code(), Some(1), "stdout: {}", stdout(&out));
    // The good file is still reported; the broken one is named with its element.
    assert!(stdout(&out).contains("ok "), "{}", stdout(&out));
    let err = stderr(&out);
    assert!(err.contains("broken.ttl"), "{err}");
    assert!(err.contains("#orphan>"), "{err}");
    assert!(err.contains("no incoming flow"), "{err}");
    assert!(
        !err.contains("#work>"),
        "only the faulty element is named: {err}"
    );
}

#[test]
fn validate_refuses_a_file_that_is_not_turtle() {
    let broken = temp_file("garbage.ttl", "this is { not turtle");
    let out = knhk(&["validate", path_str(&broken)]);
    assert_eq!(out.status.code(), Some(1));
    let err = stderr(&out);
    assert!(err.contains("garbage.ttl:1:"), "{err}");
}

#[test]
fn simulate_sends_a_large_order_to_the_manager() {
    let file = examples().join("order_approval.ttl");
    let out = knhk(&["simulate", path_str(&file), "--data", r#"{"amount": 1500}"#]);
    assert!(out.status.success(), "stderr: {}", stderr(&out));
    let text = stdout(&out);
    let completed: Vec<&str> = text
        .lines()
        .filter(|l| l.contains("task_completed"))
        .filter_map(|l| l.split_whitespace().nth(3))
        .collect();
    assert_eq!(
        completed,
        ["receive_order", "manager_approval", "ship"],
        "{text}"
    );
    assert!(
        text.contains("manager_approval  work item 1 by simulator"),
        "{text}"
    );
    assert!(text.contains("case completed"), "{text}");
    assert!(text.contains(r#"data: {"amount":1500}"#), "{text}");
}

#[test]
fn simulate_approves_a_small_order_automatically() {
    let file = examples().join("order_approval.ttl");
    let out = knhk(&["simulate", path_str(&file), "--data", r#"{"amount": 20}"#]);
    assert!(out.status.success(), "stderr: {}", stderr(&out));
    let text = stdout(&out);
    assert!(text.contains("auto_approve"), "{text}");
    assert!(!text.contains("manager_approval"), "{text}");
    assert!(text.contains("case completed"), "{text}");
}

#[test]
fn simulate_stops_at_a_trigger_and_says_what_it_waits_for() {
    let file = temp_file(
        "trigger.ttl",
        &format!(
            "{PREFIXES}\
             <#spec> a yawl:Specification ; yawl:hasDecomposition <#net> .\n\
             <#net> a yawl:Net ; yawl:isRootNet true ; yawl:hasInputCondition <#start> ;\n\
                 yawl:hasOutputCondition <#end> ; yawl:hasTask <#receive>, <#paid> .\n\
             <#start> a yawl:InputCondition ; yawl:flowsInto [ yawl:nextElementRef <#receive> ] .\n\
             <#receive> a yawl:Task ; yawl:flowsInto [ yawl:nextElementRef <#paid> ] .\n\
             <#paid> a yawl:Task ; knhk:trigger \"payment_received\" ;\n\
                 yawl:flowsInto [ yawl:nextElementRef <#end> ] .\n\
             <#end> a yawl:OutputCondition .\n"
        ),
    );
    let out = knhk(&["simulate", path_str(&file)]);
    assert!(out.status.success(), "stderr: {}", stderr(&out));
    let text = stdout(&out);
    assert!(
        text.contains(r#"task paid waits for the event "payment_received""#),
        "{text}"
    );
    assert!(text.contains("case waits for the outside world"), "{text}");
    assert!(!text.contains("running -> completed"), "{text}");
}

#[test]
fn simulate_refuses_data_that_is_not_an_object() {
    let file = examples().join("order_approval.ttl");
    let out = knhk(&["simulate", path_str(&file), "--data", "[1, 2]"]);
    assert_eq!(out.status.code(), Some(1));
    assert!(
        stderr(&out).contains("--data must be a JSON object"),
        "{}",
        stderr(&out)
    );
}

#[test]
fn export_writes_turtle_that_validates_again() {
    let file = examples().join("order_approval.ttl");
    let out = knhk(&["export", path_str(&file)]);
    assert!(out.status.success(), "stderr: {}", stderr(&out));
    let text = stdout(&out);
    assert!(text.contains("knhk:role \"manager\""), "{text}");
    let again = temp_file("exported.ttl", &text);
    let out = knhk(&["validate", path_str(&again)]);
    assert!(out.status.success(), "stderr: {}", stderr(&out));
    assert!(stdout(&out).contains("1 net, 4 tasks"), "{}", stdout(&out));
}

#[test]
fn simulate_stops_at_a_connector_call() {
    let file = temp_file(
        "connector.ttl",
        &format!(
            "{PREFIXES}\
             <#spec> a yawl:Specification ; yawl:hasDecomposition <#net> .\n\
             <#net> a yawl:Net ; yawl:isRootNet true ; yawl:hasInputCondition <#start> ;\n\
                 yawl:hasOutputCondition <#end> ; yawl:hasTask <#check>, <#charge> .\n\
             <#start> a yawl:InputCondition ; yawl:flowsInto [ yawl:nextElementRef <#check> ] .\n\
             <#check> a yawl:Task ; knhk:role \"clerk\" ;\n\
                 yawl:flowsInto [ yawl:nextElementRef <#charge> ] .\n\
             <#charge> a yawl:Task ; knhk:connector \"http\" ;\n\
                 yawl:flowsInto [ yawl:nextElementRef <#end> ] .\n\
             <#end> a yawl:OutputCondition .\n"
        ),
    );
    let out = knhk(&["simulate", path_str(&file)]);
    assert!(out.status.success(), "stderr: {}", stderr(&out));
    let text = stdout(&out);
    // One row of the history table, its cells separated by single spaces.
    let row = |event: &str| {
        text.lines()
            .find(|l| l.split_whitespace().nth(2) == Some(event))
            .unwrap_or_default()
            .split_whitespace()
            .collect::<Vec<_>>()
            .join(" ")
    };
    assert_eq!(
        row("work_item_completed"),
        "7 +0:00:00.002 work_item_completed check work item 1 by simulator, output {}",
        "{text}"
    );
    assert_eq!(
        row("connector_call_started"),
        "11 +0:00:00.002 connector_call_started charge connector http, work item 2",
        "{text}"
    );
    assert!(
        text.contains(r#"task charge waits for the connector "http""#),
        "{text}"
    );
}

#[test]
fn simulate_fires_a_timer_when_nothing_else_can_move() {
    // A trigger nobody sends, with a two-day timeout: the clock jumps to the timer, the task
    // expires and the case completes.
    let file = temp_file(
        "timeout.ttl",
        &format!(
            "{PREFIXES}\
             <#spec> a yawl:Specification ; yawl:hasDecomposition <#net> .\n\
             <#net> a yawl:Net ; yawl:isRootNet true ; yawl:hasInputCondition <#start> ;\n\
                 yawl:hasOutputCondition <#end> ; yawl:hasTask <#paid> .\n\
             <#start> a yawl:InputCondition ; yawl:flowsInto [ yawl:nextElementRef <#paid> ] .\n\
             <#paid> a yawl:Task ; knhk:trigger \"payment_received\" ;\n\
                 yawl:hasTimer [ a yawl:Timer ; yawl:hasTrigger yawl:TimerTriggerOnEnabled ;\n\
                     yawl:hasDurationParams [ yawl:ticks 2 ; yawl:hasInterval yawl:TimerIntervalDay ] ] ;\n\
                 yawl:flowsInto [ yawl:nextElementRef <#end> ] .\n\
             <#end> a yawl:OutputCondition .\n"
        ),
    );
    let out = knhk(&["simulate", path_str(&file)]);
    assert!(out.status.success(), "stderr: {}", stderr(&out));
    let text = stdout(&out);
    let fired = text
        .lines()
        .find(|l| l.split_whitespace().nth(2) == Some("timer_fired"))
        .map(|l| l.split_whitespace().skip(1).collect::<Vec<_>>().join(" "))
        .unwrap_or_default();
    assert_eq!(fired, "+48:00:00.001 timer_fired paid timer 1", "{text}");
    assert!(
        text.contains(
            "case completed: 8 events; the simulator completed 0 work items and fired 1 timer"
        ),
        "{text}"
    );
}

#[test]
fn simulate_gives_up_on_a_loop_that_never_exits() {
    // A person's task that always loops back: every input moves the case, none ends it.
    let file = temp_file(
        "loop.ttl",
        &format!(
            "{PREFIXES}\
             <#spec> a yawl:Specification ; yawl:hasDecomposition <#net> .\n\
             <#net> a yawl:Net ; yawl:isRootNet true ; yawl:hasInputCondition <#start> ;\n\
                 yawl:hasOutputCondition <#end> ; yawl:hasTask <#again> .\n\
             <#start> a yawl:InputCondition ; yawl:flowsInto [ yawl:nextElementRef <#again> ] .\n\
             <#again> a yawl:Task ; knhk:role \"clerk\" ; yawl:hasJoin yawl:ControlTypeXor ;\n\
                 yawl:hasSplit yawl:ControlTypeXor ;\n\
                 yawl:flowsInto [ yawl:nextElementRef <#again> ; knhk:predicate \"true\" ; yawl:ordering 1 ] ,\n\
                     [ yawl:nextElementRef <#end> ; yawl:isDefaultFlow true ] .\n\
             <#end> a yawl:OutputCondition .\n"
        ),
    );
    let out = knhk(&["simulate", path_str(&file)]);
    assert_eq!(out.status.code(), Some(1), "stderr: {}", stderr(&out));
    let text = stdout(&out);
    assert!(
        text.contains("case still running after 10000 inputs (a loop that never exits?)"),
        "{text}"
    );
}

#[test]
fn simulate_stops_a_loop_of_automatic_tasks_at_the_firing_bound_it_is_given() {
    // Empty tasks looping for ever inside one step: the bound fails the case.
    let file = temp_file(
        "automatic_loop.ttl",
        &format!(
            "{PREFIXES}\
             <#spec> a yawl:Specification ; yawl:hasDecomposition <#net> .\n\
             <#net> a yawl:Net ; yawl:isRootNet true ; yawl:hasInputCondition <#start> ;\n\
                 yawl:hasOutputCondition <#end> ; yawl:hasTask <#spin> .\n\
             <#start> a yawl:InputCondition ; yawl:flowsInto [ yawl:nextElementRef <#spin> ] .\n\
             <#spin> a yawl:Task ; yawl:hasJoin yawl:ControlTypeXor ; yawl:hasSplit yawl:ControlTypeXor ;\n\
                 yawl:flowsInto [ yawl:nextElementRef <#spin> ; knhk:predicate \"true\" ; yawl:ordering 1 ] ,\n\
                     [ yawl:nextElementRef <#end> ; yawl:isDefaultFlow true ] .\n\
             <#end> a yawl:OutputCondition .\n"
        ),
    );
    let out = knhk(&["--max-firings", "50", "simulate", path_str(&file)]);
    assert_eq!(out.status.code(), Some(1), "stderr: {}", stderr(&out));
    let text = stdout(&out);
    assert!(text.contains("firing_limit_reached"), "{text}");
    assert!(
        text.contains("51 tasks started"),
        "the bound given was used: {text}"
    );
    assert!(text.contains("case failed"), "{text}");
}

#[test]
fn validate_prints_one_json_document_per_file_with_json() {
    let bad = temp_file("not_turtle.ttl", "this is not turtle");
    let good = examples().join("yawl/leave_request.yawl");
    let out = knhk(&["validate", "--json", path_str(&good), path_str(&bad)]);
    assert_eq!(out.status.code(), Some(1), "one file is refused");
    let docs: serde_json::Value = serde_json::from_slice(&out.stdout).expect("one JSON array");
    assert_eq!(docs[0]["ok"], true, "{docs:#}");
    assert_eq!(docs[0]["tasks"], 5);
    assert!(
        docs[0]["notes"].as_array().is_some_and(|n| n
            .iter()
            .any(|n| n.as_str().is_some_and(|n| n.contains("plain one")))),
        "{docs:#}"
    );
    assert_eq!(docs[1]["ok"], false);
    assert!(
        docs[1]["errors"].as_array().is_some_and(|e| !e.is_empty()),
        "{docs:#}"
    );
}

#[test]
fn validate_refuses_what_registering_would_refuse_unknown_connectors_and_settings() {
    let file = temp_file(
        "connectors.ttl",
        &format!(
            "{PREFIXES}\
             <#spec> a yawl:Specification ; yawl:hasDecomposition <#net> .\n\
             <#net> a yawl:Net ; yawl:isRootNet true ; yawl:hasInputCondition <#start> ;\n\
                 yawl:hasOutputCondition <#end> ; yawl:hasTask <#queue>, <#charge> .\n\
             <#start> a yawl:InputCondition ; yawl:flowsInto [ yawl:nextElementRef <#queue> ] .\n\
             <#queue> a yawl:Task ; knhk:connector \"queue\" ;\n\
                 yawl:flowsInto [ yawl:nextElementRef <#charge> ] .\n\
             <#charge> a yawl:Task ; knhk:connector \"http\" ;\n\
                 knhk:setting [ knhk:key \"url\" ; knhk:value \"http://127.0.0.1:9/pay\" ] ,\n\
                     [ knhk:key \"colour\" ; knhk:value \"blue\" ] ;\n\
                 yawl:flowsInto [ yawl:nextElementRef <#end> ] .\n\
             <#end> a yawl:OutputCondition .\n"
        ),
    );
    let out = knhk(&["validate", path_str(&file)]);
    assert_eq!(out.status.code(), Some(1), "{}", stdout(&out));
    let err = stderr(&out);
    assert!(err.contains("task queue") && err.contains("queue"), "{err}");
    assert!(
        err.contains("task charge") && err.contains("colour"),
        "{err}"
    );
    assert!(!stdout(&out).contains("ok "), "{}", stdout(&out));
}

#[test]
fn simulate_prints_one_json_document_with_json() {
    let file = examples().join("invoice_reminder.ttl");
    let out = knhk(&["simulate", path_str(&file), "--json"]);
    assert!(out.status.success(), "{}", stderr(&out));
    let doc: serde_json::Value = serde_json::from_slice(&out.stdout).expect("one JSON document");
    assert_eq!(doc["state"], "completed", "{doc:#}");
    assert_eq!(doc["ending"], "ended");
    assert_eq!(doc["data"]["paid"], false);
    let kinds: Vec<&str> = doc["history"]
        .as_array()
        .expect("history")
        .iter()
        .filter_map(|e| e["kind"].as_str())
        .collect();
    assert_eq!(kinds.first(), Some(&"case_created"));
    assert_eq!(kinds.last(), Some(&"case_state_changed"));
}
