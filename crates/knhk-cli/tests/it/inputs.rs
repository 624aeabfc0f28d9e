//! Every input the core accepts, given from the command line: adding an instance to a dynamic
//! multiple-instance task, completing a task early, setting case data, failing a work item.

use crate::{DataDir, completed_tasks, example, kinds, text};

/// Starts a WCP-15 case whose dynamic multiple-instance task Quote has one instance per
/// supplier, and returns the case document.
fn quotes(data: &DataDir) -> serde_json::Value {
    data.json(&[
        "run",
        &example("patterns/wcp15_mi_no_runtime_knowledge.ttl"),
        "--data",
        r#"{"suppliers": ["acme", "globex"]}"#,
        "--json",
    ])
}

fn work_items(doc: &serde_json::Value) -> Vec<&str> {
    doc["work_items"]
        .as_array()
        .expect("a work item array")
        .iter()
        .map(|w| text(w, "task"))
        .collect()
}

#[test]
fn an_instance_is_added_to_a_running_dynamic_task_and_the_task_completed_early() {
    let data = DataDir::new();
    let started = quotes(&data);
    let case = text(&started, "case_id").to_owned();
    assert_eq!(work_items(&started), ["Quote", "Quote"], "{started:#}");

    let added = data.json(&[
        "case",
        "add-instance",
        &case,
        "Quote",
        "--item",
        r#""initech""#,
        "--json",
    ]);
    assert_eq!(work_items(&added), ["Quote", "Quote", "Quote"], "{added:#}");
    let inputs: Vec<&serde_json::Value> = added["work_items"]
        .as_array()
        .expect("work items")
        .iter()
        .map(|w| &w["input"]["supplier"])
        .collect();
    assert!(inputs.contains(&&serde_json::json!("initech")), "{added:#}");

    // Completing Quote now withdraws its three open instances and lets C run.
    let done = data.json(&["case", "complete-task", &case, "Quote", "--json"]);
    assert_eq!(text(&done, "state"), "completed", "{done:#}");
    assert!(work_items(&done).is_empty());
    assert!(
        completed_tasks(&done).ends_with(&["Quote", "C"]),
        "{done:#}"
    );
}

#[test]
fn an_input_the_case_cannot_take_is_refused_naming_it_and_changes_nothing() {
    let data = DataDir::new();
    let started = quotes(&data);
    let case = text(&started, "case_id").to_owned();
    let before = kinds(&data.json(&["case", "show", &case, "--json"])).len();

    let err = data.fails(&["case", "complete-task", &case, "Nope"]);
    assert!(err.contains("Nope"), "{err}");
    let err = data.fails(&["case", "add-instance", &case, "A", "--item", "1"]);
    assert!(err.contains("cannot add an instance to task A"), "{err}");
    let err = data.fails(&["case", "add-instance", &case, "Quote", "--item", "{"]);
    assert!(err.contains("--item is not valid JSON"), "{err}");
    let err = data.fails(&["case", "set-data", &case, "--data", "[1]"]);
    assert!(err.contains("--data must be a JSON object"), "{err}");

    let after = data.json(&["case", "show", &case, "--json"]);
    assert_eq!(kinds(&after).len(), before, "nothing was added: {after:#}");
    assert_eq!(work_items(&after), ["Quote", "Quote"]);
}

#[test]
fn case_data_is_set_from_the_command_line() {
    let data = DataDir::new();
    let started = quotes(&data);
    let case = text(&started, "case_id").to_owned();
    let set = data.json(&[
        "case",
        "set-data",
        &case,
        "--data",
        r#"{"budget": 900}"#,
        "--json",
    ]);
    assert_eq!(set["data"]["budget"], 900, "{set:#}");
    assert_eq!(set["data"]["suppliers"][0], "acme");
    assert!(kinds(&set).contains(&"data_updated"), "{set:#}");
}

