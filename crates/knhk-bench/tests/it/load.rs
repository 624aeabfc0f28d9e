//! `knhk-bench load` refuses a workflow whose cases wait for people: it would wait for ever.

use std::process::Command;

#[test]
fn load_refuses_a_workflow_with_human_tasks_naming_them() {
    let dir = tempfile::tempdir().unwrap();
    let workflow = std::path::Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("../../examples/loan_application.ttl");
    let out = Command::new(env!("CARGO_BIN_EXE_knhk-bench"))
        .args(["load", "--cases", "3", "--data-dir"])
        .arg(dir.path())
        .arg("--workflow")
        .arg(&workflow)
        .output()
        .expect("knhk-bench runs");
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(1), "{stderr}");
    assert!(stderr.contains("underwriter_decision"), "{stderr}");
    assert!(stderr.contains("wait for people"), "{stderr}");
}
