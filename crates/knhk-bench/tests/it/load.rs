//! `knhk-bench load` refuses a workflow whose cases wait for people (it would wait for ever),
//! and ends with an error when the store cannot take its cases.

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

/// Runs `knhk-bench load` on a data directory with more arguments.
fn load(dir: &std::path::Path, args: &[&str]) -> std::process::Output {
    let workflow = std::path::Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("../../examples/bench/w1_sequence.ttl");
    Command::new(env!("CARGO_BIN_EXE_knhk-bench"))
        .arg("load")
        .arg("--data-dir")
        .arg(dir)
        .arg("--workflow")
        .arg(&workflow)
        .args(args)
        .output()
        .expect("knhk-bench runs")
}

/// A full disk, met for real: the store file is capped at the pages it has, so that SQLite
/// fails the next write that needs a page with `SQLITE_FULL`. The load ends with the error
/// instead of waiting for cases that can never be stored.
#[test]
fn load_ends_with_an_error_when_the_disk_is_full() {
    let dir = tempfile::tempdir().unwrap();
    let first = load(dir.path(), &["--cases", "1"]);
    assert!(
        first.status.success(),
        "{}",
        String::from_utf8_lossy(&first.stderr)
    );
    let pages = std::fs::metadata(dir.path().join("knhk.db")).unwrap().len() / 4096;
    let data = format!(r#"{{"blob": "{}"}}"#, "b".repeat(20_000));
    let out = load(
        dir.path(),
        &[
            "--cases",
            "40",
            "--data",
            &data,
            "--store-max-pages",
            &pages.to_string(),
        ],
    );
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(1), "{stderr}");
    assert!(stderr.contains("database or disk is full"), "{stderr}");
}