#[test]
fn a_failed_work_item_fails_its_task_and_the_case_without_a_failure_flow() {
    let data = DataDir::new();
    let started = data.start_loan();
    let case = text(&started, "case_id").to_owned();
    let item = text(&started["work_items"][0], "id").to_owned();
    data.ok(&["workitem", "claim", &item, "--user", "uma"]);
    // Only its owner may give it up.
    let err = data.fails(&["workitem", "fail", &item, "--user", "eve", "--reason", "no"]);
    assert!(err.contains("allocated by uma, not eve"), "{err}");

    let out = data.knhk(&[
        "workitem",
        "fail",
        &item,
        "--user",
        "uma",
        "--reason",
        "documents missing",
        "--json",
    ]);
    assert_eq!(out.status.code(), Some(1), "a failed case exits with 1");
    let doc: serde_json::Value = serde_json::from_slice(&out.stdout).expect("a JSON document");
    assert_eq!(text(&doc, "state"), "failed", "{doc:#}");
    let history = doc["history"].as_array().expect("history");
    assert!(
        history.iter().any(|e| e["kind"] == "task_failed"
            && e["detail"]
                .as_str()
                .is_some_and(|d| d.contains("documents missing"))),
        "{doc:#}"
    );
    let shown = data.knhk(&["case", "show", &case, "--json"]);
    let shown: serde_json::Value = serde_json::from_slice(&shown.stdout).expect("a JSON document");
    assert_eq!(text(&shown, "state"), "failed");
}

#[test]
fn json_options_come_from_a_file_or_standard_input_and_refuse_duplicate_keys() {
    use std::io::Write as _;
    use std::process::{Command, Stdio};

    let data = DataDir::new();
    // A duplicate key is refused before anything is stored.
    let err = data.fails(&[
        "run",
        &example("order_approval.ttl"),
        "--data",
        r#"{"amount": 5, "amount": 5000}"#,
    ]);
    assert!(err.contains("the key \"amount\" is given twice"), "{err}");
    assert!(
        data.ok(&["case", "list"]).contains("no cases"),
        "nothing was stored"
    );

    // From a file, too large for a command line.
    let big = "x".repeat(200 * 1024);
    let file = data.path().join("data.json");
    std::fs::write(&file, format!(r#"{{"amount": 20, "note": "{big}"}}"#)).expect("data file");
    let at_file = format!("@{}", file.display());
    let doc = data.json(&[
        "run",
        &example("order_approval.ttl"),
        "--data",
        &at_file,
        "--json",
    ]);
    assert_eq!(doc["data"]["amount"], 20);
    assert_eq!(doc["data"]["note"].as_str().map(str::len), Some(big.len()));

    // From standard input.
    let mut child = Command::new(env!("CARGO_BIN_EXE_knhk"))
        .args(["--data-dir", crate::path_str(data.path())])
        .args([
            "run",
            &example("order_approval.ttl"),
            "--data",
            "-",
            "--json",
        ])
        .env_remove("KNHK_DATA_DIR")
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("knhk runs");
    child
        .stdin
        .take()
        .expect("stdin")
        .write_all(br#"{"amount": 30}"#)
        .expect("written");
    let out = child.wait_with_output().expect("knhk ends");
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let doc: serde_json::Value = serde_json::from_slice(&out.stdout).expect("a JSON document");
    assert_eq!(doc["data"]["amount"], 30);

    let err = data.fails(&[
        "run",
        &example("order_approval.ttl"),
        "--data",
        "@/no/such/file",
    ]);
    assert!(
        err.contains("cannot read --data from /no/such/file"),
        "{err}"
    );
}

#[test]
fn user_names_that_are_empty_or_hold_control_characters_are_refused() {
    let data = DataDir::new();
    let started = data.start_loan();
    let item = text(&started["work_items"][0], "id").to_owned();
    for user in ["", " uma", "u\nma", "u\u{1b}[31mma"] {
        let out = data.knhk(&["workitem", "claim", &item, "--user", user]);
        assert_eq!(out.status.code(), Some(2), "{user:?} is a usage error");
        let err = String::from_utf8_lossy(&out.stderr);
        assert!(err.contains("a user name cannot"), "{user:?}: {err}");
    }
    let items = data.json(&["workitem", "list", "--json"]);
    assert!(items[0]["owner"].is_null(), "nobody claimed it: {items:#}");
}

#[test]
fn case_data_over_the_engines_bound_is_refused_and_nothing_is_stored() {
    let data = DataDir::new();
    let file = data.path().join("huge.json");
    let huge = "x".repeat(1024 * 1024 + 1);
    std::fs::write(&file, format!(r#"{{"amount": 20, "note": "{huge}"}}"#)).expect("data file");
    let at_file = format!("@{}", file.display());
    let err = data.fails(&["run", &example("order_approval.ttl"), "--data", &at_file]);
    assert!(
        err.contains("the case data is larger than the 1048576 bytes this engine takes"),
        "{err}"
    );
    assert!(data.ok(&["case", "list"]).contains("no cases"));
}
