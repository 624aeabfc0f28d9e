//! Incidents: a task that fails with no failure flow leaves its case failed, with the
//! incident shown by `case show` and listed by `case list --status failed`, until `case retry`
//! runs the task again or `case cancel` gives up.

use std::sync::{Arc, Mutex};

use serde_json::Value;

use crate::http_server::{Reply, serve};
use crate::{DataDir, PREFIXES, kinds, path_str, temp_file, text};

/// Starts an HTTP server on port 0 that declines the first charge to each path (400) and
/// accepts every later one (`{"charged": true}`); returns its address and the idempotency
/// keys it was sent, in order.
fn flaky_payment_server() -> (String, Arc<Mutex<Vec<String>>>) {
    let keys: Arc<Mutex<Vec<String>>> = Arc::default();
    let seen = keys.clone();
    let mut paths = std::collections::HashSet::new();
    let url = serve(move |request| {
        let key = request.header("idempotency-key").unwrap_or_default();
        seen.lock().expect("the keys").push(key.to_owned());
        if paths.insert(request.line.clone()) {
            Reply::json("400 Bad Request", r#"{"error": "card declined"}"#)
        } else {
            Reply::json("200 OK", r#"{"charged": true}"#)
        }
    });
    (url, keys)
}

/// start -> charge (HTTP, no failure flow) -> ship -> end.
fn charge_then_ship(server: &str) -> String {
    let file = temp_file(
        "retried_charge.ttl",
        &format!(
            "{PREFIXES}\
             <#spec> a yawl:Specification ; yawl:hasDecomposition <#net> .\n\
             <#net> a yawl:Net ; yawl:isRootNet true ; yawl:hasInputCondition <#start> ;\n\
                 yawl:hasOutputCondition <#end> ; yawl:hasTask <#charge>, <#ship> .\n\
             <#start> a yawl:InputCondition ; yawl:flowsInto [ yawl:nextElementRef <#charge> ] .\n\
             <#charge> a yawl:Task ; knhk:connector \"http\" ;\n\
                 knhk:setting [ knhk:key \"url\" ; knhk:value \"{server}/charge/{{order}}\" ] ;\n\
                 yawl:flowsInto [ yawl:nextElementRef <#ship> ] .\n\
             <#ship> a yawl:Task ; yawl:flowsInto [ yawl:nextElementRef <#end> ] .\n\
             <#end> a yawl:OutputCondition .\n"
        ),
    );
    path_str(&file).to_owned()
}

/// Returns the idempotency keys of the connector calls a case document's history started.
fn call_keys(doc: &Value) -> Vec<String> {
    doc["history"]
        .as_array()
        .expect("a history array")
        .iter()
        .filter(|e| e["kind"] == "connector_call_started")
        .map(|e| text(&e["event"], "idempotency_key").to_owned())
        .collect()
}

#[test]
fn a_failed_http_task_is_retried_and_its_case_completes_with_a_new_idempotency_key() {
    let (server, keys) = flaky_payment_server();
    let file = charge_then_ship(&server);
    let data = DataDir::new();
    let out = data.knhk(&["run", &file, "--data", r#"{"order": "A-17"}"#, "--json"]);
    assert_eq!(out.status.code(), Some(1), "{}", crate::stderr(&out));
    let failed: Value = serde_json::from_slice(&out.stdout).expect("one JSON document");
    let case = text(&failed, "case_id").to_owned();
    assert_eq!(text(&failed, "state"), "failed");
    let incidents = failed["incidents"].as_array().expect("incidents");
    assert_eq!(incidents.len(), 1, "{failed:#}");
    assert_eq!(incidents[0]["task"], "charge");
    assert_eq!(incidents[0]["attempt"], 1);
    assert!(text(&incidents[0], "reason").contains("400"), "{failed:#}");
    assert!(kinds(&failed).ends_with(&[
        "connector_call_failed",
        "task_failed",
        "incident_raised",
        "case_state_changed"
    ]));

    // The incident is shown, with the commands that retry the task or give up.
    let shown = data.knhk(&["case", "show", &case]);
    assert_eq!(shown.status.code(), Some(1));
    let shown = crate::stdout(&shown);
    assert!(
        shown.contains("incident: task charge failed at ")
            && shown.contains("(attempt 1): connector http failed")
            && shown.contains(&format!(" case retry {case}"))
            && shown.contains(&format!(" case cancel {case}")),
        "{shown}"
    );
    let listed = data.json(&["case", "list", "--status", "failed", "--json"]);
    assert_eq!(listed.as_array().map(Vec::len), Some(1), "{listed:#}");
    assert_eq!(listed[0]["case_id"], case.as_str());

    let done = data.json(&["case", "retry", &case, "--json"]);
    assert_eq!(text(&done, "state"), "completed", "{done:#}");
    assert_eq!(done["data"]["charged"], true);
    assert_eq!(done["incidents"], serde_json::json!([]));
    let history = done["history"].as_array().expect("history");
    let retried = history
        .iter()
        .find(|e| e["kind"] == "task_retried")
        .expect("the retry is in the history");
    assert_eq!(retried["task"], "charge");
    assert_eq!(retried["event"]["attempt"], 2);
    let called = call_keys(&done);
    assert_eq!(called.len(), 2, "{done:#}");
    assert_ne!(called[0], called[1], "a fresh key for the new attempt");
    assert_eq!(
        *keys.lock().expect("the keys"),
        called,
        "the keys the server saw"
    );
    assert!(
        data.json(&["case", "list", "--status", "failed", "--json"])
            .as_array()
            .is_some_and(Vec::is_empty)
    );
}

#[test]
fn a_human_task_failed_by_its_worker_is_offered_again_by_a_retry() {
    let data = DataDir::new();
    let started = data.start_loan();
    let case = text(&started, "case_id").to_owned();
    let item = text(&started["work_items"][0], "id").to_owned();
    data.ok(&["workitem", "claim", &item, "--user", "uma"]);
    let out = data.knhk(&[
        "workitem",
        "fail",
        &item,
        "--user",
        "uma",
        "--reason",
        "documents missing",
    ]);
    assert_eq!(out.status.code(), Some(1), "{}", crate::stderr(&out));
    // Nothing waits for people while the case is failed.
    let err = data.fails(&["workitem", "claim", &item, "--user", "uma"]);
    assert!(err.contains(&item.to_string()), "{err}");

    let retried = data.json(&["case", "retry", &case, "--json"]);
    assert_eq!(text(&retried, "state"), "running", "{retried:#}");
    let items = retried["work_items"].as_array().expect("work items");
    assert_eq!(items.len(), 1, "{retried:#}");
    let again = text(&items[0], "id").to_owned();
    assert_ne!(again, item, "a new work item");
    assert_eq!(items[0]["task"], "underwriter_decision");
    let done = data.json(&[
        "workitem",
        "complete",
        &again,
        "--user",
        "uma",
        "--output",
        r#"{"approved": true}"#,
        "--json",
    ]);
    assert_eq!(text(&done, "state"), "completed", "{done:#}");
    assert!(kinds(&done).contains(&"task_retried"));
}

#[test]
fn a_retry_is_refused_naming_why_and_changes_nothing() {
    let data = DataDir::new();
    let started = data.start_loan();
    let case = text(&started, "case_id").to_owned();
    let before = data.json(&["case", "show", &case, "--json"]);
    let err = data.fails(&["case", "retry", &case]);
    assert!(
        err.contains(&format!(
            "cannot retry case {case}: the case is running, not failed"
        )),
        "{err}"
    );
    let err = data.fails(&["case", "retry", &case, "--task", "underwriter_decision"]);
    assert!(err.contains("the case is running, not failed"), "{err}");
    assert_eq!(data.json(&["case", "show", &case, "--json"]), before);

    // A case failed by a loop of automatic tasks has no task to run again.
    let looped = temp_file(
        "looped.ttl",
        &format!(
            "{PREFIXES}\
             <#spec> a yawl:Specification ; yawl:hasDecomposition <#net> .\n\
             <#net> a yawl:Net ; yawl:isRootNet true ; yawl:hasInputCondition <#start> ;\n\
                 yawl:hasOutputCondition <#end> ; yawl:hasTask <#a>, <#b> .\n\
             <#start> a yawl:InputCondition ; yawl:flowsInto [ yawl:nextElementRef <#a> ] .\n\
             <#a> a yawl:Task ; yawl:flowsInto [ yawl:nextElementRef <#b> ] .\n\
             <#b> a yawl:Task ; yawl:hasSplit yawl:ControlTypeXor ; yawl:flowsInto\n\
                 [ yawl:nextElementRef <#a> ; knhk:predicate \"true\" ; yawl:ordering 1 ],\n\
                 [ yawl:nextElementRef <#end> ; yawl:isDefaultFlow true ] .\n\
             <#end> a yawl:OutputCondition .\n"
        ),
    );
    let out = data.knhk(&["--max-firings", "50", "run", path_str(&looped), "--json"]);
    assert_eq!(out.status.code(), Some(1), "{}", crate::stderr(&out));
    let doc: Value = serde_json::from_slice(&out.stdout).expect("one JSON document");
    let looped = text(&doc, "case_id").to_owned();
    let err = data.fails(&["case", "retry", &looped]);
    assert!(
        err.contains(
            "the case failed with no task to run again (one step started more than 50 tasks"
        ),
        "{err}"
    );
    let err = data.fails(&["case", "cancel", &looped]);
    assert!(err.contains("case is failed, cannot cancel"), "{err}");
}

#[test]
fn an_operator_gives_up_on_a_failed_case_with_cancel() {
    let (server, _) = flaky_payment_server();
    let file = charge_then_ship(&server);
    let data = DataDir::new();
    let out = data.knhk(&["run", &file, "--data", r#"{"order": "A-18"}"#, "--json"]);
    let failed: Value = serde_json::from_slice(&out.stdout).expect("one JSON document");
    let case = text(&failed, "case_id").to_owned();
    let out = data.knhk(&[
        "case",
        "cancel",
        &case,
        "--reason",
        "card declined for good",
    ]);
    assert_eq!(out.status.code(), Some(0), "{}", crate::stderr(&out));
    let doc = data.knhk(&["case", "show", &case, "--json"]);
    let doc: Value = serde_json::from_slice(&doc.stdout).expect("one JSON document");
    assert_eq!(text(&doc, "state"), "cancelled");
    assert_eq!(doc["incidents"], serde_json::json!([]));
    let err = data.fails(&["case", "retry", &case]);
    assert!(err.contains("the case is cancelled, not failed"), "{err}");
}

#[test]
fn with_several_failed_tasks_retry_names_them_and_takes_one_at_a_time() {
    let (server, _) = flaky_payment_server();
    let file = temp_file(
        "two_charges.ttl",
        &format!(
            "{PREFIXES}\
             <#spec> a yawl:Specification ; yawl:hasDecomposition <#net> .\n\
             <#net> a yawl:Net ; yawl:isRootNet true ; yawl:hasInputCondition <#start> ;\n\
                 yawl:hasOutputCondition <#end> ; yawl:hasTask <#split>, <#pay_a>, <#pay_b>, <#join> .\n\
             <#start> a yawl:InputCondition ; yawl:flowsInto [ yawl:nextElementRef <#split> ] .\n\
             <#split> a yawl:Task ; yawl:hasSplit yawl:ControlTypeAnd ;\n\
                 yawl:flowsInto [ yawl:nextElementRef <#pay_a> ], [ yawl:nextElementRef <#pay_b> ] .\n\
             <#pay_a> a yawl:Task ; knhk:connector \"http\" ;\n\
                 knhk:setting [ knhk:key \"url\" ; knhk:value \"{server}/a/{{order}}\" ] ;\n\
                 yawl:flowsInto [ yawl:nextElementRef <#join> ] .\n\
             <#pay_b> a yawl:Task ; knhk:connector \"http\" ;\n\
                 knhk:setting [ knhk:key \"url\" ; knhk:value \"{server}/b/{{order}}\" ] ;\n\
                 yawl:flowsInto [ yawl:nextElementRef <#join> ] .\n\
             <#join> a yawl:Task ; yawl:hasJoin yawl:ControlTypeAnd ;\n\
                 yawl:flowsInto [ yawl:nextElementRef <#end> ] .\n\
             <#end> a yawl:OutputCondition .\n"
        ),
    );
    let data = DataDir::new();
    let out = data.knhk(&[
        "run",
        path_str(&file),
        "--data",
        r#"{"order": "B-1"}"#,
        "--json",
    ]);
    assert_eq!(out.status.code(), Some(1), "{}", crate::stderr(&out));
    let failed: Value = serde_json::from_slice(&out.stdout).expect("one JSON document");
    let case = text(&failed, "case_id").to_owned();
    // Both calls were made; the second failure is taken by the failed case as a second incident.
    let mut tasks: Vec<&str> = failed["incidents"]
        .as_array()
        .expect("incidents")
        .iter()
        .map(|i| text(i, "task"))
        .collect();
    tasks.sort_unstable();
    assert_eq!(tasks, ["pay_a", "pay_b"], "{failed:#}");

    let err = data.fails(&["case", "retry", &case]);
    assert!(
        err.contains("2 tasks failed (")
            && err.contains("pay_a")
            && err.contains("pay_b")
            && err.contains("name the one to retry"),
        "{err}"
    );
    let err = data.fails(&["case", "retry", &case, "--task", "join"]);
    assert!(err.contains("task join has no incident"), "{err}");

    // One retried: its call is made again, and the case stays failed while pay_b is open.
    let out = data.knhk(&["case", "retry", &case, "--task", "pay_a", "--json"]);
    assert_eq!(out.status.code(), Some(1), "the case is still failed");
    let partly: Value = serde_json::from_slice(&out.stdout).expect("one JSON document");
    assert_eq!(text(&partly, "state"), "failed");
    let open: Vec<&str> = partly["incidents"]
        .as_array()
        .expect("incidents")
        .iter()
        .map(|i| text(i, "task"))
        .collect();
    assert_eq!(open, ["pay_b"]);

    let done = data.json(&["case", "retry", &case, "--json"]);
    assert_eq!(text(&done, "state"), "completed", "{done:#}");
    assert_eq!(call_keys(&done).len(), 4);
}

#[test]
fn a_case_failed_with_a_timer_armed_in_another_branch_passes_the_store_check_and_resumes_it() {
    // Two branches: `wait` with a timer an hour away, and `check`, whose work item fails.
    let file = temp_file(
        "failed-with-timer.ttl",
        &format!(
            "{PREFIXES}<#spec> a yawl:Specification ; yawl:hasDecomposition <#net> .\n\
             <#net> a yawl:Net ; yawl:isRootNet true ; yawl:hasInputCondition <#start> ;\n\
                 yawl:hasOutputCondition <#end> ; yawl:hasTask <#split>, <#wait>, <#check>, <#join> .\n\
             <#start> a yawl:InputCondition ; yawl:flowsInto [ yawl:nextElementRef <#split> ] .\n\
             <#split> a yawl:Task ; yawl:hasSplit yawl:ControlTypeAnd ;\n\
                 yawl:flowsInto [ yawl:nextElementRef <#wait> ], [ yawl:nextElementRef <#check> ] .\n\
             <#wait> a yawl:Task ; knhk:role \"clerk\" ; yawl:hasTimer [ a yawl:Timer ;\n\
                 yawl:hasTrigger yawl:TimerTriggerOnEnabled ; yawl:duration \"PT1H\" ] ;\n\
                 yawl:flowsInto [ yawl:nextElementRef <#join> ] .\n\
             <#check> a yawl:Task ; knhk:role \"clerk\" ; yawl:flowsInto [ yawl:nextElementRef <#join> ] .\n\
             <#join> a yawl:Task ; yawl:hasJoin yawl:ControlTypeAnd ; yawl:flowsInto [ yawl:nextElementRef <#end> ] .\n\
             <#end> a yawl:OutputCondition .\n"
        ),
    );
    let data = DataDir::new();
    let doc = data.json(&["run", path_str(&file), "--json", "--wait", "0"]);
    let case = text(&doc, "case_id").to_owned();
    let check = doc["work_items"]
        .as_array()
        .and_then(|items| items.iter().find(|w| w["task"] == "check"))
        .map(|w| text(w, "id").to_owned())
        .unwrap_or_else(|| panic!("a work item of check: {doc:#}"));
    let failed = data.knhk(&[
        "workitem",
        "fail",
        &check,
        "--user",
        "cleo",
        "--reason",
        "no papers",
    ]);
    assert_eq!(failed.status.code(), Some(1), "the case failed");
    let report = data.ok(&["store", "check"]);
    assert!(
        report.contains("0 timers") && report.contains("no problems found"),
        "a failed case's timers are not missing rows: {report}"
    );
    let retried = data.json(&["case", "retry", &case, "--json"]);
    assert_eq!(text(&retried, "state"), "running", "{retried:#}");
    let report = data.ok(&["store", "check"]);
    assert!(
        report.contains("1 timers") && report.contains("no problems found"),
        "its timer is stored again: {report}"
    );
}
