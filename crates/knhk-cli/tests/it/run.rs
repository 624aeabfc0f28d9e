//! `knhk run`: a workflow file run to its end or its first wait, with its history.

use std::io::{BufRead, BufReader};

use crate::http_server::{Reply, serve};
use crate::{
    DataDir, PREFIXES, completed_tasks, example, kinds, path_str, stderr, stdout, temp_file, text,
};

#[test]
fn run_completes_a_small_loan_and_prints_the_history() {
    let data = DataDir::new();
    let out = data.knhk(&[
        "run",
        &example("loan_application.ttl"),
        "--data",
        r#"{"applicant": "Ada", "amount": 5000}"#,
    ]);
    let text = stdout(&out);
    assert!(out.status.success(), "{text}");
    // The table: a header, then one row per event from seq 1.
    let header = text
        .lines()
        .find(|l| l.trim_start().starts_with("seq"))
        .unwrap_or_default();
    assert_eq!(
        header.split_whitespace().collect::<Vec<_>>(),
        ["seq", "time", "kind", "task", "detail"],
        "{text}"
    );
    let rows: Vec<Vec<&str>> = text
        .lines()
        .map(|l| l.split_whitespace().collect::<Vec<_>>())
        .filter(|cells| cells.first().is_some_and(|c| c.parse::<u64>().is_ok()))
        .collect();
    let seqs: Vec<u64> = rows.iter().filter_map(|r| r[0].parse().ok()).collect();
    assert_eq!(seqs, (1..=seqs.len() as u64).collect::<Vec<_>>(), "{text}");
    // The time is a date, a time of day and its zone's offset: two words.
    let completed: Vec<&str> = rows
        .iter()
        .filter(|r| r[3] == "task_completed")
        .map(|r| r[4])
        .collect();
    assert_eq!(
        completed,
        [
            "check_application",
            "open_file",
            "credit_check",
            "document_check",
            "assess",
            "approve_by_policy",
            "notify_approval"
        ],
        "{text}"
    );
    assert!(text.contains("created -> running"), "{text}");
    assert!(text.contains("running -> completed"), "{text}");
    assert!(text.contains("(Loan application v1): completed"), "{text}");
    assert!(text.contains(r#""decision":"approved""#), "{text}");
}

#[test]
fn run_json_is_one_document_and_the_progress_goes_to_stderr() {
    let data = DataDir::new();
    let out = data.knhk(&[
        "run",
        &example("loan_application.ttl"),
        "--data",
        r#"{"amount": 25000}"#,
        "--json",
    ]);
    assert!(out.status.success(), "{}", crate::stderr(&out));
    let doc: serde_json::Value = serde_json::from_slice(&out.stdout).expect("one JSON document");
    for key in [
        "case_id",
        "workflow_id",
        "state",
        "data",
        "history",
        "work_items",
    ] {
        assert!(doc.get(key).is_some(), "no {key} in {doc:#}");
    }
    assert_eq!(text(&doc, "state"), "running");
    assert_eq!(doc["data"]["amount"], 25000);
    let history = doc["history"].as_array().expect("history");
    let seqs: Vec<u64> = history.iter().filter_map(|e| e["seq"].as_u64()).collect();
    assert_eq!(seqs, (1..=history.len() as u64).collect::<Vec<_>>());
    for e in history {
        assert!(e["time"].as_str().is_some_and(|t| t.ends_with('Z')), "{e}");
        assert!(e["kind"].is_string(), "{e}");
        assert!(e.get("task").is_some(), "{e}");
    }
    assert!(
        history.iter().any(|e| e["kind"] == "case_state_changed"
            && e["event"]["from"] == "created"
            && e["event"]["to"] == "running"),
        "{doc:#}"
    );
    assert_eq!(kinds(&doc).last(), Some(&"work_item_offered"));
    let items = doc["work_items"].as_array().expect("work items");
    assert_eq!(items.len(), 1, "{doc:#}");
    assert_eq!(items[0]["task"], "underwriter_decision");
    assert_eq!(items[0]["roles"][0], "underwriter");
    // The progress went to stderr, row by row.
    let progress = crate::stderr(&out);
    assert!(progress.contains("work_item_offered"), "{progress}");
}

#[test]
fn run_says_how_to_continue_a_case_that_waits_for_people() {
    let data = DataDir::new();
    let text = data.ok(&[
        "run",
        &example("order_approval.ttl"),
        "--data",
        r#"{"amount": 1500}"#,
    ]);
    assert!(text.contains("(Order approval v1): running"), "{text}");
    assert!(
        text.contains("of task manager_approval, offered to role manager"),
        "{text}"
    );
    let dir = path_str(data.path());
    assert!(
        text.contains(&format!(
            "knhk --data-dir {dir} workitem list --role manager"
        )),
        "{text}"
    );
    assert!(
        text.contains(&format!("knhk --data-dir {dir} workitem complete ")),
        "{text}"
    );
}

#[test]
fn run_refuses_bad_data_with_the_json_error_and_stores_nothing() {
    let data = DataDir::new();
    let err = data.fails(&[
        "run",
        &example("order_approval.ttl"),
        "--data",
        r#"{"amount": "#,
    ]);
    assert!(err.contains("--data is not valid JSON"), "{err}");
    assert!(err.contains("EOF while parsing"), "{err}");
    assert!(data.ok(&["workflow", "list"]).contains("no workflows"));
}

#[test]
fn run_refuses_an_invalid_workflow_and_lists_every_violation() {
    // Two tasks without an incoming flow: both are named.
    let file = temp_file(
        "two_orphans.ttl",
        &format!(
            "{PREFIXES}\
             <#spec> a yawl:Specification ; yawl:hasDecomposition <#net> .\n\
             <#net> a yawl:Net ; yawl:isRootNet true ; yawl:hasInputCondition <#start> ;\n\
                 yawl:hasOutputCondition <#end> ; yawl:hasTask <#work>, <#lost>, <#stray> .\n\
             <#start> a yawl:InputCondition ; yawl:flowsInto [ yawl:nextElementRef <#work> ] .\n\
             <#work> a yawl:Task ; yawl:flowsInto [ yawl:nextElementRef <#end> ] .\n\
             <#lost> a yawl:Task ; yawl:flowsInto [ yawl:nextElementRef <#end> ] .\n\
             <#stray> a yawl:Task ; yawl:flowsInto [ yawl:nextElementRef <#end> ] .\n\
             <#end> a yawl:OutputCondition .\n"
        ),
    );
    let data = DataDir::new();
    let err = data.fails(&["run", path_str(&file)]);
    assert!(err.contains("two_orphans.ttl"), "{err}");
    assert!(err.contains("#lost>"), "{err}");
    assert!(err.contains("#stray>"), "{err}");
    assert!(!err.contains("#work>"), "{err}");
}

#[test]
fn run_exits_with_status_1_when_the_case_fails() {
    // The predicate reads a field the data does not have: the split fails, and the case.
    let file = temp_file(
        "fails.ttl",
        &format!(
            "{PREFIXES}\
             <#spec> a yawl:Specification ; yawl:hasDecomposition <#net> .\n\
             <#net> a yawl:Net ; yawl:isRootNet true ; yawl:hasInputCondition <#start> ;\n\
                 yawl:hasOutputCondition <#end> ; yawl:hasTask <#decide>, <#a>, <#b> .\n\
             <#start> a yawl:InputCondition ; yawl:flowsInto [ yawl:nextElementRef <#decide> ] .\n\
             <#decide> a yawl:Task ; yawl:hasSplit yawl:ControlTypeXor ; yawl:flowsInto\n\
                 [ yawl:nextElementRef <#a> ; knhk:predicate \"missing > 1\" ; yawl:ordering 1 ],\n\
                 [ yawl:nextElementRef <#b> ; yawl:isDefaultFlow true ] .\n\
             <#a> a yawl:Task ; yawl:flowsInto [ yawl:nextElementRef <#end> ] .\n\
             <#b> a yawl:Task ; yawl:flowsInto [ yawl:nextElementRef <#end> ] .\n\
             <#end> a yawl:OutputCondition .\n"
        ),
    );
    let data = DataDir::new();
    let out = data.knhk(&["run", path_str(&file), "--json"]);
    assert_eq!(out.status.code(), Some(1), "{}", crate::stderr(&out));
    let doc: serde_json::Value = serde_json::from_slice(&out.stdout).expect("one JSON document");
    assert_eq!(text(&doc, "state"), "failed");
    assert!(kinds(&doc).contains(&"task_failed"), "{doc:#}");
}

/// Starts an HTTP server on port 0 that answers every POST with `{"charged": true}` and
/// returns its address.
fn payment_server() -> String {
    flaky_payment_server(0)
}

/// Starts an HTTP server on port 0 that answers its first `unavailable` requests with 503 (and
/// a body that must stay out of the history), then every POST with `{"charged": true}`.
fn flaky_payment_server(unavailable: usize) -> String {
    serve(move |request| {
        if request.n < unavailable {
            Reply::json("503 Service Unavailable", "card vault token tok_secret")
        } else {
            Reply::json("200 OK", r#"{"charged": true}"#)
        }
    })
}

/// A charge task calling `server`, then an empty task.
fn charge_workflow(server: &str) -> std::path::PathBuf {
    temp_file(
        "charge.ttl",
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
    )
}

#[test]
fn run_makes_connector_calls_in_process_and_waits_for_them() {
    let file = charge_workflow(&payment_server());
    let data = DataDir::new();
    let doc = data.json(&[
        "run",
        path_str(&file),
        "--data",
        r#"{"order": "A-17"}"#,
        "--json",
    ]);
    assert_eq!(text(&doc, "state"), "completed", "{doc:#}");
    assert_eq!(doc["data"]["charged"], true);
    assert!(kinds(&doc).contains(&"connector_call_succeeded"), "{doc:#}");
    assert_eq!(completed_tasks(&doc), ["charge", "ship"]);
}

#[test]
fn retried_attempts_of_a_call_show_in_the_history_without_the_response_body() {
    let file = charge_workflow(&flaky_payment_server(2));
    let data = DataDir::new();
    let out = data.ok(&["run", path_str(&file), "--data", r#"{"order": "A-18"}"#]);
    assert!(
        out.contains(
            "(after 2 failed attempts: 1 503 Service Unavailable; 2 503 Service Unavailable)"
        ),
        "the table says how the call went: {out}"
    );
    let case = text(&data.json(&["case", "list", "--json"])[0], "case_id").to_owned();
    let history = data.json(&["case", "history", &case, "--json"]);
    let succeeded = history["history"]
        .as_array()
        .and_then(|events| {
            events
                .iter()
                .find(|e| e["kind"] == "connector_call_succeeded")
        })
        .unwrap_or_else(|| panic!("a result event: {history:#}"));
    assert_eq!(
        succeeded["event"]["failed_attempts"],
        serde_json::json!([
            {"attempt": 1, "error": "503 Service Unavailable"},
            {"attempt": 2, "error": "503 Service Unavailable"}
        ]),
        "{succeeded:#}"
    );
    assert!(
        !history.to_string().contains("tok_secret"),
        "no response body in the history: {history:#}"
    );
}

/// Two empty tasks that loop for ever: B always routes back to A.
fn runaway_loop() -> std::path::PathBuf {
    temp_file(
        "runaway.ttl",
        &format!(
            "{PREFIXES}\
             <#spec> a yawl:Specification ; yawl:name \"Runaway\" ; yawl:hasDecomposition <#net> .\n\
             <#net> a yawl:Net ; yawl:isRootNet true ; yawl:hasInputCondition <#start> ;\n\
                 yawl:hasOutputCondition <#end> ; yawl:hasTask <#A>, <#B> .\n\
             <#start> a yawl:InputCondition ; yawl:flowsInto [ yawl:nextElementRef <#A> ] .\n\
             <#A> a yawl:Task ; yawl:hasJoin yawl:ControlTypeXor ;\n\
                 yawl:flowsInto [ yawl:nextElementRef <#B> ] .\n\
             <#B> a yawl:Task ; yawl:hasSplit yawl:ControlTypeXor ; yawl:flowsInto\n\
                 [ yawl:nextElementRef <#A> ; knhk:predicate \"true\" ; yawl:ordering 1 ],\n\
                 [ yawl:nextElementRef <#end> ; yawl:isDefaultFlow true ] .\n\
             <#end> a yawl:OutputCondition .\n"
        ),
    )
}

#[test]
fn a_loop_of_automatic_tasks_fails_its_case_at_the_firing_bound_naming_the_loop() {
    let data = DataDir::new();
    let file = runaway_loop();
    let out = data.knhk(&["--max-firings", "500", "run", path_str(&file), "--json"]);
    assert_eq!(out.status.code(), Some(1), "{}", stderr(&out));
    let doc: serde_json::Value = serde_json::from_slice(&out.stdout).expect("a JSON document");
    assert_eq!(text(&doc, "state"), "failed", "{doc:#}");
    let history = doc["history"].as_array().expect("history");
    let limit = history
        .iter()
        .find(|e| e["kind"] == "firing_limit_reached")
        .expect("a firing_limit_reached event");
    let detail = text(limit, "detail");
    assert!(detail.contains('A') && detail.contains('B'), "{detail}");
    // The step stopped at its bound: a few events per firing, not an endless history.
    assert!(history.len() < 500 * 4, "{} events", history.len());
    // The case was committed failed: nothing keeps running it.
    let shown = data.knhk(&["case", "show", text(&doc, "case_id")]);
    assert!(stdout(&shown).contains("failed"), "{}", stdout(&shown));
}

#[test]
fn a_history_piped_into_a_reader_that_stops_early_ends_quietly() {
    use std::process::{Command, Stdio};

    let data = DataDir::new();
    let file = runaway_loop();
    // A long history: more than a pipe holds, so the writer meets the closed pipe.
    let out = data.knhk(&["--max-firings", "2000", "run", path_str(&file), "--json"]);
    let doc: serde_json::Value = serde_json::from_slice(&out.stdout).expect("a JSON document");
    let case = text(&doc, "case_id").to_owned();
    let mut child = Command::new(env!("CARGO_BIN_EXE_knhk"))
        .args([
            "--data-dir",
            path_str(data.path()),
            "case",
            "history",
            &case,
        ])
        .env_remove("KNHK_DATA_DIR")
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("knhk runs");
    let mut first = String::new();
    let mut reader = BufReader::new(child.stdout.take().expect("stdout"));
    reader.read_line(&mut first).expect("the first line");
    assert!(first.contains("seq"), "{first}");
    drop(reader);
    let out = child.wait_with_output().expect("knhk ends");
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(!err.contains("panicked"), "{err}");
    assert_eq!(out.status.code(), Some(0), "{err}");
}

#[test]
fn logs_written_to_a_pipe_carry_no_colour_codes() {
    let data = DataDir::new();
    let out = std::process::Command::new(env!("CARGO_BIN_EXE_knhk"))
        .args(["--data-dir", path_str(data.path())])
        .args([
            "run",
            &example("order_approval.ttl"),
            "--data",
            r#"{"amount": 20}"#,
        ])
        .env_remove("KNHK_DATA_DIR")
        .env("RUST_LOG", "info")
        .output()
        .expect("knhk runs");
    let err = stderr(&out);
    assert!(err.contains("workflow registered"), "the log is on: {err}");
    assert!(!err.contains('\u{1b}'), "no escape codes: {err:?}");
}

#[test]
fn the_timer_example_waits_for_its_payment_with_a_reminder_armed() {
    let data = DataDir::new();
    let file = example("invoice_reminder.ttl");
    let out = data.ok(&["run", &file]);
    assert!(
        out.contains("a timer of task await_payment due at"),
        "the case says what it waits for: {out}"
    );
    let doc = data.json(&["case", "list", "--json"]);
    let case = text(&doc[0], "case_id").to_owned();
    let shown = data.json(&["case", "show", &case, "--json"]);
    assert_eq!(shown["data"]["paid"], false, "the initial value: {shown:#}");
    let item = text(&shown["work_items"][0], "id").to_owned();
    let done = data.json(&[
        "workitem",
        "complete",
        &item,
        "--user",
        "cleo",
        "--output",
        r#"{"paid": true}"#,
        "--json",
    ]);
    assert_eq!(text(&done, "state"), "completed", "{done:#}");
    assert_eq!(
        completed_tasks(&done),
        ["send_invoice", "await_payment", "close"]
    );
    assert!(
        kinds(&done).contains(&"timer_cancelled"),
        "the reminder is off"
    );
}

/// The invoice example with its reminder due after `duration` instead of three days.
fn quick_reminder(duration: &str) -> std::path::PathBuf {
    let text = std::fs::read_to_string(example("invoice_reminder.ttl")).expect("the example");
    assert!(text.contains("\"P3D\""));
    temp_file(
        &format!("reminder-{duration}.ttl"),
        &text.replace("\"P3D\"", &format!("\"{duration}\"")),
    )
}

#[test]
fn run_waits_for_a_timer_due_within_the_bound_and_fires_it() {
    let data = DataDir::new();
    let file = quick_reminder("PT1S");
    let out = data.knhk(&["run", path_str(&file), "--wait", "30"]);
    let (text, err) = (stdout(&out), crate::stderr(&out));
    assert!(out.status.success(), "{text}\n{err}");
    assert!(
        err.contains("waiting for the timer of task await_payment"),
        "it says what it waits for: {err}"
    );
    assert!(text.contains("timer_fired"), "{text}");
    assert!(text.contains("(Invoice reminder v1): completed"), "{text}");
    let doc = data.json(&["case", "list", "--json"]);
    let case = crate::text(&doc[0], "case_id").to_owned();
    let shown = data.json(&["case", "show", &case, "--json"]);
    assert_eq!(
        completed_tasks(&shown),
        ["send_invoice", "await_payment", "send_reminder", "close"],
        "the reminder went out: {shown:#}"
    );
}

#[test]
fn run_leaves_a_timer_beyond_the_bound_to_the_worker_and_says_so() {
    let data = DataDir::new();
    let out = data.ok(&["run", &example("invoice_reminder.ttl"), "--wait", "1"]);
    assert!(!out.contains("timer_fired"), "{out}");
    assert!(
        out.contains("a timer of task await_payment due at"),
        "what the case waits for: {out}"
    );
    assert!(
        out.contains("knhk --data-dir") && out.contains(" worker"),
        "how the timer will fire: {out}"
    );
}
