//! YAWL XML files written the way the YAWL editor writes them, through the `knhk` binary:
//! one-flow splits and joins are notes, not errors; initial values start the case data;
//! manual tasks distributed at run time wait for an administrator; a cancellation set that
//! names a flow removes the token on it.

use crate::{DataDir, example, knhk, stdout, text};

fn work_item_of<'a>(doc: &'a serde_json::Value, task: &str) -> &'a serde_json::Value {
    doc["work_items"]
        .as_array()
        .expect("work items")
        .iter()
        .find(|w| w["task"] == task)
        .unwrap_or_else(|| panic!("no work item of {task} in {doc:#}"))
}

#[test]
fn validate_accepts_editor_files_and_notes_what_it_reads_differently() {
    let out = knhk(&[
        "--admin-role",
        "boss",
        "validate",
        &example("yawl/leave_request.yawl"),
        &example("yawl/paper_review_beta.yawl"),
    ]);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let text = stdout(&out);
    assert!(text.contains("ok ") && !text.contains("error"), "{text}");
    assert!(
        text.contains("the AND split has one outgoing flow and behaves as a plain one"),
        "{text}"
    );
    assert!(
        text.contains("the AND join has one incoming flow and behaves as a plain one"),
        "{text}"
    );
    assert!(
        text.contains("administrators' queue, role \"boss\""),
        "{text}"
    );
    assert!(
        text.contains("threshold 3 is above the maximum 2"),
        "{text}"
    );
}

#[test]
fn initial_values_start_the_case_data_and_given_data_overrides_them() {
    let data = DataDir::new();
    let file = example("yawl/leave_request.yawl");
    let doc = data.json(&["run", &file, "--json"]);
    assert_eq!(doc["data"]["days"], 3, "{doc:#}");
    assert_eq!(doc["data"]["paid"], true);
    assert_eq!(doc["data"]["reason"], "holiday");
    let doc = data.json(&["run", &file, "--data", r#"{"days": 12}"#, "--json"]);
    assert_eq!(doc["data"]["days"], 12, "{doc:#}");
    assert_eq!(doc["data"]["reason"], "holiday");
}

#[test]
fn recording_the_payment_removes_the_reminder_waiting_on_its_flow() {
    let data = DataDir::new();
    let started = data.json(&["run", &example("yawl/payment_reminder.yawl"), "--json"]);
    let case = text(&started, "case_id").to_owned();
    let reminder = text(work_item_of(&started, "SendReminder_5"), "id").to_owned();
    let payment = text(work_item_of(&started, "RecordPayment_6"), "id").to_owned();

    let after = data.json(&["workitem", "complete", &payment, "--user", "ada", "--json"]);
    let history = after["history"].as_array().expect("history");
    assert!(
        history.iter().any(|e| e["kind"] == "tokens_removed"
            && e["detail"]
                .as_str()
                .is_some_and(|d| d.contains("PrepareReminder_4__SendReminder_5"))),
        "{after:#}"
    );
    assert!(
        history
            .iter()
            .any(|e| e["kind"] == "work_item_cancelled" && e["event"]["item"] == reminder.as_str()),
        "{after:#}"
    );
    let close = text(work_item_of(&after, "Close_7"), "id").to_owned();
    let done = data.json(&["workitem", "complete", &close, "--user", "ada", "--json"]);
    assert_eq!(text(&done, "state"), "completed", "{done:#}");
    let shown = data.ok(&["case", "history", &case]);
    assert!(
        !shown.contains("task_completed            SendReminder_5"),
        "{shown}"
    );
}
