//! Snapshots through the binary: `--snapshot-every` (and `KNHK_SNAPSHOT_EVERY`) choose how
//! often a case's state is stored with its step, and a case with a snapshot is shown and moved
//! on without its history before it; `case show --json` prints the whole history, read page
//! by page, as one pretty JSON document.

use std::process::Command;

use serde_json::Value;

use crate::*;

/// Sets the loan case's data `n` times, one process each.
fn set_data(data: &DataDir, case: &str, n: u32, every: &str) {
    for i in 0..n {
        data.ok(&[
            "--snapshot-every",
            every,
            "case",
            "set-data",
            case,
            "--data",
            &format!("{{\"note\": {i}}}"),
        ]);
    }
}

/// Returns the seq of the case's stored snapshot, if any.
fn snapshot_seq(data: &DataDir, case: &str) -> Option<u64> {
    let conn = rusqlite::Connection::open(data.path().join("knhk.db")).expect("the store file");
    conn.query_row(
        "SELECT seq FROM snapshots WHERE case_id = ?1",
        [case],
        |r| r.get::<_, i64>(0),
    )
    .ok()
    .map(|n| n as u64)
}

#[test]
fn a_case_with_a_snapshot_is_shown_and_moved_on_without_its_earlier_history() {
    let data = DataDir::new();
    let case = text(&data.start_loan(), "case_id").to_owned();
    // The default (1,000 events) takes no snapshot of a short case; 4 does.
    set_data(&data, &case, 2, "1000");
    assert_eq!(snapshot_seq(&data, &case), None);
    set_data(&data, &case, 6, "4");
    let seq = snapshot_seq(&data, &case).expect("a snapshot");
    // Every event up to the snapshot is damaged: a command that read one would fail.
    let conn = rusqlite::Connection::open(data.path().join("knhk.db")).expect("the store file");
    conn.execute(
        "UPDATE events SET payload = 'damaged' WHERE case_id = ?1 AND seq <= ?2",
        rusqlite::params![case, seq as i64],
    )
    .expect("the damage is done");
    drop(conn);

    let shown = data.ok(&["--snapshot-every", "4", "case", "show", &case]);
    assert!(shown.contains("\"note\":5"), "{shown}");
    assert!(shown.contains("underwriter"), "{shown}");
    let page = data.json(&[
        "case",
        "history",
        &case,
        "--after",
        &seq.to_string(),
        "--limit",
        "100",
        "--json",
    ]);
    assert_eq!(page["history"][0]["seq"], seq + 1);
    // A work item step, through the environment variable this time.
    let items = data.json(&["workitem", "list", "--role", "underwriter", "--json"]);
    let item = items[0]["id"].as_str().expect("an item id").to_owned();
    let out = Command::new(env!("CARGO_BIN_EXE_knhk"))
        .args([
            "--data-dir",
            path_str(data.path()),
            "workitem",
            "complete",
            &item,
        ])
        .args(["--user", "uma", "--output", r#"{"approved": true}"#])
        .env("KNHK_SNAPSHOT_EVERY", "4")
        .output()
        .expect("the knhk binary runs");
    assert!(out.status.success(), "{}\n{}", stdout(&out), stderr(&out));

    // With snapshots off, the same case is read from its history, which does not load.
    let err = data.fails(&["--snapshot-every", "0", "case", "show", &case]);
    assert!(err.contains("does not"), "{err}");
}

#[test]
fn case_show_json_prints_the_whole_history_as_one_pretty_document() {
    let data = DataDir::new();
    let case = text(&data.start_loan(), "case_id").to_owned();
    set_data(&data, &case, 3, "2");
    let text = data.ok(&["--snapshot-every", "2", "case", "show", &case, "--json"]);
    let doc: Value = serde_json::from_str(&text).expect("one JSON document");
    // Printed exactly as the whole document would be.
    assert_eq!(
        text,
        format!("{}\n", serde_json::to_string_pretty(&doc).expect("json"))
    );
    let seqs: Vec<u64> = doc["history"]
        .as_array()
        .expect("a history")
        .iter()
        .map(|e| e["seq"].as_u64().expect("a seq"))
        .collect();
    let version = snapshot_seq(&data, &case).expect("a snapshot");
    assert!(version > 2, "{version}");
    assert_eq!(seqs, (1..=seqs.len() as u64).collect::<Vec<_>>());
    let history = data.json(&["case", "history", &case, "--json"]);
    assert_eq!(history["history"], doc["history"]);
    assert_eq!(
        doc["history"][seqs.len() - 1]["event"]["changes"]["note"],
        2,
        "{doc:#}"
    );
}
