//! Integration tests of the `knhk` binary: each test runs the built binary on real files (and
//! a data directory of its own) and checks its exit status and output.

// Helpers outside `#[test]` functions fail loudly too.
#![allow(clippy::expect_used, clippy::panic)]

mod anchor;
mod cases;
mod client;
mod connectors;
mod definitions;
mod distribution;
mod grpc;
mod http_server;
mod incidents;
mod inputs;
mod intake;
mod limits;
mod lockchain_consistency;
mod lockchain_show;
mod lockchain_verify;
mod multinode;
mod nodes;
mod outage;
mod postgres;
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
        .env_remove("KNHK_SERVER")
        .env_remove("KNHK_DURABILITY")
        .env_remove("KNHK_STORE")
        .env_remove("KNHK_STORE_POOL_SIZE")
        .env_remove("KNHK_CONFIG")
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

/// A data directory of one test; every command runs as its own process on it. With a server
/// (`DataDir::served`, or any `DataDir::new` when `KNHK_TEST_SERVER` is set), a `knhk serve`
/// runs on it and the `workflow`, `case` and `workitem` commands go to it with `--server`;
/// the others (`run`, `worker`...) still open the data directory.
struct DataDir {
    dir: tempfile::TempDir,
    /// Whether the commands that can go to a server do.
    served: bool,
    /// The server's extra environment variables.
    server_env: Vec<(String, String)>,
    /// The server, started at the first command that goes to it (after the test has written
    /// what the data directory holds besides the store, such as `directory.json`).
    server: std::sync::OnceLock<Served>,
}

/// A `knhk serve` on a test's data directory, killed when dropped.
struct Served {
    child: std::process::Child,
    url: String,
}

impl Drop for Served {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

impl DataDir {
    fn new() -> DataDir {
        if std::env::var_os("KNHK_TEST_SERVER").is_some_and(|v| !v.is_empty()) {
            DataDir::served()
        } else {
            DataDir::local()
        }
    }

    /// A data directory that the commands open themselves.
    fn local() -> DataDir {
        DataDir {
            dir: tempfile::tempdir().expect("temporary data directory"),
            served: false,
            server_env: Vec::new(),
            server: std::sync::OnceLock::new(),
        }
    }

    /// A data directory served by `knhk serve` on a free port, which the `workflow`, `case`
    /// and `workitem` commands reach with `--server`.
    fn served() -> DataDir {
        DataDir::served_with(&[])
    }

    /// A served data directory whose server has these extra `KNHK_*` variables.
    fn served_with(env: &[(&str, &str)]) -> DataDir {
        DataDir {
            served: true,
            server_env: env
                .iter()
                .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
                .collect(),
            ..DataDir::local()
        }
    }

    /// Starts `knhk serve` on the data directory. Its log goes nowhere, unless
    /// `KNHK_TEST_SERVER_LOG` names a file (debugging: `RUST_LOG` then sets its filter).
    fn serve(dir: &Path, env: &[(String, String)]) -> Served {
        use std::io::BufRead as _;
        let log = std::env::var_os("KNHK_TEST_SERVER_LOG");
        let stderr = match &log {
            Some(file) => std::process::Stdio::from(
                std::fs::OpenOptions::new()
                    .create(true)
                    .append(true)
                    .open(file)
                    .expect("the server log file opens"),
            ),
            None => std::process::Stdio::null(),
        };
        let filter = match (&log, std::env::var("RUST_LOG")) {
            (Some(_), Ok(filter)) => filter,
            _ => "error".to_owned(),
        };
        let mut child = Command::new(env!("CARGO_BIN_EXE_knhk"))
            .args([
                "serve",
                "--http",
                "127.0.0.1:0",
                "--grpc",
                "127.0.0.1:0",
                "--data-dir",
            ])
            .arg(dir)
            .env_remove("KNHK_DATA_DIR")
            .env_remove("KNHK_SERVER")
            .env_remove("KNHK_STORE")
            .env("RUST_LOG", filter)
            .envs(env.iter().map(|(k, v)| (k, v)))
            .stdout(std::process::Stdio::piped())
            .stderr(stderr)
            .spawn()
            .expect("knhk serve starts");
        let out = child.stdout.take().expect("stdout");
        let mut line = String::new();
        std::io::BufReader::new(out)
            .read_line(&mut line)
            .expect("the first line of knhk serve");
        // `listening http=HOST:PORT grpc=...`: only the http address is read.
        let addr = line
            .split_whitespace()
            .find_map(|word| word.strip_prefix("http="))
            .unwrap_or_else(|| panic!("first line of knhk serve: {line:?}"))
            .to_owned();
        Served {
            child,
            url: format!("http://{addr}"),
        }
    }

    fn path(&self) -> &Path {
        self.dir.path()
    }

    /// Returns the URL of the server on this data directory, starting it if it has not.
    fn server_url(&self) -> String {
        assert!(self.served, "a served data directory");
        self.server
            .get_or_init(|| DataDir::serve(self.dir.path(), &self.server_env))
            .url
            .clone()
    }

    /// Runs `knhk --data-dir DIR ARGS...`, or `knhk --server URL ARGS...` for a command
    /// that goes to the server.
    fn knhk(&self, args: &[&str]) -> Output {
        let remote = matches!(args.first(), Some(&("workflow" | "case" | "workitem")));
        let mut all = if remote && self.served {
            let server = self
                .server
                .get_or_init(|| DataDir::serve(self.dir.path(), &self.server_env));
            vec!["--server", server.url.as_str()]
        } else {
            vec!["--data-dir", path_str(self.dir.path())]
        };
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
