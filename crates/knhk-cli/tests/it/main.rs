//! Integration tests of the `knhk` binary: each test runs the built binary on real files (and
//! a data directory of its own) and checks its exit status and output.

// Helpers outside `#[test]` functions fail loudly too.
#![allow(clippy::expect_used, clippy::panic)]

mod cases;
mod definitions;
mod distribution;
mod grpc;
mod http_server;
mod incidents;
mod inputs;
mod limits;
mod run;
mod serve;
mod snapshots;
mod storage;
mod versions;
mod warnings;
mod worker;
mod workitems;
mod yawl;

use std::path::{Path, PathBuf};
use std::process::{Command, Output};

use serde_json::Value;

fn examples() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../../examples")
}

fn example(name: &str) -> String {
    path_str(&examples().join(name)).to_owned()
}

fn knhk(args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_knhk"))
        .args(args)
        .env_remove("KNHK_DATA_DIR")
        .env_remove("KNHK_UTC")
        .output()
        .expect("the knhk binary runs")
}

fn stdout(out: &Output) -> String {
    String::from_utf8_lossy(&out.stdout).into_owned()
}

fn stderr(out: &Output) -> String {
    String::from_utf8_lossy(&out.stderr).into_owned()
}

/// Writes `text` to a file of its own under the target's temporary folder.
fn temp_file(name: &str, text: &str) -> PathBuf {
    let dir =
        Path::new(env!("CARGO_TARGET_TMPDIR")).join(format!("knhk-cli-it-{}", std::process::id()));
    std::fs::create_dir_all(&dir).expect("temporary folder");
    let path = dir.join(name);
    std::fs::write(&path, text).expect("temporary file");
    path
}

fn path_str(path: &Path) -> &str {
    path.to_str().expect("utf-8 path")
}

const PREFIXES: &str = "@prefix yawl: <http://www.yawlfoundation.org/yawlschema#> .\n\
                        @prefix knhk: <https://knhk.dev/ns#> .\n";

/// A data directory of one test; every command runs as its own process on it.
struct DataDir {
    dir: tempfile::TempDir,
}

impl DataDir {
    fn new() -> DataDir {
        DataDir {
            dir: tempfile::tempdir().expect("temporary data directory"),
        }
    }

    fn path(&self) -> &Path {
        self.dir.path()
    }

    /// Runs `knhk --data-dir DIR ARGS...`.
    fn knhk(&self, args: &[&str]) -> Output {
        let mut all = vec!["--data-dir", path_str(self.dir.path())];
        all.extend_from_slice(args);
        knhk(&all)
    }

    /// Runs a command that must succeed and returns its stdout.
    fn ok(&self, args: &[&str]) -> String {
        let out = self.knhk(args);
        assert!(
            out.status.success(),
            "knhk {args:?} failed with {:?}\nstdout: {}\nstderr: {}",
            out.status.code(),
            stdout(&out),
            stderr(&out)
        );
        stdout(&out)
    }

    /// Runs a command that must succeed and print one JSON document.
    fn json(&self, args: &[&str]) -> Value {
        let text = self.ok(args);
        serde_json::from_str(&text).unwrap_or_else(|e| panic!("knhk {args:?}: {e}\n{text}"))
    }

    /// Runs the loan example for 25000, which waits for an underwriter, and returns the case
    /// document.
    fn start_loan(&self) -> Value {
        self.json(&[
            "run",
            &example("loan_application.ttl"),
            "--data",
            r#"{"applicant": "Ada", "amount": 25000}"#,
            "--json",
        ])
    }

    /// Runs a command that must fail with status 1 and returns its stderr.
    fn fails(&self, args: &[&str]) -> String {
        let out = self.knhk(args);
        assert_eq!(
            out.status.code(),
            Some(1),
            "knhk {args:?}\nstdout: {}\nstderr: {}",
            stdout(&out),
            stderr(&out)
        );
        stderr(&out)
    }
}

/// Returns a string field of a JSON document.
fn text<'a>(doc: &'a Value, key: &str) -> &'a str {
    doc[key]
        .as_str()
        .unwrap_or_else(|| panic!("no string {key:?} in {doc:#}"))
}

/// Returns the kinds of a case document's history, in order.
fn kinds(doc: &Value) -> Vec<&str> {
    doc["history"]
        .as_array()
        .expect("a history array")
        .iter()
        .map(|e| e["kind"].as_str().expect("a kind"))
        .collect()
}

/// Returns the tasks that completed in a case document's history, in order.
fn completed_tasks(doc: &Value) -> Vec<&str> {
    doc["history"]
        .as_array()
        .expect("a history array")
        .iter()
        .filter(|e| e["kind"] == "task_completed")
        .map(|e| e["task"].as_str().expect("a task"))
        .collect()
}
